//! The transactional outbox: events written in an order's own transaction and delivered
//! later by the notification relay (`domain::outbox`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum OutboxEvents {
    Table,
    Id,
    Kind,
    OrderId,
    Status,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    LastError,
    TelegramMessageId,
    CreatedAt,
    SentAt,
    DeadAt,
}

/// The event kinds, spelled as `domain::outbox::ORDER_CREATED`. Kept here, not imported,
/// so that this step never changes: a new kind is a new migration.
const KINDS: [&str; 1] = ["order_created"];

/// An event's life: waiting for delivery, delivered, or given up on. The first is the
/// default.
const STATUSES: [&str; 3] = ["PENDING", "SENT", "DEAD"];

const DUE_INDEX: &str = "idx_outbox_events_status_next_attempt_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OutboxEvents::Table)
                    .col(big_pk_auto(OutboxEvents::Id))
                    .col(text(OutboxEvents::Kind).check((
                        "ck_outbox_events_kind_known",
                        Expr::col(OutboxEvents::Kind).is_in(KINDS),
                    )))
                    .col(big_integer(OutboxEvents::OrderId))
                    .col(text(OutboxEvents::Status).default(STATUSES[0]).check((
                        "ck_outbox_events_status_known",
                        Expr::col(OutboxEvents::Status).is_in(STATUSES),
                    )))
                    // Failed delivery attempts; a 429's wait does not count as one.
                    .col(integer(OutboxEvents::Attempts).default(0).check((
                        "ck_outbox_events_attempts_non_negative",
                        Expr::col(OutboxEvents::Attempts).gte(0),
                    )))
                    .col(timestamp_with_time_zone(OutboxEvents::NextAttemptAt))
                    // The lease of the relay delivering the event; NULL when none holds it.
                    .col(timestamp_with_time_zone_null(OutboxEvents::LockedUntil))
                    // Why the last attempt failed. The relay passes only reasons free of
                    // secrets and personal data.
                    .col(text_null(OutboxEvents::LastError))
                    .col(big_integer_null(OutboxEvents::TelegramMessageId))
                    .col(timestamp_with_time_zone(OutboxEvents::CreatedAt))
                    .col(timestamp_with_time_zone_null(OutboxEvents::SentAt))
                    .col(timestamp_with_time_zone_null(OutboxEvents::DeadAt))
                    // An order is announced once. The constraint's index, led by
                    // `order_id`, also serves the foreign key's cascade and any lookup by
                    // order, so `order_id` gets no index of its own: it would only double
                    // the cost of every insert.
                    .index(
                        Index::create()
                            .name("uq_outbox_events_order_id_kind")
                            .unique()
                            .col(OutboxEvents::OrderId)
                            .col(OutboxEvents::Kind),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_outbox_events_order_id")
                            .from(OutboxEvents::Table, OutboxEvents::OrderId)
                            .to(Orders::Table, Orders::Id)
                            // An event means nothing without its order.
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;

        // Serves the relay's "pending events that are due", polled every fraction of a
        // second: sent and dead events, the vast majority, are never scanned.
        manager
            .create_index(
                Index::create()
                    .name(DUE_INDEX)
                    .table(OutboxEvents::Table)
                    .col(OutboxEvents::Status)
                    .col(OutboxEvents::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(DUE_INDEX)
                    .table(OutboxEvents::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(OutboxEvents::Table).to_owned())
            .await
    }

    /// Both backends have transactional DDL, so a step never half-applies.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
