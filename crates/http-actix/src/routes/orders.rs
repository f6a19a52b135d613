//! Orders: every route here needs an authenticated customer.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use domain::OrderId;
use domain::order::OrderDraft;
use time::OffsetDateTime;

use super::{page, path_id};
use crate::dto::{CreateOrderRequest, ListQuery, OrderDto, PageDto};
use crate::error::ApiError;
use crate::extract::{Customer, JsonBody};
use crate::metrics::Metrics;
use crate::{API_PREFIX, ApiState, Limits};

/// Places an order for the authenticated customer.
///
/// Prices are read from the catalog when the order is placed and kept on each line; the
/// manager is notified in the background.
///
/// Each Telegram user may place a few orders at once, then a limited number per minute
/// (by default 3, then 10 per minute); beyond that the answer is 429 with `Retry-After`.
#[utoipa::path(
    post,
    path = "/api/v1/orders",
    tag = "customer",
    security(("tma" = [])),
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
        (status = 201, description = "The order was placed", body = OrderDto,
            headers(("Location" = String, description = "The order's URL, `/api/v1/orders/{id}`"))),
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
    state: web::Data<ApiState>,
    limits: web::Data<Limits>,
    metrics: web::Data<Metrics>,
    Customer(customer): Customer,
    JsonBody(request): JsonBody<CreateOrderRequest>,
) -> Result<HttpResponse, ApiError> {
    let draft = OrderDraft::parse(request.into()).map_err(ApiError::Validation)?;
    // Keyed by the verified Telegram user, never by address: customers behind one carrier
    // NAT must not share an allowance, and one customer cannot escape it by changing
    // networks. Counted after validation, so fixing a typo costs nothing, but before the
    // database, so every attempt that reaches it counts.
    limits
        .orders
        .check(customer.telegram_id.get(), crate::limiter_now())
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let order = state
        .order_service
        .place(&customer, draft, OffsetDateTime::now_utc())
        .await?;
    metrics.order_created();
    let location = format!("{API_PREFIX}/orders/{}", order.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(OrderDto::from(order)))
}

/// The authenticated customer's orders, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/orders/my",
    tag = "customer",
    security(("tma" = [])),
    params(super::PageParams),
    responses(
        (status = 200, description = "One page of the customer's orders", body = PageDto<OrderDto>),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list_mine(
    state: web::Data<ApiState>,
    Customer(customer): Customer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(&query)?;
    let orders = state.orders.list_for_user(customer.id, page).await?;
    Ok(HttpResponse::Ok().json(PageDto::from_page(orders, OrderDto::from)))
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
        Some(order) => Ok(HttpResponse::Ok().json(OrderDto::from(order))),
        None => Err(ApiError::NotFound),
    }
}
