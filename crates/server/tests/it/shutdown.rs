//! Graceful shutdown and log hygiene, on the real binary.

use std::process::Command;
use std::time::Duration;

use infra_postgres::test_support::TestDatabase;
use serde_json::json;
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::process::{Database, start, start_with};
use crate::support::{MANAGER_CHAT, TOKEN, auth};

async fn accepting_telegram() -> MockServer {
    let telegram = MockServer::start().await;
    Mock::given(path_regex(r"^/bot[^/]+/(sendMessage|getChat)$"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"ok": true, "result": {"message_id": 1, "id": MANAGER_CHAT}}),
            ),
        )
        .mount(&telegram)
        .await;
    telegram
}

fn order_body() -> serde_json::Value {
    json!({
        "items": [{"product_id": 1, "quantity": 1}],
        "delivery_address": "ул. Секретная, д. 7, кв. 13",
        "phone": "+7 (999) 555-12-34",
        "comment": "Домофон 13К"
    })
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_and_exits_zero() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    db.store()
        .seed_catalog(&server::demo::catalog("http://127.0.0.1:8000"))
        .await
        .unwrap();
    let telegram = accepting_telegram().await;
    let mut server = start(&Database::Url(db.url().to_owned()), &telegram.uri());

    // Lock product 1, so every order for it waits inside the server, mid-transaction.
    let lock = db
        .hold("SELECT id FROM products WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let in_flight: Vec<_> = (0..5)
        .map(|n| {
            let request = client
                .post(format!("http://127.0.0.1:{}/api/v1/orders", server.port))
                .header("Authorization", auth(7_000 + n, "Клиент"))
                .json(&order_body());
            tokio::spawn(request.send())
        })
        .collect();
    // Wait until all five are blocked on the lock: they are truly in flight.
    db.wait_for_lock_waiters(5)
        .await
        .expect("the orders never reached the database");

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The server drains rather than dying: release the lock and every request completes.
    lock.release().await.unwrap();
    for request in in_flight {
        let response = request.await.unwrap().expect("an in-flight request failed");
        assert_eq!(response.status().as_u16(), 201);
    }
    let code = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap();
    assert_eq!(code, Some(0), "graceful shutdown exits 0");
    db.cleanup().await;
}

#[tokio::test]
async fn sigint_is_graceful_too() {
    let dir = std::env::temp_dir().join(format!("botshop-sigint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let telegram = accepting_telegram().await;
    let database = Database::Sqlite(dir.join("botshop.db").to_string_lossy().into_owned());
    let mut server = start(&database, &telegram.uri());
    let response = reqwest::get(format!(
        "http://127.0.0.1:{}/api/v1/categories",
        server.port
    ))
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let status = Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = tokio::task::spawn_blocking(move || {
        let code = server.wait();
        (code, server.logs())
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0), "{:?}", code.1);
    assert!(
        code.1.iter().any(|l| l.contains("SIGINT")),
        "the log says why it stopped"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A polling server stops at once on SIGTERM, its long poll abandoned, and gives the
/// poller's role back: a second server on the database takes it and polls.
#[tokio::test]
async fn sigterm_abandons_a_long_poll_and_frees_the_pollers_role() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let telegram = accepting_telegram().await;
    // A long poll that would outlast the test's deadline many times over.
    Mock::given(path_regex(r"^/bot[^/]+/getUpdates$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "result": []}))
                .set_delay(Duration::from_secs(600)),
        )
        .mount(&telegram)
        .await;
    let database = Database::Url(db.url().to_owned());
    let polling = [("TELEGRAM_UPDATES", "polling")];
    let mut first = start_with(&database, &telegram.uri(), &polling);
    wait_for_polls_within(&telegram, 1, Duration::from_secs(30)).await;
    // The second stands by (the role is taken) and polls only once the first is gone.
    let second = start_with(&database, &telegram.uri(), &polling);

    let status = Command::new("kill")
        .args(["-TERM", &first.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Far less than the long poll's 600 s: the poll was abandoned, not waited out.
    let (code, logs) = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || (first.wait(), first.logs())),
    )
    .await
    .expect("the polling server did not stop")
    .unwrap();
    assert_eq!(code, Some(0), "{logs:?}");
    assert_eq!(
        poll_count(&telegram).await,
        1,
        "only one instance polled while the first held the role"
    );
    // The second instance tries the role every 10 s (its standby), and then polls.
    wait_for_polls_within(&telegram, 2, Duration::from_secs(60)).await;
    drop(second);
    db.cleanup().await;
}

/// How many getUpdates `telegram` has received.
async fn poll_count(telegram: &MockServer) -> usize {
    telegram
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|request| request.url.path().ends_with("/getUpdates"))
        .count()
}

/// Waits until `telegram` has received `count` getUpdates, for at most `within`.
async fn wait_for_polls_within(telegram: &MockServer, count: usize, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let polls = poll_count(telegram).await;
        if polls >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {polls} getUpdates arrived"
        );
        // A poll interval, not a timing assumption: the loop ends on the condition.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn logs_of_a_full_order_flow_hold_no_secrets_or_personal_data() {
    let dir = std::env::temp_dir().join(format!("botshop-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let telegram = accepting_telegram().await;
    let database = Database::Sqlite(dir.join("botshop.db").to_string_lossy().into_owned());
    let server = start_with(
        &database,
        &telegram.uri(),
        &[("RUST_LOG", "debug"), ("LOG_FORMAT", "json")],
    );
    let base = format!("http://127.0.0.1:{}/api/v1", server.port);
    let client = reqwest::Client::new();
    let authorization = auth(987_654_321, "Иван");
    let init_data = authorization.strip_prefix("tma ").unwrap().to_owned();
    let hash = init_data.rsplit_once("hash=").unwrap().1.to_owned();

    let created = client
        .post(format!("{base}/orders"))
        .header("Authorization", &authorization)
        .json(&order_body())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let order: serde_json::Value = created.json().await.unwrap();
    for path in [
        "/users/me".to_owned(),
        "/orders/my".to_owned(),
        format!("/orders/{}", order["id"]),
    ] {
        let response = client
            .get(format!("{base}{path}"))
            .header("Authorization", &authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    // A forged request too: its rejection must not echo what it sent.
    let forged = authorization.replace("987654321", "123");
    let response = client
        .get(format!("{base}/users/me"))
        .header("Authorization", forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // The manager's message is sent (and logged about) before we look.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !server.logs().iter().any(|l| l.contains("manager notified")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the notification was never sent"
        );
        // A poll interval, not a timing assumption: the loop ends on the condition.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let logs = server.logs().join("\n");
    assert!(logs.contains("\"level\""), "logs are JSON lines: {logs}");
    let all_lines = server.logs();
    let request_lines: Vec<&String> = all_lines
        .iter()
        .filter(|l| l.contains("\"route\""))
        .collect();
    assert!(!request_lines.is_empty());
    assert!(
        request_lines.iter().all(|l| l.contains("\"request_id\"")),
        "every request line names its request id"
    );
    let secret_token = TOKEN.split_once(':').unwrap().1;
    for (what, needle) in [
        ("the bot token", secret_token),
        ("initData", init_data.as_str()),
        ("the initData hash", hash.as_str()),
        ("the phone", "555-12-34"),
        ("the phone digits", "9995551234"),
        ("the address", "Секретная"),
        ("the comment", "Домофон 13К"),
    ] {
        assert!(!logs.contains(needle), "{what} appears in the logs");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}
