use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::test::TestRequest;
use async_trait::async_trait;
use domain::RepositoryError;
use domain::order::PlaceOrderError;
use domain::outbox::{
    ClaimToken, ClaimedEvent, EventId, OutboxCounts, OutboxEvent, Recipient, Recorded,
};
use domain::ports::{MockOutbox, MockStorageProbe, Outbox, PoolStats, StorageProbe};

use crate::support::*;

/// A database that never answers.
struct HangingStorage;

#[async_trait]
impl StorageProbe for HangingStorage {
    async fn ping(&self) -> Result<(), RepositoryError> {
        std::future::pending().await
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats::default()
    }
}

/// An outbox whose queries never answer.
struct HangingOutbox;

#[async_trait]
impl Outbox for HangingOutbox {
    async fn claim_due(&self, _: Duration, _: u32) -> Result<Vec<ClaimedEvent>, RepositoryError> {
        std::future::pending().await
    }
    async fn mark_sent(
        &self,
        _: EventId,
        _: &ClaimToken,
        _: Option<i64>,
    ) -> Result<Recorded, RepositoryError> {
        std::future::pending().await
    }
    async fn retry_later(
        &self,
        _: EventId,
        _: &ClaimToken,
        _: u32,
        _: Duration,
        _: &str,
    ) -> Result<Recorded, RepositoryError> {
        std::future::pending().await
    }
    async fn mark_dead(
        &self,
        _: EventId,
        _: &ClaimToken,
        _: u32,
        _: &str,
        _: Option<OutboxEvent>,
    ) -> Result<Recorded, RepositoryError> {
        std::future::pending().await
    }
    async fn release(&self, _: &[(EventId, ClaimToken)]) -> Result<(), RepositoryError> {
        std::future::pending().await
    }
    async fn hold_chat(&self, _: &Recipient, _: Duration) -> Result<(), RepositoryError> {
        std::future::pending().await
    }
    async fn counts(&self) -> Result<OutboxCounts, RepositoryError> {
        std::future::pending().await
    }
    async fn retry_dead(&self) -> Result<u64, RepositoryError> {
        std::future::pending().await
    }
    async fn delete_sent(&self, _: Duration, _: u32) -> Result<u64, RepositoryError> {
        std::future::pending().await
    }
}

#[actix_web::test]
async fn health_is_ok_without_touching_the_database() {
    // The storage mock has no expectations: a ping would fail the test.
    let app = Mocks::new().app().await;
    let (status, content_type, body) = call(&app, TestRequest::get().uri("/health")).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

#[actix_web::test]
async fn ready_is_ok_when_the_database_answers() {
    let app = Mocks::new()
        .with_storage(healthy_storage(PoolStats::default()))
        .app()
        .await;
    let (status, _, body) = call(&app, TestRequest::get().uri("/ready")).await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

#[actix_web::test]
async fn ready_is_503_when_the_ping_fails_and_says_nothing_of_why() {
    let mut storage = MockStorageProbe::new();
    storage.expect_ping().returning(|| {
        Err(RepositoryError::Unavailable(anyhow::anyhow!(
            "connection refused at 10.0.0.5:5432"
        )))
    });
    let app = Mocks::new().with_storage(storage).app().await;
    let body = problem(&app, TestRequest::get().uri("/ready"), 503, "not_ready").await;
    assert!(!body.to_string().contains("10.0.0.5"), "{body}");
    // The process keeps serving.
    let (status, _, _) = call(&app, TestRequest::get().uri("/health")).await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn ready_is_503_after_one_second_when_the_database_hangs() {
    // Paused time: the runtime jumps to the timeout as soon as nothing else can run.
    tokio::time::pause();
    let app = Mocks::new().with_storage(HangingStorage).app().await;
    let started = tokio::time::Instant::now();
    problem(&app, TestRequest::get().uri("/ready"), 503, "not_ready").await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
}

#[actix_web::test]
async fn probes_and_metrics_are_not_rate_limited() {
    let app = Mocks::new()
        .answering_everything()
        .with_config(|c| c.ip_rate_limit_per_minute = 1)
        .app()
        .await;
    for _ in 0..5 {
        for uri in ["/health", "/ready", "/metrics"] {
            let req = TestRequest::get().uri(uri).peer_addr(peer("203.0.113.5"));
            assert_eq!(call_raw(&app, req).await.status, 200, "{uri}");
        }
    }
}

fn metrics_line<'a>(text: &'a str, name: &str, labels: &[&str]) -> Option<&'a str> {
    text.lines().find(|line| {
        line.starts_with(name)
            && line[name.len()..].starts_with(['{', ' '])
            && labels.iter().all(|label| line.contains(label))
    })
}

fn metric_value(text: &str, name: &str, labels: &[&str]) -> f64 {
    let line = metrics_line(text, name, labels)
        .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

async fn scrape<S, B>(app: &S) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let raw = call_raw(app, TestRequest::get().uri("/metrics")).await;
    assert_eq!(raw.status, 200, "{}", raw.body);
    assert_eq!(
        raw.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    raw.body
}

#[actix_web::test]
async fn metrics_count_requests_by_route_pattern_method_and_status() {
    let app = Mocks::new().answering_everything().app().await;
    for _ in 0..2 {
        call_raw(&app, TestRequest::get().uri("/api/v1/products/5")).await;
    }
    call_raw(&app, TestRequest::get().uri("/api/v1/products/6?limit=1")).await;
    call_raw(&app, TestRequest::get().uri("/api/v1/nope/42")).await;
    call_raw(&app, TestRequest::delete().uri("/api/v1/products/5")).await;

    let text = scrape(&app).await;
    let product = r#"route="/api/v1/products/{id}""#;
    assert_eq!(
        metric_value(
            &text,
            "botshop_http_requests_total",
            &[product, r#"method="GET""#, r#"status="200""#]
        ),
        3.0
    );
    assert_eq!(
        metric_value(
            &text,
            "botshop_http_requests_total",
            &[product, r#"method="DELETE""#, r#"status="405""#]
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "botshop_http_requests_total",
            &[r#"route="<unmatched>""#, r#"status="404""#]
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "botshop_http_request_duration_seconds_count",
            &[product, r#"method="GET""#]
        ),
        3.0
    );
    assert!(
        metrics_line(
            &text,
            "botshop_http_request_duration_seconds_bucket",
            &[product, r#"le="0.005""#]
        )
        .is_some()
    );
    // Raw paths never become labels.
    assert!(!text.contains("/api/v1/products/5"), "{text}");
    assert!(!text.contains("/api/v1/nope"), "{text}");
    assert!(!text.contains("limit=1"), "{text}");
}

#[actix_web::test]
async fn metrics_show_the_pool_the_outbox_and_the_build() {
    let http = Mocks::new()
        .answering_everything()
        .with_storage(healthy_storage(PoolStats {
            in_use: 3,
            idle: 7,
            max: 10,
        }))
        .with_outbox(outbox_counting(4, 1))
        .http();
    http.outbox_gauges().unwrap().refresh_once().await.unwrap();
    let app = worker(&http).await;
    call_raw(&app, TestRequest::get().uri("/health")).await;
    let text = scrape(&app).await;
    let value = |name, labels: &[&str]| metric_value(&text, name, labels);
    assert_eq!(
        value("botshop_db_pool_connections", &[r#"state="in_use""#]),
        3.0
    );
    assert_eq!(
        value("botshop_db_pool_connections", &[r#"state="idle""#]),
        7.0
    );
    assert_eq!(value("botshop_db_pool_max_connections", &[]), 10.0);
    assert_eq!(value("botshop_outbox_events", &[r#"state="pending""#]), 4.0);
    assert_eq!(value("botshop_outbox_events", &[r#"state="dead""#]), 1.0);
    assert_eq!(value("botshop_outbox_oldest_pending_age_seconds", &[]), 0.0);
    let version = format!(r#"version="{}""#, env!("CARGO_PKG_VERSION"));
    assert_eq!(value("botshop_build_info", &[&version]), 1.0);
    assert!(text.contains("# TYPE botshop_http_request_duration_seconds histogram"));
}

#[actix_web::test]
async fn an_outbox_failure_keeps_the_last_counts_and_the_scrape_succeeds() {
    tokio::time::pause();
    let mut outbox = MockOutbox::new();
    let mut calls = 0;
    outbox.expect_counts().returning(move || {
        calls += 1;
        if calls == 1 {
            Ok(OutboxCounts {
                pending: 4,
                dead: 2,
                ..OutboxCounts::default()
            })
        } else {
            Err(RepositoryError::Unavailable(anyhow::anyhow!(
                "pool timed out"
            )))
        }
    });
    let http = Mocks::new()
        .answering_everything()
        .with_outbox(outbox)
        .http();
    let gauges = http.outbox_gauges().unwrap();
    let app = worker(&http).await;
    gauges.refresh_once().await.unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(gauges.refresh_once().await.is_err());
    tokio::time::advance(Duration::from_secs(5)).await;
    let text = scrape(&app).await;
    assert_eq!(
        metric_value(&text, "botshop_outbox_events", &[r#"state="pending""#]),
        4.0
    );
    assert_eq!(
        metric_value(&text, "botshop_outbox_events", &[r#"state="dead""#]),
        2.0
    );
    assert_eq!(
        metric_value(&text, "botshop_outbox_gauges_age_seconds", &[]),
        10.0,
        "the values are as old as the last read that worked"
    );
}

#[actix_web::test]
async fn a_hanging_outbox_does_not_hang_the_scrape() {
    tokio::time::pause();
    let app = Mocks::new()
        .answering_everything()
        .with_outbox(HangingOutbox)
        .app()
        .await;
    let started = tokio::time::Instant::now();
    let text = scrape(&app).await;
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "the scrape waited for nothing"
    );
    // Never counted: the gauges are simply absent, and their age is the process's.
    assert!(metrics_line(&text, "botshop_outbox_events", &[]).is_none());
    assert!(metrics_line(&text, "botshop_outbox_gauges_age_seconds", &[]).is_some());
    assert!(metrics_line(&text, "botshop_db_pool_connections", &[]).is_some());
}

/// An outbox that counts how often it is counted, and says so.
#[derive(Default)]
struct CountingOutbox {
    pending: AtomicU64,
    calls: AtomicUsize,
    counted: tokio::sync::Notify,
}

#[async_trait]
impl Outbox for CountingOutbox {
    async fn claim_due(&self, _: Duration, _: u32) -> Result<Vec<ClaimedEvent>, RepositoryError> {
        unreachable!("metrics only count")
    }
    async fn mark_sent(
        &self,
        _: EventId,
        _: &ClaimToken,
        _: Option<i64>,
    ) -> Result<Recorded, RepositoryError> {
        unreachable!("metrics only count")
    }
    async fn retry_later(
        &self,
        _: EventId,
        _: &ClaimToken,
        _: u32,
        _: Duration,
        _: &str,
    ) -> Result<Recorded, RepositoryError> {
        unreachable!("metrics only count")
    }
    async fn mark_dead(
        &self,
        _: EventId,
        _: &ClaimToken,
        _: u32,
        _: &str,
        _: Option<OutboxEvent>,
    ) -> Result<Recorded, RepositoryError> {
        unreachable!("metrics only count")
    }
    async fn release(&self, _: &[(EventId, ClaimToken)]) -> Result<(), RepositoryError> {
        unreachable!("metrics only count")
    }
    async fn hold_chat(&self, _: &Recipient, _: Duration) -> Result<(), RepositoryError> {
        unreachable!("metrics only count")
    }
    async fn counts(&self) -> Result<OutboxCounts, RepositoryError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.counted.notify_one();
        Ok(OutboxCounts {
            pending: self.pending.load(Ordering::SeqCst),
            ..OutboxCounts::default()
        })
    }
    async fn retry_dead(&self) -> Result<u64, RepositoryError> {
        unreachable!("metrics only count")
    }
    async fn delete_sent(&self, _: Duration, _: u32) -> Result<u64, RepositoryError> {
        unreachable!("metrics only count")
    }
}

fn http_with(outbox: &Arc<CountingOutbox>) -> http_actix::Http {
    let mut mocks = Mocks::new().answering_everything();
    mocks.outbox = outbox.clone();
    mocks.http()
}

#[actix_web::test]
async fn scrapes_never_query_the_outbox_and_serve_what_the_refresher_read() {
    let outbox = Arc::new(CountingOutbox::default());
    outbox.pending.store(3, Ordering::SeqCst);
    let http = http_with(&outbox);
    let gauges = http.outbox_gauges().unwrap();
    let app = worker(&http).await;
    for _ in 0..20 {
        scrape(&app).await;
    }
    assert_eq!(outbox.calls.load(Ordering::SeqCst), 0, "no scrape counted");

    gauges.refresh_once().await.unwrap();
    assert_eq!(outbox.calls.load(Ordering::SeqCst), 1);
    // The outbox changes: scrapes keep serving what was read, until the next refresh.
    outbox.pending.store(9, Ordering::SeqCst);
    for _ in 0..5 {
        let text = scrape(&app).await;
        assert_eq!(
            metric_value(&text, "botshop_outbox_events", &[r#"state="pending""#]),
            3.0
        );
    }
    gauges.refresh_once().await.unwrap();
    let text = scrape(&app).await;
    assert_eq!(
        metric_value(&text, "botshop_outbox_events", &[r#"state="pending""#]),
        9.0
    );
    assert_eq!(outbox.calls.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn the_gauges_age_shows_how_old_the_counts_are() {
    tokio::time::pause();
    let http = http_with(&Arc::new(CountingOutbox::default()));
    let gauges = http.outbox_gauges().unwrap();
    let app = worker(&http).await;
    tokio::time::advance(Duration::from_secs(3)).await;
    let age = |text: &str| metric_value(text, "botshop_outbox_gauges_age_seconds", &[]);
    assert_eq!(
        age(&scrape(&app).await),
        3.0,
        "never read: as old as the gauges"
    );
    gauges.refresh_once().await.unwrap();
    assert_eq!(age(&scrape(&app).await), 0.0);
    tokio::time::advance(Duration::from_secs(7)).await;
    assert_eq!(age(&scrape(&app).await), 7.0);
}

#[actix_web::test]
async fn the_refresher_counts_at_once_then_every_interval_until_stopped() {
    // Paused: the runtime moves the clock to the next timer whenever everything waits,
    // so the intervals pass without waiting for them.
    tokio::time::pause();
    let outbox = Arc::new(CountingOutbox::default());
    let http = http_with(&outbox);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = tokio::time::Instant::now();
    let refresher = tokio::spawn(
        http.outbox_gauges()
            .unwrap()
            .run(http_actix::OUTBOX_GAUGES_REFRESH_INTERVAL, stopped),
    );
    // Tokio's timers tick in milliseconds, hence the margin.
    let interval = http_actix::OUTBOX_GAUGES_REFRESH_INTERVAL;
    let margin = Duration::from_millis(10);
    outbox.counted.notified().await;
    assert!(started.elapsed() < margin, "the first count is at once");
    for n in 1..=2 {
        outbox.counted.notified().await;
        let elapsed = started.elapsed();
        assert!(
            elapsed >= interval * n && elapsed < interval * n + margin,
            "count {n} at {elapsed:?}"
        );
    }
    stop.send(true).unwrap();
    refresher.await.unwrap();
    let calls = outbox.calls.load(Ordering::SeqCst);
    tokio::time::advance(http_actix::OUTBOX_GAUGES_REFRESH_INTERVAL * 3).await;
    assert_eq!(outbox.calls.load(Ordering::SeqCst), calls, "stopped");
}

#[actix_web::test]
async fn without_exposed_metrics_there_is_nothing_to_refresh() {
    let http = Mocks::new()
        .with_config(|c| c.expose_metrics = false)
        .http();
    assert!(http.outbox_gauges().is_none());
}

#[actix_web::test]
async fn orders_created_counts_placed_orders_only() {
    let mut mocks = Mocks::new().answering_everything().with_customer();
    let mut calls = 0;
    mocks.orders.expect_place().returning(move |_| {
        calls += 1;
        if calls == 1 {
            Ok(order(1))
        } else {
            Err(PlaceOrderError::ProductUnavailable(vec![
                domain::ProductId(2),
            ]))
        }
    });
    let app = mocks.app().await;
    let post = || {
        TestRequest::post()
            .uri("/api/v1/orders")
            .insert_header(("Authorization", auth_header(987_654_321)))
            .set_json(serde_json::json!({
                "items": [{"product_id": 1, "quantity": 1}],
                "delivery_address": "ул. Пушкина, д. 10",
                "phone": "+79001234567"
            }))
    };
    assert_eq!(call_raw(&app, post()).await.status, 201);
    assert_eq!(call_raw(&app, post()).await.status, 422);
    let text = scrape(&app).await;
    assert_eq!(
        metric_value(&text, "botshop_orders_created_total", &[]),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "botshop_http_requests_total",
            &[r#"route="/api/v1/orders""#, r#"status="201""#]
        ),
        1.0
    );
}

#[actix_web::test]
async fn metrics_can_be_turned_off() {
    let app = Mocks::new()
        .answering_everything()
        .with_config(|c| c.expose_metrics = false)
        .app()
        .await;
    problem(&app, TestRequest::get().uri("/metrics"), 404, "not_found").await;
}
