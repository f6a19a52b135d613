//! [`IdempotencyStore`] over SQL: the `idempotency_keys` table.
//!
//! A row is a key in one of three states: *in progress* (no order, no response), *placed*
//! (`order_id` set by the order's own transaction, see `crate::orders`) and *completed*
//! (the response stored). Every transition that two requests could race for is a single
//! conditional statement whose condition is the state it leaves, so of two racers exactly
//! one changes the row: on PostgreSQL the second waits for the first's row lock and then
//! re-checks its condition against the row the first wrote; on SQLite writers take turns.

use async_trait::async_trait;
use domain::idempotency::{
    IN_PROGRESS_LEASE, IdempotencyKey, KEY_TTL, KeyClaim, RequestFingerprint, StoredResponse,
};
use domain::ports::IdempotencyStore;
use domain::{OrderId, RepositoryError, UserId};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, Statement};
use time::OffsetDateTime;

use crate::entities::idempotency_keys::{self, Column};
use crate::error::{corrupt_row, repository_error};
use crate::store::{SqlStore, timestamp_value};

/// Claims a new key, or an expired one, in one statement: `$1` user, `$2` key, `$3`
/// fingerprint, `$4` now, `$5` the expiry cutoff (now − [`KEY_TTL`]). Returns a row exactly
/// when this request now owns the key.
///
/// An expired key is replaced whatever it held, even another request's fingerprint:
/// it is treated as if it had been purged, so that the answer never depends on when the
/// purge last ran. Concurrent first claims are decided by the primary key: the losers
/// wait for the winner's insert, find its row too young to replace and return nothing.
const CLAIM_SQL: &str = r#"
INSERT INTO "idempotency_keys" ("user_id", "key", "request_hash", "created_at", "claimed_at")
VALUES ($1, $2, $3, $4, $4)
ON CONFLICT ("user_id", "key") DO UPDATE SET
    "request_hash" = "excluded"."request_hash",
    "order_id" = NULL,
    "response_status" = NULL,
    "response_body" = NULL,
    "created_at" = "excluded"."created_at",
    "claimed_at" = "excluded"."claimed_at"
WHERE "idempotency_keys"."created_at" < $5
RETURNING "user_id"
"#;

/// How many times a claim starts over when the key vanished between its statements (its
/// request released it). Each round is a different request finishing, so a few suffice.
const CLAIM_ROUNDS: u32 = 3;

#[async_trait]
impl IdempotencyStore for SqlStore {
    async fn claim(
        &self,
        user: UserId,
        key: &IdempotencyKey,
        fingerprint: RequestFingerprint,
        now: OffsetDateTime,
    ) -> Result<KeyClaim, RepositoryError> {
        for _ in 0..CLAIM_ROUNDS {
            if self
                .insert_or_replace_expired(user, key, fingerprint, now)
                .await?
            {
                return Ok(KeyClaim::Claimed);
            }
            let Some(row) = idempotency_keys::Entity::find_by_id((user.0, key.as_str().to_owned()))
                .one(&self.db)
                .await
                .map_err(|err| repository_error(err, "failed to read an idempotency key"))?
            else {
                // Released since the insert found it: claim it afresh.
                continue;
            };
            if row.request_hash != fingerprint.0 {
                return Ok(KeyClaim::Mismatch);
            }
            if let Some(status) = row.response_status {
                let status = u16::try_from(status).map_err(|err| {
                    corrupt_row(format!("an idempotency key has an invalid status: {err}"))
                })?;
                return Ok(KeyClaim::Replay(StoredResponse {
                    status,
                    body: row.response_body.unwrap_or_default(),
                }));
            }
            if let Some(order_id) = row.order_id {
                return Ok(KeyClaim::OrderPlaced(OrderId(order_id)));
            }
            return if self
                .take_over_abandoned(user, key, fingerprint, now)
                .await?
            {
                Ok(KeyClaim::Claimed)
            } else {
                // Either its request is alive, or it has just placed its order or
                // been taken over by another retry: all three are "still running" to
                // this request, whose retry will see the outcome.
                Ok(KeyClaim::InProgress)
            };
        }
        // The key keeps vanishing under this request: others are using it right now.
        Ok(KeyClaim::InProgress)
    }

    async fn complete(
        &self,
        user: UserId,
        key: &IdempotencyKey,
        response: StoredResponse,
    ) -> Result<(), RepositoryError> {
        let update = Query::update()
            .table(idempotency_keys::Entity)
            .value(Column::ResponseStatus, i32::from(response.status))
            .value(Column::ResponseBody, response.body)
            .and_where(Column::UserId.eq(user.0))
            .and_where(Column::Key.eq(key.as_str()))
            .to_owned();
        let result = self
            .db
            .execute(&update)
            .await
            .map_err(|err| repository_error(err, "failed to store an idempotent response"))?;
        if result.rows_affected() == 0 {
            // Purged while its request ran (a day later): a retry is simply a new request.
            tracing::warn!("an idempotency key was gone when its response was stored");
        }
        Ok(())
    }

    async fn release(&self, user: UserId, key: &IdempotencyKey) -> Result<(), RepositoryError> {
        // The condition is what keeps a placed order from being placed again.
        let delete = Query::delete()
            .from_table(idempotency_keys::Entity)
            .and_where(Column::UserId.eq(user.0))
            .and_where(Column::Key.eq(key.as_str()))
            .and_where(Column::OrderId.is_null())
            .to_owned();
        self.db
            .execute(&delete)
            .await
            .map_err(|err| repository_error(err, "failed to release an idempotency key"))?;
        Ok(())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, RepositoryError> {
        let cutoff = timestamp_value(self.backend(), now.saturating_sub(KEY_TTL));
        let delete = Query::delete()
            .from_table(idempotency_keys::Entity)
            .and_where(Column::CreatedAt.lt(cutoff))
            .to_owned();
        let result = self
            .db
            .execute(&delete)
            .await
            .map_err(|err| repository_error(err, "failed to purge expired idempotency keys"))?;
        Ok(result.rows_affected())
    }
}

impl SqlStore {
    /// Whether [`CLAIM_SQL`] gave the key to this request.
    async fn insert_or_replace_expired(
        &self,
        user: UserId,
        key: &IdempotencyKey,
        fingerprint: RequestFingerprint,
        now: OffsetDateTime,
    ) -> Result<bool, RepositoryError> {
        let backend = self.backend();
        let statement = Statement::from_sql_and_values(
            backend,
            CLAIM_SQL,
            [
                user.0.into(),
                key.as_str().into(),
                fingerprint.0.to_vec().into(),
                timestamp_value(backend, now),
                timestamp_value(backend, now.saturating_sub(KEY_TTL)),
            ],
        );
        let claimed = self
            .db
            .query_one_raw(statement)
            .await
            .map_err(|err| repository_error(err, "failed to claim an idempotency key"))?;
        Ok(claimed.is_some())
    }

    /// Takes over a key whose request died: same request, no order, no response, claimed
    /// longer than [`IN_PROGRESS_LEASE`] ago. The condition is re-checked by the update
    /// itself, so of two retries racing for it only the first wins: the second finds a
    /// fresh claim.
    async fn take_over_abandoned(
        &self,
        user: UserId,
        key: &IdempotencyKey,
        fingerprint: RequestFingerprint,
        now: OffsetDateTime,
    ) -> Result<bool, RepositoryError> {
        let backend = self.backend();
        let update = Query::update()
            .table(idempotency_keys::Entity)
            .value(Column::ClaimedAt, timestamp_value(backend, now))
            .and_where(Column::UserId.eq(user.0))
            .and_where(Column::Key.eq(key.as_str()))
            .and_where(Column::RequestHash.eq(fingerprint.0.to_vec()))
            .and_where(Column::OrderId.is_null())
            .and_where(Column::ResponseStatus.is_null())
            .and_where(Expr::col(Column::ClaimedAt).lt(timestamp_value(
                backend,
                now.saturating_sub(IN_PROGRESS_LEASE),
            )))
            .to_owned();
        let result = self
            .db
            .execute(&update)
            .await
            .map_err(|err| repository_error(err, "failed to take over an idempotency key"))?;
        Ok(result.rows_affected() == 1)
    }
}
