//! The outbox carries any message to any chat.
//!
//! - `outbox_events.kind` admits the three kinds of event (`order_created`,
//!   `order_status_changed`, `manager_message_update`), spelled as
//!   `domain::outbox::EventKind::as_str` spells them.
//! - `outbox_events.chat`: the event's recipient, as a chat key
//!   (`domain::outbox::Recipient::chat_key`): `manager_chat` for the configured manager
//!   chat, `user:<telegram id>` for a customer's private chat. The manager chat is named,
//!   not numbered, so that changing `MANAGER_CHAT_ID` redirects pending events. Existing
//!   rows, all `order_created`, take the default `manager_chat`.
//! - `outbox_events.payload`: what the kind needs beyond its order, as JSON text (the
//!   status change's `from`, `to` and `by`); NULL for the kinds that need nothing more.
//! - `UNIQUE (order_id, kind)` becomes `uq_outbox_events_order_created`, unique on
//!   `order_id` among `order_created` events only: an order is still announced once, but
//!   may change status many times. `idx_outbox_events_order_id` takes over serving the
//!   foreign key's cascade.
//! - `outbox_holds.channel` becomes `outbox_holds.chat`, a chat key: one hold per chat, so
//!   a 429 in one chat delays only that chat. The existing `manager_chat` row stays valid.
//! - `users.language_code`: the IETF tag Telegram's initData gives, so that a customer's
//!   messages can be written in their language.
//!
//! SQLite cannot drop or change a constraint, so there the table is rebuilt (nothing
//! references `outbox_events`, so the copy is safe with foreign keys on); PostgreSQL
//! alters it in place (adding a column with a constant default rewrites nothing).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &str = r#"
ALTER TABLE "outbox_events"
    ADD COLUMN "chat" text NOT NULL DEFAULT 'manager_chat',
    ADD COLUMN "payload" text,
    DROP CONSTRAINT "ck_outbox_events_kind_known",
    ADD CONSTRAINT "ck_outbox_events_kind_known"
        CHECK ("kind" IN ('order_created', 'order_status_changed', 'manager_message_update')),
    DROP CONSTRAINT "uq_outbox_events_order_id_kind";
CREATE UNIQUE INDEX "uq_outbox_events_order_created" ON "outbox_events" ("order_id")
    WHERE "kind" = 'order_created';
CREATE INDEX "idx_outbox_events_order_id" ON "outbox_events" ("order_id");
ALTER TABLE "outbox_holds" RENAME COLUMN "channel" TO "chat";
ALTER TABLE "users" ADD COLUMN "language_code" text;
"#;

const POSTGRES_DOWN: &str = r#"
DELETE FROM "outbox_events" WHERE "kind" <> 'order_created';
DROP INDEX "idx_outbox_events_order_id";
DROP INDEX "uq_outbox_events_order_created";
ALTER TABLE "outbox_events"
    DROP COLUMN "chat",
    DROP COLUMN "payload",
    DROP CONSTRAINT "ck_outbox_events_kind_known",
    ADD CONSTRAINT "ck_outbox_events_kind_known" CHECK ("kind" IN ('order_created')),
    ADD CONSTRAINT "uq_outbox_events_order_id_kind" UNIQUE ("order_id", "kind");
DELETE FROM "outbox_holds" WHERE "chat" <> 'manager_chat';
ALTER TABLE "outbox_holds" RENAME COLUMN "chat" TO "channel";
ALTER TABLE "users" DROP COLUMN "language_code";
"#;

/// The columns both shapes of the SQLite table share, in order.
pub(crate) const SQLITE_COMMON_COLUMNS: &str = r#""id", "kind", "order_id", "status", "attempts", "next_attempt_at", "locked_until", "last_error", "telegram_message_id", "created_at", "sent_at", "dead_at", "claim_token""#;

/// The SQLite table, before (`kinds` = `'order_created'`, no `extra` columns, the old
/// unique constraint) or after this step.
pub(crate) fn sqlite_table(name: &str, kinds: &str, extra: &str, unique: &str) -> String {
    format!(
        r#"CREATE TABLE "{name}" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "kind" text NOT NULL CONSTRAINT "ck_outbox_events_kind_known" CHECK ("kind" IN ({kinds})),
    "order_id" integer NOT NULL,
    "status" text NOT NULL DEFAULT 'PENDING' CONSTRAINT "ck_outbox_events_status_known" CHECK ("status" IN ('PENDING', 'SENT', 'DEAD')),
    "attempts" integer NOT NULL DEFAULT 0 CONSTRAINT "ck_outbox_events_attempts_non_negative" CHECK ("attempts" >= 0),
    "next_attempt_at" timestamp_with_timezone_text NOT NULL,
    "locked_until" timestamp_with_timezone_text NULL,
    "last_error" text NULL,
    "telegram_message_id" integer NULL,
    "created_at" timestamp_with_timezone_text NOT NULL,
    "sent_at" timestamp_with_timezone_text NULL,
    "dead_at" timestamp_with_timezone_text NULL,
    "claim_token" text NULL,
    {extra}{unique}FOREIGN KEY ("order_id") REFERENCES "orders" ("id") ON DELETE CASCADE ON UPDATE RESTRICT
);"#
    )
}

/// Copies the rows `filter` admits into `outbox_events_new`, keeps the AUTOINCREMENT
/// counter (so pruned ids are never reused), and puts the new table in the old one's
/// place with the partial indexes of migrations 7, 9 and 10.
pub(crate) fn sqlite_swap(columns: &str, filter: &str) -> String {
    format!(
        r#"
INSERT INTO "outbox_events_new" ({columns}) SELECT {columns} FROM "outbox_events" {filter};
DELETE FROM "sqlite_sequence" WHERE "name" = 'outbox_events_new';
INSERT INTO "sqlite_sequence" ("name", "seq")
    SELECT 'outbox_events_new', "seq" FROM "sqlite_sequence" WHERE "name" = 'outbox_events';
DROP TABLE "outbox_events";
ALTER TABLE "outbox_events_new" RENAME TO "outbox_events";
CREATE INDEX "idx_outbox_events_pending_id" ON "outbox_events" ("id") WHERE "status" = 'PENDING';
CREATE INDEX "idx_outbox_events_sent_at" ON "outbox_events" ("sent_at") WHERE "status" = 'SENT';
CREATE INDEX "idx_outbox_events_dead_id" ON "outbox_events" ("id") WHERE "status" = 'DEAD';
"#
    )
}

fn sqlite_up() -> String {
    let mut sql = sqlite_table(
        "outbox_events_new",
        "'order_created', 'order_status_changed', 'manager_message_update'",
        "\"chat\" text NOT NULL DEFAULT 'manager_chat',\n    \"payload\" text NULL,\n    ",
        "",
    );
    sql.push_str(&sqlite_swap(SQLITE_COMMON_COLUMNS, ""));
    sql.push_str(
        r#"
CREATE UNIQUE INDEX "uq_outbox_events_order_created" ON "outbox_events" ("order_id")
    WHERE "kind" = 'order_created';
CREATE INDEX "idx_outbox_events_order_id" ON "outbox_events" ("order_id");
ALTER TABLE "outbox_holds" RENAME COLUMN "channel" TO "chat";
ALTER TABLE "users" ADD COLUMN "language_code" text NULL;
"#,
    );
    sql
}

fn sqlite_down() -> String {
    let mut sql = sqlite_table(
        "outbox_events_new",
        "'order_created'",
        "",
        "CONSTRAINT \"uq_outbox_events_order_id_kind\" UNIQUE (\"order_id\", \"kind\"),\n    ",
    );
    sql.push_str(&sqlite_swap(
        SQLITE_COMMON_COLUMNS,
        "WHERE \"kind\" = 'order_created'",
    ));
    sql.push_str(
        r#"
DELETE FROM "outbox_holds" WHERE "chat" <> 'manager_chat';
ALTER TABLE "outbox_holds" RENAME COLUMN "chat" TO "channel";
ALTER TABLE "users" DROP COLUMN "language_code";
"#,
    );
    sql
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => connection.execute_unprepared(POSTGRES_UP).await?,
            _ => connection.execute_unprepared(&sqlite_up()).await?,
        };
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => connection.execute_unprepared(POSTGRES_DOWN).await?,
            _ => connection.execute_unprepared(&sqlite_down()).await?,
        };
        Ok(())
    }

    /// Both backends have transactional DDL, so a step never half-applies.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
