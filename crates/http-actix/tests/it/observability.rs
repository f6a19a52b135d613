use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

use actix_web::test::TestRequest;
use domain::RepositoryError;
use serde_json::Value;
use tracing::Level;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use crate::support::*;

#[actix_web::test]
async fn a_sane_request_id_is_echoed() {
    let app = Mocks::new().app().await;
    let req = TestRequest::get()
        .uri("/health")
        .insert_header(("X-Request-Id", "mini-app-7f3a.42"));
    let raw = call_raw(&app, req).await;
    assert_eq!(raw.header("x-request-id"), Some("mini-app-7f3a.42"));
}

#[actix_web::test]
async fn a_missing_or_insane_request_id_is_replaced_by_a_fresh_uuid() {
    let app = Mocks::new().app().await;
    let too_long = "a".repeat(129);
    let mut seen = Vec::new();
    for header in [None, Some(too_long.as_str()), Some("two words"), Some("")] {
        let mut req = TestRequest::get().uri("/api/v1/nope");
        if let Some(value) = header {
            req = req.insert_header(("X-Request-Id", value));
        }
        let raw = call_raw(&app, req).await;
        assert_eq!(raw.status, 404);
        let id = raw.header("x-request-id").unwrap().to_owned();
        assert_eq!(id.len(), 36, "{id}");
        assert!(
            id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
            "{id}"
        );
        assert_eq!(id.as_bytes()[14], b'4', "a version 4 UUID: {id}");
        seen.push(id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "ids must differ: {seen:?}");
}

/// Log lines written as JSON into memory, for the test running on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

thread_local! {
    /// Where this thread's log lines go, and from which level; `None`: nowhere.
    static SINK: RefCell<Option<(Captured, Level)>> = const { RefCell::new(None) };
}

/// Writes into the current thread's [`SINK`], if any.
struct ThreadSink;

impl Write for ThreadSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        SINK.with(|sink| {
            if let Some((captured, _)) = sink.borrow().as_ref() {
                captured.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ThreadSink {
    type Writer = ThreadSink;

    fn make_writer(&'a self) -> Self::Writer {
        ThreadSink
    }
}

/// Stops capturing on drop.
struct Capturing;

impl Drop for Capturing {
    fn drop(&mut self) {
        SINK.with(|sink| sink.borrow_mut().take());
    }
}

impl Captured {
    /// Captures this thread's log lines — actix tests run requests on the test's thread —
    /// as JSON with span fields, like the server's production format.
    ///
    /// One process-wide subscriber, installed once, routes each thread's lines to its own
    /// sink. Per-test `set_default` subscribers would race through tracing's process-wide
    /// callsite cache: a test thread without a subscriber can mark a callsite as never
    /// interesting just as another test starts capturing. The filter is dynamic
    /// (`dynamic_filter_fn`, unlike `filter_fn` whose answers are cached per callsite),
    /// so tracing asks it every time.
    fn install_at(&self, level: Level) -> Capturing {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(ThreadSink)
                .with_filter(tracing_subscriber::filter::dynamic_filter_fn(
                    |metadata, _| {
                        SINK.with(|sink| {
                            sink.borrow()
                                .as_ref()
                                .is_some_and(|(_, level)| metadata.level() <= level)
                        })
                    },
                ));
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .unwrap();
        });
        SINK.with(|sink| *sink.borrow_mut() = Some((self.clone(), level)));
        Capturing
    }

    fn install(&self) -> Capturing {
        self.install_at(Level::DEBUG)
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

#[actix_web::test]
async fn every_log_line_of_a_request_carries_its_request_id_and_route() {
    let logs = Captured::default();
    let _guard = logs.install();
    let mut mocks = Mocks::new();
    mocks.catalog.expect_list_categories().returning(|_, _| {
        Err(RepositoryError::Unavailable(anyhow::anyhow!(
            "pool timed out"
        )))
    });
    let app = mocks.app().await;
    let req = TestRequest::get()
        .uri("/api/v1/categories?limit=5&note=secret-in-query")
        .insert_header(("X-Request-Id", "req-1"));
    assert_eq!(call_raw(&app, req).await.status, 503);

    let lines = logs.lines();
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|line| line["span"]["request_id"] == "req-1")
        .collect();
    assert!(of_request.len() >= 2, "{lines:#?}");
    // The route pattern is on the span, so the cause's line names it too (error tracking
    // tags its events with it).
    assert!(
        of_request
            .iter()
            .all(|line| line["span"]["route"] == "/api/v1/categories"),
        "{lines:#?}"
    );
    // The cause, logged once where the error becomes HTTP…
    assert!(
        of_request
            .iter()
            .any(|line| line["fields"]["message"] == "database unavailable"),
        "{lines:#?}"
    );
    // …and the request line: pattern, status, latency, never the query.
    let request_line = of_request
        .iter()
        .find(|line| line["fields"]["message"] == "request")
        .unwrap();
    assert_eq!(request_line["fields"]["route"], "/api/v1/categories");
    assert_eq!(request_line["fields"]["status"], 503);
    assert_eq!(request_line["fields"]["method"], "GET");
    assert!(request_line["fields"]["elapsed_ms"].is_number());
    assert!(!logs.text().contains("secret-in-query"), "{}", logs.text());
}

#[actix_web::test]
async fn warnings_carry_the_request_id_even_when_info_is_filtered_out() {
    let logs = Captured::default();
    let _guard = logs.install_at(Level::WARN);
    let mut mocks = Mocks::new();
    mocks.catalog.expect_list_categories().returning(|_, _| {
        Err(RepositoryError::Unavailable(anyhow::anyhow!(
            "pool timed out"
        )))
    });
    let app = mocks.app().await;
    let req = TestRequest::get()
        .uri("/api/v1/categories")
        .insert_header(("X-Request-Id", "req-2"));
    assert_eq!(call_raw(&app, req).await.status, 503);
    let lines = logs.lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["fields"]["message"], "database unavailable");
    assert_eq!(lines[0]["span"]["request_id"], "req-2");
}

#[actix_web::test]
async fn forwarding_from_an_untrusted_peer_is_warned_about_once_without_the_header() {
    let logs = Captured::default();
    let _guard = logs.install_at(Level::WARN);
    let app = Mocks::new()
        .answering_everything()
        .with_config(|c| c.trusted_proxies = vec!["172.16.0.0/12".parse().unwrap()])
        .app()
        .await;
    let via = |peer_ip: &str, forwarded_for: &str| {
        TestRequest::get()
            .uri("/api/v1/categories")
            .peer_addr(peer(peer_ip))
            .insert_header(("X-Forwarded-For", forwarded_for.to_owned()))
    };
    // From a trusted proxy, or without the header: nothing to say.
    assert_eq!(
        call_raw(&app, via("172.18.0.2", "203.0.113.5"))
            .await
            .status,
        200
    );
    let plain = TestRequest::get()
        .uri("/api/v1/categories")
        .peer_addr(peer("198.51.100.7"));
    assert_eq!(call_raw(&app, plain).await.status, 200);
    assert!(logs.lines().is_empty(), "{}", logs.text());

    for forwarded in ["203.0.113.66", "203.0.113.67", "203.0.113.68"] {
        assert_eq!(
            call_raw(&app, via("198.51.100.7", forwarded)).await.status,
            200
        );
    }
    let lines = logs.lines();
    assert_eq!(
        lines.len(),
        1,
        "once per process, not per request: {lines:#?}"
    );
    assert_eq!(lines[0]["level"], "WARN");
    let message = lines[0]["fields"]["message"].as_str().unwrap();
    assert!(message.contains("TRUSTED_PROXIES"), "{message}");
    assert_eq!(lines[0]["fields"]["peer"], "198.51.100.7");
    assert!(!logs.text().contains("203.0.113.6"), "{}", logs.text());
}

#[actix_web::test]
async fn an_order_leaves_no_personal_data_or_init_data_in_the_logs() {
    let logs = Captured::default();
    let _guard = logs.install();
    let mut mocks = Mocks::new().with_customer();
    mocks.orders.expect_place().returning(|_| Ok(order(123)));
    let app = mocks.app().await;
    let authorization = auth_header(987_654_321);
    let hash = authorization.rsplit_once("hash=").unwrap().1.to_owned();
    let req = TestRequest::post()
        .uri("/api/v1/orders")
        .insert_header(("Authorization", authorization))
        .set_json(serde_json::json!({
            "items": [{"product_id": 1, "quantity": 2}],
            "delivery_address": "ул. Пушкина, д. 10",
            "phone": "+79001234567",
            "comment": "Домофон не работает"
        }));
    assert_eq!(call_raw(&app, req).await.status, 201);
    let text = logs.text();
    assert!(text.contains(r#""status":201"#), "{text}");
    for secret in [
        hash.as_str(),
        "+79001234567",
        "79001234567",
        "Пушкина",
        "Домофон",
        "auth_date",
        TOKEN,
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}
