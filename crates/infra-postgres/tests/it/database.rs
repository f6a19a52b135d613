//! Opening the pool.

use infra_postgres::test_support::TestDatabase;
use sea_orm::{ConnectionTrait, Statement};

#[tokio::test]
async fn sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys() {
    // `TestDatabase::sqlite` connects to a file that does not exist yet.
    let db = TestDatabase::sqlite().await;
    let connection = db.database().connection();
    let journal_mode: String = connection
        .query_one_raw(Statement::from_string(
            connection.get_database_backend(),
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    assert_eq!(journal_mode, "wal");
    assert_eq!(db.query_i64("PRAGMA foreign_keys").await.unwrap(), 1);
    assert!(db.query_i64("PRAGMA busy_timeout").await.unwrap() >= 5_000);
    db.cleanup().await;
}

#[tokio::test]
async fn a_healthy_database_answers_ping() {
    let db = TestDatabase::sqlite().await;
    db.database().ping().await.unwrap();
    assert!(db.database().is_sqlite());
    db.cleanup().await;

    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    db.database().ping().await.unwrap();
    assert!(!db.database().is_sqlite());
    db.cleanup().await;
}
