//! Holds on the notification relay: while a row's `held_until` is in the future, no
//! pending outbox event is claimed (Telegram answered 429 and asked the chat to wait).
//!
//! One row per destination, so a hold is one write however many events are waiting. It
//! replaces postponing every pending event's `next_attempt_at`, which rewrote the whole
//! backlog on every 429 — during a rush, tens of thousands of rows a second.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OutboxHolds {
    Table,
    Channel,
    HeldUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OutboxHolds::Table)
                    // Which destination is held: today only the manager's chat.
                    .col(text(OutboxHolds::Channel).primary_key())
                    .col(timestamp_with_time_zone(OutboxHolds::HeldUntil))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OutboxHolds::Table).to_owned())
            .await
    }

    /// Both backends have transactional DDL, so a step never half-applies.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
