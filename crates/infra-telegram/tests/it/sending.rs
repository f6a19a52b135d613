//! What goes over the wire when all is well.

use domain::ports::{Notification, Notifier};
use infra_telegram::{MESSAGE_LIMIT, TelegramNotifier};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer};

use crate::support::{
    MANAGER_CHAT_ID, SEED_TEXT, TOKEN, answer, config, huge_order, method_path, notifier,
    seed_order, sent,
};

async fn posted_bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| serde_json::from_slice(&request.body).unwrap())
        .collect()
}

#[tokio::test]
async fn the_seed_order_is_posted_as_html_to_the_managers_chat() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(method_path("sendMessage")))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "chat_id": MANAGER_CHAT_ID,
            "text": SEED_TEXT,
            "parse_mode": "HTML",
            "link_preview_options": { "is_disabled": true },
            // The manager's buttons: what may follow PENDING.
            "reply_markup": infra_telegram::manager_keyboard(
                seed_order().order.id,
                domain::OrderStatus::Pending,
            ),
        })))
        .respond_with(sent(42))
        .expect(1)
        .mount(&server)
        .await;

    let receipt = notifier(&server)
        .deliver(&Notification::NewOrder(seed_order()))
        .await
        .unwrap();
    assert_eq!(
        receipt.message_id,
        Some(42),
        "Telegram's message id is kept for the outbox"
    );

    let bodies = posted_bodies(&server).await;
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["chat_id"], json!(MANAGER_CHAT_ID));
    assert_eq!(bodies[0]["parse_mode"], json!("HTML"));
    assert_eq!(bodies[0]["text"], json!(SEED_TEXT));
}

#[tokio::test]
async fn send_message_returns_telegrams_message_id() {
    let server = MockServer::start().await;
    answer(&server, "sendMessage", sent(4242)).await;

    let message_id = notifier(&server).send_message("привет").await.unwrap();

    assert_eq!(message_id, 4242);
    assert_eq!(posted_bodies(&server).await[0]["text"], json!("привет"));
}

#[tokio::test]
async fn a_trailing_slash_in_the_api_url_is_harmless() {
    let server = MockServer::start().await;
    answer(&server, "sendMessage", sent(1)).await;
    let notifier = TelegramNotifier::new(config(&format!("{}/", server.uri()))).unwrap();

    assert_eq!(notifier.send_message("x").await, Ok(1));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests[0].url.path(), format!("/bot{TOKEN}/sendMessage"));
}

#[tokio::test]
async fn a_huge_order_is_still_sent_within_the_limit() {
    let server = MockServer::start().await;
    answer(&server, "sendMessage", sent(7)).await;

    notifier(&server)
        .deliver(&Notification::NewOrder(huge_order()))
        .await
        .unwrap();

    let bodies = posted_bodies(&server).await;
    assert_eq!(bodies.len(), 1);
    let text = bodies[0]["text"].as_str().unwrap();
    assert!(text.encode_utf16().count() <= MESSAGE_LIMIT);
    assert!(text.contains('…'));
}

#[tokio::test]
async fn one_notifier_serves_many_sends() {
    let server = MockServer::start().await;
    answer(&server, "sendMessage", sent(9)).await;
    let notifier = notifier(&server);

    for _ in 0..3 {
        notifier
            .deliver(&Notification::NewOrder(seed_order()))
            .await
            .unwrap();
    }

    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}
