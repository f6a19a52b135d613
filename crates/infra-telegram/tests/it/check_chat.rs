//! The start-up check that the bot can reach the manager's chat.

use domain::ports::NotifyError;
use serde_json::json;
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{MANAGER_CHAT_ID, answer, method_path, notifier, telegram_error};

#[tokio::test]
async fn a_reachable_chat_passes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(method_path("getChat")))
        .and(body_json(json!({ "chat_id": MANAGER_CHAT_ID })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "result": { "id": MANAGER_CHAT_ID, "type": "private", "first_name": "Manager" }
        })))
        .expect(1)
        .mount(&server)
        .await;

    assert_eq!(notifier(&server).check_chat().await, Ok(()));
}

#[tokio::test]
async fn an_unknown_chat_fails_with_a_hint_about_start() {
    let server = MockServer::start().await;
    answer(
        &server,
        "getChat",
        telegram_error(400, "Bad Request: chat not found"),
    )
    .await;

    let error = notifier(&server).check_chat().await.unwrap_err();

    let NotifyError::Permanent { reason } = error else {
        panic!("expected a permanent failure, got {error:?}");
    };
    assert!(reason.contains("Bad Request: chat not found"), "{reason}");
    assert!(reason.contains("/start"), "{reason}");
}

#[tokio::test]
async fn a_bad_token_fails_permanently() {
    let server = MockServer::start().await;
    answer(&server, "getChat", telegram_error(401, "Unauthorized")).await;

    let error = notifier(&server).check_chat().await.unwrap_err();

    assert!(matches!(error, NotifyError::Permanent { .. }), "{error:?}");
}

#[tokio::test]
async fn an_unreachable_telegram_fails_transiently() {
    let server = MockServer::start().await;
    answer(
        &server,
        "getChat",
        telegram_error(503, "Service Unavailable"),
    )
    .await;

    let error = notifier(&server).check_chat().await.unwrap_err();

    assert!(matches!(error, NotifyError::Transient { .. }), "{error:?}");
}
