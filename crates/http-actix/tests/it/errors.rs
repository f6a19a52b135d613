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
