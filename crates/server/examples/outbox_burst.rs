//! Benchmark: a burst of 200 orders, every manager message delivered, none lost.
//!
//! Runs the real application in-process against a fake Telegram that enforces Telegram's
//! limit of one message per second per chat the way Telegram does: a 429 with
//! `parameters.retry_after`. Orders are placed by 16 concurrent clients; the benchmark then
//! waits until every message has arrived and checks that none was lost or sent twice.
//!
//! ```text
//! cargo run --release -p server --example outbox_burst            # embedded SQLite
//! TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p server --example outbox_burst          # a fresh PostgreSQL database
//! ```
//! `BENCH_ORDERS` changes the burst size (default 200).

// A benchmark that cannot set itself up should stop loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::auth::InitDataVerifier;
use server::app::Application;
use server::config::{BotToken, DatabaseTarget, Notifications, SecretString, Settings};
use tokio::sync::mpsc;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "123456:BENCH-TOKEN";
const CHAT: i64 = 4242;

/// One message per second per chat, as Telegram enforces it.
struct RateLimitedTelegram {
    last_sent: Mutex<Option<Instant>>,
    delivered: mpsc::UnboundedSender<String>,
    limited: mpsc::UnboundedSender<()>,
}

impl Respond for RateLimitedTelegram {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut last = self.last_sent.lock().unwrap();
        let now = Instant::now();
        if let Some(previous) = *last {
            let since = now - previous;
            if since < Duration::from_secs(1) {
                let retry_after = (Duration::from_secs(1) - since).as_secs_f64().ceil() as u64;
                let _ = self.limited.send(());
                return ResponseTemplate::new(429).set_body_json(serde_json::json!({
                    "ok": false, "error_code": 429,
                    "description": format!("Too Many Requests: retry after {retry_after}"),
                    "parameters": {"retry_after": retry_after}
                }));
            }
        }
        *last = Some(now);
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let text = body["text"].as_str().unwrap_or_default();
        let header = text.lines().next().unwrap_or_default().to_owned();
        let _ = self.delivered.send(header);
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"ok": true, "result": {"message_id": 1}}))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let orders: usize = std::env::var("BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let scratch = std::env::temp_dir().join(format!("botshop-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    // With TEST_DATABASE_URL, a fresh PostgreSQL database made like the tests make theirs.
    let postgres = if std::env::var_os("TEST_DATABASE_URL").is_some() {
        infra_postgres::test_support::TestDatabase::postgres().await
    } else {
        None
    };
    let (database, label) = match &postgres {
        Some(db) => (
            DatabaseTarget::Url(SecretString::from(db.url())),
            "PostgreSQL",
        ),
        None => (
            DatabaseTarget::EmbeddedSqlite(scratch.join("bench.db").to_string_lossy().into_owned()),
            "embedded SQLite",
        ),
    };

    let telegram = MockServer::start().await;
    let (delivered_tx, mut delivered) = mpsc::unbounded_channel();
    let (limited_tx, mut limited) = mpsc::unbounded_channel();
    Mock::given(method("POST"))
        .and(path_regex(r"^/bot[^/]+/sendMessage$"))
        .respond_with(RateLimitedTelegram {
            last_sent: Mutex::new(None),
            delivered: delivered_tx,
            limited: limited_tx,
        })
        .mount(&telegram)
        .await;
    Mock::given(path_regex(r"^/bot[^/]+/getChat$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"ok": true, "result": {"id": CHAT}})),
        )
        .mount(&telegram)
        .await;

    let mut settings = Settings::defaults()?;
    settings.database.set_target(database.clone());
    settings.bot_token = BotToken::new(TOKEN)?;
    settings.demo_token = false;
    settings.notifications = Notifications::Telegram { chat_id: CHAT };
    settings.server.debug = false;
    settings.http.port = 0;
    settings.telegram.telegram_api_url = telegram.uri();
    settings.telegram.notify_utc_offset = time::UtcOffset::UTC;
    let app = Application::build(&settings).await?;
    if !database.is_embedded() {
        let db = server::app::connect(&settings).await?;
        db.store()
            .seed_catalog(&server::demo::catalog("http://127.0.0.1:8000"))
            .await?;
        db.close().await?;
    }
    let base = format!("http://127.0.0.1:{}/api/v1", app.port());
    tokio::spawn(app.run_until_stopped());

    println!("placing {orders} orders with 16 concurrent clients ({label})");
    let verifier = Arc::new(InitDataVerifier::new(TOKEN, time::Duration::days(1)));
    let client = reqwest::Client::new();
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (client, base, verifier, next) =
            (client.clone(), base.clone(), verifier.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n >= orders {
                    return ids;
                }
                let auth_date = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
                let user = serde_json::json!({"id": 10_000 + n, "first_name": "Покупатель"}).to_string();
                let auth = format!("tma {}", verifier.sign(&[("auth_date", &auth_date), ("user", &user)]));
                let response = client
                    .post(format!("{base}/orders"))
                    .header("Authorization", auth)
                    .json(&serde_json::json!({
                        "items": [{"product_id": 1 + (n % 20), "quantity": 1}, {"product_id": 2, "quantity": 2}],
                        "delivery_address": "ул. Пушкина, д. 10",
                        "phone": "+79001234567"
                    }))
                    .send()
                    .await
                    .expect("request failed");
                assert_eq!(response.status().as_u16(), 201, "order {n} was not placed");
                let order: serde_json::Value = response.json().await.unwrap();
                ids.push(order["id"].as_i64().unwrap());
            }
        }));
    }
    let mut placed = HashSet::new();
    for client in clients {
        placed.extend(client.await?);
    }
    let placing = started.elapsed();
    println!(
        "placed {} orders in {:.2} s",
        placed.len(),
        placing.as_secs_f64()
    );

    let mut seen = HashSet::new();
    let mut duplicates = 0;
    while seen.len() < placed.len() {
        let header = tokio::time::timeout(Duration::from_secs(120), delivered.recv())
            .await
            .expect("delivery stalled for two minutes")
            .unwrap();
        let id: i64 = header
            .rsplit('#')
            .next()
            .and_then(|id| id.trim().parse().ok())
            .unwrap_or(-1);
        if !seen.insert(id) {
            duplicates += 1;
        }
    }
    let delivering = started.elapsed();
    let mut rate_limited = 0;
    while limited.try_recv().is_ok() {
        rate_limited += 1;
    }
    let lost = placed.difference(&seen).count();
    println!(
        "delivered {} messages in {:.1} s from the first order ({:.2} msg/s; Telegram allows 1/s)",
        seen.len(),
        delivering.as_secs_f64(),
        seen.len() as f64 / delivering.as_secs_f64()
    );
    println!("429 answers honoured: {rate_limited}; lost: {lost}; duplicates: {duplicates}");
    let _ = std::fs::remove_dir_all(scratch);
    if let Some(db) = postgres {
        db.cleanup().await;
    }
    anyhow::ensure!(
        lost == 0 && duplicates == 0,
        "messages were lost or duplicated"
    );
    Ok(())
}
