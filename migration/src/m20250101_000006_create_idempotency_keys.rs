//! Idempotency keys of order placements (`domain::idempotency`): a retried
//! `POST /orders` with the same key places no second order.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    UserId,
    Key,
    RequestHash,
    OrderId,
    ResponseStatus,
    ResponseBody,
    CreatedAt,
    ClaimedAt,
}

const CREATED_INDEX: &str = "idx_idempotency_keys_created_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(big_integer(IdempotencyKeys::UserId))
                    // As the client sent it: 1 to 255 visible ASCII characters.
                    .col(text(IdempotencyKeys::Key))
                    // The SHA-256 of the request (`domain::idempotency::RequestFingerprint`),
                    // as bytes: `bytea` on PostgreSQL, a blob on SQLite.
                    .col(blob(IdempotencyKeys::RequestHash))
                    // Set in the order's own transaction, so a committed order is never
                    // placed twice, even if its response was never stored.
                    .col(big_integer_null(IdempotencyKeys::OrderId))
                    // The response kept for replay, once there is one. The body is the
                    // exact bytes sent (UTF-8 JSON), kept as bytes so nothing re-encodes it.
                    .col(integer_null(IdempotencyKeys::ResponseStatus).check((
                        "ck_idempotency_keys_response_status_range",
                        Expr::col(IdempotencyKeys::ResponseStatus).between(100, 599),
                    )))
                    .col(blob_null(IdempotencyKeys::ResponseBody))
                    // Keys expire a fixed time after they were first used.
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    // When the current request took the key: a claim without an order that
                    // is older than the lease belongs to a request that died.
                    .col(timestamp_with_time_zone(IdempotencyKeys::ClaimedAt))
                    // A key is scoped to its user.
                    .primary_key(
                        Index::create()
                            .name("pk_idempotency_keys")
                            .col(IdempotencyKeys::UserId)
                            .col(IdempotencyKeys::Key),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_idempotency_keys_user_id")
                            .from(IdempotencyKeys::Table, IdempotencyKeys::UserId)
                            .to(Users::Table, Users::Id)
                            // A key means nothing without its user.
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Restrict),
                    )
                    // `order_id` has no index of its own: orders are practically never
                    // deleted, and the table holds one day of keys, so the cascade's scan
                    // is cheap where an index would cost every placement.
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_idempotency_keys_order_id")
                            .from(IdempotencyKeys::Table, IdempotencyKeys::OrderId)
                            .to(Orders::Table, Orders::Id)
                            // A key that names a deleted order would replay a response
                            // about an order that no longer exists.
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;

        // Serves purging the expired keys.
        manager
            .create_index(
                Index::create()
                    .name(CREATED_INDEX)
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(CREATED_INDEX)
                    .table(IdempotencyKeys::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned())
            .await
    }

    /// Both backends have transactional DDL, so a step never half-applies.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
