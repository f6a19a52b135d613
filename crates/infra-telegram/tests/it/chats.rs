//! Messages to any chat: a customer's status message in their private chat, the edit of
//! the manager's message, and a fake Bot API that answers each chat differently.

use domain::entities::OrderStatus;
use domain::outbox::{ChangedBy, Notice};
use domain::ports::{Notification, Notifier, NotifyError, StatusChanged};
use domain::{OrderId, TelegramId};
use infra_telegram::{render_manager_notice, render_manager_update};
use serde_json::{Value, json};
use time::macros::offset;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{
    MANAGER_CHAT_ID, answer, method_path, money, notifier, seed_order, sent, telegram_error,
};

fn status_changed(customer: i64, language: Option<&str>) -> Notification {
    Notification::StatusChanged(StatusChanged {
        payment: Default::default(),
        customer: TelegramId::parse(customer).unwrap(),
        language_code: language.map(str::to_owned),
        order_id: OrderId(123),
        total_amount: money("800"),
        from: OrderStatus::Pending,
        to: OrderStatus::Confirmed,
        by: ChangedBy::Manager(TelegramId::parse(MANAGER_CHAT_ID).unwrap()),
    })
}

/// Mounts `response` for `sendMessage` calls to `chat_id` only.
async fn answer_chat(server: &MockServer, chat_id: i64, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(method_path("sendMessage")))
        .and(body_partial_json(json!({ "chat_id": chat_id })))
        .respond_with(response)
        .mount(server)
        .await;
}

/// The bodies of every call, in order, with the method each went to.
async fn calls(server: &MockServer) -> Vec<(String, Value)> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| {
            let method = request.url.path().rsplit('/').next().unwrap().to_owned();
            (method, serde_json::from_slice(&request.body).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_status_change_goes_to_the_customers_private_chat_in_their_language() {
    let server = MockServer::start().await;
    answer(&server, "sendMessage", sent(9)).await;
    let notifier = notifier(&server);

    let receipt = notifier
        .deliver(&status_changed(987_654_321, None))
        .await
        .unwrap();
    notifier
        .deliver(&status_changed(555, Some("en")))
        .await
        .unwrap();

    assert_eq!(receipt.message_id, Some(9));
    let calls = calls(&server).await;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].0, "sendMessage");
    assert_eq!(calls[0].1["chat_id"], json!(987_654_321));
    assert_eq!(
        calls[0].1["text"],
        json!("📦 Заказ #123 подтверждён\n💰 Сумма: 800 ₽")
    );
    assert_eq!(calls[1].1["chat_id"], json!(555));
    assert_eq!(
        calls[1].1["text"],
        json!("📦 Order #123 is confirmed\n💰 Total: 800 ₽")
    );
}

#[tokio::test]
async fn a_manager_message_update_edits_the_new_order_message() {
    let server = MockServer::start().await;
    answer(&server, "editMessageText", sent(42)).await;
    let mut placed = seed_order();
    placed.order.status = OrderStatus::Shipped;

    let receipt = notifier(&server)
        .deliver(&Notification::ManagerMessageEdit {
            message_id: 42,
            order: placed.clone(),
        })
        .await
        .unwrap();

    assert_eq!(receipt.message_id, Some(42));
    let calls = calls(&server).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "editMessageText");
    let body = &calls[0].1;
    assert_eq!(body["chat_id"], json!(MANAGER_CHAT_ID));
    assert_eq!(body["message_id"], json!(42));
    assert_eq!(body["parse_mode"], json!("HTML"));
    assert_eq!(
        body["text"],
        json!(render_manager_update(&placed, offset!(+3)))
    );
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .ends_with("\n\n📌 Статус: отправлен")
    );
}

#[tokio::test]
async fn a_notice_is_a_new_message_in_the_manager_chat() {
    let server = MockServer::start().await;
    answer(&server, "sendMessage", sent(43)).await;
    let mut placed = seed_order();
    placed.order.status = OrderStatus::Cancelled;

    let receipt = notifier(&server)
        .deliver(&Notification::ManagerNotice {
            notice: Notice::CancelledByCustomer,
            order: placed.clone(),
        })
        .await
        .unwrap();

    assert_eq!(receipt.message_id, Some(43));
    let calls = calls(&server).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "sendMessage");
    let body = &calls[0].1;
    assert_eq!(body["chat_id"], json!(MANAGER_CHAT_ID));
    assert!(body.get("reply_markup").is_none(), "{body}");
    assert_eq!(
        body["text"],
        json!(format!(
            "❌ Клиент отменил заказ #{}\n💰 Сумма: 800 ₽",
            placed.order.id
        ))
    );
    assert_eq!(
        body["text"],
        json!(render_manager_notice(Notice::CancelledByCustomer, &placed))
    );
}

#[tokio::test]
async fn an_edit_that_changes_nothing_counts_as_delivered() {
    let server = MockServer::start().await;
    answer(
        &server,
        "editMessageText",
        telegram_error(
            400,
            "Bad Request: message is not modified: specified new message content and reply \
             markup are exactly the same as a current content and reply markup of the message",
        ),
    )
    .await;

    let receipt = notifier(&server)
        .deliver(&Notification::ManagerMessageEdit {
            message_id: 42,
            order: seed_order(),
        })
        .await
        .unwrap();

    assert_eq!(receipt.message_id, Some(42));
}

#[tokio::test]
async fn each_chat_gets_its_own_answer_and_refusals_are_permanent() {
    const FLOODED: i64 = 1001;
    const BLOCKED: i64 = 1002;
    const NEVER_STARTED: i64 = 1003;
    const MISSING: i64 = 1004;
    const FAILING: i64 = 1005;
    let server = MockServer::start().await;
    answer_chat(
        &server,
        FLOODED,
        ResponseTemplate::new(429).set_body_json(json!({
            "ok": false,
            "error_code": 429,
            "description": "Too Many Requests: retry after 7",
            "parameters": { "retry_after": 7 }
        })),
    )
    .await;
    answer_chat(
        &server,
        BLOCKED,
        telegram_error(403, "Forbidden: bot was blocked by the user"),
    )
    .await;
    answer_chat(
        &server,
        NEVER_STARTED,
        telegram_error(
            403,
            "Forbidden: bot can't initiate conversation with a user",
        ),
    )
    .await;
    answer_chat(
        &server,
        MISSING,
        telegram_error(400, "Bad Request: chat not found"),
    )
    .await;
    answer_chat(&server, FAILING, telegram_error(502, "Bad Gateway")).await;
    answer_chat(&server, 777, sent(5)).await;
    let notifier = notifier(&server);

    match notifier.deliver(&status_changed(FLOODED, None)).await {
        Err(NotifyError::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, time::Duration::seconds(7));
        }
        other => panic!("expected flood control, got {other:?}"),
    }
    for (chat, description) in [
        (BLOCKED, "bot was blocked by the user"),
        (NEVER_STARTED, "bot can't initiate conversation with a user"),
        (MISSING, "chat not found"),
    ] {
        match notifier.deliver(&status_changed(chat, None)).await {
            Err(NotifyError::Permanent { reason }) => {
                assert!(reason.contains(description), "{reason}");
            }
            other => panic!("chat {chat}: expected a permanent refusal, got {other:?}"),
        }
    }
    assert!(matches!(
        notifier.deliver(&status_changed(FAILING, None)).await,
        Err(NotifyError::Transient { .. })
    ));
    let receipt = notifier.deliver(&status_changed(777, None)).await.unwrap();
    assert_eq!(receipt.message_id, Some(5), "another chat is unaffected");
    let chats: Vec<Value> = calls(&server)
        .await
        .into_iter()
        .map(|(_, body)| body["chat_id"].clone())
        .collect();
    assert_eq!(
        chats,
        [FLOODED, BLOCKED, NEVER_STARTED, MISSING, FAILING, 777].map(|chat| json!(chat)),
        "the fake records every call, once each: nothing is retried here"
    );
}

#[test]
fn the_managers_buttons_offer_what_may_follow_and_nothing_when_final() {
    use infra_telegram::{button_label, manager_keyboard};
    let pending =
        serde_json::to_value(manager_keyboard(OrderId(123), OrderStatus::Pending)).unwrap();
    assert_eq!(
        pending,
        json!({"inline_keyboard": [
            [{"text": button_label(OrderStatus::Confirmed), "callback_data": "s:123:P:C"},
             {"text": button_label(OrderStatus::Processing), "callback_data": "s:123:P:R"}],
            [{"text": button_label(OrderStatus::Shipped), "callback_data": "s:123:P:S"},
             {"text": button_label(OrderStatus::Delivered), "callback_data": "s:123:P:D"}],
            [{"text": button_label(OrderStatus::Cancelled), "callback_data": "s:123:P:X"}],
        ]})
    );
    let final_ =
        serde_json::to_value(manager_keyboard(OrderId(123), OrderStatus::Delivered)).unwrap();
    assert_eq!(final_, json!({"inline_keyboard": []}));
}
