//! [`Outbox`] over SQL: the `outbox_events` table.
//!
//! [`OrderRepository::place`](domain::ports::OrderRepository::place) inserts each order's
//! `order_created` event in the order's own transaction (see `crate::orders`), and
//! [`append_outbox_event`] writes any [`OutboxEvent`] inside the caller's transaction;
//! this module moves events through their life.
//!
//! Each row has its `kind`, its `order_id`, its recipient as a chat key (`chat`:
//! `manager_chat` or `user:<telegram id>`, see [`Recipient::chat_key`]) and, for a status
//! change, a JSON `payload` (`{"from": "PENDING", "to": "CONFIRMED", "by": "manager",
//! "manager": 42}`; `by` is `customer`, `manager` or `system`). Holds (`outbox_holds`) are
//! one row per chat key, so a 429 in one chat delays only that chat. `status` is the event's state — [`PENDING`], [`SENT`]
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
use domain::outbox::{
    ChangedBy, ClaimToken, ClaimedEvent, EventId, EventKind, NotReady, Notice, ORDER_CREATED,
    OutboxCounts, OutboxEvent, Recipient, Recorded,
};
use domain::ports::{Notification, OrderPlaced, Outbox, StatusChanged};
use domain::{OrderId, OrderStatus, RepositoryError, TelegramId};
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
/// now, each under a new random token (SQLite; PostgreSQL finds the same events by chat,
/// see [`CLAIM_BY_CHAT_SQL`]). An event is not due while its chat's hold (`outbox_holds`,
/// see [`hold_sql`]) runs: a primary-key probe per candidate, walking the partial index of
/// pending events in id order. SQLite has no row locks and needs none: the statement runs
/// in an IMMEDIATE transaction, and SQLite lets one writer at a time in. (On PostgreSQL,
/// `FOR UPDATE SKIP LOCKED` makes a concurrent claimer skip the rows this one is leasing
/// instead of waiting for them, and PostgreSQL re-checks the condition on rows another
/// claimer has just leased, so that no event is leased twice.)
///
/// `{now}` and `{lease_end}` are the database's clock (see [`database_now`]); on
/// PostgreSQL `now()` is the transaction's start, one instant for the whole claim.
const CLAIM_SQL: &str = r#"
UPDATE "outbox_events" SET "locked_until" = {lease_end}, "claim_token" = {token}
WHERE "id" IN (
    SELECT "e"."id" FROM "outbox_events" AS "e"
    WHERE "e"."status" = 'PENDING'
      AND "e"."next_attempt_at" <= {now}
      AND ("e"."locked_until" IS NULL OR "e"."locked_until" <= {now})
      AND NOT EXISTS (
          SELECT 1 FROM "outbox_holds" AS "h"
          WHERE "h"."chat" = "e"."chat" AND "h"."held_until" > {now}
      )
    ORDER BY "e"."id"
    LIMIT $2
)
RETURNING "id", "kind", "order_id", "chat", "payload", "attempts", "claim_token"
"#;

/// [`CLAIM_SQL`] on PostgreSQL, where a held chat's backlog can grow large (a sale while
/// Telegram holds the manager chat): the same events, found by chat. A skip scan of
/// `idx_outbox_events_pending_chat` (migration 23) visits each chat with pending events
/// once; a held chat is passed over whole (the hold check does not depend on the event,
/// so it gates the chat's scan); each other chat gives its oldest due events, up to the
/// limit; the oldest of those overall are the candidates, twice as many as the limit so
/// that a concurrent claimer's rows leave room; and the oldest candidates this claimer can
/// lock (`FOR UPDATE SKIP LOCKED`, rows another claimer is leasing are skipped, and the
/// conditions are checked again on rows one has just leased) are claimed: the ones the
/// walk in id order would claim, and only those are locked. Its cost grows with the
/// number of chats waiting (one index probe each), not with how many events a held chat
/// has. "Pending" is spelled `NOT IN ('SENT', 'DEAD')`, as that index's predicate is, so
/// that no other index can serve the search (see migration 23), and as an expression no
/// index covers where the candidates are locked, so that they are fetched by id: with
/// statistics taken while nearly every event was sent, the planner would otherwise take
/// an index of pending events for a short one and read the held backlog through it.
const CLAIM_BY_CHAT_SQL: &str = r#"
UPDATE "outbox_events" SET "locked_until" = {lease_end}, "claim_token" = {token}
WHERE "id" IN (
    SELECT "c"."id" FROM "outbox_events" AS "c"
    WHERE "c"."id" IN (
        WITH RECURSIVE "waiting"("chat") AS (
            (SELECT "chat" FROM "outbox_events" WHERE "status" NOT IN ('SENT', 'DEAD') ORDER BY "chat" LIMIT 1)
            UNION ALL
            SELECT (
                SELECT "o"."chat" FROM "outbox_events" AS "o"
                WHERE "o"."status" NOT IN ('SENT', 'DEAD') AND "o"."chat" > "w"."chat"
                ORDER BY "o"."chat" LIMIT 1
            )
            FROM "waiting" AS "w" WHERE "w"."chat" IS NOT NULL
        )
        SELECT "due"."id" FROM "waiting" AS "w"
        CROSS JOIN LATERAL (
            SELECT "e"."id" FROM "outbox_events" AS "e"
            WHERE "e"."status" NOT IN ('SENT', 'DEAD')
              AND "e"."chat" = "w"."chat"
              AND "e"."next_attempt_at" <= {now}
              AND ("e"."locked_until" IS NULL OR "e"."locked_until" <= {now})
              AND NOT EXISTS (
                  SELECT 1 FROM "outbox_holds" AS "h"
                  WHERE "h"."chat" = "w"."chat" AND "h"."held_until" > {now}
              )
            ORDER BY "e"."id"
            LIMIT $2
        ) AS "due"
        WHERE "w"."chat" IS NOT NULL
        ORDER BY "due"."id"
        LIMIT 2 * $2
    )
      AND ("c"."status" || '') = 'PENDING'
      AND "c"."next_attempt_at" <= {now}
      AND ("c"."locked_until" IS NULL OR "c"."locked_until" <= {now})
    ORDER BY "c"."id"
    LIMIT $2
    FOR UPDATE OF "c" SKIP LOCKED
)
RETURNING "id", "kind", "order_id", "chat", "payload", "attempts", "claim_token"
"#;

pub(crate) fn claim_sql(backend: DatabaseBackend) -> String {
    let (sql, token) = match backend {
        DatabaseBackend::Sqlite => (CLAIM_SQL.to_owned(), "lower(hex(randomblob(16)))"),
        _ => (CLAIM_BY_CHAT_SQL.to_owned(), "gen_random_uuid()::text"),
    };
    sql.replace("{lease_end}", &database_now_plus(backend, "$1"))
        .replace("{now}", database_now(backend))
        .replace("{token}", token)
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

/// Holds the chat `$2` (a chat key) for the offset `$1` from the database's now: one row
/// per chat, written only if it moves the hold later. Both backends read `excluded` and a
/// `WHERE` on the update.
fn hold_sql(backend: DatabaseBackend) -> String {
    format!(
        r#"INSERT INTO "outbox_holds" ("chat", "held_until") VALUES ($2, {until})
ON CONFLICT ("chat") DO UPDATE SET "held_until" = excluded."held_until"
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

/// The pending and dead counts and the oldest pending event, each read from a partial
/// index (of pending events: `idx_outbox_events_pending_id`, or on PostgreSQL also
/// `idx_outbox_events_pending_chat`; `idx_outbox_events_dead_id`), never from the sent
/// events that make up the rest of the table. The oldest pending event is the first
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
    kind: String,
    order_id: i64,
    chat: String,
    payload: Option<String>,
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
        then: Option<OutboxEvent>,
    ) -> Result<Recorded, RepositoryError> {
        let statement = update_claimed(id, token)
            .value(Column::Status, DEAD)
            .value(Column::Attempts, stored_attempts(attempts)?)
            .value(Column::LastError, reason)
            .value(Column::DeadAt, Expr::cust(database_now(self.backend())))
            .to_owned();
        let Some(then) = then else {
            return self
                .update_claimed(&statement, "failed to mark an outbox event dead")
                .await;
        };
        // The death and what it leaves to do, together: only while the claim holds.
        write_transaction(&self.db, "an outbox event's death", async |transaction| {
            let marked = transaction
                .execute(&statement)
                .await
                .map_err(|err| repository_error(err, "failed to mark an outbox event dead"))?;
            let recorded = recorded(marked.rows_affected());
            if recorded == Recorded::Done {
                append_outbox_event(transaction, &then).await?;
            }
            Ok(recorded)
        })
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

    async fn hold_chat(
        &self,
        chat: &Recipient,
        wait: std::time::Duration,
    ) -> Result<(), RepositoryError> {
        // One row, not the backlog: a 429 during a rush must not rewrite every waiting event.
        let backend = self.backend();
        let statement = Statement::from_sql_and_values(
            backend,
            hold_sql(backend),
            [offset_value(backend, wait, false), chat.chat_key().into()],
        );
        self.db
            .execute_raw(statement)
            .await
            .map_err(|err| repository_error(err, "failed to hold a chat"))?;
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

/// Leases the due events and loads their notifications: five statements at most however
/// large the batch (the claim, the orders, their lines, their customers, and the
/// manager's messages that updates edit).
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
    let lines = lines_of(transaction, order_ids.clone()).await?;
    let mut user_ids: Vec<i64> = orders.values().map(|order| order.user_id).collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    let customers: HashMap<i64, Customer> = users::Entity::find()
        .select_only()
        .column(users::Column::Id)
        .column(users::Column::TelegramId)
        .column(users::Column::LanguageCode)
        .filter(users::Column::Id.is_in(user_ids))
        .into_tuple::<(i64, i64, Option<String>)>()
        .all(transaction)
        .await
        .map_err(|err| repository_error(err, "failed to load the claimed events' customers"))?
        .into_iter()
        .map(|(id, telegram_id, language_code)| {
            (
                id,
                Customer {
                    telegram_id,
                    language_code,
                },
            )
        })
        .collect();
    // The manager's messages that updates edit: those of the sent `order_created` events
    // of the updates' orders (through the partial unique index of those events).
    let update_orders: Vec<i64> = claimed
        .iter()
        .filter(|event| event.kind == EventKind::ManagerMessageUpdate.as_str())
        .map(|event| event.order_id)
        .collect();
    let manager_messages: HashMap<i64, i64> = if update_orders.is_empty() {
        HashMap::new()
    } else {
        outbox_events::Entity::find()
            .select_only()
            .column(Column::OrderId)
            .column(Column::TelegramMessageId)
            .filter(Column::Kind.eq(ORDER_CREATED))
            .filter(Column::OrderId.is_in(update_orders))
            .filter(Column::Status.eq(SENT))
            .filter(Column::TelegramMessageId.is_not_null())
            .into_tuple::<(i64, i64)>()
            .all(transaction)
            .await
            .map_err(|err| repository_error(err, "failed to load the manager's messages"))?
            .into_iter()
            .collect()
    };
    // The payments that refunds give back.
    let mut refund_payments: Vec<i64> = Vec::new();
    for event in claimed
        .iter()
        .filter(|event| event.kind == EventKind::StarsRefund.as_str())
    {
        if let Ok(payment) = RefundPayload::parse(event.payload.as_deref()) {
            refund_payments.push(payment);
        }
    }
    let payments: HashMap<i64, (i64, String)> = if refund_payments.is_empty() {
        HashMap::new()
    } else {
        crate::entities::payments::Entity::find()
            .select_only()
            .column(crate::entities::payments::Column::Id)
            .column(crate::entities::payments::Column::TelegramUserId)
            .column(crate::entities::payments::Column::TelegramPaymentChargeId)
            .filter(crate::entities::payments::Column::Id.is_in(refund_payments))
            .into_tuple::<(i64, i64, String)>()
            .all(transaction)
            .await
            .map_err(|err| repository_error(err, "failed to load the payments to refund"))?
            .into_iter()
            .map(|(id, user, charge)| (id, (user, charge)))
            .collect()
    };
    let loaded = Loaded {
        orders: &orders,
        customers: &customers,
        lines: &lines,
        manager_messages: &manager_messages,
        payments: &payments,
    };

    let (ready, broken): (Vec<_>, Vec<_>) = claimed
        .into_iter()
        .map(|event| {
            let id = event.id;
            to_claimed_event(event, &loaded).map_err(|err| (id, err))
        })
        .partition(Result::is_ok);
    // One unreadable event must not stop every other notification: it would head every
    // claim for ever. It is made dead, with why, and logged once.
    for (id, err) in broken.into_iter().filter_map(Result::err) {
        let reason = format!("unreadable event: {err:#}");
        tracing::error!(event_id = id, %reason, "notification is dead");
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

/// A customer as notifications need them.
struct Customer {
    telegram_id: i64,
    language_code: Option<String>,
}

/// What a claim loaded for its batch, by id.
struct Loaded<'a> {
    orders: &'a HashMap<i64, orders::Model>,
    customers: &'a HashMap<i64, Customer>,
    lines: &'a HashMap<i64, Vec<order_items::Model>>,
    /// Order id → the Telegram message id of its sent new-order message.
    manager_messages: &'a HashMap<i64, i64>,
    /// Payment id → who paid and the payment's Telegram charge id, for refunds.
    payments: &'a HashMap<i64, (i64, String)>,
}

/// One claimed row with what its kind needs.
fn to_claimed_event(
    event: ClaimedRow,
    loaded: &Loaded<'_>,
) -> Result<ClaimedEvent, RepositoryError> {
    let id = event.id;
    let kind = EventKind::parse(&event.kind)
        .ok_or_else(|| corrupt_row(format!("outbox event {id} has an unknown kind")))?;
    let recipient = Recipient::from_chat_key(&event.chat)
        .ok_or_else(|| corrupt_row(format!("outbox event {id} has an invalid chat key")))?;
    // The foreign keys make a missing order or customer impossible; finding one means the
    // data is broken.
    let order = loaded.orders.get(&event.order_id).cloned().ok_or_else(|| {
        corrupt_row(format!(
            "outbox event {id} refers to order {}, which does not exist",
            event.order_id
        ))
    })?;
    let customer = loaded.customers.get(&order.user_id).ok_or_else(|| {
        corrupt_row(format!(
            "order {} belongs to user {}, who does not exist",
            order.id, order.user_id
        ))
    })?;
    let telegram_id = TelegramId::parse(customer.telegram_id).map_err(|err| {
        corrupt_row(format!(
            "user {} has an invalid telegram id: {err}",
            order.user_id
        ))
    })?;
    let attempts = u32::try_from(event.attempts)
        .map_err(|err| corrupt_row(format!("outbox event {id} has invalid attempts: {err}")))?;
    // Cloned rather than taken: one batch may hold several events of one order.
    let items = loaded.lines.get(&order.id).cloned().unwrap_or_default();
    let order_id = OrderId(order.id);
    let placed = OrderPlaced {
        order: order_from_rows(order, items)?,
        customer: telegram_id,
    };
    let notification = match kind {
        EventKind::OrderCreated => Ok(Notification::NewOrder(placed)),
        EventKind::OrderStatusChanged => {
            let Recipient::Customer(customer_chat) = recipient else {
                return Err(corrupt_row(format!(
                    "status change {id} is not addressed to a customer"
                )));
            };
            let change = StatusChangePayload::parse(event.payload.as_deref())
                .map_err(|err| corrupt_row(format!("outbox event {id}: {err}")))?;
            Ok(Notification::StatusChanged(StatusChanged {
                payment: placed.order.payment,
                customer: customer_chat,
                language_code: customer.language_code.clone(),
                order_id,
                total_amount: placed.order.total_amount,
                from: change.from,
                to: change.to,
                by: change.by,
            }))
        }
        EventKind::ManagerNotice => {
            let notice = NoticePayload::parse(event.payload.as_deref())
                .map_err(|err| corrupt_row(format!("outbox event {id}: {err}")))?;
            Ok(Notification::ManagerNotice {
                notice,
                order: placed,
            })
        }
        EventKind::CustomerNotice => {
            let notice = NoticePayload::parse(event.payload.as_deref())
                .map_err(|err| corrupt_row(format!("outbox event {id}: {err}")))?;
            Ok(Notification::CustomerNotice {
                notice,
                order: placed,
                language_code: customer.language_code.clone(),
            })
        }
        EventKind::StarsRefund => {
            let payment = RefundPayload::parse(event.payload.as_deref())
                .map_err(|err| corrupt_row(format!("outbox event {id}: {err}")))?;
            let (user, charge) = loaded.payments.get(&payment).ok_or_else(|| {
                corrupt_row(format!(
                    "outbox event {id} refunds payment {payment}, which does not exist"
                ))
            })?;
            Ok(Notification::StarsRefund {
                order_id,
                user_id: TelegramId::parse(*user).map_err(|err| {
                    corrupt_row(format!("payment {payment} has an invalid payer: {err}"))
                })?,
                telegram_payment_charge_id: charge.clone(),
            })
        }
        EventKind::ManagerMessageUpdate => match loaded.manager_messages.get(&order_id.0) {
            Some(&message_id) => Ok(Notification::ManagerMessageEdit {
                message_id,
                order: placed,
            }),
            None => Err(NotReady {
                reason: format!(
                    "the manager's message about order {} is not sent yet",
                    order_id.0
                ),
            }),
        },
    };
    Ok(ClaimedEvent {
        id: EventId(id),
        token: ClaimToken::new(event.claim_token),
        attempts,
        kind,
        order_id,
        recipient,
        notification,
    })
}

/// A Stars refund's `payload`: `{"payment": 12}`, the `payments` row to refund.
#[derive(serde::Serialize, serde::Deserialize)]
struct RefundPayload {
    payment: i64,
}

impl RefundPayload {
    fn to_json(payment: i64) -> String {
        format!(r#"{{"payment":{payment}}}"#)
    }

    fn parse(json: Option<&str>) -> Result<i64, String> {
        let json = json.ok_or("a refund without its payload")?;
        serde_json::from_str::<RefundPayload>(json)
            .map(|stored| stored.payment)
            .map_err(|err| format!("an unreadable payload: {err}"))
    }
}

/// A notice's `payload`: `{"notice": "cancelled_by_customer"}`.
#[derive(serde::Serialize, serde::Deserialize)]
struct NoticePayload {
    notice: String,
}

impl NoticePayload {
    fn to_json(notice: Notice) -> Result<String, RepositoryError> {
        serde_json::to_string(&NoticePayload {
            notice: notice.as_str().to_owned(),
        })
        .map_err(|err| RepositoryError::Unknown(anyhow::anyhow!("failed to write a notice: {err}")))
    }

    fn parse(json: Option<&str>) -> Result<Notice, String> {
        let json = json.ok_or("a notice without its payload")?;
        let stored: NoticePayload =
            serde_json::from_str(json).map_err(|err| format!("an unreadable payload: {err}"))?;
        Notice::parse(&stored.notice).ok_or_else(|| "an unknown notice".to_owned())
    }
}

/// A status change's `payload`.
#[derive(Debug, PartialEq, Eq)]
struct StatusChangePayload {
    from: OrderStatus,
    to: OrderStatus,
    by: ChangedBy,
}

/// The payload as JSON; `manager` only when `by` is `manager`.
#[derive(serde::Serialize, serde::Deserialize)]
struct StatusChangeJson {
    from: String,
    to: String,
    by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manager: Option<i64>,
}

impl StatusChangePayload {
    fn to_json(&self) -> Result<String, RepositoryError> {
        let (by, manager) = match self.by {
            ChangedBy::Customer => ("customer", None),
            ChangedBy::Manager(id) => ("manager", Some(id.get())),
            ChangedBy::System => ("system", None),
        };
        serde_json::to_string(&StatusChangeJson {
            from: self.from.as_str().to_owned(),
            to: self.to.as_str().to_owned(),
            by: by.to_owned(),
            manager,
        })
        .map_err(|err| {
            RepositoryError::Unknown(anyhow::anyhow!("failed to write a status change: {err}"))
        })
    }

    fn parse(json: Option<&str>) -> Result<Self, String> {
        let json = json.ok_or("a status change without its payload")?;
        let stored: StatusChangeJson =
            serde_json::from_str(json).map_err(|err| format!("an unreadable payload: {err}"))?;
        let status = |text: &str| text.parse::<OrderStatus>().map_err(|err| err.to_string());
        let by = match (stored.by.as_str(), stored.manager) {
            ("customer", None) => ChangedBy::Customer,
            ("system", None) => ChangedBy::System,
            ("manager", Some(id)) => ChangedBy::Manager(
                TelegramId::parse(id).map_err(|err| format!("an invalid manager id: {err}"))?,
            ),
            _ => return Err("an unknown author of a status change".to_owned()),
        };
        Ok(Self {
            from: status(&stored.from)?,
            to: status(&stored.to)?,
            by,
        })
    }
}

/// Appends `event` to the outbox inside the caller's transaction, on either backend: the
/// event is delivered if and only if that transaction commits, at least once, by whichever
/// server instance's relay claims it first. Returns its id.
///
/// Use it in the transaction of the change that causes the event (a status change writes
/// [`OutboxEvent::OrderStatusChanged`] and [`OutboxEvent::ManagerMessageUpdate`] with the
/// new status), then wake the relay after the commit (the `Notify` the relay was built
/// with) so that it goes out at once rather than at the next poll. The recipient is
/// resolved here: the manager chat, or the order's customer for a status change (read
/// from the order in the same transaction). The event is due at once, by the database's
/// clock.
///
/// # Errors
/// [`RepositoryError`] when the order does not exist, an order's `order_created` event
/// already exists (an order is announced once), or the database fails. The caller's
/// transaction should then be rolled back.
pub async fn append_outbox_event<C: ConnectionTrait>(
    connection: &C,
    event: &OutboxEvent,
) -> Result<EventId, RepositoryError> {
    let backend = connection.get_database_backend();
    let order_id = event.order_id().0;
    let customer = connection
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            r#"SELECT "u"."telegram_id" FROM "orders" AS "o"
JOIN "users" AS "u" ON "u"."id" = "o"."user_id" WHERE "o"."id" = $1"#,
            [order_id.into()],
        ))
        .await
        .map_err(|err| repository_error(err, "failed to read an event's order"))?
        .ok_or_else(|| {
            RepositoryError::Unknown(anyhow::anyhow!(
                "an outbox event for order {order_id}, which does not exist"
            ))
        })?
        .try_get::<i64>("", "telegram_id")
        .map_err(|err| repository_error(err, "failed to read an event's customer"))?;
    let customer = TelegramId::parse(customer)
        .map_err(|err| corrupt_row(format!("the customer of order {order_id}: {err}")))?;
    let payload = match *event {
        OutboxEvent::OrderStatusChanged { from, to, by, .. } => {
            Some(StatusChangePayload { from, to, by }.to_json()?)
        }
        OutboxEvent::ManagerNotice { notice, .. } | OutboxEvent::CustomerNotice { notice, .. } => {
            Some(NoticePayload::to_json(notice)?)
        }
        OutboxEvent::StarsRefund { payment, .. } => Some(RefundPayload::to_json(payment.0)),
        OutboxEvent::OrderCreated { .. } | OutboxEvent::ManagerMessageUpdate { .. } => None,
    };
    let now = database_now(backend);
    let insert = Statement::from_sql_and_values(
        backend,
        format!(
            r#"INSERT INTO "outbox_events" ("kind", "order_id", "chat", "payload", "status", "next_attempt_at", "created_at")
VALUES ($1, $2, $3, $4, 'PENDING', {now}, {now}) RETURNING "id""#
        ),
        [
            event.kind().as_str().into(),
            order_id.into(),
            event.recipient(customer).chat_key().into(),
            payload.into(),
        ],
    );
    let id = connection
        .query_one_raw(insert)
        .await
        .map_err(|err| repository_error(err, "failed to append an outbox event"))?
        .ok_or_else(|| corrupt_row("appending an outbox event returned no id".to_owned()))?
        .try_get::<i64>("", "id")
        .map_err(|err| repository_error(err, "failed to read an appended event's id"))?;
    Ok(EventId(id))
}
