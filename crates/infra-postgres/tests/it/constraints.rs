//! The schema's own guards, checked with raw SQL: they hold even for writes that bypass
//! the domain.

use infra_postgres::test_support::TestDatabase;

use crate::support::{T0, category, count, new_user, one_product, place_order, seed};

contract_tests!(
    a_negative_price_is_rejected,
    an_unknown_order_status_is_rejected,
    a_line_quantity_outside_one_to_one_hundred_is_rejected,
    foreign_keys_are_enforced,
    outbox_events_are_one_known_kind_per_order_and_go_with_it,
    idempotency_keys_belong_to_a_user_and_go_with_their_order,
);

async fn a_negative_price_is_rejected(db: &TestDatabase) {
    seed(db, &[category("pizza", 0, &[("Маргарита", "450", 0)])]).await;
    let result = db.execute("UPDATE products SET price_minor = -1").await;
    let err = result.expect_err("a negative price was accepted");
    assert!(
        format!("{err:#}").contains("ck_products_price_minor_non_negative"),
        "unexpected error: {err:#}"
    );
    assert_eq!(
        db.query_i64("SELECT price_minor FROM products")
            .await
            .unwrap(),
        45_000
    );
}

async fn an_unknown_order_status_is_rejected(db: &TestDatabase) {
    db.execute(
        "INSERT INTO users (telegram_id, created_at, updated_at) \
         VALUES (1, '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')",
    )
    .await
    .unwrap();
    let insert = |status: &str| {
        format!(
            "INSERT INTO orders (user_id, status, total_amount_minor, delivery_address, phone, \
             created_at, updated_at) SELECT id, '{status}', 100, 'ул. Ленина 1', '+79001234567', \
             created_at, updated_at FROM users"
        )
    };
    let err = db
        .execute(&insert("LOST"))
        .await
        .expect_err("status LOST was accepted");
    assert!(
        format!("{err:#}").contains("ck_orders_status_known"),
        "unexpected error: {err:#}"
    );
    assert!(
        db.execute(&insert("pending")).await.is_err(),
        "status pending was accepted"
    );
    assert_eq!(count(db, "orders").await, 0);
    db.execute(&insert("SHIPPED")).await.unwrap();
    // The default is PENDING.
    db.execute(
        "INSERT INTO orders (user_id, total_amount_minor, delivery_address, phone, created_at, \
         updated_at) SELECT id, 100, 'ул. Ленина 1', '+79001234567', created_at, updated_at \
         FROM users",
    )
    .await
    .unwrap();
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM orders WHERE status = 'PENDING'")
            .await
            .unwrap(),
        1
    );
}

async fn a_line_quantity_outside_one_to_one_hundred_is_rejected(db: &TestDatabase) {
    seed(db, &[category("pizza", 0, &[("Маргарита", "450", 0)])]).await;
    db.execute(
        "INSERT INTO users (telegram_id, created_at, updated_at) \
         VALUES (1, '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')",
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO orders (user_id, total_amount_minor, delivery_address, phone, created_at, \
         updated_at) SELECT id, 100, 'ул. Ленина 1', '+79001234567', created_at, updated_at \
         FROM users",
    )
    .await
    .unwrap();
    let line = |quantity: i32| {
        format!(
            "INSERT INTO order_items (order_id, product_id, product_name, quantity, price_minor) \
             SELECT o.id, p.id, p.name, {quantity}, p.price_minor FROM orders o, products p"
        )
    };
    assert!(
        db.execute(&line(0)).await.is_err(),
        "quantity 0 was accepted"
    );
    assert!(
        db.execute(&line(101)).await.is_err(),
        "quantity 101 was accepted"
    );
    db.execute(&line(100)).await.unwrap();
    assert_eq!(count(db, "order_items").await, 1);
}

async fn foreign_keys_are_enforced(db: &TestDatabase) {
    // SQLite ignores foreign keys unless every connection turns them on.
    let orphan = db
        .execute(
            "INSERT INTO products (category_id, name, price_minor, created_at, updated_at) \
             VALUES (9999, 'Сирота', 100, '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')",
        )
        .await;
    assert!(orphan.is_err(), "a product without a category was accepted");

    seed(db, &[category("pizza", 0, &[("Маргарита", "450", 0)])]).await;
    let in_use = db.execute("DELETE FROM categories").await;
    assert!(in_use.is_err(), "a category with products was deleted");
    assert_eq!(count(db, "categories").await, 1);
}

async fn outbox_events_are_one_known_kind_per_order_and_go_with_it(db: &TestDatabase) {
    let product = one_product(db).await;
    let user = new_user(db, 1001).await;
    place_order(db, &user, product, 1, T0).await;
    let insert = |kind: &str, status: &str, attempts: i32| {
        format!(
            "INSERT INTO outbox_events (kind, order_id, status, attempts, next_attempt_at, \
             created_at) SELECT '{kind}', id, '{status}', {attempts}, created_at, created_at \
             FROM orders"
        )
    };

    let twice = db.execute(&insert("order_created", "PENDING", 0)).await;
    assert!(twice.is_err(), "a second order_created event was accepted");
    let unknown_kind = db.execute(&insert("order_shipped", "PENDING", 0)).await;
    let err = unknown_kind.expect_err("kind order_shipped was accepted");
    assert!(
        format!("{err:#}").contains("ck_outbox_events_kind_known"),
        "unexpected error: {err:#}"
    );
    // Updating the existing event, so that only the CHECKs can object.
    let status = db.execute("UPDATE outbox_events SET status = 'LOST'").await;
    let err = status.expect_err("status LOST was accepted");
    assert!(
        format!("{err:#}").contains("ck_outbox_events_status_known"),
        "unexpected error: {err:#}"
    );
    let attempts = db.execute("UPDATE outbox_events SET attempts = -1").await;
    let err = attempts.expect_err("negative attempts were accepted");
    assert!(
        format!("{err:#}").contains("ck_outbox_events_attempts_non_negative"),
        "unexpected error: {err:#}"
    );
    let orphan = db
        .execute(
            "INSERT INTO outbox_events (kind, order_id, next_attempt_at, created_at) \
             VALUES ('order_created', 9999, '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')",
        )
        .await;
    assert!(orphan.is_err(), "an event without an order was accepted");
    assert_eq!(count(db, "outbox_events").await, 1);

    // An event means nothing without its order.
    db.execute("DELETE FROM orders").await.unwrap();
    assert_eq!(count(db, "outbox_events").await, 0);
}

async fn idempotency_keys_belong_to_a_user_and_go_with_their_order(db: &TestDatabase) {
    let product = one_product(db).await;
    let user = new_user(db, 1001).await;
    let order = place_order(db, &user, product, 1, T0).await;
    let insert = |user_id: i64, key: &str, order_id: &str, status: &str| {
        format!(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, order_id, \
             response_status, created_at, claimed_at) VALUES ({user_id}, '{key}', \
             {hash}, {order_id}, {status}, '2025-01-01T00:00:00.000000Z', \
             '2025-01-01T00:00:00.000000Z')",
            hash = if db.is_sqlite() { "X'00'" } else { "'\\x00'" },
        )
    };

    let orphan = db.execute(&insert(9_999, "a", "NULL", "NULL")).await;
    assert!(orphan.is_err(), "a key without a user was accepted");
    let no_order = db.execute(&insert(user.id.0, "a", "9999", "NULL")).await;
    assert!(
        no_order.is_err(),
        "a key naming a missing order was accepted"
    );
    let status = db.execute(&insert(user.id.0, "a", "NULL", "99")).await;
    let err = status.expect_err("status 99 was accepted");
    assert!(
        format!("{err:#}").contains("ck_idempotency_keys_response_status_range"),
        "unexpected error: {err:#}"
    );
    db.execute(&insert(user.id.0, "a", &order.id.0.to_string(), "201"))
        .await
        .unwrap();
    let twice = db.execute(&insert(user.id.0, "a", "NULL", "NULL")).await;
    assert!(twice.is_err(), "a user's key was stored twice");
    assert_eq!(count(db, "idempotency_keys").await, 1);

    // A key that names an order means nothing without it.
    db.execute("DELETE FROM orders").await.unwrap();
    assert_eq!(count(db, "idempotency_keys").await, 0);
}
