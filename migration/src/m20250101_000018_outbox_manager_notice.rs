//! `outbox_events.kind` admits `manager_notice`: a new message in the manager chat about
//! an order (`domain::outbox::OutboxEvent::ManagerNotice`, its notice in `payload`), such
//! as a customer's own cancellation, which the manager must hear rather than only see in
//! an edited message.
//!
//! SQLite cannot change a constraint, so there the table is rebuilt as migration 14
//! rebuilds it; PostgreSQL swaps the constraint. Going down deletes the notices (no
//! earlier schema can hold them) and restores the three kinds.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

use crate::m20250101_000014_outbox_any_chat::{SQLITE_COMMON_COLUMNS, sqlite_swap, sqlite_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

const KINDS_BEFORE: &str = "'order_created', 'order_status_changed', 'manager_message_update'";
pub(crate) const KINDS_AFTER: &str =
    "'order_created', 'order_status_changed', 'manager_message_update', 'manager_notice'";

pub(crate) fn postgres_kinds(kinds: &str) -> String {
    format!(
        r#"ALTER TABLE "outbox_events"
    DROP CONSTRAINT "ck_outbox_events_kind_known",
    ADD CONSTRAINT "ck_outbox_events_kind_known" CHECK ("kind" IN ({kinds}));"#
    )
}

/// The table of migration 14 with `kinds`, keeping the rows `filter` admits.
pub(crate) fn sqlite_rebuild(kinds: &str, filter: &str) -> String {
    let mut sql = sqlite_table(
        "outbox_events_new",
        kinds,
        "\"chat\" text NOT NULL DEFAULT 'manager_chat',\n    \"payload\" text NULL,\n    ",
        "",
    );
    let columns = format!(r#"{SQLITE_COMMON_COLUMNS}, "chat", "payload""#);
    sql.push_str(&sqlite_swap(&columns, filter));
    sql.push_str(
        r#"
CREATE UNIQUE INDEX "uq_outbox_events_order_created" ON "outbox_events" ("order_id")
    WHERE "kind" = 'order_created';
CREATE INDEX "idx_outbox_events_order_id" ON "outbox_events" ("order_id");
"#,
    );
    sql
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                connection
                    .execute_unprepared(&postgres_kinds(KINDS_AFTER))
                    .await?
            }
            _ => {
                connection
                    .execute_unprepared(&sqlite_rebuild(KINDS_AFTER, ""))
                    .await?
            }
        };
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                let sql = format!(
                    r#"DELETE FROM "outbox_events" WHERE "kind" = 'manager_notice';
{}"#,
                    postgres_kinds(KINDS_BEFORE)
                );
                connection.execute_unprepared(&sql).await?
            }
            _ => {
                connection
                    .execute_unprepared(&sqlite_rebuild(
                        KINDS_BEFORE,
                        "WHERE \"kind\" <> 'manager_notice'",
                    ))
                    .await?
            }
        };
        Ok(())
    }

    /// Both backends have transactional DDL, so a step never half-applies.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
