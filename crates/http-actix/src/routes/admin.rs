//! The admin API (`/api/v1/admin/…`): the shop's orders, categories, stock and the audit
//! log, for the
//! shop's admins (`ADMIN_TELEGRAM_IDS` with their initData) and programs
//! (`ADMIN_API_TOKEN`). Every change goes through the same domain rules as everywhere
//! else and is recorded in the audit log.

use actix_web::{HttpRequest, HttpResponse, web};
use domain::admin::{Admin, AuditFilter, OrderFilter};
use domain::catalog::{ProductFilter, ProductQueryInput};
use domain::catalog_admin::{
    AdminProductFilter, CatalogChangeError, CategoryInput, CategoryPatch, ChangeContext,
    NewCategory, NewProduct, ProductInput, ProductPatch, StockChange,
};
use domain::catalog_io::ImportFile;
use domain::lifecycle::{ChangeRequest, ChangeStatusError, Scope, change_status, parse_note};
use domain::stats::{Period, Report};
use domain::{CategoryId, OrderId, OrderStatus, ProductId, TelegramId};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::listing::list_headers;
use super::path_id;
use crate::ApiState;
use crate::catalog_cache::CatalogCache;
use crate::dto::{
    AdminOrderDto, AdminProductDto, AdminProductsQuery, AuditEntryDto, CategoryDto,
    CategoryRequest, OrderDto, ProductRequest, ReportDto, StatusChangeRequest,
    StockAdjustmentRequest, StockDto, StockRequest,
};
use crate::error::ApiError;
use crate::extract::{AdminCaller, JsonBody, int_param};

/// Query parameters of `GET /admin/orders`, as text so that a bad one is named.
#[derive(Debug, Deserialize)]
pub struct AdminOrdersQuery {
    pub status: Option<String>,
    pub created_from: Option<String>,
    pub created_to: Option<String>,
    pub customer_telegram_id: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
}

/// Query parameters of `GET /admin/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
}

/// Every customer's orders, newest first, filtered.
///
/// `status` is one of the order statuses; `created_from` (inclusive) and `created_to`
/// (exclusive) are RFC 3339 instants; `customer_telegram_id` is the customer's Telegram
/// id. Paginated like the public lists (`limit`, `offset`, `X-Total-Count`, `Link`).
#[utoipa::path(
    get,
    path = "/api/v1/admin/orders",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    params(
        ("status" = Option<String>, Query, description = "PENDING, CONFIRMED, PROCESSING, SHIPPED, DELIVERED or CANCELLED"),
        ("created_from" = Option<String>, Query, format = DateTime, description = "Created at or after (RFC 3339)"),
        ("created_to" = Option<String>, Query, format = DateTime, description = "Created before (RFC 3339)"),
        ("customer_telegram_id" = Option<i64>, Query, minimum = 1, description = "The customer's Telegram id"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)"),
        ("offset" = Option<i64>, Query, minimum = 0, maximum = 100_000, description = "Orders to skip"),
    ),
    responses(
        (status = 200, description = "The page of orders", body = [OrderDto],
            headers(("X-Total-Count" = u64, description = "All matching orders"), ("Link" = String, description = "RFC 8288 links to the next and previous pages"))),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list_orders(
    req: HttpRequest,
    state: web::Data<ApiState>,
    _admin: AdminCaller,
    query: web::Query<AdminOrdersQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = super::page_of(query.limit.as_deref(), query.offset.as_deref())?;
    let filter = OrderFilter {
        status: query
            .status
            .as_deref()
            .map(|status| parse_status("status", status))
            .transpose()?,
        created_from: instant("created_from", query.created_from.as_deref())?,
        created_to: instant("created_to", query.created_to.as_deref())?,
        customer: int_param(
            "customer_telegram_id",
            query.customer_telegram_id.as_deref(),
        )?
        .map(|id| {
            TelegramId::parse(id).map_err(|_| {
                ApiError::validation(
                    "customer_telegram_id",
                    "invalid_id",
                    "customer_telegram_id must be a positive Telegram id",
                )
            })
        })
        .transpose()?,
    };
    let orders = state.order_admin.list_orders(&filter, page).await?;
    Ok(listed(&req, orders, OrderDto::from))
}

/// One order: its lines, its customer and its whole history (with notes and who).
#[utoipa::path(
    get,
    path = "/api/v1/admin/orders/{id}",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The order's id")),
    responses(
        (status = 200, description = "The order", body = AdminOrderDto),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn get_order(
    state: web::Data<ApiState>,
    _admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = OrderId(path_id(&id)?);
    match state.order_admin.order_details(id).await? {
        Some(details) => Ok(HttpResponse::Ok().json(AdminOrderDto::from(details))),
        None => Err(ApiError::NotFound("Order not found")),
    }
}

/// Moves an order to a new status, with an optional note.
///
/// The same transition as the manager's buttons in Telegram, with the same history, the
/// customer's message and the manager's redrawn message; this is also how a delivery
/// service or a CRM reports a status. A status that may not follow the current one is a
/// 409 `invalid_transition` naming the current status (`current_status`). Recorded in the
/// audit log.
#[utoipa::path(
    post,
    path = "/api/v1/admin/orders/{id}/status",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The order's id")),
    request_body = StatusChangeRequest,
    responses(
        (status = 200, description = "The order as it is now", body = AdminOrderDto),
        (status = 400, response = crate::openapi::MalformedJson),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::InvalidTransition),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn change_order_status(
    state: web::Data<ApiState>,
    cache: web::Data<CatalogCache>,
    AdminCaller(admin): AdminCaller,
    id: web::Path<String>,
    JsonBody(body): JsonBody<StatusChangeRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = OrderId(path_id(&id)?);
    let to = parse_status("status", &body.status)?;
    let note =
        parse_note(body.note.as_deref()).map_err(|error| ApiError::Validation(vec![error]))?;
    let request = ChangeRequest {
        scope: Scope::Any,
        order_id: id,
        seen: None,
        to,
        by: admin.changed_by(),
        at: OffsetDateTime::now_utc(),
        note,
        admin: Some(admin),
    };
    match change_status(state.lifecycle.as_ref(), request).await {
        Ok(order) => {
            if to == OrderStatus::Cancelled {
                // The units went back to stock, which the catalog shows.
                let products: Vec<i64> = order.items.iter().map(|item| item.product_id.0).collect();
                cache.invalidate_products(&products);
            }
            state.relay_wake.notify_one();
            match state.order_admin.order_details(id).await? {
                Some(details) => Ok(HttpResponse::Ok().json(AdminOrderDto::from(details))),
                None => Err(ApiError::NotFound("Order not found")),
            }
        }
        Err(ChangeStatusError::NotFound) => Err(ApiError::NotFound("Order not found")),
        Err(
            ChangeStatusError::NotAllowed { from: current, .. }
            | ChangeStatusError::AlreadyChanged { current },
        ) => Err(ApiError::InvalidTransition {
            current,
            wanted: to,
        }),
        Err(ChangeStatusError::Repository(error)) => Err(error.into()),
    }
}

/// The audit log: every admin change, newest first.
///
/// Filters: `actor` (a Telegram id, or `api-token`), `entity` (`order`) and `entity_id`,
/// `from` (inclusive) and `to` (exclusive) as RFC 3339 instants.
#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    params(
        ("actor" = Option<String>, Query, description = "A Telegram id, or `api-token`"),
        ("entity" = Option<String>, Query, description = "What was changed, e.g. `order`"),
        ("entity_id" = Option<String>, Query, description = "Its id"),
        ("from" = Option<String>, Query, format = DateTime, description = "At or after (RFC 3339)"),
        ("to" = Option<String>, Query, format = DateTime, description = "Before (RFC 3339)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)"),
        ("offset" = Option<i64>, Query, minimum = 0, maximum = 100_000, description = "Entries to skip"),
    ),
    responses(
        (status = 200, description = "The page of entries", body = [AuditEntryDto],
            headers(("X-Total-Count" = u64, description = "All matching entries"), ("Link" = String, description = "RFC 8288 links to the next and previous pages"))),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list_audit(
    req: HttpRequest,
    state: web::Data<ApiState>,
    _admin: AdminCaller,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = super::page_of(query.limit.as_deref(), query.offset.as_deref())?;
    let text = |name: &str, value: Option<&str>| -> Result<Option<String>, ApiError> {
        match value {
            Some(value) if value.chars().count() > 100 => Err(ApiError::validation(
                name,
                "too_long",
                format!("{name} must be at most 100 characters"),
            )),
            Some(value) if domain::values::has_control_character(value) => {
                Err(ApiError::validation(
                    name,
                    "control_character",
                    format!("{name} must not contain control characters"),
                ))
            }
            other => Ok(other.map(str::to_owned)),
        }
    };
    let filter = AuditFilter {
        actor: text("actor", query.actor.as_deref())?,
        entity: text("entity", query.entity.as_deref())?,
        entity_id: text("entity_id", query.entity_id.as_deref())?,
        from: instant("from", query.from.as_deref())?,
        to: instant("to", query.to.as_deref())?,
    };
    let entries = state.audit.list_audit(&filter, page).await?;
    Ok(listed(&req, entries, AuditEntryDto::from))
}

/// A page of a collection as every list answers it: a JSON array of `to_dto` of each item,
/// with `X-Total-Count` and the `Link` to its neighbours.
fn listed<T, D: serde::Serialize>(
    req: &HttpRequest,
    page: domain::Paginated<T>,
    to_dto: impl FnMut(T) -> D,
) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    for header in list_headers(req, page.page, page.total) {
        response.insert_header(header);
    }
    response.json(page.items.into_iter().map(to_dto).collect::<Vec<_>>())
}

fn parse_status(field: &str, value: &str) -> Result<OrderStatus, ApiError> {
    value.parse::<OrderStatus>().map_err(|_| {
        ApiError::validation(
            field,
            "invalid_status",
            format!(
                "{field} must be one of PENDING, CONFIRMED, PROCESSING, SHIPPED, DELIVERED, CANCELLED"
            ),
        )
    })
}

/// An optional RFC 3339 instant that UTC can express, named when it is not one.
fn instant(field: &str, value: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    value
        .map(|value| {
            OffsetDateTime::parse(value, &Rfc3339)
                .ok()
                .and_then(|at| at.checked_to_offset(time::UtcOffset::UTC))
                .ok_or_else(|| {
                    ApiError::validation(
                        field,
                        "invalid_datetime",
                        format!(
                            "{field} must be an RFC 3339 date and time, e.g. 2025-12-22T00:00:00Z"
                        ),
                    )
                })
        })
        .transpose()
}

/// Every category, inactive ones included, flat (each with its `parent_id`), by
/// `sort_order` then id.
#[utoipa::path(
    get,
    path = "/api/v1/admin/categories",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Every category", body = [CategoryDto]),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list_categories(
    state: web::Data<ApiState>,
    _admin: AdminCaller,
) -> Result<HttpResponse, ApiError> {
    let categories = state.catalog_admin.all_categories().await?;
    Ok(HttpResponse::Ok().json(
        categories
            .into_iter()
            .map(CategoryDto::from)
            .collect::<Vec<_>>(),
    ))
}

/// Creates a category. A taken slug, a missing parent or a parent the tree refuses (more
/// than three levels) is a 422 naming the field.
#[utoipa::path(
    post,
    path = "/api/v1/admin/categories",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    request_body = CategoryRequest,
    responses(
        (status = 201, description = "The new category", body = CategoryDto,
            headers(("Location" = String, description = "The category's public URL"))),
        (status = 400, response = crate::openapi::MalformedJson),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn create_category(
    state: web::Data<ApiState>,
    cache: web::Data<CatalogCache>,
    AdminCaller(admin): AdminCaller,
    JsonBody(body): JsonBody<CategoryRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = NewCategory::parse(&category_input(&body)).map_err(ApiError::Validation)?;
    let category = state
        .catalog_admin
        .create_category(&new, context(admin))
        .await
        .map_err(|error| catalog_error(error, "Category not found"))?;
    cache.clear();
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("{}/categories/{}", crate::API_PREFIX, category.id.0),
        ))
        .json(CategoryDto::from(category)))
}

/// Changes a category: only the fields sent (`parent_id: null` makes it a root;
/// `is_active: false` hides it and everything under it from the shop).
#[utoipa::path(
    patch,
    path = "/api/v1/admin/categories/{id}",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The category's id")),
    request_body = CategoryRequest,
    responses(
        (status = 200, description = "The category as it is now", body = CategoryDto),
        (status = 400, response = crate::openapi::MalformedJson),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn update_category(
    state: web::Data<ApiState>,
    cache: web::Data<CatalogCache>,
    AdminCaller(admin): AdminCaller,
    id: web::Path<String>,
    JsonBody(body): JsonBody<CategoryRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = CategoryId(path_id(&id)?);
    let patch = CategoryPatch::parse(&category_input(&body))
        .and_then(|patch| patch.for_category(id))
        .map_err(ApiError::Validation)?;
    let category = state
        .catalog_admin
        .update_category(id, &patch, context(admin))
        .await
        .map_err(|error| catalog_error(error, "Category not found"))?;
    cache.clear();
    Ok(HttpResponse::Ok().json(CategoryDto::from(category)))
}

/// Deletes an empty category. One that still has products or subcategories is a 409
/// `category_not_empty`: move them, or deactivate the category instead.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/categories/{id}",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The category's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::CatalogConflict),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn delete_category(
    state: web::Data<ApiState>,
    cache: web::Data<CatalogCache>,
    AdminCaller(admin): AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = CategoryId(path_id(&id)?);
    state
        .catalog_admin
        .delete_category(id, context(admin))
        .await
        .map_err(|error| catalog_error(error, "Category not found"))?;
    cache.clear();
    Ok(HttpResponse::NoContent().finish())
}

/// Sets a product's stock: a number of units, or `null` for unlimited.
#[utoipa::path(
    put,
    path = "/api/v1/admin/products/{id}/stock",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The product's id")),
    request_body = StockRequest,
    responses(
        (status = 200, description = "The stock now", body = StockDto),
        (status = 400, response = crate::openapi::MalformedJson),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn set_stock(
    state: web::Data<ApiState>,
    cache: web::Data<CatalogCache>,
    AdminCaller(admin): AdminCaller,
    id: web::Path<String>,
    JsonBody(body): JsonBody<StockRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId(path_id(&id)?);
    let Some(stock) = body.stock else {
        return Err(ApiError::validation(
            "stock",
            "required",
            "stock is required: a number of units, or null for unlimited",
        ));
    };
    let change = StockChange::set(stock).map_err(ApiError::Validation)?;
    stock_change(&state, &cache, admin, id, change).await
}

/// Adds units to a product's stock, or takes them away (a negative `delta`), with a
/// reason. Applied to the stock as it is when it runs, so it never loses an order's
/// decrement; below zero, or on unlimited stock, it is a 409 `stock_conflict`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/products/{id}/stock/adjustments",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The product's id")),
    request_body = StockAdjustmentRequest,
    responses(
        (status = 200, description = "The stock now", body = StockDto),
        (status = 400, response = crate::openapi::MalformedJson),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::CatalogConflict),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn adjust_stock(
    state: web::Data<ApiState>,
    cache: web::Data<CatalogCache>,
    AdminCaller(admin): AdminCaller,
    id: web::Path<String>,
    JsonBody(body): JsonBody<StockAdjustmentRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId(path_id(&id)?);
    let change = StockChange::adjust(body.delta, &body.reason).map_err(ApiError::Validation)?;
    stock_change(&state, &cache, admin, id, change).await
}

async fn stock_change(
    state: &ApiState,
    cache: &CatalogCache,
    admin: Admin,
    id: ProductId,
    change: StockChange,
) -> Result<HttpResponse, ApiError> {
    let stock = state
        .catalog_admin
        .change_stock(id, &change, context(admin))
        .await
        .map_err(|error| catalog_error(error, "Product not found"))?;
    cache.invalidate_products(&[id.0]);
    Ok(HttpResponse::Ok().json(StockDto {
        product_id: id.0,
        stock,
    }))
}

fn category_input(body: &CategoryRequest) -> CategoryInput<'_> {
    CategoryInput {
        name: body.name.as_deref(),
        slug: body.slug.as_deref(),
        sort_order: body.sort_order,
        parent_id: body.parent_id,
        is_active: body.is_active,
    }
}

fn context(admin: Admin) -> ChangeContext {
    ChangeContext {
        admin,
        at: OffsetDateTime::now_utc(),
    }
}

/// A refused catalog change as the API answers it.
fn catalog_error(error: CatalogChangeError, not_found: &'static str) -> ApiError {
    match error {
        CatalogChangeError::NotFound => ApiError::NotFound(not_found),
        CatalogChangeError::SlugTaken => {
            ApiError::validation("slug", "slug_taken", "another category has this slug")
        }
        CatalogChangeError::SkuTaken => {
            ApiError::validation("sku", "sku_taken", "another product has this sku")
        }
        CatalogChangeError::CategoryNotFound => {
            ApiError::validation("category_id", "not_found", "category_id names no category")
        }
        CatalogChangeError::ProductInOrders { orders } => ApiError::ProductInOrders { orders },
        CatalogChangeError::ParentNotFound => {
            ApiError::validation("parent_id", "not_found", "parent_id names no category")
        }
        CatalogChangeError::InvalidParent(reason) => {
            ApiError::validation("parent_id", "invalid_parent", reason)
        }
        CatalogChangeError::CategoryNotEmpty { products, children } => {
            ApiError::CategoryNotEmpty { products, children }
        }
        CatalogChangeError::StockConflict(reason) => ApiError::StockConflict(reason),
        CatalogChangeError::Import(problems) => ApiError::ImportRefused(problems),
        CatalogChangeError::Repository(error) => error.into(),
    }
}

/// Every product, active or not, with the public list's filters (`category_id`,
/// `include_descendants`, `q`, `min_price`, `max_price`, `in_stock`, `sort`) and
/// `is_active` (`true`/`false`; absent: both) and `sku` (exact). Paginated.
#[utoipa::path(
    get,
    path = "/api/v1/admin/products",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    params(
        ("category_id" = Option<i64>, Query, minimum = 1, description = "Only this category's products"),
        ("q" = Option<String>, Query, max_length = 100, description = "Search in name and description"),
        ("is_active" = Option<bool>, Query, description = "Only active (true) or inactive (false) products"),
        ("sku" = Option<String>, Query, max_length = 64, description = "The product with this SKU"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)"),
        ("offset" = Option<i64>, Query, minimum = 0, maximum = 100_000, description = "Products to skip"),
    ),
    responses(
        (status = 200, description = "The page of products", body = [AdminProductDto],
            headers(("X-Total-Count" = u64, description = "All matching products"), ("Link" = String, description = "RFC 8288 links to the next and previous pages"))),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list_products(
    req: HttpRequest,
    state: web::Data<ApiState>,
    _admin: AdminCaller,
    query: web::Query<AdminProductsQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = super::page(&query.public)?;
    let public = ProductFilter::parse(ProductQueryInput {
        category_id: int_param("category_id", query.public.category_id.as_deref())?,
        include_descendants: query.public.include_descendants.as_deref(),
        q: query.public.q.as_deref(),
        min_price: query.public.min_price.as_deref(),
        max_price: query.public.max_price.as_deref(),
        in_stock: query.public.in_stock.as_deref(),
        sort: query.public.sort.as_deref(),
    })
    .map_err(ApiError::Validation)?;
    let is_active = match query.is_active.as_deref() {
        None => None,
        Some(raw) => {
            let mut errors = Vec::new();
            let active = domain::catalog::bool_param("is_active", Some(raw), &mut errors);
            if !errors.is_empty() {
                return Err(ApiError::Validation(errors));
            }
            Some(active)
        }
    };
    let sku = match query.sku.as_deref() {
        Some(sku) if !domain::catalog_admin::is_sku(sku) => {
            return Err(ApiError::validation(
                "sku",
                "invalid_sku",
                "sku must be 1 to 64 visible ASCII characters",
            ));
        }
        other => other.map(str::to_owned),
    };
    let filter = AdminProductFilter {
        public,
        is_active,
        sku,
    };
    let products = state.catalog_admin.list_products(&filter, page).await?;
    Ok(listed(&req, products, AdminProductDto::from))
}

/// One product, active or not, with its SKU.
#[utoipa::path(
    get,
    path = "/api/v1/admin/products/{id}",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The product's id")),
    responses(
        (status = 200, description = "The product", body = AdminProductDto),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn get_product(
    state: web::Data<ApiState>,
    _admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId(path_id(&id)?);
    match state.catalog_admin.find_product(id).await? {
        Some(product) => Ok(HttpResponse::Ok().json(AdminProductDto::from(product))),
        None => Err(ApiError::NotFound("Product not found")),
    }
}

/// Creates a product. A taken SKU or a missing category is a 422 naming the field.
#[utoipa::path(
    post,
    path = "/api/v1/admin/products",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    request_body = ProductRequest,
    responses(
        (status = 201, description = "The new product", body = AdminProductDto,
            headers(("Location" = String, description = "The product's public URL"))),
        (status = 400, response = crate::openapi::MalformedJson),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn create_product(
    state: web::Data<ApiState>,
    cache: web::Data<CatalogCache>,
    AdminCaller(admin): AdminCaller,
    JsonBody(body): JsonBody<ProductRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = NewProduct::parse(&product_input(&body)).map_err(ApiError::Validation)?;
    let product = state
        .catalog_admin
        .create_product(&new, context(admin))
        .await
        .map_err(|error| catalog_error(error, "Product not found"))?;
    cache.clear();
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("{}/products/{}", crate::API_PREFIX, product.product.id.0),
        ))
        .json(AdminProductDto::from(product)))
}

/// Changes a product: only the fields sent. Stock is set with `PUT …/stock`.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/products/{id}",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The product's id")),
    request_body = ProductRequest,
    responses(
        (status = 200, description = "The product as it is now", body = AdminProductDto),
        (status = 400, response = crate::openapi::MalformedJson),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn update_product(
    state: web::Data<ApiState>,
    cache: web::Data<CatalogCache>,
    AdminCaller(admin): AdminCaller,
    id: web::Path<String>,
    JsonBody(body): JsonBody<ProductRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId(path_id(&id)?);
    if body.stock.is_some() {
        return Err(ApiError::validation(
            "stock",
            "use_stock_endpoint",
            "stock is changed with PUT /api/v1/admin/products/{id}/stock or its adjustments",
        ));
    }
    let patch = ProductPatch::parse(&product_input(&body)).map_err(ApiError::Validation)?;
    let product = state
        .catalog_admin
        .update_product(id, &patch, context(admin))
        .await
        .map_err(|error| catalog_error(error, "Product not found"))?;
    cache.clear();
    Ok(HttpResponse::Ok().json(AdminProductDto::from(product)))
}

/// Deletes a product that no order names. One that appears in orders is a 409
/// `product_in_orders` (orders keep their copies of it): deactivate it instead.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/products/{id}",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The product's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::CatalogConflict),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn delete_product(
    state: web::Data<ApiState>,
    cache: web::Data<CatalogCache>,
    AdminCaller(admin): AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId(path_id(&id)?);
    state
        .catalog_admin
        .delete_product(id, context(admin))
        .await
        .map_err(|error| catalog_error(error, "Product not found"))?;
    cache.clear();
    Ok(HttpResponse::NoContent().finish())
}

fn product_input(body: &ProductRequest) -> ProductInput<'_> {
    ProductInput {
        category_id: body.category_id,
        name: body.name.as_deref(),
        description: body.description.as_ref().map(Option::as_deref),
        price: body.price.as_deref(),
        images: body.images.clone(),
        is_active: body.is_active,
        sort_order: body.sort_order,
        sku: body.sku.as_ref().map(Option::as_deref),
        stock: body.stock,
        price_stars: body.price_stars,
    }
}

/// Query parameters of `GET /admin/stats`.
#[derive(Debug, Deserialize)]
pub struct StatsQuery {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// The shop's report over a period of UTC days (`from` and `to` as `YYYY-MM-DD`, both
/// included; by default the last 30 days; at most 366): orders and revenue per day,
/// orders per status, and the ten best-selling products. Revenue counts the orders not
/// cancelled. Computed by the database.
#[utoipa::path(
    get,
    path = "/api/v1/admin/stats",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    params(
        ("from" = Option<String>, Query, format = Date, description = "The first day (UTC), YYYY-MM-DD"),
        ("to" = Option<String>, Query, format = Date, description = "The last day (UTC, included), YYYY-MM-DD; default today"),
    ),
    responses(
        (status = 200, description = "The report", body = ReportDto),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn stats(
    state: web::Data<ApiState>,
    _admin: AdminCaller,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let today = OffsetDateTime::now_utc().date();
    let period = Period::parse(query.from.as_deref(), query.to.as_deref(), today)
        .map_err(ApiError::Validation)?;
    let sums = state.stats.sums(period).await?;
    Ok(HttpResponse::Ok().json(ReportDto::from(Report::new(period, sums))))
}

/// Query parameters of `GET /admin/catalog/export`.
#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    pub format: Option<String>,
}

/// The whole catalog as a file, for a spreadsheet or another shop: `format=json` (the
/// default) or `format=csv` (UTF-8, a header row, categories then products; cells a
/// spreadsheet would run as formulas are written with a `'` before them). Categories are
/// named by slug (with their parent's), products by SKU (with their category's slug).
#[utoipa::path(
    get,
    path = "/api/v1/admin/catalog/export",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    params(("format" = Option<String>, Query, description = "`json` (default) or `csv`")),
    responses(
        (status = 200, description = "The catalog, as JSON (`categories` and `products`) or CSV", content((Object = "application/json"), (String = "text/csv"))),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn export_catalog(
    state: web::Data<ApiState>,
    _admin: AdminCaller,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(ApiError::validation(
                "format",
                "invalid_format",
                "format must be json or csv",
            ));
        }
    };
    let file = state.catalog_admin.export().await?;
    let disposition = |name: &str| format!("attachment; filename=\"{name}\"");
    Ok(if csv {
        HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header(("Content-Disposition", disposition("catalog.csv")))
            .body(file.to_csv())
    } else {
        HttpResponse::Ok()
            .insert_header(("Content-Disposition", disposition("catalog.json")))
            .json(file)
    })
}

/// The largest file an import reads.
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;

/// Query parameters of `POST /admin/catalog/import`.
#[derive(Debug, Deserialize)]
pub struct ImportQuery {
    pub dry_run: Option<String>,
}

/// Imports a catalog file (the export's shape): the body as `application/json` or
/// `text/csv`, at most 16 MiB. Categories are upserted by slug and products by SKU (a
/// product without one by its category and name), all or nothing: any invalid record
/// refuses the whole file, 422 `import_refused` with every problem as `{line, field,
/// message}`. `dry_run=true` changes nothing and answers what would be created, updated
/// and left unchanged. Exporting then importing changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/admin/catalog/import",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    params(("dry_run" = Option<bool>, Query, description = "Only say what would change (default false)")),
    request_body(content = String, description = "The catalog, as the export writes it", content_type = "text/csv"),
    responses(
        (status = 200, description = "What was (or, in a dry run, would be) created, updated and left unchanged", body = Object),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn import_catalog(
    req: HttpRequest,
    state: web::Data<ApiState>,
    cache: web::Data<CatalogCache>,
    AdminCaller(admin): AdminCaller,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut errors = Vec::new();
    let dry_run = domain::catalog::bool_param("dry_run", query.dry_run.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mime = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let csv = match mime.as_str() {
        "text/csv" => true,
        "application/json" => false,
        _ => {
            return Err(ApiError::UnsupportedMediaType {
                expected: "text/csv or application/json",
            });
        }
    };
    let body = match payload.to_bytes_limited(MAX_IMPORT_BYTES).await {
        Err(_) => {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_IMPORT_BYTES,
            });
        }
        Ok(Err(_)) => {
            return Err(ApiError::MalformedJson(
                "the request body could not be read".into(),
            ));
        }
        Ok(Ok(body)) => body,
    };
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::validation("body", "invalid_utf8", "the file must be UTF-8"))?;
    let file = if csv {
        ImportFile::from_csv(text)
    } else {
        ImportFile::from_json(text)
    }
    .map_err(ApiError::ImportRefused)?;
    let report = state
        .catalog_admin
        .import(&file, dry_run, context(admin))
        .await
        .map_err(|error| catalog_error(error, "Category not found"))?;
    if !dry_run {
        cache.clear();
    }
    Ok(HttpResponse::Ok().json(report))
}
