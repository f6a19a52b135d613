//! Orders: every route here needs an authenticated customer.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use domain::idempotency::{IdempotencyKey, RequestFingerprint, StoredResponse};
use domain::lifecycle::{CancelError, cancel_by_customer};
use domain::order::OrderDraft;
use domain::services::place_order::{KeyedRequest, Placement};
use domain::{Order, OrderId};
use time::OffsetDateTime;

use super::{page, path_id};
use crate::catalog_cache::CatalogCache;
use crate::dto::{CreateOrderRequest, HistoryEntryDto, ListQuery, OrderDto};
use crate::error::ApiError;
use crate::extract::{Customer, JsonBody};
use crate::metrics::Metrics;
use crate::{API_PREFIX, ApiState, Limits};

/// The request header that makes a placement safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Marks a response that answers a retry with the first request's answer.
pub const IDEMPOTENT_REPLAYED: header::HeaderName =
    header::HeaderName::from_static("idempotent-replayed");

/// Places an order for the authenticated customer.
///
/// Prices are read from the catalog when the order is placed and kept on each line; the
/// manager is notified in the background.
///
/// Each Telegram user may place a few orders at once, then a limited number per minute
/// (by default 3, then 10 per minute); beyond that the answer is 429 with `Retry-After`.
///
/// Send an `Idempotency-Key` (a UUID per checkout) so that a double-tapped button or a retry
/// after a lost answer places one order: the same key with the same body replays the first
/// answer with `Idempotent-Replayed: true`; with a different body it is a 422
/// `idempotency_key_reused`; while the first request still runs, a 409
/// `idempotency_key_in_use`. Keys are kept for 24 hours.
#[utoipa::path(
    post,
    path = "/api/v1/orders",
    tag = "customer",
    security(("tma" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[!-~]{1,255}$",
            description = "Recommended: a new UUID per checkout, resent unchanged on retries. 1–255 visible ASCII characters (422 `validation_failed` otherwise). The same key with a different body is a 422 `idempotency_key_reused`; while the first request with the key still runs, a 409 `idempotency_key_in_use`",
            example = "3f1c0e3e-9d7a-4b4e-9a53-0c1f6a0e6b11"),
    ),
    request_body(
        content = CreateOrderRequest,
        content_type = "application/json",
        description = "The cart, where to deliver it and how to reach the customer",
        example = json!({
            "items": [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1}],
            "delivery_address": "ул. Пушкина, д. 10",
            "phone": "+79001234567",
            "comment": "Домофон не работает"
        })
    ),
    responses(
        (status = 201, description = "The order was placed (or, with `Idempotent-Replayed: true`, this is the first answer to the same request)", body = OrderDto,
            headers(
                ("Location" = String, description = "The order's URL, `/api/v1/orders/{id}`"),
                ("Idempotent-Replayed" = String, description = "`true` when this answers a retry with the first answer"),
            )),
        (status = 409, response = crate::openapi::OrderConflict),
        (status = 400, response = crate::openapi::MalformedJson),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::InvalidOrder),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn create(
    req: HttpRequest,
    state: web::Data<ApiState>,
    limits: web::Data<Limits>,
    metrics: web::Data<Metrics>,
    cache: web::Data<CatalogCache>,
    Customer(customer): Customer,
    JsonBody(request): JsonBody<CreateOrderRequest>,
) -> Result<HttpResponse, ApiError> {
    let keyed = idempotency_key(&req)?
        .map(|key| {
            // The DTO re-serialised is canonical: whitespace and key order in what the
            // client sent do not make a retry look like a different request.
            let canonical =
                serde_json::to_vec(&request).map_err(|e| ApiError::Internal(Box::new(e)))?;
            Ok::<_, ApiError>(KeyedRequest {
                key,
                fingerprint: RequestFingerprint::of(&canonical),
            })
        })
        .transpose()?;
    let draft = OrderDraft::parse(request.into()).map_err(ApiError::Validation)?;
    let key = keyed.as_ref().map(|k| k.key.clone());
    // The per-customer limit is keyed by the verified Telegram user, never by address:
    // customers behind one carrier NAT must not share an allowance, and one customer cannot
    // escape it by changing networks. It is consulted only for a NEW placement (after
    // validation, so fixing a typo costs nothing): a retry answered from its
    // Idempotency-Key is never refused and never counts.
    let telegram_id = customer.telegram_id.get();
    let placement = state
        .order_service
        .place(&customer, draft, keyed, OffsetDateTime::now_utc(), || {
            limits.orders.check(telegram_id, crate::limiter_now())
        })
        .await?;
    let (response, replayed) = match placement {
        Placement::Placed(order) => {
            metrics.order_created();
            // The order changed these products' stock, which the catalog shows.
            let products: Vec<i64> = order.items.iter().map(|item| item.product_id.0).collect();
            cache.invalidate_products(&products);
            (created(&order)?, false)
        }
        Placement::Recovered(order) => (created(&order)?, true),
        Placement::Replayed(stored) => {
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::CREATED);
            return Ok(replay(status, stored.body));
        }
    };
    if let Some(key) = key {
        let stored = StoredResponse {
            status: response.status.as_u16(),
            body: response.body.clone(),
        };
        // If this fails the key still points at the order, so a retry is answered from it.
        if let Err(error) = state.order_service.remember(&customer, &key, stored).await {
            tracing::warn!(%error, "could not store the response of an idempotent order");
        }
    }
    Ok(if replayed {
        replay(response.status, response.body)
    } else {
        response.into_http()
    })
}

/// A rendered 201 answer, kept as bytes so that exactly these can be stored for replay.
struct Rendered {
    status: StatusCode,
    body: Vec<u8>,
}

impl Rendered {
    fn into_http(self) -> HttpResponse {
        let location = location_of(&self.body);
        let mut response = HttpResponse::build(self.status);
        if let Some(location) = location {
            response.insert_header((header::LOCATION, location));
        }
        response.content_type("application/json").body(self.body)
    }
}

fn created(order: &Order) -> Result<Rendered, ApiError> {
    let body = serde_json::to_vec(&OrderDto::from(order.clone()))
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(Rendered {
        status: StatusCode::CREATED,
        body,
    })
}

/// The first answer again, marked as a replay.
fn replay(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    let mut response = Rendered { status, body }.into_http();
    response.headers_mut().insert(
        IDEMPOTENT_REPLAYED,
        header::HeaderValue::from_static("true"),
    );
    response
}

/// `/api/v1/orders/{id}` of an order body, for the `Location` header.
fn location_of(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(format!(
        "{API_PREFIX}/orders/{}",
        value.get("id")?.as_i64()?
    ))
}

/// The request's `Idempotency-Key`, validated; `None` when absent.
fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or("\u{0}");
    IdempotencyKey::parse(value)
        .map(Some)
        .map_err(|error| ApiError::Validation(vec![error]))
}

/// The authenticated customer's orders, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/orders/my",
    tag = "customer",
    security(("tma" = [])),
    params(super::PageParams),
    responses(
        (status = 200, description = "One page of the customer's orders, newest first, as a JSON array", body = Vec<OrderDto>,
            headers(("X-Total-Count" = u64, description = "How many orders the customer has"), ("Link" = String, description = "RFC 8288 links to the neighbouring pages: `rel=\"next\"`, `rel=\"prev\"`; absent on a single page"))),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list_mine(
    req: HttpRequest,
    state: web::Data<ApiState>,
    Customer(customer): Customer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(&query)?;
    let orders = state.orders.list_for_user(customer.id, page).await?;
    let mut response = HttpResponse::Ok();
    for header in super::listing::list_headers(&req, page, orders.total) {
        response.insert_header(header);
    }
    let body: Vec<OrderDto> = orders.items.into_iter().map(OrderDto::from).collect();
    Ok(response.json(body))
}

/// One of the authenticated customer's orders.
///
/// Someone else's order is a 404, exactly like a missing one (never a 403, which would
/// confirm that it exists).
#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}",
    tag = "customer",
    security(("tma" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The order's id")),
    responses(
        (status = 200, description = "The order", body = OrderDto),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn get_mine(
    state: web::Data<ApiState>,
    Customer(customer): Customer,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = OrderId(path_id(&id)?);
    match state.orders.find_for_user(customer.id, id).await? {
        Some(order) => Ok(HttpResponse::Ok().json(with_history(&state, order).await?)),
        None => Err(ApiError::NotFound("Order not found")),
    }
}

/// The order with its history.
async fn with_history(state: &ApiState, order: Order) -> Result<OrderDto, ApiError> {
    let history = state.lifecycle.history(order.id).await?;
    let mut dto = OrderDto::from(order);
    dto.history = Some(history.into_iter().map(HistoryEntryDto::from).collect());
    Ok(dto)
}

/// Cancels one of the authenticated customer's orders while it is still PENDING.
///
/// The units go back to stock (the catalog shows them at once). Once the shop confirmed the order,
/// only the shop can cancel it: 409 `order_not_cancellable`. Someone else's order is a 404.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/cancel",
    tag = "customer",
    security(("tma" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The order's id")),
    responses(
        (status = 200, description = "The cancelled order, with its history", body = OrderDto),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::NotCancellable),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn cancel_mine(
    state: web::Data<ApiState>,
    cache: web::Data<CatalogCache>,
    Customer(customer): Customer,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = OrderId(path_id(&id)?);
    let now = OffsetDateTime::now_utc();
    match cancel_by_customer(state.lifecycle.as_ref(), customer.id, id, now).await {
        Ok(order) => {
            // The units went back to these products' stock, which the catalog shows.
            let products: Vec<i64> = order.items.iter().map(|item| item.product_id.0).collect();
            cache.invalidate_products(&products);
            // The customer's message and the manager's refreshed one are in the outbox.
            state.relay_wake.notify_one();
            Ok(HttpResponse::Ok().json(with_history(&state, order).await?))
        }
        Err(CancelError::NotFound) => Err(ApiError::NotFound("Order not found")),
        Err(CancelError::NotCancellable { current }) => Err(ApiError::OrderNotCancellable(current)),
        Err(CancelError::Repository(error)) => Err(error.into()),
    }
}

/// What the Mini App opens to pay: `Telegram.WebApp.openInvoice(invoice_link)`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "invoice_link": "https://t.me/$Ab12Cd34", "amount": 80000, "currency": "RUB",
    "expires_at": "2025-12-22T13:00:00Z"
}))]
pub struct InvoiceDto {
    /// Open it with `Telegram.WebApp.openInvoice`. Asking again while the order can be
    /// paid returns the same link.
    pub invoice_link: String,
    /// In the currency's smallest units (kopecks, cents), or whole stars for `XTR`.
    pub amount: i64,
    /// ISO 4217, or `XTR` for Telegram Stars.
    pub currency: &'static str,
    /// RFC 3339, UTC: after it the unpaid order is cancelled and its stock returned.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// An invoice link for one of the authenticated customer's orders, to pay inside Telegram.
///
/// Only a PENDING order that is unpaid and within its time to pay can be paid. The link's
/// payload names the order with a random nonce stored with it, so it cannot pay another
/// order. Whatever the Mini App's `invoiceClosed` status says, the order is paid only when
/// Telegram's `successful_payment` reaches the bot: poll `GET /orders/{id}` for
/// `payment_status`. Someone else's order is a 404.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/invoice",
    tag = "customer",
    security(("tma" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The order's id")),
    responses(
        (status = 200, description = "The invoice link", body = InvoiceDto),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::NotPayable),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 502, response = crate::openapi::PaymentGateway),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn invoice(
    state: web::Data<ApiState>,
    Customer(customer): Customer,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = OrderId(path_id(&id)?);
    let invoice = state
        .payments
        .invoice(&customer, id, OffsetDateTime::now_utc())
        .await?;
    Ok(HttpResponse::Ok().json(InvoiceDto {
        invoice_link: invoice.invoice_link,
        amount: invoice.due.amount,
        currency: invoice.due.currency.code(),
        expires_at: invoice.expires_at.map(crate::dto::rfc3339),
    }))
}
