//! `idx_outbox_events_pending_chat`: the pending outbox events by chat, then id, on
//! PostgreSQL, for the relay's claim.
//!
//! A claim takes the oldest due events of the chats that are not held (a 429 holds a chat).
//! Walking the pending events in id order and skipping those of held chats cost a probe
//! per held event: with the manager chat held during a sale and 129 000 new-order messages
//! waiting for it, one claim read them all (260 ms), again on every wake-up, while orders
//! kept coming. With this index the claim visits each chat with pending events once (a
//! skip scan), skips a held chat as a whole, and reads only the first events of the others.
//!
//! Its predicate says "not sent and not dead" where `idx_outbox_events_pending_id` says
//! "pending" (the same rows: `ck_outbox_events_status_known` allows nothing else), and the
//! claim says it the same way, so that only this index can serve the claim. Otherwise,
//! with statistics taken while nearly every event was sent (a backlog grows faster than
//! autovacuum analyses), the planner picks the index by id and filters it by chat, which
//! reads the held backlog again.
//!
//! SQLite keeps the walk in id order: it runs one small shop, whose backlog a hold cannot
//! grow to that size.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &str = r#"CREATE INDEX "idx_outbox_events_pending_chat" ON "outbox_events" ("chat", "id") WHERE "status" NOT IN ('SENT', 'DEAD');"#;

const POSTGRES_DOWN: &str = r#"DROP INDEX "idx_outbox_events_pending_chat";"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_UP)
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_DOWN)
                .await?;
        }
        Ok(())
    }
}
