//! The inbound HTTP adapter: BotShop's REST API on actix-web.
//!
//! It owns the routes, the `tma` authentication extractor, the serde DTOs and the mapping
//! of every error to `application/problem+json`, and everything that wraps the API in
//! production: the OpenAPI document and its Swagger UI, the health, readiness and metrics
//! endpoints, request ids, CORS and rate limiting.
//!
//! It depends on `domain` only: it talks to storage and Telegram through the domain's ports
//! and never knows which adapters sit behind them. It reads no environment and no files;
//! the server passes an [`HttpConfig`].
//!
//! # Serving it
//!
//! Build one [`Http`] per process, then one app per actix worker from it. The limiters and
//! the metrics live in the `Http` and are shared by every worker:
//!
//! ```no_run
//! # fn wire(state: http_actix::ApiState, config: http_actix::HttpConfig) -> anyhow::Result<()> {
//! let http = http_actix::Http::new(state, config)?;
//! let server = actix_web::HttpServer::new(move || http.app());
//! # Ok(()) }
//! ```
//!
//! # Routes
//!
//! - `/api/v1/...`: the shop's API, limited per client address; see [`API_PREFIX`].
//! - `/health` (liveness, no I/O), `/ready` (a database ping, 1 s timeout) and, when
//!   [`HttpConfig::expose_metrics`], `/metrics` (Prometheus text, no I/O: run
//!   [`Http::outbox_gauges`] in the background to keep its outbox gauges fresh).
//! - `/docs/` (Swagger UI, embedded in the binary) and `/api-docs/openapi.json` (the
//!   OpenAPI 3.1 document of everything above).

mod catalog_cache;
pub mod config;
pub mod dto;
pub mod error;
pub mod extract;
mod metrics;
mod middleware;
pub mod openapi;
mod rate_limit;
mod routes;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderValue;
use actix_web::http::{Method, header};
use actix_web::{App, HttpRequest, HttpResponse, ResponseError, web};
use domain::ports::{CatalogRepository, OrderRepository, Outbox, StorageProbe};
use domain::services::authenticate::Authenticator;
use domain::services::place_order::OrderService;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::catalog_cache::CatalogCache;
pub use crate::config::{CorsMode, HttpConfig, HttpSettings, TrustedProxy};
use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;
use crate::metrics::Metrics;
pub use crate::metrics::{OUTBOX_GAUGES_REFRESH_INTERVAL, OutboxGauges};
pub use crate::middleware::X_REQUEST_ID;
use crate::rate_limit::{ClientKey, RateLimiter};
pub use crate::routes::assets::{DEMO_ASSETS, DEMO_ASSETS_PATH};
pub use crate::routes::listing::X_TOTAL_COUNT;
pub use crate::routes::media::MEDIA_PATH;
pub use crate::routes::panel::ADMIN_PANEL_PATH;

/// Every API route lives under this prefix.
pub const API_PREFIX: &str = "/api/v1";

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api-docs/openapi.json";

/// Where Swagger UI is served (`/docs` redirects here).
pub const DOCS_PATH: &str = "/docs/";

/// How long a browser may cache a CORS preflight answer: one preflight per hour instead of
/// one per request, which matters on a phone.
const CORS_MAX_AGE_SECS: usize = 3600;

/// What the handlers need: the ports and services, built by the server's wiring.
#[derive(Clone)]
pub struct ApiState {
    pub catalog: Arc<dyn CatalogRepository>,
    pub orders: Arc<dyn OrderRepository>,
    /// Status changes and their history (`domain::lifecycle`).
    pub lifecycle: Arc<dyn domain::ports::OrderLifecycle>,
    /// Woken after a change that wrote outbox events, so the relay sends them at once.
    pub relay_wake: Arc<tokio::sync::Notify>,
    /// The bot behind `POST /telegram/webhook`, with the secret Telegram must send; `None`
    /// when there is no webhook.
    pub telegram: Option<TelegramWebhook>,
    pub order_service: OrderService,
    /// Invoices for orders paid online (`PAYMENTS`).
    pub payments: domain::payments::PaymentService,
    pub authenticator: Authenticator,
    /// Who may use the admin API.
    pub admin_auth: domain::admin::AdminAuthenticator,
    /// Every customer's orders, for the admin API.
    pub order_admin: Arc<dyn domain::ports::OrderAdmin>,
    /// Catalog changes through the admin API.
    pub catalog_admin: Arc<dyn domain::ports::CatalogAdmin>,
    /// The record of admin changes.
    pub audit: Arc<dyn domain::ports::AuditLog>,
    /// The sums behind the admin's reports.
    pub stats: Arc<dyn domain::ports::StatsRepository>,
    /// Uploaded pictures: the upload use case and where they are read back from.
    pub media: domain::media::MediaService,
    /// The absolute URL stored pictures are served under, ending in `/media/`
    /// (`PUBLIC_BASE_URL` + [`routes::media::MEDIA_PATH`]); `None` when the shop's public
    /// address is not known (uploads are refused then).
    pub media_url: Option<String>,
    /// The admin panel's development sign-in: the demo token's signer, set only in the
    /// local embedded setup with the demo token (see [`routes::panel`]).
    pub dev_sign_in: Option<Arc<domain::auth::InitDataVerifier>>,
    /// Pinged by `/ready`; its pool occupancy is exported by `/metrics`.
    pub storage: Arc<dyn StorageProbe>,
    /// Counted for `/metrics` (pending and dead notifications) by [`OutboxGauges::run`],
    /// never by a scrape.
    pub outbox: Arc<dyn Outbox>,
}

/// The bot's webhook: the service that handles updates, and the secret they carry.
#[derive(Clone)]
pub struct TelegramWebhook {
    pub bot: domain::bot::BotService,
    pub secret: secrecy::SecretString,
}

impl std::fmt::Debug for TelegramWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramWebhook").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

/// The rate limiters, shared by every worker.
#[derive(Debug)]
pub(crate) struct Limits {
    /// `POST /orders`, per verified Telegram user.
    pub orders: RateLimiter<i64>,
    /// All of `/api/v1`, per client address.
    pub ip: RateLimiter<ClientKey>,
    /// `/api/v1/admin`, per admin ([`domain::admin::Admin::rate_key`]).
    pub admin: RateLimiter<i64>,
    pub trusted_proxies: Vec<TrustedProxy>,
    /// Set once `X-Forwarded-For` has come from an untrusted peer and that was logged.
    pub warned_untrusted_forwarding: AtomicBool,
}

/// The default of `ADMIN_RATE_LIMIT_PER_MINUTE`: requests one admin (a person, or the
/// API token) may make to `/api/v1/admin` per minute, all at once if they like: enough
/// for the admin panel and for a script syncing a catalog, a brake on a runaway loop.
pub const ADMIN_RATE_LIMIT_PER_MINUTE: u32 = 600;

/// The limiters' clock. Tokio's, so that tests can pause and advance time instead of
/// sleeping; outside tests it is the monotonic clock.
pub(crate) fn limiter_now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Drops the catalog answers a change made stale, in the process's catalog cache.
#[derive(Clone)]
pub struct CatalogInvalidator(web::Data<CatalogCache>);

impl std::fmt::Debug for CatalogInvalidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogInvalidator").finish_non_exhaustive()
    }
}

impl CatalogInvalidator {
    pub fn apply(&self, change: &domain::catalog_admin::CatalogChange) {
        match change {
            domain::catalog_admin::CatalogChange::Everything => self.0.clear(),
            domain::catalog_admin::CatalogChange::Products(ids) => {
                let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
                self.0.invalidate_products(&ids);
            }
        }
    }
}

/// The HTTP metrics could not be set up (a bug: their names are fixed).
#[derive(Debug, thiserror::Error)]
#[error("could not set up the HTTP metrics")]
pub struct HttpSetupError(#[source] Box<dyn std::error::Error + Send + Sync>);

/// The application, built once per process: it holds what every worker must share (the
/// rate limiters, the metrics, the OpenAPI document). Cloning it is cheap and shares all
/// of that.
#[derive(Clone)]
pub struct Http {
    state: web::Data<ApiState>,
    limits: web::Data<Limits>,
    metrics: web::Data<Metrics>,
    catalog_cache: web::Data<CatalogCache>,
    config: Arc<HttpConfig>,
    cors: CorsMode,
    /// Lower-case allowed origins, for O(1) checks.
    cors_origins: Arc<HashSet<String>>,
    openapi: Arc<utoipa::openapi::OpenApi>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Http {
    /// Builds the shared parts. Call once per process, before `HttpServer::new`.
    pub fn new(state: ApiState, config: HttpConfig) -> Result<Self, HttpSetupError> {
        let metrics = Metrics::new(Arc::clone(&state.outbox))
            .map_err(|error| HttpSetupError(Box::new(error)))?;
        let limits = Limits {
            orders: RateLimiter::new(
                config.order_rate_limit_per_minute,
                config.order_rate_limit_burst,
                config.rate_limit_max_keys,
            ),
            // A client may spend its whole minute at once, as governor's
            // `Quota::per_minute` does: opening the Mini App fires several requests.
            ip: RateLimiter::new(
                config.ip_rate_limit_per_minute,
                config.ip_rate_limit_per_minute,
                config.rate_limit_max_keys,
            ),
            admin: RateLimiter::new(
                config.admin_rate_limit_per_minute,
                config.admin_rate_limit_per_minute,
                config.rate_limit_max_keys,
            ),
            trusted_proxies: config.trusted_proxies.clone(),
            warned_untrusted_forwarding: AtomicBool::new(false),
        };
        let cors = config.cors_mode();
        let cors_origins = match &cors {
            CorsMode::AllowList(origins) => origins.iter().cloned().collect(),
            CorsMode::Closed | CorsMode::AnyOrigin => HashSet::new(),
        };
        let mut openapi = openapi::ApiDoc::openapi();
        // Operations these settings do not serve are not documented either (`/metrics`
        // when metrics are off), so the document stays exactly what is served.
        for route in routes::table() {
            if !(route.enabled)(&config) {
                remove_operation(&mut openapi, &route.method, route.path);
            }
        }
        Ok(Self {
            state: web::Data::new(state),
            limits: web::Data::new(limits),
            metrics: web::Data::new(metrics),
            catalog_cache: web::Data::new(CatalogCache::new(
                config.catalog_cache_ttl,
                config.catalog_cache_max_entries,
                config.catalog_cache_max_bytes,
            )),
            config: Arc::new(config),
            cors,
            cors_origins: Arc::new(cors_origins),
            openapi: Arc::new(openapi),
        })
    }

    /// The settings this app was built with.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// What drops this process's cached catalog answers when another instance announces
    /// a catalog change.
    pub fn catalog_invalidator(&self) -> CatalogInvalidator {
        CatalogInvalidator(self.catalog_cache.clone())
    }

    /// The outbox gauges `/metrics` serves, for the server to keep fresh with
    /// [`OutboxGauges::run`]; `None` when metrics are not exposed (nothing to refresh).
    pub fn outbox_gauges(&self) -> Option<OutboxGauges> {
        self.config
            .expose_metrics
            .then(|| self.metrics.outbox_gauges().clone())
    }

    /// Which cross-origin requests are allowed, for the start-up log.
    pub fn cors_mode(&self) -> &CorsMode {
        &self.cors
    }

    /// The OpenAPI document as served at [`OPENAPI_PATH`].
    pub fn openapi_json(&self) -> String {
        serde_json::to_string_pretty(self.openapi.as_ref()).unwrap_or_default()
    }

    /// Every operation served, as (method, path as in the OpenAPI document), besides the
    /// documentation itself ([`DOCS_PATH`], [`OPENAPI_PATH`]).
    pub fn operations(&self) -> Vec<(Method, &'static str)> {
        routes::table()
            .into_iter()
            .filter(|route| (route.enabled)(&self.config))
            .map(|route| (route.method, route.path))
            .collect()
    }

    /// One worker's app. Call it inside the `HttpServer::new` closure; every app shares
    /// this `Http`'s limiters and metrics.
    pub fn app(
        &self,
    ) -> App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl MessageBody + use<>>,
            Error = actix_web::Error,
            InitError = (),
        > + use<>,
    > {
        let mut api =
            web::scope(API_PREFIX).wrap(actix_web::middleware::from_fn(middleware::limit_by_ip));
        let mut root: Vec<actix_web::Resource> = Vec::new();
        for (path, routes) in group_by_path(
            routes::table()
                .into_iter()
                .filter(|route| (route.enabled)(&self.config)),
        ) {
            let (relative, in_api) = match path.strip_prefix(API_PREFIX) {
                Some(rest) => (rest, true),
                None => (path, false),
            };
            let mut resource = web::resource(relative);
            let mut methods: Vec<String> = Vec::new();
            for route in routes {
                methods.push(route.method.to_string());
                resource = resource.route((route.route)());
            }
            methods.sort_unstable();
            methods.dedup();
            // RFC 9110: a 405 says which methods the resource does support.
            let allow = HeaderValue::from_str(&methods.join(", "))
                .unwrap_or_else(|_| HeaderValue::from_static(""));
            let resource = resource.default_service(web::to(move || {
                let allow = allow.clone();
                async move { method_not_allowed(allow) }
            }));
            if in_api {
                api = api.service(resource);
            } else {
                root.push(resource);
            }
        }
        let docs = SwaggerUi::new(format!("{DOCS_PATH}{{_:.*}}"))
            .url(OPENAPI_PATH, self.openapi.as_ref().clone());

        let mut app = App::new()
            .app_data(self.state.clone())
            .app_data(self.limits.clone())
            .app_data(self.metrics.clone())
            .app_data(self.catalog_cache.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .app_data(web::QueryConfig::default().error_handler(|error, _| {
                ApiError::validation("query", "invalid_query", error.to_string()).into()
            }))
            .service(api);
        for resource in root {
            app = app.service(resource);
        }
        app.service(docs)
            .service(web::resource("/docs").route(web::get().to(redirect_to_docs)))
            // The admin panel (not API operations: not in the OpenAPI document).
            .service(web::resource("/admin").route(web::get().to(routes::panel::redirect)))
            .service(web::resource("/admin/").route(web::get().to(routes::panel::index)))
            .service(
                web::resource("/admin/dev-sign-in")
                    .route(web::get().to(routes::panel::dev_sign_in)),
            )
            .service(web::resource("/admin/{file:.+}").route(web::get().to(routes::panel::file)))
            .default_service(web::to(not_found))
            // The last `wrap` is the outermost: ids and logs see CORS answers too.
            .wrap(self.cors())
            .wrap(actix_web::middleware::from_fn(middleware::observe))
    }

    fn cors(&self) -> Cors {
        let cors = Cors::default()
            .allowed_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allowed_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("idempotency-key"),
                X_REQUEST_ID,
            ])
            .expose_headers([
                X_REQUEST_ID,
                header::LOCATION,
                header::RETRY_AFTER,
                header::ETAG,
                header::LINK,
                routes::listing::X_TOTAL_COUNT,
                routes::orders::IDEMPOTENT_REPLAYED,
            ])
            .max_age(CORS_MAX_AGE_SECS);
        match &self.cors {
            CorsMode::AnyOrigin => cors.allow_any_origin(),
            CorsMode::AllowList(_) => {
                let origins = Arc::clone(&self.cors_origins);
                cors.allowed_origin_fn(move |origin, _| {
                    origin
                        .to_str()
                        .is_ok_and(|origin| origins.contains(&origin.to_ascii_lowercase()))
                })
            }
            // No origin is allowed. Requests without CORS (same origin, curl) still work:
            // actix-cors only refuses preflights and leaves the CORS headers off the rest,
            // so browsers block the answer.
            CorsMode::Closed => cors,
        }
    }
}

/// Groups routes by path, keeping the table's order (which decides matching).
fn group_by_path(
    routes: impl Iterator<Item = routes::RouteDef>,
) -> Vec<(&'static str, Vec<routes::RouteDef>)> {
    let mut groups: Vec<(&'static str, Vec<routes::RouteDef>)> = Vec::new();
    for route in routes {
        match groups.iter_mut().find(|(path, _)| *path == route.path) {
            Some((_, group)) => group.push(route),
            None => groups.push((route.path, vec![route])),
        }
    }
    groups
}

fn remove_operation(openapi: &mut utoipa::openapi::OpenApi, method: &Method, path: &str) {
    let Some(item) = openapi.paths.paths.get_mut(path) else {
        return;
    };
    match *method {
        Method::GET => item.get = None,
        Method::POST => item.post = None,
        Method::PUT => item.put = None,
        Method::PATCH => item.patch = None,
        Method::DELETE => item.delete = None,
        _ => {}
    }
    let empty = [&item.get, &item.post, &item.put, &item.patch, &item.delete]
        .iter()
        .all(|operation| operation.is_none());
    if empty {
        openapi.paths.paths.remove(path);
    }
}

/// Answers any unknown route.
pub async fn not_found(_: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("Not found: no such path"))
}

/// The problem answer to a method the resource does not support, with its `Allow`.
fn method_not_allowed(allow: HeaderValue) -> HttpResponse {
    let mut response = ApiError::MethodNotAllowed.error_response();
    response.headers_mut().insert(header::ALLOW, allow);
    response
}

/// Swagger UI's assets are relative to `/docs/`, so `/docs` must become `/docs/`.
async fn redirect_to_docs() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, DOCS_PATH))
        .finish()
}
