//! `OrderRepository` contract.

use domain::order::PlaceOrderError;
use domain::ports::OrderRepository;
use domain::{OrderId, OrderStatus, ProductId, User};
use infra_postgres::test_support::TestDatabase;
use time::Duration;
use time::macros::datetime;

use crate::support::{
    T0, category, count, deactivate, new_order, new_user, page, product_id, rub, seed,
};

contract_tests!(
    place_prices_from_database_prices_exactly,
    placed_lines_are_snapshots_unaffected_by_later_catalog_changes,
    repeated_products_become_one_line_in_draft_order,
    place_with_a_missing_product_writes_nothing,
    place_with_an_inactive_product_writes_nothing,
    list_for_user_is_newest_first_paginated_and_only_theirs,
    find_for_user_hides_other_customers_orders,
);

/// Two products priced 0.10 and 19.99, and a customer.
async fn shop(db: &TestDatabase) -> (User, ProductId, ProductId) {
    seed(
        db,
        &[category(
            "sweets",
            0,
            &[
                ("Ириска", "0.10", 0),
                ("Шоколад", "19.99", 1),
                ("Зефир", "5", 2),
            ],
        )],
    )
    .await;
    let user = new_user(db, 1001).await;
    (
        user,
        product_id(db, "Ириска").await,
        product_id(db, "Шоколад").await,
    )
}

async fn place_prices_from_database_prices_exactly(db: &TestDatabase) {
    let (user, toffee, chocolate) = shop(db).await;
    // Not UTC and finer than a microsecond: the stored instant is UTC, to the microsecond.
    let placed_at = datetime!(2025-02-03 15:04:05.123456789 +03:00);

    let order = db
        .store()
        .place(new_order(&user, &[(toffee, 3), (chocolate, 7)], placed_at))
        .await
        .unwrap();

    // 0.10 × 3 + 19.99 × 7 = 0.30 + 139.93
    assert_eq!(order.total_amount, rub("140.23"));
    assert_eq!(order.total_amount.to_string(), "140.23");
    assert_eq!(order.status, OrderStatus::Pending);
    assert_eq!(order.user_id, user.id);
    assert_eq!(order.delivery_address, "ул. Пушкина, д. 10");
    assert_eq!(order.phone, "+79001234567");
    assert_eq!(order.comment.as_deref(), Some("Домофон не работает"));
    assert_eq!(order.created_at, datetime!(2025-02-03 12:04:05.123456 UTC));
    assert_eq!(order.updated_at, order.created_at);
    let lines: Vec<(ProductId, &str, u32, String)> = order
        .items
        .iter()
        .map(|i| {
            (
                i.product_id,
                i.product_name.as_str(),
                i.quantity,
                i.price.to_string(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (toffee, "Ириска", 3, "0.10".to_owned()),
            (chocolate, "Шоколад", 7, "19.99".to_owned()),
        ]
    );

    // What was returned is exactly what was stored.
    let stored = db
        .store()
        .find_for_user(user.id, order.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, order);
    assert_eq!(
        db.query_i64(&format!(
            "SELECT total_amount_minor FROM orders WHERE id = {}",
            order.id.0
        ))
        .await
        .unwrap(),
        14_023
    );
}

async fn placed_lines_are_snapshots_unaffected_by_later_catalog_changes(db: &TestDatabase) {
    let (user, toffee, chocolate) = shop(db).await;
    let store = db.store();
    let order = store
        .place(new_order(&user, &[(chocolate, 2)], T0))
        .await
        .unwrap();

    let rename = format!(
        "UPDATE products SET price_minor = 2599, name = 'Шоколад горький' WHERE id = {}",
        chocolate.0
    );
    db.execute(&rename).await.unwrap();
    deactivate(db, chocolate).await;

    let stored = store
        .find_for_user(user.id, order.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, order);
    assert_eq!(stored.items[0].product_name, "Шоколад");
    assert_eq!(stored.items[0].price, rub("19.99"));
    assert_eq!(stored.total_amount, rub("39.98"));

    // A new order is priced at the new price.
    db.execute(&format!(
        "UPDATE products SET is_active = true WHERE id = {}",
        chocolate.0
    ))
    .await
    .unwrap();
    let repriced = store
        .place(new_order(&user, &[(chocolate, 2), (toffee, 1)], T0))
        .await
        .unwrap();
    assert_eq!(repriced.total_amount, rub("52.08"));
    assert_eq!(repriced.items[0].product_name, "Шоколад горький");
}

async fn repeated_products_become_one_line_in_draft_order(db: &TestDatabase) {
    let (user, toffee, chocolate) = shop(db).await;
    // The higher id first: lines keep the customer's order, not the id order.
    let order = db
        .store()
        .place(new_order(
            &user,
            &[(chocolate, 2), (toffee, 1), (chocolate, 3)],
            T0,
        ))
        .await
        .unwrap();

    let lines: Vec<(ProductId, u32)> = order
        .items
        .iter()
        .map(|i| (i.product_id, i.quantity))
        .collect();
    assert_eq!(lines, [(chocolate, 5), (toffee, 1)]);
    assert_eq!(order.total_amount, rub("100.05"));
    assert_eq!(count(db, "order_items").await, 2);
    let stored = db
        .store()
        .find_for_user(user.id, order.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.items, order.items);
}

async fn place_with_a_missing_product_writes_nothing(db: &TestDatabase) {
    let (user, toffee, _) = shop(db).await;
    let result = db
        .store()
        .place(new_order(
            &user,
            &[(ProductId(9_002), 1), (toffee, 1), (ProductId(9_001), 1)],
            T0,
        ))
        .await;

    match result {
        Err(PlaceOrderError::ProductNotFound(ids)) => {
            assert_eq!(ids, [ProductId(9_001), ProductId(9_002)])
        }
        other => panic!("expected ProductNotFound, got {other:?}"),
    }
    assert_eq!(count(db, "orders").await, 0);
    assert_eq!(count(db, "order_items").await, 0);
}

async fn place_with_an_inactive_product_writes_nothing(db: &TestDatabase) {
    let (user, toffee, chocolate) = shop(db).await;
    deactivate(db, chocolate).await;
    let result = db
        .store()
        .place(new_order(&user, &[(toffee, 1), (chocolate, 1)], T0))
        .await;

    match result {
        Err(PlaceOrderError::ProductUnavailable(ids)) => assert_eq!(ids, [chocolate]),
        other => panic!("expected ProductUnavailable, got {other:?}"),
    }
    assert_eq!(count(db, "orders").await, 0);
    assert_eq!(count(db, "order_items").await, 0);
}

async fn list_for_user_is_newest_first_paginated_and_only_theirs(db: &TestDatabase) {
    let (user, toffee, chocolate) = shop(db).await;
    let other = new_user(db, 2002).await;
    let store = db.store();
    let place = |user: &User, lines: &[(ProductId, i64)], at| {
        let (store, order) = (store.clone(), new_order(user, lines, at));
        async move { store.place(order).await.unwrap() }
    };

    let oldest = place(&user, &[(toffee, 1)], T0).await;
    // Placed in the same second as `oldest`, with a fraction: sorts after it.
    let half_second = place(&user, &[(chocolate, 1)], T0 + Duration::milliseconds(500)).await;
    let newest = place(
        &user,
        &[(toffee, 2), (chocolate, 2)],
        T0 + Duration::hours(2),
    )
    .await;
    // The same instant as `newest`: the higher id counts as newer.
    let tie = place(&user, &[(chocolate, 3)], T0 + Duration::hours(2)).await;
    let _others = place(&other, &[(toffee, 9)], T0 + Duration::hours(3)).await;

    let first = store.list_for_user(user.id, page(2, 0)).await.unwrap();
    assert_eq!(first.total, 4);
    assert_eq!(first.items, [tie.clone(), newest.clone()]);

    let second = store.list_for_user(user.id, page(2, 2)).await.unwrap();
    assert_eq!(second.total, 4);
    assert_eq!(second.items, [half_second.clone(), oldest.clone()]);
    assert_eq!(second.items[0].items.len(), 1);

    let all = store.list_for_user(user.id, page(100, 0)).await.unwrap();
    let ids: Vec<OrderId> = all.items.iter().map(|o| o.id).collect();
    assert_eq!(ids, [tie.id, newest.id, half_second.id, oldest.id]);

    let nobody = store
        .list_for_user(domain::UserId(9_999), page(10, 0))
        .await
        .unwrap();
    assert!(nobody.items.is_empty());
    assert_eq!(nobody.total, 0);

    // A page past the end is empty but still knows how many there are.
    let beyond = store.list_for_user(user.id, page(10, 50)).await.unwrap();
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.total, 4);
}

async fn find_for_user_hides_other_customers_orders(db: &TestDatabase) {
    let (user, toffee, _) = shop(db).await;
    let other = new_user(db, 2002).await;
    let store = db.store();
    let order = store
        .place(new_order(&user, &[(toffee, 1)], T0))
        .await
        .unwrap();

    assert_eq!(store.find_for_user(other.id, order.id).await.unwrap(), None);
    assert_eq!(
        store
            .find_for_user(user.id, OrderId(order.id.0 + 1_000))
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .find_for_user(user.id, order.id)
            .await
            .unwrap()
            .is_some()
    );
}

/// The orders page looks up each order's lines by its id, through the
/// `order_items(order_id)` index, rather than leaving the join to the planner. Stale
/// statistics (right after a burst of orders, before autovacuum analyses) made PostgreSQL
/// hash-join a sequential scan of every order line; here the planner is pushed the same
/// way by making nested loops look prohibitively expensive, which the old plain join
/// answers with exactly that plan (this test fails on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orders_page_never_joins_a_scan_of_every_order_line() {
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};

    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let (user, toffee, chocolate) = shop(&db).await;
    let store = db.store();
    for _ in 0..3 {
        store
            .place(new_order(&user, &[(toffee, 1), (chocolate, 2)], T0))
            .await
            .unwrap();
    }
    let sql = infra_postgres::PAGE_WITH_LINES_POSTGRES
        .replace("$1", &user.id.0.to_string())
        .replace("$2", "20")
        .replace("$3", "0");
    let connection = db.database().connection();
    let transaction = connection.begin().await.unwrap();
    transaction
        .execute_unprepared("SET LOCAL enable_nestloop = off")
        .await
        .unwrap();
    let plan: Vec<String> = transaction
        .query_all_raw(Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            format!("EXPLAIN {sql}"),
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "QUERY PLAN").unwrap())
        .collect();
    transaction.rollback().await.unwrap();
    let plan = plan.join("\n");
    // An index scan or a bitmap index scan, for each order of the page.
    assert!(plan.contains("on idx_order_items_order_id"), "{plan}");
    assert!(
        plan.contains("Index Cond: (order_id = orders.id)"),
        "{plan}"
    );
    assert!(!plan.contains("Seq Scan on order_items"), "{plan}");

    // And the page itself is right: three orders of two lines each.
    let listed = store.list_for_user(user.id, page(20, 0)).await.unwrap();
    assert_eq!(listed.total, 3);
    assert!(listed.items.iter().all(|order| order.items.len() == 2));
    db.cleanup().await;
}
