//! `OrderLifecycle`: status changes as compare-and-set, their history, and the stock a
//! cancellation gives back.

use domain::catalog_admin::CatalogChange;
use domain::lifecycle::{
    Applied, ChangeRequest, ChangeStatusError, ChangedBy, Scope, StatusChange, change_status,
};
use domain::outbox::Notice;
use domain::ports::{Notification, OrderLifecycle, OrderRepository, Outbox};
use domain::{OrderId, OrderStatus, TelegramId};
use infra_postgres::test_support::TestDatabase;
use time::Duration;

use crate::support::{
    T0, count, new_order, new_user, place_order, product_id, seed, stock, stocked_category,
};

contract_tests!(
    a_change_moves_the_status_and_writes_its_history,
    a_stale_change_writes_nothing,
    a_cancellation_returns_limited_stock,
    the_customer_scope_sees_only_their_own_orders,
    of_two_concurrent_changes_one_wins,
    a_refresh_asks_for_the_managers_message_to_be_redrawn,
    open_orders_are_the_unfinished_ones_newest_first_with_their_customers,
    a_customers_cancellation_tells_the_manager_with_a_message_of_its_own,
    a_cancellation_is_told_to_every_follower_of_catalog_changes,
    a_failing_event_insert_undoes_the_whole_change,
);

/// A status change is one transaction: when its last write (an outbox event) fails, the
/// status, the history row and the stock given back are all undone.
async fn a_failing_event_insert_undoes_the_whole_change(db: &TestDatabase) {
    seed(
        db,
        &[stocked_category("sweets", &[("Зефир", "90", Some(10))])],
    )
    .await;
    let user = new_user(db, 1001).await;
    let product = product_id(db, "Зефир").await;
    let order = place_order(db, &user, product, 2, T0).await;
    let events = count(db, "outbox_events").await;
    let refuse = if db.is_sqlite() {
        vec![
            "CREATE TRIGGER refuse_outbox_events BEFORE INSERT ON outbox_events \
             BEGIN SELECT RAISE(ABORT, 'boom'); END",
        ]
    } else {
        vec![
            "CREATE FUNCTION refuse_outbox_events() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'boom'; END $$",
            "CREATE TRIGGER refuse_outbox_events BEFORE INSERT ON outbox_events \
             FOR EACH ROW EXECUTE FUNCTION refuse_outbox_events()",
        ]
    };
    for sql in refuse {
        db.execute(sql).await.unwrap();
    }
    let cancel = || {
        change(
            order.id,
            OrderStatus::Pending,
            OrderStatus::Cancelled,
            manager(),
        )
    };
    let failed = db.store().apply_status_change(cancel()).await;
    assert!(failed.is_err(), "{failed:?}");
    let status = format!(
        "SELECT count(*) FROM orders WHERE id = {} AND status = 'PENDING'",
        order.id.0
    );
    assert_eq!(
        db.query_i64(&status).await.unwrap(),
        1,
        "the status is unchanged"
    );
    assert_eq!(count(db, "order_status_history").await, 0);
    assert_eq!(count(db, "outbox_events").await, events);
    assert_eq!(stock(db, product).await, Some(8), "no stock came back");

    // With the trigger gone, the same change goes through whole.
    let drop = if db.is_sqlite() {
        "DROP TRIGGER refuse_outbox_events"
    } else {
        "DROP TRIGGER refuse_outbox_events ON outbox_events"
    };
    db.execute(drop).await.unwrap();
    let applied = db.store().apply_status_change(cancel()).await.unwrap();
    assert!(matches!(applied, Applied::Changed(_)));
    assert_eq!(count(db, "order_status_history").await, 1);
    assert_eq!(stock(db, product).await, Some(10));
}

/// A cancellation gives stock back, so cached catalog answers are stale: every instance's
/// follower hears of its products (PostgreSQL through NOTIFY; SQLite, whose one process
/// may cancel in the background, through the process's own channel), and only once the
/// change committed.
async fn a_cancellation_is_told_to_every_follower_of_catalog_changes(db: &TestDatabase) {
    seed(
        db,
        &[stocked_category("sweets", &[("Зефир", "90", Some(10))])],
    )
    .await;
    let user = new_user(db, 1001).await;
    let product = product_id(db, "Зефир").await;
    let order = place_order(db, &user, product, 2, T0).await;
    let (heard, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(infra_postgres::follow_catalog_changes(
        db.database().clone(),
        std::sync::Arc::new(move |change| {
            let _ = heard.send(change);
        }),
        stopped,
    ));
    let next = async |changes: &mut tokio::sync::mpsc::UnboundedReceiver<CatalogChange>| {
        tokio::time::timeout(std::time::Duration::from_secs(30), changes.recv())
            .await
            .expect("no catalog change was heard")
            .expect("the follower stopped")
    };
    // Listening (or subscribed) from now on.
    assert_eq!(next(&mut changes).await, CatalogChange::Everything);

    let applied = db
        .store()
        .apply_status_change(change(
            order.id,
            OrderStatus::Pending,
            OrderStatus::Cancelled,
            manager(),
        ))
        .await
        .unwrap();
    assert!(matches!(applied, Applied::Changed(_)));
    assert_eq!(
        next(&mut changes).await,
        CatalogChange::Products(vec![product])
    );
    stop.send_replace(true);
    follower.await.unwrap();
}

/// A customer's cancellation writes, besides the customer's message and the manager's
/// redraw, a notice to the manager chat, delivered as a notification of its own; a
/// manager's cancellation does not (the manager knows).
async fn a_customers_cancellation_tells_the_manager_with_a_message_of_its_own(db: &TestDatabase) {
    seed(
        db,
        &[stocked_category("pizza", &[("Маргарита", "450", None)])],
    )
    .await;
    let user = new_user(db, 1001).await;
    let product = product_id(db, "Маргарита").await;
    let mine = place_order(db, &user, product, 2, T0).await;
    let theirs = place_order(db, &user, product, 1, T0).await;
    let store = db.store();
    for (order, by) in [(&mine, ChangedBy::Customer), (&theirs, manager())] {
        let applied = store
            .apply_status_change(change(
                order.id,
                OrderStatus::Pending,
                OrderStatus::Cancelled,
                by,
            ))
            .await
            .unwrap();
        assert!(matches!(applied, Applied::Changed(_)));
    }
    let notices = "SELECT count(*) FROM outbox_events WHERE kind = 'manager_notice' \
                   AND chat = 'manager_chat'";
    assert_eq!(db.query_i64(notices).await.unwrap(), 1);

    let claimed = store
        .claim_due(std::time::Duration::from_secs(30), 100)
        .await
        .unwrap();
    let notices: Vec<_> = claimed
        .iter()
        .filter_map(|event| match &event.notification {
            Ok(Notification::ManagerNotice { notice, order }) => Some((*notice, order)),
            _ => None,
        })
        .collect();
    assert_eq!(notices.len(), 1, "{claimed:?}");
    let (notice, placed) = notices[0];
    assert_eq!(notice, Notice::CancelledByCustomer);
    assert_eq!(placed.order.id, mine.id);
    assert_eq!(placed.order.status, OrderStatus::Cancelled);
    assert_eq!(placed.customer.get(), 1001);
}

async fn open_orders_are_the_unfinished_ones_newest_first_with_their_customers(db: &TestDatabase) {
    seed(
        db,
        &[stocked_category("pizza", &[("Маргарита", "450", None)])],
    )
    .await;
    let (ann, bob) = (new_user(db, 1001).await, new_user(db, 2002).await);
    let product = product_id(db, "Маргарита").await;
    let first = place_order(db, &ann, product, 1, T0).await;
    let done = place_order(db, &bob, product, 2, T0 + Duration::minutes(1)).await;
    let newest = place_order(db, &bob, product, 3, T0 + Duration::minutes(2)).await;
    let store = db.store();
    store
        .apply_status_change(change(
            done.id,
            OrderStatus::Pending,
            OrderStatus::Cancelled,
            ChangedBy::Customer,
        ))
        .await
        .unwrap();
    store
        .apply_status_change(change(
            first.id,
            OrderStatus::Pending,
            OrderStatus::Processing,
            manager(),
        ))
        .await
        .unwrap();

    let open = store.open_orders(10).await.unwrap();
    let ids: Vec<OrderId> = open.iter().map(|placed| placed.order.id).collect();
    assert_eq!(ids, [newest.id, first.id]);
    assert_eq!(open[0].customer.get(), 2002);
    assert_eq!(open[0].order.items[0].quantity, 3);
    assert_eq!(open[1].order.status, OrderStatus::Processing);
    assert_eq!(store.open_orders(1).await.unwrap().len(), 1);
}

async fn a_refresh_asks_for_the_managers_message_to_be_redrawn(db: &TestDatabase) {
    seed(
        db,
        &[stocked_category("pizza", &[("Маргарита", "450", None)])],
    )
    .await;
    let user = new_user(db, 1001).await;
    let order = place_order(db, &user, product_id(db, "Маргарита").await, 1, T0).await;
    db.store().refresh_manager_message(order.id).await.unwrap();
    let refreshes = db
        .query_i64(&format!(
            "SELECT count(*) FROM outbox_events WHERE order_id = {} \
             AND kind = 'manager_message_update' AND chat = 'manager_chat'",
            order.id.0
        ))
        .await
        .unwrap();
    assert_eq!(refreshes, 1);
    assert!(
        db.store()
            .refresh_manager_message(OrderId(999_999))
            .await
            .is_err()
    );
}

fn change(order: OrderId, from: OrderStatus, to: OrderStatus, by: ChangedBy) -> StatusChange {
    StatusChange {
        order_id: order,
        from,
        to,
        by,
        at: T0 + Duration::minutes(5),
        note: None,
        admin: None,
    }
}

fn manager() -> ChangedBy {
    ChangedBy::Manager(TelegramId::parse(42).unwrap())
}

async fn a_change_moves_the_status_and_writes_its_history(db: &TestDatabase) {
    seed(
        db,
        &[stocked_category("pizza", &[("Маргарита", "450", None)])],
    )
    .await;
    let user = new_user(db, 1001).await;
    let product = product_id(db, "Маргарита").await;
    let order = place_order(db, &user, product, 2, T0).await;
    let store = db.store();

    let mut confirm = change(
        order.id,
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        manager(),
    );
    confirm.note = Some("позвонили".into());
    let Applied::Changed(changed) = store.apply_status_change(confirm).await.unwrap() else {
        panic!("not applied");
    };
    assert_eq!(changed.status, OrderStatus::Confirmed);
    assert_eq!(changed.updated_at, T0 + Duration::minutes(5));
    assert_eq!(changed.items.len(), 1);

    let history = store.history(order.id).await.unwrap();
    let steps: Vec<_> = history.iter().map(|e| (e.from, e.status, e.by)).collect();
    assert_eq!(
        steps,
        [
            (None, OrderStatus::Pending, ChangedBy::Customer),
            (
                Some(OrderStatus::Pending),
                OrderStatus::Confirmed,
                manager()
            ),
        ]
    );
    assert_eq!(history[0].at, T0);
    // The change wrote what it tells: the customer's message and the manager's refresh.
    let told = db
        .query_i64(&format!(
            "SELECT count(*) FROM outbox_events WHERE order_id = {} \
             AND kind IN ('order_status_changed', 'manager_message_update')",
            order.id.0
        ))
        .await
        .unwrap();
    assert_eq!(told, 2);
    assert_eq!(history[1].note.as_deref(), Some("позвонили"));
    assert!(store.history(OrderId(999_999)).await.unwrap().is_empty());
}

async fn a_stale_change_writes_nothing(db: &TestDatabase) {
    seed(
        db,
        &[stocked_category("pizza", &[("Маргарита", "450", None)])],
    )
    .await;
    let user = new_user(db, 1001).await;
    let order = place_order(db, &user, product_id(db, "Маргарита").await, 1, T0).await;
    let store = db.store();
    store
        .apply_status_change(change(
            order.id,
            OrderStatus::Pending,
            OrderStatus::Cancelled,
            ChangedBy::Customer,
        ))
        .await
        .unwrap();

    let stale = store
        .apply_status_change(change(
            order.id,
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            manager(),
        ))
        .await
        .unwrap();
    assert_eq!(
        stale,
        Applied::Stale {
            current: OrderStatus::Cancelled
        }
    );
    assert_eq!(count(db, "order_status_history").await, 1);
    // One order_created, and the three events of the one change that happened (the
    // customer's cancellation: their message, the manager's redraw and notice).
    assert_eq!(count(db, "outbox_events").await, 4);
    let missing = store
        .apply_status_change(change(
            OrderId(999_999),
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            manager(),
        ))
        .await
        .unwrap();
    assert_eq!(missing, Applied::NotFound);
}

async fn a_cancellation_returns_limited_stock(db: &TestDatabase) {
    seed(
        db,
        &[stocked_category(
            "sweets",
            &[("Зефир", "90", Some(10)), ("Пастила", "120", None)],
        )],
    )
    .await;
    let user = new_user(db, 1001).await;
    let (limited, unlimited) = (
        product_id(db, "Зефир").await,
        product_id(db, "Пастила").await,
    );
    let order = db
        .store()
        .place(new_order(
            &user,
            &[(limited, 3), (unlimited, 2), (limited, 1)],
            T0,
        ))
        .await
        .unwrap();
    assert_eq!(stock(db, limited).await, Some(6));

    let store = db.store();
    store
        .apply_status_change(change(
            order.id,
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            manager(),
        ))
        .await
        .unwrap();
    assert_eq!(
        stock(db, limited).await,
        Some(6),
        "only a cancellation gives stock back"
    );
    store
        .apply_status_change(change(
            order.id,
            OrderStatus::Confirmed,
            OrderStatus::Cancelled,
            manager(),
        ))
        .await
        .unwrap();
    assert_eq!(stock(db, limited).await, Some(10));
    assert_eq!(stock(db, unlimited).await, None);
}

async fn the_customer_scope_sees_only_their_own_orders(db: &TestDatabase) {
    seed(
        db,
        &[stocked_category("pizza", &[("Маргарита", "450", None)])],
    )
    .await;
    let (owner, other) = (new_user(db, 1001).await, new_user(db, 2002).await);
    let order = place_order(db, &owner, product_id(db, "Маргарита").await, 1, T0).await;
    let store = db.store();
    assert_eq!(
        store
            .current_status(Scope::Customer(owner.id), order.id)
            .await
            .unwrap(),
        Some(OrderStatus::Pending)
    );
    assert_eq!(
        store
            .current_status(Scope::Customer(other.id), order.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.current_status(Scope::Any, order.id).await.unwrap(),
        Some(OrderStatus::Pending)
    );
    // Through the use case: someone else's order is not found, and stays as it was.
    let request = ChangeRequest {
        scope: Scope::Customer(other.id),
        order_id: order.id,
        seen: None,
        to: OrderStatus::Cancelled,
        by: ChangedBy::Customer,
        at: T0,
        note: None,
        admin: None,
    };
    assert!(matches!(
        change_status(&store, request).await,
        Err(ChangeStatusError::NotFound)
    ));
    assert_eq!(count(db, "order_status_history").await, 0);
}

async fn of_two_concurrent_changes_one_wins(db: &TestDatabase) {
    seed(
        db,
        &[stocked_category("pizza", &[("Маргарита", "450", Some(5))])],
    )
    .await;
    let user = new_user(db, 1001).await;
    let product = product_id(db, "Маргарита").await;
    let order = place_order(db, &user, product, 1, T0).await;
    let store = db.store();
    let (a, b) = tokio::join!(
        store.apply_status_change(change(
            order.id,
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            manager()
        )),
        store.apply_status_change(change(
            order.id,
            OrderStatus::Pending,
            OrderStatus::Cancelled,
            ChangedBy::Customer
        )),
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let changed = outcomes
        .iter()
        .filter(|o| matches!(o, Applied::Changed(_)))
        .count();
    let stale = outcomes
        .iter()
        .filter(|o| matches!(o, Applied::Stale { .. }))
        .count();
    assert_eq!((changed, stale), (1, 1), "{outcomes:?}");
    assert_eq!(count(db, "order_status_history").await, 1);
    // The stock is back only if the cancellation won.
    let cancelled = outcomes
        .iter()
        .any(|o| matches!(o, Applied::Changed(order) if order.status == OrderStatus::Cancelled));
    assert_eq!(
        stock(db, product).await,
        Some(if cancelled { 5 } else { 4 })
    );
}
