pub mod admin;
pub mod assets;
mod cache;
pub mod catalog;
pub mod listing;
pub mod media;
pub mod ops;
pub mod orders;
pub mod panel;
pub mod telegram;
pub mod users;

use actix_web::http::Method;
use actix_web::web;
use domain::Page;

use crate::HttpConfig;
use crate::dto::ListQuery;
use crate::error::ApiError;
use crate::extract::int_param;

/// One operation the app serves.
pub(crate) struct RouteDef {
    pub method: Method,
    /// The full path, spelled as in the OpenAPI document (`/api/v1/products/{id}`).
    pub path: &'static str,
    pub route: fn() -> actix_web::Route,
    /// Whether these settings serve it.
    pub enabled: fn(&HttpConfig) -> bool,
}

fn always(_: &HttpConfig) -> bool {
    true
}

/// Every operation the app serves, and the only place routes are added: the app registers
/// exactly these, and a test checks that they are exactly the operations of the OpenAPI
/// document. Paths under [`crate::API_PREFIX`] are mounted in the rate-limited API scope.
///
/// Order matters: a literal segment (`/orders/my`) must come before a parameter in the
/// same position (`/orders/{id}`), which would otherwise capture it.
pub(crate) fn table() -> Vec<RouteDef> {
    vec![
        RouteDef {
            method: Method::GET,
            path: "/api/v1/categories",
            route: || web::get().to(catalog::list_categories),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/api/v1/categories/{id}",
            route: || web::get().to(catalog::get_category),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/api/v1/products",
            route: || web::get().to(catalog::list_products),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/api/v1/products/{id}",
            route: || web::get().to(catalog::get_product),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/api/v1/users/me",
            route: || web::get().to(users::me),
            enabled: always,
        },
        RouteDef {
            method: Method::POST,
            path: "/api/v1/orders",
            route: || web::post().to(orders::create),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/api/v1/orders/my",
            route: || web::get().to(orders::list_mine),
            enabled: always,
        },
        RouteDef {
            method: Method::POST,
            path: "/api/v1/orders/{id}/cancel",
            route: || web::post().to(orders::cancel_mine),
            enabled: always,
        },
        RouteDef {
            method: Method::POST,
            path: "/api/v1/orders/{id}/invoice",
            route: || web::post().to(orders::invoice),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/api/v1/admin/orders",
            route: || web::get().to(admin::list_orders),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/api/v1/admin/orders/{id}",
            route: || web::get().to(admin::get_order),
            enabled: always,
        },
        RouteDef {
            method: Method::POST,
            path: "/api/v1/admin/orders/{id}/status",
            route: || web::post().to(admin::change_order_status),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/api/v1/admin/categories",
            route: || web::get().to(admin::list_categories),
            enabled: always,
        },
        RouteDef {
            method: Method::POST,
            path: "/api/v1/admin/categories",
            route: || web::post().to(admin::create_category),
            enabled: always,
        },
        RouteDef {
            method: Method::PATCH,
            path: "/api/v1/admin/categories/{id}",
            route: || web::patch().to(admin::update_category),
            enabled: always,
        },
        RouteDef {
            method: Method::DELETE,
            path: "/api/v1/admin/categories/{id}",
            route: || web::delete().to(admin::delete_category),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/api/v1/admin/products",
            route: || web::get().to(admin::list_products),
            enabled: always,
        },
        RouteDef {
            method: Method::POST,
            path: "/api/v1/admin/products",
            route: || web::post().to(admin::create_product),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/api/v1/admin/products/{id}",
            route: || web::get().to(admin::get_product),
            enabled: always,
        },
        RouteDef {
            method: Method::PATCH,
            path: "/api/v1/admin/products/{id}",
            route: || web::patch().to(admin::update_product),
            enabled: always,
        },
        RouteDef {
            method: Method::DELETE,
            path: "/api/v1/admin/products/{id}",
            route: || web::delete().to(admin::delete_product),
            enabled: always,
        },
        RouteDef {
            method: Method::PUT,
            path: "/api/v1/admin/products/{id}/stock",
            route: || web::put().to(admin::set_stock),
            enabled: always,
        },
        RouteDef {
            method: Method::POST,
            path: "/api/v1/admin/products/{id}/stock/adjustments",
            route: || web::post().to(admin::adjust_stock),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/api/v1/admin/catalog/export",
            route: || web::get().to(admin::export_catalog),
            enabled: always,
        },
        RouteDef {
            method: Method::POST,
            path: "/api/v1/admin/catalog/import",
            route: || web::post().to(admin::import_catalog),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/api/v1/admin/stats",
            route: || web::get().to(admin::stats),
            enabled: always,
        },
        RouteDef {
            method: Method::POST,
            path: "/api/v1/admin/images",
            route: || web::post().to(media::upload_image),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/api/v1/admin/audit",
            route: || web::get().to(admin::list_audit),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/api/v1/orders/{id}",
            route: || web::get().to(orders::get_mine),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/static/demo/{name}",
            route: || web::get().to(assets::demo_asset),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/media/{name}",
            route: || web::get().to(media::get_media),
            enabled: always,
        },
        RouteDef {
            method: Method::POST,
            path: "/telegram/webhook",
            route: || web::post().to(telegram::webhook),
            enabled: |config| config.telegram_webhook,
        },
        RouteDef {
            method: Method::GET,
            path: "/health",
            route: || web::get().to(ops::health),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/ready",
            route: || web::get().to(ops::ready),
            enabled: always,
        },
        RouteDef {
            method: Method::GET,
            path: "/metrics",
            route: || web::get().to(ops::metrics),
            enabled: |config| config.expose_metrics,
        },
    ]
}

/// The paging window of a collection, for the OpenAPI document only: handlers read
/// [`ListQuery`], which keeps values as text so that a bad one gets a 422 naming it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct PageParams {
    /// Page size, 1–500; 100 when absent.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// How many matches to skip, at most 1 000 000 000; 0 when absent.
    #[param(minimum = 0, maximum = 1_000_000_000)]
    offset: Option<u64>,
}

/// The `limit`/`offset` window of a collection request.
pub(crate) fn page(query: &ListQuery) -> Result<Page, ApiError> {
    page_of(query.limit.as_deref(), query.offset.as_deref())
}

/// The window of `limit` and `offset` as sent, each named when it is not an integer.
pub(crate) fn page_of(limit: Option<&str>, offset: Option<&str>) -> Result<Page, ApiError> {
    let limit = int_param("limit", limit)?;
    let offset = int_param("offset", offset)?;
    Page::parse(limit, offset).map_err(ApiError::Validation)
}

/// A positive integer id from the path, named when it is not one.
pub(crate) fn path_id(raw: &str) -> Result<i64, ApiError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::validation(
            "id",
            "invalid_id",
            "id must be a positive integer",
        )),
    }
}
