//! The inbound HTTP adapter: BotShop's REST API on actix-web.
//!
//! It owns the routes, the `tma` authentication extractor, the serde DTOs and the mapping
//! of every error to `application/problem+json`. It depends on `domain` only: it talks to
//! storage and Telegram through the domain's ports and never knows which adapters sit
//! behind them.

pub mod dto;
pub mod error;
pub mod extract;
mod routes;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpRequest, HttpResponse, web};
use domain::ports::{CatalogRepository, OrderRepository};
use domain::services::{Authenticator, OrderService};

use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;

/// Every API route lives under this prefix.
pub const API_PREFIX: &str = "/api/v1";

/// What the handlers need: the ports and services, built by the server's wiring.
#[derive(Clone)]
pub struct ApiState {
    pub catalog: Arc<dyn CatalogRepository>,
    pub orders: Arc<dyn OrderRepository>,
    pub order_service: OrderService,
    pub authenticator: Authenticator,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

/// Registers the API under [`API_PREFIX`] with its state and input limits.
pub fn configure(state: ApiState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .app_data(web::QueryConfig::default().error_handler(|error, _| {
                ApiError::validation("query", "invalid_query", error.to_string()).into()
            }))
            .service(
                web::scope(API_PREFIX)
                    .service(
                        web::resource("/categories")
                            .route(web::get().to(routes::catalog::list_categories))
                            .default_service(web::to(method_not_allowed)),
                    )
                    .service(
                        web::resource("/products")
                            .route(web::get().to(routes::catalog::list_products))
                            .default_service(web::to(method_not_allowed)),
                    )
                    .service(
                        web::resource("/products/{id}")
                            .route(web::get().to(routes::catalog::get_product))
                            .default_service(web::to(method_not_allowed)),
                    )
                    .service(
                        web::resource("/users/me")
                            .route(web::get().to(routes::users::me))
                            .default_service(web::to(method_not_allowed)),
                    )
                    .service(
                        web::resource("/orders")
                            .route(web::post().to(routes::orders::create))
                            .default_service(web::to(method_not_allowed)),
                    )
                    .service(
                        web::resource("/orders/my")
                            .route(web::get().to(routes::orders::list_mine))
                            .default_service(web::to(method_not_allowed)),
                    )
                    .service(
                        web::resource("/orders/{id}")
                            .route(web::get().to(routes::orders::get_mine))
                            .default_service(web::to(method_not_allowed)),
                    ),
            );
    }
}

/// The whole application: the API plus problem+json answers for unknown routes.
pub fn app(
    state: ApiState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(actix_web::middleware::from_fn(log_request))
        .configure(configure(state))
        .default_service(web::to(not_found))
}

/// Answers any unknown route.
pub async fn not_found(_: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// One log line per request: method, route pattern (never the query, which is not ours to
/// log), status and latency.
async fn log_request(
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let response = next.call(req).await?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "<unmatched>".to_owned());
    tracing::info!(
        %method,
        route,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    Ok(response)
}
