//! HTTP caching of the public catalog: `ETag`, `Cache-Control` and `304 Not Modified`.

use std::hash::{Hash, Hasher};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use crate::error::ApiError;

/// Public catalog answers may be cached briefly by browsers and proxies: the catalog
/// changes rarely, and a Mini App re-opens often.
pub(crate) const CATALOG_CACHE_CONTROL: &str = "public, max-age=30";

/// Serialises `body` and answers 200 with a strong `ETag` of its bytes, or 304 when the
/// client's `If-None-Match` already names it.
pub(crate) fn cached_json(
    req: &HttpRequest,
    body: &impl Serialize,
) -> Result<HttpResponse, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let etag = etag_of(&bytes);
    let matches = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag);
    let mut response = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag.clone()))
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static(CATALOG_CACHE_CONTROL),
        ));
    if matches {
        return Ok(response.finish());
    }
    Ok(response.content_type("application/json").body(bytes))
}

/// A strong validator: a 64-bit hash of the exact bytes and their length. `DefaultHasher::new`
/// has fixed keys, so every instance of one build computes the same tag for the same answer
/// (a new build may compute other tags, which costs one full answer per client).
fn etag_of(bytes: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    format!("\"{:016x}{:08x}\"", hasher.finish(), bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_stable_and_tell_bodies_apart() {
        assert_eq!(etag_of(b"{\"a\":1}"), etag_of(b"{\"a\":1}"));
        assert_ne!(etag_of(b"{\"a\":1}"), etag_of(b"{\"a\":2}"));
        assert!(etag_of(b"x").starts_with('"') && etag_of(b"x").ends_with('"'));
    }
}
