//! The one place where errors become HTTP: `application/problem+json` (RFC 9457).
//!
//! Every problem carries a stable, machine-readable `code`. 5xx bodies say nothing about
//! internals; their cause is logged here, once.

use std::fmt;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use domain::auth::AuthError;
use domain::order::{PlaceOrderError, StockShortage};
use domain::services::authenticate::AuthenticateError;
use domain::{FieldError, ProductId, RepositoryError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::rate_limit::retry_after_secs;

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
    /// The body is not sent as the media type the operation reads (named).
    UnsupportedMediaType {
        expected: &'static str,
    },
    /// The uploaded file is not a JPEG, PNG or WebP picture by its content.
    UnsupportedImage,
    Unauthorized(AuthError),
    /// No such resource; says which kind, e.g. "Product not found".
    NotFound(&'static str),
    MethodNotAllowed,
    ProductNotFound(Vec<ProductId>),
    ProductUnavailable(Vec<ProductId>),
    OrderTotalTooLarge,
    /// Not enough stock; lists each product with what is available.
    InsufficientStock(Vec<StockShortage>),
    /// The `Idempotency-Key`'s first request is still running.
    IdempotencyKeyInUse,
    /// The `Idempotency-Key` was used for a different request.
    IdempotencyKeyReused,
    /// A Telegram webhook call without the configured secret.
    WebhookUnauthorized,
    /// Payments are in Telegram Stars and these products have no Stars price.
    NoStarsPrice(Vec<ProductId>),
    /// The total cannot be expressed in the payment currency's smallest unit.
    TotalNotPayable,
    /// The order is paid on delivery: there is nothing to pay online.
    PaymentNotRequired,
    OrderAlreadyPaid,
    /// Only a PENDING order can be paid; this one is `current`.
    OrderNotPayable(domain::OrderStatus),
    /// The time to pay ran out (the order is being cancelled).
    PaymentExpired,
    /// Telegram could not be reached for a payment call, or failed (cause logged).
    PaymentGateway(domain::ports::NotifyError),
    /// Telegram refused the invoice for good (an amount outside the currency's limits, a
    /// provider token it does not take): retrying will not help (cause logged).
    InvoiceRefused(domain::ports::NotifyError),
    /// The customer may cancel only a PENDING order; this one is `current`.
    OrderNotCancellable(domain::OrderStatus),
    /// A valid Telegram user who is not an admin of the shop.
    Forbidden,
    /// A category that still has products or subcategories cannot be deleted.
    CategoryNotEmpty {
        products: u64,
        children: u64,
    },
    /// A stock adjustment the stock cannot take (below zero, or unlimited stock).
    StockConflict(String),
    /// A product named by orders cannot be deleted.
    ProductInOrders {
        orders: u64,
    },
    /// A catalog import refused as a whole, with every problem found.
    ImportRefused(Vec<domain::catalog_io::ImportProblem>),
    /// The order's current status may not become the one asked for.
    InvalidTransition {
        current: domain::OrderStatus,
        wanted: domain::OrderStatus,
    },
    /// The database is unreachable or too slow: retry later.
    Unavailable(RepositoryError),
    /// The picture storage failed (its cause is logged, never sent).
    MediaUnavailable(domain::media::MediaStoreError),
    /// The operation needs a setting the shop does not have (named).
    NotConfigured(&'static str),
    /// Too many requests from this client (address or Telegram user): wait `retry_after`.
    RateLimited {
        retry_after: Duration,
    },
    /// The readiness probe failed: the storage did not answer (`None`: not in time).
    NotReady(Option<RepositoryError>),
    /// A CORS preflight from an origin, or asking for a method or header, that is not
    /// allowed. Answered here so that it is a problem like every other error.
    CorsRejected(actix_cors::CorsError),
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
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::UnsupportedImage => "unsupported_image",
            ApiError::Unauthorized(reason) => reason.code(),
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::ProductNotFound(_) => "product_not_found",
            ApiError::ProductUnavailable(_) => "product_unavailable",
            ApiError::OrderTotalTooLarge => "order_total_too_large",
            ApiError::InsufficientStock(_) => "insufficient_stock",
            ApiError::IdempotencyKeyInUse => "idempotency_key_in_use",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::OrderNotCancellable(_) => "order_not_cancellable",
            ApiError::Forbidden => "forbidden",
            ApiError::CategoryNotEmpty { .. } => "category_not_empty",
            ApiError::StockConflict(_) => "stock_conflict",
            ApiError::ProductInOrders { .. } => "product_in_orders",
            ApiError::ImportRefused(_) => "import_refused",
            ApiError::InvalidTransition { .. } => "invalid_transition",
            ApiError::WebhookUnauthorized => "invalid_webhook_secret",
            ApiError::NoStarsPrice(_) => "no_stars_price",
            ApiError::TotalNotPayable => "total_not_payable",
            ApiError::PaymentNotRequired => "payment_not_required",
            ApiError::OrderAlreadyPaid => "order_already_paid",
            ApiError::OrderNotPayable(_) => "order_not_payable",
            ApiError::PaymentExpired => "payment_expired",
            ApiError::PaymentGateway(_) => "payment_gateway_error",
            ApiError::InvoiceRefused(_) => "invoice_refused",
            ApiError::Unavailable(_) | ApiError::MediaUnavailable(_) => "service_unavailable",
            ApiError::NotConfigured(_) => "not_configured",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::NotReady(_) => "not_ready",
            ApiError::CorsRejected(_) => "cors_rejected",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "The request is invalid",
            ApiError::MalformedJson(_) => "The request body is not valid JSON",
            ApiError::PayloadTooLarge { .. } => "The request body is too large",
            ApiError::UnsupportedMediaType { .. } => "The request body has the wrong media type",
            ApiError::UnsupportedImage => "The file is not a JPEG, PNG or WebP picture",
            ApiError::Unauthorized(_) => "Telegram authentication failed",
            ApiError::NotFound(_) => "Not found",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::ProductNotFound(_) => "Some products do not exist",
            ApiError::ProductUnavailable(_) => "Some products are not available",
            ApiError::OrderTotalTooLarge => "The order total is too large",
            ApiError::InsufficientStock(_) => "Not enough stock",
            ApiError::IdempotencyKeyInUse => "A request with this Idempotency-Key is still running",
            ApiError::IdempotencyKeyReused => {
                "This Idempotency-Key was used for a different request"
            }
            ApiError::OrderNotCancellable(_) => "The order can no longer be cancelled",
            ApiError::Forbidden => "Admins only",
            ApiError::CategoryNotEmpty { .. } => "The category is not empty",
            ApiError::StockConflict(_) => "The stock cannot take this change",
            ApiError::ProductInOrders { .. } => "The product appears in orders",
            ApiError::ImportRefused(_) => "The file cannot be imported",
            ApiError::InvalidTransition { .. } => "The order cannot take this status",
            ApiError::WebhookUnauthorized => "Not Telegram",
            ApiError::NoStarsPrice(_) => "Some products cannot be paid in Telegram Stars",
            ApiError::TotalNotPayable => "The total cannot be paid in the shop's currency",
            ApiError::PaymentNotRequired => "The order is paid on delivery",
            ApiError::OrderAlreadyPaid => "The order is already paid",
            ApiError::OrderNotPayable(_) => "The order cannot be paid",
            ApiError::PaymentExpired => "The time to pay has run out",
            ApiError::PaymentGateway(_) => "Telegram could not create the payment",
            ApiError::InvoiceRefused(_) => "Telegram refused this payment",
            ApiError::Unavailable(_) | ApiError::MediaUnavailable(_) => {
                "The service is temporarily unavailable"
            }
            ApiError::NotConfigured(_) => "The shop is not configured for this",
            ApiError::RateLimited { .. } => "Too many requests",
            ApiError::NotReady(_) => "The service is not ready",
            ApiError::CorsRejected(_) => "Cross-origin request refused",
            ApiError::Internal(_) => "Internal server error",
        }
    }

    /// A short human sentence for the customer: clients written for FastAPI show
    /// `error.detail`. Never internals: a 5xx says only what the client can do.
    fn detail(&self) -> String {
        self.detail_text()
            .unwrap_or_else(|| self.title().to_owned())
    }

    fn detail_text(&self) -> Option<String> {
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
            ApiError::Unavailable(_) | ApiError::MediaUnavailable(_) => {
                Some("please retry in a moment".to_owned())
            }
            ApiError::NotConfigured(key) => Some(format!(
                "the shop's {key} is not set; its operator must set it first"
            )),
            ApiError::RateLimited { retry_after } => {
                Some(format!("retry in {} s", retry_after_secs(*retry_after)))
            }
            ApiError::NotReady(_) => Some("the database does not answer".to_owned()),
            ApiError::InsufficientStock(shortages) => Some(
                shortages
                    .iter()
                    .map(|s| {
                        format!(
                            "product {}: {} requested, {} available",
                            s.product_id, s.requested, s.available
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            ApiError::IdempotencyKeyInUse => Some(
                "wait for the first request to finish, then retry with the same key".to_owned(),
            ),
            ApiError::IdempotencyKeyReused => {
                Some("use a new Idempotency-Key for a different order".to_owned())
            }
            ApiError::WebhookUnauthorized => {
                Some("the X-Telegram-Bot-Api-Secret-Token header is missing or wrong".to_owned())
            }
            ApiError::Forbidden => Some(
                "this Telegram user is not an admin of the shop (ADMIN_TELEGRAM_IDS)".to_owned(),
            ),
            ApiError::CategoryNotEmpty { products, children } => Some(format!(
                "the category still has {products} products and {children} subcategories; \
                 move or delete them first, or deactivate the category (is_active: false)"
            )),
            ApiError::StockConflict(reason) => Some(reason.clone()),
            ApiError::ImportRefused(problems) => Some(format!(
                "nothing was imported: {} problems, listed in `problems` (line, field, message)",
                problems.len()
            )),
            ApiError::ProductInOrders { orders } => Some(format!(
                "the product appears in {orders} orders, which keep it; deactivate it instead \
                 (is_active: false)"
            )),
            ApiError::InvalidTransition { current, wanted } => {
                Some(format!("the order is {current} and cannot become {wanted}"))
            }
            ApiError::OrderNotCancellable(current) => Some(format!(
                "the order is {current}; only a PENDING order can be cancelled here, ask the shop"
            )),
            // actix-cors's messages are fixed sentences about the request's own headers.
            ApiError::CorsRejected(reason) => Some(reason.to_string()),
            ApiError::NotFound(what) => Some((*what).to_owned()),
            ApiError::UnsupportedMediaType { expected } => {
                Some(format!("send the body with Content-Type: {expected}"))
            }
            ApiError::UnsupportedImage => Some(
                "upload a JPEG, PNG or WebP picture (recognised by its content, not its name)"
                    .to_owned(),
            ),
            ApiError::MethodNotAllowed => Some(
                "this path does not serve that method; the Allow header lists those it does"
                    .to_owned(),
            ),
            ApiError::OrderTotalTooLarge => {
                Some("the order total is above the largest amount the shop accepts".to_owned())
            }
            ApiError::NoStarsPrice(ids) => Some(format!(
                "products {} have no price in Telegram Stars; remove them from the cart",
                join_ids(ids)
            )),
            ApiError::TotalNotPayable => {
                Some("the order's total has a fraction the payment currency cannot take".to_owned())
            }
            ApiError::PaymentNotRequired => {
                Some("this order is paid on delivery; there is nothing to pay now".to_owned())
            }
            ApiError::OrderAlreadyPaid => Some("the order is already paid".to_owned()),
            ApiError::OrderNotPayable(current) => Some(format!(
                "the order is {current}; only a PENDING order can be paid"
            )),
            ApiError::PaymentExpired => Some(
                "the time to pay this order has run out and it is being cancelled; place it again"
                    .to_owned(),
            ),
            ApiError::PaymentGateway(_) => {
                Some("Telegram did not create the payment; please retry in a moment".to_owned())
            }
            ApiError::InvoiceRefused(_) => Some(
                "Telegram refused to create this payment (its amount may be outside what the \
                 currency allows); the order cannot be paid online, ask the shop"
                    .to_owned(),
            ),
            ApiError::Internal(_) => {
                Some("something went wrong on our side; please retry later".to_owned())
            }
        }
    }
}

impl ApiError {
    /// The problem document of this error. Also the source of the OpenAPI examples, so the
    /// documentation shows exactly what is sent.
    pub fn problem(&self) -> Problem<'_> {
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
            ApiError::ProductNotFound(ids)
            | ApiError::ProductUnavailable(ids)
            | ApiError::NoStarsPrice(ids) => Some(ids.iter().map(|id| id.0).collect()),
            _ => None,
        };
        let products = match self {
            ApiError::InsufficientStock(shortages) => Some(
                shortages
                    .iter()
                    .map(|s| StockProblem {
                        product_id: s.product_id.0,
                        requested: s.requested,
                        available: s.available,
                    })
                    .collect(),
            ),
            _ => None,
        };
        let problems = match self {
            ApiError::ImportRefused(problems) => Some(problems.as_slice()),
            _ => None,
        };
        let current_status = match self {
            ApiError::InvalidTransition { current, .. }
            | ApiError::OrderNotCancellable(current)
            | ApiError::OrderNotPayable(current) => Some(current.as_str()),
            _ => None,
        };
        Problem {
            kind: format!("urn:botshop:problem:{}", self.code()),
            title: self.title(),
            status: self.status_code().as_u16(),
            code: self.code(),
            detail: self.detail(),
            errors,
            product_ids,
            products,
            current_status,
            problems,
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

/// An error, as `application/problem+json` (RFC 9457). Clients branch on `code`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:botshop:problem:validation_failed", "title": "The request is invalid",
    "status": 422, "code": "validation_failed", "detail": "items[0].quantity: quantity must be between 1 and 100",
    "errors": [{"field": "items[0].quantity", "code": "out_of_range", "message": "quantity must be between 1 and 100"}]
}))]
pub struct Problem<'a> {
    /// `urn:botshop:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short human-readable summary of the problem.
    pub title: &'a str,
    /// The HTTP status.
    pub status: u16,
    /// The stable machine-readable code, e.g. `validation_failed`.
    pub code: &'a str,
    /// What went wrong, in a short sentence a client may show to the customer (e.g.
    /// "Product not found"). Always present; a 5xx says nothing of internals.
    pub detail: String,
    /// With `validation_failed`: every field that breaks a rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub errors: Option<Vec<ProblemField<'a>>>,
    /// With `product_not_found`, `product_unavailable` and `no_stars_price`: the products
    /// concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub product_ids: Option<Vec<i64>>,
    /// With `insufficient_stock`: each product short of stock and what is available.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub products: Option<Vec<StockProblem>>,
    /// With `invalid_transition`, `order_not_cancellable` and `order_not_payable`: the
    /// order's status now.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub current_status: Option<&'a str>,
    /// With `import_refused`: every problem of the file, `{line, field, message}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<Vec<Object>>)]
    pub problems: Option<&'a [domain::catalog_io::ImportProblem]>,
}

/// A product the order wanted more of than is left.
#[derive(Debug, Serialize, ToSchema)]
pub struct StockProblem {
    pub product_id: i64,
    /// Units the order asked for (summed over its lines).
    pub requested: u32,
    /// Units left.
    pub available: u32,
}

/// One field that breaks a rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemField<'a> {
    /// The field's path in the request, e.g. `items[1].quantity`, or a query parameter.
    pub field: &'a str,
    /// Why, e.g. `required`, `unknown_field`, `invalid_type`, `out_of_range`.
    pub code: &'a str,
    pub message: &'a str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation(_)
            | ApiError::ProductNotFound(_)
            | ApiError::ProductUnavailable(_)
            | ApiError::OrderTotalTooLarge
            | ApiError::NoStarsPrice(_)
            | ApiError::TotalNotPayable
            | ApiError::IdempotencyKeyReused
            | ApiError::ImportRefused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::InsufficientStock(_)
            | ApiError::IdempotencyKeyInUse
            | ApiError::OrderNotCancellable(_)
            | ApiError::PaymentNotRequired
            | ApiError::OrderAlreadyPaid
            | ApiError::OrderNotPayable(_)
            | ApiError::PaymentExpired
            | ApiError::InvoiceRefused(_)
            | ApiError::InvalidTransition { .. }
            | ApiError::CategoryNotEmpty { .. }
            | ApiError::StockConflict(_)
            | ApiError::ProductInOrders { .. } => StatusCode::CONFLICT,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } | ApiError::UnsupportedImage => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::Unauthorized(_) | ApiError::WebhookUnauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_)
            | ApiError::MediaUnavailable(_)
            | ApiError::NotConfigured(_)
            | ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::CorsRejected(reason) => match reason {
                // The preflight is well-formed but asks for something we do not allow.
                actix_cors::CorsError::OriginNotAllowed
                | actix_cors::CorsError::MethodNotAllowed
                | actix_cors::CorsError::HeadersNotAllowed => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            },
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::PaymentGateway(_) => StatusCode::BAD_GATEWAY,
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
            ApiError::MediaUnavailable(cause) => {
                tracing::warn!(error = %error_chain(cause), "picture storage unavailable")
            }
            ApiError::NotReady(Some(cause)) => {
                tracing::warn!(error = %error_chain(cause), "not ready: the database ping failed")
            }
            ApiError::NotReady(None) => {
                tracing::warn!("not ready: the database ping timed out")
            }
            ApiError::PaymentGateway(cause) | ApiError::InvoiceRefused(cause) => {
                tracing::warn!(error = %cause, "Telegram refused a payment call")
            }
            _ => {}
        }
        let problem = self.problem();
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if let ApiError::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("tma")));
        }
        if let ApiError::Unavailable(_) | ApiError::MediaUnavailable(_) = self {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        if let ApiError::RateLimited { retry_after } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs(*retry_after)));
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
            RepositoryError::InvalidData(cause) => {
                // Validation should have refused it: worth knowing which value got through.
                tracing::warn!(error = %error_chain(cause.as_ref()), "the database refused a value");
                ApiError::validation(
                    "request",
                    "invalid_value",
                    "a value in the request cannot be stored; check its text and numbers",
                )
            }
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
            PlaceOrderError::NoStarsPrice(ids) => ApiError::NoStarsPrice(ids),
            PlaceOrderError::NotPayable => ApiError::TotalNotPayable,
            PlaceOrderError::InsufficientStock(shortages) => ApiError::InsufficientStock(shortages),
            PlaceOrderError::IdempotencyKeyInUse => ApiError::IdempotencyKeyInUse,
            PlaceOrderError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            PlaceOrderError::NotAdmitted(retry_after) => ApiError::RateLimited { retry_after },
            PlaceOrderError::Repository(e) => e.into(),
        }
    }
}

impl From<domain::payments::InvoiceError> for ApiError {
    fn from(error: domain::payments::InvoiceError) -> Self {
        use domain::payments::InvoiceError;
        match error {
            InvoiceError::NotFound => ApiError::NotFound("Order not found"),
            InvoiceError::NotRequired => ApiError::PaymentNotRequired,
            InvoiceError::AlreadyPaid => ApiError::OrderAlreadyPaid,
            InvoiceError::NotPending { current } => ApiError::OrderNotPayable(current),
            InvoiceError::Expired => ApiError::PaymentExpired,
            InvoiceError::Gateway(cause @ domain::ports::NotifyError::Permanent { .. }) => {
                ApiError::InvoiceRefused(cause)
            }
            InvoiceError::Gateway(cause) => ApiError::PaymentGateway(cause),
            InvoiceError::NotConfigured => ApiError::NotConfigured("TELEGRAM_BOT_TOKEN"),
            InvoiceError::Repository(e) => e.into(),
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
