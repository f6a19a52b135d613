//! The HTTP adapter's own settings: [`HttpSettings`], the configuration keys it owns, with
//! their defaults and checks, and [`HttpConfig`], what the running API uses. The server
//! reads the keys from its sources; this crate never reads the environment.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};

use domain::settings::{InvalidSetting, check_range};
use serde::{Deserialize, Deserializer};

/// The most clients each rate limiter tracks (not a configuration key).
pub const RATE_LIMIT_MAX_KEYS: usize = 100_000;
/// The most catalog answers kept (not a configuration key).
pub const CATALOG_CACHE_MAX_ENTRIES: usize = 4_096;
/// The most bytes of catalog answers kept (not a configuration key).
pub const CATALOG_CACHE_MAX_BYTES: usize = 32 * 1024 * 1024;

/// The HTTP configuration keys; each field name is its key, lower case
/// (`order_rate_limit_burst` is `ORDER_RATE_LIMIT_BURST`). Unset keys take [`Default`]; the
/// lists are checked as they are read, the rest by [`HttpSettings::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Address to listen on (not empty; surrounding spaces are dropped).
    #[serde(deserialize_with = "trimmed")]
    pub host: String,
    /// Port to listen on.
    pub port: u16,
    /// How long in-flight requests may take to finish after SIGTERM or SIGINT, in seconds
    /// (1–600).
    pub shutdown_timeout_secs: u32,
    /// Comma-separated exact origins allowed to call the API from a browser.
    #[serde(deserialize_with = "origin_list")]
    pub cors_allowed_origins: Vec<String>,
    /// Orders one Telegram user may place per minute (at least 1).
    pub order_rate_limit_per_minute: u32,
    /// Orders one Telegram user may place at once (at least 1).
    pub order_rate_limit_burst: u32,
    /// Requests one client address may make to `/api/v1` per minute (at least 1).
    pub ip_rate_limit_per_minute: u32,
    /// Requests one admin (each person, and the API token) may make to `/api/v1/admin`
    /// per minute (at least 1).
    pub admin_rate_limit_per_minute: u32,
    /// Comma-separated IP addresses or CIDR ranges of reverse proxies whose
    /// `X-Forwarded-For` is believed.
    #[serde(deserialize_with = "proxy_list")]
    pub trusted_proxies: Vec<TrustedProxy>,
    /// Serve Prometheus metrics at `/metrics`.
    pub metrics_enabled: bool,
    /// Seconds catalog answers may be served from memory (0–3600; 0 turns the cache off).
    pub catalog_cache_ttl: u32,
    /// Telegram's updates arrive at `POST /telegram/webhook` with this secret in
    /// `X-Telegram-Bot-Api-Secret-Token` (1–256 of `A-Z a-z 0-9 _ -`); unset or empty: no
    /// webhook.
    pub telegram_webhook_secret: Option<WebhookSecret>,
}

/// `TELEGRAM_WEBHOOK_SECRET`: a secret, never printed (`{:?}` redacts it).
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct WebhookSecret(secrecy::SecretString);

impl WebhookSecret {
    pub fn expose(&self) -> &str {
        use secrecy::ExposeSecret;
        self.0.expose_secret()
    }
}

impl PartialEq for WebhookSecret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for WebhookSecret {}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8000,
            shutdown_timeout_secs: 30,
            cors_allowed_origins: Vec::new(),
            order_rate_limit_per_minute: 10,
            order_rate_limit_burst: 3,
            ip_rate_limit_per_minute: 300,
            admin_rate_limit_per_minute: crate::ADMIN_RATE_LIMIT_PER_MINUTE,
            trusted_proxies: Vec::new(),
            metrics_enabled: true,
            catalog_cache_ttl: 5,
            telegram_webhook_secret: None,
        }
    }
}

impl HttpSettings {
    /// Checks every value, naming the key of the first bad one.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.host.trim().is_empty() {
            return Err(InvalidSetting::new("HOST", "must not be empty"));
        }
        for (key, value) in [
            (
                "ORDER_RATE_LIMIT_PER_MINUTE",
                self.order_rate_limit_per_minute,
            ),
            ("IP_RATE_LIMIT_PER_MINUTE", self.ip_rate_limit_per_minute),
            (
                "ADMIN_RATE_LIMIT_PER_MINUTE",
                self.admin_rate_limit_per_minute,
            ),
            ("ORDER_RATE_LIMIT_BURST", self.order_rate_limit_burst),
        ] {
            if value == 0 {
                return Err(InvalidSetting::new(key, "must be at least 1"));
            }
        }
        if self.catalog_cache_ttl > 3600 {
            return Err(InvalidSetting::new(
                "CATALOG_CACHE_TTL",
                "must be between 0 (off) and 3600 seconds",
            ));
        }
        if let Some(secret) = self.webhook_secret()
            && !is_webhook_secret(secret)
        {
            return Err(InvalidSetting::new(
                "TELEGRAM_WEBHOOK_SECRET",
                "must be 1 to 256 characters of A-Z, a-z, 0-9, _ and - (what Telegram accepts)",
            ));
        }
        check_range("SHUTDOWN_TIMEOUT_SECS", self.shutdown_timeout_secs, 1..=600)
    }

    /// `TELEGRAM_WEBHOOK_SECRET`, when set and not empty.
    pub fn webhook_secret(&self) -> Option<&str> {
        self.telegram_webhook_secret
            .as_ref()
            .map(WebhookSecret::expose)
            .filter(|secret| !secret.is_empty())
    }

    /// How long in-flight requests may take to finish after a stop signal.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.shutdown_timeout_secs))
    }

    /// The API's configuration. `allow_any_origin` opens CORS to every origin (the server
    /// sets it when `DEBUG=true`).
    pub fn config(&self, allow_any_origin: bool) -> HttpConfig {
        HttpConfig {
            cors_allowed_origins: self.cors_allowed_origins.clone(),
            cors_allow_any_origin: allow_any_origin,
            order_rate_limit_per_minute: self.order_rate_limit_per_minute,
            order_rate_limit_burst: self.order_rate_limit_burst,
            ip_rate_limit_per_minute: self.ip_rate_limit_per_minute,
            admin_rate_limit_per_minute: self.admin_rate_limit_per_minute,
            trusted_proxies: self.trusted_proxies.clone(),
            expose_metrics: self.metrics_enabled,
            rate_limit_max_keys: RATE_LIMIT_MAX_KEYS,
            catalog_cache_ttl: Duration::from_secs(u64::from(self.catalog_cache_ttl)),
            catalog_cache_max_entries: CATALOG_CACHE_MAX_ENTRIES,
            catalog_cache_max_bytes: CATALOG_CACHE_MAX_BYTES,
            telegram_webhook: self.webhook_secret().is_some(),
        }
    }
}

/// What Telegram accepts as a webhook's `secret_token`.
fn is_webhook_secret(secret: &str) -> bool {
    (1..=256).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn trimmed<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(String::deserialize(deserializer)?.trim().to_owned())
}

/// The non-blank entries of a comma-separated list, trimmed.
fn entries(list: &str) -> impl Iterator<Item = &str> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
}

/// `CORS_ALLOWED_ORIGINS`: `https://a.example, https://b.example/` → exact origins without a
/// trailing `/`, each checked.
fn origin_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let list = String::deserialize(deserializer)?;
    entries(&list)
        .map(|origin| {
            let origin = origin.trim_end_matches('/');
            if is_origin(&origin.to_ascii_lowercase()) {
                Ok(origin.to_owned())
            } else {
                Err(serde::de::Error::custom(InvalidSetting::new(
                    "CORS_ALLOWED_ORIGINS",
                    format!("must list origins like https://shop.example.com, got {origin:?}"),
                )))
            }
        })
        .collect()
}

/// `TRUSTED_PROXIES`: `10.0.0.1, 172.16.0.0/12, ::1` → addresses and ranges.
fn proxy_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<TrustedProxy>, D::Error> {
    let list = String::deserialize(deserializer)?;
    entries(&list)
        .map(|proxy| {
            proxy.parse().map_err(|_| {
                serde::de::Error::custom(InvalidSetting::new(
                    "TRUSTED_PROXIES",
                    format!(
                        "has {proxy:?}, which is neither an IP address nor a CIDR range \
                         like 172.16.0.0/12"
                    ),
                ))
            })
        })
        .collect()
}

/// A reverse proxy's address (`10.0.0.1`, `::1`) or a network of them in CIDR notation
/// (`172.16.0.0/12` for docker's bridge networks, `fd00::/8`). Host bits after the prefix
/// are ignored (`10.0.0.1/8` is `10.0.0.0/8`). IPv4-mapped IPv6 spellings
/// (`::ffff:10.0.0.1`, `::ffff:10.0.0.0/104`) mean their IPv4 address or range, as
/// peers are compared in their canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(IpNet);

/// Not an IP address or CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or CIDR range")]
pub struct InvalidProxy;

impl TrustedProxy {
    /// Whether `ip` is this proxy or in this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl FromStr for TrustedProxy {
    type Err = InvalidProxy;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let net = match text.parse::<IpAddr>() {
            Ok(ip) => IpNet::from(ip.to_canonical()),
            Err(_) => text.parse::<IpNet>().map_err(|_| InvalidProxy)?.trunc(),
        };
        Ok(Self(canonical_net(net)))
    }
}

impl From<IpAddr> for TrustedProxy {
    fn from(ip: IpAddr) -> Self {
        Self(IpNet::from(ip.to_canonical()))
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An IPv6 range inside `::ffff:0:0/96` as the IPv4 range it maps.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.network().to_ipv4_mapped()
        && let Ok(mapped) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(mapped);
    }
    net
}

/// How the API protects and exposes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Exact origins allowed to call the API from a browser, e.g. `https://shop.example.com`
    /// (scheme, host and port if not the default; no path). Compared case-insensitively,
    /// ignoring a trailing `/`.
    pub cors_allowed_origins: Vec<String>,
    /// Any origin may call the API. For development only: the server sets it when
    /// `DEBUG=true`.
    pub cors_allow_any_origin: bool,
    /// Orders one Telegram user may place per minute, sustained. `0` turns the limit off.
    pub order_rate_limit_per_minute: u32,
    /// Orders one Telegram user may place at once before the per-minute pace applies.
    pub order_rate_limit_burst: u32,
    /// Requests one client address may make to `/api/v1` per minute; it may also spend the
    /// whole minute's budget at once. `0` turns the limit off.
    pub ip_rate_limit_per_minute: u32,
    /// Requests one admin may make to `/api/v1/admin` per minute, all at once if need be.
    pub admin_rate_limit_per_minute: u32,
    /// Reverse proxies (addresses or ranges) whose `X-Forwarded-For` is believed. Empty:
    /// the header is ignored and the client is the TCP peer.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// Serve Prometheus metrics at `/metrics`; when false that path is 404 and absent from
    /// the OpenAPI document.
    pub expose_metrics: bool,
    /// The most clients each rate limiter tracks. It bounds the limiters' memory: beyond it,
    /// the clients closest to a full allowance are forgotten first.
    pub rate_limit_max_keys: usize,
    /// How long a catalog answer may be served from memory (`CATALOG_CACHE_TTL`): the bound
    /// on staleness after catalog writes made outside this process. Zero turns it off.
    pub catalog_cache_ttl: Duration,
    /// The most catalog answers kept.
    pub catalog_cache_max_entries: usize,
    /// The most bytes of catalog answers kept.
    pub catalog_cache_max_bytes: usize,
    /// Serve `POST /telegram/webhook` (the server sets it with `TELEGRAM_WEBHOOK_SECRET`,
    /// and hands the secret and the bot to [`crate::ApiState::telegram`]).
    pub telegram_webhook: bool,
}

impl Default for HttpConfig {
    /// [`HttpSettings::default`]'s values, CORS closed.
    fn default() -> Self {
        HttpSettings::default().config(false)
    }
}

/// Which cross-origin requests the API answers, for the server's start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsMode {
    /// No origin is allowed: browsers may call the API only from its own origin.
    Closed,
    /// Every origin is allowed (development).
    AnyOrigin,
    /// Only these origins, normalized (lower case, no trailing `/`).
    AllowList(Vec<String>),
}

impl HttpConfig {
    /// The CORS policy these settings produce.
    pub fn cors_mode(&self) -> CorsMode {
        if self.cors_allow_any_origin {
            return CorsMode::AnyOrigin;
        }
        let origins = normalized_origins(&self.cors_allowed_origins);
        if origins.is_empty() {
            CorsMode::Closed
        } else {
            CorsMode::AllowList(origins)
        }
    }
}

/// Lower case without a trailing `/`, the way browsers spell the `Origin` header. Entries
/// that cannot be an origin (no scheme, a path) are dropped with a warning: they would never
/// match anyway, and [`HttpSettings`] already refuses them.
pub(crate) fn normalized_origins(origins: &[String]) -> Vec<String> {
    origins
        .iter()
        .map(|origin| origin.trim().trim_end_matches('/').to_ascii_lowercase())
        .filter(|origin| !origin.is_empty())
        .filter(|origin| {
            let valid = is_origin(origin);
            if !valid {
                tracing::warn!(
                    origin,
                    "ignoring a CORS origin that is not scheme://host[:port]"
                );
            }
            valid
        })
        .collect()
}

fn is_origin(origin: &str) -> bool {
    let Some((scheme, host)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && !host
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '@' | '*') || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_is_closed_without_origins() {
        assert_eq!(HttpConfig::default().cors_mode(), CorsMode::Closed);
    }

    #[test]
    fn allowing_any_origin_wins_over_the_list() {
        let config = HttpConfig {
            cors_allowed_origins: vec!["https://a.example".into()],
            cors_allow_any_origin: true,
            ..HttpConfig::default()
        };
        assert_eq!(config.cors_mode(), CorsMode::AnyOrigin);
    }

    #[test]
    fn origins_are_normalized_and_nonsense_is_dropped() {
        let config = HttpConfig {
            cors_allowed_origins: vec![
                " https://Shop.Example.com/ ".into(),
                "http://localhost:5173".into(),
                "shop.example.com".into(),
                "https://shop.example.com/app".into(),
                "*".into(),
                "".into(),
            ],
            ..HttpConfig::default()
        };
        assert_eq!(
            config.cors_mode(),
            CorsMode::AllowList(vec![
                "https://shop.example.com".into(),
                "http://localhost:5173".into()
            ])
        );
    }

    fn settings(json: &str) -> Result<HttpSettings, String> {
        let settings: HttpSettings = serde_json::from_str(json).map_err(|e| e.to_string())?;
        settings.validate().map_err(|e| e.to_string())?;
        Ok(settings)
    }

    #[test]
    fn settings_defaults_are_the_configs_defaults() {
        let s = settings("{}").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 8000));
        assert_eq!(s.shutdown_timeout(), Duration::from_secs(30));
        assert_eq!(s.config(false), HttpConfig::default());
        assert_eq!(
            HttpConfig::default().catalog_cache_ttl,
            Duration::from_secs(5)
        );
        assert!(s.config(true).cors_allow_any_origin);
    }

    fn proxy(text: &str) -> TrustedProxy {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn trusted_proxies_are_addresses_or_cidr_ranges() {
        let s =
            settings(r#"{"trusted_proxies": "10.0.0.1, 172.16.0.0/12, fd00::/8, ::1"}"#).unwrap();
        assert_eq!(
            s.trusted_proxies,
            [
                proxy("10.0.0.1"),
                proxy("172.16.0.0/12"),
                proxy("fd00::/8"),
                proxy("::1")
            ]
        );
        let bridge = proxy("172.16.0.0/12");
        for inside in [
            "172.16.0.1",
            "172.18.0.2",
            "172.31.255.255",
            "::ffff:172.20.0.1",
        ] {
            assert!(bridge.contains(ip(inside)), "{inside}");
        }
        for outside in ["172.15.255.255", "172.32.0.0", "10.0.0.1", "::1"] {
            assert!(!bridge.contains(ip(outside)), "{outside}");
        }
        assert!(proxy("fd00::/8").contains(ip("fd12:3456::1")));
        assert!(!proxy("fd00::/8").contains(ip("fe80::1")));
        assert!(proxy("10.0.0.1").contains(ip("10.0.0.1")));
        assert!(!proxy("10.0.0.1").contains(ip("10.0.0.2")));
    }

    #[test]
    fn proxy_ranges_drop_host_bits_and_read_mapped_ipv4_as_ipv4() {
        assert_eq!(proxy("10.1.2.3/8"), proxy("10.0.0.0/8"));
        assert_eq!(proxy("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(proxy("::ffff:10.0.0.1"), proxy("10.0.0.1"));
        assert_eq!(proxy("::ffff:10.0.0.0/104"), proxy("10.0.0.0/8"));
        assert!(proxy("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")));
        assert_eq!(
            " 10.0.0.0/8 ".parse::<TrustedProxy>(),
            Ok(proxy("10.0.0.0/8"))
        );
        assert_eq!("10.0.0.0/33".parse::<TrustedProxy>(), Err(InvalidProxy));
    }

    #[test]
    fn lists_are_comma_separated_and_checked() {
        let s = settings(
            r#"{"cors_allowed_origins": "https://shop.example.com, https://t.example.org/",
                "trusted_proxies": "10.0.0.1, ::1", "host": " 0.0.0.0 "}"#,
        )
        .unwrap();
        assert_eq!(
            s.cors_allowed_origins,
            ["https://shop.example.com", "https://t.example.org"]
        );
        assert_eq!(s.trusted_proxies.len(), 2);
        assert_eq!(s.host, "0.0.0.0");
        for (json, key) in [
            (
                r#"{"cors_allowed_origins": "shop.example.com"}"#,
                "CORS_ALLOWED_ORIGINS",
            ),
            (
                r#"{"cors_allowed_origins": "https://a.example/app"}"#,
                "CORS_ALLOWED_ORIGINS",
            ),
            (r#"{"trusted_proxies": "proxy.local"}"#, "TRUSTED_PROXIES"),
            (r#"{"trusted_proxies": "10.0.0.0/33"}"#, "TRUSTED_PROXIES"),
            (r#"{"trusted_proxies": "10.0.0.0/"}"#, "TRUSTED_PROXIES"),
            (r#"{"trusted_proxies": "/8"}"#, "TRUSTED_PROXIES"),
            (
                r#"{"trusted_proxies": "10.0.0.1, fd00::/129"}"#,
                "TRUSTED_PROXIES",
            ),
            (r#"{"trusted_proxies": "10.0.0.0/8/8"}"#, "TRUSTED_PROXIES"),
            (r#"{"host": "  "}"#, "HOST"),
            (
                r#"{"order_rate_limit_per_minute": 0}"#,
                "ORDER_RATE_LIMIT_PER_MINUTE",
            ),
            (
                r#"{"ip_rate_limit_per_minute": 0}"#,
                "IP_RATE_LIMIT_PER_MINUTE",
            ),
            (r#"{"order_rate_limit_burst": 0}"#, "ORDER_RATE_LIMIT_BURST"),
            (r#"{"catalog_cache_ttl": 3601}"#, "CATALOG_CACHE_TTL"),
            (r#"{"shutdown_timeout_secs": 0}"#, "SHUTDOWN_TIMEOUT_SECS"),
        ] {
            let error = settings(json).unwrap_err();
            assert!(error.contains(key), "{json}: {error}");
        }
    }
}
