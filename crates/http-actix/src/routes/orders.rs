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
use crate::{API_PREFIX, ApiState};

/// `POST /orders` → 201 with a `Location` header and the order.
pub async fn create(
    state: web::Data<ApiState>,
    Customer(customer): Customer,
    JsonBody(request): JsonBody<CreateOrderRequest>,
) -> Result<HttpResponse, ApiError> {
    let draft = OrderDraft::parse(request.into()).map_err(ApiError::Validation)?;
    let order = state
        .order_service
        .place(&customer, draft, OffsetDateTime::now_utc())
        .await?;
    let location = format!("{API_PREFIX}/orders/{}", order.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(OrderDto::from(order)))
}

/// `GET /orders/my`: newest first.
pub async fn list_mine(
    state: web::Data<ApiState>,
    Customer(customer): Customer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(&query)?;
    let orders = state.orders.list_for_user(customer.id, page).await?;
    Ok(HttpResponse::Ok().json(PageDto::from_page(orders, OrderDto::from)))
}

/// `GET /orders/{id}`: someone else's order is 404, exactly like a missing one.
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
