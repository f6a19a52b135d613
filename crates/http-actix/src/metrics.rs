//! Prometheus metrics, served as text at `/metrics`.
//!
//! The `prometheus` crate (TiKV's, without its protobuf feature) does the bookkeeping and
//! the exposition format: label escaping, histogram buckets and the text encoding are
//! easy to get subtly wrong by hand, and it is a small dependency once protobuf is off.
//!
//! One [`Metrics`] is built per process and shared by every actix worker, so counters are
//! not split per worker. Labels are bounded: routes are patterns (`/api/v1/products/{id}`,
//! or `<unmatched>`), methods a fixed set, statuses the three-digit code.

use std::time::Duration;

use actix_web::http::Method;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use time::OffsetDateTime;

use crate::ApiState;

/// How long a scrape waits for the outbox counts before serving the last known values.
pub(crate) const OUTBOX_COUNTS_TIMEOUT: Duration = Duration::from_secs(1);

/// The route label of requests that matched no route.
pub(crate) const UNMATCHED_ROUTE: &str = "<unmatched>";

/// Every metric BotShop exports.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
    orders_created: IntCounter,
    outbox_events: IntGaugeVec,
    outbox_oldest_pending_age: Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "botshop_http_requests_total",
                "HTTP requests by route pattern, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "botshop_http_request_duration_seconds",
                "HTTP request latency by route pattern and method",
            ),
            &["route", "method"],
        )?;
        let pool_connections = IntGaugeVec::new(
            Opts::new(
                "botshop_db_pool_connections",
                "Database pool connections by state (in_use, idle)",
            ),
            &["state"],
        )?;
        let pool_max = IntGauge::new(
            "botshop_db_pool_max_connections",
            "The database pool's maximum size",
        )?;
        let orders_created = IntCounter::new(
            "botshop_orders_created_total",
            "Orders placed through the API since start",
        )?;
        let outbox_events = IntGaugeVec::new(
            Opts::new(
                "botshop_outbox_events",
                "Manager notifications in the outbox by state (pending, dead)",
            ),
            &["state"],
        )?;
        let outbox_oldest_pending_age = Gauge::new(
            "botshop_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered manager notification, 0 when none",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("botshop_build_info", "The running BotShop version"),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(pool_connections.clone()))?;
        registry.register(Box::new(pool_max.clone()))?;
        registry.register(Box::new(orders_created.clone()))?;
        registry.register(Box::new(outbox_events.clone()))?;
        registry.register(Box::new(outbox_oldest_pending_age.clone()))?;
        registry.register(Box::new(build_info))?;
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            pool_connections,
            pool_max,
            orders_created,
            outbox_events,
            outbox_oldest_pending_age,
        })
    }

    /// Counts one finished request.
    pub(crate) fn observe_request(
        &self,
        route: &str,
        method: &Method,
        status: u16,
        elapsed: Duration,
    ) {
        let method = method_label(method);
        self.http_requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[route, method])
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn order_created(&self) {
        self.orders_created.inc();
    }

    /// Reads the gauges that live elsewhere (the pool, the outbox) and encodes everything.
    /// A slow or failing outbox query does not fail the scrape: its gauges keep their last
    /// values, and the failure is logged.
    pub(crate) async fn render(&self, state: &ApiState) -> Result<String, prometheus::Error> {
        let pool = state.storage.pool_stats();
        self.pool_connections
            .with_label_values(&["in_use"])
            .set(i64::from(pool.in_use));
        self.pool_connections
            .with_label_values(&["idle"])
            .set(i64::from(pool.idle));
        self.pool_max.set(i64::from(pool.max));

        match tokio::time::timeout(OUTBOX_COUNTS_TIMEOUT, state.outbox.counts()).await {
            Ok(Ok(counts)) => {
                self.outbox_events
                    .with_label_values(&["pending"])
                    .set(saturating_i64(counts.pending));
                self.outbox_events
                    .with_label_values(&["dead"])
                    .set(saturating_i64(counts.dead));
                let age = counts.oldest_pending.map_or(0.0, |oldest| {
                    (OffsetDateTime::now_utc() - oldest)
                        .as_seconds_f64()
                        .max(0.0)
                });
                self.outbox_oldest_pending_age.set(age);
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "metrics: could not count outbox events");
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = OUTBOX_COUNTS_TIMEOUT.as_millis() as u64,
                    "metrics: counting outbox events timed out"
                );
            }
        }

        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Standard methods by name; anything else is one label, so that a client inventing
/// methods cannot create new series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
