//! Opening the pool.

use infra_postgres::test_support::TestDatabase;
use infra_postgres::{BackupError, Database, PoolOptions};
use sea_orm::{ConnectionTrait, Statement};

use crate::support::{category, seed};

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

#[tokio::test]
async fn a_sqlite_backup_is_a_consistent_copy_taken_while_the_pool_is_open() {
    let db = TestDatabase::sqlite().await;
    seed(&db, &[category("pizza", 1, &[("Маргарита", "450.00", 1)])]).await;
    let products = db.query_i64("SELECT COUNT(*) FROM products").await.unwrap();
    assert_eq!(products, 1);
    let dir = std::env::temp_dir().join(format!(
        "botshop-backup-test-{}-{}",
        std::process::id(),
        products
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let backup = dir.join("copy.db");

    // The pool stays open (and the rows may sit in the write-ahead log) during the backup.
    db.database().backup_sqlite_into(&backup).await.unwrap();
    let error = db.database().backup_sqlite_into(&backup).await.unwrap_err();
    assert!(matches!(error, BackupError::Exists(_)), "{error}");

    let copy = Database::connect(
        &format!("sqlite://{}", backup.display()),
        PoolOptions::default(),
    )
    .await
    .unwrap();
    let row = copy
        .connection()
        .query_one_raw(Statement::from_string(
            copy.connection().get_database_backend(),
            "SELECT name FROM products",
        ))
        .await
        .unwrap()
        .unwrap();
    let name: String = row.try_get_by_index(0).unwrap();
    assert_eq!(name, "Маргарита");
    copy.close().await.unwrap();
    db.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgres_is_not_backed_up_by_the_sqlite_backup() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let file = std::env::temp_dir().join(format!("botshop-never-{}.db", std::process::id()));
    let error = db.database().backup_sqlite_into(&file).await.unwrap_err();
    assert!(matches!(error, BackupError::NotSqlite), "{error}");
    assert!(error.to_string().contains("pg_dump"));
    assert!(!file.exists());
    db.cleanup().await;
}

/// Text searches run on a pool of their own whose statements are planned once per
/// connection; every other statement keeps PostgreSQL's default planning. SQLite has one
/// pool.
#[tokio::test]
async fn searches_have_a_pool_of_their_own_with_generic_plans_on_postgres() {
    let sqlite = TestDatabase::sqlite().await;
    assert!(sqlite.database().search_connection().is_none());
    sqlite.cleanup().await;
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let setting = |connection: &sea_orm::DatabaseConnection| {
        let connection = connection.clone();
        async move {
            connection
                .query_one_raw(Statement::from_string(
                    sea_orm::DatabaseBackend::Postgres,
                    "SELECT current_setting('plan_cache_mode') AS mode",
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get::<String>("", "mode")
                .unwrap()
        }
    };
    let search = db.database().search_connection().unwrap();
    assert_eq!(setting(search).await, "force_generic_plan");
    assert_eq!(setting(db.database().connection()).await, "auto");
    assert_eq!(infra_postgres::search_connections(20), 5);
    assert_eq!(infra_postgres::search_connections(4), 2);
    db.cleanup().await;
}
