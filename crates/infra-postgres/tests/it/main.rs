//! The storage adapter against real databases.
//!
//! Most tests are repository contract tests: written once as an `async fn` taking a
//! fresh [`TestDatabase`], and run by [`contract_tests!`] against both PostgreSQL
//! (`postgres::*`, skipped with a note when no PostgreSQL is available, or failed when
//! `BOTSHOP_REQUIRE_POSTGRES=1`) and SQLite (`sqlite::*`).
//!
//! Run the PostgreSQL half with
//! `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo test -p infra-postgres`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Generates, for each named contract `async fn name(db: &TestDatabase)` of the calling
/// module, `postgres::name` and `sqlite::name` tests, each on a fresh database that is
/// removed afterwards.
macro_rules! contract_tests {
    ($($name:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = infra_postgres::test_support::TestDatabase::postgres().await
                    else {
                        return;
                    };
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )+
        }

        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = infra_postgres::test_support::TestDatabase::sqlite().await;
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )+
        }
    };
}

mod admin;
mod catalog;
mod catalog_admin;
mod constraints;
mod database;
mod errors;
mod idempotency;
mod lifecycle;
mod migrations;
mod orders;
mod outbox;
mod payments;
mod placement;
mod relay;
mod roles;
mod search;
mod stats;
mod stock;
mod support;
mod test_support;
mod tree;
mod updates;
mod users;
