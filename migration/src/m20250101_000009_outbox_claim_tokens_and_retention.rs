//! The notification relay under clock skew and stalls, and the pruning of sent events.
//!
//! - `outbox_events.claim_token`: written by each claim, required by every update of the
//!   claimed event, so that a relay whose lease ran out while it was stalled cannot
//!   overwrite the outcome recorded by the relay that claimed the event after it. NULL when
//!   no claim was ever made.
//! - `idx_outbox_events_sent_at`: the sent events by when they were sent, for deleting
//!   those older than the retention in small batches. Partial: pending and dead events,
//!   which are never pruned, are not in it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OutboxEvents {
    Table,
    Status,
    SentAt,
    ClaimToken,
}

const SENT_INDEX: &str = "idx_outbox_events_sent_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OutboxEvents::Table)
                    .add_column(text_null(OutboxEvents::ClaimToken))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(SENT_INDEX)
                    .table(OutboxEvents::Table)
                    .col(OutboxEvents::SentAt)
                    .and_where(Expr::col(OutboxEvents::Status).eq("SENT"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(SENT_INDEX)
                    .table(OutboxEvents::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(OutboxEvents::Table)
                    .drop_column(OutboxEvents::ClaimToken)
                    .to_owned(),
            )
            .await
    }

    /// Both backends have transactional DDL, so a step never half-applies.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
