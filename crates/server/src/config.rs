//! Configuration: typed, loaded once, validated at start-up.
//!
//! Sources, later ones winning: built-in defaults < `botshop.toml` (optional, lower-case
//! keys) < `.env` (optional) < the process environment (upper-case keys, the seed's names).
//! A bad value stops start-up with a message naming its key.

use std::path::Path;

use anyhow::{Context, bail};
use domain::outbox::RelayConfig;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
pub use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::UtcOffset;
use time::macros::format_description;

/// The token used when DEBUG=true and none is configured, so the shop runs out of the box.
/// It is not a real bot's token: notifications are off with it.
pub const DEMO_BOT_TOKEN: &str = "123456789:DEMO-TOKEN-botshop-not-for-production";

/// Every key the application reads, as environment variables spell them.
pub const KEYS: &[&str] = &[
    "DATABASE_URL",
    "TELEGRAM_BOT_TOKEN",
    "MANAGER_CHAT_ID",
    "DEBUG",
    "HOST",
    "PORT",
    "INIT_DATA_MAX_AGE",
    "TELEGRAM_API_URL",
    "NOTIFY_UTC_OFFSET",
    "DATABASE_MAX_CONNECTIONS",
    "RUN_MIGRATIONS",
    "SQLITE_PATH",
    "LOG_FORMAT",
    "TELEGRAM_TIMEOUT_SECS",
    "OUTBOX_POLL_INTERVAL_MS",
    "OUTBOX_MAX_ATTEMPTS",
    "DATABASE_ACQUIRE_TIMEOUT_MS",
    "DATABASE_STATEMENT_TIMEOUT_MS",
    "CORS_ALLOWED_ORIGINS",
    "ORDER_RATE_LIMIT_PER_MINUTE",
    "ORDER_RATE_LIMIT_BURST",
    "IP_RATE_LIMIT_PER_MINUTE",
    "TRUSTED_PROXIES",
    "METRICS_ENABLED",
    "SHUTDOWN_TIMEOUT_SECS",
    "CATALOG_CACHE_TTL",
];

/// The raw settings as figment reads them, before cross-field validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct RawSettings {
    database_url: Option<SecretString>,
    telegram_bot_token: Option<SecretString>,
    manager_chat_id: Option<i64>,
    debug: bool,
    host: String,
    port: u16,
    init_data_max_age: u32,
    telegram_api_url: String,
    notify_utc_offset: String,
    database_max_connections: u32,
    run_migrations: bool,
    sqlite_path: String,
    log_format: Option<String>,
    telegram_timeout_secs: u32,
    outbox_poll_interval_ms: u32,
    outbox_max_attempts: u32,
    database_acquire_timeout_ms: u32,
    database_statement_timeout_ms: u32,
    cors_allowed_origins: String,
    order_rate_limit_per_minute: u32,
    order_rate_limit_burst: u32,
    ip_rate_limit_per_minute: u32,
    trusted_proxies: String,
    metrics_enabled: bool,
    shutdown_timeout_secs: u32,
    catalog_cache_ttl: u32,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self {
            database_url: None,
            telegram_bot_token: None,
            manager_chat_id: None,
            debug: true,
            host: "127.0.0.1".into(),
            port: 8000,
            init_data_max_age: 86_400,
            telegram_api_url: "https://api.telegram.org".into(),
            notify_utc_offset: "+03:00".into(),
            database_max_connections: 20,
            run_migrations: true,
            sqlite_path: "botshop.db".into(),
            log_format: None,
            telegram_timeout_secs: 10,
            outbox_poll_interval_ms: 500,
            outbox_max_attempts: 20,
            database_acquire_timeout_ms: 5_000,
            database_statement_timeout_ms: 5_000,
            cors_allowed_origins: String::new(),
            order_rate_limit_per_minute: 10,
            order_rate_limit_burst: 3,
            ip_rate_limit_per_minute: 300,
            trusted_proxies: String::new(),
            metrics_enabled: true,
            shutdown_timeout_secs: 30,
            catalog_cache_ttl: 5,
        }
    }
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum DatabaseTarget {
    /// Production: DATABASE_URL=postgres://...
    Url(SecretString),
    /// The embedded default when DATABASE_URL is unset: a SQLite file.
    EmbeddedSqlite(String),
}

impl DatabaseTarget {
    /// The connection URL. For SQLite, the file is created if missing.
    pub fn url(&self) -> String {
        match self {
            DatabaseTarget::Url(url) => url.expose_secret().to_owned(),
            DatabaseTarget::EmbeddedSqlite(path) => format!("sqlite://{path}?mode=rwc"),
        }
    }

    pub fn is_embedded(&self) -> bool {
        matches!(self, DatabaseTarget::EmbeddedSqlite(_))
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

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseTarget,
    pub bot_token: SecretString,
    /// True when `bot_token` is [`DEMO_BOT_TOKEN`] because none was configured.
    pub demo_token: bool,
    pub notifications: Notifications,
    pub debug: bool,
    pub host: String,
    pub port: u16,
    pub init_data_max_age: time::Duration,
    pub telegram_api_url: String,
    pub notify_utc_offset: UtcOffset,
    pub database_max_connections: u32,
    pub run_migrations: bool,
    pub log_format: LogFormat,
    /// How long one Telegram API call may take.
    pub telegram_timeout: std::time::Duration,
    /// How the notification relay paces itself.
    pub relay: RelayConfig,
    /// How long a query waits for a pooled connection before the request gets a 503.
    pub database_acquire_timeout: std::time::Duration,
    /// PostgreSQL cancels any statement running longer than this (the request gets a 503).
    pub database_statement_timeout: std::time::Duration,
    /// Exact origins allowed to call the API from a browser (the Mini App's domains).
    pub cors_allowed_origins: Vec<String>,
    pub order_rate_limit_per_minute: u32,
    pub order_rate_limit_burst: u32,
    pub ip_rate_limit_per_minute: u32,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub metrics_enabled: bool,
    /// How long in-flight requests may take to finish after SIGTERM or SIGINT.
    pub shutdown_timeout: std::time::Duration,
    /// How long catalog answers may be served from memory; zero turns the cache off.
    pub catalog_cache_ttl: std::time::Duration,
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
        Self::validate(RawSettings::default())
    }

    fn figment(toml: &Path) -> Figment {
        // Keys no source sets take `RawSettings::default()`.
        Figment::from(Toml::file(toml)).merge(
            Env::raw()
                .only(KEYS)
                .map(|key| key.as_str().to_ascii_lowercase().into()),
        )
    }

    fn from_figment(figment: Figment) -> anyhow::Result<Self> {
        let raw: RawSettings = figment.extract().map_err(|e| {
            // figment names the key and where its value came from.
            anyhow::anyhow!("invalid configuration: {e}")
        })?;
        Self::validate(raw)
    }

    fn validate(raw: RawSettings) -> anyhow::Result<Self> {
        let database = match raw.database_url {
            Some(url) if !url.expose_secret().trim().is_empty() => {
                let lower = url.expose_secret().to_ascii_lowercase();
                if !(lower.starts_with("postgres://")
                    || lower.starts_with("postgresql://")
                    || lower.starts_with("sqlite:"))
                {
                    bail!(
                        "invalid configuration: DATABASE_URL must start with postgres://, postgresql:// or sqlite:"
                    );
                }
                DatabaseTarget::Url(url)
            }
            _ => DatabaseTarget::EmbeddedSqlite(raw.sqlite_path.clone()),
        };

        let token = raw
            .telegram_bot_token
            .filter(|t| !t.expose_secret().trim().is_empty());
        if let Some(token) = &token
            && !looks_like_bot_token(token.expose_secret())
        {
            bail!(
                "invalid configuration: TELEGRAM_BOT_TOKEN must look like 123456:ABC-DEF... (digits, a colon, then the secret)"
            );
        }
        if raw.manager_chat_id == Some(0) {
            bail!("invalid configuration: MANAGER_CHAT_ID must be a non-zero Telegram chat id");
        }
        let (bot_token, demo_token, notifications) = match (token, raw.manager_chat_id) {
            (Some(token), Some(chat_id)) => (token, false, Notifications::Telegram { chat_id }),
            _ if !raw.debug => {
                bail!(
                    "invalid configuration: TELEGRAM_BOT_TOKEN and MANAGER_CHAT_ID are required when DEBUG=false"
                )
            }
            (Some(token), None) => (
                token,
                false,
                Notifications::Off {
                    reason: "MANAGER_CHAT_ID is not set",
                },
            ),
            (None, _) => (
                SecretString::from(DEMO_BOT_TOKEN),
                true,
                Notifications::Off {
                    reason: "TELEGRAM_BOT_TOKEN is not set (using the demo token)",
                },
            ),
        };

        if raw.init_data_max_age == 0 {
            bail!("invalid configuration: INIT_DATA_MAX_AGE must be a positive number of seconds");
        }
        let offset_format = format_description!("[offset_hour sign:mandatory]:[offset_minute]");
        let notify_utc_offset = UtcOffset::parse(raw.notify_utc_offset.trim(), &offset_format).map_err(|_| {
            anyhow::anyhow!(
                "invalid configuration: NOTIFY_UTC_OFFSET must look like +03:00 or -05:30, got {:?}",
                raw.notify_utc_offset
            )
        })?;
        let api_url = raw.telegram_api_url.trim().trim_end_matches('/').to_owned();
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            bail!("invalid configuration: TELEGRAM_API_URL must be an http:// or https:// URL");
        }
        if raw.database_max_connections == 0 {
            bail!("invalid configuration: DATABASE_MAX_CONNECTIONS must be at least 1");
        }
        if raw.host.trim().is_empty() {
            bail!("invalid configuration: HOST must not be empty");
        }
        let log_format = match raw
            .log_format
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") => {
                if raw.debug {
                    LogFormat::Text
                } else {
                    LogFormat::Json
                }
            }
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                bail!("invalid configuration: LOG_FORMAT must be json or text, got {other:?}")
            }
        };

        if !(1..=60).contains(&raw.telegram_timeout_secs) {
            bail!("invalid configuration: TELEGRAM_TIMEOUT_SECS must be between 1 and 60");
        }
        if !(10..=60_000).contains(&raw.outbox_poll_interval_ms) {
            bail!("invalid configuration: OUTBOX_POLL_INTERVAL_MS must be between 10 and 60000");
        }
        if raw.outbox_max_attempts == 0 {
            bail!("invalid configuration: OUTBOX_MAX_ATTEMPTS must be at least 1");
        }
        let telegram_timeout = std::time::Duration::from_secs(u64::from(raw.telegram_timeout_secs));
        // A send may take the whole HTTP timeout plus a little; a claim must outlive any send
        // so a live relay never loses an event it is still sending.
        let send_timeout = telegram_timeout + std::time::Duration::from_secs(2);
        let relay = RelayConfig {
            poll_interval: std::time::Duration::from_millis(u64::from(raw.outbox_poll_interval_ms)),
            send_timeout,
            lease: send_timeout * 2,
            max_attempts: raw.outbox_max_attempts,
            ..RelayConfig::default()
        };

        if !(100..=600_000).contains(&raw.database_acquire_timeout_ms) {
            bail!(
                "invalid configuration: DATABASE_ACQUIRE_TIMEOUT_MS must be between 100 and 600000"
            );
        }
        if !(100..=600_000).contains(&raw.database_statement_timeout_ms) {
            bail!(
                "invalid configuration: DATABASE_STATEMENT_TIMEOUT_MS must be between 100 and 600000"
            );
        }
        let cors_allowed_origins = parse_origins(&raw.cors_allowed_origins)?;
        if raw.order_rate_limit_per_minute == 0 || raw.ip_rate_limit_per_minute == 0 {
            bail!(
                "invalid configuration: ORDER_RATE_LIMIT_PER_MINUTE and IP_RATE_LIMIT_PER_MINUTE must be at least 1"
            );
        }
        if raw.order_rate_limit_burst == 0 {
            bail!("invalid configuration: ORDER_RATE_LIMIT_BURST must be at least 1");
        }
        let trusted_proxies = raw
            .trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<std::net::IpAddr>()
                    .map_err(|_| anyhow::anyhow!("invalid configuration: TRUSTED_PROXIES has {p:?}, which is not an IP address"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if raw.catalog_cache_ttl > 3600 {
            bail!(
                "invalid configuration: CATALOG_CACHE_TTL must be between 0 (off) and 3600 seconds"
            );
        }
        if !(1..=600).contains(&raw.shutdown_timeout_secs) {
            bail!("invalid configuration: SHUTDOWN_TIMEOUT_SECS must be between 1 and 600");
        }

        Ok(Self {
            database_acquire_timeout: std::time::Duration::from_millis(u64::from(
                raw.database_acquire_timeout_ms,
            )),
            database_statement_timeout: std::time::Duration::from_millis(u64::from(
                raw.database_statement_timeout_ms,
            )),
            cors_allowed_origins,
            order_rate_limit_per_minute: raw.order_rate_limit_per_minute,
            order_rate_limit_burst: raw.order_rate_limit_burst,
            ip_rate_limit_per_minute: raw.ip_rate_limit_per_minute,
            trusted_proxies,
            metrics_enabled: raw.metrics_enabled,
            shutdown_timeout: std::time::Duration::from_secs(u64::from(raw.shutdown_timeout_secs)),
            catalog_cache_ttl: std::time::Duration::from_secs(u64::from(raw.catalog_cache_ttl)),
            telegram_timeout,
            relay,
            database,
            bot_token,
            demo_token,
            notifications,
            debug: raw.debug,
            host: raw.host.trim().to_owned(),
            port: raw.port,
            init_data_max_age: time::Duration::seconds(i64::from(raw.init_data_max_age)),
            telegram_api_url: api_url,
            notify_utc_offset,
            database_max_connections: raw.database_max_connections,
            run_migrations: raw.run_migrations,
            log_format,
        })
    }
}

/// `https://a.example, https://b.example` → exact origins, each checked.
fn parse_origins(list: &str) -> anyhow::Result<Vec<String>> {
    list.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|origin| {
            let origin = origin.trim_end_matches('/');
            let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.split_once("://").is_some_and(|(_, rest)| rest.is_empty() || rest.contains('/'));
            if valid {
                Ok(origin.to_owned())
            } else {
                bail!(
                    "invalid configuration: CORS_ALLOWED_ORIGINS must list origins like https://shop.example.com, got {origin:?}"
                )
            }
        })
        .collect()
}

fn looks_like_bot_token(token: &str) -> bool {
    match token.split_once(':') {
        Some((id, secret)) => {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !secret.is_empty()
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        None => false,
    }
}

#[cfg(test)]
// figment::Jail closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use figment::Jail;

    use super::*;

    fn load_in(jail: &Jail) -> anyhow::Result<Settings> {
        Settings::from_figment(Settings::figment(&jail.directory().join("botshop.toml")))
    }

    #[test]
    fn nothing_configured_means_debug_with_embedded_sqlite_and_demo_token() {
        Jail::expect_with(|jail| {
            let s = load_in(jail).unwrap();
            assert!(s.debug);
            assert!(
                matches!(&s.database, DatabaseTarget::EmbeddedSqlite(path) if path == "botshop.db")
            );
            assert!(s.demo_token);
            assert!(matches!(s.notifications, Notifications::Off { .. }));
            assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 8000));
            assert_eq!(s.notify_utc_offset, UtcOffset::from_hms(3, 0, 0).unwrap());
            assert_eq!(s.init_data_max_age, time::Duration::seconds(86_400));
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
                &s.database,
                DatabaseTarget::Url(url) if url.expose_secret() == "postgres://shop@db/botshop"
            ));
            assert_eq!(
                s.notifications,
                Notifications::Telegram {
                    chat_id: -1_001_234_567_890
                }
            );
            assert!(!s.debug && !s.demo_token);
            assert_eq!(s.notify_utc_offset, UtcOffset::from_hms(5, 0, 0).unwrap());
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
            let s = load_in(jail).unwrap();
            assert_eq!(s.port, 9100, "environment wins over the file");
            assert_eq!(s.host, "0.0.0.0", "the file wins over defaults");
            assert_eq!(s.database_max_connections, 3);
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
    fn cors_origins_and_trusted_proxies_are_lists() {
        Jail::expect_with(|jail| {
            jail.set_env(
                "CORS_ALLOWED_ORIGINS",
                "https://shop.example.com, https://t.example.org/",
            );
            jail.set_env("TRUSTED_PROXIES", "10.0.0.1, ::1");
            let s = load_in(jail).unwrap();
            assert_eq!(
                s.cors_allowed_origins,
                ["https://shop.example.com", "https://t.example.org"]
            );
            assert_eq!(s.trusted_proxies.len(), 2);
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
            jail.set_env("TRUSTED_PROXIES", "proxy.local");
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
                (s.order_rate_limit_per_minute, s.ip_rate_limit_per_minute),
                (10, 300)
            );
            assert_eq!(
                s.database_statement_timeout,
                std::time::Duration::from_secs(5)
            );
            assert_eq!(
                s.database_acquire_timeout,
                std::time::Duration::from_secs(5)
            );
            assert_eq!(s.shutdown_timeout, std::time::Duration::from_secs(30));
            assert!(s.metrics_enabled && s.cors_allowed_origins.is_empty());
            Ok(())
        });
    }

    #[test]
    fn secrets_do_not_print() {
        Jail::expect_with(|jail| {
            jail.set_env("TELEGRAM_BOT_TOKEN", "123456:SUPERSECRET");
            jail.set_env("DATABASE_URL", "postgres://u:hunter2@db/x");
            let printed = format!("{:?}", load_in(jail).unwrap());
            assert!(
                !printed.contains("SUPERSECRET") && !printed.contains("hunter2"),
                "{printed}"
            );
            Ok(())
        });
    }
}
