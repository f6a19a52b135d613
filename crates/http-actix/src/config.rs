//! The HTTP adapter's own settings. The server fills them from its configuration; this
//! crate never reads the environment.

use std::net::IpAddr;

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
    /// Reverse proxies whose `X-Forwarded-For` is believed. Empty: the header is ignored and
    /// the client is the TCP peer.
    pub trusted_proxies: Vec<IpAddr>,
    /// Serve Prometheus metrics at `/metrics`; when false that path is 404 and absent from
    /// the OpenAPI document.
    pub expose_metrics: bool,
    /// The most clients each rate limiter tracks. It bounds the limiters' memory: beyond it,
    /// the clients closest to a full allowance are forgotten first.
    pub rate_limit_max_keys: usize,
    /// How long a catalog answer may be served from memory (`CATALOG_CACHE_TTL`): the bound
    /// on staleness after catalog writes made outside this process. Zero turns it off.
    pub catalog_cache_ttl: std::time::Duration,
    /// The most catalog answers kept.
    pub catalog_cache_max_entries: usize,
    /// The most bytes of catalog answers kept.
    pub catalog_cache_max_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            cors_allowed_origins: Vec::new(),
            cors_allow_any_origin: false,
            order_rate_limit_per_minute: 10,
            order_rate_limit_burst: 3,
            ip_rate_limit_per_minute: 300,
            trusted_proxies: Vec::new(),
            expose_metrics: true,
            rate_limit_max_keys: 100_000,
            catalog_cache_ttl: std::time::Duration::from_secs(5),
            catalog_cache_max_entries: 4_096,
            catalog_cache_max_bytes: 32 * 1024 * 1024,
        }
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
/// match anyway, and the server's configuration already refuses them.
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
}
