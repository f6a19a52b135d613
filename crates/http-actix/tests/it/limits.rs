use std::time::Duration;

use actix_web::test::TestRequest;
use serde_json::json;

use crate::support::*;

const ALICE: i64 = 111_111;
const BOB: i64 = 222_222;

fn order_from(telegram_id: i64, address: &str) -> TestRequest {
    TestRequest::post()
        .uri("/api/v1/orders")
        .peer_addr(peer(address))
        .insert_header(("Authorization", auth_header(telegram_id)))
        .set_json(json!({
            "items": [{"product_id": 1, "quantity": 1}],
            "delivery_address": "ул. Пушкина, д. 10",
            "phone": "+79001234567"
        }))
}

/// One order a minute per customer, no burst; orders always succeed.
fn one_order_a_minute() -> Mocks {
    let mut mocks = Mocks::new().with_customer().with_config(|c| {
        c.order_rate_limit_per_minute = 1;
        c.order_rate_limit_burst = 1;
    });
    mocks.orders.expect_place().returning(|_| Ok(order(1)));
    mocks
}

#[actix_web::test]
async fn customers_behind_one_address_each_have_their_own_order_allowance() {
    let app = one_order_a_minute().app().await;
    assert_eq!(
        call_raw(&app, order_from(ALICE, "198.51.100.1"))
            .await
            .status,
        201
    );
    assert_eq!(
        call_raw(&app, order_from(BOB, "198.51.100.1")).await.status,
        201
    );
    let body = problem(&app, order_from(ALICE, "198.51.100.1"), 429, "rate_limited").await;
    assert!(body["detail"].as_str().unwrap().contains("60 s"), "{body}");
}

#[actix_web::test]
async fn a_customer_is_limited_from_every_address_with_retry_after() {
    let app = one_order_a_minute().app().await;
    assert_eq!(
        call_raw(&app, order_from(ALICE, "198.51.100.1"))
            .await
            .status,
        201
    );
    let raw = call_raw(&app, order_from(ALICE, "203.0.113.9")).await;
    assert_eq!(raw.status, 429);
    assert_eq!(raw.header("content-type"), Some("application/problem+json"));
    assert_eq!(raw.json()["code"], "rate_limited");
    assert_eq!(raw.header("retry-after"), Some("60"));
}

#[actix_web::test]
async fn the_default_order_limit_allows_a_burst_of_three() {
    let mut mocks = Mocks::new().with_customer();
    mocks
        .orders
        .expect_place()
        .times(3)
        .returning(|_| Ok(order(1)));
    let app = mocks.app().await;
    for _ in 0..3 {
        assert_eq!(
            call_raw(&app, order_from(ALICE, "198.51.100.1"))
                .await
                .status,
            201
        );
    }
    let raw = call_raw(&app, order_from(ALICE, "198.51.100.1")).await;
    assert_eq!(raw.status, 429);
    // Ten a minute: the next one in six seconds.
    assert_eq!(raw.header("retry-after"), Some("6"));
}

#[actix_web::test]
async fn the_order_allowance_comes_back_with_time() {
    tokio::time::pause();
    let app = one_order_a_minute().app().await;
    assert_eq!(
        call_raw(&app, order_from(ALICE, "198.51.100.1"))
            .await
            .status,
        201
    );
    tokio::time::advance(Duration::from_secs(45)).await;
    let raw = call_raw(&app, order_from(ALICE, "198.51.100.1")).await;
    assert_eq!((raw.status, raw.header("retry-after")), (429, Some("15")));
    tokio::time::advance(Duration::from_secs(15)).await;
    assert_eq!(
        call_raw(&app, order_from(ALICE, "198.51.100.1"))
            .await
            .status,
        201
    );
}

#[actix_web::test]
async fn an_order_refused_by_validation_does_not_use_the_allowance() {
    let app = one_order_a_minute().app().await;
    let invalid = TestRequest::post()
        .uri("/api/v1/orders")
        .insert_header(("Authorization", auth_header(ALICE)))
        .set_json(json!({
            "items": [{"product_id": 1, "quantity": 0}],
            "delivery_address": "ул. Пушкина, д. 10",
            "phone": "+79001234567"
        }));
    problem(&app, invalid, 422, "validation_failed").await;
    assert_eq!(
        call_raw(&app, order_from(ALICE, "198.51.100.1"))
            .await
            .status,
        201
    );
}

#[actix_web::test]
async fn every_worker_shares_the_same_limiters() {
    let http = one_order_a_minute().http();
    let first = worker(&http).await;
    let second = worker(&http).await;
    assert_eq!(
        call_raw(&first, order_from(ALICE, "198.51.100.1"))
            .await
            .status,
        201
    );
    assert_eq!(
        call_raw(&second, order_from(ALICE, "198.51.100.1"))
            .await
            .status,
        429
    );
}

fn categories_from(address: &str) -> TestRequest {
    TestRequest::get()
        .uri("/api/v1/categories")
        .peer_addr(peer(address))
}

#[actix_web::test]
async fn each_address_has_an_api_allowance() {
    let app = Mocks::new()
        .answering_everything()
        .with_config(|c| c.ip_rate_limit_per_minute = 2)
        .app()
        .await;
    for _ in 0..2 {
        assert_eq!(
            call_raw(&app, categories_from("198.51.100.1")).await.status,
            200
        );
    }
    let raw = call_raw(&app, categories_from("198.51.100.1")).await;
    assert_eq!(raw.status, 429);
    assert_eq!(raw.json()["code"], "rate_limited");
    assert_eq!(raw.header("retry-after"), Some("30"));
    assert!(raw.header("x-request-id").is_some());
    // The whole API shares it, unknown routes included.
    let unknown = TestRequest::get()
        .uri("/api/v1/nope")
        .peer_addr(peer("198.51.100.1"));
    assert_eq!(call_raw(&app, unknown).await.status, 429);
    // Another address is not affected.
    assert_eq!(
        call_raw(&app, categories_from("198.51.100.2")).await.status,
        200
    );
}

#[actix_web::test]
async fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let app = Mocks::new()
        .answering_everything()
        .with_config(|c| {
            c.ip_rate_limit_per_minute = 1;
            c.trusted_proxies = vec!["10.0.0.1".parse().unwrap()];
        })
        .app()
        .await;
    let via = |peer_ip: &str, forwarded_for: &str| {
        categories_from(peer_ip).insert_header(("X-Forwarded-For", forwarded_for.to_owned()))
    };
    // Behind the trusted proxy, each forwarded client has its own allowance.
    assert_eq!(
        call_raw(&app, via("10.0.0.1", "203.0.113.5")).await.status,
        200
    );
    assert_eq!(
        call_raw(&app, via("10.0.0.1", "203.0.113.5")).await.status,
        429
    );
    assert_eq!(
        call_raw(&app, via("10.0.0.1", "203.0.113.6")).await.status,
        200
    );
    // A client cannot prepend its way out: only the right-most hop counts.
    assert_eq!(
        call_raw(&app, via("10.0.0.1", "192.0.2.77, 203.0.113.5"))
            .await
            .status,
        429
    );
    // Anyone else's header is ignored: the peer is the client.
    assert_eq!(
        call_raw(&app, via("198.51.100.1", "203.0.113.7"))
            .await
            .status,
        200
    );
    assert_eq!(
        call_raw(&app, via("198.51.100.1", "203.0.113.8"))
            .await
            .status,
        429
    );
}

#[actix_web::test]
async fn without_trusted_proxies_x_forwarded_for_is_ignored() {
    let app = Mocks::new()
        .answering_everything()
        .with_config(|c| c.ip_rate_limit_per_minute = 1)
        .app()
        .await;
    let via = |forwarded_for: &str| {
        categories_from("10.0.0.1").insert_header(("X-Forwarded-For", forwarded_for.to_owned()))
    };
    assert_eq!(call_raw(&app, via("203.0.113.5")).await.status, 200);
    assert_eq!(call_raw(&app, via("203.0.113.6")).await.status, 429);
}

#[actix_web::test]
async fn a_replayed_order_is_never_rate_limited_and_does_not_count() {
    use domain::idempotency::{KeyClaim, StoredResponse};
    let mut mocks = Mocks::new().with_customer().with_config(|c| {
        c.order_rate_limit_per_minute = 1;
        c.order_rate_limit_burst = 1;
    });
    // The customer's one order of the minute has been placed; every retry of it replays.
    mocks.idempotency.expect_claim().returning(|_, _, _, _| {
        Ok(KeyClaim::Replay(StoredResponse {
            status: 201,
            body: br#"{"id":1}"#.to_vec(),
        }))
    });
    mocks.orders.expect_place().times(0);
    let app = mocks.app().await;
    for _ in 0..5 {
        let req = TestRequest::post()
            .uri("/api/v1/orders")
            .insert_header(("Authorization", auth_header(987_654_321)))
            .insert_header(("Idempotency-Key", "retry-me"))
            .set_json(serde_json::json!({
                "items": [{"product_id": 1, "quantity": 1}],
                "delivery_address": "ул. Пушкина, д. 10",
                "phone": "+79001234567"
            }));
        let response = actix_web::test::call_service(&app, req.to_request()).await;
        assert_eq!(response.status().as_u16(), 201);
        assert_eq!(
            response.headers().get("idempotent-replayed").unwrap(),
            "true"
        );
    }
}

#[actix_web::test]
async fn proxies_in_a_trusted_network_forward_their_clients() {
    let app = Mocks::new()
        .answering_everything()
        .with_config(|c| {
            c.ip_rate_limit_per_minute = 1;
            // A docker bridge network, and an IPv6 one.
            c.trusted_proxies = vec![
                "172.16.0.0/12".parse().unwrap(),
                "fd00::/8".parse().unwrap(),
            ];
        })
        .app()
        .await;
    let via = |peer_ip: &str, forwarded_for: &str| {
        categories_from(peer_ip).insert_header(("X-Forwarded-For", forwarded_for.to_owned()))
    };
    // Any proxy of the network forwards its client, who has one allowance wherever it
    // comes through.
    assert_eq!(
        call_raw(&app, via("172.18.0.2", "203.0.113.5"))
            .await
            .status,
        200
    );
    assert_eq!(
        call_raw(&app, via("172.20.0.9", "203.0.113.5"))
            .await
            .status,
        429
    );
    assert_eq!(
        call_raw(&app, via("172.18.0.2", "203.0.113.6"))
            .await
            .status,
        200
    );
    assert_eq!(
        call_raw(&app, via("fd00::2", "2001:db8:1::7")).await.status,
        200
    );
    assert_eq!(
        call_raw(&app, via("fd00::3", "2001:db8:1::8")).await.status,
        429
    );
    // A peer outside the networks is the client, whatever it forwards.
    assert_eq!(
        call_raw(&app, via("172.32.0.1", "203.0.113.7"))
            .await
            .status,
        200
    );
    assert_eq!(
        call_raw(&app, via("172.32.0.1", "203.0.113.8"))
            .await
            .status,
        429
    );
}
