//! Extractors that turn bad input into named 4xx problems instead of framework defaults.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use domain::User;
use domain::admin::{Admin, AdminAuthError};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::{ApiState, Limits};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body. Syntax errors are 400; a body of the wrong shape is 422 naming the field
/// path (`items[0].quantity`), including unknown fields, which DTOs deny.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.len() > 5 && mime[mime.len() - 5..].eq_ignore_ascii_case("+json"))
            })
            .unwrap_or(false);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await.map_err(|e| match e.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => ApiError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                },
                _ => ApiError::MalformedJson("the request body could not be read".into()),
            })?;
            if !is_json {
                return Err(ApiError::UnsupportedMediaType {
                    expected: "application/json",
                });
            }
            parse_json(&bytes).map(JsonBody)
        })
    }
}

/// Deserializes JSON, telling syntax errors (400) from shape errors (422 with the field).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return ApiError::MalformedJson(strip_position(&inner.to_string()));
        }
        let message = strip_position(&inner.to_string());
        // serde_path_to_error's path already ends at an unknown field, but stops at the
        // container of a missing one; serde names the missing field in its message.
        let field = match missing_field(&message) {
            Some(name) if path == "." => name.to_owned(),
            Some(name) => format!("{path}.{name}"),
            None if path == "." => "body".to_owned(),
            None => path,
        };
        let code = if message.starts_with("unknown field") {
            "unknown_field"
        } else if message.starts_with("missing field") {
            "required"
        } else {
            "invalid_type"
        };
        ApiError::validation(field, code, message)
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::MalformedJson(strip_position(&e.to_string())))?;
    Ok(value)
}

/// "missing field `phone`" → `phone`.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// The customer making the request, authenticated by Telegram initData and onboarded on
/// first sight. Only this extractor decides who the caller is.
#[derive(Debug)]
pub struct Customer(pub User);

impl FromRequest for Customer {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<ApiState>>().cloned();
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned));
        Box::pin(async move {
            let Some(state) = state else {
                return Err(ApiError::Internal("ApiState is not registered".into()));
            };
            let authorization = match authorization {
                None => None,
                Some(Ok(value)) => Some(value),
                // A header that is not visible ASCII cannot be initData (which is URL-encoded).
                Some(Err(_)) => {
                    return Err(ApiError::Unauthorized(
                        domain::auth::AuthError::InvalidScheme,
                    ));
                }
            };
            let user = state
                .authenticator
                .authenticate(authorization.as_deref(), OffsetDateTime::now_utc())
                .await?;
            Ok(Customer(user))
        })
    }
}

/// The admin making a request to `/api/v1/admin/…`: `Bearer <ADMIN_API_TOKEN>`, or the
/// initData of a Telegram user in `ADMIN_TELEGRAM_IDS` (any other valid customer is a
/// 403). Each admin has a rate limit of their own.
#[derive(Debug)]
pub struct AdminCaller(pub Admin);

impl FromRequest for AdminCaller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(admin_of(req))
    }
}

fn admin_of(req: &HttpRequest) -> Result<AdminCaller, ApiError> {
    let (Some(state), Some(limits)) = (
        req.app_data::<web::Data<ApiState>>(),
        req.app_data::<web::Data<Limits>>(),
    ) else {
        return Err(ApiError::Internal("ApiState is not registered".into()));
    };
    let authorization = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::Unauthorized(domain::auth::AuthError::InvalidScheme))?,
        ),
    };
    let admin = state
        .admin_auth
        .authenticate(authorization, OffsetDateTime::now_utc())
        .map_err(|error| match error {
            AdminAuthError::Unauthorized(reason) => ApiError::Unauthorized(reason),
            AdminAuthError::Forbidden => ApiError::Forbidden,
        })?;
    limits
        .admin
        .check(admin.rate_key(), crate::limiter_now())
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    Ok(AdminCaller(admin))
}

/// Parses an optional integer query parameter, naming it when it is not an integer.
pub fn int_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    match value {
        None => Ok(None),
        Some(raw) => raw.parse::<i64>().map(Some).map_err(|_| {
            ApiError::validation(
                name,
                "invalid_integer",
                format!("{name} must be an integer"),
            )
        }),
    }
}
