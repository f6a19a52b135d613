//! The hot PostgreSQL statements, run on a pooled connection that is handed back before
//! the call returns.
//!
//! Through SeaORM (and sqlx's own pool executor) a connection goes back to the pool when
//! it is dropped, from a task sqlx spawns for it. On a busy actix worker that task runs
//! only after every task queued before it, and meanwhile the connection is neither in use
//! nor available: measured, under 64 concurrent requests a fifth of the machine sat idle
//! while requests waited for connections that were on their way back. Here the request
//! itself awaits the return, which takes no round trip.
//!
//! That takes `PoolConnection::return_to_pool`, which sqlx marks `#[doc(hidden)]`: public,
//! but not part of its documented API. It is kept, deliberately, because the one-statement
//! placement and the one-query orders page are exactly the statements it was measured on
//! (commit 257ac70, 2026-11-26, `bash bench/run.sh` at 64 connections: `POST /orders`
//! went from 2 500 to 3 000–3 100 orders/s with p99 down to 32 ms, and `GET /orders/my`
//! from 3 800–4 200 to 4 400–4 800 req/s). Cargo.lock pins sqlx; if an upgrade removes the
//! method, `drop(connection)` is the fallback (correct, only slower under load), and the
//! test `hot_statements_return_their_connection_before_they_return` (which fails with the
//! connection merely dropped) shows whether a replacement hands it back in time.

use std::sync::Arc;

use sea_orm::sqlx::postgres::PgArguments;
use sea_orm::sqlx::{self, Arguments as _};
use sea_orm::{DatabaseBackend, DatabaseConnection, DbErr, QueryResult, RuntimeErr, Value};

fn driver_error(err: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
}

/// The parameters, in order. Only the types the hot statements bind are supported; any
/// other is a programming error, reported as a query error rather than a panic.
fn arguments(values: Vec<Value>) -> Result<PgArguments, DbErr> {
    let mut arguments = PgArguments::default();
    for value in values {
        let added = match value {
            Value::Bool(value) => arguments.add(value),
            Value::Int(value) => arguments.add(value),
            Value::BigInt(value) => arguments.add(value),
            Value::String(value) => arguments.add(value),
            Value::TimeDateTimeWithTimeZone(value) => arguments.add(value),
            other => {
                return Err(DbErr::Custom(format!(
                    "unsupported parameter type for a hot statement: {other:?}"
                )));
            }
        };
        added.map_err(|err| DbErr::Custom(format!("could not encode a parameter: {err}")))?;
    }
    Ok(arguments)
}

/// Runs `sql` with `values` on a PostgreSQL pool's connection and returns its rows, having
/// handed the connection back to the pool.
pub(crate) async fn fetch_all(
    db: &DatabaseConnection,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<QueryResult>, DbErr> {
    // SeaORM panics when asked for a pool of the other backend.
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Err(DbErr::Custom(
            "a PostgreSQL statement was sent to another database".to_owned(),
        ));
    }
    let arguments = arguments(values)?;
    let mut connection = db
        .get_postgres_connection_pool()
        .acquire()
        .await
        .map_err(driver_error)?;
    let rows = sqlx::query_with(sqlx::AssertSqlSafe(sql), arguments)
        .fetch_all(&mut *connection)
        .await;
    // Back to the pool now, whatever the outcome (a broken connection is closed there).
    connection.return_to_pool().await;
    Ok(rows
        .map_err(driver_error)?
        .into_iter()
        .map(QueryResult::from)
        .collect())
}
