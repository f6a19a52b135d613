//! Write transactions: begin, run the work, commit, or roll back.

use domain::RepositoryError;
use sea_orm::{
    DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

use crate::error::repository_error;

/// Runs `work` in one write transaction on `db`: commits when it returns `Ok`, rolls back
/// when it returns `Err`, and hands back what it returned.
///
/// - On SQLite the transaction is IMMEDIATE: it takes the write lock up front and queues
///   for it under the busy timeout, instead of failing at once with `SQLITE_BUSY` when
///   another writer got there between its first read and its first write. It also makes
///   this transaction the only writer while it runs. On PostgreSQL it is an ordinary
///   `BEGIN` (READ COMMITTED).
/// - `what` names the transaction in errors and logs, as the object of a verb: "the
///   outbox claim" gives "failed to begin the outbox claim", "failed to commit the outbox
///   claim".
/// - Failing to begin or to commit is returned as a [`RepositoryError`] (so `E` must be
///   convertible from one, as `PlaceOrderError` and `anyhow::Error` are); nothing was
///   written then, or, when the commit's answer was lost, the caller cannot tell.
/// - When `work` fails, its error is returned as is. A rollback that fails too is only
///   logged (a warning): the pool discards a connection whose transaction it cannot end,
///   so nothing was written either way, and `work`'s error is what the caller needs.
///
/// `work` is an async closure borrowing the transaction (and whatever it captures):
///
/// ```text
/// let order = write_transaction(&store.db, "the order transaction", async |transaction| {
///     place_in(transaction, order).await
/// })
/// .await?;
/// ```
pub(crate) async fn write_transaction<T, E>(
    db: &DatabaseConnection,
    what: &'static str,
    work: impl AsyncFnOnce(&DatabaseTransaction) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<RepositoryError>,
{
    let transaction = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await
        .map_err(|err| repository_error(err, format!("failed to begin {what}")))?;
    match work(&transaction).await {
        Ok(value) => {
            transaction
                .commit()
                .await
                .map_err(|err| repository_error(err, format!("failed to commit {what}")))?;
            Ok(value)
        }
        Err(err) => {
            if let Err(rollback) = transaction.rollback().await {
                tracing::warn!(error = %rollback, "failed to roll back {what}");
            }
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::ProductId;
    use domain::order::PlaceOrderError;
    use sea_orm::ConnectionTrait;

    use super::*;
    use crate::test_support::TestDatabase;

    async fn insert_category(
        transaction: &DatabaseTransaction,
        slug: &str,
    ) -> Result<(), RepositoryError> {
        let sql =
            format!("INSERT INTO categories (name, slug, sort_order) VALUES ('x', '{slug}', 1)");
        transaction
            .execute_unprepared(&sql)
            .await
            .map_err(|err| repository_error(err, "failed to insert a category"))?;
        Ok(())
    }

    #[tokio::test]
    async fn work_that_succeeds_is_committed_and_work_that_fails_is_rolled_back() {
        let db = TestDatabase::sqlite().await;
        let store = db.store();
        let slug = String::from("tea");
        // Spawned, so the future must be `Send`, as inside an `#[async_trait]` method; the
        // closure borrows `slug` and returns the ports' own error type.
        let committed = tokio::spawn(async move {
            write_transaction(&store.db, "the test transaction", async |transaction| {
                insert_category(transaction, &slug).await?;
                Ok::<_, PlaceOrderError>(7)
            })
            .await
        })
        .await
        .unwrap();
        assert!(matches!(committed, Ok(7)));

        let store = db.store();
        let failed = write_transaction(&store.db, "the test transaction", async |transaction| {
            insert_category(transaction, "coffee").await?;
            Err::<(), _>(PlaceOrderError::ProductNotFound(vec![ProductId(1)]))
        })
        .await;
        assert!(matches!(failed, Err(PlaceOrderError::ProductNotFound(_))));

        let slugs = db
            .query_i64("SELECT COUNT(*) FROM categories WHERE slug IN ('tea', 'coffee')")
            .await
            .unwrap();
        assert_eq!(slugs, 1, "only the committed work was kept");
        db.cleanup().await;
    }
}
