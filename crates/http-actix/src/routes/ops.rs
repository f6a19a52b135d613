//! What operators and orchestrators call: liveness, readiness and metrics. These live
//! outside `/api/v1` and are neither rate limited nor authenticated; keep `/metrics` off
//! the public internet at the reverse proxy, or turn it off.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::ApiState;
use crate::dto::StatusDto;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// How long `/ready` waits for the database.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// Liveness.
///
/// The process is up and serving. It touches nothing, so a slow database never gets a
/// healthy process restarted.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses((status = 200, description = "The process is serving", body = StatusDto))
)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(StatusDto { status: "ok" })
}

/// Readiness.
///
/// The database answers a ping within 1 s. A 503 takes the instance out of the load
/// balancer; the process keeps running and recovers by itself.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = StatusDto),
        (status = 503, response = crate::openapi::NotReady),
    )
)]
pub async fn ready(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, state.storage.ping()).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(StatusDto { status: "ok" })),
        Ok(Err(error)) => Err(ApiError::NotReady(Some(error))),
        Err(_) => Err(ApiError::NotReady(None)),
    }
}

/// Prometheus metrics.
///
/// The text exposition format. Served only when metrics are exposed (otherwise 404, and
/// absent from this document). A scrape queries nothing: the outbox gauges are read from
/// the database every few seconds by a background task, and
/// `botshop_outbox_gauges_age_seconds` says how long ago.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format, version 0.0.4",
            body = String, content_type = "text/plain; version=0.0.4",
            example = "# TYPE botshop_orders_created_total counter\nbotshop_orders_created_total 3\n"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn metrics(
    state: web::Data<ApiState>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let text = metrics
        .render(state.storage.pool_stats())
        .map_err(|error| ApiError::Internal(Box::new(error)))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, prometheus::TEXT_FORMAT))
        .body(text))
}
