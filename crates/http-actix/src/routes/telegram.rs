//! Telegram's side door: `POST /telegram/webhook`, where Telegram delivers the bot's
//! updates. Not under `/api/v1`, not for browsers.
//!
//! Only Telegram knows the secret (it was given to `setWebhook`), so a call without it is
//! refused before anything is read. An update is acknowledged with 200 as soon as it is
//! recorded and acted on, before the bot's reply is sent. Telegram redelivers anything
//! else, so a malformed update is acknowledged too (and logged) rather than refused into
//! a loop; only a failure to record it (the database is down) answers 503, so that
//! Telegram delivers it again later.

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use domain::auth::constant_time_eq;
use domain::bot::Update;
use secrecy::ExposeSecret;
use time::OffsetDateTime;
use tracing::Instrument as _;

use crate::ApiState;
use crate::error::ApiError;

/// The header Telegram sends the webhook's secret in.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// Receives one update from Telegram.
///
/// Requires the webhook's secret in `X-Telegram-Bot-Api-Secret-Token` (compared in
/// constant time); each `update_id` is handled once however often it is delivered.
#[utoipa::path(
    post,
    path = "/telegram/webhook",
    tag = "telegram",
    params(
        ("X-Telegram-Bot-Api-Secret-Token" = String, Header, description = "The secret given to setWebhook (`TELEGRAM_WEBHOOK_SECRET`)"),
    ),
    request_body(content = Object, content_type = "application/json", description = "A Telegram Update"),
    responses(
        (status = 200, description = "Received (handled now, or seen before, or nothing to do)"),
        (status = 401, response = crate::openapi::WebhookUnauthorized),
        (status = 503, response = crate::openapi::Unavailable),
    )
)]
pub async fn webhook(
    req: HttpRequest,
    state: web::Data<ApiState>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let Some(telegram) = &state.telegram else {
        return Err(ApiError::NotFound("Not found: no such path"));
    };
    let sent = req
        .headers()
        .get(SECRET_HEADER)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    if !constant_time_eq(sent, telegram.secret.expose_secret().as_bytes()) {
        return Err(ApiError::WebhookUnauthorized);
    }
    let Some(update) = Update::parse(&body) else {
        tracing::warn!(
            bytes = body.len(),
            "a Telegram update without an update_id: ignored"
        );
        return Ok(HttpResponse::Ok().finish());
    };
    let received = telegram
        .bot
        .receive(update, OffsetDateTime::now_utc())
        .await?;
    // Recorded and acted on: Telegram has its answer now, and the bot's reply (a welcome,
    // the open orders, a press's answer) follows, so that a slow or flooded chat never
    // holds Telegram's delivery of the next updates. A reply cut short by a stop is not
    // sent again (nor would it be after a crash mid-send); what matters is committed.
    let update_id = received.update_id;
    if received.reply.is_none() {
        tracing::debug!(update_id, handled = ?received.handled, "telegram update");
        return Ok(HttpResponse::Ok().finish());
    }
    let bot = telegram.bot.clone();
    actix_web::rt::spawn(
        async move {
            let handled = bot.reply(received).await;
            tracing::debug!(update_id, ?handled, "telegram update");
        }
        // Its log lines keep the request's id.
        .instrument(tracing::Span::current()),
    );
    Ok(HttpResponse::Ok().finish())
}
