//! `idx_outbox_events_dead_id`: the dead events, for counting them.
//!
//! The metrics count pending and dead events every few seconds. Pending ones are counted
//! through `idx_outbox_events_pending_id`; without an index of their own, counting the dead
//! read the whole table, sent events included, which only ever grow. Partial, like the
//! pending index: dead events are few, so it costs next to nothing.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OutboxEvents {
    Table,
    Id,
    Status,
}

const DEAD_INDEX: &str = "idx_outbox_events_dead_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(DEAD_INDEX)
                    .table(OutboxEvents::Table)
                    .col(OutboxEvents::Id)
                    .and_where(Expr::col(OutboxEvents::Status).eq("DEAD"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(DEAD_INDEX)
                    .table(OutboxEvents::Table)
                    .to_owned(),
            )
            .await
    }
}
