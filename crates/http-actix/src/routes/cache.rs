//! HTTP caching of the public catalog: `ETag`, `Cache-Control` and `304 Not Modified`.

use std::future::Future;
use std::hash::{Hash, Hasher};

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use crate::catalog_cache::{Answer, CatalogCache, Entry};
use crate::error::ApiError;

/// How long browsers and proxies may reuse a catalog answer without asking again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BrowserCaching {
    /// `no-cache`: the answer shows stock, which an order here changes at once, while a
    /// browser's copy would live on. The client asks every time with `If-None-Match`, and
    /// an unchanged answer costs a bodiless 304 served from memory.
    Revalidate,
    /// `public, max-age=N`, N being what is left of the server's own entry's lifetime: a
    /// browser's copy expires no later than the server's would, so a client never shows
    /// an answer older than `CATALOG_CACHE_TTL`. `no-cache` when that is nothing (or the
    /// cache is off).
    UntilServerExpiry,
}

/// Answers from the catalog cache, loading (and caching) the answer on a miss. `load`
/// returns the body and the ids of the products it shows, for invalidation;
/// `stock_filtered` says whether stock decides which products it shows.
pub(crate) async fn serve_cached<T, Load, Fut>(
    req: &HttpRequest,
    cache: &CatalogCache,
    key: String,
    stock_filtered: bool,
    browser: BrowserCaching,
    load: Load,
) -> Result<HttpResponse, ApiError>
where
    T: Serialize,
    Load: FnOnce() -> Fut,
    Fut: Future<Output = Result<(T, Vec<i64>), ApiError>>,
{
    let now = crate::limiter_now();
    let entry = match cache.get(&key, now) {
        Some(entry) => entry,
        None => {
            let ticket = cache.ticket();
            let (body, products) = load().await?;
            let bytes = serde_json::to_vec(&body).map_err(|e| ApiError::Internal(Box::new(e)))?;
            let answer = Answer {
                etag: etag_of(&bytes),
                body: Bytes::from(bytes),
                products,
                stock_filtered,
            };
            cache.put(key, answer, ticket, now)
        }
    };
    let cache_control = match browser {
        BrowserCaching::Revalidate => None,
        BrowserCaching::UntilServerExpiry => Some(cache.remaining_secs(&entry, now)),
    };
    Ok(respond(req, &entry, cache_control_value(cache_control)))
}

/// `public, max-age=N` for `Some(N)` with N > 0, `no-cache` otherwise.
fn cache_control_value(max_age_secs: Option<u64>) -> HeaderValue {
    match max_age_secs {
        Some(secs) if secs > 0 => HeaderValue::from_str(&format!("public, max-age={secs}"))
            .unwrap_or_else(|_| HeaderValue::from_static("no-cache")),
        _ => HeaderValue::from_static("no-cache"),
    }
}

/// 200 with the body, or 304 when the client's `If-None-Match` already names its `ETag`;
/// both with the same `ETag` and `Cache-Control`.
fn respond(req: &HttpRequest, entry: &Entry, cache_control: HeaderValue) -> HttpResponse {
    let matches = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == entry.etag);
    let mut response = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, entry.etag.clone()))
        .insert_header((header::CACHE_CONTROL, cache_control));
    if matches {
        return response.finish();
    }
    response
        .content_type("application/json")
        .body(entry.body.clone())
}

/// A strong validator: a 64-bit hash of the exact bytes and their length. `DefaultHasher::new`
/// has fixed keys, so every instance of one build computes the same tag for the same answer
/// (a new build may compute other tags, which costs one full answer per client).
pub(crate) fn etag_of(bytes: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    format!("\"{:016x}{:08x}\"", hasher.finish(), bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_given_only_while_something_is_left() {
        assert_eq!(cache_control_value(Some(5)), "public, max-age=5");
        assert_eq!(cache_control_value(Some(0)), "no-cache");
        assert_eq!(cache_control_value(None), "no-cache");
    }

    #[test]
    fn etags_tell_bodies_apart() {
        assert_ne!(etag_of(b"{\"a\":1}"), etag_of(b"{\"a\":2}"));
        assert!(etag_of(b"x").starts_with('"') && etag_of(b"x").ends_with('"'));
    }
}
