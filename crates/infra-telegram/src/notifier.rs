//! The HTTP side: calling the Bot API and mapping its answers onto [`NotifyError`].

use std::fmt;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use domain::ports::{DeliveryReceipt, Notification, Notifier, NotifyError};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use time::UtcOffset;

use crate::config::{TelegramConfig, TelegramConfigError, normalize_api_url};
use crate::render::{
    render_customer_notice, render_manager_notice, render_manager_update, render_order_message,
    render_status_message,
};

/// What replaces the bot token in every string this crate builds.
const REDACTED: &str = "<redacted>";

/// Telegram's descriptions are short; a longer one is not Telegram talking (a proxy's HTML
/// page, say) and would only flood the logs.
const MAX_DESCRIPTION_CHARS: usize = 200;

/// Sends notifications to the manager's chat and to customers' private chats through the
/// Telegram Bot API.
///
/// Cheap to share: it holds one `reqwest::Client`, whose connection pool all calls reuse.
/// Wrap it in an `Arc` and hand it to the services as `Arc<dyn Notifier>`.
pub struct TelegramNotifier {
    client: reqwest::Client,
    api_url: String,
    /// `{api_url}/bot{token}/`: a method name completes the URL.
    method_base_url: String,
    /// Kept only to scrub it from error strings.
    bot_token: String,
    manager_chat_id: i64,
    utc_offset: UtcOffset,
    timeout: StdDuration,
    /// The Mini App the welcome's button opens, when there is one.
    pub(crate) mini_app_url: Option<String>,
    /// The admin panel `/admin` answers with (`PUBLIC_BASE_URL/admin/`).
    pub(crate) admin_panel_url: Option<String>,
    /// The payment provider's token from BotFather (`PAYMENT_PROVIDER_TOKEN`).
    payment_provider_token: Option<secrecy::SecretString>,
}

impl fmt::Debug for TelegramNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramNotifier")
            .field("api_url", &self.api_url)
            .field("manager_chat_id", &self.manager_chat_id)
            .field("utc_offset", &self.utc_offset)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TelegramNotifier {
    /// Checks the configuration and builds the HTTP client.
    ///
    /// # Errors
    /// [`TelegramConfigError`] for an empty or malformed token, a malformed API URL, a zero
    /// timeout, or a client that cannot be built (no TLS backend).
    pub fn new(config: TelegramConfig) -> Result<Self, TelegramConfigError> {
        let api_url = normalize_api_url(&config.api_url)?;
        if config.timeout.is_zero() {
            return Err(TelegramConfigError::ZeroTimeout);
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            // The Bot API never redirects; following one would hand the token-bearing
            // request to wherever a misconfigured proxy points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TelegramConfigError::HttpClient(e.without_url().to_string()))?;
        Ok(Self {
            client,
            method_base_url: format!("{api_url}/bot{}/", config.bot_token.expose()),
            api_url,
            bot_token: config.bot_token.expose().to_owned(),
            manager_chat_id: config.manager_chat_id,
            utc_offset: config.utc_offset,
            timeout: config.timeout,
            mini_app_url: config.mini_app_url,
            admin_panel_url: config.admin_panel_url,
            payment_provider_token: config.payment_provider_token,
        })
    }

    /// The payment provider's token, when one is configured.
    pub(crate) fn payment_provider_token(&self) -> Option<&secrecy::SecretString> {
        self.payment_provider_token.as_ref()
    }

    /// The offset the manager's messages show times in.
    pub(crate) fn utc_offset(&self) -> UtcOffset {
        self.utc_offset
    }

    /// Sends `text` to the manager's chat and returns Telegram's `message_id`.
    ///
    /// `text` is Telegram HTML: the caller escapes what must arrive literally and keeps it
    /// within [`crate::MESSAGE_LIMIT`] ([`crate::render_order_message`] does both). Link
    /// previews are disabled, since an address or comment that looks like a URL must not
    /// turn into a card.
    ///
    /// # Errors
    /// [`NotifyError::RateLimited`] for a 429 with Telegram's `retry_after` (flood control:
    /// no attempt is counted); [`NotifyError::Transient`] for network failures, timeouts,
    /// 5xx (with `Retry-After` when the server sent one; the attempt counts) and a 429
    /// without a wait; [`NotifyError::Permanent`] for 4xx such as a bad token,
    /// an unknown chat or a blocked bot. Reasons never contain the token or the text.
    pub async fn send_message(&self, text: &str) -> Result<i64, NotifyError> {
        self.send_message_to(self.manager_chat_id, text).await
    }

    /// As [`TelegramNotifier::send_message`], to any chat (a customer's private chat's id
    /// is their Telegram id).
    ///
    /// # Errors
    /// As [`TelegramNotifier::send_message`]: a 403 "bot was blocked by the user" or "bot
    /// can't initiate conversation with a user" and a 400 "chat not found" are
    /// [`NotifyError::Permanent`].
    pub async fn send_message_to(&self, chat_id: i64, text: &str) -> Result<i64, NotifyError> {
        self.send_message_with(chat_id, text, None).await
    }

    /// As [`TelegramNotifier::send_message_to`], with buttons under the message.
    ///
    /// # Errors
    /// As [`TelegramNotifier::send_message`].
    pub async fn send_message_with(
        &self,
        chat_id: i64,
        text: &str,
        reply_markup: Option<InlineKeyboard>,
    ) -> Result<i64, NotifyError> {
        let request = SendMessage {
            chat_id,
            text,
            parse_mode: "HTML",
            link_preview_options: LinkPreviewOptions { is_disabled: true },
            reply_markup,
        };
        let message: SentMessage = self.call("sendMessage", &request).await?;
        Ok(message.message_id)
    }

    /// Replaces the text of message `message_id` in `chat_id` (`editMessageText`) and
    /// returns the message id. An edit Telegram refuses because the message already shows
    /// this text ("message is not modified") has nothing left to do, so it succeeds.
    ///
    /// # Errors
    /// As [`TelegramNotifier::send_message`].
    pub async fn edit_message_text(
        &self,
        chat_id: i64,
        message_id: i64,
        text: &str,
    ) -> Result<i64, NotifyError> {
        self.edit_message_with(chat_id, message_id, text, None)
            .await
    }

    /// As [`TelegramNotifier::edit_message_text`], replacing the buttons too (an empty
    /// keyboard removes them).
    ///
    /// # Errors
    /// As [`TelegramNotifier::send_message`].
    pub async fn edit_message_with(
        &self,
        chat_id: i64,
        message_id: i64,
        text: &str,
        reply_markup: Option<InlineKeyboard>,
    ) -> Result<i64, NotifyError> {
        let request = EditMessageText {
            chat_id,
            message_id,
            text,
            parse_mode: "HTML",
            link_preview_options: LinkPreviewOptions { is_disabled: true },
            reply_markup,
        };
        match self.call::<IgnoredAny>("editMessageText", &request).await {
            Ok(_) => Ok(message_id),
            Err(NotifyError::Permanent { reason })
                if reason.contains("message is not modified") =>
            {
                Ok(message_id)
            }
            Err(error) => Err(error),
        }
    }

    /// Checks that the bot can see the manager's chat, so the server can warn at start-up
    /// instead of at the first order.
    ///
    /// It calls `getChat`, which fails with "chat not found" when the manager never sent
    /// /start to the bot (a bot may not open a private chat itself) or the chat id is
    /// wrong, and with 401 when the token is. It cannot detect a bot blocked after /start:
    /// Telegram reports that only when a message is sent.
    ///
    /// # Errors
    /// As [`TelegramNotifier::send_message`], with a hint appended for "chat not found".
    pub async fn check_chat(&self) -> Result<(), NotifyError> {
        let request = GetChat {
            chat_id: self.manager_chat_id,
        };
        match self.call::<IgnoredAny>("getChat", &request).await {
            Ok(_) => Ok(()),
            Err(NotifyError::Permanent { reason }) if reason.contains("chat not found") => {
                Err(NotifyError::Permanent {
                    reason: format!(
                        "{reason} (is the manager chat id right, and has the manager sent /start to the bot?)"
                    ),
                })
            }
            Err(error) => Err(error),
        }
    }

    /// Calls one Bot API method and returns its `result`.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        request: &impl Serialize,
    ) -> Result<T, NotifyError> {
        self.call_waiting(method, request, None)
            .await
            .map_err(|failed| failed.error)
    }

    /// [`TelegramNotifier::call`] allowed `timeout` instead of the configured one (a long
    /// poll waits longer), with the HTTP status of a refusal.
    pub(crate) async fn call_waiting<T: DeserializeOwned>(
        &self,
        method: &str,
        request: &impl Serialize,
        timeout: Option<StdDuration>,
    ) -> Result<T, CallFailed> {
        let unanswered = |error| CallFailed {
            status: None,
            error,
        };
        let url = format!("{}{method}", self.method_base_url);
        let mut call = self.client.post(url).json(request);
        if let Some(timeout) = timeout {
            call = call.timeout(timeout);
        }
        let response = call
            .send()
            .await
            .map_err(|e| unanswered(self.transport_error(method, e)))?;
        let status = response.status();
        let retry_after_header = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        let body = response
            .bytes()
            .await
            .map_err(|e| unanswered(self.transport_error(method, e)))?;

        if status.is_success() {
            return match serde_json::from_slice::<Success<T>>(&body) {
                Ok(Success {
                    ok: true,
                    result: Some(result),
                }) => Ok(result),
                // Telegram took the request, so retrying could send the message twice, and
                // a malformed answer will not fix itself.
                _ => Err(CallFailed {
                    status: Some(status),
                    error: NotifyError::Permanent {
                        reason: format!(
                            "telegram {method} returned {status} with an unexpected body"
                        ),
                    },
                }),
            };
        }
        let failure = serde_json::from_slice::<Failure>(&body).unwrap_or_default();
        Err(CallFailed {
            status: Some(status),
            error: self.api_error(method, status, failure, retry_after_header),
        })
    }

    /// Maps an error answer. The status code decides, as Telegram mirrors `error_code` in it.
    fn api_error(
        &self,
        method: &str,
        status: StatusCode,
        failure: Failure,
        retry_after_header: Option<u64>,
    ) -> NotifyError {
        let description = failure
            .description
            .map(|description| self.clean_description(&description))
            .unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("no description")
                    .to_owned()
            });
        let parameters = failure.parameters.unwrap_or_default();
        let mut reason = format!(
            "telegram {method} failed with {}: {description}",
            status.as_u16()
        );
        if let Some(chat_id) = parameters.migrate_to_chat_id {
            // A group became a supergroup; the operator must configure the new id.
            reason.push_str(&format!(" (the chat moved to id {chat_id})"));
        }
        let retry_after = parameters
            .retry_after
            .or(retry_after_header)
            .map(|seconds| time::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX)));

        // Flood control limits the chat, not this message: waiting costs it no attempt.
        // A 5xx with Retry-After is a failing server asking for room; it does count, or
        // an event it keeps failing would be retried for ever.
        if status == StatusCode::TOO_MANY_REQUESTS
            && let Some(retry_after) = retry_after
        {
            return NotifyError::RateLimited {
                reason,
                retry_after,
            };
        }
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            return NotifyError::Transient {
                reason,
                retry_after,
            };
        }
        // 400 (chat not found), 401 (bad token), 403 (the user blocked the bot, or never
        // started it so the bot cannot initiate the conversation), 404 (unknown method or
        // token) and anything else unexpected, such as a redirect we refused to follow:
        // sending the same request again cannot succeed. These refuse one chat, not the
        // bot's traffic, so the relay holds nothing for them.
        NotifyError::Permanent { reason }
    }

    /// Maps a failure to talk to Telegram at all.
    fn transport_error(&self, method: &str, error: reqwest::Error) -> NotifyError {
        // `without_url` drops the token-bearing URL that reqwest would print.
        let error = error.without_url();
        if error.is_timeout() {
            return NotifyError::Transient {
                reason: format!(
                    "telegram {method} timed out after {} ms",
                    self.timeout.as_millis()
                ),
                retry_after: None,
            };
        }
        let reason = self.redact(&format!(
            "telegram {method} failed: {}",
            error_chain(&error)
        ));
        if error.is_builder() {
            // The request itself could not be formed; it never will be.
            return NotifyError::Permanent { reason };
        }
        NotifyError::Transient {
            reason,
            retry_after: None,
        }
    }

    /// Makes Telegram's description safe to log: no token, no control characters, bounded.
    fn clean_description(&self, description: &str) -> String {
        let single_line: String = description
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_DESCRIPTION_CHARS)
            .collect();
        self.redact(&single_line)
    }

    fn redact(&self, text: &str) -> String {
        // `BotToken::new` guarantees the token is non-empty and appears unencoded in URLs.
        text.replace(&self.bot_token, REDACTED)
    }
}

#[async_trait]
impl Notifier for TelegramNotifier {
    async fn deliver(&self, notification: &Notification) -> Result<DeliveryReceipt, NotifyError> {
        let message_id = match notification {
            Notification::NewOrder(placed) => {
                let text = render_order_message(placed, self.utc_offset);
                let buttons = manager_keyboard(placed.order.id, placed.order.status);
                self.send_message_with(self.manager_chat_id, &text, Some(buttons))
                    .await?
            }
            Notification::StatusChanged(change) => {
                let text = render_status_message(change);
                self.send_message_to(change.customer.get(), &text).await?
            }
            Notification::ManagerMessageEdit { message_id, order } => {
                let text = render_manager_update(order, self.utc_offset);
                let buttons = manager_keyboard(order.order.id, order.order.status);
                self.edit_message_with(self.manager_chat_id, *message_id, &text, Some(buttons))
                    .await?
            }
            Notification::ManagerNotice { notice, order } => {
                let text = render_manager_notice(*notice, order);
                self.send_message_with(self.manager_chat_id, &text, None)
                    .await?
            }
            Notification::CustomerNotice {
                notice,
                order,
                language_code,
            } => {
                let text = render_customer_notice(*notice, order, language_code.as_deref());
                self.send_message_to(order.customer.get(), &text).await?
            }
            Notification::StarsRefund {
                user_id,
                telegram_payment_charge_id,
                ..
            } => {
                self.refund_star_payment(user_id.get(), telegram_payment_charge_id)
                    .await?;
                tracing::debug!(
                    order_id = notification.order_id().0,
                    "refunded a Stars payment"
                );
                return Ok(DeliveryReceipt { message_id: None });
            }
        };
        // Failures are not logged here: the caller logs the error it gets, once.
        tracing::debug!(
            order_id = notification.order_id().0,
            message_id,
            "delivered a notification"
        );
        Ok(DeliveryReceipt {
            message_id: Some(message_id),
        })
    }
}

/// The error with its causes ("error sending request: client error (Connect): tcp connect
/// error: Connection refused"), since reqwest's own `Display` hides the useful part.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Serialize)]
struct SendMessage<'a> {
    chat_id: i64,
    text: &'a str,
    parse_mode: &'static str,
    link_preview_options: LinkPreviewOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_markup: Option<InlineKeyboard>,
}

/// The manager's buttons under an order's message: the statuses that may follow
/// `status`, two to a row; none (an empty keyboard) for a final status.
pub fn manager_keyboard(order: domain::OrderId, status: domain::OrderStatus) -> InlineKeyboard {
    let buttons: Vec<CallbackButton> = domain::bot::StatusButton::for_order(order, status)
        .into_iter()
        .map(|button| CallbackButton {
            text: crate::render::button_label(button.to),
            callback_data: button.data(),
        })
        .collect();
    InlineKeyboard {
        inline_keyboard: buttons.chunks(2).map(<[CallbackButton]>::to_vec).collect(),
    }
}

/// An inline keyboard of callback buttons (empty: no buttons, which removes them on an
/// edit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InlineKeyboard {
    pub inline_keyboard: Vec<Vec<CallbackButton>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackButton {
    pub text: &'static str,
    pub callback_data: String,
}

#[derive(Serialize)]
struct EditMessageText<'a> {
    chat_id: i64,
    message_id: i64,
    text: &'a str,
    parse_mode: &'static str,
    link_preview_options: LinkPreviewOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_markup: Option<InlineKeyboard>,
}

#[derive(Serialize)]
struct LinkPreviewOptions {
    is_disabled: bool,
}

#[derive(Serialize)]
struct GetChat {
    chat_id: i64,
}

/// `{"ok": true, "result": ...}`
#[derive(Deserialize)]
struct Success<T> {
    ok: bool,
    result: Option<T>,
}

/// The part of a `Message` we keep.
#[derive(Deserialize)]
pub(crate) struct SentMessage {
    pub(crate) message_id: i64,
}

/// `{"ok": false, "error_code": 429, "description": "...", "parameters": {...}}`; every
/// field optional, since a proxy in between may answer with anything.
#[derive(Deserialize, Default)]
struct Failure {
    description: Option<String>,
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize, Default)]
struct ResponseParameters {
    retry_after: Option<u64>,
    migrate_to_chat_id: Option<i64>,
}

/// A failed call: Telegram's HTTP status when it answered, and the failure.
pub(crate) struct CallFailed {
    pub(crate) status: Option<StatusCode>,
    pub(crate) error: NotifyError,
}
