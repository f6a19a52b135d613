//! Logging and error tracking: tracing everywhere, JSON lines in production, readable text
//! in development; with `SENTRY_DSN`, error-level events and panics are reported to Sentry
//! too, tagged with the request id and route and scrubbed of secrets and personal data.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use secrecy::ExposeSecret;
use sentry::protocol::Event;
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{DatabaseTarget, LogFormat, Settings};

/// The filter when RUST_LOG is unset: our crates at info, chatty drivers at warn. (sqlx
/// logs every statement at info.)
const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,actix_server=warn";

/// The release every Sentry event names.
pub const RELEASE: &str = concat!("botshop@", env!("CARGO_PKG_VERSION"));

/// Keeps error tracking alive: dropping it (at the end of `main`) sends what is queued.
pub struct Telemetry {
    _sentry: Option<sentry::ClientInitGuard>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("sentry", &self._sentry.is_some())
            .finish()
    }
}

/// Starts error tracking when `SENTRY_DSN` is set, then installs the global subscriber
/// (level from RUST_LOG). Keep the returned guard for the life of the process.
pub fn init(settings: &Settings) -> Telemetry {
    // Sentry first, so that the process's main hub has the client before any thread starts.
    let sentry = settings.sentry_dsn.as_ref().map(|dsn| {
        let environment = if settings.server.debug {
            "development"
        } else {
            "production"
        };
        sentry::init(sentry_options(
            dsn.dsn().clone(),
            environment,
            Scrubber::from_settings(settings),
        ))
    });
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let fmt = tracing_subscriber::fmt::layer()
        .with_span_events(FmtSpan::NONE)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let fmt = match settings.log_format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            // The request span carries request_id: every line of a request names it.
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    // RUST_LOG filters the log lines only: errors reach Sentry whatever it says.
    let subscriber = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(sentry.is_some().then(sentry_layer));
    // A second init (tests spawning several apps) is harmless: keep the first subscriber.
    let _ = subscriber.try_init();
    Telemetry { _sentry: sentry }
}

/// The Sentry client's options: the release, no default personal data, no breadcrumbs (the
/// log lines before an error stay in the logs), and every event tagged and scrubbed by
/// [`before_send`].
pub fn sentry_options(
    dsn: sentry::types::Dsn,
    environment: &'static str,
    scrubber: Scrubber,
) -> sentry::ClientOptions {
    let scrubber = Arc::new(scrubber);
    let mut options = sentry::ClientOptions::new();
    options.dsn = Some(dsn);
    options.release = Some(Cow::Borrowed(RELEASE));
    options.environment = Some(Cow::Borrowed(environment));
    options.send_default_pii = false;
    options.max_breadcrumbs = 0;
    options.before_send = Some(Arc::new(move |event| before_send(&scrubber, event)));
    options
}

/// The tracing side of error tracking: every error-level event becomes a Sentry event
/// (warnings and below do not), and the `request` span's id and route are remembered so
/// that [`before_send`] can tag the event with them.
pub fn sentry_layer<S>() -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let request_spans = filter_fn(|metadata| metadata.is_span() && metadata.name() == "request")
        .with_max_level_hint(tracing::Level::ERROR);
    RequestTagsLayer.with_filter(request_spans).and_then(
        sentry::integrations::tracing::ErrorLayer::new()
            .with_filter(LevelFilter::ERROR)
            .with_filter(filter_fn(|metadata| !is_client_noise(metadata.target()))),
    )
}

/// Errors actix's HTTP/1 codec logs about a client's malformed request ("request parse
/// error: invalid Header provided"): anyone can cause them at will, so reporting them
/// would let a client flood error tracking. They stay in the log.
fn is_client_noise(target: &str) -> bool {
    target.starts_with("actix_http::h1")
}

/// Tags the event with the request it happened in, then scrubs it. Sentry calls this on the
/// thread that captures the event — inside the request's span, for a 5xx's error line as
/// for a handler's panic — so the request is the one this thread is running.
fn before_send(scrubber: &Scrubber, mut event: Event<'static>) -> Option<Event<'static>> {
    if let Some(request) = current_request() {
        event
            .tags
            .insert("request_id".to_owned(), request.request_id.clone());
        event.tags.insert("route".to_owned(), request.route.clone());
    }
    scrubber.scrub(event)
}

/// The fields of a `request` span (http-actix's middleware opens one per request).
#[derive(Debug, Default)]
struct RequestTags {
    request_id: String,
    route: String,
}

impl Visit for RequestTags {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl RequestTags {
    fn record(&mut self, field: &Field, value: String) {
        match field.name() {
            "request_id" => self.request_id = value,
            "route" => self.route = value,
            _ => {}
        }
    }
}

thread_local! {
    /// The request spans this thread is inside, innermost last.
    static CURRENT_REQUESTS: RefCell<Vec<(Id, Arc<RequestTags>)>> = const { RefCell::new(Vec::new()) };
}

fn current_request() -> Option<Arc<RequestTags>> {
    CURRENT_REQUESTS.with(|stack| stack.borrow().last().map(|(_, tags)| Arc::clone(tags)))
}

/// Records each `request` span's id and route, and which of them the thread is inside.
struct RequestTagsLayer;

impl<S> Layer<S> for RequestTagsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut tags = RequestTags::default();
        attrs.record(&mut tags);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Arc::new(tags));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(tags) = span.extensions().get::<Arc<RequestTags>>() {
            let entry = (id.clone(), Arc::clone(tags));
            CURRENT_REQUESTS.with(|stack| stack.borrow_mut().push(entry));
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        CURRENT_REQUESTS.with(|stack| {
            let mut stack = stack.borrow_mut();
            if let Some(position) = stack.iter().rposition(|(entered, _)| entered == id) {
                stack.remove(position);
            }
        });
    }
}

/// What an event may not carry to Sentry, whatever produced it.
const FILTERED: &str = "[Filtered]";

/// Field names whose values are personal data or credentials, matched as substrings of the
/// lower-cased name with `-` read as `_`.
const SENSITIVE_NAMES: &[&str] = &[
    "init_data",
    "initdata",
    "phone",
    "address",
    "comment",
    "authorization",
    "cookie",
    "token",
    "password",
    "secret",
    "dsn",
];

/// Markers of Telegram initData in free text: a string holding one is dropped whole.
const INIT_DATA_MARKERS: &[&str] = &["auth_date=", "hash=", "tma "];

/// Removes secrets and personal data from an event before it leaves the process: the
/// request, user and breadcrumbs wholesale (nothing of ours sets them; an integration
/// might), the values of fields named like personal data in the free-form parts (tags,
/// extra, contexts), any string that looks like initData, and every occurrence of the
/// configured secrets (the bot token, the database password) anywhere in the event.
#[derive(Debug, Default)]
pub struct Scrubber {
    secrets: Vec<String>,
}

impl Scrubber {
    /// Scrubs the given secret values (blank ones and very short ones are ignored: they
    /// would match everywhere).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|secret| secret.trim().len() >= 6)
            .collect();
        // Longest first, so that a secret containing another is replaced whole.
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// The configured secrets: the bot token (and its secret half), the database URL and
    /// its password.
    pub fn from_settings(settings: &Settings) -> Self {
        let token = settings.bot_token.expose().to_owned();
        let mut secrets = vec![token.clone()];
        if let Some((_, secret_half)) = token.split_once(':') {
            secrets.push(secret_half.to_owned());
        }
        if let DatabaseTarget::Url(url) = settings.database.target() {
            let url = url.expose_secret().to_owned();
            if let Some(password) = url_password(&url) {
                secrets.push(password.to_owned());
            }
            secrets.push(url);
        }
        Self::new(secrets)
    }

    /// The scrubbed event; `None` (the event is not sent) if it cannot be examined.
    pub fn scrub(&self, event: Event<'static>) -> Option<Event<'static>> {
        let mut value = serde_json::to_value(&event).ok()?;
        let object = value.as_object_mut()?;
        for wholesale in ["request", "user", "breadcrumbs"] {
            object.remove(wholesale);
        }
        for free_form in ["tags", "extra", "contexts"] {
            if let Some(part) = object.get_mut(free_form) {
                filter_sensitive_names(part);
            }
        }
        self.filter_strings(&mut value);
        serde_json::from_value(value).ok()
    }

    fn filter_strings(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) => {
                if INIT_DATA_MARKERS.iter().any(|marker| text.contains(marker)) {
                    *text = FILTERED.to_owned();
                    return;
                }
                for secret in &self.secrets {
                    if text.contains(secret.as_str()) {
                        *text = text.replace(secret.as_str(), FILTERED);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                items.iter_mut().for_each(|item| self.filter_strings(item))
            }
            serde_json::Value::Object(map) => {
                map.values_mut().for_each(|item| self.filter_strings(item))
            }
            _ => {}
        }
    }
}

fn filter_sensitive_names(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (name, item) in map.iter_mut() {
                let name = name.to_ascii_lowercase().replace('-', "_");
                if SENSITIVE_NAMES
                    .iter()
                    .any(|sensitive| name.contains(sensitive))
                {
                    *item = serde_json::Value::String(FILTERED.to_owned());
                } else {
                    filter_sensitive_names(item);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(filter_sensitive_names),
        _ => {}
    }
}

/// The password in `scheme://user:password@host/...`, if any.
fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let (user_info, _) = rest.rsplit_once('@')?;
    let (_, password) = user_info.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sentry::protocol::{Context as SentryContext, Value};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const TOKEN: &str = "123456:TELEGRAM-SECRET_token";

    fn options() -> sentry::ClientOptions {
        let dsn = "http://public@127.0.0.1:9/1".parse().unwrap();
        // `with_captured_events_options` swaps in a transport that sends nothing.
        sentry_options(dsn, "production", Scrubber::new([TOKEN.to_owned()]))
    }

    /// Runs `f` with the server's Sentry layer as the thread's subscriber and a client
    /// capturing events, and returns the events.
    fn captured(f: impl FnOnce()) -> Vec<Event<'static>> {
        let subscriber = tracing_subscriber::registry().with(sentry_layer());
        sentry::test::with_captured_events_options(
            || tracing::subscriber::with_default(subscriber, f),
            options(),
        )
    }

    #[test]
    fn an_error_inside_a_request_is_reported_with_its_request_id_route_and_release() {
        let events = captured(|| {
            let span = tracing::error_span!(
                "request",
                request_id = %"req-42",
                route = %"/api/v1/orders"
            );
            let _entered = span.enter();
            tracing::warn!("a warning is not an event");
            tracing::error!(error = "the database said no", "request failed");
        });
        assert_eq!(events.len(), 1, "{events:#?}");
        let event = &events[0];
        assert_eq!(event.level, sentry::Level::Error);
        assert_eq!(event.message.as_deref(), Some("request failed"));
        assert_eq!(
            event.tags.get("request_id").map(String::as_str),
            Some("req-42")
        );
        assert_eq!(
            event.tags.get("route").map(String::as_str),
            Some("/api/v1/orders")
        );
        assert_eq!(event.release.as_deref(), Some(RELEASE));
        assert_eq!(event.environment.as_deref(), Some("production"));
    }

    #[test]
    fn a_clients_malformed_request_logged_by_actix_is_not_reported() {
        let events = captured(|| {
            tracing::error!(
                target: "actix_http::h1::dispatcher",
                "stream error: request parse error: invalid Header provided"
            );
            tracing::error!(target: "actix_server::accept", "can not accept connection");
        });
        assert_eq!(events.len(), 1, "{events:#?}");
        assert_eq!(
            events[0].message.as_deref(),
            Some("can not accept connection")
        );
    }

    #[test]
    fn an_error_outside_a_request_has_no_request_tags() {
        let events = captured(|| {
            {
                let span = tracing::error_span!("request", request_id = %"gone", route = %"/x");
                let _entered = span.enter();
            }
            tracing::error!("the relay crashed");
        });
        assert_eq!(events.len(), 1);
        assert!(!events[0].tags.contains_key("request_id"), "{events:#?}");
    }

    #[test]
    fn a_panic_inside_a_request_is_reported_with_its_request_id() {
        let events = captured(|| {
            let span = tracing::error_span!(
                "request",
                request_id = %"req-panic",
                route = %"/api/v1/orders/{id}"
            );
            let _entered = span.enter();
            // What the panic integration's hook does with a panic.
            let integration = sentry::integrations::panic::PanicIntegration::new();
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                sentry::capture_event(integration.event_from_panic_info(info));
            }));
            let _ = std::panic::catch_unwind(|| panic!("handler bug with {TOKEN}"));
            std::panic::set_hook(previous);
        });
        assert_eq!(events.len(), 1, "{events:#?}");
        let event = &events[0];
        assert_eq!(
            event.tags.get("request_id").map(String::as_str),
            Some("req-panic")
        );
        let text = serde_json::to_string(event).unwrap();
        assert!(text.contains("handler bug with [Filtered]"), "{text}");
        assert!(!text.contains("TELEGRAM-SECRET"), "{text}");
    }

    #[test]
    fn scrubbing_removes_secrets_personal_fields_init_data_and_request_data() {
        let mut event = Event {
            message: Some(format!(
                "could not call https://api.telegram.org/bot{TOKEN}/x"
            )),
            ..Default::default()
        };
        event.tags.insert("route".into(), "/api/v1/orders".into());
        event.tags.insert("phone".into(), "+79001234567".into());
        event.extra.insert(
            "init_data".into(),
            Value::from("query_id=1&user=%7B%7D&auth_date=1&hash=ab"),
        );
        event
            .extra
            .insert("note".into(), Value::from("tma query_id=1&hash=abc"));
        let mut fields = BTreeMap::new();
        fields.insert("delivery_address".into(), Value::from("ул. Пушкина, д. 10"));
        fields.insert("Comment".into(), Value::from("Домофон не работает"));
        fields.insert("Authorization".into(), Value::from("tma xyz"));
        fields.insert("status".into(), Value::from(500));
        event
            .contexts
            .insert("Rust Tracing Fields".into(), SentryContext::Other(fields));
        event.user = Some(sentry::User {
            ip_address: Some(sentry::protocol::IpAddress::Exact(
                "203.0.113.9".parse().unwrap(),
            )),
            ..Default::default()
        });
        event.request = Some(sentry::protocol::Request {
            data: Some("{\"phone\":\"+79001234567\"}".into()),
            ..Default::default()
        });

        let scrubbed = Scrubber::new([TOKEN.to_owned()]).scrub(event).unwrap();
        let text = serde_json::to_string(&scrubbed).unwrap();
        for personal in [
            "TELEGRAM-SECRET",
            "+79001234567",
            "Пушкина",
            "Домофон",
            "hash=",
            "203.0.113.9",
            "tma ",
        ] {
            assert!(!text.contains(personal), "{personal} in {text}");
        }
        // What is not personal survives.
        assert_eq!(scrubbed.tags["route"], "/api/v1/orders");
        assert_eq!(
            scrubbed.message.as_deref(),
            Some("could not call https://api.telegram.org/bot[Filtered]/x")
        );
        assert!(text.contains("\"status\":500"), "{text}");
        assert!(scrubbed.user.is_none() && scrubbed.request.is_none());
    }

    #[test]
    fn the_database_password_and_url_are_secrets() {
        assert_eq!(
            url_password("postgres://shop:hunter22@db:5432/x"),
            Some("hunter22")
        );
        assert_eq!(url_password("postgres://shop@db/x"), None);
        assert_eq!(url_password("sqlite://botshop.db"), None);
        let scrubber = Scrubber::new(["postgres://shop:hunter22@db/x".into(), "hunter22".into()]);
        let event = Event {
            message: Some("auth failed for hunter22".into()),
            ..Default::default()
        };
        let scrubbed = scrubber.scrub(event).unwrap();
        assert_eq!(
            scrubbed.message.as_deref(),
            Some("auth failed for [Filtered]")
        );
    }
}
