//! `POST /api/v1/admin/images` and `GET /media/{name}`, with the processor and the store
//! mocked (infra-media tests them; the server's tests run the real ones end to end).

use actix_web::test::{self, TestRequest};
use domain::media::{
    ImageError, ImageFormat, MAX_UPLOAD_BYTES, MediaName, ProcessedImage, StoredMedia,
};

use crate::support::{ADMIN, API_TOKEN, Mocks, SHOP_URL, auth_header, call, call_raw, problem};

const BOUNDARY: &str = "botshop-test-boundary";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\nrest of a png";

fn bearer() -> (&'static str, String) {
    ("Authorization", format!("Bearer {API_TOKEN}"))
}

/// A multipart body with these parts: (name, file name, bytes).
fn multipart(parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file_name, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; \
                 filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn upload(body: Vec<u8>) -> TestRequest {
    TestRequest::post()
        .uri("/api/v1/admin/images")
        .insert_header(bearer())
        .insert_header((
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        ))
        .set_payload(body)
}

fn processed() -> ProcessedImage {
    ProcessedImage {
        bytes: b"re-encoded png".to_vec(),
        format: ImageFormat::Png,
        width: 640,
        height: 480,
    }
}

#[actix_web::test]
async fn an_admin_uploads_a_picture_and_gets_its_absolute_url() {
    let mut mocks = Mocks::new();
    mocks
        .images
        .expect_process()
        .withf(|format, bytes| *format == ImageFormat::Png && bytes == PNG)
        .times(1)
        .returning(|_, _| Ok(processed()));
    let name = MediaName::of(b"re-encoded png", ImageFormat::Png);
    let stored = name.clone();
    mocks
        .media
        .expect_put()
        .withf(move |n, bytes| *n == stored && bytes == b"re-encoded png")
        .times(1)
        .returning(|_, _| Ok(()));
    let app = mocks.app().await;
    // A text field beside the file is read past; the file's declared name and type
    // (a .gif name, octet-stream) do not matter.
    let raw = call_raw(
        &app,
        upload(multipart(&[
            ("alt", "", b"a pizza"),
            ("file", "photo.gif", PNG),
        ])),
    )
    .await;
    assert_eq!(raw.status, 201, "{}", raw.body);
    let url = format!("{SHOP_URL}/media/{name}");
    assert_eq!(raw.header("location"), Some(url.as_str()));
    let body = raw.json();
    assert_eq!(body["url"], url);
    assert_eq!(body["name"], name.to_string());
    assert_eq!(body["content_type"], "image/png");
    assert_eq!(body["width"], 640);
    assert_eq!(body["height"], 480);
    assert_eq!(body["bytes"], 14);
}

#[actix_web::test]
async fn a_person_admin_may_upload_and_a_customer_may_not() {
    let mut mocks = Mocks::new();
    mocks
        .images
        .expect_process()
        .times(1)
        .returning(|_, _| Ok(processed()));
    mocks.media.expect_put().times(1).returning(|_, _| Ok(()));
    let app = mocks.app().await;
    let as_admin = upload(multipart(&[("file", "a.png", PNG)]))
        .insert_header(("Authorization", auth_header(ADMIN)));
    let (status, _, _) = call(&app, as_admin).await;
    assert_eq!(status, 201);
    let as_customer = upload(multipart(&[("file", "a.png", PNG)]))
        .insert_header(("Authorization", auth_header(ADMIN + 1)));
    problem(&app, as_customer, 403, "forbidden").await;
    let anonymous = TestRequest::post()
        .uri("/api/v1/admin/images")
        .insert_header((
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        ))
        .set_payload(multipart(&[("file", "a.png", PNG)]));
    problem(&app, anonymous, 401, "missing_authorization").await;
}

#[actix_web::test]
async fn content_that_is_not_a_picture_is_415_without_decoding() {
    let mut mocks = Mocks::new();
    mocks.images.expect_process().never();
    mocks.media.expect_put().never();
    let app = mocks.app().await;
    for bytes in [
        &b"GIF89a\x01\x00"[..],
        b"<svg onload=alert(1)>",
        b"%PDF-1.7",
        b"",
    ] {
        // A PNG's name and type do not make it one.
        let body = problem(
            &app,
            upload(multipart(&[("file", "photo.png", bytes)])),
            415,
            "unsupported_image",
        )
        .await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("JPEG, PNG or WebP")
        );
    }
}

#[actix_web::test]
async fn a_body_that_is_not_multipart_is_415_naming_the_type() {
    let app = Mocks::new().app().await;
    let request = TestRequest::post()
        .uri("/api/v1/admin/images")
        .insert_header(bearer())
        .insert_header(("Content-Type", "image/png"))
        .set_payload(PNG);
    let body = problem(&app, request, 415, "unsupported_media_type").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("multipart/form-data")
    );
}

#[actix_web::test]
async fn a_picture_over_5_mib_is_413() {
    let mut mocks = Mocks::new();
    mocks.images.expect_process().never();
    let app = mocks.app().await;
    let mut big = PNG.to_vec();
    big.resize(MAX_UPLOAD_BYTES + 1, b'x');
    problem(
        &app,
        upload(multipart(&[("file", "big.png", &big)])),
        413,
        "payload_too_large",
    )
    .await;
    // Exactly at the limit is accepted as far as size goes.
    let mut mocks = Mocks::new();
    mocks
        .images
        .expect_process()
        .withf(|_, bytes| bytes.len() == MAX_UPLOAD_BYTES)
        .times(1)
        .returning(|_, _| Err(ImageError::Undecodable));
    let app = mocks.app().await;
    big.truncate(MAX_UPLOAD_BYTES);
    let body = problem(
        &app,
        upload(multipart(&[("file", "big.png", &big)])),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "file");
    assert_eq!(body["errors"][0]["code"], "invalid_image");
}

#[actix_web::test]
async fn a_missing_or_second_file_part_is_422_naming_file() {
    let app = Mocks::new().app().await;
    let body = problem(
        &app,
        upload(multipart(&[("picture", "a.png", PNG)])),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "file");
    assert_eq!(body["errors"][0]["code"], "required");
    let body = problem(
        &app,
        upload(multipart(&[("file", "a.png", PNG), ("file", "b.png", PNG)])),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "one_file");
    let body = problem(
        &app,
        upload(b"--not-the-boundary\r\n\r\n".to_vec()),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "file");
}

#[actix_web::test]
async fn a_picture_too_large_in_pixels_is_422() {
    let mut mocks = Mocks::new();
    mocks
        .images
        .expect_process()
        .returning(|_, _| Err(ImageError::TooManyPixels));
    let app = mocks.app().await;
    let body = problem(
        &app,
        upload(multipart(&[("file", "a.png", PNG)])),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "image_too_large");
}

#[actix_web::test]
async fn a_failing_store_is_503_and_says_nothing_of_it() {
    let mut mocks = Mocks::new();
    mocks
        .images
        .expect_process()
        .returning(|_, _| Ok(processed()));
    mocks.media.expect_put().returning(|_, _| {
        Err(domain::media::MediaStoreError(anyhow::anyhow!(
            "S3 bucket secret-bucket: access denied"
        )))
    });
    let app = mocks.app().await;
    let body = problem(
        &app,
        upload(multipart(&[("file", "a.png", PNG)])),
        503,
        "service_unavailable",
    )
    .await;
    assert!(!body.to_string().contains("secret-bucket"), "{body}");
}

#[actix_web::test]
async fn a_stored_picture_is_served_immutable_with_its_hash_as_etag() {
    let name = MediaName::of(b"png bytes", ImageFormat::Png);
    let mut mocks = Mocks::new();
    let wanted = name.clone();
    mocks
        .media
        .expect_get()
        .withf(move |n| *n == wanted)
        .times(1)
        .returning(|_| {
            Ok(Some(StoredMedia {
                bytes: b"png bytes".to_vec(),
            }))
        });
    let app = mocks.app().await;
    let response = test::call_service(
        &app,
        TestRequest::get()
            .uri(&format!("/media/{name}"))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let header = |key: &str| {
        response
            .headers()
            .get(key)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("content-type"), "image/png");
    assert_eq!(
        header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    let etag = header("etag");
    assert_eq!(etag, format!("\"{}\"", name.hash()));
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(test::read_body(response).await.as_ref(), b"png bytes");

    // A client holding it revalidates without the store being read (get: times(1)).
    let response = test::call_service(
        &app,
        TestRequest::get()
            .uri(&format!("/media/{name}"))
            .insert_header(("If-None-Match", etag))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 304);
}

#[actix_web::test]
async fn unknown_and_malformed_names_are_404() {
    let mut mocks = Mocks::new();
    mocks.media.expect_get().times(1).returning(|_| Ok(None));
    let app = mocks.app().await;
    let missing = MediaName::of(b"never uploaded", ImageFormat::Jpeg);
    problem(
        &app,
        TestRequest::get().uri(&format!("/media/{missing}")),
        404,
        "not_found",
    )
    .await;
    for bad in ["..%2F..%2Fetc%2Fpasswd", "abc.jpg", "x.svg", ".write-check"] {
        problem(
            &app,
            TestRequest::get().uri(&format!("/media/{bad}")),
            404,
            "not_found",
        )
        .await;
    }
}

#[actix_web::test]
async fn without_the_shops_public_address_an_upload_is_refused_naming_the_setting() {
    let mut mocks = Mocks::new();
    mocks.images.expect_process().never();
    mocks.media.expect_put().never();
    let (mut state, config) = mocks.state();
    state.media_url = None;
    let http = http_actix::Http::new(state, config).unwrap();
    let app = crate::support::worker(&http).await;
    let body = problem(
        &app,
        upload(multipart(&[("file", "a.png", PNG)])),
        503,
        "not_configured",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("PUBLIC_BASE_URL"));
}
