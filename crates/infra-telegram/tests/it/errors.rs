//! How Telegram's failures map onto `NotifyError`.

use std::time::Duration;

use domain::ports::NotifyError;
use infra_telegram::TelegramNotifier;
use serde_json::json;
use wiremock::{MockServer, ResponseTemplate};

use crate::support::{
    answer, notifier, order_placed_error, short_timeout_config, telegram_error, unused_local_url,
};

fn permanent_reason(error: NotifyError) -> String {
    match error {
        NotifyError::Permanent { reason } => reason,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

fn transient(error: NotifyError) -> (String, Option<time::Duration>) {
    match error {
        NotifyError::Transient {
            reason,
            retry_after,
        } => (reason, retry_after),
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

fn rate_limited(error: NotifyError) -> (String, time::Duration) {
    match error {
        NotifyError::RateLimited {
            reason,
            retry_after,
        } => (reason, retry_after),
        other => panic!("expected flood control, got {other:?}"),
    }
}

async fn failure_for(response: ResponseTemplate) -> NotifyError {
    let server = MockServer::start().await;
    answer(&server, "sendMessage", response).await;
    order_placed_error(&notifier(&server)).await
}

#[tokio::test]
async fn too_many_requests_is_flood_control_with_telegrams_retry_after() {
    let response = ResponseTemplate::new(429).set_body_json(json!({
        "ok": false,
        "error_code": 429,
        "description": "Too Many Requests: retry after 5",
        "parameters": { "retry_after": 5 }
    }));

    let (reason, retry_after) = rate_limited(failure_for(response).await);

    assert_eq!(retry_after, time::Duration::seconds(5));
    assert!(reason.contains("Too Many Requests"), "{reason}");
}

#[tokio::test]
async fn too_many_requests_without_parameters_falls_back_to_the_header() {
    let response = ResponseTemplate::new(429).insert_header("retry-after", "7");

    let (_, retry_after) = rate_limited(failure_for(response).await);

    assert_eq!(retry_after, time::Duration::seconds(7));
}

#[tokio::test]
async fn too_many_requests_without_any_wait_is_a_transient_failure() {
    let (_, retry_after) = transient(failure_for(telegram_error(429, "Too Many Requests")).await);

    assert_eq!(retry_after, None);
}

/// Not flood control but a failing server asking for room: the relay honours the wait
/// and counts the attempt, so the event goes dead if the server never recovers.
#[tokio::test]
async fn a_server_error_with_retry_after_is_transient_with_the_wait() {
    let response = telegram_error(503, "Service Unavailable").insert_header("retry-after", "30");

    let (reason, retry_after) = transient(failure_for(response).await);

    assert_eq!(retry_after, Some(time::Duration::seconds(30)));
    assert!(reason.contains("503"), "{reason}");
}

#[tokio::test]
async fn a_server_error_is_transient() {
    let (reason, retry_after) =
        transient(failure_for(telegram_error(500, "Internal Server Error")).await);

    assert_eq!(retry_after, None);
    assert!(reason.contains("500"), "{reason}");
}

#[tokio::test]
async fn a_proxys_html_error_page_is_transient_and_not_echoed() {
    let response = ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>");

    let (reason, _) = transient(failure_for(response).await);

    assert!(reason.contains("502: Bad Gateway"), "{reason}");
    assert!(!reason.contains("<html>"));
}

#[tokio::test]
async fn a_timeout_is_transient() {
    let server = MockServer::start().await;
    // The fake server answers after 2 s; the notifier gives up after 200 ms.
    answer(
        &server,
        "sendMessage",
        telegram_error(200, "late").set_delay(Duration::from_secs(2)),
    )
    .await;
    let notifier = TelegramNotifier::new(short_timeout_config(&server.uri())).unwrap();

    let (reason, _) = transient(notifier.send_message("x").await.unwrap_err());

    assert!(reason.contains("timed out"), "{reason}");
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let notifier = TelegramNotifier::new(short_timeout_config(&unused_local_url())).unwrap();

    let (reason, _) = transient(order_placed_error(&notifier).await);

    assert!(reason.contains("sendMessage"), "{reason}");
}

#[tokio::test]
async fn an_unknown_chat_is_permanent_with_telegrams_description() {
    let error = failure_for(telegram_error(400, "Bad Request: chat not found")).await;

    let reason = permanent_reason(error);
    assert!(reason.contains("Bad Request: chat not found"), "{reason}");
}

#[tokio::test]
async fn a_blocked_bot_is_permanent() {
    let error = failure_for(telegram_error(
        403,
        "Forbidden: bot was blocked by the user",
    ))
    .await;

    let reason = permanent_reason(error);
    assert!(
        reason.contains("Forbidden: bot was blocked by the user"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_bad_token_is_permanent() {
    let reason = permanent_reason(failure_for(telegram_error(401, "Unauthorized")).await);
    assert!(reason.contains("401: Unauthorized"), "{reason}");
}

#[tokio::test]
async fn an_unknown_method_or_token_is_permanent() {
    permanent_reason(failure_for(telegram_error(404, "Not Found")).await);
}

#[tokio::test]
async fn a_group_upgraded_to_a_supergroup_names_the_new_chat_id() {
    let response = ResponseTemplate::new(400).set_body_json(json!({
        "ok": false,
        "error_code": 400,
        "description": "Bad Request: group chat was upgraded to a supergroup chat",
        "parameters": { "migrate_to_chat_id": -1_001_234_567_890_i64 }
    }));

    let reason = permanent_reason(failure_for(response).await);

    assert!(reason.contains("-1001234567890"), "{reason}");
}

#[tokio::test]
async fn a_success_status_with_a_malformed_body_is_permanent() {
    // Telegram may already have delivered the message; a retry could send it twice.
    let response = ResponseTemplate::new(200).set_body_string("not json");

    permanent_reason(failure_for(response).await);
}
