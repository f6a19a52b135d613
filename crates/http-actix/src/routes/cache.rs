//! HTTP caching of the public catalog: `ETag`, `Cache-Control` and `304 Not Modified`.

use std::future::Future;
use std::hash::{Hash, Hasher};

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use crate::catalog_cache::{Answer, CatalogCache, Entry};
use crate::error::ApiError;

/// Public catalog answers may be cached briefly by browsers and proxies: the catalog
/// changes rarely, and a Mini App re-opens often.
pub(crate) const CATALOG_CACHE_CONTROL: &str = "public, max-age=30";

/// Answers from the catalog cache, loading (and caching) the answer on a miss. `load`
/// returns the body and the ids of the products it shows, for invalidation;
/// `stock_filtered` says whether stock decides which products it shows.
pub(crate) async fn serve_cached<T, Load, Fut>(
    req: &HttpRequest,
    cache: &CatalogCache,
    key: String,
    stock_filtered: bool,
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
    Ok(respond(req, &entry))
}

/// 200 with the body, or 304 when the client's `If-None-Match` already names its `ETag`.
fn respond(req: &HttpRequest, entry: &Entry) -> HttpResponse {
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
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static(CATALOG_CACHE_CONTROL),
        ));
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
    fn etags_tell_bodies_apart() {
        assert_ne!(etag_of(b"{\"a\":1}"), etag_of(b"{\"a\":2}"));
        assert!(etag_of(b"x").starts_with('"') && etag_of(b"x").ends_with('"'));
    }
}
