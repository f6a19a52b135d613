use actix_web::test::TestRequest;

use crate::support::*;

#[actix_web::test]
async fn unknown_routes_are_problem_json_404() {
    let app = Mocks::new().app().await;
    problem(
        &app,
        TestRequest::get().uri("/api/v1/nope"),
        404,
        "not_found",
    )
    .await;
    problem(&app, TestRequest::get().uri("/"), 404, "not_found").await;
}

#[actix_web::test]
async fn a_405_says_which_methods_the_resource_allows() {
    let app = Mocks::new().app().await;
    for (req, allow) in [
        (TestRequest::get().uri("/api/v1/orders"), "POST"),
        (TestRequest::delete().uri("/api/v1/products/1"), "GET"),
        (TestRequest::put().uri("/health"), "GET"),
    ] {
        let response = actix_web::test::call_service(&app, req.to_request()).await;
        assert_eq!(response.status(), 405);
        assert_eq!(
            response
                .headers()
                .get(actix_web::http::header::ALLOW)
                .and_then(|value| value.to_str().ok()),
            Some(allow)
        );
    }
}

#[actix_web::test]
async fn wrong_methods_are_problem_json_405() {
    let app = Mocks::new().app().await;
    problem(
        &app,
        TestRequest::get().uri("/api/v1/orders"),
        405,
        "method_not_allowed",
    )
    .await;
    problem(
        &app,
        TestRequest::delete().uri("/api/v1/products/1"),
        405,
        "method_not_allowed",
    )
    .await;
}

#[actix_web::test]
async fn problems_carry_type_title_and_status() {
    let app = Mocks::new().app().await;
    let body = problem(
        &app,
        TestRequest::get().uri("/api/v1/users/me"),
        401,
        "missing_authorization",
    )
    .await;
    assert_eq!(body["type"], "urn:botshop:problem:missing_authorization");
    assert!(body["title"].is_string());
}
