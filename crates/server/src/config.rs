//! Configuration: typed, loaded once, validated at start-up.
//!
//! Sources, later ones winning: built-in defaults < `botshop.toml` (optional, lower-case
//! keys) < `.env` (optional) < the process environment (upper-case keys, the seed's names).
//! A bad value stops start-up with a message naming its key.
//!
//! Each key belongs to the crate that uses it, in a settings type whose field name IS the
//! key, lower case, with its default and its check: [`HttpSettings`] (http-actix),
//! [`TelegramSettings`] (infra-telegram), [`DatabaseSettings`] (infra-postgres),
//! [`MediaSettings`] (infra-media),
//! [`RelaySettings`] and [`AuthSettings`] (domain), and [`ServerSettings`] here for the
//! server's own keys. This module only reads the sources into each of them, derives the
//! list of accepted keys from their field names ([`keys`]), and applies the rules that span
//! several of them (DEBUG's demo token, the relay's lease from the Telegram timeout).

use std::path::Path;

use anyhow::Context;
use domain::outbox::RelayConfig;
use domain::settings::InvalidSetting;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use domain::auth::AuthSettings;
pub use domain::outbox::RelaySettings;
pub use domain::payments::{PaymentSettings, PaymentTerms};
pub use http_actix::HttpSettings;
pub use infra_media::{MediaSettings, MediaTarget};
pub use infra_postgres::{DatabaseSettings, DatabaseTarget};
pub use infra_telegram::{BotToken, TelegramSettings, UpdatesMode};
pub use secrecy::{ExposeSecret, SecretString};

/// The token used when DEBUG=true and none is configured, so the shop runs out of the box.
/// It is not a real bot's token: notifications are off with it.
pub const DEMO_BOT_TOKEN: &str = "123456789:DEMO-TOKEN-botshop-not-for-production";

/// The keys only the server reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    /// Development mode: allows the demo token and missing Telegram settings, opens CORS
    /// to any origin, and makes logs text by default.
    pub debug: bool,
    /// `json` or `text`; unset: text when DEBUG=true, else JSON.
    pub log_format: Option<String>,
    /// Lets DEBUG=true run outside the local embedded setup (see [`Settings::is_local`]).
    /// The demo token never does.
    pub allow_debug_outside_local: bool,
    /// The shop's own address as browsers reach it (`https://shop.example.com`), for the
    /// absolute URLs of pictures BotShop serves itself; unset: `http://HOST:PORT`.
    pub public_base_url: Option<String>,
    /// Where panics and 5xx errors are reported (`https://<key>@<host>/<project>`); unset or
    /// empty: error tracking is off. A secret, since anyone holding it can send events.
    pub sentry_dsn: Option<SecretString>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            debug: true,
            log_format: None,
            allow_debug_outside_local: false,
            public_base_url: None,
            sentry_dsn: None,
        }
    }
}

impl ServerSettings {
    /// The Sentry DSN, checked; `None` when unset or empty. The error names the key, never
    /// the value.
    pub fn sentry_dsn(&self) -> Result<Option<SentryDsn>, InvalidSetting> {
        let Some(dsn) = self.sentry_dsn.as_ref().map(ExposeSecret::expose_secret) else {
            return Ok(None);
        };
        let dsn = dsn.trim();
        if dsn.is_empty() {
            return Ok(None);
        }
        dsn.parse::<sentry::types::Dsn>()
            .map(|dsn| Some(SentryDsn(dsn)))
            .map_err(|error| {
                InvalidSetting::new(
                    "SENTRY_DSN",
                    format!(
                        "must be a Sentry DSN such as https://<key>@<host>/<project> ({error})"
                    ),
                )
            })
    }

    /// The log format, checked, defaulting by DEBUG.
    pub fn log_format(&self) -> Result<LogFormat, InvalidSetting> {
        match self
            .log_format
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") if self.debug => Ok(LogFormat::Text),
            None | Some("") => Ok(LogFormat::Json),
            Some("json") => Ok(LogFormat::Json),
            Some("text") => Ok(LogFormat::Text),
            Some(other) => Err(InvalidSetting::new(
                "LOG_FORMAT",
                format!("must be json or text, got {other:?}"),
            )),
        }
    }
}

/// Every settings type the server reads, in one place: adding one here is all it takes
/// for its keys to be read, accepted and checked against the documentation.
macro_rules! settings_types {
    ($callback:ident) => {
        $callback!(
            server: ServerSettings,
            auth: AuthSettings,
            database: DatabaseSettings,
            telegram: TelegramSettings,
            relay: RelaySettings,
            http: HttpSettings,
            media: MediaSettings,
            payments: PaymentSettings,
        )
    };
}

/// Every key the application reads, upper case as environment variables spell them:
/// the field names of the settings types.
pub fn keys() -> Vec<String> {
    lower_case_keys()
        .into_iter()
        .map(str::to_ascii_uppercase)
        .collect()
}

fn lower_case_keys() -> Vec<&'static str> {
    macro_rules! all_fields {
        ($($_name:ident: $type:ty,)*) => {
            [$(field_names::<$type>()),*].concat()
        };
    }
    settings_types!(all_fields)
}

/// The field names of a plain `#[derive(Deserialize)]` struct, as serde itself lists them:
/// a deserializer that only records what `deserialize_struct` is told, then stops.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(field_names::Recorder(&mut fields));
    fields
}

mod field_names {
    use serde::de::{Deserializer, Visitor};

    #[derive(Debug)]
    pub struct Stop;

    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names recorded")
        }
    }

    impl std::error::Error for Stop {}

    impl serde::de::Error for Stop {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Stop
        }
    }

    pub struct Recorder<'a>(pub &'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Recorder<'_> {
        type Error = Stop;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
}

/// A checked Sentry DSN. Its `Debug` hides it: the key in it lets anyone send events.
#[derive(Clone)]
pub struct SentryDsn(sentry::types::Dsn);

impl SentryDsn {
    pub fn dsn(&self) -> &sentry::types::Dsn {
        &self.0
    }
}

impl std::fmt::Debug for SentryDsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SentryDsn([redacted])")
    }
}

/// How the manager is notified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notifications {
    Telegram {
        chat_id: i64,
    },
    /// DEBUG=true without a real token or chat: orders are placed, nobody is told.
    Off {
        reason: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The validated configuration: each crate's settings, and what the server decided from
/// several of them.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub database: DatabaseSettings,
    pub telegram: TelegramSettings,
    pub relay: RelaySettings,
    pub http: HttpSettings,
    pub media: MediaSettings,
    pub payments: PaymentSettings,
    /// Where uploaded pictures are kept.
    pub media_target: MediaTarget,
    /// How orders are paid (`PAYMENTS`, checked against the bot it needs).
    pub payment_terms: PaymentTerms,
    /// How often unpaid orders past their deadline are looked for: not a key (30 s), so
    /// that tests can make it short.
    pub payment_expiry_interval: std::time::Duration,
    /// The configured token, or [`DEMO_BOT_TOKEN`] when DEBUG=true and none is set.
    pub bot_token: BotToken,
    /// True when `bot_token` is [`DEMO_BOT_TOKEN`] because none was configured.
    pub demo_token: bool,
    pub notifications: Notifications,
    /// How the bot receives updates: `TELEGRAM_UPDATES`, or its default.
    pub updates: UpdatesMode,
    pub log_format: LogFormat,
    /// Where errors are reported; `None`: error tracking is off.
    pub sentry_dsn: Option<SentryDsn>,
}

/// Each settings type as read from the sources, before the rules that span several.
#[derive(Debug, Default)]
struct Parts {
    server: ServerSettings,
    auth: AuthSettings,
    database: DatabaseSettings,
    telegram: TelegramSettings,
    relay: RelaySettings,
    http: HttpSettings,
    media: MediaSettings,
    payments: PaymentSettings,
}

/// `TELEGRAM_UPDATES`, checked against what it needs, or the default: `webhook` with a
/// webhook secret, `polling` for a configured bot without one, `off` otherwise.
fn updates_mode(
    configured: Option<UpdatesMode>,
    has_webhook_secret: bool,
    has_bot: bool,
) -> anyhow::Result<UpdatesMode> {
    match configured {
        Some(UpdatesMode::Webhook) if !has_webhook_secret => anyhow::bail!(
            "invalid configuration: TELEGRAM_UPDATES=webhook needs TELEGRAM_WEBHOOK_SECRET"
        ),
        Some(UpdatesMode::Polling) if !has_bot => anyhow::bail!(
            "invalid configuration: TELEGRAM_UPDATES=polling needs TELEGRAM_BOT_TOKEN and \
             MANAGER_CHAT_ID"
        ),
        Some(mode) => Ok(mode),
        None if has_webhook_secret => Ok(UpdatesMode::Webhook),
        None if has_bot => Ok(UpdatesMode::Polling),
        None => Ok(UpdatesMode::Off),
    }
}

/// Payments need a real bot that receives its updates (Telegram's pre-checkout queries and
/// payments arrive as updates), and a provider's token for `provider`.
fn check_payments(
    terms: &PaymentTerms,
    telegram: &TelegramSettings,
    notifications: &Notifications,
    updates: UpdatesMode,
) -> anyhow::Result<()> {
    use domain::payments::PaymentMode;
    if terms.mode == PaymentMode::Off {
        return Ok(());
    }
    let mode = terms.mode.name();
    if !matches!(notifications, Notifications::Telegram { .. }) {
        anyhow::bail!(
            "invalid configuration: PAYMENTS={mode} needs TELEGRAM_BOT_TOKEN and MANAGER_CHAT_ID"
        );
    }
    if updates == UpdatesMode::Off {
        anyhow::bail!(
            "invalid configuration: PAYMENTS={mode} needs the bot to receive updates \
             (TELEGRAM_UPDATES=webhook or polling): payments arrive as updates"
        );
    }
    if matches!(terms.mode, PaymentMode::Provider(_)) && telegram.payment_provider_token().is_none()
    {
        anyhow::bail!(
            "invalid configuration: PAYMENTS=provider needs PAYMENT_PROVIDER_TOKEN (from \
             BotFather: Payments)"
        );
    }
    Ok(())
}

fn invalid(error: InvalidSetting) -> anyhow::Error {
    anyhow::anyhow!("invalid configuration: {error}")
}

impl Settings {
    /// Loads from `botshop.toml` and `.env` in the working directory, then the environment.
    pub fn load() -> anyhow::Result<Self> {
        // .env fills the process environment without overriding what is already set, so
        // real environment variables win over it.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(e).context("could not read .env"),
        }
        Self::from_figment(Self::figment(Path::new("botshop.toml")))
    }

    /// The built-in defaults alone (development mode, embedded SQLite, demo token): a
    /// starting point for tests and tools that then adjust fields.
    pub fn defaults() -> anyhow::Result<Self> {
        Self::validate(Parts::default())
    }

    fn figment(toml: &Path) -> Figment {
        let keys = lower_case_keys();
        // Keys no source sets take their settings type's `Default`.
        Figment::from(Toml::file(toml)).merge(
            Env::raw()
                .only(&keys)
                .map(|key| key.as_str().to_ascii_lowercase().into()),
        )
    }

    fn from_figment(figment: Figment) -> anyhow::Result<Self> {
        fn extract<T: DeserializeOwned>(figment: &Figment) -> anyhow::Result<T> {
            // figment names the key and where its value came from.
            figment
                .extract()
                .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
        }
        macro_rules! read_parts {
            ($($name:ident: $_type:ty,)*) => {
                Parts { $($name: extract(&figment)?,)* }
            };
        }
        Self::validate(settings_types!(read_parts))
    }

    fn validate(parts: Parts) -> anyhow::Result<Self> {
        let Parts {
            server,
            auth,
            database,
            telegram,
            relay,
            http,
            media,
            payments,
        } = parts;
        let payment_terms = payments.terms().map_err(invalid)?;
        database.validate().map_err(invalid)?;
        telegram.validate().map_err(invalid)?;
        auth.validate().map_err(invalid)?;
        http.validate().map_err(invalid)?;
        relay.validate().map_err(invalid)?;
        let media_target = media.target().map_err(invalid)?;
        let log_format = server.log_format().map_err(invalid)?;
        if let Some(url) = server.public_base_url.as_deref().map(str::trim)
            && !url.is_empty()
        {
            check_public_base_url(url).map_err(invalid)?;
        }
        let sentry_dsn = server.sentry_dsn().map_err(invalid)?;

        // The demo token (anyone can sign initData with it) and development mode are for
        // the local embedded setup only: a shop that keeps its data in PostgreSQL, or
        // listens beyond this machine, must have its own token and say DEBUG=false.
        if !is_local(&database, &http) {
            if telegram.telegram_bot_token.is_none() {
                anyhow::bail!(
                    "invalid configuration: TELEGRAM_BOT_TOKEN is required when DATABASE_URL is \
                     set or HOST is not a loopback address (the demo token is for the local \
                     embedded setup only)"
                );
            }
            if server.debug && !server.allow_debug_outside_local {
                anyhow::bail!(
                    "invalid configuration: DEBUG=true is for the local embedded setup only \
                     (no DATABASE_URL, HOST a loopback address); set DEBUG=false, or \
                     ALLOW_DEBUG_OUTSIDE_LOCAL=true to run development mode here anyway"
                );
            }
        }

        // DEBUG decides what a missing token or chat means.
        let (bot_token, demo_token, notifications) = match (
            telegram.telegram_bot_token.clone(),
            telegram.manager_chat_id,
        ) {
            (Some(token), Some(chat_id)) => (token, false, Notifications::Telegram { chat_id }),
            _ if !server.debug => anyhow::bail!(
                "invalid configuration: TELEGRAM_BOT_TOKEN and MANAGER_CHAT_ID are required when DEBUG=false"
            ),
            (Some(token), None) => (
                token,
                false,
                Notifications::Off {
                    reason: "MANAGER_CHAT_ID is not set",
                },
            ),
            (None, _) => (
                BotToken::new(DEMO_BOT_TOKEN).context("the demo token is malformed")?,
                true,
                Notifications::Off {
                    reason: "TELEGRAM_BOT_TOKEN is not set (using the demo token)",
                },
            ),
        };

        if http.webhook_secret().is_some()
            && !matches!(notifications, Notifications::Telegram { .. })
        {
            anyhow::bail!(
                "invalid configuration: TELEGRAM_WEBHOOK_SECRET needs TELEGRAM_BOT_TOKEN and \
                 MANAGER_CHAT_ID: the bot answers through them"
            );
        }
        let updates = updates_mode(
            telegram.telegram_updates,
            http.webhook_secret().is_some(),
            matches!(notifications, Notifications::Telegram { .. }),
        )?;
        check_payments(&payment_terms, &telegram, &notifications, updates)?;

        Ok(Self {
            server,
            auth,
            database,
            telegram,
            relay,
            http,
            media,
            payments,
            media_target,
            payment_terms,
            payment_expiry_interval: std::time::Duration::from_secs(30),
            bot_token,
            demo_token,
            notifications,
            updates,
            log_format,
            sentry_dsn,
        })
    }

    /// Whether this is the local embedded setup: no `DATABASE_URL` (the embedded SQLite
    /// file) and a loopback `HOST`. Only there may the demo token and DEBUG=true run.
    pub fn is_local(&self) -> bool {
        is_local(&self.database, &self.http)
    }

    /// The shop's address for absolute URLs: `PUBLIC_BASE_URL` (checked at start-up)
    /// without a trailing `/`, or
    /// `http://HOST:PORT`.
    pub fn public_base_url(&self) -> String {
        match &self.server.public_base_url {
            Some(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
            _ => {
                let host = self.http.host.trim();
                let host = match host.parse::<std::net::IpAddr>() {
                    Ok(std::net::IpAddr::V6(_)) => format!("[{host}]"),
                    _ => host.to_owned(),
                };
                format!("http://{host}:{}", self.http.port)
            }
        }
    }

    /// The shop's address for URLs that are stored or sent away (uploaded pictures, the
    /// admin panel's button): `PUBLIC_BASE_URL`, or in the local setup `http://HOST:PORT`.
    /// `None` elsewhere without `PUBLIC_BASE_URL`: `http://0.0.0.0:8000` in a container is
    /// nobody's address.
    pub fn known_public_base_url(&self) -> Option<String> {
        let configured = self
            .server
            .public_base_url
            .as_deref()
            .is_some_and(|url| !url.trim().is_empty());
        (configured || self.is_local()).then(|| self.public_base_url())
    }

    /// Whether DEBUG=true opens CORS to any origin: only when no origins are configured.
    pub fn cors_allows_any_origin(&self) -> bool {
        self.server.debug && self.http.cors_allowed_origins.is_empty()
    }

    /// How the notification relay paces itself: a send may take the whole Telegram
    /// timeout plus a little, and a claim outlives any send.
    pub fn relay_config(&self) -> RelayConfig {
        let send_timeout = self.telegram.timeout() + std::time::Duration::from_secs(2);
        self.relay.relay_config(send_timeout)
    }
}

/// An absolute http(s) URL with no query or fragment: picture URLs are built by appending
/// paths to it.
fn check_public_base_url(url: &str) -> Result<(), InvalidSetting> {
    let refuse = |why: &str| InvalidSetting::new("PUBLIC_BASE_URL", why.to_owned());
    if !domain::values::is_absolute_http_url(url) {
        return Err(refuse(
            "must be an absolute http:// or https:// URL, such as https://shop.example.com",
        ));
    }
    if url.contains(['?', '#']) {
        return Err(refuse("must not have a query or a fragment"));
    }
    Ok(())
}

/// See [`Settings::is_local`].
fn is_local(database: &DatabaseSettings, http: &HttpSettings) -> bool {
    let embedded = matches!(database.target(), DatabaseTarget::EmbeddedSqlite(_));
    let host = http.host.trim();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    embedded && loopback
}

#[cfg(test)]
// figment::Jail closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use figment::Jail;
    use time::UtcOffset;

    use super::*;

    fn load_in(jail: &Jail) -> anyhow::Result<Settings> {
        Settings::from_figment(Settings::figment(&jail.directory().join("botshop.toml")))
    }

    #[test]
    fn nothing_configured_means_debug_with_embedded_sqlite_and_demo_token() {
        Jail::expect_with(|jail| {
            let s = load_in(jail).unwrap();
            assert!(s.server.debug);
            assert!(
                matches!(s.database.target(), DatabaseTarget::EmbeddedSqlite(path) if path == "botshop.db")
            );
            assert!(s.demo_token);
            assert!(matches!(s.notifications, Notifications::Off { .. }));
            assert_eq!((s.http.host.as_str(), s.http.port), ("127.0.0.1", 8000));
            assert_eq!(
                s.telegram.notify_utc_offset,
                UtcOffset::from_hms(3, 0, 0).unwrap()
            );
            assert_eq!(s.auth.max_age(), time::Duration::seconds(86_400));
            assert_eq!(s.log_format, LogFormat::Text);
            Ok(())
        });
    }

    #[test]
    fn the_seeds_variable_names_work_unchanged() {
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "postgres://shop@db/botshop");
            jail.set_env("TELEGRAM_BOT_TOKEN", "123456:ABC-DEF_ghi");
            jail.set_env("MANAGER_CHAT_ID", "-1001234567890");
            jail.set_env("DEBUG", "false");
            jail.set_env("NOTIFY_UTC_OFFSET", "+05:00");
            let s = load_in(jail).unwrap();
            assert!(matches!(
                s.database.target(),
                DatabaseTarget::Url(url) if url.expose_secret() == "postgres://shop@db/botshop"
            ));
            assert_eq!(
                s.notifications,
                Notifications::Telegram {
                    chat_id: -1_001_234_567_890
                }
            );
            assert!(!s.server.debug && !s.demo_token);
            assert_eq!(
                s.telegram.notify_utc_offset,
                UtcOffset::from_hms(5, 0, 0).unwrap()
            );
            assert_eq!(
                s.log_format,
                LogFormat::Json,
                "production logs default to JSON lines"
            );
            Ok(())
        });
    }

    #[test]
    fn environment_beats_dotenv_beats_toml_beats_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "botshop.toml",
                "port = 9000\nhost = \"0.0.0.0\"\ndatabase_max_connections = 3\n",
            )?;
            jail.set_env("PORT", "9100");
            // Listening beyond this machine: production settings.
            jail.set_env("DEBUG", "false");
            jail.set_env("TELEGRAM_BOT_TOKEN", "123456:ABC-DEF_ghi");
            jail.set_env("MANAGER_CHAT_ID", "42");
            let s = load_in(jail).unwrap();
            assert_eq!(s.http.port, 9100, "environment wins over the file");
            assert_eq!(s.http.host, "0.0.0.0", "the file wins over defaults");
            assert_eq!(s.database.database_max_connections, 3);
            Ok(())
        });
    }

    /// The demo token and DEBUG=true are for the local embedded setup only.
    #[test]
    fn outside_the_local_setup_a_token_is_required_and_debug_refused() {
        Jail::expect_with(|jail| {
            // PostgreSQL, DEBUG left at its default and no token: refused, naming the key.
            jail.set_env("DATABASE_URL", "postgres://shop@db/botshop");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("TELEGRAM_BOT_TOKEN"), "{error}");
            assert!(!error.contains("DEMO"), "{error}");

            // With a token, DEBUG=true (the default) is still refused there...
            jail.set_env("TELEGRAM_BOT_TOKEN", "123456:ABC-DEF_ghi");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("DEBUG=true"), "{error}");
            // ...unless explicitly allowed.
            jail.set_env("ALLOW_DEBUG_OUTSIDE_LOCAL", "true");
            let s = load_in(jail).unwrap();
            assert!(s.server.debug && !s.demo_token && !s.is_local());
            Ok(())
        });
        Jail::expect_with(|jail| {
            // The embedded database, listening on every interface: the same rules.
            jail.set_env("HOST", "0.0.0.0");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("TELEGRAM_BOT_TOKEN"), "{error}");
            jail.set_env("TELEGRAM_BOT_TOKEN", "123456:ABC-DEF_ghi");
            jail.set_env("MANAGER_CHAT_ID", "42");
            jail.set_env("DEBUG", "false");
            assert!(load_in(jail).is_ok());
            Ok(())
        });
        Jail::expect_with(|jail| {
            // Loopback spellings are local: zero configuration keeps working.
            for host in ["127.0.0.1", "localhost", "::1", "127.0.0.2"] {
                jail.set_env("HOST", host);
                let s = load_in(jail).unwrap();
                assert!(s.is_local() && s.demo_token, "{host}");
            }
            Ok(())
        });
    }

    #[test]
    fn debug_never_overrides_configured_cors_origins() {
        Jail::expect_with(|jail| {
            let s = load_in(jail).unwrap();
            assert!(
                s.cors_allows_any_origin(),
                "DEBUG=true and no origins: any origin"
            );
            jail.set_env("CORS_ALLOWED_ORIGINS", "https://shop.example.com");
            let s = load_in(jail).unwrap();
            assert!(s.server.debug);
            assert!(!s.cors_allows_any_origin());
            assert!(
                !s.http
                    .config(s.cors_allows_any_origin())
                    .cors_allow_any_origin
            );
            Ok(())
        });
    }

    #[test]
    fn production_requires_token_and_chat() {
        Jail::expect_with(|jail| {
            jail.set_env("DEBUG", "false");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(
                error.contains("TELEGRAM_BOT_TOKEN") && error.contains("MANAGER_CHAT_ID"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_names_its_key() {
        Jail::expect_with(|jail| {
            jail.set_env("PORT", "eighty");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.to_ascii_lowercase().contains("port"), "{error}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("NOTIFY_UTC_OFFSET", "Moscow");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("NOTIFY_UTC_OFFSET"), "{error}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("MANAGER_CHAT_ID", "boss");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(
                error.to_ascii_lowercase().contains("manager_chat_id"),
                "{error}"
            );
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("TELEGRAM_BOT_TOKEN", "not a token");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(
                error.contains("TELEGRAM_BOT_TOKEN") && !error.contains("not a token"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn sentry_is_off_unless_a_valid_dsn_is_set() {
        Jail::expect_with(|jail| {
            assert!(load_in(jail).unwrap().sentry_dsn.is_none(), "unset: off");
            jail.set_env("SENTRY_DSN", "");
            assert!(load_in(jail).unwrap().sentry_dsn.is_none(), "empty: off");
            jail.set_env("SENTRY_DSN", "http://public@127.0.0.1:9999/1");
            let settings = load_in(jail).unwrap();
            let dsn = settings.sentry_dsn.unwrap();
            assert_eq!(dsn.dsn().project_id().value(), "1");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("SENTRY_DSN", "https://sentry.example.com/not-a-project");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("SENTRY_DSN"), "{error}");
            assert!(!error.contains("sentry.example.com"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn cors_origins_and_trusted_proxies_are_lists() {
        Jail::expect_with(|jail| {
            jail.set_env(
                "CORS_ALLOWED_ORIGINS",
                "https://shop.example.com, https://t.example.org/",
            );
            jail.set_env("TRUSTED_PROXIES", "10.0.0.1, ::1, 172.16.0.0/12, fd00::/8");
            let s = load_in(jail).unwrap();
            assert_eq!(
                s.http.cors_allowed_origins,
                ["https://shop.example.com", "https://t.example.org"]
            );
            assert_eq!(s.http.trusted_proxies.len(), 4);
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("CORS_ALLOWED_ORIGINS", "shop.example.com");
            assert!(
                load_in(jail)
                    .unwrap_err()
                    .to_string()
                    .contains("CORS_ALLOWED_ORIGINS")
            );
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("TRUSTED_PROXIES", "10.0.0.0/8, 172.16.0.0/33");
            assert!(
                load_in(jail)
                    .unwrap_err()
                    .to_string()
                    .contains("TRUSTED_PROXIES")
            );
            Ok(())
        });
    }

    #[test]
    fn limits_and_timeouts_have_production_defaults() {
        Jail::expect_with(|jail| {
            let s = load_in(jail).unwrap();
            assert_eq!(
                (
                    s.http.order_rate_limit_per_minute,
                    s.http.ip_rate_limit_per_minute
                ),
                (10, 300)
            );
            assert_eq!(
                s.database.statement_timeout(),
                std::time::Duration::from_secs(5)
            );
            assert_eq!(
                s.database.acquire_timeout(),
                std::time::Duration::from_secs(5)
            );
            assert_eq!(
                s.http.shutdown_timeout(),
                std::time::Duration::from_secs(30)
            );
            assert!(s.http.metrics_enabled && s.http.cors_allowed_origins.is_empty());
            let relay = s.relay_config();
            assert_eq!(relay.poll_interval, std::time::Duration::from_millis(500));
            assert_eq!(relay.max_attempts, 20);
            assert_eq!(relay.send_timeout, std::time::Duration::from_secs(12));
            assert_eq!(relay.lease, std::time::Duration::from_secs(24));
            Ok(())
        });
    }

    #[test]
    fn secrets_do_not_print() {
        Jail::expect_with(|jail| {
            jail.set_env("TELEGRAM_BOT_TOKEN", "123456:SUPERSECRET");
            jail.set_env("DATABASE_URL", "postgres://u:hunter2@db/x");
            jail.set_env("DEBUG", "false");
            jail.set_env("MANAGER_CHAT_ID", "42");
            jail.set_env("SENTRY_DSN", "https://dsnkey0123@sentry.example.com/7");
            let settings = load_in(jail).unwrap();
            assert!(settings.sentry_dsn.is_some());
            let printed = format!("{settings:?}");
            assert!(
                !printed.contains("SUPERSECRET")
                    && !printed.contains("hunter2")
                    && !printed.contains("dsnkey0123"),
                "{printed}"
            );
            Ok(())
        });
    }

    #[test]
    fn public_base_url_defaults_to_host_and_port_and_must_be_absolute_http() {
        Jail::expect_with(|jail| {
            assert_eq!(
                load_in(jail).unwrap().public_base_url(),
                "http://127.0.0.1:8000"
            );
            jail.set_env("HOST", "::1");
            jail.set_env("PORT", "9000");
            assert_eq!(
                load_in(jail).unwrap().public_base_url(),
                "http://[::1]:9000"
            );
            jail.set_env("PUBLIC_BASE_URL", "https://shop.example.com/");
            assert_eq!(
                load_in(jail).unwrap().public_base_url(),
                "https://shop.example.com"
            );
            jail.set_env("PUBLIC_BASE_URL", "");
            assert_eq!(
                load_in(jail).unwrap().public_base_url(),
                "http://[::1]:9000"
            );
            for bad in [
                "shop.example.com",
                "ftp://shop",
                "https://shop.example.com/?a=1",
            ] {
                jail.set_env("PUBLIC_BASE_URL", bad);
                let error = load_in(jail).unwrap_err().to_string();
                assert!(error.contains("PUBLIC_BASE_URL"), "{bad}: {error}");
            }
            Ok(())
        });
    }

    #[test]
    fn a_webhook_needs_a_valid_secret_and_a_bot_that_can_answer() {
        Jail::expect_with(|jail| {
            jail.set_env("TELEGRAM_WEBHOOK_SECRET", "has spaces!");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("TELEGRAM_WEBHOOK_SECRET"), "{error}");
            assert!(
                !error.contains("has spaces"),
                "the value never shows: {error}"
            );
            // Valid, but in development with no token or chat: nobody could answer.
            jail.set_env("TELEGRAM_WEBHOOK_SECRET", "s3cret_webhook-TOKEN");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("TELEGRAM_WEBHOOK_SECRET"), "{error}");
            jail.set_env("TELEGRAM_BOT_TOKEN", "123456:ABC-DEF_ghi");
            jail.set_env("MANAGER_CHAT_ID", "42");
            let settings = load_in(jail).unwrap();
            assert_eq!(settings.http.webhook_secret(), Some("s3cret_webhook-TOKEN"));
            assert!(settings.http.config(false).telegram_webhook);
            assert_eq!(settings.updates, UpdatesMode::Webhook);
            jail.set_env("MINI_APP_URL", "http://shop.example.com");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("MINI_APP_URL"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn the_bot_polls_by_default_and_takes_a_webhook_when_it_has_the_secret() {
        Jail::expect_with(|jail| {
            // The local demo: no bot, nothing to receive.
            assert_eq!(load_in(jail).unwrap().updates, UpdatesMode::Off);
            jail.set_env("TELEGRAM_UPDATES", "polling");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("TELEGRAM_UPDATES=polling"), "{error}");

            jail.set_env("TELEGRAM_UPDATES", "");
            jail.set_env("TELEGRAM_BOT_TOKEN", "123456:ABC-DEF_ghi");
            jail.set_env("MANAGER_CHAT_ID", "42");
            assert_eq!(load_in(jail).unwrap().updates, UpdatesMode::Polling);
            jail.set_env("TELEGRAM_UPDATES", "webhook");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("TELEGRAM_WEBHOOK_SECRET"), "{error}");
            jail.set_env("TELEGRAM_UPDATES", "sometimes");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("TELEGRAM_UPDATES"), "{error}");

            jail.set_env("TELEGRAM_WEBHOOK_SECRET", "s3cret_webhook-TOKEN");
            jail.set_env("TELEGRAM_UPDATES", " ");
            assert_eq!(load_in(jail).unwrap().updates, UpdatesMode::Webhook);
            for (value, mode) in [
                ("Polling", UpdatesMode::Polling),
                ("off", UpdatesMode::Off),
                ("WEBHOOK", UpdatesMode::Webhook),
            ] {
                jail.set_env("TELEGRAM_UPDATES", value);
                assert_eq!(load_in(jail).unwrap().updates, mode, "{value}");
            }
            Ok(())
        });
    }

    #[test]
    fn the_admin_api_token_is_long_or_refused_at_start_up() {
        Jail::expect_with(|jail| {
            assert!(load_in(jail).unwrap().auth.admin_api_token.is_none());
            jail.set_env("ADMIN_API_TOKEN", "too-short-secret");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("ADMIN_API_TOKEN"), "{error}");
            assert!(
                !error.contains("too-short-secret"),
                "the value never shows: {error}"
            );
            jail.set_env("ADMIN_API_TOKEN", "  ");
            assert!(load_in(jail).unwrap().auth.admin_api_token.is_none());
            let token = "a-long-enough-admin-api-token-0123456789";
            jail.set_env("ADMIN_API_TOKEN", token);
            let settings = load_in(jail).unwrap();
            assert!(settings.auth.admin_api_token.unwrap().matches(token));
            Ok(())
        });
    }

    #[test]
    fn admin_ids_are_a_list_however_spelled() {
        Jail::expect_with(|jail| {
            for (raw, ids) in [("7", vec![7]), ("1, 2,3", vec![1, 2, 3]), ("", vec![])] {
                jail.set_env("ADMIN_TELEGRAM_IDS", raw);
                assert_eq!(load_in(jail).unwrap().auth.admin_telegram_ids, ids, "{raw}");
            }
            for bad in ["-5", "abc", "1,x"] {
                jail.set_env("ADMIN_TELEGRAM_IDS", bad);
                let error = load_in(jail).unwrap_err().to_string();
                assert!(
                    error.to_ascii_uppercase().contains("ADMIN_TELEGRAM_IDS"),
                    "{bad}: {error}"
                );
            }
            Ok(())
        });
    }

    #[test]
    fn pictures_go_to_media_dir_or_to_a_complete_s3_configuration() {
        Jail::expect_with(|jail| {
            assert!(matches!(
                load_in(jail).unwrap().media_target,
                MediaTarget::Local(dir) if dir == Path::new("media")
            ));
            jail.set_env("MEDIA_S3_BUCKET", "shop-pictures");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("MEDIA_S3_ENDPOINT"), "{error}");
            jail.set_env("MEDIA_S3_ENDPOINT", "https://storage.yandexcloud.net");
            jail.set_env("MEDIA_S3_REGION", "ru-central1");
            jail.set_env("MEDIA_S3_ACCESS_KEY_ID", "YCAJE-key-id");
            jail.set_env("MEDIA_S3_SECRET_ACCESS_KEY", "YCP-very-secret-value");
            let settings = load_in(jail).unwrap();
            let MediaTarget::S3(s3) = &settings.media_target else {
                panic!("expected S3");
            };
            assert_eq!(s3.bucket, "shop-pictures");
            assert_eq!(s3.region, "ru-central1");
            assert!(!format!("{settings:?}").contains("YCP-very-secret-value"));
            Ok(())
        });
    }

    #[test]
    fn payments_are_off_by_default_and_each_mode_needs_what_it_uses() {
        use domain::payments::PaymentMode;
        Jail::expect_with(|jail| {
            let settings = load_in(jail).unwrap();
            assert_eq!(settings.payment_terms.mode, PaymentMode::Off);
            assert_eq!(
                settings.payment_terms.timeout,
                std::time::Duration::from_secs(30 * 60)
            );
            // Payments need a real bot.
            jail.set_env("PAYMENTS", "stars");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(
                error.contains("PAYMENTS=stars needs TELEGRAM_BOT_TOKEN"),
                "{error}"
            );
            jail.set_env("TELEGRAM_BOT_TOKEN", "123456:ABC-DEF_ghi");
            jail.set_env("MANAGER_CHAT_ID", "42");
            assert_eq!(
                load_in(jail).unwrap().payment_terms.mode,
                PaymentMode::Stars
            );
            // ... that receives its updates.
            jail.set_env("TELEGRAM_UPDATES", "off");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("receive updates"), "{error}");
            jail.set_env("TELEGRAM_UPDATES", "polling");

            jail.set_env("PAYMENTS", "provider");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("PAYMENT_PROVIDER_TOKEN"), "{error}");
            jail.set_env(
                "PAYMENT_PROVIDER_TOKEN",
                "381764678:TEST:very-secret-provider",
            );
            let settings = load_in(jail).unwrap();
            let PaymentMode::Provider(currency) = settings.payment_terms.mode else {
                panic!("expected a provider");
            };
            assert_eq!(currency.code(), "RUB");
            assert!(!format!("{settings:?}").contains("very-secret-provider"));

            jail.set_env("PAYMENT_CURRENCY", "usd");
            assert!(load_in(jail).is_ok());
            jail.set_env("PAYMENT_CURRENCY", "XYZ");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("PAYMENT_CURRENCY"), "{error}");
            jail.set_env("PAYMENT_CURRENCY", "EUR");
            jail.set_env("PAYMENT_TIMEOUT_MINUTES", "0");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(error.contains("PAYMENT_TIMEOUT_MINUTES"), "{error}");
            jail.set_env("PAYMENT_TIMEOUT_MINUTES", "15");
            assert_eq!(
                load_in(jail).unwrap().payment_terms.timeout,
                std::time::Duration::from_secs(15 * 60)
            );
            jail.set_env("PAYMENTS", "cash");
            let error = load_in(jail).unwrap_err().to_string();
            assert!(
                error.contains("PAYMENTS must be off, provider or stars"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn the_keys_are_the_settings_field_names() {
        let keys = keys();
        assert_eq!(keys.len(), 46, "{keys:?}");
        let unique: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "two settings types share a key");
        for key in [
            "DATABASE_URL",
            "TELEGRAM_BOT_TOKEN",
            "DEBUG",
            "PORT",
            "CATALOG_CACHE_TTL",
            "OUTBOX_RETENTION_DAYS",
            "SENTRY_DSN",
            "MEDIA_DIR",
            "MEDIA_S3_SECRET_ACCESS_KEY",
            "PAYMENTS",
            "PAYMENT_PROVIDER_TOKEN",
            "PAYMENT_CURRENCY",
            "PAYMENT_TIMEOUT_MINUTES",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key}");
        }
    }
}
