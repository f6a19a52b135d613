//! The bot token and the customer's personal data never leak into errors or logs.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::ports::{Notification, Notifier, NotifyError};
use infra_telegram::{BotToken, TelegramConfig, TelegramConfigError, TelegramNotifier};
use wiremock::{MockServer, ResponseTemplate};

use crate::support::{
    ADDRESS, PHONE, TOKEN, answer, config, notifier, order_placed_error, seed_order, sent,
    short_timeout_config, telegram_error, unused_local_url,
};

fn assert_clean(error: &NotifyError) {
    for printed in [error.to_string(), format!("{error:?}")] {
        assert!(!printed.contains(TOKEN), "token leaked: {printed}");
        assert!(!printed.contains("SECRET-TOKEN"), "token leaked: {printed}");
        assert!(!printed.contains(PHONE), "phone leaked: {printed}");
        assert!(!printed.contains(ADDRESS), "address leaked: {printed}");
    }
}

async fn error_for(response: ResponseTemplate) -> NotifyError {
    let server = MockServer::start().await;
    answer(&server, "sendMessage", response).await;
    order_placed_error(&notifier(&server)).await
}

#[tokio::test]
async fn telegram_errors_never_show_the_token_or_personal_data() {
    for response in [
        telegram_error(400, "Bad Request: chat not found"),
        telegram_error(401, "Unauthorized"),
        telegram_error(403, "Forbidden: bot was blocked by the user"),
        telegram_error(429, "Too Many Requests: retry after 5"),
        telegram_error(500, "Internal Server Error"),
        ResponseTemplate::new(200).set_body_string("garbage"),
        ResponseTemplate::new(302).insert_header("location", "http://example.com/"),
    ] {
        assert_clean(&error_for(response).await);
    }
}

#[tokio::test]
async fn a_description_echoing_the_url_is_redacted() {
    let description = format!("Not Found: /bot{TOKEN}/sendMessage");

    let error = error_for(telegram_error(404, &description)).await;

    assert_clean(&error);
    assert!(
        error.to_string().contains("/bot<redacted>/sendMessage"),
        "{error}"
    );
}

#[tokio::test]
async fn a_refused_connection_never_shows_the_token() {
    let notifier = TelegramNotifier::new(short_timeout_config(&unused_local_url())).unwrap();

    assert_clean(&order_placed_error(&notifier).await);
    assert_clean(&notifier.check_chat().await.unwrap_err());
}

#[tokio::test]
async fn a_timeout_never_shows_the_token() {
    let server = MockServer::start().await;
    answer(
        &server,
        "sendMessage",
        sent(1).set_delay(Duration::from_secs(2)),
    )
    .await;
    let notifier = TelegramNotifier::new(short_timeout_config(&server.uri())).unwrap();

    assert_clean(&order_placed_error(&notifier).await);
}

#[test]
fn the_notifier_and_its_config_never_print_the_token() {
    let config = config("http://127.0.0.1:9");
    assert!(!format!("{config:?}").contains("SECRET"));
    let notifier = TelegramNotifier::new(config).unwrap();
    assert!(!format!("{notifier:?}").contains("SECRET"));
}

#[test]
fn a_rejected_config_never_shows_the_token() {
    // A token is checked once, when it becomes a `BotToken`: a config cannot hold a bad one.
    let error = BotToken::new("123456:SECRET TOKEN").unwrap_err();
    assert_eq!(error, TelegramConfigError::InvalidToken);
    assert!(!format!("{error} {error:?}").contains("SECRET"));

    assert_eq!(
        BotToken::new("").unwrap_err(),
        TelegramConfigError::EmptyToken
    );
    let zero_timeout = TelegramConfig {
        timeout: Duration::ZERO,
        ..TelegramConfig::new(BotToken::new(TOKEN).unwrap(), 1)
    };
    assert_eq!(
        TelegramNotifier::new(zero_timeout).unwrap_err(),
        TelegramConfigError::ZeroTimeout
    );
}

/// Collects everything a subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_name_the_order_and_message_but_nothing_secret() {
    let server = MockServer::start().await;
    answer(&server, "sendMessage", sent(4242)).await;
    let notifier = notifier(&server);
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();

    {
        // A current-thread runtime keeps the whole call on this thread, under this subscriber.
        let _guard = tracing::subscriber::set_default(subscriber);
        notifier
            .deliver(&Notification::NewOrder(seed_order()))
            .await
            .unwrap();
        let _ = notifier.check_chat().await;
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("order_id=123"), "{logs}");
    assert!(logs.contains("message_id=4242"), "{logs}");
    for secret in ["SECRET-TOKEN", PHONE, ADDRESS, "Домофон"] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs: {logs}"
        );
    }
}
