//! Placing an order. On PostgreSQL: priced by the domain from what earlier placements
//! saw (or a plain read), and written by one statement only when every locked product
//! still has the revision that was priced; otherwise priced again from the locked rows.
//! On SQLite every placement is one transaction. The same behaviour holds on both.

use domain::idempotency::{IdempotencyKey, KeyClaim, RequestFingerprint};
use domain::order::{NewOrder, PlaceOrderError, StockShortage};
use domain::ports::{IdempotencyStore, OrderRepository};
use domain::{ProductId, User};
use infra_postgres::PlacementCounts;
use infra_postgres::test_support::TestDatabase;

use crate::support::{
    T0, count, deactivate, new_order, new_user, product_id, rub, seed, stock, stocked_category,
};

contract_tests!(
    an_order_of_known_products_is_placed_in_one_statement,
    a_price_changed_behind_the_hint_is_charged_at_the_database_price,
    a_product_deactivated_behind_the_hint_is_refused_and_nothing_written,
    a_product_reactivated_behind_the_hint_can_be_ordered,
    a_deleted_product_is_not_found,
    stock_sold_elsewhere_behind_the_hint_is_refused_with_what_is_left,
    a_renamed_product_is_stored_under_its_new_name,
    the_revision_follows_what_pricing_reads_but_not_the_stock,
    an_idempotency_key_is_attached_in_the_same_statement,
    a_key_that_already_placed_an_order_places_no_second_one,
);

/// "Ириска" at 0.10 (stock 5), "Шоколад" at 19.99 (unlimited), and a customer.
async fn shop(db: &TestDatabase) -> (User, ProductId, ProductId) {
    seed(
        db,
        &[stocked_category(
            "sweets",
            &[("Ириска", "0.10", Some(5)), ("Шоколад", "19.99", None)],
        )],
    )
    .await;
    (
        new_user(db, 1001).await,
        product_id(db, "Ириска").await,
        product_id(db, "Шоколад").await,
    )
}

/// The counts after `placements` placements: on PostgreSQL, `reads` plain reads and
/// `statements` statements of which `refused` wrote nothing; on SQLite, one transaction
/// each.
fn expect(
    db: &TestDatabase,
    placements: u64,
    (reads, statements, refused): (u64, u64, u64),
) -> PlacementCounts {
    if db.is_sqlite() {
        PlacementCounts {
            transactions: placements,
            ..PlacementCounts::default()
        }
    } else {
        PlacementCounts {
            reads,
            statements,
            refused,
            transactions: 0,
        }
    }
}

async fn an_order_of_known_products_is_placed_in_one_statement(db: &TestDatabase) {
    let (user, toffee, chocolate) = shop(db).await;
    let store = db.store();
    store
        .place(new_order(&user, &[(toffee, 1)], T0))
        .await
        .unwrap();
    assert_eq!(
        store.placement_counts(),
        expect(db, 1, (1, 1, 0)),
        "no hint yet: a plain read, then the statement"
    );

    let order = store
        .place(new_order(&user, &[(chocolate, 2), (toffee, 3)], T0))
        .await
        .unwrap();
    // The first order read "Ириска"; "Шоколад" is new, so this one reads first too.
    assert_eq!(store.placement_counts(), expect(db, 2, (2, 2, 0)));
    let again = store
        .place(new_order(&user, &[(chocolate, 1), (toffee, 1)], T0))
        .await
        .unwrap();
    assert_eq!(
        store.placement_counts(),
        expect(db, 3, (2, 3, 0)),
        "known products: the statement alone"
    );

    // What it wrote is what the transaction writes: lines in cart order, exact prices,
    // stock taken, the outbox event, and the same order read back.
    assert_eq!(again.total_amount, rub("20.09"));
    assert_eq!(order.total_amount, rub("40.28"));
    let lines: Vec<_> = again
        .items
        .iter()
        .map(|item| (item.product_id, item.product_name.as_str(), item.quantity))
        .collect();
    assert_eq!(lines, [(chocolate, "Шоколад", 1), (toffee, "Ириска", 1)]);
    assert_eq!(stock(db, toffee).await, Some(0));
    assert_eq!(stock(db, chocolate).await, None);
    assert_eq!(count(db, "outbox_events").await, 3);
    let stored = store.find_for_user(user.id, again.id).await.unwrap();
    assert_eq!(stored, Some(again));
}

async fn a_price_changed_behind_the_hint_is_charged_at_the_database_price(db: &TestDatabase) {
    let (user, _, chocolate) = shop(db).await;
    let store = db.store();
    store
        .place(new_order(&user, &[(chocolate, 1)], T0))
        .await
        .unwrap();
    // Changed behind the application's back (an operator, another instance).
    db.execute(&format!(
        "UPDATE products SET price_minor = 2499 WHERE id = {}",
        chocolate.0
    ))
    .await
    .unwrap();

    let order = store
        .place(new_order(&user, &[(chocolate, 2)], T0))
        .await
        .unwrap();
    assert_eq!(order.total_amount, rub("49.98"), "the database's price");
    assert_eq!(order.items[0].price, rub("24.99"));
    assert_eq!(count(db, "orders").await, 2);
    assert_eq!(
        store.placement_counts(),
        expect(db, 2, (1, 3, 1)),
        "the stale hint was refused, and the order priced again from the locked row"
    );

    // The refused statement refreshed the hint: the next order goes through at once.
    let next = store
        .place(new_order(&user, &[(chocolate, 1)], T0))
        .await
        .unwrap();
    assert_eq!(next.total_amount, rub("24.99"));
    assert_eq!(store.placement_counts(), expect(db, 3, (1, 4, 1)));
}

async fn a_product_deactivated_behind_the_hint_is_refused_and_nothing_written(db: &TestDatabase) {
    let (user, toffee, chocolate) = shop(db).await;
    let store = db.store();
    store
        .place(new_order(&user, &[(toffee, 1), (chocolate, 1)], T0))
        .await
        .unwrap();
    deactivate(db, chocolate).await;

    let result = store
        .place(new_order(&user, &[(toffee, 1), (chocolate, 1)], T0))
        .await;
    assert!(
        matches!(&result, Err(PlaceOrderError::ProductUnavailable(ids)) if ids == &[chocolate]),
        "got {result:?}"
    );
    assert_eq!(count(db, "orders").await, 1);
    assert_eq!(count(db, "order_items").await, 2);
    assert_eq!(count(db, "outbox_events").await, 1);
    assert_eq!(stock(db, toffee).await, Some(4), "no stock taken");
}

async fn a_product_reactivated_behind_the_hint_can_be_ordered(db: &TestDatabase) {
    let (user, _, chocolate) = shop(db).await;
    let store = db.store();
    deactivate(db, chocolate).await;
    let refused = store.place(new_order(&user, &[(chocolate, 1)], T0)).await;
    assert!(
        matches!(&refused, Err(PlaceOrderError::ProductUnavailable(ids)) if ids == &[chocolate]),
        "got {refused:?}"
    );
    db.execute(&format!(
        "UPDATE products SET is_active = TRUE WHERE id = {}",
        chocolate.0
    ))
    .await
    .unwrap();

    // The hint still says inactive; only the database may refuse the order.
    let order = store
        .place(new_order(&user, &[(chocolate, 1)], T0))
        .await
        .unwrap();
    assert_eq!(order.total_amount, rub("19.99"));
    assert_eq!(count(db, "orders").await, 1);
    assert_eq!(
        store.placement_counts(),
        expect(db, 2, (2, 1, 0)),
        "the hint's refusal was checked with a plain read"
    );
}

async fn a_deleted_product_is_not_found(db: &TestDatabase) {
    let (user, toffee, chocolate) = shop(db).await;
    let store = db.store();
    store
        .place(new_order(&user, &[(toffee, 1), (chocolate, 1)], T0))
        .await
        .unwrap();
    // A product no order refers to can be deleted; the hint still has it.
    db.execute(&format!(
        "DELETE FROM order_items WHERE product_id = {}",
        chocolate.0
    ))
    .await
    .unwrap();
    db.execute(&format!("DELETE FROM products WHERE id = {}", chocolate.0))
        .await
        .unwrap();

    let result = store
        .place(new_order(&user, &[(toffee, 1), (chocolate, 1)], T0))
        .await;
    assert!(
        matches!(&result, Err(PlaceOrderError::ProductNotFound(ids)) if ids == &[chocolate]),
        "got {result:?}"
    );
    assert_eq!(count(db, "orders").await, 1);
    assert_eq!(stock(db, toffee).await, Some(4), "no stock taken");
}

async fn the_revision_follows_what_pricing_reads_but_not_the_stock(db: &TestDatabase) {
    let (_, toffee, chocolate) = shop(db).await;
    let revision = |product: ProductId| async move {
        db.query_i64(&format!(
            "SELECT revision FROM products WHERE id = {}",
            product.0
        ))
        .await
        .unwrap()
    };
    let id = toffee.0;
    let changes = [
        (
            format!("UPDATE products SET stock = 3 WHERE id = {id}"),
            false,
        ),
        (
            format!("UPDATE products SET description = 'Тянучка' WHERE id = {id}"),
            false,
        ),
        (
            format!("UPDATE products SET price_minor = price_minor WHERE id = {id}"),
            false,
        ),
        (
            format!("UPDATE products SET price_minor = 11 WHERE id = {id}"),
            true,
        ),
        (
            format!("UPDATE products SET name = 'Ириска «Кис-кис»' WHERE id = {id}"),
            true,
        ),
        (
            format!("UPDATE products SET is_active = FALSE WHERE id = {id}"),
            true,
        ),
        (
            format!(
                "UPDATE products SET category_id = category_id, stock = NULL, \
                 is_active = TRUE, price_minor = 12 WHERE id = {id}"
            ),
            true,
        ),
    ];
    let mut seen = vec![revision(toffee).await];
    for (change, bumps) in changes {
        let before = revision(toffee).await;
        db.execute(&change).await.unwrap();
        let after = revision(toffee).await;
        if bumps {
            assert!(after > before, "{change}: {before} -> {after}");
            assert!(!seen.contains(&after), "{change}: {after} was seen before");
            seen.push(after);
        } else {
            assert_eq!(after, before, "{change}");
        }
    }

    // PostgreSQL: a product deleted and inserted again under its old id, with other data,
    // does not come back at a revision a placement may have priced.
    if !db.is_sqlite() {
        let before = revision(chocolate).await;
        db.execute(&format!(
            "WITH gone AS (DELETE FROM products WHERE id = {0} RETURNING *) \
             INSERT INTO products (id, category_id, name, description, price_minor, \
             images, is_active, sort_order, stock, search_text, created_at, updated_at) \
             SELECT id, category_id, name, description, 1, images, is_active, \
             sort_order, stock, search_text, created_at, updated_at FROM gone",
            chocolate.0
        ))
        .await
        .unwrap();
        let after = revision(chocolate).await;
        assert!(
            after != before && !seen.contains(&after),
            "{before} -> {after}"
        );
    }
}

async fn stock_sold_elsewhere_behind_the_hint_is_refused_with_what_is_left(db: &TestDatabase) {
    let (user, toffee, _) = shop(db).await;
    let store = db.store();
    store
        .place(new_order(&user, &[(toffee, 1)], T0))
        .await
        .unwrap();
    // The hint says 4 are left; another instance sold 3 of them.
    db.execute(&format!(
        "UPDATE products SET stock = 1 WHERE id = {}",
        toffee.0
    ))
    .await
    .unwrap();

    let result = store.place(new_order(&user, &[(toffee, 2)], T0)).await;
    match result {
        Err(PlaceOrderError::InsufficientStock(shortages)) => assert_eq!(
            shortages,
            [StockShortage {
                product_id: toffee,
                requested: 2,
                available: 1
            }]
        ),
        other => panic!("expected InsufficientStock, got {other:?}"),
    }
    assert_eq!(stock(db, toffee).await, Some(1));
    assert_eq!(count(db, "orders").await, 1);

    // And the unit that is left can still be bought.
    store
        .place(new_order(&user, &[(toffee, 1)], T0))
        .await
        .unwrap();
    assert_eq!(stock(db, toffee).await, Some(0));
}

async fn a_renamed_product_is_stored_under_its_new_name(db: &TestDatabase) {
    let (user, _, chocolate) = shop(db).await;
    let store = db.store();
    store
        .place(new_order(&user, &[(chocolate, 1)], T0))
        .await
        .unwrap();
    db.execute(&format!(
        "UPDATE products SET name = 'Шоколад горький' WHERE id = {}",
        chocolate.0
    ))
    .await
    .unwrap();

    let order = store
        .place(new_order(&user, &[(chocolate, 1)], T0))
        .await
        .unwrap();
    assert_eq!(order.items[0].product_name, "Шоколад горький");
    let stored = store.find_for_user(user.id, order.id).await.unwrap();
    assert_eq!(stored.unwrap().items[0].product_name, "Шоколад горький");
}

const KEY: &str = "6b0d6f5e-2c57-4d1e-8a3e-5a8f0c2e9d41";

fn keyed(user: &User, lines: &[(ProductId, i64)]) -> NewOrder {
    NewOrder {
        idempotency_key: Some(IdempotencyKey::parse(KEY).unwrap()),
        ..new_order(user, lines, T0)
    }
}

async fn claim_key(db: &TestDatabase, user: &User) {
    let claim = db
        .store()
        .claim(
            user.id,
            &IdempotencyKey::parse(KEY).unwrap(),
            RequestFingerprint::of(b"cart"),
            T0,
        )
        .await
        .unwrap();
    assert!(matches!(claim, KeyClaim::Claimed), "got {claim:?}");
}

async fn an_idempotency_key_is_attached_in_the_same_statement(db: &TestDatabase) {
    let (user, _, chocolate) = shop(db).await;
    let store = db.store();
    store
        .place(new_order(&user, &[(chocolate, 1)], T0))
        .await
        .unwrap();
    claim_key(db, &user).await;

    let order = store.place(keyed(&user, &[(chocolate, 1)])).await.unwrap();
    assert_eq!(store.placement_counts(), expect(db, 2, (1, 2, 0)));
    let attached = db
        .query_i64(&format!(
            "SELECT order_id FROM idempotency_keys WHERE key = '{KEY}'"
        ))
        .await
        .unwrap();
    assert_eq!(attached, order.id.0);
}

async fn a_key_that_already_placed_an_order_places_no_second_one(db: &TestDatabase) {
    let (user, _, chocolate) = shop(db).await;
    let store = db.store();
    claim_key(db, &user).await;
    store.place(keyed(&user, &[(chocolate, 1)])).await.unwrap();

    // A hint for every product now, and the key taken: the statement must write nothing.
    let result = store.place(keyed(&user, &[(chocolate, 1)])).await;
    assert!(
        matches!(result, Err(PlaceOrderError::IdempotencyKeyInUse)),
        "got {result:?}"
    );
    assert_eq!(count(db, "orders").await, 1);
    assert_eq!(count(db, "order_items").await, 1);
    assert_eq!(count(db, "outbox_events").await, 1);
}

/// Places two "Шоколад" once the store knows the product, while another session holds
/// `change` (an UPDATE of "Шоколад", `{id}` standing for its id) uncommitted: the placement's
/// statement waits for the row lock, then the change commits. Returns the database, the
/// store and what the placement returned; `None` without PostgreSQL.
async fn place_while_a_change_holds_the_lock(
    change: &str,
) -> Option<(
    TestDatabase,
    infra_postgres::SqlStore,
    ProductId,
    domain::Order,
)> {
    let db = TestDatabase::postgres().await?;
    let (user, _, chocolate) = shop(&db).await;
    let store = db.store();
    store
        .place(new_order(&user, &[(chocolate, 1)], T0))
        .await
        .unwrap();

    let operator = db
        .hold(&change.replace("{id}", &chocolate.0.to_string()))
        .await
        .unwrap();
    let placing = store.clone();
    let order = new_order(&user, &[(chocolate, 2)], T0);
    let placement = tokio::spawn(async move { placing.place(order).await });
    db.wait_for_lock_waiters(1)
        .await
        .expect("the placement never waited for the operator's lock");
    operator.release().await.unwrap();
    let placed = placement.await.unwrap().unwrap();
    Some((db, store, chocolate, placed))
}

/// Another session makes an unlimited product limited while the placement's statement is
/// already running: the statement's snapshot still says unlimited, but it waits for the
/// row lock and must judge, and take stock from, the row as committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_limited_while_the_statement_waits_for_the_lock_is_taken() {
    let Some((db, store, chocolate, _)) =
        place_while_a_change_holds_the_lock("UPDATE products SET stock = 5 WHERE id = {id}").await
    else {
        return;
    };
    assert_eq!(
        store.placement_counts(),
        PlacementCounts {
            reads: 1,
            statements: 2,
            refused: 0,
            transactions: 0
        },
        "the stock the operator set is enough: the statement placed the order at once"
    );
    assert_eq!(
        stock(&db, chocolate).await,
        Some(3),
        "the order took its units from the stock the operator set"
    );
    db.cleanup().await;
}

/// Another session changes the price while the placement's statement waits for the
/// product's lock: the statement sees the new revision on the locked row and writes
/// nothing, and the order is priced again from that row and placed at the new price.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_changed_while_the_statement_waits_for_the_lock_is_charged() {
    let Some((db, store, _, placed)) = place_while_a_change_holds_the_lock(
        "UPDATE products SET price_minor = 2499 WHERE id = {id}",
    )
    .await
    else {
        return;
    };
    assert_eq!(
        placed.total_amount,
        rub("49.98"),
        "the price the operator set"
    );
    assert_eq!(
        store.placement_counts(),
        PlacementCounts {
            reads: 1,
            statements: 3,
            refused: 1,
            transactions: 0
        },
        "refused once on the new revision, then placed from the locked row"
    );
    assert_eq!(count(&db, "orders").await, 2);
    db.cleanup().await;
}

/// The hot statements (an order of known products, a customer's orders page) hand their
/// connection back before they return, rather than leaving it to a task that a busy
/// worker runs later. On this single-threaded runtime such a task could not have run yet.
#[tokio::test]
async fn hot_statements_return_their_connection_before_they_return() {
    use domain::ports::StorageProbe;

    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let (user, _, chocolate) = shop(&db).await;
    let pool = crate::support::wide_pool(&db, 1).await;
    let store = pool.store();
    store
        .place(new_order(&user, &[(chocolate, 1)], T0))
        .await
        .unwrap();

    // The only connection must come back for this one to start at all.
    store
        .place(new_order(&user, &[(chocolate, 1)], T0))
        .await
        .unwrap();
    assert_eq!(store.placement_counts().statements, 2);
    let stats = pool.pool_stats();
    assert_eq!((stats.in_use, stats.idle), (0, 1), "after placing");

    let page = store
        .list_for_user(user.id, crate::support::page(20, 0))
        .await
        .unwrap();
    assert_eq!(page.total, 2);
    let stats = pool.pool_stats();
    assert_eq!((stats.in_use, stats.idle), (0, 1), "after listing");

    pool.close().await.unwrap();
    db.cleanup().await;
}
