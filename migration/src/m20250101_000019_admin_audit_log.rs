//! For the admin API:
//!
//! - `audit_log`: one row per admin change (who: a Telegram id or `api-token`; when; what:
//!   an action, an entity and its id; the changed fields before and after, as JSON text),
//!   written in the transaction of the change. Listed newest first, whole or by entity.
//! - `idx_orders_status_created_at`: the admin's order list, filtered by status and
//!   newest first, reads only the page it shows, even with a million orders.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Action,
    Entity,
    EntityId,
    Before,
    After,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    Status,
    CreatedAt,
}

const AUDIT_AT_INDEX: &str = "idx_audit_log_at";
const AUDIT_ENTITY_INDEX: &str = "idx_audit_log_entity";
const ORDERS_STATUS_INDEX: &str = "idx_orders_status_created_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(big_pk_auto(AuditLog::Id))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(text(AuditLog::Actor))
                    .col(text(AuditLog::Action))
                    .col(text(AuditLog::Entity))
                    .col(text(AuditLog::EntityId))
                    .col(text(AuditLog::Before))
                    .col(text(AuditLog::After))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(AUDIT_AT_INDEX)
                    .table(AuditLog::Table)
                    .col((AuditLog::At, IndexOrder::Desc))
                    .col((AuditLog::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(AUDIT_ENTITY_INDEX)
                    .table(AuditLog::Table)
                    .col(AuditLog::Entity)
                    .col(AuditLog::EntityId)
                    .col((AuditLog::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(ORDERS_STATUS_INDEX)
                    .table(Orders::Table)
                    .col(Orders::Status)
                    .col((Orders::CreatedAt, IndexOrder::Desc))
                    .col((Orders::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(ORDERS_STATUS_INDEX)
                    .table(Orders::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await
    }
}
