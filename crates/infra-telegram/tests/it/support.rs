//! Fixtures shared by the tests: the seed order, a notifier pointed at a fake server, and
//! Telegram's answers.

use std::str::FromStr;
use std::time::Duration;

use domain::entities::{Order, OrderItem, OrderStatus};
use domain::ports::{NotifyError, OrderPlaced};
use domain::{Money, OrderId, ProductId, TelegramId, UserId};
use infra_telegram::{BotToken, TelegramConfig, TelegramNotifier};
use rust_decimal::Decimal;
use serde_json::json;
use time::macros::{datetime, offset};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const TOKEN: &str = "123456:SECRET-TOKEN-abc";
pub const MANAGER_CHAT_ID: i64 = 111_222_333;
pub const PHONE: &str = "+79001234567";
pub const ADDRESS: &str = "ул. Пушкина, д. 10";

/// The message the seed project sends for [`seed_order`], byte for byte.
pub const SEED_TEXT: &str = "🛒 Новый заказ #123

👤 Покупатель: ID 987654321

📦 Состав заказа:
• Товар 1 × 2 = 500 ₽
• Товар 2 × 1 = 300 ₽

💰 Итого: 800 ₽

📍 Адрес: ул. Пушкина, д. 10
📞 Телефон: +79001234567
💬 Комментарий: Домофон не работает

🕐 Создан: 22.12.2025 15:30";

pub fn money(amount: &str) -> Money {
    Money::parse(Decimal::from_str(amount).unwrap()).unwrap()
}

pub fn item(id: i64, name: &str, price: &str, quantity: u32) -> OrderItem {
    OrderItem {
        product_id: ProductId(id),
        product_name: name.to_owned(),
        quantity,
        price: money(price),
    }
}

/// Order #123 of customer 987654321, placed at 2025-12-22 12:30 UTC.
pub fn seed_order() -> OrderPlaced {
    let created_at = datetime!(2025-12-22 12:30 UTC);
    OrderPlaced {
        order: Order {
            payment: Default::default(),
            id: OrderId(123),
            user_id: UserId(7),
            status: OrderStatus::Pending,
            total_amount: money("800"),
            delivery_address: ADDRESS.to_owned(),
            phone: PHONE.to_owned(),
            comment: Some("Домофон не работает".to_owned()),
            created_at,
            updated_at: created_at,
            items: vec![item(1, "Товар 1", "250", 2), item(2, "Товар 2", "300", 1)],
        },
        customer: TelegramId::parse(987_654_321).unwrap(),
    }
}

pub fn config(api_url: &str) -> TelegramConfig {
    TelegramConfig {
        api_url: api_url.to_owned(),
        utc_offset: offset!(+3),
        ..TelegramConfig::new(BotToken::new(TOKEN).unwrap(), MANAGER_CHAT_ID)
    }
}

pub fn notifier(server: &MockServer) -> TelegramNotifier {
    TelegramNotifier::new(config(&server.uri())).unwrap()
}

pub fn method_path(method_name: &str) -> String {
    format!("/bot{TOKEN}/{method_name}")
}

/// Telegram's answer to a successful `sendMessage`.
pub fn sent(message_id: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "ok": true,
        "result": {
            "message_id": message_id,
            "date": 1_766_406_600,
            "chat": { "id": MANAGER_CHAT_ID, "type": "private" },
            "text": "…"
        }
    }))
}

/// Telegram's error answer.
pub fn telegram_error(status: u16, description: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "ok": false,
        "error_code": status,
        "description": description
    }))
}

/// Mounts `response` for every call of `method_name`.
pub async fn answer(server: &MockServer, method_name: &str, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(method_path(method_name)))
        .respond_with(response)
        .mount(server)
        .await;
}

/// Sends the seed order and returns the error it must fail with.
pub async fn order_placed_error(notifier: &TelegramNotifier) -> NotifyError {
    use domain::ports::{Notification, Notifier};
    notifier
        .deliver(&Notification::NewOrder(seed_order()))
        .await
        .expect_err("the notification should fail")
}

/// A local port nobody listens on: bound, then released.
pub fn unused_local_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

pub fn short_timeout_config(api_url: &str) -> TelegramConfig {
    TelegramConfig {
        timeout: Duration::from_millis(200),
        ..config(api_url)
    }
}

/// A 1000-character comment, a 500-character address and 50 lines with long names: far
/// beyond Telegram's limit.
pub fn huge_order() -> OrderPlaced {
    let mut notification = seed_order();
    let order = &mut notification.order;
    order.comment = Some("к".repeat(1000));
    order.delivery_address = "а".repeat(500);
    order.items = (1..=50)
        .map(|n| {
            let name = format!("{n}: {}", "Очень длинное название ".repeat(20));
            item(n, &name, "99999.99", 100)
        })
        .collect();
    order.total_amount = money("499999950");
    notification
}
