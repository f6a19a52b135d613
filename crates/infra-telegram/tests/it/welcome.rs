//! The bot's answer to `/start`: a welcome, with the Mini App's button when there is one.

use domain::ports::{BotReplies, NotifyError};
use infra_telegram::{ADMIN_BUTTON, SHOP_BUTTON, TelegramConfig, TelegramNotifier, render_welcome};
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::support::{answer, config, notifier, sent, telegram_error};

async fn only_body(server: &MockServer) -> Value {
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].url.path().ends_with("/sendMessage"));
    serde_json::from_slice(&requests[0].body).unwrap()
}

#[tokio::test]
async fn the_welcome_carries_a_button_that_opens_the_mini_app() {
    let server = MockServer::start().await;
    answer(&server, "sendMessage", sent(5)).await;
    let bot = TelegramNotifier::new(TelegramConfig {
        mini_app_url: Some("https://shop.example.com/app".into()),
        ..config(&server.uri())
    })
    .unwrap();
    bot.welcome(42).await.unwrap();
    let body = only_body(&server).await;
    assert_eq!(body["chat_id"], 42);
    assert_eq!(body["text"], render_welcome(true));
    assert_eq!(
        body["reply_markup"],
        json!({"inline_keyboard": [[{"text": SHOP_BUTTON, "web_app": {"url": "https://shop.example.com/app"}}]]})
    );
}

#[tokio::test]
async fn without_a_mini_app_the_welcome_is_text_alone() {
    let server = MockServer::start().await;
    answer(&server, "sendMessage", sent(5)).await;
    notifier(&server).welcome(42).await.unwrap();
    let body = only_body(&server).await;
    assert_eq!(body["text"], render_welcome(false));
    assert!(body.get("reply_markup").is_none(), "{body}");
}

#[tokio::test]
async fn a_user_who_blocked_the_bot_is_a_permanent_failure() {
    let server = MockServer::start().await;
    answer(
        &server,
        "sendMessage",
        telegram_error(403, "Forbidden: bot was blocked by the user"),
    )
    .await;
    assert!(matches!(
        notifier(&server).welcome(42).await,
        Err(NotifyError::Permanent { .. })
    ));
}

#[tokio::test]
async fn the_menu_button_opens_the_mini_app() {
    let server = MockServer::start().await;
    answer(&server, "setChatMenuButton", ok_true()).await;
    notifier(&server)
        .set_menu_button("https://shop.example.com/app")
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(
        body,
        json!({"menu_button": {"type": "web_app", "text": SHOP_BUTTON, "web_app": {"url": "https://shop.example.com/app"}}})
    );
}

#[tokio::test]
async fn deleting_the_webhook_keeps_pending_updates() {
    let server = MockServer::start().await;
    answer(&server, "deleteWebhook", ok_true()).await;
    notifier(&server).delete_webhook().await.unwrap();
    let requests = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body, json!({"drop_pending_updates": false}));
}

fn ok_true() -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true}))
}

#[tokio::test]
async fn a_press_is_answered_with_what_came_of_it() {
    use domain::bot::ButtonOutcome;
    use domain::{OrderId, OrderStatus};
    let server = MockServer::start().await;
    answer(&server, "answerCallbackQuery", ok_true()).await;
    let outcome = ButtonOutcome::AlreadyChanged {
        order_id: OrderId(5),
        current: OrderStatus::Cancelled,
    };
    notifier(&server)
        .answer_button("cb-1", outcome)
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].url.path().ends_with("/answerCallbackQuery"));
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["callback_query_id"], "cb-1");
    let text = body["text"].as_str().unwrap();
    assert_eq!(text, infra_telegram::render_button_answer(outcome));
    assert!(text.contains("#5") && text.chars().count() <= 200, "{text}");
}

#[tokio::test]
async fn orders_lists_each_open_order_with_its_buttons_or_says_there_are_none() {
    use crate::support::seed_order;
    let server = MockServer::start().await;
    answer(&server, "sendMessage", sent(5)).await;
    let bot = notifier(&server);
    bot.show_open_orders(42, &[seed_order()]).await.unwrap();
    bot.show_open_orders(42, &[]).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let listed: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(listed["chat_id"], 42);
    let order = seed_order();
    assert_eq!(
        listed["reply_markup"],
        serde_json::to_value(infra_telegram::manager_keyboard(
            order.order.id,
            order.order.status
        ))
        .unwrap()
    );
    let none: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(none["text"], infra_telegram::NO_OPEN_ORDERS);
}

#[tokio::test]
async fn admin_answers_with_a_button_that_opens_the_panel() {
    let server = MockServer::start().await;
    answer(&server, "sendMessage", sent(6)).await;
    let bot = TelegramNotifier::new(TelegramConfig {
        admin_panel_url: Some("https://shop.example.com/admin/".into()),
        ..config(&server.uri())
    })
    .unwrap();
    bot.admin_panel(42, true).await.unwrap();
    let body = only_body(&server).await;
    assert_eq!(body["chat_id"], 42);
    assert_eq!(
        body["reply_markup"],
        json!({"inline_keyboard": [[{"text": ADMIN_BUTTON, "web_app": {"url": "https://shop.example.com/admin/"}}]]})
    );
}

#[tokio::test]
async fn admin_without_https_says_where_the_panel_is_and_what_to_set() {
    let server = MockServer::start().await;
    answer(&server, "sendMessage", sent(6)).await;
    let bot = TelegramNotifier::new(TelegramConfig {
        admin_panel_url: Some("http://127.0.0.1:8000/admin/".into()),
        ..config(&server.uri())
    })
    .unwrap();
    bot.admin_panel(42, true).await.unwrap();
    let body = only_body(&server).await;
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("http://127.0.0.1:8000/admin/") && text.contains("PUBLIC_BASE_URL"));
    assert!(body.get("reply_markup").is_none(), "{body}");
}

#[tokio::test]
async fn admin_in_a_group_says_to_ask_in_private() {
    let server = MockServer::start().await;
    answer(&server, "sendMessage", sent(6)).await;
    let bot = TelegramNotifier::new(TelegramConfig {
        admin_panel_url: Some("https://shop.example.com/admin/".into()),
        ..config(&server.uri())
    })
    .unwrap();
    // Telegram refuses a web_app button outside a private chat.
    bot.admin_panel(-100_123, false).await.unwrap();
    let body = only_body(&server).await;
    assert!(body["text"].as_str().unwrap().contains("личном чате"));
    assert!(body.get("reply_markup").is_none(), "{body}");
}
