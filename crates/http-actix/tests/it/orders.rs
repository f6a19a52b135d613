use actix_web::test::TestRequest;
use domain::order::PlaceOrderError;
use domain::{OrderId, OrderStatus, ProductId, RepositoryError, UserId};
use mockall::predicate::eq;
use serde_json::json;

use crate::support::*;

fn post_order(body: serde_json::Value) -> TestRequest {
    TestRequest::post()
        .uri("/api/v1/orders")
        .insert_header(("Authorization", auth_header(987_654_321)))
        .set_json(body)
}

fn valid_body() -> serde_json::Value {
    json!({
        "items": [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1}],
        "delivery_address": "ул. Пушкина, д. 10",
        "phone": "+79001234567",
        "comment": "Домофон не работает"
    })
}

#[actix_web::test]
async fn placing_an_order_returns_201_location_and_the_order() {
    let mut mocks = Mocks::new().with_customer();
    mocks
        .orders
        .expect_place()
        .withf(|new| {
            new.user_id == UserId(1)
                && new.draft.lines().len() == 2
                && new.draft.phone().as_str() == "+79001234567"
        })
        .times(1)
        .returning(|_| Ok(order(123)));
    let app = mocks.app().await;

    let response = actix_web::test::call_service(&app, post_order(valid_body()).to_request()).await;
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(
        response.headers().get("location").unwrap(),
        "/api/v1/orders/123"
    );
    let body: serde_json::Value = actix_web::test::read_body_json(response).await;
    assert_eq!(
        body,
        json!({
            "id": 123, "status": "PENDING", "total_amount": "800.00",
            "delivery_address": "ул. Пушкина, д. 10", "phone": "+79001234567",
            "comment": "Домофон не работает",
            "created_at": "2025-12-22T12:30:00Z", "updated_at": "2025-12-22T12:30:00Z",
            "items": [
                {"product_id": 1, "product_name": "Товар 1", "quantity": 2, "price": "250.00"},
                {"product_id": 2, "product_name": "Товар 2", "quantity": 1, "price": "300.00"}
            ],
            "payment_status": "not_required", "payment_currency": null, "payment_amount": null,
            "payment_due_by": null, "paid_at": null
        })
    );
}

#[actix_web::test]
async fn a_client_cannot_set_price_total_status_or_user() {
    let app = Mocks::new().with_customer().app().await;
    for field in ["total_amount", "status", "user_id"] {
        let mut body = valid_body();
        body[field] = json!("1");
        let problem = problem(&app, post_order(body), 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field);
        assert_eq!(problem["errors"][0]["code"], "unknown_field");
    }
    let mut body = valid_body();
    body["items"][0]["price"] = json!("0.01");
    let problem = problem(&app, post_order(body), 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "items[0].price");
}

#[actix_web::test]
async fn validation_failures_name_every_field() {
    let app = Mocks::new().with_customer().app().await;
    let body = json!({
        "items": [{"product_id": 1, "quantity": 0}],
        "delivery_address": " ",
        "phone": "nope",
    });
    let problem = problem(&app, post_order(body), 422, "validation_failed").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["items[0].quantity", "delivery_address", "phone"]);
}

#[actix_web::test]
async fn wrong_types_and_missing_fields_are_422_naming_the_path() {
    let app = Mocks::new().with_customer().app().await;
    let mut body = valid_body();
    body["items"][1]["quantity"] = json!("two");
    let p = problem(&app, post_order(body), 422, "validation_failed").await;
    assert_eq!(p["errors"][0]["field"], "items[1].quantity");
    assert_eq!(p["errors"][0]["code"], "invalid_type");

    let mut body = valid_body();
    body.as_object_mut().unwrap().remove("phone");
    let p = problem(&app, post_order(body), 422, "validation_failed").await;
    assert_eq!(p["errors"][0]["field"], "phone");
    assert_eq!(p["errors"][0]["code"], "required");
}

#[actix_web::test]
async fn malformed_json_is_400() {
    let app = Mocks::new().with_customer().app().await;
    let req = TestRequest::post()
        .uri("/api/v1/orders")
        .insert_header(("Authorization", auth_header(1)))
        .insert_header(("Content-Type", "application/json"))
        .set_payload("{\"items\": [");
    problem(&app, req, 400, "malformed_json").await;
}

#[actix_web::test]
async fn a_body_that_is_not_json_is_415() {
    let app = Mocks::new().with_customer().app().await;
    let req = TestRequest::post()
        .uri("/api/v1/orders")
        .insert_header(("Authorization", auth_header(1)))
        .insert_header(("Content-Type", "text/plain"))
        .set_payload("hello");
    problem(&app, req, 415, "unsupported_media_type").await;
}

#[actix_web::test]
async fn a_body_over_64_kib_is_413() {
    let app = Mocks::new().with_customer().app().await;
    let mut body = valid_body();
    body["comment"] = json!("x".repeat(70 * 1024));
    problem(&app, post_order(body), 413, "payload_too_large").await;
}

#[actix_web::test]
async fn unknown_and_inactive_products_are_422_listing_ids() {
    let mut mocks = Mocks::new().with_customer();
    let mut calls = 0;
    mocks.orders.expect_place().times(2).returning(move |_| {
        calls += 1;
        if calls == 1 {
            Err(PlaceOrderError::ProductNotFound(vec![
                ProductId(1),
                ProductId(2),
            ]))
        } else {
            Err(PlaceOrderError::ProductUnavailable(vec![ProductId(2)]))
        }
    });
    let app = mocks.app().await;
    let p = problem(&app, post_order(valid_body()), 422, "product_not_found").await;
    assert_eq!(p["product_ids"], json!([1, 2]));
    let p = problem(&app, post_order(valid_body()), 422, "product_unavailable").await;
    assert_eq!(p["product_ids"], json!([2]));
}

#[actix_web::test]
async fn a_repository_error_is_a_500_with_no_details() {
    let mut mocks = Mocks::new().with_customer();
    mocks.orders.expect_place().returning(|_| {
        Err(PlaceOrderError::Repository(RepositoryError::Unknown(
            anyhow::anyhow!("duplicate key value violates unique constraint \"orders_pkey\""),
        )))
    });
    let app = mocks.app().await;
    let p = problem(&app, post_order(valid_body()), 500, "internal_error").await;
    let text = p.to_string();
    assert!(
        !text.contains("orders_pkey") && !text.contains("duplicate"),
        "{text}"
    );
    assert_eq!(
        p["detail"],
        "something went wrong on our side; please retry later"
    );
}

#[actix_web::test]
async fn ordering_needs_authentication() {
    let app = Mocks::new().app().await;
    let req = TestRequest::post()
        .uri("/api/v1/orders")
        .set_json(valid_body());
    problem(&app, req, 401, "missing_authorization").await;
}

#[actix_web::test]
async fn my_orders_are_listed_for_the_caller_only() {
    let mut mocks = Mocks::new().with_customer();
    mocks
        .orders
        .expect_list_for_user()
        .withf(|user, page| *user == UserId(1) && page.limit() == 10)
        .returning(|_, page| {
            Ok(domain::Paginated {
                items: vec![order(2), order(1)],
                total: 2,
                page,
            })
        });
    let app = mocks.app().await;
    let req = TestRequest::get()
        .uri("/api/v1/orders/my?limit=10")
        .insert_header(("Authorization", auth_header(987_654_321)));
    let raw = call_raw(&app, req).await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("x-total-count"), Some("2"));
    let body = raw.json();
    assert_eq!(body[0]["id"], 2);
    assert_eq!(body[1]["items"][0]["price"], "250.00");
}

#[actix_web::test]
async fn my_order_by_id() {
    let mut mocks = Mocks::new().with_customer();
    mocks
        .orders
        .expect_find_for_user()
        .with(eq(UserId(1)), eq(OrderId(123)))
        .returning(|_, id| Ok(Some(order(id.0))));
    mocks
        .lifecycle
        .expect_history()
        .with(eq(OrderId(123)))
        .returning(|_| Ok(history_of_confirmed()));
    let app = mocks.app().await;
    let req = TestRequest::get()
        .uri("/api/v1/orders/123")
        .insert_header(("Authorization", auth_header(987_654_321)));
    let (status, _, body) = call(&app, req).await;
    assert_eq!((status, body["id"].as_i64()), (200, Some(123)));
}

#[actix_web::test]
async fn someone_elses_order_is_404_not_403() {
    let mut mocks = Mocks::new().with_customer();
    mocks
        .orders
        .expect_find_for_user()
        .returning(|_, _| Ok(None));
    let app = mocks.app().await;
    let req = TestRequest::get()
        .uri("/api/v1/orders/5")
        .insert_header(("Authorization", auth_header(987_654_321)));
    problem(&app, req, 404, "not_found").await;
}

fn keyed_post(key: &str, body: serde_json::Value) -> TestRequest {
    post_order(body).insert_header(("Idempotency-Key", key))
}

#[actix_web::test]
async fn a_keyed_order_is_remembered_and_a_retry_is_replayed() {
    use domain::idempotency::{KeyClaim, StoredResponse};
    use std::sync::{Arc, Mutex};

    let stored: Arc<Mutex<Option<StoredResponse>>> = Arc::default();
    let mut mocks = Mocks::new().with_customer();
    let seen = stored.clone();
    mocks
        .idempotency
        .expect_claim()
        .returning(move |_, key, _, _| {
            assert_eq!(key.as_str(), "checkout-42");
            Ok(match seen.lock().unwrap().clone() {
                None => KeyClaim::Claimed,
                Some(response) => KeyClaim::Replay(response),
            })
        });
    let keep = stored.clone();
    mocks
        .idempotency
        .expect_complete()
        .times(1)
        .returning(move |_, _, response| {
            *keep.lock().unwrap() = Some(response);
            Ok(())
        });
    mocks
        .orders
        .expect_place()
        .withf(|new| new.idempotency_key.as_ref().map(|k| k.as_str()) == Some("checkout-42"))
        .times(1)
        .returning(|_| Ok(order(123)));
    let app = mocks.app().await;

    let first =
        actix_web::test::call_service(&app, keyed_post("checkout-42", valid_body()).to_request())
            .await;
    assert_eq!(first.status().as_u16(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = actix_web::test::read_body(first).await;

    let retry =
        actix_web::test::call_service(&app, keyed_post("checkout-42", valid_body()).to_request())
            .await;
    assert_eq!(retry.status().as_u16(), 201);
    assert_eq!(retry.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(
        retry.headers().get("location").unwrap(),
        "/api/v1/orders/123"
    );
    assert_eq!(
        actix_web::test::read_body(retry).await,
        first_body,
        "the same body"
    );
}

#[actix_web::test]
async fn the_fingerprint_ignores_formatting_but_not_content() {
    use domain::idempotency::{KeyClaim, RequestFingerprint};
    use std::sync::{Arc, Mutex};

    let prints: Arc<Mutex<Vec<RequestFingerprint>>> = Arc::default();
    let mut mocks = Mocks::new().with_customer();
    let seen = prints.clone();
    mocks
        .idempotency
        .expect_claim()
        .returning(move |_, _, print, _| {
            seen.lock().unwrap().push(print);
            Ok(KeyClaim::InProgress)
        });
    let app = mocks.app().await;
    let compact = serde_json::to_string(&valid_body()).unwrap();
    let pretty = serde_json::to_string_pretty(&valid_body()).unwrap();
    let mut other = valid_body();
    other["items"][0]["quantity"] = json!(3);
    for body in [compact, pretty, other.to_string()] {
        let req = post_order(json!({}))
            .insert_header(("Idempotency-Key", "k"))
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body);
        problem(&app, req, 409, "idempotency_key_in_use").await;
    }
    let prints = prints.lock().unwrap();
    assert_eq!(
        prints[0], prints[1],
        "whitespace does not make a different request"
    );
    assert_ne!(
        prints[0], prints[2],
        "a different cart is a different request"
    );
}

#[actix_web::test]
async fn a_reused_key_is_422_and_a_busy_key_is_409() {
    use domain::idempotency::KeyClaim;
    for (claim, status, code) in [
        (KeyClaim::Mismatch, 422, "idempotency_key_reused"),
        (KeyClaim::InProgress, 409, "idempotency_key_in_use"),
    ] {
        let mut mocks = Mocks::new().with_customer();
        mocks
            .idempotency
            .expect_claim()
            .returning(move |_, _, _, _| Ok(claim.clone()));
        mocks.orders.expect_place().times(0);
        let app = mocks.app().await;
        problem(&app, keyed_post("k-1", valid_body()), status, code).await;
    }
}

#[actix_web::test]
async fn a_malformed_idempotency_key_is_422_naming_the_header() {
    let app = Mocks::new().with_customer().app().await;
    let body = problem(
        &app,
        keyed_post(&"x".repeat(256), valid_body()),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "Idempotency-Key");
}

#[actix_web::test]
async fn insufficient_stock_is_409_listing_what_is_available() {
    use domain::order::StockShortage;
    let mut mocks = Mocks::new().with_customer();
    mocks.orders.expect_place().returning(|_| {
        Err(PlaceOrderError::InsufficientStock(vec![StockShortage {
            product_id: ProductId(1),
            requested: 3,
            available: 1,
        }]))
    });
    let app = mocks.app().await;
    let p = problem(&app, post_order(valid_body()), 409, "insufficient_stock").await;
    assert_eq!(
        p["products"],
        json!([{"product_id": 1, "requested": 3, "available": 1}])
    );
}

fn history_of_confirmed() -> Vec<domain::lifecycle::StatusHistoryEntry> {
    use domain::lifecycle::{ChangedBy, StatusHistoryEntry};
    let at = time::macros::datetime!(2025-12-22 12:30:00 UTC);
    vec![
        StatusHistoryEntry {
            from: None,
            status: OrderStatus::Pending,
            by: ChangedBy::Customer,
            at,
            note: None,
        },
        StatusHistoryEntry {
            from: Some(OrderStatus::Pending),
            status: OrderStatus::Cancelled,
            by: ChangedBy::Customer,
            at: at + time::Duration::minutes(5),
            note: None,
        },
    ]
}

#[actix_web::test]
async fn one_order_carries_its_history() {
    let mut mocks = Mocks::new().with_customer();
    mocks
        .orders
        .expect_find_for_user()
        .returning(|_, id| Ok(Some(order(id.0))));
    mocks
        .lifecycle
        .expect_history()
        .returning(|_| Ok(history_of_confirmed()));
    let app = mocks.app().await;
    let req = TestRequest::get()
        .uri("/api/v1/orders/5")
        .insert_header(("Authorization", auth_header(987_654_321)));
    let (status, _, body) = call(&app, req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["history"],
        json!([
            {"status": "PENDING", "at": "2025-12-22T12:30:00Z", "by": "customer"},
            {"status": "CANCELLED", "at": "2025-12-22T12:35:00Z", "by": "customer"}
        ])
    );
}

#[actix_web::test]
async fn a_customer_cancels_a_pending_order_of_theirs() {
    let mut mocks = Mocks::new().with_customer();
    mocks
        .lifecycle
        .expect_current_status()
        .returning(|_, _| Ok(Some(OrderStatus::Pending)));
    mocks
        .lifecycle
        .expect_apply_status_change()
        .withf(|change| {
            change.to == OrderStatus::Cancelled
                && change.from == OrderStatus::Pending
                && change.by == domain::lifecycle::ChangedBy::Customer
        })
        .times(1)
        .returning(|change| {
            let mut cancelled = order(change.order_id.0);
            cancelled.status = OrderStatus::Cancelled;
            Ok(domain::lifecycle::Applied::Changed(Box::new(cancelled)))
        });
    mocks
        .lifecycle
        .expect_history()
        .returning(|_| Ok(history_of_confirmed()));
    let app = mocks.app().await;
    let req = TestRequest::post()
        .uri("/api/v1/orders/5/cancel")
        .insert_header(("Authorization", auth_header(987_654_321)));
    let (status, _, body) = call(&app, req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "CANCELLED");
    assert_eq!(body["history"][1]["status"], "CANCELLED");
}

#[actix_web::test]
async fn a_confirmed_order_is_not_cancellable_and_someone_elses_is_not_found() {
    let mut mocks = Mocks::new().with_customer();
    mocks
        .lifecycle
        .expect_current_status()
        .returning(|_, id| Ok((id.0 == 5).then_some(OrderStatus::Confirmed)));
    mocks.lifecycle.expect_apply_status_change().never();
    let app = mocks.app().await;
    let cancel = |id: i64| {
        TestRequest::post()
            .uri(&format!("/api/v1/orders/{id}/cancel"))
            .insert_header(("Authorization", auth_header(987_654_321)))
    };
    let body = problem(&app, cancel(5), 409, "order_not_cancellable").await;
    assert!(
        body["detail"].as_str().unwrap().contains("CONFIRMED"),
        "{body}"
    );
    let body = problem(&app, cancel(6), 404, "not_found").await;
    assert_eq!(body["detail"], "Order not found");
    // Without initData: 401, nothing read.
    let app = Mocks::new().app().await;
    problem(
        &app,
        TestRequest::post().uri("/api/v1/orders/5/cancel"),
        401,
        "missing_authorization",
    )
    .await;
}

/// The invoice route's answers: each refusal of the domain is its problem, and
/// Telegram's refusal a 502 without its details.
#[actix_web::test]
async fn an_invoice_is_refused_with_a_code_for_each_reason() {
    use domain::payments::{AmountDue, Currency, OrderPayment, PayableOrder, PaymentStatus};
    let now = time::OffsetDateTime::now_utc();
    let payable = move |id: i64| {
        let mut order = PayableOrder {
            order_id: domain::OrderId(id),
            status: OrderStatus::Pending,
            total_amount: domain::Money::ZERO,
            customer: domain::TelegramId::parse(987_654_321).unwrap(),
            payment: OrderPayment {
                status: PaymentStatus::Unpaid,
                due: Some(AmountDue {
                    currency: Currency::STARS,
                    amount: 120,
                }),
                due_by: Some(now + time::Duration::minutes(30)),
                paid_at: None,
            },
            invoice_nonce: None,
            invoice_link: None,
        };
        match id {
            1 => order.payment = OrderPayment::default(),
            2 => order.payment.status = PaymentStatus::Paid,
            3 => order.status = OrderStatus::Cancelled,
            4 => order.payment.due_by = Some(now - time::Duration::minutes(1)),
            6 => order.customer = domain::TelegramId::parse(1).unwrap(),
            _ => {}
        }
        order
    };
    let mut mocks = Mocks::new().with_customer();
    mocks
        .payments
        .expect_payable_order()
        .returning(move |id| Ok((id.0 != 7).then(|| payable(id.0))));
    mocks
        .payments
        .expect_claim_invoice_nonce()
        .returning(|_, nonce| Ok(nonce.to_owned()));
    let mut gateway = domain::payments::MockPaymentGateway::new();
    gateway.expect_create_invoice_link().returning(|request| {
        Err(if request.order_id.0 == 5 {
            domain::ports::NotifyError::Permanent {
                reason: "telegram createInvoiceLink failed with 400: CURRENCY_TOTAL_AMOUNT_INVALID"
                    .into(),
            }
        } else {
            domain::ports::NotifyError::Transient {
                reason: "telegram createInvoiceLink failed with 502".into(),
                retry_after: None,
            }
        })
    });
    mocks.gateway = Some(gateway);
    let app = mocks.app().await;
    let invoice = |id: i64| {
        TestRequest::post()
            .uri(&format!("/api/v1/orders/{id}/invoice"))
            .insert_header(("Authorization", auth_header(987_654_321)))
    };
    for (id, status, code) in [
        (1, 409, "payment_not_required"),
        (2, 409, "order_already_paid"),
        (3, 409, "order_not_payable"),
        (4, 409, "payment_expired"),
        (6, 404, "not_found"),
        (7, 404, "not_found"),
    ] {
        let body = problem(&app, invoice(id), status, code).await;
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    }
    let body = problem(&app, invoice(3), 409, "order_not_payable").await;
    assert_eq!(body["current_status"], "CANCELLED");
    let body = problem(&app, invoice(5), 409, "invoice_refused").await;
    assert!(
        !body.to_string().contains("CURRENCY_TOTAL_AMOUNT_INVALID"),
        "{body}"
    );
    problem(&app, invoice(8), 502, "payment_gateway_error").await;
    problem(&app, invoice(0), 422, "validation_failed").await;
    // Without initData: 401.
    let anonymous = TestRequest::post().uri("/api/v1/orders/5/invoice");
    problem(&app, anonymous, 401, "missing_authorization").await;
}
