//! Driver failures reach callers as `RepositoryError::Unavailable`.

use std::time::Duration;

use domain::RepositoryError;
use domain::ports::{CatalogRepository, OrderRepository, UserRepository};
use domain::{Page, UserId};
use infra_postgres::test_support::TestDatabase;
use infra_postgres::{Database, PoolOptions};

use crate::support::{T0, profile};

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, RepositoryError>) {
    match result {
        Err(RepositoryError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// Nothing listens on port 1, so every attempt to connect is refused.
#[tokio::test]
async fn an_unreachable_postgres_is_unavailable() {
    let database = Database::connect(
        "postgres://postgres@127.0.0.1:1/botshop",
        PoolOptions {
            connect_lazily: true,
            acquire_timeout: Duration::from_millis(500),
            ..PoolOptions::default()
        },
    )
    .await
    .unwrap();
    let store = database.store();

    assert_unavailable(database.ping().await);
    assert_unavailable(store.list_categories(None, Page::default()).await);
    assert_unavailable(store.upsert(&profile(1, None), T0).await);
    assert_unavailable(store.list_for_user(UserId(1), Page::default()).await);
}

#[tokio::test]
async fn connecting_eagerly_to_an_unreachable_database_fails_at_startup() {
    let result = Database::connect(
        "postgres://postgres@127.0.0.1:1/botshop",
        PoolOptions {
            acquire_timeout: Duration::from_millis(500),
            ..PoolOptions::default()
        },
    )
    .await;
    assert!(result.is_err());
}

#[tokio::test]
async fn a_closed_pool_is_unavailable() {
    let db = TestDatabase::sqlite().await;
    let store = db.store();
    db.database().clone().close().await.unwrap();

    assert_unavailable(store.list_categories(None, Page::default()).await);
    db.cleanup().await;
}

/// The backstop behind input validation: a value PostgreSQL refuses as data (here a NUL in
/// a search, which validation now refuses first) is `InvalidData`, the client's input, not
/// an unknown server fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_postgres_refuses_as_data_is_invalid_data() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let filter = domain::catalog::ProductFilter {
        search: Some("пицца\u{0}".to_owned()),
        ..domain::catalog::ProductFilter::default()
    };
    let result = db.store().list_products(filter, Page::default()).await;
    assert!(
        matches!(result, Err(RepositoryError::InvalidData(_))),
        "got {result:?}"
    );
    db.cleanup().await;
}
