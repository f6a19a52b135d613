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

#[tokio::test]
async fn notifications_survive_a_kill_9_and_are_sent_exactly_once() {
    let pg = TestDatabase::postgres().await;
    let sqlite_dir = std::env::temp_dir().join(format!("botshop-crash-{}", std::process::id()));
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
    Mock::given(path_regex(r"^/bot[^/]+/getChat$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "result": {"id": MANAGER_CHAT}})),
        )
        .mount(&telegram)
        .await;

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
