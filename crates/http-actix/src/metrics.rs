//! Prometheus metrics, served as text at `/metrics`.
//!
//! The `prometheus` crate (TiKV's, without its protobuf feature) does the bookkeeping and
//! the exposition format: label escaping, histogram buckets and the text encoding are
//! easy to get subtly wrong by hand, and it is a small dependency once protobuf is off.
//!
//! One [`Metrics`] is built per process and shared by every actix worker, so counters are
//! not split per worker. Labels are bounded: routes are patterns (`/api/v1/products/{id}`,
//! or `<unmatched>`), methods a fixed set, statuses the three-digit code.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use domain::RepositoryError;
use domain::outbox::OutboxCounts;
use domain::ports::{Outbox, PoolStats};
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use time::OffsetDateTime;
use tokio::sync::watch;

/// How often [`OutboxGauges::run`] reads the outbox counts.
pub const OUTBOX_GAUGES_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// The route label of requests that matched no route.
pub(crate) const UNMATCHED_ROUTE: &str = "<unmatched>";

/// The outbox counts as last read, which `/metrics` serves.
///
/// A scrape never queries the database: anyone who can reach `/metrics` could otherwise
/// make it run a query per request. One background task ([`OutboxGauges::run`], started
/// by the server) reads the counts every [`OUTBOX_GAUGES_REFRESH_INTERVAL`] instead, and
/// `botshop_outbox_gauges_age_seconds` tells how old they are, so a refresher that stopped
/// (or a database that stopped answering it) shows. Cloning it shares the same values.
#[derive(Clone)]
pub struct OutboxGauges {
    outbox: Arc<dyn Outbox>,
    latest: Arc<Mutex<Latest>>,
}

#[derive(Debug, Clone)]
struct Latest {
    /// `None` until the first successful read.
    counts: Option<OutboxCounts>,
    /// When `counts` were read; until then, when these gauges were made.
    refreshed_at: Instant,
}

impl std::fmt::Debug for OutboxGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxGauges")
            .field("latest", &self.latest())
            .finish_non_exhaustive()
    }
}

impl OutboxGauges {
    fn new(outbox: Arc<dyn Outbox>) -> Self {
        Self {
            outbox,
            latest: Arc::new(Mutex::new(Latest {
                counts: None,
                refreshed_at: crate::limiter_now(),
            })),
        }
    }

    fn latest(&self) -> Latest {
        // Nothing panics while holding the lock; a poisoned one still holds whole values.
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the counts once. On failure the last values stay, and age.
    ///
    /// # Errors
    /// The outbox's error.
    pub async fn refresh_once(&self) -> Result<(), RepositoryError> {
        let counts = self.outbox.counts().await?;
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        *latest = Latest {
            counts: Some(counts),
            refreshed_at: crate::limiter_now(),
        };
        Ok(())
    }

    /// Refreshes the counts at once and then every `every`, until `stop` turns true (or
    /// its sender goes). A failure is logged when it starts and when it ends, not on every
    /// attempt while the database is away.
    pub async fn run(self, every: Duration, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            let result = tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => return,
                result = async {
                    ticks.tick().await;
                    self.refresh_once().await
                } => result,
            };
            match result {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("metrics: counting outbox events works again");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(
                        %error,
                        "metrics: could not count outbox events; the outbox gauges keep their \
                         last values (see botshop_outbox_gauges_age_seconds)"
                    );
                }
                Err(error) => tracing::debug!(%error, "metrics: still cannot count outbox events"),
            }
        }
    }
}

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
    outbox_gauges_age: Gauge,
    outbox_gauges: OutboxGauges,
}

impl Metrics {
    pub(crate) fn new(outbox: Arc<dyn Outbox>) -> Result<Self, prometheus::Error> {
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
        let outbox_gauges_age = Gauge::new(
            "botshop_outbox_gauges_age_seconds",
            "Seconds since the outbox gauges were read from the database (since start before the first read)",
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
        registry.register(Box::new(outbox_gauges_age.clone()))?;
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
            outbox_gauges_age,
            outbox_gauges: OutboxGauges::new(outbox),
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

    /// The outbox gauges' values, refreshed by [`OutboxGauges::run`].
    pub(crate) fn outbox_gauges(&self) -> &OutboxGauges {
        &self.outbox_gauges
    }

    /// Sets the gauges that live elsewhere — the pool (no I/O), the outbox counts as last
    /// read — and encodes everything. No database query: see [`OutboxGauges`].
    pub(crate) fn render(&self, pool: PoolStats) -> Result<String, prometheus::Error> {
        self.pool_connections
            .with_label_values(&["in_use"])
            .set(i64::from(pool.in_use));
        self.pool_connections
            .with_label_values(&["idle"])
            .set(i64::from(pool.idle));
        self.pool_max.set(i64::from(pool.max));

        let latest = self.outbox_gauges.latest();
        // Never read: the counts are simply absent, rather than a made-up zero.
        if let Some(counts) = &latest.counts {
            self.outbox_events
                .with_label_values(&["pending"])
                .set(saturating_i64(counts.pending));
            self.outbox_events
                .with_label_values(&["dead"])
                .set(saturating_i64(counts.dead));
            // Aged now, not when read: it keeps growing while the event waits.
            let age = counts.oldest_pending.map_or(0.0, |oldest| {
                (OffsetDateTime::now_utc() - oldest)
                    .as_seconds_f64()
                    .max(0.0)
            });
            self.outbox_oldest_pending_age.set(age);
        }
        self.outbox_gauges_age.set(
            crate::limiter_now()
                .saturating_duration_since(latest.refreshed_at)
                .as_secs_f64(),
        );

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
