//! The test databases themselves: a test that never reaches `cleanup` (it panicked) still
//! leaves nothing behind.

use std::path::PathBuf;

use infra_postgres::test_support::TestDatabase;

#[tokio::test]
async fn a_dropped_postgres_test_database_is_removed() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let name = db.url().rsplit('/').next().unwrap().to_owned();
    drop(db);

    let Some(probe) = TestDatabase::postgres().await else {
        return;
    };
    let sql = format!("SELECT COUNT(*) FROM pg_database WHERE datname = '{name}'");
    assert_eq!(probe.query_i64(&sql).await.unwrap(), 0);
    probe.cleanup().await;
}

#[tokio::test]
async fn a_dropped_sqlite_test_database_is_removed() {
    let db = TestDatabase::sqlite().await;
    let path = PathBuf::from(db.url().strip_prefix("sqlite://").unwrap());
    assert!(path.exists());
    drop(db);
    assert!(!path.exists());
}
