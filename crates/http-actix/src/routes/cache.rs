//! HTTP caching of the public catalog: `ETag`, `Cache-Control` and `304 Not Modified`.

use std::future::Future;
use std::hash::{Hash, Hasher};

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use domain::Page;
use serde::Serialize;

pub(crate) use crate::catalog_cache::Keep;
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

/// What a catalog handler loads: the body, the ids of the products it shows (for
/// invalidation), for a list the number of matches, every page together, and when to keep
/// it.
pub(crate) struct Loaded<T> {
    pub body: T,
    pub products: Vec<i64>,
    pub total: Option<u64>,
    pub keep: Keep,
}

/// Answers from the catalog cache, loading (and caching) the answer on a miss.
/// `stock_filtered` says whether stock decides which products it shows. A list (`list`:
/// the window asked for) is a JSON array with `X-Total-Count` and `Link` (see
/// [`super::listing`]).
pub(crate) async fn serve_cached<T, Load, Fut>(
    req: &HttpRequest,
    cache: &CatalogCache,
    key: String,
    stock_filtered: bool,
    browser: BrowserCaching,
    list: Option<Page>,
    load: Load,
) -> Result<HttpResponse, ApiError>
where
    T: Serialize,
    Load: FnOnce() -> Fut,
    Fut: Future<Output = Result<Loaded<T>, ApiError>>,
{
    let now = crate::limiter_now();
    let entry = match cache.get(&key, now) {
        Some(entry) => entry,
        None => {
            let ticket = cache.ticket();
            let loaded = load().await?;
            let total = loaded.total;
            let bytes =
                serde_json::to_vec(&loaded.body).map_err(|e| ApiError::Internal(Box::new(e)))?;
            let answer = Answer {
                etag: etag_of(&bytes, total),
                body: Bytes::from(bytes),
                total,
                products: loaded.products,
                stock_filtered,
                keep: loaded.keep,
            };
            cache.put(key, answer, ticket, now)
        }
    };
    let cache_control = match browser {
        BrowserCaching::Revalidate => None,
        BrowserCaching::UntilServerExpiry => Some(cache.remaining_secs(&entry, now)),
    };
    Ok(respond(
        req,
        &entry,
        list,
        cache_control_value(cache_control),
    ))
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
fn respond(
    req: &HttpRequest,
    entry: &Entry,
    page: Option<Page>,
    cache_control: HeaderValue,
) -> HttpResponse {
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
    if let (Some(total), Some(page)) = (entry.total, page) {
        for header in super::listing::list_headers(req, page, total) {
            response.insert_header(header);
        }
    }
    if matches {
        return response.finish();
    }
    response
        .content_type("application/json")
        .body(entry.body.clone())
}

/// A strong validator: a 64-bit hash of the exact bytes, a list's `X-Total-Count`, and the
/// bytes' length. `DefaultHasher::new` has fixed keys, so every instance of one build
/// computes the same tag for the same answer (a new build may compute other tags, which
/// costs one full answer per client).
pub(crate) fn etag_of(bytes: &[u8], total: Option<u64>) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    total.hash(&mut hasher);
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
        assert_ne!(etag_of(b"{\"a\":1}", None), etag_of(b"{\"a\":2}", None));
        let tag = etag_of(b"x", None);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        // A page that looks the same while the number of matches changed is not the same.
        assert_ne!(etag_of(b"[]", Some(10)), etag_of(b"[]", Some(11)));
    }
}
