//! The admin panel's files and its development sign-in (the panel itself is tested in a
//! browser by the server's tests).

use std::sync::Arc;

use actix_web::test::TestRequest;
use http_actix::Http;

use crate::support::{Mocks, call_raw, verifier, worker};

#[actix_web::test]
async fn the_panel_is_served_from_the_binary_with_a_strict_policy() {
    let app = Mocks::new().app().await;
    let page = call_raw(&app, TestRequest::get().uri("/admin/")).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(
        csp.contains("frame-ancestors 'self' https://web.telegram.org"),
        "{csp}"
    );
    assert!(
        page.body
            .contains(r#"<meta name="botshop-dev-sign-in" content="off">"#)
    );
    assert!(!page.body.contains("{{"), "every placeholder is filled");
    // Nothing is loaded from elsewhere: every script and stylesheet is the panel's own.
    let elsewhere: Vec<&str> = page
        .body
        .split(['"', '\''])
        .filter(|part| part.contains("://"))
        .collect();
    assert!(elsewhere.is_empty(), "the page loads {elsewhere:?}");

    for (path, kind) in [
        ("/admin/app.js", "text/javascript"),
        ("/admin/style.css", "text/css"),
        ("/admin/vendor/telegram-web-app.js", "text/javascript"),
    ] {
        let file = call_raw(&app, TestRequest::get().uri(path)).await;
        assert_eq!(file.status, 200, "{path}");
        assert!(
            file.header("content-type").unwrap().starts_with(kind),
            "{path}"
        );
        assert!(!file.body.is_empty());
        let etag = file.header("etag").unwrap().to_owned();
        let again = call_raw(
            &app,
            TestRequest::get()
                .uri(path)
                .insert_header(("If-None-Match", etag)),
        )
        .await;
        assert_eq!(again.status, 304, "{path}");
    }
    let redirect = call_raw(&app, TestRequest::get().uri("/admin")).await;
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location"), Some("/admin/"));
    for missing in ["/admin/nope.js", "/admin/../Cargo.toml", "/admin/vendor/"] {
        let raw = call_raw(&app, TestRequest::get().uri(missing)).await;
        assert_eq!(raw.status, 404, "{missing}");
    }
}

#[actix_web::test]
async fn the_development_sign_in_exists_only_with_the_demo_signer() {
    let app = Mocks::new().app().await;
    let off = call_raw(&app, TestRequest::get().uri("/admin/dev-sign-in?user_id=7")).await;
    assert_eq!(off.status, 404);

    let (mut state, config) = Mocks::new().state();
    state.dev_sign_in = Some(Arc::new(verifier()));
    let http = Http::new(state, config).unwrap();
    let app = worker(&http).await;
    let page = call_raw(&app, TestRequest::get().uri("/admin/")).await;
    assert!(
        page.body
            .contains(r#"<meta name="botshop-dev-sign-in" content="on">"#)
    );
    let signed = call_raw(&app, TestRequest::get().uri("/admin/dev-sign-in?user_id=7")).await;
    assert_eq!(signed.status, 200);
    assert_eq!(signed.header("cache-control"), Some("no-store"));
    let init_data = signed.json()["init_data"].as_str().unwrap().to_owned();
    let verified = verifier()
        .verify(&init_data, time::OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(verified.user.id.get(), 7);
    for bad in ["", "?user_id=abc", "?user_id=-3", "?user_id=0"] {
        let raw = call_raw(
            &app,
            TestRequest::get().uri(&format!("/admin/dev-sign-in{bad}")),
        )
        .await;
        assert_eq!(raw.status, 422, "{bad}");
    }
}
