//! The outbox survives a crash: the real binary, killed with SIGKILL while Telegram is
//! down, delivers every message exactly once after a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use infra_postgres::test_support::TestDatabase;
use serde_json::json;
use tokio::sync::mpsc;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::process::{Database, command, start};
use crate::support::{MANAGER_CHAT, auth};

/// Telegram that fails with 500 until told to recover, reporting every attempt.
struct Switchable {
    healthy: Arc<AtomicBool>,
    attempts: mpsc::UnboundedSender<(i64, bool)>,
}

impl Respond for Switchable {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let text = body["text"].as_str().unwrap_or_default();
        let order_id = text
            .split_once('#')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|id| id.parse().ok())
            .unwrap_or(-1);
        let healthy = self.healthy.load(Ordering::SeqCst);
        let _ = self.attempts.send((order_id, healthy));
        if healthy {
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "result": {"message_id": order_id}}))
        } else {
            ResponseTemplate::new(500).set_body_json(
                json!({"ok": false, "error_code": 500, "description": "Internal Server Error"}),
            )
        }
    }
}

/// The database the crash tests run on: PostgreSQL when there is one (seeded with the
/// demo catalog, as `server seed` would), else an embedded SQLite file in a scratch
/// directory named after `name` (the server seeds it itself).
async fn crash_database(name: &str) -> (Option<TestDatabase>, Database, std::path::PathBuf) {
    let pg = TestDatabase::postgres().await;
    let sqlite_dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let database = match &pg {
        Some(db) => Database::Url(db.url().to_owned()),
        None => {
            std::fs::create_dir_all(&sqlite_dir).unwrap();
            Database::Sqlite(sqlite_dir.join("botshop.db").to_string_lossy().into_owned())
        }
    };
    if let Some(db) = &pg {
        db.store()
            .seed_catalog(&server::demo::catalog("http://127.0.0.1:8000"))
            .await
            .unwrap();
    }
    (pg, database, sqlite_dir)
}

/// The start-up check of the manager chat succeeds.
async fn answer_get_chat(telegram: &MockServer) {
    Mock::given(path_regex(r"^/bot[^/]+/getChat$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "result": {"id": MANAGER_CHAT}})),
        )
        .mount(telegram)
        .await;
}

#[tokio::test]
async fn notifications_survive_a_kill_9_and_are_sent_exactly_once() {
    let (pg, database, sqlite_dir) = crash_database("botshop-crash").await;

    let telegram = MockServer::start().await;
    let healthy = Arc::new(AtomicBool::new(false));
    let (attempts_tx, mut attempts) = mpsc::unbounded_channel();
    Mock::given(method("POST"))
        .and(path_regex(r"^/bot[^/]+/sendMessage$"))
        .respond_with(Switchable {
            healthy: healthy.clone(),
            attempts: attempts_tx,
        })
        .mount(&telegram)
        .await;
    answer_get_chat(&telegram).await;

    // 1–2. Telegram fails; five orders are placed.
    let first = start(&database, &telegram.uri());
    let client = reqwest::Client::new();
    let mut placed = Vec::new();
    for n in 0..5 {
        let response = client
            .post(format!("http://127.0.0.1:{}/api/v1/orders", first.port))
            .header("Authorization", auth(5_000 + n, "Покупатель"))
            .json(&json!({
                "items": [{"product_id": 1, "quantity": 1}],
                "delivery_address": "ул. Пушкина, д. 10",
                "phone": "+79001234567"
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
        let order: serde_json::Value = response.json().await.unwrap();
        placed.push(order["id"].as_i64().unwrap());
    }
    // Every order's message was tried and failed, so each one is in the outbox, unsent.
    let mut failed: Vec<i64> = Vec::new();
    while !placed.iter().all(|id| failed.contains(id)) {
        let (order, ok) = tokio::time::timeout(Duration::from_secs(30), attempts.recv())
            .await
            .expect("the relay did not try every order")
            .unwrap();
        assert!(!ok);
        failed.push(order);
    }

    // 3. kill -9.
    drop(first);
    // 4. Telegram recovers.
    healthy.store(true, Ordering::SeqCst);
    // 5. Restart.
    let second = start(&database, &telegram.uri());

    let mut delivered: Vec<i64> = Vec::new();
    while delivered.len() < placed.len() {
        let (order, ok) = tokio::time::timeout(Duration::from_secs(60), attempts.recv())
            .await
            .expect("not every message arrived after the restart")
            .unwrap();
        if ok {
            assert!(
                !delivered.contains(&order),
                "order {order} was delivered twice"
            );
            delivered.push(order);
        }
    }
    delivered.sort_unstable();
    placed.sort_unstable();
    assert_eq!(delivered, placed);

    // Nothing is left to send again: no event is pending or dead.
    let status = command(&database, &telegram.uri())
        .args(["outbox", "status"])
        .output()
        .unwrap();
    let status = String::from_utf8(status.stdout).unwrap();
    assert!(status.contains("pending: 0"), "{status}");
    assert!(status.contains("dead:    0"), "{status}");

    drop(second);
    if let Some(db) = pg {
        db.cleanup().await;
    }
    let _ = std::fs::remove_dir_all(sqlite_dir);
}

/// Telegram that fails with 500 until told to recover, reporting every call as
/// (method, chat id, delivered, text).
struct SwitchableChats {
    healthy: Arc<AtomicBool>,
    calls: mpsc::UnboundedSender<(String, i64, bool, String)>,
}

impl Respond for SwitchableChats {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let method = request
            .url
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let chat = body["chat_id"].as_i64().unwrap_or_default();
        let text = body["text"].as_str().unwrap_or_default().to_owned();
        let healthy = self.healthy.load(Ordering::SeqCst);
        let _ = self.calls.send((method, chat, healthy, text));
        if healthy {
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "result": {"message_id": 700}}))
        } else {
            ResponseTemplate::new(500).set_body_json(
                json!({"ok": false, "error_code": 500, "description": "Internal Server Error"}),
            )
        }
    }
}

/// A status change's messages survive a crash between the change and their sending: the
/// customer's message, the manager's redraw and the manager's notice of the cancellation
/// are each delivered exactly once after a restart, with the new order's message.
#[tokio::test]
async fn a_status_changes_messages_survive_a_kill_9_and_are_sent_exactly_once() {
    let (pg, database, sqlite_dir) = crash_database("botshop-crash-change").await;
    let telegram = MockServer::start().await;
    let healthy = Arc::new(AtomicBool::new(false));
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    Mock::given(method("POST"))
        .and(path_regex(r"^/bot[^/]+/(sendMessage|editMessageText)$"))
        .respond_with(SwitchableChats {
            healthy: healthy.clone(),
            calls: calls_tx,
        })
        .mount(&telegram)
        .await;
    answer_get_chat(&telegram).await;

    // Telegram is down; an order is placed and cancelled by its customer.
    const CUSTOMER: i64 = 6_001;
    let first = start(&database, &telegram.uri());
    let client = reqwest::Client::new();
    let buyer = auth(CUSTOMER, "Покупатель");
    let order: serde_json::Value = client
        .post(format!("http://127.0.0.1:{}/api/v1/orders", first.port))
        .header("Authorization", &buyer)
        .json(&json!({
            "items": [{"product_id": 1, "quantity": 1}],
            "delivery_address": "ул. Пушкина, д. 10",
            "phone": "+79001234567"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cancelled = client
        .post(format!(
            "http://127.0.0.1:{}/api/v1/orders/{}/cancel",
            first.port, order["id"]
        ))
        .header("Authorization", &buyer)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status().as_u16(), 200);
    // The customer's message was tried and failed: it is in the outbox, unsent.
    loop {
        let (method, chat, ok, _) = tokio::time::timeout(Duration::from_secs(30), calls.recv())
            .await
            .expect("the relay did not try the customer's message")
            .unwrap();
        assert!(!ok);
        if method == "sendMessage" && chat == CUSTOMER {
            break;
        }
    }

    // kill -9; Telegram recovers; restart.
    drop(first);
    healthy.store(true, Ordering::SeqCst);
    let second = start(&database, &telegram.uri());

    // Each message told apart by what it is: the two to the manager's chat by their text.
    let kind = |method: &str, chat: i64, text: &str| -> &'static str {
        match (method, chat) {
            ("editMessageText", MANAGER_CHAT) => "the manager's redraw",
            ("sendMessage", CUSTOMER) => "the customer's message",
            ("sendMessage", MANAGER_CHAT) if text.starts_with("❌ Клиент отменил") => {
                "the manager's notice"
            }
            ("sendMessage", MANAGER_CHAT) => "the new order's message",
            _ => "something else",
        }
    };
    let mut delivered: Vec<&str> = Vec::new();
    while delivered.len() < 4 {
        let (method, chat, ok, text) = tokio::time::timeout(Duration::from_secs(60), calls.recv())
            .await
            .expect("not every message arrived after the restart")
            .unwrap();
        if ok {
            let call = kind(&method, chat, &text);
            assert!(!delivered.contains(&call), "{call} was delivered twice");
            delivered.push(call);
        }
    }
    delivered.sort_unstable();
    assert_eq!(
        delivered,
        [
            "the customer's message",
            "the manager's notice",
            "the manager's redraw",
            "the new order's message",
        ]
    );
    // Each is marked sent once Telegram's answer is in: then nothing is left to send
    // again (the last one's mark may follow its delivery by a moment).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // Asked every 50 ms: the condition decides, not the time.
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    loop {
        let status = command(&database, &telegram.uri())
            .args(["outbox", "status"])
            .output()
            .unwrap();
        let status = String::from_utf8(status.stdout).unwrap();
        assert!(status.contains("dead:    0"), "{status}");
        if status.contains("pending: 0") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still pending: {status}"
        );
        poll.tick().await;
    }
    while let Ok((method, chat, ok, text)) = calls.try_recv() {
        assert!(!ok, "{} was delivered again", kind(&method, chat, &text));
    }

    drop(second);
    if let Some(db) = pg {
        db.cleanup().await;
    }
    let _ = std::fs::remove_dir_all(sqlite_dir);
}
