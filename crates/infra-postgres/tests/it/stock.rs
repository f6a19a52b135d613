//! Limited stock: placing takes it, atomically and never below zero. The PostgreSQL tests
//! race real transactions against each other.

use std::sync::Arc;

use domain::order::{PlaceOrderError, StockShortage};
use domain::ports::{CatalogRepository, OrderRepository};
use domain::{ProductId, User};
use infra_postgres::test_support::TestDatabase;
use tokio::sync::Barrier;

use crate::support::{
    T0, count, new_order, new_user, page, product_id, seed, stock, stocked_category, wide_pool,
};

contract_tests!(
    placing_takes_each_lines_quantity_from_limited_stock,
    exactly_what_is_left_can_be_ordered_and_then_nothing,
    too_much_of_anything_writes_nothing_and_lists_what_is_left,
    quantities_of_one_product_are_summed_before_checking,
    unlimited_products_stay_unlimited,
    listed_products_carry_their_stock,
    a_negative_stock_is_rejected_by_the_database,
);

/// "Ириска" (stock 5), "Шоколад" (unlimited), "Зефир" (stock 1), and a customer.
async fn shop(db: &TestDatabase) -> (User, ProductId, ProductId, ProductId) {
    seed(
        db,
        &[stocked_category(
            "sweets",
            &[
                ("Ириска", "0.10", Some(5)),
                ("Шоколад", "19.99", None),
                ("Зефир", "5", Some(1)),
            ],
        )],
    )
    .await;
    (
        new_user(db, 1001).await,
        product_id(db, "Ириска").await,
        product_id(db, "Шоколад").await,
        product_id(db, "Зефир").await,
    )
}

/// Nothing of a refused order was written: no order, no line, no event, and stock as
/// it was.
async fn assert_nothing_written(db: &TestDatabase, stocks: &[(ProductId, Option<i64>)]) {
    assert_eq!(count(db, "orders").await, 0);
    assert_eq!(count(db, "order_items").await, 0);
    assert_eq!(count(db, "outbox_events").await, 0);
    for &(product, expected) in stocks {
        assert_eq!(stock(db, product).await, expected, "stock of {product:?}");
    }
}

async fn placing_takes_each_lines_quantity_from_limited_stock(db: &TestDatabase) {
    let (user, toffee, chocolate, marshmallow) = shop(db).await;
    db.store()
        .place(new_order(
            &user,
            &[(chocolate, 7), (toffee, 2), (marshmallow, 1)],
            T0,
        ))
        .await
        .unwrap();
    assert_eq!(stock(db, toffee).await, Some(3));
    assert_eq!(stock(db, marshmallow).await, Some(0));
    assert_eq!(stock(db, chocolate).await, None);
}

async fn exactly_what_is_left_can_be_ordered_and_then_nothing(db: &TestDatabase) {
    let (user, toffee, _, _) = shop(db).await;
    let store = db.store();
    store
        .place(new_order(&user, &[(toffee, 5)], T0))
        .await
        .unwrap();
    assert_eq!(stock(db, toffee).await, Some(0));

    match store.place(new_order(&user, &[(toffee, 1)], T0)).await {
        Err(PlaceOrderError::InsufficientStock(shortages)) => assert_eq!(
            shortages,
            [StockShortage {
                product_id: toffee,
                requested: 1,
                available: 0
            }]
        ),
        other => panic!("expected InsufficientStock, got {other:?}"),
    }
    assert_eq!(count(db, "orders").await, 1);
    assert_eq!(stock(db, toffee).await, Some(0));
}

async fn too_much_of_anything_writes_nothing_and_lists_what_is_left(db: &TestDatabase) {
    let (user, toffee, chocolate, marshmallow) = shop(db).await;
    let result = db
        .store()
        .place(new_order(
            &user,
            &[(marshmallow, 2), (chocolate, 1), (toffee, 6)],
            T0,
        ))
        .await;
    match result {
        // By product id, whatever the cart's order.
        Err(PlaceOrderError::InsufficientStock(shortages)) => assert_eq!(
            shortages,
            [
                StockShortage {
                    product_id: toffee,
                    requested: 6,
                    available: 5
                },
                StockShortage {
                    product_id: marshmallow,
                    requested: 2,
                    available: 1
                },
            ]
        ),
        other => panic!("expected InsufficientStock, got {other:?}"),
    }
    assert_nothing_written(
        db,
        &[(toffee, Some(5)), (chocolate, None), (marshmallow, Some(1))],
    )
    .await;
}

async fn quantities_of_one_product_are_summed_before_checking(db: &TestDatabase) {
    let (user, toffee, chocolate, _) = shop(db).await;
    let store = db.store();
    // 3 + 3 is more than 5, though each line alone would fit.
    let result = store
        .place(new_order(
            &user,
            &[(toffee, 3), (chocolate, 1), (toffee, 3)],
            T0,
        ))
        .await;
    match result {
        Err(PlaceOrderError::InsufficientStock(shortages)) => assert_eq!(
            shortages,
            [StockShortage {
                product_id: toffee,
                requested: 6,
                available: 5
            }]
        ),
        other => panic!("expected InsufficientStock, got {other:?}"),
    }
    assert_nothing_written(db, &[(toffee, Some(5))]).await;

    let order = store
        .place(new_order(&user, &[(toffee, 2), (toffee, 3)], T0))
        .await
        .unwrap();
    assert_eq!(order.items.len(), 1);
    assert_eq!(order.items[0].quantity, 5);
    assert_eq!(stock(db, toffee).await, Some(0));
}

async fn unlimited_products_stay_unlimited(db: &TestDatabase) {
    let (user, _, chocolate, _) = shop(db).await;
    let store = db.store();
    for _ in 0..3 {
        store
            .place(new_order(&user, &[(chocolate, 100)], T0))
            .await
            .unwrap();
    }
    assert_eq!(stock(db, chocolate).await, None);
}

async fn listed_products_carry_their_stock(db: &TestDatabase) {
    let (_, toffee, chocolate, _) = shop(db).await;
    let store = db.store();
    let listed = store
        .list_products(Default::default(), page(10, 0))
        .await
        .unwrap();
    let stocks: Vec<(&str, Option<u32>)> = listed
        .items
        .iter()
        .map(|p| (p.name.as_str(), p.stock))
        .collect();
    assert_eq!(
        stocks,
        [("Ириска", Some(5)), ("Шоколад", None), ("Зефир", Some(1))]
    );
    let found = store.find_active_product(toffee).await.unwrap().unwrap();
    assert_eq!(found.stock, Some(5));
    let found = store.find_active_product(chocolate).await.unwrap().unwrap();
    assert_eq!(found.stock, None);
}

async fn a_negative_stock_is_rejected_by_the_database(db: &TestDatabase) {
    let (_, toffee, _, _) = shop(db).await;
    let result = db
        .execute(&format!(
            "UPDATE products SET stock = stock - 6 WHERE id = {}",
            toffee.0
        ))
        .await;
    let err = result.expect_err("a negative stock was accepted");
    assert!(
        format!("{err:#}").contains("ck_products_stock_non_negative"),
        "unexpected error: {err:#}"
    );
    assert_eq!(stock(db, toffee).await, Some(5));
    // Zero and NULL are fine.
    db.execute("UPDATE products SET stock = 0").await.unwrap();
    db.execute("UPDATE products SET stock = NULL")
        .await
        .unwrap();
}

/// SQLite's transaction: the conditional update is the last word on stock, even where the
/// read said there was enough: a trigger makes the database skip the update, as a
/// concurrent change would, and the order is refused with nothing written. (PostgreSQL's
/// placement statement takes the stock from rows it has locked itself and judged in the
/// same statement, so nothing can come between its check and its write; the CHECK
/// constraint stands behind both.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_update_that_changes_no_row_writes_nothing_on_sqlite() {
    let database = TestDatabase::sqlite().await;
    let db = &database;
    let (user, toffee, chocolate, marshmallow) = shop(db).await;
    db.execute(
        "CREATE TRIGGER skip_stock BEFORE UPDATE OF stock ON products \
         BEGIN SELECT RAISE(IGNORE); END",
    )
    .await
    .unwrap();

    let result = db
        .store()
        .place(new_order(&user, &[(chocolate, 1), (toffee, 2)], T0))
        .await;
    match result {
        Err(PlaceOrderError::InsufficientStock(shortages)) => assert_eq!(
            shortages,
            [StockShortage {
                product_id: toffee,
                requested: 2,
                available: 5
            }]
        ),
        other => panic!("expected InsufficientStock, got {other:?}"),
    }
    assert_nothing_written(db, &[(toffee, Some(5)), (chocolate, None)]).await;

    // Two limited lines at once: both refused, both listed.
    let result = db
        .store()
        .place(new_order(&user, &[(marshmallow, 1), (toffee, 2)], T0))
        .await;
    match result {
        Err(PlaceOrderError::InsufficientStock(mut shortages)) => {
            shortages.sort_by_key(|s| s.product_id);
            let mut expected = vec![
                StockShortage {
                    product_id: toffee,
                    requested: 2,
                    available: 5,
                },
                StockShortage {
                    product_id: marshmallow,
                    requested: 1,
                    available: 1,
                },
            ];
            expected.sort_by_key(|s| s.product_id);
            assert_eq!(shortages, expected);
        }
        other => panic!("expected InsufficientStock, got {other:?}"),
    }
    assert_nothing_written(db, &[(toffee, Some(5)), (marshmallow, Some(1))]).await;
    database.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_customers_racing_for_ten_units_buy_exactly_ten() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    seed(
        &db,
        &[stocked_category("tickets", &[("Билет", "1000", Some(11))])],
    )
    .await;
    let ticket = product_id(&db, "Билет").await;
    let mut customers = Vec::new();
    for telegram_id in 1..=50 {
        customers.push(new_user(&db, telegram_id).await);
    }
    let pool = wide_pool(&db, 20).await;
    let store = pool.store();
    // One ticket sold first, so that the store knows the product: the race runs through
    // statements priced from a hint whose stock goes stale as the tickets sell.
    let first = new_user(&db, 100).await;
    store
        .place(new_order(&first, &[(ticket, 1)], T0))
        .await
        .unwrap();

    // Every task waits at the barrier, so the placements start together.
    let start = Arc::new(Barrier::new(customers.len()));
    let tasks: Vec<_> = customers
        .iter()
        .map(|customer| {
            let (store, start) = (store.clone(), start.clone());
            let order = new_order(customer, &[(ticket, 1)], T0);
            tokio::spawn(async move {
                start.wait().await;
                store.place(order).await
            })
        })
        .collect();
    let mut placed = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => placed += 1,
            Err(PlaceOrderError::InsufficientStock(shortages)) => {
                assert_eq!(
                    shortages,
                    [StockShortage {
                        product_id: ticket,
                        requested: 1,
                        available: 0
                    }]
                );
                refused += 1;
            }
            Err(other) => panic!("expected an order or InsufficientStock, got {other:?}"),
        }
    }
    assert_eq!((placed, refused), (10, 40));
    assert_eq!(stock(&db, ticket).await, Some(0));
    assert_eq!(count(&db, "orders").await, 11);
    assert_eq!(count(&db, "outbox_events").await, 11);
    let counts = store.placement_counts();
    assert_eq!(
        counts.transactions, 0,
        "every order went through the placement statement: {counts:?}"
    );

    pool.close().await.unwrap();
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn carts_locking_the_same_products_in_opposite_orders_never_deadlock() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    const ROUNDS: i64 = 100;
    seed(
        &db,
        &[stocked_category(
            "sweets",
            &[
                ("Ириска", "0.10", Some(1_000)),
                ("Шоколад", "19.99", Some(1_000)),
            ],
        )],
    )
    .await;
    let (a, b) = (
        product_id(&db, "Ириска").await,
        product_id(&db, "Шоколад").await,
    );
    let (first, second) = (new_user(&db, 1).await, new_user(&db, 2).await);
    let pool = wide_pool(&db, 4).await;
    let store = pool.store();
    // Known products, so that every round's placements are single statements, each
    // locking the products in id order like the transaction does.
    store
        .place(new_order(&first, &[(a, 1), (b, 1)], T0))
        .await
        .unwrap();
    let warmed = store.placement_counts();

    for round in 0..ROUNDS {
        let start = Arc::new(Barrier::new(2));
        let carts = [(&first, [(a, 1), (b, 2)]), (&second, [(b, 1), (a, 2)])];
        let tasks: Vec<_> = carts
            .iter()
            .map(|(customer, cart)| {
                let (store, start) = (store.clone(), start.clone());
                let order = new_order(customer, cart, T0);
                tokio::spawn(async move {
                    start.wait().await;
                    store.place(order).await
                })
            })
            .collect();
        for task in tasks {
            if let Err(err) = task.await.unwrap() {
                panic!("round {round}: a placement failed: {err:?}");
            }
        }
    }
    assert_eq!(stock(&db, a).await, Some(1_000 - 1 - 3 * ROUNDS));
    assert_eq!(stock(&db, b).await, Some(1_000 - 1 - 3 * ROUNDS));
    assert_eq!(count(&db, "orders").await, 1 + 2 * ROUNDS);
    let counts = store.placement_counts();
    assert_eq!(
        (
            counts.reads - warmed.reads,
            counts.statements - warmed.statements,
            counts.refused - warmed.refused
        ),
        (0, 2 * ROUNDS as u64, 0),
        "every racing placement was one statement, none refused or retried"
    );

    pool.close().await.unwrap();
    db.cleanup().await;
}

/// Another transaction (an operator's script) locks the products in the opposite order
/// to a placement. PostgreSQL aborts the placement to break the deadlock; `place` runs its
/// transaction again, and the customer sees an order, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_aborted_by_a_deadlock_is_retried_not_reported() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    seed(
        &db,
        &[stocked_category(
            "sweets",
            &[("Ириска", "0.10", Some(10)), ("Шоколад", "19.99", Some(10))],
        )],
    )
    .await;
    let (a, b) = (
        product_id(&db, "Ириска").await,
        product_id(&db, "Шоколад").await,
    );
    let user = new_user(&db, 1).await;

    // The script takes B first. Its own deadlock check is put off, so that it is the
    // placement (which waits first) that detects the deadlock and is aborted.
    let script = db
        .hold(&format!(
            "SET LOCAL deadlock_timeout = '30s'; \
             SELECT id FROM products WHERE id = {} FOR UPDATE",
            b.0
        ))
        .await
        .unwrap();
    let store = db.store();
    let order = new_order(&user, &[(a, 1), (b, 1)], T0);
    let placement = tokio::spawn(async move { store.place(order).await });

    // Wait until the placement holds A and waits for B.
    db.wait_for_lock_waiters(1)
        .await
        .expect("the placement never waited for the script's lock");

    // Now the script wants A: a deadlock. Its statement succeeds, which shows the
    // placement's transaction was the one aborted.
    script
        .execute(&format!(
            "SELECT id FROM products WHERE id = {} FOR UPDATE",
            a.0
        ))
        .await
        .expect("the script was aborted instead of the placement");
    script.release().await.unwrap();

    let order = placement
        .await
        .unwrap()
        .expect("the deadlock reached the caller");
    assert_eq!(order.items.len(), 2);
    assert_eq!(stock(&db, a).await, Some(9));
    assert_eq!(stock(&db, b).await, Some(9));
    assert_eq!(count(&db, "orders").await, 1);
    db.cleanup().await;
}
