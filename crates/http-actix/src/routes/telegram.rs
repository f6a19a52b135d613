//! Telegram's side door: `POST /telegram/webhook`, where Telegram delivers the bot's
//! updates. Not under `/api/v1`, not for browsers.
//!
//! Only Telegram knows the secret (it was given to `setWebhook`), so a call without it is
//! refused before anything is read. An update is acknowledged with 200 as soon as it is
//! recorded: Telegram redelivers anything else, so a malformed update is acknowledged
//! too (and logged) rather than refused into a loop; only a failure to record it (the
//! database is down) answers 503, so that Telegram delivers it again later.

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use domain::auth::constant_time_eq;
use domain::bot::{Update, UpdateKind};
use secrecy::ExposeSecret;
use time::OffsetDateTime;

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
    let Some(update) = parse_update(&body) else {
        tracing::warn!(
            bytes = body.len(),
            "a Telegram update without an update_id: ignored"
        );
        return Ok(HttpResponse::Ok().finish());
    };
    let update_id = update.update_id;
    let handled = telegram
        .bot
        .handle(update, OffsetDateTime::now_utc())
        .await?;
    tracing::debug!(update_id, ?handled, "telegram update");
    Ok(HttpResponse::Ok().finish())
}

/// The update's id and what it asks for, read leniently: only `update_id` is required,
/// and anything unexpected elsewhere makes it an ignored update, never an error.
fn parse_update(body: &[u8]) -> Option<Update> {
    let update: serde_json::Value = serde_json::from_slice(body).ok()?;
    let update_id = update.get("update_id")?.as_i64()?;
    let command = update.get("message").and_then(|message| {
        let chat_id = message.get("chat")?.get("id")?.as_i64()?;
        let text = message.get("text")?.as_str()?;
        let from = message
            .get("from")
            .and_then(|from| from.get("id"))
            .and_then(serde_json::Value::as_i64);
        Some(UpdateKind::from_text(chat_id, from, text))
    });
    let button = update.get("callback_query").and_then(|query| {
        Some(UpdateKind::Button {
            callback_id: query.get("id")?.as_str()?.to_owned(),
            from: query.get("from")?.get("id")?.as_i64()?,
            // Telegram caps it at 64 bytes; anything longer is not a button of ours.
            data: query
                .get("data")?
                .as_str()
                .filter(|data| data.len() <= 64)?
                .to_owned(),
        })
    });
    let kind = command.or(button).unwrap_or(UpdateKind::Ignored);
    Some(Update { update_id, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_are_read_leniently() {
        let start = br#"{"update_id": 5, "message": {"chat": {"id": 42}, "text": "/start"}}"#;
        assert_eq!(
            parse_update(start),
            Some(Update {
                update_id: 5,
                kind: UpdateKind::Start { chat_id: 42 }
            })
        );
        let press = br#"{"update_id": 9, "callback_query": {"id": "cb", "from": {"id": 777}, "message": {}, "data": "s:5:P:C"}}"#;
        assert_eq!(
            parse_update(press).map(|u| u.kind),
            Some(UpdateKind::Button {
                callback_id: "cb".into(),
                from: 777,
                data: "s:5:P:C".into()
            })
        );
        let long = format!(
            r#"{{"update_id": 9, "callback_query": {{"id": "cb", "from": {{"id": 7}}, "data": "{}"}}}}"#,
            "x".repeat(65)
        );
        assert_eq!(
            parse_update(long.as_bytes()).map(|u| u.kind),
            Some(UpdateKind::Ignored)
        );
        for ignored in [
            &br#"{"update_id": 6, "message": {"chat": {"id": 42}, "photo": []}}"#[..],
            br#"{"update_id": 7, "callback_query": {"id": "x"}}"#,
            br#"{"update_id": 8, "message": {"chat": "nope", "text": "/start"}}"#,
        ] {
            assert_eq!(
                parse_update(ignored).map(|u| u.kind),
                Some(UpdateKind::Ignored)
            );
        }
        for broken in [&b"not json"[..], b"{}", br#"{"update_id": "5"}"#, b"[]"] {
            assert_eq!(parse_update(broken), None);
        }
    }
}
