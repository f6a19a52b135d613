//! The one place where errors become HTTP: `application/problem+json` (RFC 9457).
//!
//! Every problem carries a stable, machine-readable `code`. 5xx bodies say nothing about
//! internals; their cause is logged here, once.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use domain::auth::AuthError;
use domain::order::PlaceOrderError;
use domain::services::AuthenticateError;
use domain::{FieldError, ProductId, RepositoryError};
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every failure the API can answer with.
#[derive(Debug)]
pub enum ApiError {
    /// The body or a parameter is well-formed but breaks a rule; names each field.
    Validation(Vec<FieldError>),
    /// The body is not JSON at all.
    MalformedJson(String),
    PayloadTooLarge {
        limit: usize,
    },
    UnsupportedMediaType,
    Unauthorized(AuthError),
    NotFound,
    MethodNotAllowed,
    ProductNotFound(Vec<ProductId>),
    ProductUnavailable(Vec<ProductId>),
    OrderTotalTooLarge,
    /// The database is unreachable or too slow: retry later.
    Unavailable(RepositoryError),
    /// A bug or an unexpected failure. The cause is logged, never sent.
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn validation(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError::Validation(vec![FieldError::new(field, code, message)])
    }

    /// The stable machine-readable code of this problem.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation_failed",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Unauthorized(reason) => reason.code(),
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::ProductNotFound(_) => "product_not_found",
            ApiError::ProductUnavailable(_) => "product_unavailable",
            ApiError::OrderTotalTooLarge => "order_total_too_large",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "The request is invalid",
            ApiError::MalformedJson(_) => "The request body is not valid JSON",
            ApiError::PayloadTooLarge { .. } => "The request body is too large",
            ApiError::UnsupportedMediaType => "The request body must be application/json",
            ApiError::Unauthorized(_) => "Telegram authentication failed",
            ApiError::NotFound => "Not found",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::ProductNotFound(_) => "Some products do not exist",
            ApiError::ProductUnavailable(_) => "Some products are not available",
            ApiError::OrderTotalTooLarge => "The order total is too large",
            ApiError::Unavailable(_) => "The service is temporarily unavailable",
            ApiError::Internal(_) => "Internal server error",
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            ApiError::MalformedJson(reason) => Some(reason.clone()),
            ApiError::PayloadTooLarge { limit } => {
                Some(format!("the body must be at most {limit} bytes"))
            }
            ApiError::Unauthorized(reason) => Some(reason.to_string()),
            ApiError::ProductNotFound(ids) => {
                Some(format!("no products with ids {}", join_ids(ids)))
            }
            ApiError::ProductUnavailable(ids) => {
                Some(format!("products {} are not on sale", join_ids(ids)))
            }
            ApiError::Validation(errors) => Some(
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            ApiError::Unavailable(_) => Some("please retry in a moment".to_owned()),
            _ => None,
        }
    }
}

fn join_ids(ids: &[ProductId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.title(), self.code())
    }
}

/// The problem document.
#[derive(Debug, Serialize)]
pub struct Problem<'a> {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'a str,
    pub status: u16,
    pub code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ProblemField<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_ids: Option<Vec<i64>>,
}

#[derive(Debug, Serialize)]
pub struct ProblemField<'a> {
    pub field: &'a str,
    pub code: &'a str,
    pub message: &'a str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation(_)
            | ApiError::ProductNotFound(_)
            | ApiError::ProductUnavailable(_)
            | ApiError::OrderTotalTooLarge => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        // The one place a server-side cause is logged; the body stays opaque.
        match self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %error_chain(cause.as_ref()), "request failed")
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = %error_chain(cause), "database unavailable")
            }
            _ => {}
        }
        let errors = match self {
            ApiError::Validation(errors) => Some(
                errors
                    .iter()
                    .map(|e| ProblemField {
                        field: &e.field,
                        code: e.code,
                        message: &e.message,
                    })
                    .collect(),
            ),
            _ => None,
        };
        let product_ids = match self {
            ApiError::ProductNotFound(ids) | ApiError::ProductUnavailable(ids) => {
                Some(ids.iter().map(|id| id.0).collect())
            }
            _ => None,
        };
        let problem = Problem {
            kind: format!("urn:botshop:problem:{}", self.code()),
            title: self.title(),
            status: status.as_u16(),
            code: self.code(),
            detail: self.detail(),
            errors,
            product_ids,
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if let ApiError::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("tma")));
        }
        if let ApiError::Unavailable(_) = self {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        response.body(serde_json::to_string(&problem).unwrap_or_default())
    }
}

/// "outer: inner: root", for one log line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

impl From<RepositoryError> for ApiError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::Unavailable(_) => ApiError::Unavailable(error),
            RepositoryError::Unknown(_) => ApiError::Internal(Box::new(error)),
        }
    }
}

impl From<PlaceOrderError> for ApiError {
    fn from(error: PlaceOrderError) -> Self {
        match error {
            PlaceOrderError::ProductNotFound(ids) => ApiError::ProductNotFound(ids),
            PlaceOrderError::ProductUnavailable(ids) => ApiError::ProductUnavailable(ids),
            PlaceOrderError::TotalTooLarge => ApiError::OrderTotalTooLarge,
            PlaceOrderError::Repository(e) => e.into(),
        }
    }
}

impl From<AuthenticateError> for ApiError {
    fn from(error: AuthenticateError) -> Self {
        match error {
            AuthenticateError::Rejected(reason) => ApiError::Unauthorized(reason),
            AuthenticateError::Repository(e) => e.into(),
        }
    }
}
