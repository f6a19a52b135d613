//! Long polling: `getUpdates` as asked and as read, and its refusals as the poller needs
//! them.

use std::time::Duration;

use domain::bot::{Update, UpdateKind};
use domain::ports::{PollError, UpdateSource};
use infra_telegram::{ALLOWED_UPDATES, TelegramNotifier};
use serde_json::{Value, json};
use wiremock::{MockServer, ResponseTemplate};

use crate::support::{answer, notifier, short_timeout_config, telegram_error};

const WAIT: Duration = Duration::from_secs(25);

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| {
            assert!(request.url.path().ends_with("/getUpdates"));
            serde_json::from_slice(&request.body).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn updates_are_asked_from_the_offset_for_our_types_and_read_leniently() {
    let server = MockServer::start().await;
    answer(
        &server,
        "getUpdates",
        ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": [
            {"update_id": 5, "message": {"chat": {"id": 42}, "text": "/start"}},
            {"no_update_id": true},
            {"update_id": 6, "edited_message": {"chat": {"id": 42}, "text": "hi"}}
        ]})),
    )
    .await;
    let bot = notifier(&server);
    let updates = bot.next_updates(None, WAIT).await.unwrap();
    assert_eq!(
        updates,
        [
            Update {
                update_id: 5,
                kind: UpdateKind::Start { chat_id: 42 }
            },
            Update {
                update_id: 6,
                kind: UpdateKind::Ignored
            },
        ]
    );
    bot.next_updates(Some(7), WAIT).await.unwrap();
    assert_eq!(
        bodies(&server).await,
        [
            json!({"timeout": 25, "allowed_updates": ALLOWED_UPDATES}),
            json!({"offset": 7, "timeout": 25, "allowed_updates": ALLOWED_UPDATES}),
        ]
    );
}

#[tokio::test]
async fn a_long_poll_outlasts_the_timeout_of_other_calls() {
    let server = MockServer::start().await;
    answer(
        &server,
        "getUpdates",
        ResponseTemplate::new(200)
            .set_body_json(json!({"ok": true, "result": []}))
            .set_delay(Duration::from_millis(800)),
    )
    .await;
    // Other calls give up after 200 ms; a long poll of 2 s is given its 2 s and more.
    let bot = TelegramNotifier::new(short_timeout_config(&server.uri())).unwrap();
    let updates = bot
        .next_updates(None, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(updates.is_empty());
}

#[tokio::test]
async fn refusals_say_whether_waiting_can_help() {
    let cases = [
        (
            telegram_error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            ),
            "conflict",
        ),
        (telegram_error(401, "Unauthorized"), "refused"),
        (
            ResponseTemplate::new(429).set_body_json(json!({
                "ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7",
                "parameters": {"retry_after": 7}
            })),
            "429",
        ),
        (telegram_error(502, "Bad Gateway"), "unavailable"),
    ];
    for (response, case) in cases {
        let server = MockServer::start().await;
        answer(&server, "getUpdates", response).await;
        let error = notifier(&server)
            .next_updates(Some(3), WAIT)
            .await
            .unwrap_err();
        match (case, &error) {
            ("conflict", PollError::Conflict(reason)) => {
                assert!(reason.contains("webhook is active"), "{reason}");
            }
            ("refused", PollError::Refused(_)) => {}
            (
                "429",
                PollError::Unavailable {
                    retry_after: Some(wait),
                    ..
                },
            ) => assert_eq!(*wait, Duration::from_secs(7)),
            (
                "unavailable",
                PollError::Unavailable {
                    retry_after: None, ..
                },
            ) => {}
            _ => panic!("{case}: {error:?}"),
        }
    }
}
