//! [`Outbox`] over SQL: the `outbox_events` table.
//!
//! [`OrderRepository::place`](domain::ports::OrderRepository::place) inserts each order's
//! `order_created` event in the order's own transaction (see `crate::orders`); this module
//! moves events through their life. `status` is the event's state — [`PENDING`], [`SENT`]
//! or [`DEAD`] — and `locked_until` the lease of the relay delivering it: a pending event is
//! due when `next_attempt_at` has passed and no lease holds it, or its lease has run out.
//!
//! Every instant these statements judge or write is the database's own (see
//! [`database_now`]), never one the application passes in: server instances share the
//! database, not a wall clock, and a lease judged by two clocks 30 s apart would let two
//! relays send one event.
//!
//! A claim writes a fresh random `claim_token` on each event it leases. The updates of one
//! claimed event (`mark_sent`, `retry_later`, `mark_dead`, `release`) change it only while
//! it is pending and still holds that token, and clear both the lease and the token: a
//! relay that stalled past its lease, whose event another relay has claimed since, changes
//! nothing and is told so ([`Recorded::LeaseLost`]).
//!
//! The relay decides every transition (when to retry, when to give up); these statements
//! only record what it decided.

use std::collections::HashMap;

use async_trait::async_trait;
use domain::outbox::{ClaimToken, ClaimedEvent, EventId, OutboxCounts, Recorded};
use domain::ports::{OrderPlaced, Outbox};
use domain::{RepositoryError, TelegramId};
use sea_orm::sea_query::{Cond, Expr, Query, UpdateStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait,
    FromQueryResult, QueryFilter, QuerySelect, Statement,
};

use crate::entities::outbox_events::{self, Column};
use crate::entities::{order_items, orders, users};
use crate::error::{corrupt_row, repository_error};
use crate::orders::lines_of;
use crate::store::{SqlStore, database_now, database_now_plus, offset_value, order_from_rows};
use crate::transaction::write_transaction;

/// Waiting for delivery (the column's default).
pub(crate) const PENDING: &str = "PENDING";
/// Delivered; `sent_at` and `telegram_message_id` say when and as which message.
pub(crate) const SENT: &str = "SENT";
/// Given up on; `last_error` says why, and `retry_dead` puts it back in line.
pub(crate) const DEAD: &str = "DEAD";

/// Leases up to `$2` due events, oldest first, for the offset `$1` from the database's
/// now, each under a new random token. Nothing is due while a hold (`outbox_holds`, see
/// [`hold_sql`]) runs. `{lock}` is `FOR UPDATE SKIP LOCKED` on PostgreSQL: a concurrent
/// claimer skips the rows this one is leasing instead of waiting for them, and PostgreSQL
/// re-checks the condition on rows another claimer has just leased, so that no event is
/// leased twice. SQLite has no row locks and needs none: the statement runs in an
/// IMMEDIATE transaction, and SQLite lets one writer at a time in.
///
/// `{now}` and `{lease_end}` are the database's clock (see [`database_now`]); on
/// PostgreSQL `now()` is the transaction's start, one instant for the whole claim.
const CLAIM_SQL: &str = r#"
UPDATE "outbox_events" SET "locked_until" = {lease_end}, "claim_token" = {token}
WHERE "id" IN (
    SELECT "id" FROM "outbox_events"
    WHERE "status" = 'PENDING'
      AND "next_attempt_at" <= {now}
      AND ("locked_until" IS NULL OR "locked_until" <= {now})
      AND NOT EXISTS (SELECT 1 FROM "outbox_holds" WHERE "held_until" > {now})
    ORDER BY "id"
    LIMIT $2
    {lock}
)
RETURNING "id", "order_id", "attempts", "claim_token"
"#;

fn claim_sql(backend: DatabaseBackend) -> String {
    let (lock, token) = match backend {
        DatabaseBackend::Sqlite => ("", "lower(hex(randomblob(16)))"),
        _ => ("FOR UPDATE SKIP LOCKED", "gen_random_uuid()::text"),
    };
    CLAIM_SQL
        .replace("{lease_end}", &database_now_plus(backend, "$1"))
        .replace("{now}", database_now(backend))
        .replace("{token}", token)
        .replace("{lock}", lock)
}

/// Reschedules event `$1` if it still holds claim `$2`: `$3` attempts, the next one at
/// the offset `$4` from the database's now, `$5` the error.
fn retry_later_sql(backend: DatabaseBackend) -> String {
    format!(
        r#"UPDATE "outbox_events"
SET "attempts" = $3, "next_attempt_at" = {next}, "last_error" = $5,
    "locked_until" = NULL, "claim_token" = NULL
WHERE "id" = $1 AND "claim_token" = $2 AND "status" = 'PENDING'"#,
        next = database_now_plus(backend, "$4"),
    )
}

/// Holds the manager's chat for the offset `$1` from the database's now: one row, written
/// only if it moves the hold later. Both backends read `excluded` and a `WHERE` on the
/// update.
fn hold_sql(backend: DatabaseBackend) -> String {
    format!(
        r#"INSERT INTO "outbox_holds" ("channel", "held_until") VALUES ('manager_chat', {until})
ON CONFLICT ("channel") DO UPDATE SET "held_until" = excluded."held_until"
WHERE "outbox_holds"."held_until" < excluded."held_until""#,
        until = database_now_plus(backend, "$1"),
    )
}

/// Deletes up to `$2` sent events sent before the offset `$1` (negative) from the
/// database's now, oldest first, through the partial index on `sent_at` of sent events.
/// On PostgreSQL a concurrent pruner (another instance) skips the rows this one deletes.
fn delete_sent_sql(backend: DatabaseBackend) -> String {
    let lock = match backend {
        DatabaseBackend::Sqlite => "",
        _ => "FOR UPDATE SKIP LOCKED",
    };
    format!(
        r#"DELETE FROM "outbox_events" WHERE "id" IN (
    SELECT "id" FROM "outbox_events"
    WHERE "status" = 'SENT' AND "sent_at" < {cutoff}
    ORDER BY "sent_at"
    LIMIT $2
    {lock}
)"#,
        cutoff = database_now_plus(backend, "$1"),
    )
}

/// The pending and dead counts and the oldest pending event, each read from its partial
/// index (`idx_outbox_events_pending_id`, `idx_outbox_events_dead_id`), never from the
/// sent events that make up the rest of the table. The oldest pending event is the first
/// written (lowest id): one index entry, where `MIN("created_at")` would visit every
/// pending row.
pub const OUTBOX_COUNTS_SQL: &str = r#"
SELECT
    (SELECT COUNT(*) FROM "outbox_events" WHERE "status" = 'PENDING') AS "pending",
    (SELECT COUNT(*) FROM "outbox_events" WHERE "status" = 'DEAD') AS "dead",
    (SELECT "created_at" FROM "outbox_events" WHERE "status" = 'PENDING'
        ORDER BY "id" LIMIT 1) AS "oldest_pending"
"#;

/// An event as the claim returns it.
#[derive(Debug, FromQueryResult)]
struct ClaimedRow {
    id: i64,
    order_id: i64,
    attempts: i32,
    claim_token: String,
}

#[derive(Debug, FromQueryResult)]
struct CountsRow {
    pending: i64,
    dead: i64,
    oldest_pending: Option<time::OffsetDateTime>,
}

#[async_trait]
impl Outbox for SqlStore {
    async fn claim_due(
        &self,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedEvent>, RepositoryError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The claim and the reads of its orders share one transaction, so a failed read
        // leaves no lease behind. On SQLite it is IMMEDIATE (see `write_transaction`), so
        // claimers take turns instead of failing with SQLITE_BUSY.
        write_transaction(&self.db, "the outbox claim", async |transaction| {
            claim_in(transaction, lease, limit).await
        })
        .await
    }

    async fn mark_sent(
        &self,
        id: EventId,
        token: &ClaimToken,
        message_id: Option<i64>,
    ) -> Result<Recorded, RepositoryError> {
        let statement = update_claimed(id, token)
            .value(Column::Status, SENT)
            .value(Column::SentAt, Expr::cust(database_now(self.backend())))
            .value(Column::TelegramMessageId, message_id)
            .to_owned();
        self.update_claimed(&statement, "failed to mark an outbox event sent")
            .await
    }

    async fn retry_later(
        &self,
        id: EventId,
        token: &ClaimToken,
        attempts: u32,
        delay: std::time::Duration,
        error: &str,
    ) -> Result<Recorded, RepositoryError> {
        let backend = self.backend();
        let statement = Statement::from_sql_and_values(
            backend,
            retry_later_sql(backend),
            [
                id.0.into(),
                token.as_str().into(),
                stored_attempts(attempts)?.into(),
                offset_value(backend, delay, false),
                error.into(),
            ],
        );
        let result = self
            .db
            .execute_raw(statement)
            .await
            .map_err(|err| repository_error(err, "failed to reschedule an outbox event"))?;
        Ok(recorded(result.rows_affected()))
    }

    async fn mark_dead(
        &self,
        id: EventId,
        token: &ClaimToken,
        attempts: u32,
        reason: &str,
    ) -> Result<Recorded, RepositoryError> {
        let statement = update_claimed(id, token)
            .value(Column::Status, DEAD)
            .value(Column::Attempts, stored_attempts(attempts)?)
            .value(Column::LastError, reason)
            .value(Column::DeadAt, Expr::cust(database_now(self.backend())))
            .to_owned();
        self.update_claimed(&statement, "failed to mark an outbox event dead")
            .await
    }

    async fn release(&self, claims: &[(EventId, ClaimToken)]) -> Result<(), RepositoryError> {
        if claims.is_empty() {
            return Ok(());
        }
        // One statement for the batch: each event is released only under its own token.
        let mut held = Cond::any();
        for (id, token) in claims {
            held = held.add(
                Cond::all()
                    .add(Column::Id.eq(id.0))
                    .add(Column::ClaimToken.eq(token.as_str())),
            );
        }
        let statement = Query::update()
            .table(outbox_events::Entity)
            .value(Column::LockedUntil, Expr::null())
            .value(Column::ClaimToken, Expr::null())
            .and_where(Column::Status.eq(PENDING))
            .cond_where(held)
            .to_owned();
        self.db
            .execute(&statement)
            .await
            .map_err(|err| repository_error(err, "failed to release outbox events"))?;
        Ok(())
    }

    async fn hold_pending(&self, wait: std::time::Duration) -> Result<(), RepositoryError> {
        // One row, not the backlog: a 429 during a rush must not rewrite every waiting event.
        let backend = self.backend();
        let statement = Statement::from_sql_and_values(
            backend,
            hold_sql(backend),
            [offset_value(backend, wait, false)],
        );
        self.db
            .execute_raw(statement)
            .await
            .map_err(|err| repository_error(err, "failed to hold the outbox"))?;
        Ok(())
    }

    async fn counts(&self) -> Result<OutboxCounts, RepositoryError> {
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.backend(), OUTBOX_COUNTS_SQL))
            .await
            .map_err(|err| repository_error(err, "failed to count outbox events"))?
            .ok_or_else(|| corrupt_row("counting outbox events returned no row".to_owned()))?;
        let counts = CountsRow::from_query_result(&row, "")
            .map_err(|err| repository_error(err, "failed to read the outbox counts"))?;
        let count = |n: i64| {
            u64::try_from(n).map_err(|err| corrupt_row(format!("a negative outbox count: {err}")))
        };
        Ok(OutboxCounts {
            pending: count(counts.pending)?,
            dead: count(counts.dead)?,
            oldest_pending: counts.oldest_pending,
        })
    }

    async fn retry_dead(&self) -> Result<u64, RepositoryError> {
        // `last_error` stays: it still tells why the event died, until a new attempt
        // replaces it.
        let statement = Query::update()
            .table(outbox_events::Entity)
            .value(Column::Status, PENDING)
            .value(Column::Attempts, 0)
            .value(
                Column::NextAttemptAt,
                Expr::cust(database_now(self.backend())),
            )
            .value(Column::DeadAt, Expr::null())
            .value(Column::LockedUntil, Expr::null())
            .value(Column::ClaimToken, Expr::null())
            .and_where(Column::Status.eq(DEAD))
            .to_owned();
        let result = self
            .db
            .execute(&statement)
            .await
            .map_err(|err| repository_error(err, "failed to revive dead outbox events"))?;
        Ok(result.rows_affected())
    }

    async fn delete_sent(
        &self,
        age: std::time::Duration,
        limit: u32,
    ) -> Result<u64, RepositoryError> {
        if limit == 0 {
            return Ok(0);
        }
        let backend = self.backend();
        let statement = Statement::from_sql_and_values(
            backend,
            delete_sent_sql(backend),
            [offset_value(backend, age, true), i64::from(limit).into()],
        );
        let result = self
            .db
            .execute_raw(statement)
            .await
            .map_err(|err| repository_error(err, "failed to delete old sent outbox events"))?;
        Ok(result.rows_affected())
    }
}

impl SqlStore {
    /// Runs an update of one claimed event (see [`update_claimed`]).
    async fn update_claimed(
        &self,
        statement: &UpdateStatement,
        context: &'static str,
    ) -> Result<Recorded, RepositoryError> {
        let result = self
            .db
            .execute(statement)
            .await
            .map_err(|err| repository_error(err, context))?;
        Ok(recorded(result.rows_affected()))
    }
}

/// An update of the event `id` that takes effect only if it is still pending and still
/// holds the claim `token`, ending the claim; the caller adds the values. So recording an
/// outcome can never turn a sent event dead, revive one, or overwrite what the relay that
/// claimed the event after a lost lease recorded.
fn update_claimed(id: EventId, token: &ClaimToken) -> UpdateStatement {
    Query::update()
        .table(outbox_events::Entity)
        .value(Column::LockedUntil, Expr::null())
        .value(Column::ClaimToken, Expr::null())
        .and_where(Column::Id.eq(id.0))
        .and_where(Column::ClaimToken.eq(token.as_str()))
        .and_where(Column::Status.eq(PENDING))
        .to_owned()
}

/// Whether an update of one claimed event took effect. None means the claim is lost: the
/// event is claimed by another relay, no longer pending, or gone (its order was deleted).
fn recorded(rows_affected: u64) -> Recorded {
    if rows_affected == 0 {
        Recorded::LeaseLost
    } else {
        Recorded::Done
    }
}

/// The attempts as the `integer` column keeps them. The relay gives up long before this
/// could fail.
fn stored_attempts(attempts: u32) -> Result<i32, RepositoryError> {
    i32::try_from(attempts).map_err(|err| {
        RepositoryError::Unknown(anyhow::anyhow!(
            "{attempts} attempts do not fit the outbox: {err}"
        ))
    })
}

/// Leases the due events and loads their notifications: four statements however large
/// the batch (the claim, the orders, their lines, their customers).
async fn claim_in(
    transaction: &DatabaseTransaction,
    lease: std::time::Duration,
    limit: u32,
) -> Result<Vec<ClaimedEvent>, RepositoryError> {
    let backend = transaction.get_database_backend();
    let claim = Statement::from_sql_and_values(
        backend,
        claim_sql(backend),
        [offset_value(backend, lease, false), i64::from(limit).into()],
    );
    let mut claimed = transaction
        .query_all_raw(claim)
        .await
        .map_err(|err| repository_error(err, "failed to claim outbox events"))?
        .iter()
        .map(|row| ClaimedRow::from_query_result(row, ""))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| repository_error(err, "failed to read the claimed outbox events"))?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    // RETURNING promises no order.
    claimed.sort_by_key(|event| event.id);

    let order_ids: Vec<i64> = claimed.iter().map(|event| event.order_id).collect();
    let orders: HashMap<i64, orders::Model> = orders::Entity::find()
        .filter(orders::Column::Id.is_in(order_ids.clone()))
        .all(transaction)
        .await
        .map_err(|err| repository_error(err, "failed to load the claimed events' orders"))?
        .into_iter()
        .map(|order| (order.id, order))
        .collect();
    let lines = lines_of(transaction, order_ids).await?;
    let mut user_ids: Vec<i64> = orders.values().map(|order| order.user_id).collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    let customers: HashMap<i64, i64> = users::Entity::find()
        .select_only()
        .column(users::Column::Id)
        .column(users::Column::TelegramId)
        .filter(users::Column::Id.is_in(user_ids))
        .into_tuple::<(i64, i64)>()
        .all(transaction)
        .await
        .map_err(|err| repository_error(err, "failed to load the claimed events' customers"))?
        .into_iter()
        .collect();

    let (ready, broken): (Vec<_>, Vec<_>) = claimed
        .into_iter()
        .map(|event| {
            let id = event.id;
            to_claimed_event(event, &orders, &customers, &lines).map_err(|err| (id, err))
        })
        .partition(Result::is_ok);
    // One unreadable event must not stop every other notification: it would head every
    // claim for ever. It is made dead, with why, and logged once.
    for (id, err) in broken.into_iter().filter_map(Result::err) {
        let reason = format!("unreadable event: {err:#}");
        tracing::error!(event_id = id, %reason, "manager notification is dead");
        let dead = Query::update()
            .table(outbox_events::Entity)
            .value(Column::Status, DEAD)
            .value(Column::LastError, reason)
            .value(Column::DeadAt, Expr::cust(database_now(backend)))
            .value(Column::LockedUntil, Expr::null())
            .value(Column::ClaimToken, Expr::null())
            .and_where(Column::Id.eq(id))
            .to_owned();
        transaction.execute(&dead).await.map_err(|err| {
            repository_error(err, "failed to set aside an unreadable outbox event")
        })?;
    }
    Ok(ready.into_iter().filter_map(Result::ok).collect())
}

/// One claimed row with its order, lines and customer.
fn to_claimed_event(
    event: ClaimedRow,
    orders: &HashMap<i64, orders::Model>,
    customers: &HashMap<i64, i64>,
    lines: &HashMap<i64, Vec<order_items::Model>>,
) -> Result<ClaimedEvent, RepositoryError> {
    let id = event.id;
    // The foreign keys make a missing order or customer impossible; finding one means the
    // data is broken.
    let order = orders.get(&event.order_id).cloned().ok_or_else(|| {
        corrupt_row(format!(
            "outbox event {id} refers to order {}, which does not exist",
            event.order_id
        ))
    })?;
    let telegram_id = customers.get(&order.user_id).copied().ok_or_else(|| {
        corrupt_row(format!(
            "order {} belongs to user {}, who does not exist",
            order.id, order.user_id
        ))
    })?;
    let customer = TelegramId::parse(telegram_id).map_err(|err| {
        corrupt_row(format!(
            "user {} has an invalid telegram id: {err}",
            order.user_id
        ))
    })?;
    let attempts = u32::try_from(event.attempts)
        .map_err(|err| corrupt_row(format!("outbox event {id} has invalid attempts: {err}")))?;
    // Cloned rather than taken: once there are other kinds, one batch may hold several
    // events of one order.
    let items = lines.get(&order.id).cloned().unwrap_or_default();
    Ok(ClaimedEvent {
        id: EventId(id),
        token: ClaimToken::new(event.claim_token),
        attempts,
        notification: OrderPlaced {
            order: order_from_rows(order, items)?,
            customer,
        },
    })
}
