use std::sync::Mutex;

use super::*;
use crate::bot::{Update, UpdateKind};
use crate::lifecycle::Applied;
use crate::ports::{MockExclusiveRoles, MockOrderLifecycle, RoleLease};
use crate::values::UserId;

const NONCE: &str = "abcdefghijklmnopqrstuv";
const CUSTOMER: i64 = 1001;

fn at(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_766_400_000).unwrap() + time::Duration::minutes(minutes)
}

fn stars(amount: i64) -> AmountDue {
    AmountDue {
        currency: Currency::STARS,
        amount,
    }
}

fn unpaid(due: AmountDue) -> PayableOrder {
    PayableOrder {
        order_id: OrderId(7),
        status: OrderStatus::Pending,
        total_amount: Money::from_minor(45_000).unwrap(),
        customer: TelegramId::parse(CUSTOMER).unwrap(),
        payment: OrderPayment {
            status: PaymentStatus::Unpaid,
            due: Some(due),
            due_by: Some(at(30)),
            paid_at: None,
        },
        invoice_nonce: Some(NONCE.to_owned()),
        invoice_link: None,
    }
}

fn payload() -> String {
    format!("o:7:{NONCE}")
}

fn query(currency: &str, amount: i64, from: i64) -> PreCheckout {
    PreCheckout {
        query_id: "q1".into(),
        from,
        language_code: Some("en".into()),
        currency: currency.into(),
        total_amount: amount,
        payload: payload(),
    }
}

fn payment(currency: &str, amount: i64) -> ReceivedPayment {
    ReceivedPayment {
        from: CUSTOMER,
        currency: currency.into(),
        total_amount: amount,
        payload: payload(),
        telegram_payment_charge_id: "tg-1".into(),
        provider_payment_charge_id: None,
    }
}

#[test]
fn amounts_are_exact_in_the_currencys_smallest_units() {
    let rub = Currency::provider("RUB").unwrap();
    let money = |minor| Money::from_minor(minor).unwrap();
    assert_eq!(rub.smallest_units(money(74_970)), Some(74_970));
    let yen = Currency::provider("JPY").unwrap();
    assert_eq!(yen.smallest_units(money(100_000)), Some(1_000));
    assert_eq!(
        yen.smallest_units(money(1_050)),
        None,
        "a fraction of a yen"
    );
    assert_eq!(rub.display(74_970), "749.70 RUB");
    assert_eq!(yen.display(1_000), "1000 JPY");
    assert_eq!(Currency::STARS.display(120), "120 ⭐");
    assert_eq!(
        Currency::provider("XTR"),
        None,
        "Stars are not a provider's"
    );
    assert_eq!(Currency::parse("XTR"), Some(Currency::STARS));
    assert_eq!(Currency::provider("rub"), None);
}

#[test]
fn settings_name_the_key_that_is_wrong() {
    let terms = PaymentTerms::from_settings("provider", "EUR", 15).unwrap();
    assert_eq!(
        terms.mode,
        PaymentMode::Provider(Currency::provider("EUR").unwrap())
    );
    assert_eq!(terms.timeout, Duration::from_secs(900));
    assert_eq!(
        PaymentTerms::from_settings("stars", "nonsense", 30)
            .unwrap()
            .mode,
        PaymentMode::Stars,
        "the currency matters only for a provider"
    );
    assert_eq!(
        PaymentTerms::from_settings("cash", "RUB", 30)
            .unwrap_err()
            .key,
        "PAYMENTS"
    );
    assert_eq!(
        PaymentTerms::from_settings("provider", "ZZZ", 30)
            .unwrap_err()
            .key,
        "PAYMENT_CURRENCY"
    );
    assert_eq!(
        PaymentTerms::from_settings("off", "RUB", 0)
            .unwrap_err()
            .key,
        "PAYMENT_TIMEOUT_MINUTES"
    );
    let settings = PaymentSettings {
        payments: " Stars ".into(),
        ..PaymentSettings::default()
    };
    assert_eq!(settings.terms().unwrap().mode, PaymentMode::Stars);
    assert_eq!(
        PaymentSettings::default().terms().unwrap(),
        PaymentTerms::default()
    );
}

#[test]
fn what_an_order_owes_depends_on_the_mode() {
    let total = Money::from_minor(45_000).unwrap();
    let off = PaymentTerms::default();
    assert_eq!(amount_due(&off, total, Err(vec![ProductId(1)])), Ok(None));
    let stars_terms = PaymentTerms {
        mode: PaymentMode::Stars,
        ..off
    };
    assert_eq!(
        amount_due(&stars_terms, total, Ok(360)),
        Ok(Some(stars(360)))
    );
    assert_eq!(
        amount_due(&stars_terms, total, Err(vec![ProductId(2), ProductId(5)])),
        Err(PaymentDueError::NoStarsPrice(vec![
            ProductId(2),
            ProductId(5)
        ]))
    );
    let rub = PaymentTerms {
        mode: PaymentMode::Provider(Currency::provider("RUB").unwrap()),
        ..off
    };
    assert_eq!(
        amount_due(&rub, total, Err(vec![ProductId(1)]))
            .unwrap()
            .unwrap()
            .amount,
        45_000
    );
    assert_eq!(
        amount_due(&rub, Money::ZERO, Ok(0)),
        Err(PaymentDueError::NotPayable)
    );
    let placed = OrderPayment::at_placement(Some(stars(360)), at(0), &stars_terms);
    assert_eq!(placed.status, PaymentStatus::Unpaid);
    assert_eq!(placed.due_by, Some(at(30)));
    assert_eq!(
        OrderPayment::at_placement(None, at(0), &stars_terms),
        OrderPayment::default()
    );
}

#[test]
fn stars_pricing_sums_the_lines_and_names_products_without_a_price() {
    use crate::order::{OrderDraft, OrderInput, OrderLineInput, PlaceOrderError, price_order};
    let draft = OrderDraft::parse(OrderInput {
        items: vec![
            OrderLineInput {
                product_id: 1,
                quantity: 3,
            },
            OrderLineInput {
                product_id: 2,
                quantity: 1,
            },
        ],
        delivery_address: "ул. Пушкина, д. 10".into(),
        phone: "+79001234567".into(),
        comment: None,
    })
    .unwrap();
    let product = |id, stars| crate::Product {
        id: ProductId(id),
        category_id: crate::CategoryId(1),
        name: format!("Товар {id}"),
        description: None,
        price: Money::from_minor(10_000).unwrap(),
        images: vec![],
        is_active: true,
        sort_order: 0,
        stock: None,
        price_stars: stars,
    };
    let terms = PaymentTerms {
        mode: PaymentMode::Stars,
        ..PaymentTerms::default()
    };
    let priced = price_order(&draft, &[product(1, Some(50)), product(2, Some(7))], &terms).unwrap();
    assert_eq!(priced.payment, Some(stars(157)));
    match price_order(&draft, &[product(1, Some(50)), product(2, None)], &terms) {
        Err(PlaceOrderError::NoStarsPrice(ids)) => assert_eq!(ids, [ProductId(2)]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn payloads_round_trip_and_anything_else_is_not_ours() {
    let payload = InvoicePayload {
        order_id: OrderId(42),
        nonce: NONCE.into(),
    };
    assert_eq!(payload.to_payload(), format!("o:42:{NONCE}"));
    assert_eq!(InvoicePayload::parse(&payload.to_payload()), Some(payload));
    for bad in [
        "",
        "o:42",
        &format!("x:42:{NONCE}"),
        &format!("o:+42:{NONCE}"),
        &format!("o::{NONCE}"),
        "o:42:short",
        &format!("o:42:{NONCE}:more"),
        &format!("o:99999999999999999999:{NONCE}"),
        "o:42:abcdefghijklmnopqrstu!",
    ] {
        assert_eq!(InvoicePayload::parse(bad), None, "{bad}");
    }
    let a = InvoicePayload::new_nonce().unwrap();
    let b = InvoicePayload::new_nonce().unwrap();
    assert_ne!(a, b);
    assert!(InvoicePayload::parse(&format!("o:1:{a}")).is_some(), "{a}");
    assert!(
        InvoicePayload::parse(&format!("o:1:{a}"))
            .unwrap()
            .to_payload()
            .len()
            <= 128
    );
}

#[test]
fn a_pre_checkout_is_ok_only_for_the_customers_unpaid_pending_order_at_its_exact_amount() {
    let order = unpaid(stars(120));
    assert_eq!(
        judge_pre_checkout(Some(&order), &query("XTR", 120, CUSTOMER), at(1)),
        Ok(())
    );
    let refused = |order: &PayableOrder, query: &PreCheckout, now| {
        judge_pre_checkout(Some(order), query, now).unwrap_err()
    };
    assert_eq!(
        refused(&order, &query("XTR", 119, CUSTOMER), at(1)),
        Refusal::WrongAmount
    );
    assert_eq!(
        refused(&order, &query("RUB", 120, CUSTOMER), at(1)),
        Refusal::WrongAmount
    );
    assert_eq!(
        refused(&order, &query("XTR", 120, 2002), at(1)),
        Refusal::UnknownOrder
    );
    assert_eq!(
        refused(&order, &query("XTR", 120, CUSTOMER), at(30)),
        Refusal::Expired
    );
    let mut forged = query("XTR", 120, CUSTOMER);
    forged.payload = "o:7:zzzzzzzzzzzzzzzzzzzzzz".into();
    assert_eq!(refused(&order, &forged, at(1)), Refusal::UnknownOrder);
    let mut other = order.clone();
    other.order_id = OrderId(8);
    assert_eq!(
        refused(&other, &query("XTR", 120, CUSTOMER), at(1)),
        Refusal::UnknownOrder
    );
    let mut paid = order.clone();
    paid.payment.status = PaymentStatus::Paid;
    assert_eq!(
        refused(&paid, &query("XTR", 120, CUSTOMER), at(1)),
        Refusal::AlreadyPaid
    );
    let mut cancelled = order.clone();
    cancelled.status = OrderStatus::Cancelled;
    assert_eq!(
        refused(&cancelled, &query("XTR", 120, CUSTOMER), at(1)),
        Refusal::NotPending
    );
    let mut cash = order.clone();
    cash.payment = OrderPayment::default();
    assert_eq!(
        refused(&cash, &query("XTR", 120, CUSTOMER), at(1)),
        Refusal::NotPayable
    );
    assert_eq!(
        judge_pre_checkout(None, &query("XTR", 120, CUSTOMER), at(1)),
        Err(Refusal::UnknownOrder)
    );
    assert_eq!(
        Refusal::Expired.message(Some("en")),
        "The time to pay has run out. Please place the order again."
    );
    assert!(
        Refusal::Expired
            .message(Some("ru"))
            .starts_with("Время на оплату истекло")
    );
    assert!(Refusal::Expired.message(None).starts_with("Время"));
}

#[test]
fn a_payment_is_taken_by_its_pending_order_even_late_and_refunded_otherwise() {
    let order = unpaid(stars(120));
    assert_eq!(
        judge_payment(Some(&order), &payment("XTR", 120)),
        PaymentVerdict::Apply
    );
    // Past the deadline but not yet expired by the system: the money is there.
    let mut late = order.clone();
    late.payment.due_by = Some(at(-1));
    assert_eq!(
        judge_payment(Some(&late), &payment("XTR", 120)),
        PaymentVerdict::Apply
    );
    let mut cancelled = order.clone();
    cancelled.status = OrderStatus::Cancelled;
    let verdict = judge_payment(Some(&cancelled), &payment("XTR", 120));
    assert_eq!(verdict, PaymentVerdict::Refund(Refusal::NotPending));
    assert_eq!(
        verdict.outcome(&payment("XTR", 120)),
        PaymentOutcome::RefundRequested
    );
    let events = verdict.events(OrderId(7), &payment("XTR", 120), PaymentId(3), false);
    assert!(events.contains(&OutboxEvent::StarsRefund {
        order_id: OrderId(7),
        payment: PaymentId(3)
    }));
    assert!(events.contains(&OutboxEvent::CustomerNotice {
        order_id: OrderId(7),
        notice: Notice::LatePaymentRefunded
    }));
    // A provider's payment is the manager's to refund.
    let mut rub = unpaid(AmountDue {
        currency: Currency::provider("RUB").unwrap(),
        amount: 45_000,
    });
    rub.status = OrderStatus::Cancelled;
    let verdict = judge_payment(Some(&rub), &payment("RUB", 45_000));
    assert_eq!(
        verdict.outcome(&payment("RUB", 45_000)),
        PaymentOutcome::RefundManual
    );
    let events = verdict.events(OrderId(7), &payment("RUB", 45_000), PaymentId(3), false);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, OutboxEvent::StarsRefund { .. }))
    );
    assert!(events.contains(&OutboxEvent::ManagerNotice {
        order_id: OrderId(7),
        notice: Notice::LatePaymentToRefund
    }));
    assert_eq!(
        judge_payment(Some(&order), &payment("XTR", 1)),
        PaymentVerdict::Refund(Refusal::WrongAmount)
    );
    assert_eq!(
        PaymentVerdict::Apply.events(OrderId(7), &payment("XTR", 120), PaymentId(3), true),
        [OutboxEvent::ManagerNotice {
            order_id: OrderId(7),
            notice: Notice::Paid
        }]
    );
}

#[test]
fn cancelling_a_paid_order_refunds_stars_and_flags_a_providers_payment() {
    let mut paid = unpaid(stars(120)).payment;
    paid.status = PaymentStatus::Paid;
    let events = cancellation_refund_events(OrderId(7), &paid, Some(PaymentId(9)));
    assert_eq!(
        events[0],
        OutboxEvent::StarsRefund {
            order_id: OrderId(7),
            payment: PaymentId(9)
        }
    );
    assert!(cancellation_refund_events(OrderId(7), &unpaid(stars(1)).payment, None).is_empty());
    assert!(cancellation_refund_events(OrderId(7), &OrderPayment::default(), None).is_empty());
    paid.due = Some(AmountDue {
        currency: Currency::provider("USD").unwrap(),
        amount: 500,
    });
    let events = cancellation_refund_events(OrderId(7), &paid, Some(PaymentId(9)));
    assert_eq!(
        events[0],
        OutboxEvent::ManagerNotice {
            order_id: OrderId(7),
            notice: Notice::CancelledPaidToRefund
        }
    );
}

#[test]
fn payment_updates_are_read_and_malformed_ones_are_not_payments() {
    let pre = serde_json::json!({"update_id": 5, "pre_checkout_query": {
        "id": "q1", "from": {"id": CUSTOMER, "language_code": "en"}, "currency": "XTR",
        "total_amount": 120, "invoice_payload": payload()}});
    assert_eq!(
        Update::from_json(&pre).unwrap().kind,
        UpdateKind::PreCheckout(query("XTR", 120, CUSTOMER))
    );
    let paid = serde_json::json!({"update_id": 6, "message": {"chat": {"id": CUSTOMER},
        "from": {"id": CUSTOMER}, "successful_payment": {"currency": "XTR", "total_amount": 120,
        "invoice_payload": payload(), "telegram_payment_charge_id": "tg-1",
        "provider_payment_charge_id": ""}}});
    assert_eq!(
        Update::from_json(&paid).unwrap().kind,
        UpdateKind::Payment(payment("XTR", 120))
    );
    let refunded = serde_json::json!({"update_id": 7, "message": {"chat": {"id": CUSTOMER},
        "refunded_payment": {"currency": "XTR", "total_amount": 120,
        "invoice_payload": payload(), "telegram_payment_charge_id": "tg-1"}}});
    assert_eq!(
        Update::from_json(&refunded).unwrap().kind,
        UpdateKind::Refunded(RefundedPayment {
            telegram_payment_charge_id: "tg-1".into()
        })
    );
    for broken in [
        serde_json::json!({"update_id": 8, "pre_checkout_query": {"id": 17}}),
        serde_json::json!({"update_id": 9, "message": {"from": {"id": 1},
            "successful_payment": {"currency": "XTR", "total_amount": "120"}}}),
        serde_json::json!({"update_id": 10, "message": {"from": {"id": 1},
            "successful_payment": {"currency": "XTR", "total_amount": 120,
            "invoice_payload": "x", "telegram_payment_charge_id": ""}}}),
    ] {
        assert_eq!(
            Update::from_json(&broken).unwrap().kind,
            UpdateKind::Ignored,
            "{broken}"
        );
    }
}

fn customer() -> User {
    User {
        id: UserId(1),
        telegram_id: TelegramId::parse(CUSTOMER).unwrap(),
        username: None,
        first_name: None,
        last_name: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

fn payment_service(
    payments: MockPaymentRepository,
    gateway: MockPaymentGateway,
    orders: MockOrderLifecycle,
) -> PaymentService {
    PaymentService::new(
        Arc::new(payments),
        Arc::new(orders),
        Some(Arc::new(gateway)),
        Arc::new(tokio::sync::Notify::new()),
    )
}

#[tokio::test]
async fn an_invoice_is_made_once_with_the_stored_nonce_and_asked_again_returns_it() {
    let mut payments = MockPaymentRepository::new();
    let mut order = unpaid(stars(120));
    order.invoice_nonce = None;
    payments
        .expect_payable_order()
        .times(1)
        .returning(move |_| Ok(Some(order.clone())));
    // Another request claimed a nonce first: its nonce is the one used.
    payments
        .expect_claim_invoice_nonce()
        .times(1)
        .returning(|_, _| Ok(NONCE.to_owned()));
    payments
        .expect_store_invoice_link()
        .withf(|order, nonce, link| order.0 == 7 && nonce == NONCE && link == "https://t.me/$x")
        .times(1)
        .returning(|_, _, _| Ok(()));
    let mut gateway = MockPaymentGateway::new();
    gateway
        .expect_create_invoice_link()
        .withf(|request| request.payload == format!("o:7:{NONCE}") && request.due == stars(120))
        .times(1)
        .returning(|_| Ok("https://t.me/$x".into()));
    let service = payment_service(payments, gateway, MockOrderLifecycle::new());
    let invoice = service
        .invoice(&customer(), OrderId(7), at(1))
        .await
        .unwrap();
    assert_eq!(invoice.invoice_link, "https://t.me/$x");
    assert_eq!(invoice.expires_at, Some(at(30)));

    // Asked again: the stored link, without Telegram.
    let mut payments = MockPaymentRepository::new();
    let mut linked = unpaid(stars(120));
    linked.invoice_link = Some("https://t.me/$x".into());
    payments
        .expect_payable_order()
        .returning(move |_| Ok(Some(linked.clone())));
    let service = payment_service(
        payments,
        MockPaymentGateway::new(),
        MockOrderLifecycle::new(),
    );
    let invoice = service
        .invoice(&customer(), OrderId(7), at(2))
        .await
        .unwrap();
    assert_eq!(invoice.invoice_link, "https://t.me/$x");
    // Someone else's order is not found; a late one has expired.
    assert!(matches!(
        service
            .invoice(
                &User {
                    telegram_id: TelegramId::parse(2002).unwrap(),
                    ..customer()
                },
                OrderId(7),
                at(2)
            )
            .await,
        Err(InvoiceError::NotFound)
    ));
    assert!(matches!(
        service.invoice(&customer(), OrderId(7), at(31)).await,
        Err(InvoiceError::Expired)
    ));
}

#[tokio::test]
async fn a_pre_checkout_is_answered_with_the_verdict_in_the_customers_language() {
    let mut payments = MockPaymentRepository::new();
    payments
        .expect_payable_order()
        .returning(|_| Ok(Some(unpaid(stars(120)))));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let mut gateway = MockPaymentGateway::new();
    let seen = Arc::clone(&answers);
    gateway
        .expect_answer_pre_checkout()
        .returning(move |id, message| {
            seen.lock().unwrap().push((id.to_owned(), message));
            Ok(())
        });
    let service = payment_service(payments, gateway, MockOrderLifecycle::new());
    assert_eq!(
        service
            .pre_checkout(&query("XTR", 120, CUSTOMER), at(1))
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        service
            .pre_checkout(&query("XTR", 100, CUSTOMER), at(1))
            .await
            .unwrap(),
        Err(Refusal::WrongAmount)
    );
    let answers = answers.lock().unwrap();
    assert_eq!(answers[0], ("q1".to_owned(), None));
    assert_eq!(
        answers[1].1.as_deref(),
        Some("The order's amount has changed. Please open the payment again.")
    );
}

struct Lease;

#[async_trait]
impl RoleLease for Lease {
    async fn still_held(&mut self) -> bool {
        true
    }
    async fn release(self: Box<Self>) {}
}

#[tokio::test]
async fn expiry_cancels_the_due_orders_by_the_system_only_while_it_holds_the_role() {
    let mut payments = MockPaymentRepository::new();
    // Two minutes of grace after the deadline, for payments approved just before it.
    payments
        .expect_expired_unpaid()
        .withf(|cutoff, _| *cutoff == at(29))
        .times(1)
        .returning(|_, _| Ok(vec![OrderId(7), OrderId(8)]));
    let mut orders = MockOrderLifecycle::new();
    // Order 8 was paid meanwhile: it is CONFIRMED, and left alone.
    orders.expect_current_status().returning(|_, id| {
        Ok(Some(if id.0 == 7 {
            OrderStatus::Pending
        } else {
            OrderStatus::Confirmed
        }))
    });
    orders
        .expect_apply_status_change()
        .withf(|change| {
            change.order_id == OrderId(7)
                && change.to == OrderStatus::Cancelled
                && change.by == ChangedBy::System
                && change.note.as_deref() == Some(EXPIRY_NOTE)
        })
        .times(1)
        .returning(|_| {
            Ok(Applied::Changed(Box::new(crate::Order {
                id: OrderId(7),
                user_id: UserId(1),
                status: OrderStatus::Cancelled,
                total_amount: Money::ZERO,
                delivery_address: String::new(),
                phone: String::new(),
                comment: None,
                created_at: at(0),
                updated_at: at(31),
                items: vec![],
                payment: OrderPayment::default(),
            })))
        });
    let service = payment_service(payments, MockPaymentGateway::new(), orders);
    let mut roles = MockExclusiveRoles::new();
    let mut taken = false;
    roles.expect_try_take().returning(move |role| {
        assert_eq!(role, EXPIRY_ROLE);
        // The first round holds the role; another instance holds it on the second.
        let first = !taken;
        taken = true;
        Ok(first.then(|| Box::new(Lease) as Box<dyn RoleLease>))
    });
    assert_eq!(service.expire_due(&roles, at(31)).await.unwrap(), 1);
    assert_eq!(service.expire_due(&roles, at(32)).await.unwrap(), 0);
}

#[tokio::test]
async fn a_pre_checkout_the_database_cannot_check_is_refused_with_a_try_again() {
    let mut payments = MockPaymentRepository::new();
    payments.expect_payable_order().returning(|_| {
        Err(RepositoryError::Unavailable(anyhow::anyhow!(
            "connection refused"
        )))
    });
    let mut gateway = MockPaymentGateway::new();
    gateway
        .expect_answer_pre_checkout()
        .withf(|_, message| {
            message.as_deref()
                == Some("The order could not be checked. Please try again in a minute.")
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let service = payment_service(payments, gateway, MockOrderLifecycle::new());
    assert_eq!(
        service
            .pre_checkout(&query("XTR", 120, CUSTOMER), at(1))
            .await
            .unwrap(),
        Err(Refusal::Unavailable)
    );
}

#[test]
fn an_order_a_manager_moved_on_unpaid_still_takes_its_payment_and_says_so() {
    let mut confirmed = unpaid(stars(120));
    confirmed.status = OrderStatus::Confirmed;
    // Even past the deadline: only the system's cancellation ends the wait.
    confirmed.payment.due_by = Some(at(-60));
    assert_eq!(
        judge_payment(Some(&confirmed), &payment("XTR", 120)),
        PaymentVerdict::Apply
    );
    let now = OffsetDateTime::UNIX_EPOCH;
    assert_eq!(confirmation(OrderId(5), confirmed.status, now), None);
    let change = confirmation(OrderId(5), OrderStatus::Pending, now).unwrap();
    assert_eq!(
        (change.from, change.to, change.by),
        (
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            ChangedBy::System
        )
    );
    let events =
        PaymentVerdict::Apply.events(OrderId(7), &payment("XTR", 120), PaymentId(3), false);
    assert_eq!(
        events,
        [
            OutboxEvent::ManagerNotice {
                order_id: OrderId(7),
                notice: Notice::Paid
            },
            OutboxEvent::ManagerMessageUpdate {
                order_id: OrderId(7)
            },
            OutboxEvent::CustomerNotice {
                order_id: OrderId(7),
                notice: Notice::Paid
            },
        ]
    );
    // But not twice, nor by someone else: refunded, and the order's customer is not told
    // about a payment that was not theirs.
    let mut paid = confirmed.clone();
    paid.payment.status = PaymentStatus::Paid;
    assert_eq!(
        judge_payment(Some(&paid), &payment("XTR", 120)),
        PaymentVerdict::Refund(Refusal::AlreadyPaid)
    );
    let mut stranger = payment("XTR", 120);
    stranger.from = 2002;
    let verdict = judge_payment(Some(&confirmed), &stranger);
    assert_eq!(verdict, PaymentVerdict::Refund(Refusal::UnknownOrder));
    let events = verdict.events(OrderId(7), &stranger, PaymentId(4), false);
    assert!(events.contains(&OutboxEvent::StarsRefund {
        order_id: OrderId(7),
        payment: PaymentId(4)
    }));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, OutboxEvent::CustomerNotice { .. }))
    );
}

#[tokio::test]
async fn a_pre_checkout_is_answered_before_its_update_is_recorded_and_an_unreadable_one_is_refused()
{
    use crate::bot::{BotService, Handled};
    use crate::ports::{MockBotReplies, MockUpdateLog};
    let mut payments = MockPaymentRepository::new();
    payments
        .expect_payable_order()
        .returning(|_| Ok(Some(unpaid(stars(120)))));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let mut gateway = MockPaymentGateway::new();
    let seen = Arc::clone(&answers);
    gateway
        .expect_answer_pre_checkout()
        .returning(move |id, message| {
            seen.lock().unwrap().push((id.to_owned(), message));
            Ok(())
        });
    // The update log is down: the answer goes out all the same.
    let mut log = MockUpdateLog::new();
    log.expect_first_seen().returning(|_, _| {
        Err(RepositoryError::Unavailable(anyhow::anyhow!(
            "database down"
        )))
    });
    let bot = BotService::new(
        Arc::new(log),
        Arc::new(MockBotReplies::new()),
        Arc::new(MockOrderLifecycle::new()),
        vec![],
        Arc::new(tokio::sync::Notify::new()),
    )
    .with_payments(payment_service(
        payments,
        gateway,
        MockOrderLifecycle::new(),
    ));
    let update = |body: serde_json::Value| Update::from_json(&body).unwrap();
    let pre = serde_json::json!({"update_id": 5, "pre_checkout_query": {
        "id": "q1", "from": {"id": CUSTOMER, "language_code": "en"}, "currency": "XTR",
        "total_amount": 120, "invoice_payload": payload()}});
    assert_eq!(
        bot.handle(update(pre), at(1)).await.unwrap(),
        Handled::PreCheckoutAnswered { ok: true }
    );
    let unreadable = serde_json::json!({"update_id": 6, "pre_checkout_query": {
        "id": "q2", "from": {"id": CUSTOMER}, "currency": "XTR"}});
    assert_eq!(
        update(unreadable.clone()).kind,
        UpdateKind::UnreadablePreCheckout {
            query_id: "q2".into()
        }
    );
    assert_eq!(
        bot.handle(update(unreadable), at(1)).await.unwrap(),
        Handled::PreCheckoutAnswered { ok: false }
    );
    let answers = answers.lock().unwrap();
    assert_eq!(answers[0], ("q1".to_owned(), None));
    assert_eq!(answers[1].0, "q2");
    assert!(answers[1].1.is_some());
}
