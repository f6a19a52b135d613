//! `OrderAdmin` and `AuditLog`: every customer's orders, filtered and paged, one order in
//! full, and the audit rows an admin's status change writes in its transaction.

use domain::admin::{Admin, AuditFilter, OrderFilter};
use domain::lifecycle::{Applied, ChangedBy, StatusChange};
use domain::ports::{AuditLog, OrderAdmin, OrderLifecycle};
use domain::{OrderId, OrderStatus, TelegramId};
use infra_postgres::test_support::TestDatabase;
use serde_json::json;
use time::Duration;

use crate::support::{T0, new_user, page, place_order, product_id, seed, stocked_category};

contract_tests!(
    orders_are_listed_newest_first_by_status_time_and_customer,
    one_order_has_its_customer_and_history,
    an_admins_status_change_is_audited_in_its_transaction,
    the_totals_by_status_follow_every_writer,
);

async fn shop(db: &TestDatabase) -> domain::ProductId {
    seed(
        db,
        &[stocked_category("pizza", &[("Маргарита", "450", None)])],
    )
    .await;
    product_id(db, "Маргарита").await
}

fn ids(orders: &[domain::Order]) -> Vec<i64> {
    orders.iter().map(|order| order.id.0).collect()
}

async fn orders_are_listed_newest_first_by_status_time_and_customer(db: &TestDatabase) {
    let product = shop(db).await;
    let (ann, bob) = (new_user(db, 1001).await, new_user(db, 2002).await);
    let mut placed = Vec::new();
    for (n, user) in [&ann, &bob, &ann, &bob, &ann].into_iter().enumerate() {
        let at = T0 + Duration::hours(i64::try_from(n).unwrap());
        placed.push(place_order(db, user, product, 1, at).await.id);
    }
    let store = db.store();
    store
        .apply_status_change(StatusChange {
            order_id: placed[1],
            from: OrderStatus::Pending,
            to: OrderStatus::Confirmed,
            by: ChangedBy::System,
            at: T0 + Duration::hours(6),
            note: None,
            admin: None,
        })
        .await
        .unwrap();

    let all = store
        .list_orders(&OrderFilter::default(), page(100, 0))
        .await
        .unwrap();
    assert_eq!(
        ids(&all.items),
        [
            placed[4].0,
            placed[3].0,
            placed[2].0,
            placed[1].0,
            placed[0].0
        ]
    );
    assert_eq!(all.total, 5);
    assert_eq!(all.items[0].items.len(), 1, "orders come with their lines");

    let second_page = store
        .list_orders(&OrderFilter::default(), page(2, 2))
        .await
        .unwrap();
    assert_eq!(ids(&second_page.items), [placed[2].0, placed[1].0]);
    assert_eq!(second_page.total, 5);

    let pending = OrderFilter {
        status: Some(OrderStatus::Pending),
        ..OrderFilter::default()
    };
    let found = store.list_orders(&pending, page(100, 0)).await.unwrap();
    assert_eq!(found.total, 4);
    assert!(!ids(&found.items).contains(&placed[1].0));

    let anns_window = OrderFilter {
        customer: Some(TelegramId::parse(1001).unwrap()),
        created_from: Some(T0 + Duration::hours(1)),
        created_to: Some(T0 + Duration::hours(4)),
        ..OrderFilter::default()
    };
    let found = store.list_orders(&anns_window, page(100, 0)).await.unwrap();
    // Ann's orders were placed at T0, +2 h and +4 h: only +2 h is in [+1 h, +4 h).
    assert_eq!(ids(&found.items), [placed[2].0]);
    assert_eq!(found.total, 1);

    let nobody = OrderFilter {
        customer: Some(TelegramId::parse(3003).unwrap()),
        ..OrderFilter::default()
    };
    let found = store.list_orders(&nobody, page(100, 0)).await.unwrap();
    assert!(found.items.is_empty());
    assert_eq!(found.total, 0);
}

async fn one_order_has_its_customer_and_history(db: &TestDatabase) {
    let product = shop(db).await;
    let ann = new_user(db, 1001).await;
    let order = place_order(db, &ann, product, 2, T0).await;
    let details = db.store().order_details(order.id).await.unwrap().unwrap();
    assert_eq!(details.order, order);
    assert_eq!(details.customer.telegram_id.get(), 1001);
    assert_eq!(details.history.len(), 1);
    assert_eq!(details.history[0].status, OrderStatus::Pending);
    assert!(
        db.store()
            .order_details(OrderId(999_999))
            .await
            .unwrap()
            .is_none()
    );
}

async fn an_admins_status_change_is_audited_in_its_transaction(db: &TestDatabase) {
    let product = shop(db).await;
    let ann = new_user(db, 1001).await;
    let order = place_order(db, &ann, product, 1, T0).await;
    let other = place_order(db, &ann, product, 1, T0).await;
    let store = db.store();
    let manager = Admin::Person(TelegramId::parse(777).unwrap());
    let steps = [
        (
            order.id,
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            Some(manager),
            Some("позвонили"),
        ),
        (
            order.id,
            OrderStatus::Confirmed,
            OrderStatus::Shipped,
            Some(Admin::ApiToken),
            None,
        ),
        // Not through the admin API (a button): not audited.
        (
            other.id,
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            None,
            None,
        ),
    ];
    for (n, (id, from, to, admin, note)) in steps.into_iter().enumerate() {
        let change = StatusChange {
            order_id: id,
            from,
            to,
            by: admin.map_or(ChangedBy::Manager(TelegramId::parse(42).unwrap()), |a| {
                a.changed_by()
            }),
            at: T0 + Duration::minutes(i64::try_from(n).unwrap() + 1),
            note: note.map(str::to_owned),
            admin,
        };
        assert!(matches!(
            store.apply_status_change(change).await.unwrap(),
            Applied::Changed(_)
        ));
    }
    // A stale change writes no audit row either.
    let stale = StatusChange {
        order_id: order.id,
        from: OrderStatus::Pending,
        to: OrderStatus::Cancelled,
        by: ChangedBy::System,
        at: T0 + Duration::minutes(9),
        note: None,
        admin: Some(Admin::ApiToken),
    };
    assert!(matches!(
        store.apply_status_change(stale).await.unwrap(),
        Applied::Stale { .. }
    ));

    let log = store
        .list_audit(&AuditFilter::default(), page(100, 0))
        .await
        .unwrap();
    assert_eq!(log.total, 2);
    let newest = &log.items[0];
    assert_eq!(newest.actor, "api-token");
    assert_eq!(newest.action, "order.status");
    assert_eq!(
        (newest.entity.as_str(), newest.entity_id.clone()),
        ("order", order.id.0.to_string())
    );
    assert_eq!(newest.before, json!({"status": "CONFIRMED"}));
    assert_eq!(newest.after, json!({"status": "SHIPPED"}));
    assert_eq!(newest.at, T0 + Duration::minutes(2));
    let oldest = &log.items[1];
    assert_eq!(oldest.actor, "777");
    assert_eq!(
        oldest.after,
        json!({"status": "CONFIRMED", "note": "позвонили"})
    );

    let by_person = AuditFilter {
        actor: Some("777".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        store
            .list_audit(&by_person, page(100, 0))
            .await
            .unwrap()
            .total,
        1
    );
    let in_window = AuditFilter {
        from: Some(T0 + Duration::minutes(2)),
        to: Some(T0 + Duration::minutes(3)),
        entity: Some("order".into()),
        entity_id: Some(order.id.0.to_string()),
        ..AuditFilter::default()
    };
    let found = store.list_audit(&in_window, page(100, 0)).await.unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].actor, "api-token");
    // The history names who: the person as a manager, the token as the system.
    let history = store.history(order.id).await.unwrap();
    assert_eq!(
        history[1].by,
        ChangedBy::Manager(TelegramId::parse(777).unwrap())
    );
    assert_eq!(history[2].by, ChangedBy::System);
}

/// The admin list's total for a status (or all) comes from the counts triggers keep
/// (migration 21), not from counting: they must follow every writer, SQL included.
async fn the_totals_by_status_follow_every_writer(db: &TestDatabase) {
    let product = shop(db).await;
    let ann = new_user(db, 1001).await;
    let mut placed = Vec::new();
    for n in 0..40 {
        // Ids spread over several of PostgreSQL's counter rows.
        placed.push(
            place_order(db, &ann, product, 1, T0 + Duration::minutes(n))
                .await
                .id,
        );
    }
    let store = db.store();
    for (order, to) in [
        (placed[0], OrderStatus::Confirmed),
        (placed[1], OrderStatus::Confirmed),
        (placed[2], OrderStatus::Cancelled),
    ] {
        store
            .apply_status_change(StatusChange {
                order_id: order,
                from: OrderStatus::Pending,
                to,
                by: ChangedBy::System,
                at: T0 + Duration::hours(1),
                note: None,
                admin: None,
            })
            .await
            .unwrap();
    }
    // An operator's SQL: a status changed, an order deleted, one inserted by hand.
    db.execute(&format!(
        "UPDATE orders SET status = 'SHIPPED' WHERE id = {}",
        placed[3].0
    ))
    .await
    .unwrap();
    db.execute(&format!("DELETE FROM orders WHERE id = {}", placed[4].0))
        .await
        .unwrap();
    db.execute(&format!(
        "UPDATE orders SET status = status, comment = 'позвонить' WHERE id = {}",
        placed[5].0
    ))
    .await
    .unwrap();
    // Statements of several rows (PostgreSQL counts per statement).
    db.execute(&format!(
        "UPDATE orders SET status = 'DELIVERED' WHERE id IN ({}, {}, {})",
        placed[6].0, placed[7].0, placed[8].0
    ))
    .await
    .unwrap();
    db.execute(&format!(
        "DELETE FROM orders WHERE id IN ({}, {})",
        placed[10].0, placed[11].0
    ))
    .await
    .unwrap();

    for status in OrderStatus::ALL {
        let filter = OrderFilter {
            status: Some(status),
            ..OrderFilter::default()
        };
        let listed = store.list_orders(&filter, page(1, 0)).await.unwrap();
        let counted = db
            .query_i64(&format!(
                "SELECT COUNT(*) FROM orders WHERE status = '{}'",
                status.as_str()
            ))
            .await
            .unwrap();
        assert_eq!(listed.total, u64::try_from(counted).unwrap(), "{status:?}");
    }
    let pending = OrderFilter {
        status: Some(OrderStatus::Pending),
        ..OrderFilter::default()
    };
    assert_eq!(
        store.list_orders(&pending, page(1, 0)).await.unwrap().total,
        30
    );
    let all = store
        .list_orders(&OrderFilter::default(), page(1, 0))
        .await
        .unwrap();
    assert_eq!(all.total, 37);
}
