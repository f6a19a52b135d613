//! The migrations go up, down (reversing every step) and up again on both backends.

use infra_postgres::test_support::TestDatabase;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Statement};

use crate::support::{count, new_user};

contract_tests!(every_step_goes_down_and_up_again);

/// The tables and indexes of our schema (not the migrator's bookkeeping, nor the
/// indexes backing primary keys and UNIQUE constraints), sorted.
async fn schema_objects(db: &TestDatabase) -> Vec<String> {
    let sql = if db.is_sqlite() {
        "SELECT type || ' ' || name AS object FROM sqlite_master \
         WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' \
         AND name <> 'seaql_migrations' ORDER BY object"
    } else {
        "SELECT 'table ' || table_name AS object FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name <> 'seaql_migrations' \
         UNION ALL \
         SELECT 'index ' || indexname FROM pg_indexes \
         WHERE schemaname = 'public' AND indexname LIKE 'idx_%' \
         ORDER BY object"
    };
    let connection = db.database().connection();
    connection
        .query_all_raw(Statement::from_string(
            connection.get_database_backend(),
            sql,
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.try_get::<String>("", "object").unwrap())
        .collect()
}

async fn every_step_goes_down_and_up_again(db: &TestDatabase) {
    let connection = db.database().connection();
    let full = [
        "index idx_order_items_order_id",
        "index idx_orders_user_id_created_at",
        "index idx_outbox_events_status_next_attempt_at",
        "index idx_products_category_id_sort_order",
        "table categories",
        "table order_items",
        "table orders",
        "table outbox_events",
        "table products",
        "table users",
    ];
    assert_eq!(schema_objects(db).await, full);
    new_user(db, 1).await;

    Migrator::down(connection, Some(1)).await.unwrap();
    assert_eq!(
        schema_objects(db).await,
        [
            "index idx_order_items_order_id",
            "index idx_orders_user_id_created_at",
            "index idx_products_category_id_sort_order",
            "table categories",
            "table order_items",
            "table orders",
            "table products",
            "table users",
        ]
    );
    Migrator::down(connection, Some(1)).await.unwrap();
    assert_eq!(
        schema_objects(db).await,
        [
            "index idx_products_category_id_sort_order",
            "table categories",
            "table products",
            "table users",
        ]
    );
    Migrator::down(connection, Some(1)).await.unwrap();
    assert_eq!(schema_objects(db).await, ["table users"]);
    Migrator::down(connection, Some(1)).await.unwrap();
    assert!(schema_objects(db).await.is_empty());
    assert!(
        Migrator::get_applied_migrations(connection)
            .await
            .unwrap()
            .is_empty()
    );

    Migrator::up(connection, None).await.unwrap();
    assert_eq!(schema_objects(db).await, full);
    assert_eq!(
        Migrator::get_pending_migrations(connection)
            .await
            .unwrap()
            .len(),
        0
    );
    // The schema works again, from empty tables.
    assert_eq!(count(db, "users").await, 0);
    new_user(db, 1).await;
    assert_eq!(count(db, "users").await, 1);
}
