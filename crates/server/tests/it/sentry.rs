//! Error tracking end to end: the real binary with `SENTRY_DSN` pointed at a fake Sentry, a
//! forced 500 on an order full of personal data, and the raw envelope that arrives.

use std::time::Duration;

use infra_postgres::test_support::TestDatabase;
use serde_json::json;
use tokio::sync::mpsc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::process::{Database, start_with};
use crate::support::{FakeTelegram, TOKEN, auth};

/// Hands every envelope's raw body to the test as it arrives.
struct Envelopes(mpsc::UnboundedSender<String>);

impl Respond for Envelopes {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let _ = self
            .0
            .send(String::from_utf8_lossy(&request.body).into_owned());
        ResponseTemplate::new(200).set_body_json(json!({}))
    }
}

const PHONE: &str = "+79001234567";
const ADDRESS: &str = "ул. Пушкина, д. 10, кв. 5";
const COMMENT: &str = "Домофон не работает, позвонить";

async fn a_500_reaches_sentry_tagged_and_without_personal_data(db: TestDatabase) {
    db.store()
        .seed_catalog(&server::demo::catalog("http://127.0.0.1:8000"))
        .await
        .unwrap();
    let telegram = FakeTelegram::start().await;
    let sentry = MockServer::start().await;
    let (envelopes_tx, mut envelopes) = mpsc::unbounded_channel();
    Mock::given(method("POST"))
        .and(path("/api/1/envelope/"))
        .respond_with(Envelopes(envelopes_tx))
        .mount(&sentry)
        .await;
    let dsn = format!("http://public0key@{}/1", sentry.address());
    let server = start_with(
        &Database::Url(db.url().to_owned()),
        &telegram.server.uri(),
        &[("SENTRY_DSN", dsn.as_str())],
    );

    // The orders table goes away under the running server: placing an order is a 500.
    db.execute("ALTER TABLE orders RENAME TO orders_moved_away")
        .await
        .unwrap();
    let authorization = auth(7_001, "Покупатель");
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/api/v1/orders", server.port))
        .header("Authorization", &authorization)
        .header("X-Request-Id", "sentry-e2e-1")
        .json(&json!({
            "items": [{"product_id": 1, "quantity": 2}],
            "delivery_address": ADDRESS,
            "phone": PHONE,
            "comment": COMMENT,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);

    // Envelopes arrive as the server's transport sends them; wait for the request's event.
    let mut received = Vec::new();
    let event = loop {
        let envelope = tokio::time::timeout(Duration::from_secs(30), envelopes.recv())
            .await
            .unwrap_or_else(|_| panic!("no event for the request arrived: {received:#?}"))
            .unwrap();
        received.push(envelope.clone());
        if envelope.contains("sentry-e2e-1") {
            break envelope;
        }
    };
    let payload: serde_json::Value = event
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|item| item.get("event_id").is_some() && item.get("release").is_some())
        .unwrap_or_else(|| panic!("no event item in {event}"));
    // Sentry leaves out the level when it is the default, error.
    assert_eq!(
        payload["level"].as_str().unwrap_or("error"),
        "error",
        "{payload:#}"
    );
    assert_eq!(payload["message"], "request failed", "{payload:#}");
    assert_eq!(payload["tags"]["request_id"], "sentry-e2e-1", "{payload:#}");
    assert_eq!(payload["tags"]["route"], "/api/v1/orders", "{payload:#}");
    assert_eq!(
        payload["release"],
        concat!("botshop@", env!("CARGO_PKG_VERSION")),
        "{payload:#}"
    );
    assert_eq!(payload["environment"], "production", "{payload:#}");
    assert!(
        event.contains("orders"),
        "the cause is reported: {payload:#}"
    );

    let init_data = authorization.trim_start_matches("tma ");
    let hash = init_data
        .split('&')
        .find_map(|pair| pair.strip_prefix("hash="))
        .unwrap();
    let (_, token_secret) = TOKEN.split_once(':').unwrap();
    for envelope in &received {
        for personal in [
            PHONE,
            "9001234567",
            ADDRESS,
            "Пушкина",
            COMMENT,
            "Домофон",
            TOKEN,
            token_secret,
            init_data,
            hash,
            "auth_date",
        ] {
            assert!(
                !envelope.contains(personal),
                "{personal:?} reached Sentry: {envelope}"
            );
        }
    }

    drop(server);
    db.cleanup().await;
}

#[tokio::test]
async fn a_500_reaches_sentry_without_personal_data_on_sqlite() {
    a_500_reaches_sentry_tagged_and_without_personal_data(TestDatabase::sqlite().await).await;
}

#[tokio::test]
async fn a_500_reaches_sentry_without_personal_data_on_postgres() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    a_500_reaches_sentry_tagged_and_without_personal_data(db).await;
}

#[test]
fn an_invalid_sentry_dsn_stops_start_up_naming_the_key_not_the_value() {
    let output = crate::process::command(
        &Database::Sqlite(
            std::env::temp_dir()
                .join("botshop-sentry-never-created.db")
                .to_string_lossy()
                .into_owned(),
        ),
        "http://127.0.0.1:9",
    )
    .env("SENTRY_DSN", "https://secretkey42@sentry.example.com/")
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SENTRY_DSN"), "{stderr}");
    assert!(!stderr.contains("secretkey42"), "{stderr}");
}
