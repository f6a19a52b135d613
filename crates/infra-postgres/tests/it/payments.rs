//! `PaymentRepository` and placement with payments on: what an order owes, invoices'
//! nonces, payments recorded once and acted on in their transaction, late payments
//! refunded, expiry, and refunds on cancellation.

use std::time::Duration as StdDuration;

use domain::lifecycle::{Applied, ChangedBy, StatusChange};
use domain::order::{NewOrder, PlaceOrderError};
use domain::payments::{
    Currency, InvoicePayload, PaymentMode, PaymentOutcome, PaymentRecorded, PaymentRepository,
    PaymentStatus, PaymentTerms, ReceivedPayment, RefundedPayment,
};
use domain::ports::{Notification, OrderLifecycle, OrderRepository, Outbox};
use domain::{Order, OrderStatus, ProductId, User};
use infra_postgres::test_support::TestDatabase;
use time::Duration;

use crate::support::{T0, count, draft, new_user, product_id, seed, stock, stocked_category};

contract_tests!(
    stars_orders_owe_the_sum_of_stars_prices_and_products_without_one_are_refused,
    provider_orders_owe_the_stored_total_in_smallest_units_until_the_deadline,
    a_stars_price_change_bumps_the_revision,
    the_first_invoice_nonce_stays_and_only_its_link_is_kept,
    a_payment_is_recorded_once_and_confirms_the_order_with_its_notices,
    a_stars_payment_for_a_cancelled_order_is_recorded_and_refunded,
    a_provider_payment_for_a_cancelled_order_is_flagged_for_the_manager,
    a_payment_with_a_wrong_amount_or_payer_is_not_taken,
    expired_unpaid_orders_are_the_pending_ones_past_their_deadline,
    cancelling_a_paid_stars_order_refunds_it_and_the_refund_marks_it,
    an_order_a_manager_confirmed_unpaid_takes_its_payment_and_keeps_its_status,
    an_import_without_stars_prices_leaves_them_as_they_are,
    the_same_payment_delivered_twice_at_once_is_recorded_once,
    a_payment_racing_a_cancellation_is_never_lost,
);

const STARS: PaymentTerms = PaymentTerms {
    mode: PaymentMode::Stars,
    timeout: StdDuration::from_secs(30 * 60),
};

fn provider() -> PaymentTerms {
    PaymentTerms {
        mode: PaymentMode::Provider(Currency::provider("RUB").unwrap()),
        timeout: StdDuration::from_secs(30 * 60),
    }
}

/// "Маргарита" at 450.00 (and 120 stars), "Кола" at 99.90 without a Stars price, both
/// with 10 units.
async fn catalog(db: &TestDatabase) -> (ProductId, ProductId) {
    seed(
        db,
        &[stocked_category(
            "pizza",
            &[("Маргарита", "450", Some(10)), ("Кола", "99.90", Some(10))],
        )],
    )
    .await;
    let pizza = product_id(db, "Маргарита").await;
    db.execute(&format!(
        "UPDATE products SET price_stars = 120 WHERE id = {}",
        pizza.0
    ))
    .await
    .unwrap();
    (pizza, product_id(db, "Кола").await)
}

async fn place(
    db: &TestDatabase,
    user: &User,
    lines: &[(ProductId, i64)],
    terms: PaymentTerms,
) -> Result<Order, PlaceOrderError> {
    db.store()
        .place(NewOrder {
            user_id: user.id,
            draft: draft(lines),
            placed_at: T0,
            idempotency_key: None,
            payment_terms: terms,
        })
        .await
}

/// The payload of `order`'s invoice, its nonce claimed.
async fn payload(db: &TestDatabase, order: &Order) -> String {
    let nonce = db
        .store()
        .claim_invoice_nonce(order.id, "AAAAAAAAAAAAAAAAAAAAAA")
        .await
        .unwrap();
    InvoicePayload {
        order_id: order.id,
        nonce,
    }
    .to_payload()
}

fn paid(payload: &str, from: i64, currency: &str, amount: i64, charge: &str) -> ReceivedPayment {
    ReceivedPayment {
        from,
        currency: currency.to_owned(),
        total_amount: amount,
        payload: payload.to_owned(),
        telegram_payment_charge_id: charge.to_owned(),
        provider_payment_charge_id: Some(format!("prov-{charge}")),
    }
}

async fn kinds(db: &TestDatabase, order: &Order) -> Vec<String> {
    let store = db.store();
    let claimed = store
        .claim_due(StdDuration::from_secs(30), 100)
        .await
        .unwrap();
    let mut kinds: Vec<String> = claimed
        .iter()
        .filter(|event| event.order_id == order.id)
        .map(|event| event.kind.as_str().to_owned())
        .collect();
    kinds.sort();
    let tokens: Vec<_> = claimed
        .iter()
        .map(|event| (event.id, event.token.clone()))
        .collect();
    store.release(&tokens).await.unwrap();
    kinds
}

async fn cancel(db: &TestDatabase, order: &Order, by: ChangedBy) {
    let applied = db
        .store()
        .apply_status_change(StatusChange {
            order_id: order.id,
            from: OrderStatus::Pending,
            to: OrderStatus::Cancelled,
            by,
            at: T0 + Duration::minutes(1),
            note: None,
            admin: None,
        })
        .await
        .unwrap();
    assert!(matches!(applied, Applied::Changed(_)), "{applied:?}");
}

async fn stars_orders_owe_the_sum_of_stars_prices_and_products_without_one_are_refused(
    db: &TestDatabase,
) {
    let (pizza, cola) = catalog(db).await;
    let user = new_user(db, 1001).await;
    let order = place(db, &user, &[(pizza, 3)], STARS).await.unwrap();
    assert_eq!(order.payment.status, PaymentStatus::Unpaid);
    let due = order.payment.due.unwrap();
    assert_eq!((due.currency.code(), due.amount), ("XTR", 360));
    assert_eq!(order.payment.due_by, Some(T0 + Duration::minutes(30)));
    // As stored.
    let stored = db
        .store()
        .find_for_user(user.id, order.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.payment, order.payment);

    match place(db, &user, &[(pizza, 1), (cola, 1)], STARS).await {
        Err(PlaceOrderError::NoStarsPrice(ids)) => assert_eq!(ids, [cola]),
        other => panic!("{other:?}"),
    }
    // Nothing was taken for the refused order.
    assert_eq!(stock(db, cola).await, Some(10));
    assert_eq!(stock(db, pizza).await, Some(7));
    // With payments off, the same cart is paid on delivery.
    let off = place(db, &user, &[(pizza, 1), (cola, 1)], PaymentTerms::default())
        .await
        .unwrap();
    assert_eq!(off.payment.status, PaymentStatus::NotRequired);
    assert_eq!(off.payment.due, None);
}

async fn provider_orders_owe_the_stored_total_in_smallest_units_until_the_deadline(
    db: &TestDatabase,
) {
    let (pizza, cola) = catalog(db).await;
    let user = new_user(db, 1001).await;
    let order = place(db, &user, &[(pizza, 1), (cola, 3)], provider())
        .await
        .unwrap();
    // 450.00 + 3 × 99.90 = 749.70 RUB = 74 970 kopecks, exactly.
    let due = order.payment.due.unwrap();
    assert_eq!((due.currency.code(), due.amount), ("RUB", 74_970));
    let row = db
        .query_i64(&format!(
            "SELECT payment_amount FROM orders WHERE id = {}",
            order.id.0
        ))
        .await
        .unwrap();
    assert_eq!(row, 74_970);
}

/// Placement on PostgreSQL trusts a product unchanged while its revision is: a new Stars
/// price must give it a new one.
async fn a_stars_price_change_bumps_the_revision(db: &TestDatabase) {
    let (pizza, _) = catalog(db).await;
    let revision = format!("SELECT revision FROM products WHERE id = {}", pizza.0);
    let before = db.query_i64(&revision).await.unwrap();
    db.execute(&format!(
        "UPDATE products SET price_stars = 150 WHERE id = {}",
        pizza.0
    ))
    .await
    .unwrap();
    assert_ne!(db.query_i64(&revision).await.unwrap(), before);
}

async fn the_first_invoice_nonce_stays_and_only_its_link_is_kept(db: &TestDatabase) {
    let (pizza, _) = catalog(db).await;
    let user = new_user(db, 1001).await;
    let order = place(db, &user, &[(pizza, 1)], STARS).await.unwrap();
    let store = db.store();
    let first = store
        .claim_invoice_nonce(order.id, "first-nonce-aaaaaaaaaaa")
        .await
        .unwrap();
    let second = store
        .claim_invoice_nonce(order.id, "second-nonce-bbbbbbbbbb")
        .await
        .unwrap();
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("first-nonce-aaaaaaaaaaa", "first-nonce-aaaaaaaaaaa")
    );
    store
        .store_invoice_link(order.id, "second-nonce-bbbbbbbbbb", "https://t.me/$wrong")
        .await
        .unwrap();
    store
        .store_invoice_link(order.id, &first, "https://t.me/$right")
        .await
        .unwrap();
    let payable = store.payable_order(order.id).await.unwrap().unwrap();
    assert_eq!(payable.invoice_link.as_deref(), Some("https://t.me/$right"));
    assert_eq!(
        payable.invoice_nonce.as_deref(),
        Some("first-nonce-aaaaaaaaaaa")
    );
    assert_eq!(payable.customer.get(), 1001);
}

async fn a_payment_is_recorded_once_and_confirms_the_order_with_its_notices(db: &TestDatabase) {
    let (pizza, _) = catalog(db).await;
    let user = new_user(db, 1001).await;
    let order = place(db, &user, &[(pizza, 2)], STARS).await.unwrap();
    let payload = payload(db, &order).await;
    let store = db.store();
    let payment = paid(&payload, 1001, "XTR", 240, "charge-1");
    let at = T0 + Duration::minutes(5);
    assert_eq!(
        store.record_payment(&payment, at).await.unwrap(),
        PaymentRecorded::Recorded(PaymentOutcome::Applied)
    );
    let now = store
        .find_for_user(user.id, order.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.status, OrderStatus::Confirmed);
    assert_eq!(now.payment.status, PaymentStatus::Paid);
    assert_eq!(now.payment.paid_at, Some(at));
    let history = store.history(order.id).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.status, last.by),
        (OrderStatus::Confirmed, ChangedBy::System)
    );
    // The status change's events, and the manager's "paid" notice.
    assert_eq!(
        kinds(db, &order).await,
        [
            "manager_message_update",
            "manager_notice",
            "order_created",
            "order_status_changed"
        ]
    );
    let outbox = count(db, "outbox_events").await;

    // Telegram delivers it again: nothing changes.
    assert_eq!(
        store.record_payment(&payment, at).await.unwrap(),
        PaymentRecorded::Duplicate
    );
    assert_eq!(count(db, "outbox_events").await, outbox);
    assert_eq!(count(db, "payments").await, 1);
    let stored = db
        .query_i64("SELECT count(*) FROM payments WHERE provider_payment_charge_id = 'prov-charge-1' AND outcome = 'applied'")
        .await
        .unwrap();
    assert_eq!(stored, 1);
}

async fn a_stars_payment_for_a_cancelled_order_is_recorded_and_refunded(db: &TestDatabase) {
    let (pizza, _) = catalog(db).await;
    let user = new_user(db, 1001).await;
    let order = place(db, &user, &[(pizza, 1)], STARS).await.unwrap();
    let payload = payload(db, &order).await;
    cancel(db, &order, ChangedBy::System).await;
    let store = db.store();
    let payment = paid(&payload, 1001, "XTR", 120, "charge-late");
    assert_eq!(
        store
            .record_payment(&payment, T0 + Duration::minutes(2))
            .await
            .unwrap(),
        PaymentRecorded::Recorded(PaymentOutcome::RefundRequested)
    );
    let now = store.payable_order(order.id).await.unwrap().unwrap();
    assert_eq!(now.status, OrderStatus::Cancelled);
    assert_eq!(now.payment.status, PaymentStatus::Unpaid);
    // The refund is delivered as a notification: Telegram's refundStarPayment for the
    // payer and the charge.
    let claimed = store
        .claim_due(StdDuration::from_secs(30), 100)
        .await
        .unwrap();
    let refunds: Vec<_> = claimed
        .iter()
        .filter_map(|event| match &event.notification {
            Ok(Notification::StarsRefund {
                user_id,
                telegram_payment_charge_id,
                ..
            }) => Some((user_id.get(), telegram_payment_charge_id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(refunds, [(1001, "charge-late".to_owned())]);
    let notices = claimed
        .iter()
        .filter(|event| {
            matches!(
                event.notification,
                Ok(Notification::ManagerNotice { .. } | Notification::CustomerNotice { .. })
            )
        })
        .count();
    assert_eq!(notices, 2);
}

async fn a_provider_payment_for_a_cancelled_order_is_flagged_for_the_manager(db: &TestDatabase) {
    let (pizza, _) = catalog(db).await;
    let user = new_user(db, 1001).await;
    let order = place(db, &user, &[(pizza, 1)], provider()).await.unwrap();
    let payload = payload(db, &order).await;
    cancel(db, &order, ChangedBy::Customer).await;
    let store = db.store();
    let payment = paid(&payload, 1001, "RUB", 45_000, "charge-rub");
    assert_eq!(
        store.record_payment(&payment, T0).await.unwrap(),
        PaymentRecorded::Recorded(PaymentOutcome::RefundManual)
    );
    let refunds = db
        .query_i64("SELECT count(*) FROM outbox_events WHERE kind = 'stars_refund'")
        .await
        .unwrap();
    assert_eq!(refunds, 0);
    let flagged = db
        .query_i64(
            "SELECT count(*) FROM outbox_events WHERE kind = 'manager_notice' \
             AND payload LIKE '%late_payment_to_refund%'",
        )
        .await
        .unwrap();
    assert_eq!(flagged, 1);
}

async fn a_payment_with_a_wrong_amount_or_payer_is_not_taken(db: &TestDatabase) {
    let (pizza, _) = catalog(db).await;
    let user = new_user(db, 1001).await;
    let order = place(db, &user, &[(pizza, 1)], STARS).await.unwrap();
    let payload = payload(db, &order).await;
    let store = db.store();
    for (payment, charge) in [
        (paid(&payload, 1001, "XTR", 119, "short"), "short"),
        (paid(&payload, 2002, "XTR", 120, "stranger"), "stranger"),
        (
            paid(
                &format!("o:{}:BBBBBBBBBBBBBBBBBBBBBB", order.id.0),
                1001,
                "XTR",
                120,
                "forged",
            ),
            "forged",
        ),
    ] {
        assert_eq!(
            store.record_payment(&payment, T0).await.unwrap(),
            PaymentRecorded::Recorded(PaymentOutcome::RefundRequested),
            "{charge}"
        );
    }
    let now = store.payable_order(order.id).await.unwrap().unwrap();
    assert_eq!(
        (now.status, now.payment.status),
        (OrderStatus::Pending, PaymentStatus::Unpaid)
    );
    assert_eq!(count(db, "payments").await, 3);
}

async fn expired_unpaid_orders_are_the_pending_ones_past_their_deadline(db: &TestDatabase) {
    let (pizza, _) = catalog(db).await;
    let user = new_user(db, 1001).await;
    let due = place(db, &user, &[(pizza, 1)], STARS).await.unwrap();
    let cancelled = place(db, &user, &[(pizza, 1)], STARS).await.unwrap();
    cancel(db, &cancelled, ChangedBy::Customer).await;
    let _cash = place(db, &user, &[(pizza, 1)], PaymentTerms::default())
        .await
        .unwrap();
    let store = db.store();
    let deadline = T0 + Duration::minutes(30);
    assert!(
        store
            .expired_unpaid(deadline - Duration::seconds(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.expired_unpaid(deadline, 10).await.unwrap(), [due.id]);
}

async fn cancelling_a_paid_stars_order_refunds_it_and_the_refund_marks_it(db: &TestDatabase) {
    let (pizza, _) = catalog(db).await;
    let user = new_user(db, 1001).await;
    let order = place(db, &user, &[(pizza, 1)], STARS).await.unwrap();
    let payload = payload(db, &order).await;
    let store = db.store();
    store
        .record_payment(&paid(&payload, 1001, "XTR", 120, "charge-2"), T0)
        .await
        .unwrap();
    let applied = store
        .apply_status_change(StatusChange {
            order_id: order.id,
            from: OrderStatus::Confirmed,
            to: OrderStatus::Cancelled,
            by: ChangedBy::System,
            at: T0 + Duration::minutes(3),
            note: None,
            admin: None,
        })
        .await
        .unwrap();
    assert!(matches!(applied, Applied::Changed(_)));
    let refunds = db
        .query_i64("SELECT count(*) FROM outbox_events WHERE kind = 'stars_refund'")
        .await
        .unwrap();
    assert_eq!(refunds, 1);
    // Telegram's refunded_payment then marks the payment and the order.
    let refund = RefundedPayment {
        telegram_payment_charge_id: "charge-2".into(),
    };
    assert!(
        store
            .record_refund(&refund, T0 + Duration::minutes(4))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_refund(&refund, T0 + Duration::minutes(5))
            .await
            .unwrap()
    );
    let now = store.payable_order(order.id).await.unwrap().unwrap();
    assert_eq!(now.payment.status, PaymentStatus::Refunded);
    let unknown = RefundedPayment {
        telegram_payment_charge_id: "nobody".into(),
    };
    assert!(!store.record_refund(&unknown, T0).await.unwrap());
}

async fn an_order_a_manager_confirmed_unpaid_takes_its_payment_and_keeps_its_status(
    db: &TestDatabase,
) {
    let (pizza, _) = catalog(db).await;
    let user = new_user(db, 1001).await;
    let order = place(db, &user, &[(pizza, 1)], STARS).await.unwrap();
    let payload = payload(db, &order).await;
    let store = db.store();
    let confirmed = store
        .apply_status_change(StatusChange {
            order_id: order.id,
            from: OrderStatus::Pending,
            to: OrderStatus::Confirmed,
            by: ChangedBy::Manager(domain::TelegramId::parse(42).unwrap()),
            at: T0 + Duration::minutes(1),
            note: None,
            admin: None,
        })
        .await
        .unwrap();
    assert!(matches!(confirmed, Applied::Changed(_)));
    assert_eq!(
        store
            .record_payment(
                &paid(&payload, 1001, "XTR", 120, "charge-c"),
                T0 + Duration::minutes(2)
            )
            .await
            .unwrap(),
        PaymentRecorded::Recorded(PaymentOutcome::Applied)
    );
    let now = store.payable_order(order.id).await.unwrap().unwrap();
    assert_eq!(
        (now.status, now.payment.status),
        (OrderStatus::Confirmed, PaymentStatus::Paid)
    );
    // No second status change; the customer hears of the payment in a notice of its own.
    assert_eq!(store.history(order.id).await.unwrap().len(), 2);
    let told = db
        .query_i64(&format!(
            "SELECT count(*) FROM outbox_events WHERE order_id = {} AND kind = 'customer_notice'",
            order.id.0
        ))
        .await
        .unwrap();
    assert_eq!(told, 1);
}

async fn an_import_without_stars_prices_leaves_them_as_they_are(db: &TestDatabase) {
    use domain::catalog_admin::ChangeContext;
    use domain::catalog_io::ImportFile;
    use domain::ports::CatalogAdmin;
    let (pizza, _) = catalog(db).await;
    let store = db.store();
    let mut file = store.export().await.unwrap();
    // An older file: no `price_stars` anywhere.
    for product in &mut file.products {
        product.price_stars = None;
    }
    let json = serde_json::to_string(&file).unwrap();
    assert!(!json.contains("price_stars"), "{json}");
    let import = ImportFile::from_json(&json).unwrap();
    store
        .import(
            &import,
            false,
            ChangeContext {
                admin: domain::admin::Admin::Person(domain::TelegramId::parse(777).unwrap()),
                at: T0,
            },
        )
        .await
        .unwrap();
    let stars = format!(
        "SELECT CAST(price_stars AS bigint) FROM products WHERE id = {}",
        pizza.0
    );
    assert_eq!(db.query_i64(&stars).await.unwrap(), 120);
    // `null` removes it.
    let json = json.replace(
        "\"sort_order\":0}",
        "\"sort_order\":0,\"price_stars\":null}",
    );
    store
        .import(
            &ImportFile::from_json(&json).unwrap(),
            false,
            ChangeContext {
                admin: domain::admin::Admin::Person(domain::TelegramId::parse(777).unwrap()),
                at: T0,
            },
        )
        .await
        .unwrap();
    let left = format!(
        "SELECT count(*) FROM products WHERE id = {} AND price_stars IS NULL",
        pizza.0
    );
    assert_eq!(db.query_i64(&left).await.unwrap(), 1);
}

async fn the_same_payment_delivered_twice_at_once_is_recorded_once(db: &TestDatabase) {
    let (pizza, _) = catalog(db).await;
    let user = new_user(db, 1001).await;
    let order = place(db, &user, &[(pizza, 1)], STARS).await.unwrap();
    let payload = payload(db, &order).await;
    let (one, two) = (db.store(), db.store());
    let payment = paid(&payload, 1001, "XTR", 120, "charge-twice");
    let (a, b) = tokio::join!(
        one.record_payment(&payment, T0),
        two.record_payment(&payment, T0)
    );
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|outcome| matches!(outcome, PaymentRecorded::Duplicate));
    assert_eq!(
        outcomes,
        [
            PaymentRecorded::Recorded(PaymentOutcome::Applied),
            PaymentRecorded::Duplicate
        ]
    );
    assert_eq!(count(db, "payments").await, 1);
    assert_eq!(count(db, "order_status_history").await, 1);
}

/// A payment and a cancellation of the same order at once: whichever comes second sees
/// the first, and the payment is recorded either way — paying the order, or refunded.
async fn a_payment_racing_a_cancellation_is_never_lost(db: &TestDatabase) {
    let (pizza, _) = catalog(db).await;
    let user = new_user(db, 1001).await;
    let order = place(db, &user, &[(pizza, 1)], STARS).await.unwrap();
    let payload = payload(db, &order).await;
    let (one, two) = (db.store(), db.store());
    let payment = paid(&payload, 1001, "XTR", 120, "charge-race");
    let cancel = StatusChange {
        order_id: order.id,
        from: OrderStatus::Pending,
        to: OrderStatus::Cancelled,
        by: ChangedBy::System,
        at: T0,
        note: None,
        admin: None,
    };
    let (paid, cancelled) = tokio::join!(
        one.record_payment(&payment, T0),
        two.apply_status_change(cancel)
    );
    let (paid, cancelled) = (paid.unwrap(), cancelled.unwrap());
    assert_eq!(count(db, "payments").await, 1);
    let now = db.store().payable_order(order.id).await.unwrap().unwrap();
    let refunds = db
        .query_i64("SELECT count(*) FROM outbox_events WHERE kind = 'stars_refund'")
        .await
        .unwrap();
    match (paid, cancelled) {
        (PaymentRecorded::Recorded(PaymentOutcome::Applied), Applied::Stale { .. }) => {
            assert_eq!(
                (now.status, now.payment.status),
                (OrderStatus::Confirmed, PaymentStatus::Paid)
            );
            assert_eq!(refunds, 0);
        }
        (PaymentRecorded::Recorded(PaymentOutcome::RefundRequested), Applied::Changed(_)) => {
            assert_eq!(
                (now.status, now.payment.status),
                (OrderStatus::Cancelled, PaymentStatus::Unpaid)
            );
            assert_eq!(refunds, 1);
        }
        other => panic!("{other:?}"),
    }
}
