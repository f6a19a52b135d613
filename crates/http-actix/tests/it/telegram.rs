//! `POST /telegram/webhook`: only Telegram (the secret) gets in, each update is handled
//! once, and nothing Telegram sends makes it retry in a loop.

use std::sync::{Arc, Mutex};

use actix_web::test::TestRequest;
use domain::bot::BotService;
use domain::ports::{MockBotReplies, MockUpdateLog};
use http_actix::TelegramWebhook;

use crate::support::*;

const SECRET: &str = "s3cret_webhook-TOKEN";

/// An app with the webhook, an update log that remembers ids, and replies that count.
async fn bot_app(
    replies: MockBotReplies,
) -> (
    impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    Arc<Mutex<Vec<i64>>>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut log = MockUpdateLog::new();
    let remembered = seen.clone();
    log.expect_first_seen().returning(move |id, _| {
        let mut seen = remembered.lock().unwrap();
        let first = !seen.contains(&id);
        seen.push(id);
        Ok(first)
    });
    let (mut state, mut config) = Mocks::new().state();
    state.telegram = Some(TelegramWebhook {
        bot: BotService::new(
            Arc::new(log),
            Arc::new(replies),
            Arc::new(domain::ports::MockOrderLifecycle::new()),
            Vec::new(),
            Arc::new(tokio::sync::Notify::new()),
        ),
        secret: SECRET.to_owned().into(),
    });
    config.telegram_webhook = true;
    let http = http_actix::Http::new(state, config).unwrap();
    (worker(&http).await, seen)
}

fn update(secret: Option<&str>, body: &str) -> TestRequest {
    let mut req = TestRequest::post()
        .uri("/telegram/webhook")
        .insert_header(("Content-Type", "application/json"))
        .set_payload(body.to_owned());
    if let Some(secret) = secret {
        req = req.insert_header(("X-Telegram-Bot-Api-Secret-Token", secret));
    }
    req
}

const START: &str = r#"{"update_id": 10, "message": {"message_id": 1, "chat": {"id": 42, "type": "private"}, "from": {"id": 42}, "text": "/start"}}"#;

#[actix_web::test]
async fn without_the_secret_nothing_is_read() {
    let mut replies = MockBotReplies::new();
    replies.expect_welcome().never();
    let (app, seen) = bot_app(replies).await;
    for secret in [None, Some(""), Some("wrong"), Some("s3cret_webhook-TOKEN ")] {
        let body = problem(&app, update(secret, START), 401, "invalid_webhook_secret").await;
        assert!(!body.to_string().contains(SECRET));
    }
    assert!(seen.lock().unwrap().is_empty(), "no update was recorded");
}

#[actix_web::test]
async fn start_is_answered_once_however_often_telegram_delivers_it() {
    // The welcome goes out after the 200, from a task of its own: each one is reported
    // here as it is sent.
    let (welcomed, mut welcomes) = tokio::sync::mpsc::unbounded_channel();
    let mut replies = MockBotReplies::new();
    replies.expect_welcome().returning(move |chat| {
        let _ = welcomed.send(chat);
        Ok(())
    });
    let (app, seen) = bot_app(replies).await;
    for _ in 0..3 {
        let raw = call_raw(&app, update(Some(SECRET), START)).await;
        assert_eq!(raw.status, 200);
    }
    assert_eq!(*seen.lock().unwrap(), [10, 10, 10]);
    let next = async |welcomes: &mut tokio::sync::mpsc::UnboundedReceiver<i64>| {
        tokio::time::timeout(std::time::Duration::from_secs(10), welcomes.recv())
            .await
            .expect("no welcome was sent")
            .expect("the bot is gone")
    };
    assert_eq!(next(&mut welcomes).await, 42);
    // Another chat's /start: its welcome is the next one sent (the redeliveries of
    // update 10 sent none).
    let other = START
        .replace("\"update_id\": 10", "\"update_id\": 11")
        .replace("42", "43");
    assert_eq!(
        call_raw(&app, update(Some(SECRET), &other)).await.status,
        200
    );
    assert_eq!(next(&mut welcomes).await, 43);
}

#[actix_web::test]
async fn malformed_and_unknown_updates_are_acknowledged_not_retried() {
    let mut replies = MockBotReplies::new();
    replies.expect_welcome().never();
    let (app, seen) = bot_app(replies).await;
    for body in [
        "not json",
        "{}",
        r#"{"update_id": "eleven"}"#,
        r#"{"update_id": 11, "message": {"chat": {"id": 42}, "text": "/unknown"}}"#,
        r#"{"update_id": 12, "edited_message": {"chat": {"id": 42}, "text": "/start"}}"#,
        r#"{"update_id": 13, "message": {"chat": {"id": 42}, "sticker": {}}}"#,
    ] {
        let raw = call_raw(&app, update(Some(SECRET), body)).await;
        assert_eq!(raw.status, 200, "{body}");
    }
    assert_eq!(*seen.lock().unwrap(), [11, 12, 13]);
}

#[actix_web::test]
async fn without_a_secret_configured_there_is_no_webhook() {
    let app = Mocks::new().app().await;
    problem(&app, update(Some(SECRET), START), 404, "not_found").await;
}
