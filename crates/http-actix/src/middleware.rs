//! The layers around every request: request id, log line and metrics (outermost), CORS,
//! and the per-address limit on the API scope.

use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use tracing::Instrument;

use crate::Limits;
use crate::error::ApiError;
use crate::metrics::{Metrics, UNMATCHED_ROUTE};
use crate::rate_limit::{ClientKey, client_ip, is_trusted};

/// The request id header, read from the client and always returned.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The longest client-chosen request id we keep.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The client's `X-Request-Id` when it is 1–128 visible ASCII characters (so it is safe in
/// a header and a log line), a fresh UUID v4 otherwise.
pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            (1..=MAX_REQUEST_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Runs the request inside a `request` span carrying its `request_id` and `route`, so that
/// every log line of the request has them; returns the id in `X-Request-Id`; writes the one log line
/// per request (method, route pattern, status, latency — never the query or headers,
/// which may hold personal data) and records the HTTP metrics.
///
/// It also turns actix-cors's plain-text refusals into problems, so that CORS errors look
/// like every other error.
pub(crate) async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = request_id(req.headers());
    // An error-level span is enabled whenever any event is: with `RUST_LOG=warn`, an
    // info-level span would be filtered out and take the id off the warnings and errors,
    // the very lines that need it. The level of a span shows nowhere in the output.
    // The route pattern (never the raw path, which may carry ids) goes on the span too, so
    // that an error reported from deep inside the request names where it happened. The
    // pattern comes from the app's resource map, so it is known before routing.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let span = tracing::error_span!("request", request_id = %request_id, route = %route);
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = req.method().clone();
    // The id is sane visible ASCII, or a UUID, so it is always a valid header value.
    let id_header = HeaderValue::from_str(&request_id).ok();
    async move {
        let (status, result) = match next.call(req).await {
            Ok(response) => {
                let mut response = cors_refusal_as_problem(response.map_into_boxed_body());
                if let Some(id) = &id_header {
                    response.headers_mut().insert(X_REQUEST_ID, id.clone());
                }
                (response.status(), Ok(response))
            }
            // Every layer inside answers with a response; should an error escape anyway,
            // actix renders it later, so the id goes on through a response mapper.
            Err(mut error) => {
                let status = error.as_response_error().status_code();
                if let Some(id) = id_header {
                    error.add_response_mapper(move |mut response| {
                        response.headers_mut().insert(X_REQUEST_ID, id.clone());
                        response
                    });
                }
                (status, Err(error))
            }
        };
        let elapsed = started.elapsed();
        tracing::info!(
            %method,
            route,
            status = status.as_u16(),
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
        if let Some(metrics) = metrics {
            metrics.observe_request(&route, &method, status.as_u16(), elapsed);
        }
        result
    }
    .instrument(span)
    .await
}

/// actix-cors answers a refused preflight itself, as `400 text/plain`; make it a problem.
fn cors_refusal_as_problem(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let refusal = response
        .response()
        .error()
        .and_then(|error| error.as_error::<actix_cors::CorsError>())
        .cloned();
    match refusal {
        Some(reason) => {
            let problem = ApiError::CorsRejected(reason).error_response();
            let mut response = response.into_response(problem);
            // Caches must not reuse an answer given to one origin for another.
            response.headers_mut().insert(
                actix_web::http::header::VARY,
                HeaderValue::from_static(
                    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
                ),
            );
            response
        }
        None => response,
    }
}

/// The per-address limit on the whole API. The address is the TCP peer's, or the client's
/// as reported by a trusted proxy; without a peer address (a Unix socket) nothing is
/// limited, since everyone would share one allowance.
pub(crate) async fn limit_by_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    let verdict = match (req.app_data::<web::Data<Limits>>(), req.peer_addr()) {
        (Some(limits), Some(peer)) => {
            if req.headers().contains_key(X_FORWARDED_FOR)
                && !is_trusted(peer.ip(), &limits.trusted_proxies)
            {
                warn_once_of_untrusted_forwarding(limits, peer.ip());
            }
            let forwarded_for = req
                .headers()
                .get_all(X_FORWARDED_FOR)
                .filter_map(|value| value.to_str().ok());
            let client = client_ip(peer.ip(), forwarded_for, &limits.trusted_proxies);
            limits
                .ip
                .check(ClientKey::from(client), crate::limiter_now())
        }
        _ => Ok(()),
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(retry_after) => {
            let response = ApiError::RateLimited { retry_after }.error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

/// `X-Forwarded-For` from a peer that is not a trusted proxy is ignored. That is right for
/// a client forging it, and a misconfiguration when a proxy in front is not listed — then
/// every customer shares the proxy's allowance — so it is said once per process (a warning
/// per request would let any client flood the log). The peer's address is logged, never
/// the header: what a client forwards is its own business.
fn warn_once_of_untrusted_forwarding(limits: &Limits, peer: std::net::IpAddr) {
    if limits
        .warned_untrusted_forwarding
        .swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        return;
    }
    tracing::warn!(
        peer = %peer.to_canonical(),
        "X-Forwarded-For came from a peer that is not in TRUSTED_PROXIES, so it is ignored \
         and the peer counts as the client. If a reverse proxy forwards to BotShop, list its \
         address or network (e.g. 172.16.0.0/12 for docker bridges) in TRUSTED_PROXIES. \
         Logged once"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_str(id).unwrap());
        headers
    }

    #[test]
    fn a_sane_client_request_id_is_kept() {
        assert_eq!(request_id(&headers("abc-123_XYZ.9")), "abc-123_XYZ.9");
        let longest = "a".repeat(128);
        assert_eq!(request_id(&headers(&longest)), longest);
    }

    #[test]
    fn an_insane_client_request_id_is_replaced() {
        for bad in ["", "has space", &"a".repeat(129), "tab\there"] {
            let id = request_id(&headers(bad));
            assert_ne!(id, bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        }
    }

    #[test]
    fn a_missing_request_id_is_generated() {
        let id = request_id(&HeaderMap::new());
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
    }
}
