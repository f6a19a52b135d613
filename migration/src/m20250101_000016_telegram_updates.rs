//! `telegram_updates`: the `update_id` of every Telegram update BotShop received, so that
//! each is handled once however often Telegram redelivers it and whichever instance it
//! reaches. Rows are forgotten after a while (Telegram gives up redelivering long before).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TelegramUpdates {
    Table,
    UpdateId,
    ReceivedAt,
}

const RECEIVED_INDEX: &str = "idx_telegram_updates_received_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TelegramUpdates::Table)
                    .col(big_integer(TelegramUpdates::UpdateId).primary_key())
                    .col(timestamp_with_time_zone(TelegramUpdates::ReceivedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(RECEIVED_INDEX)
                    .table(TelegramUpdates::Table)
                    .col(TelegramUpdates::ReceivedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TelegramUpdates::Table).to_owned())
            .await
    }
}
