//! [`ExclusiveRoles`] over SQL: on PostgreSQL a transaction-scoped advisory lock, held by
//! a transaction kept open on its own pooled connection for as long as the role is held.
//!
//! The lock goes with the connection: when the instance dies, or its connection breaks,
//! PostgreSQL releases it and another instance can take the role. The holder notices a
//! broken connection at its next [`RoleLease::still_held`]. A transaction (rather than a
//! session lock) makes sure the lock can never outlive the lease on a connection returned
//! to the pool. The open transaction assigns no transaction id and holds no snapshot
//! between statements, so it does not hold back vacuum; a server with
//! `idle_in_transaction_session_timeout` below the holder's check interval would end it
//! (the holder then takes the role again).
//!
//! SQLite runs one instance (see the README): the role is always free there.

use async_trait::async_trait;
use domain::RepositoryError;
use domain::ports::{ExclusiveRoles, RoleLease};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseTransaction, Statement, TransactionTrait};

use crate::error::repository_error;
use crate::store::SqlStore;

#[async_trait]
impl ExclusiveRoles for SqlStore {
    async fn try_take(
        &self,
        role: &'static str,
    ) -> Result<Option<Box<dyn RoleLease>>, RepositoryError> {
        if self.backend() != DatabaseBackend::Postgres {
            return Ok(Some(Box::new(AlwaysHeld)));
        }
        let transaction = self
            .db
            .begin()
            .await
            .map_err(|err| repository_error(err, "failed to open a role's transaction"))?;
        let taken = transaction
            .query_one_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_try_advisory_xact_lock($1) AS taken",
                [role_key(role).into()],
            ))
            .await
            .map_err(|err| repository_error(err, "failed to take a role"))?
            .map(|row| row.try_get::<bool>("", "taken"))
            .transpose()
            .map_err(|err| repository_error(err, "failed to read a role's lock"))?
            .unwrap_or(false);
        if !taken {
            // Nothing was written; a failed rollback only loses the connection.
            let _ = transaction.rollback().await;
            return Ok(None);
        }
        Ok(Some(Box::new(AdvisoryLease {
            transaction: Some(transaction),
        })))
    }
}

/// The advisory lock's key for `role`: a fixed 64-bit FNV-1a hash of `botshop:<role>`, the
/// same in every instance and every version.
fn role_key(role: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "botshop:".bytes().chain(role.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// A role held by PostgreSQL's advisory lock in `transaction`.
struct AdvisoryLease {
    transaction: Option<DatabaseTransaction>,
}

#[async_trait]
impl RoleLease for AdvisoryLease {
    async fn still_held(&mut self) -> bool {
        let Some(transaction) = &self.transaction else {
            return false;
        };
        match transaction.execute_unprepared("SELECT 1").await {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(%error, "a role's database connection failed; the role is lost");
                self.transaction = None;
                false
            }
        }
    }

    async fn release(mut self: Box<Self>) {
        if let Some(transaction) = self.transaction.take() {
            // The rollback ends the transaction and with it the lock.
            let _ = transaction.rollback().await;
        }
    }
}

/// SQLite's role: one instance, always the holder.
struct AlwaysHeld;

#[async_trait]
impl RoleLease for AlwaysHeld {
    async fn still_held(&mut self) -> bool {
        true
    }

    async fn release(self: Box<Self>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_keys_are_fixed_and_distinct() {
        // Pinned: every instance and every version must agree.
        assert_ne!(role_key("telegram-poller"), role_key("payment-expiry"));
        assert_eq!(
            role_key("telegram-poller"),
            i64::from_ne_bytes(0x702a_1351_8be0_47f8_u64.to_ne_bytes())
        );
    }
}
