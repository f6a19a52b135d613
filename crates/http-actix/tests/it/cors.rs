use actix_web::http::Method;
use actix_web::test::TestRequest;

use crate::support::*;

const SHOP: &str = "https://shop.example.com";

fn preflight(origin: &str, headers: &str) -> TestRequest {
    TestRequest::default()
        .method(Method::OPTIONS)
        .uri("/api/v1/orders")
        .insert_header(("Origin", origin))
        .insert_header(("Access-Control-Request-Method", "POST"))
        .insert_header(("Access-Control-Request-Headers", headers))
}

const HEADERS: &str = "authorization, content-type, idempotency-key";

fn allowing(origins: &[&str]) -> Mocks {
    let origins = origins.iter().map(|o| o.to_string()).collect();
    Mocks::new().with_config(|c| c.cors_allowed_origins = origins)
}

#[actix_web::test]
async fn a_preflight_from_an_allowed_origin_allows_auth_and_idempotency_headers() {
    let app = allowing(&[SHOP]).app().await;
    let raw = call_raw(&app, preflight(SHOP, HEADERS)).await;
    assert_eq!(raw.status, 200, "{}", raw.body);
    assert_eq!(raw.header("access-control-allow-origin"), Some(SHOP));
    let allowed = raw
        .header("access-control-allow-headers")
        .unwrap()
        .to_lowercase();
    for header in ["authorization", "content-type", "idempotency-key"] {
        assert!(allowed.contains(header), "{allowed}");
    }
    let methods = raw.header("access-control-allow-methods").unwrap();
    // The admin API's methods too: a panel or a tool on an allowed origin may use it.
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "{methods}");
    }
    assert_eq!(raw.header("access-control-max-age"), Some("3600"));
    assert!(raw.header("x-request-id").is_some());
}

#[actix_web::test]
async fn configured_origins_match_whatever_their_case_or_trailing_slash() {
    let app = allowing(&["https://Shop.Example.com/"]).app().await;
    let raw = call_raw(&app, preflight(SHOP, HEADERS)).await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("access-control-allow-origin"), Some(SHOP));
}

#[actix_web::test]
async fn a_preflight_from_another_origin_is_a_403_problem() {
    let app = allowing(&[SHOP]).app().await;
    let body = problem(
        &app,
        preflight("https://evil.example", HEADERS),
        403,
        "cors_rejected",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("Origin"));
    let raw = call_raw(&app, preflight("https://evil.example", HEADERS)).await;
    assert!(raw.header("access-control-allow-origin").is_none());
    assert!(raw.header("x-request-id").is_some());
}

#[actix_web::test]
async fn a_preflight_asking_for_another_header_or_method_is_refused() {
    let app = allowing(&[SHOP]).app().await;
    problem(&app, preflight(SHOP, "x-evil"), 403, "cors_rejected").await;
    let req = preflight(SHOP, HEADERS).insert_header(("Access-Control-Request-Method", "TRACE"));
    problem(&app, req, 403, "cors_rejected").await;
}

#[actix_web::test]
async fn without_a_list_no_origin_is_allowed() {
    let app = Mocks::new().app().await;
    for origin in [SHOP, "http://localhost:5173"] {
        problem(&app, preflight(origin, HEADERS), 403, "cors_rejected").await;
    }
}

#[actix_web::test]
async fn allowing_any_origin_allows_any_origin() {
    let app = Mocks::new()
        .with_config(|c| c.cors_allow_any_origin = true)
        .app()
        .await;
    for origin in [SHOP, "http://localhost:5173"] {
        let raw = call_raw(&app, preflight(origin, HEADERS)).await;
        assert_eq!(raw.status, 200);
        assert_eq!(raw.header("access-control-allow-origin"), Some(origin));
    }
}

#[actix_web::test]
async fn answers_to_an_allowed_origin_expose_request_id_location_and_retry_after() {
    let app = allowing(&[SHOP]).answering_everything().app().await;
    let req = TestRequest::get()
        .uri("/api/v1/categories")
        .insert_header(("Origin", SHOP));
    let raw = call_raw(&app, req).await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("access-control-allow-origin"), Some(SHOP));
    let exposed = raw
        .header("access-control-expose-headers")
        .unwrap()
        .to_lowercase();
    // A Mini App's fetch must be able to read the replay marker and the catalog's ETag.
    for header in [
        "x-request-id",
        "location",
        "retry-after",
        "etag",
        "idempotent-replayed",
    ] {
        assert!(exposed.contains(header), "{exposed}");
    }
}

#[actix_web::test]
async fn answers_to_another_origin_carry_no_cors_headers_so_browsers_drop_them() {
    // The request itself is served (a same-origin page or curl must work whatever it
    // sends); only the browser, lacking the headers, refuses to hand the answer over.
    let app = allowing(&[SHOP]).answering_everything().app().await;
    let req = TestRequest::get()
        .uri("/api/v1/categories")
        .insert_header(("Origin", "https://evil.example"));
    let raw = call_raw(&app, req).await;
    assert_eq!(raw.status, 200);
    assert!(raw.header("access-control-allow-origin").is_none());
}
