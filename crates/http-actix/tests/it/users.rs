use actix_web::test::TestRequest;

use crate::support::*;

#[actix_web::test]
async fn me_returns_the_verified_user() {
    let mut mocks = Mocks::new();
    mocks
        .users
        .expect_upsert()
        .withf(|profile, _| {
            profile.id.get() == 987_654_321 && profile.first_name.as_deref() == Some("Иван")
        })
        .times(1)
        .returning(|_, _| Ok(customer()));
    let app = mocks.app().await;
    let req = TestRequest::get()
        .uri("/api/v1/users/me")
        .insert_header(("Authorization", auth_header(987_654_321)));
    let (status, _, body) = call(&app, req).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({
            "id": 1, "telegram_id": 987654321, "username": "ivan", "first_name": "Иван",
            "last_name": null, "created_at": "2025-12-22T12:30:00Z"
        })
    );
}

#[actix_web::test]
async fn missing_authorization_is_401() {
    let app = Mocks::new().app().await;
    let (status, content_type, body) = call(&app, TestRequest::get().uri("/api/v1/users/me")).await;
    assert_eq!(
        (status, content_type.as_str()),
        (401, "application/problem+json")
    );
    assert_eq!(body["code"], "missing_authorization");
}

#[actix_web::test]
async fn wrong_scheme_is_401() {
    let app = Mocks::new().app().await;
    let req = TestRequest::get()
        .uri("/api/v1/users/me")
        .insert_header(("Authorization", "Bearer abc"));
    problem(&app, req, 401, "invalid_auth_scheme").await;
}

#[actix_web::test]
async fn forged_init_data_is_401_and_the_body_does_not_echo_it() {
    let app = Mocks::new().app().await;
    let forged = auth_header(987_654_321).replace("987654321", "111111111");
    let req = TestRequest::get()
        .uri("/api/v1/users/me")
        .insert_header(("Authorization", forged.clone()));
    let body = problem(&app, req, 401, "hash_mismatch").await;
    let hash = forged.rsplit_once("hash=").unwrap().1;
    assert!(!body.to_string().contains(hash));
}

#[actix_web::test]
async fn expired_init_data_is_401() {
    let app = Mocks::new().app().await;
    let old = (time::OffsetDateTime::now_utc().unix_timestamp() - 90_000).to_string();
    let header = format!(
        "tma {}",
        verifier().sign(&[("auth_date", &old), ("user", r#"{"id":5}"#)])
    );
    let req = TestRequest::get()
        .uri("/api/v1/users/me")
        .insert_header(("Authorization", header));
    problem(&app, req, 401, "init_data_expired").await;
}

#[actix_web::test]
async fn oversized_init_data_is_401_even_when_signed() {
    let app = Mocks::new().app().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let padding = "x".repeat(domain::auth::MAX_INIT_DATA_BYTES);
    let long = format!(
        "tma {}",
        verifier().sign(&[
            ("auth_date", &now),
            ("user", r#"{"id":5}"#),
            ("start_param", &padding)
        ])
    );
    let req = TestRequest::get()
        .uri("/api/v1/users/me")
        .insert_header(("Authorization", long));
    problem(&app, req, 401, "init_data_too_long").await;

    let names: Vec<String> = (0..domain::auth::MAX_INIT_DATA_FIELDS)
        .map(|i| format!("f{i}"))
        .collect();
    let mut fields: Vec<(&str, &str)> = vec![("auth_date", &now), ("user", r#"{"id":5}"#)];
    fields.extend(names.iter().map(|name| (name.as_str(), "1")));
    let many = format!("tma {}", verifier().sign(&fields));
    let req = TestRequest::get()
        .uri("/api/v1/users/me")
        .insert_header(("Authorization", many));
    problem(&app, req, 401, "init_data_too_many_fields").await;
}
