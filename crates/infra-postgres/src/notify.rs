//! Catalog changes seen by every instance: a change made through one instance's admin
//! API is announced with PostgreSQL's `NOTIFY` in the change's own transaction (so it is
//! delivered when, and only when, the change commits), and every instance listens and
//! drops the cached answers it made stale. SQLite runs one instance: its HTTP API drops
//! the answers its own catalog edits and orders made stale, and every cancellation (from
//! the API, a manager's button or an unpaid order's expiry) is also told, once committed,
//! through a channel of the process.

use std::sync::Arc;
use std::time::Duration;

use domain::catalog_admin::CatalogChange;
use domain::{ProductId, RepositoryError};
use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use tokio::sync::{broadcast, watch};

use crate::database::Database;
use crate::error::repository_error;

/// The channel catalog changes are announced on.
pub const CATALOG_CHANNEL: &str = "botshop_catalog";

/// The most product ids one announcement names; beyond, it says "everything" (a NOTIFY
/// payload is limited to 8 000 bytes).
const MAX_NAMED_PRODUCTS: usize = 500;

/// Announces `change` to every instance when the caller's transaction commits (PostgreSQL;
/// nothing on SQLite).
pub(crate) async fn announce<C: ConnectionTrait>(
    connection: &C,
    change: &CatalogChange,
) -> Result<(), RepositoryError> {
    if connection.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    connection
        .execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CATALOG_CHANNEL.into(), payload(change).into()],
        ))
        .await
        .map_err(|err| repository_error(err, "failed to announce a catalog change"))?;
    Ok(())
}

/// `*` for everything, `p:1,2,3` for products.
fn payload(change: &CatalogChange) -> String {
    match change {
        CatalogChange::Products(ids) if !ids.is_empty() && ids.len() <= MAX_NAMED_PRODUCTS => {
            let ids: Vec<String> = ids.iter().map(|id| id.0.to_string()).collect();
            format!("p:{}", ids.join(","))
        }
        _ => "*".to_owned(),
    }
}

/// The change a payload announces; anything unreadable counts as everything.
fn parse(payload: &str) -> CatalogChange {
    let Some(ids) = payload.strip_prefix("p:") else {
        return CatalogChange::Everything;
    };
    let ids: Result<Vec<ProductId>, _> = ids
        .split(',')
        .map(|id| id.parse::<i64>().map(ProductId))
        .collect();
    match ids {
        Ok(ids) if !ids.is_empty() => CatalogChange::Products(ids),
        _ => CatalogChange::Everything,
    }
}

/// Follows the catalog changes every instance announces, handing each to `on_change`,
/// until `stop` turns `true`. On SQLite, the cancellations this process commits instead.
///
/// Whenever the listening connection is (re)established, and whenever it was lost,
/// `on_change` gets [`CatalogChange::Everything`]: announcements made meanwhile were not
/// heard.
pub async fn follow_catalog_changes(
    database: Database,
    on_change: Arc<dyn Fn(CatalogChange) + Send + Sync>,
    mut stop: watch::Receiver<bool>,
) {
    if database.connection().get_database_backend() != DatabaseBackend::Postgres {
        follow_local_changes(&database, on_change.as_ref(), stop).await;
        return;
    }
    let pool = database.connection().get_postgres_connection_pool().clone();
    loop {
        if *stop.borrow() {
            return;
        }
        let listening = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CATALOG_CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        let listened = tokio::select! {
            _ = stopped(&mut stop) => return,
            listening = listening => listening,
        };
        let mut listener = match listened {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for catalog changes; trying again");
                if pause(&mut stop).await {
                    return;
                }
                continue;
            }
        };
        on_change(CatalogChange::Everything);
        loop {
            let received = tokio::select! {
                _ = stopped(&mut stop) => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => on_change(parse(notification.payload())),
                // The connection was lost; the next receive reconnects.
                Ok(None) => {
                    tracing::warn!("the catalog listener lost its connection; reconnecting");
                    on_change(CatalogChange::Everything);
                }
                Err(error) => {
                    tracing::warn!(%error, "the catalog listener failed; reconnecting");
                    on_change(CatalogChange::Everything);
                    if pause(&mut stop).await {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// SQLite: the cancellations this process commits, until `stop` turns `true`.
async fn follow_local_changes(
    database: &Database,
    on_change: &(dyn Fn(CatalogChange) + Send + Sync),
    mut stop: watch::Receiver<bool>,
) {
    let Some(mut changes) = database.local_catalog_changes() else {
        return;
    };
    // As on PostgreSQL: from now on nothing is missed.
    on_change(CatalogChange::Everything);
    loop {
        let received = tokio::select! {
            _ = stopped(&mut stop) => return,
            received = changes.recv() => received,
        };
        match received {
            Ok(change) => on_change(change),
            Err(broadcast::error::RecvError::Lagged(_)) => on_change(CatalogChange::Everything),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Waits a second before trying again, or less when stopping: `true` when stopping.
async fn pause(stop: &mut watch::Receiver<bool>) -> bool {
    let slept = tokio::select! {
        _ = stopped(stop) => false,
        _ = tokio::time::sleep(Duration::from_secs(1)) => true,
    };
    !slept || *stop.borrow()
}

/// Resolves when `stop` turns `true` or its sender goes.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_anything_else_is_everything() {
        let products = CatalogChange::Products(vec![ProductId(1), ProductId(22)]);
        assert_eq!(payload(&products), "p:1,22");
        assert_eq!(parse(&payload(&products)), products);
        assert_eq!(
            parse(&payload(&CatalogChange::Everything)),
            CatalogChange::Everything
        );
        let many = CatalogChange::Products((0..1000).map(ProductId).collect());
        assert_eq!(payload(&many), "*");
        for odd in ["", "p:", "p:x", "p:1,,2", "junk"] {
            assert_eq!(parse(odd), CatalogChange::Everything, "{odd}");
        }
    }
}
