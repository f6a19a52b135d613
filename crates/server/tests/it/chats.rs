//! The whole server's relay, with a fake Telegram that answers each chat differently: a
//! 429 in one customer's chat holds only that chat, a customer who blocked the bot makes
//! that one event dead at once, and the manager's chat goes on; a 429 in the manager's
//! chat holds only it, and the customers hear on.

use domain::entities::OrderStatus;
use domain::outbox::{ChangedBy, OutboxEvent};
use domain::ports::Outbox;
use domain::{OrderId, TelegramId};
use infra_postgres::test_support::append_outbox_events;
use infra_postgres::{Database, PoolOptions};
use serde_json::{Value, json};
use server::config::DatabaseTarget;

use crate::support::*;

const FLOODED: i64 = 1001;
const BLOCKED: i64 = 1002;

/// Places an order; returns its id and its total as the customer's message shows it.
async fn place(app: &TestApp, customer: i64) -> (OrderId, String) {
    let order: Value = app
        .client
        .post(app.url("/orders"))
        .header("Authorization", auth(customer, "Покупатель"))
        .json(&json!({
            "items": [{"product_id": 2, "quantity": 1}],
            "delivery_address": "пр. Мира, д. 5",
            "phone": "+79001234567"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = OrderId(order["id"].as_i64().unwrap_or_else(|| panic!("{order}")));
    let total = order["total_amount"].as_str().unwrap();
    (
        id,
        format!("{} ₽", total.strip_suffix(".00").unwrap_or(total)),
    )
}

fn confirmed(order_id: OrderId) -> OutboxEvent {
    OutboxEvent::OrderStatusChanged {
        order_id,
        from: OrderStatus::Pending,
        to: OrderStatus::Confirmed,
        by: ChangedBy::Manager(TelegramId::parse(MANAGER_CHAT).unwrap()),
    }
}

/// `url` reaches the database the server of `target` uses.
async fn one_chat_never_stalls_another(target: DatabaseTarget, url: &str) {
    let mut telegram = FakeTelegram::start().await;
    telegram.answer_chat(
        FLOODED,
        telegram_error(429, "Too Many Requests: retry after 3600", Some(3600)),
    );
    telegram.answer_chat(
        BLOCKED,
        telegram_error(403, "Forbidden: bot was blocked by the user", None),
    );
    let app = TestApp::spawn(&settings(target, &telegram.server.uri())).await;
    let (flooded_order, flooded_total) = place(&app, FLOODED).await;
    let (blocked_order, _) = place(&app, BLOCKED).await;
    for _ in 0..2 {
        let (method, body) = telegram.next_call().await;
        assert_eq!(
            (method.as_str(), &body["chat_id"]),
            ("sendMessage", &json!(MANAGER_CHAT))
        );
    }

    let database = Database::connect(url, PoolOptions::default())
        .await
        .unwrap();
    append_outbox_events(
        &database,
        &[
            confirmed(flooded_order),
            confirmed(blocked_order),
            confirmed(flooded_order),
            OutboxEvent::ManagerMessageUpdate {
                order_id: flooded_order,
            },
        ],
    )
    .await
    .unwrap();

    // In line: the flooded chat (429: held), the blocked one (403: dead), the flooded
    // chat's second event (skipped: held), the manager's edit (sent).
    let (method, body) = telegram.next_call().await;
    assert_eq!(
        (method.as_str(), &body["chat_id"]),
        ("sendMessage", &json!(FLOODED))
    );
    assert_eq!(
        body["text"],
        json!(format!(
            "📦 Заказ #{} подтверждён\n💰 Сумма: {flooded_total}",
            flooded_order.0
        )),
        "{body}"
    );
    let (method, body) = telegram.next_call().await;
    assert_eq!(
        (method.as_str(), &body["chat_id"]),
        ("sendMessage", &json!(BLOCKED))
    );
    let (method, body) = telegram.next_call().await;
    assert_eq!(
        (method.as_str(), &body["chat_id"]),
        ("editMessageText", &json!(MANAGER_CHAT)),
        "the held chat's second event was not tried; the manager's chat went on: {body}"
    );
    assert_eq!(body["message_id"], json!(77));
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .ends_with("📌 Статус: ожидает подтверждения")
    );
    let counts = database.store().counts().await.unwrap();
    assert_eq!(
        counts.dead, 1,
        "the blocked customer's message is dead at once"
    );
    database.close().await.unwrap();
}

#[tokio::test]
async fn one_chat_never_stalls_another_on_postgres() {
    let Some((database, target)) = seeded_postgres().await else {
        return;
    };
    one_chat_never_stalls_another(target, database.url()).await;
    database.cleanup().await;
}

#[tokio::test]
async fn one_chat_never_stalls_another_on_sqlite() {
    let (path, dir) = sqlite_file("chats");
    one_chat_never_stalls_another(
        DatabaseTarget::EmbeddedSqlite(path.clone()),
        &format!("sqlite://{path}"),
    )
    .await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A 429 in the manager's chat: the manager's messages wait out the hold, the customers'
/// go on.
async fn a_flooded_manager_chat_holds_only_itself(target: DatabaseTarget, url: &str) {
    let mut telegram = FakeTelegram::start().await;
    telegram.answer_chat(
        MANAGER_CHAT,
        telegram_error(429, "Too Many Requests: retry after 3600", Some(3600)),
    );
    let app = TestApp::spawn(&settings(target, &telegram.server.uri())).await;
    let (order, total) = place(&app, FLOODED).await;
    // The new order's message: refused with a 429, the chat held for an hour.
    let (method, body) = telegram.next_call().await;
    assert_eq!(
        (method.as_str(), &body["chat_id"]),
        ("sendMessage", &json!(MANAGER_CHAT))
    );

    let database = Database::connect(url, PoolOptions::default())
        .await
        .unwrap();
    append_outbox_events(
        &database,
        &[
            OutboxEvent::ManagerMessageUpdate { order_id: order },
            confirmed(order),
        ],
    )
    .await
    .unwrap();
    // The manager's edit comes first in line and is skipped (held); the customer's
    // message goes.
    let (method, body) = telegram.next_call().await;
    assert_eq!(
        (method.as_str(), &body["chat_id"]),
        ("sendMessage", &json!(FLOODED)),
        "the held manager chat was not tried again: {body}"
    );
    assert_eq!(
        body["text"],
        json!(format!(
            "📦 Заказ #{} подтверждён\n💰 Сумма: {total}",
            order.0
        ))
    );
    // Once the customer's message is marked sent (a moment after its delivery), the
    // manager's two wait for the hold to end, neither dead.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    // Asked every 50 ms: the condition decides, not the time.
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        let counts = database.store().counts().await.unwrap();
        assert_eq!(counts.dead, 0);
        assert!(counts.pending >= 2, "{counts:?}");
        if counts.pending == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{counts:?}");
        poll.tick().await;
    }
    database.close().await.unwrap();
}

#[tokio::test]
async fn a_flooded_manager_chat_holds_only_itself_on_postgres() {
    let Some((database, target)) = seeded_postgres().await else {
        return;
    };
    a_flooded_manager_chat_holds_only_itself(target, database.url()).await;
    database.cleanup().await;
}

#[tokio::test]
async fn a_flooded_manager_chat_holds_only_itself_on_sqlite() {
    let (path, dir) = sqlite_file("flooded-manager");
    a_flooded_manager_chat_holds_only_itself(
        DatabaseTarget::EmbeddedSqlite(path.clone()),
        &format!("sqlite://{path}"),
    )
    .await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A fresh SQLite file of its own: its path, and the directory to remove afterwards.
fn sqlite_file(name: &str) -> (String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "botshop-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("botshop.db");
    (path.to_string_lossy().into_owned(), dir)
}
