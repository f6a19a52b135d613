//! The S3 store against a real S3-compatible server: `TEST_S3_ENDPOINT` (CI starts moto's
//! server mode; MinIO works too) with any credentials it accepts. Without it the tests
//! skip, unless `BOTSHOP_REQUIRE_S3=1` turns the skip into a failure.

use domain::media::{ImageFormat, MediaName, MediaStore};
use infra_media::{MediaSettings, MediaTarget, S3MediaStore, S3Settings};
use secrecy::SecretString;

fn endpoint() -> Option<String> {
    match std::env::var("TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            assert!(
                std::env::var("BOTSHOP_REQUIRE_S3").as_deref() != Ok("1"),
                "BOTSHOP_REQUIRE_S3=1 but TEST_S3_ENDPOINT is not set"
            );
            eprintln!("skipped: TEST_S3_ENDPOINT is not set");
            None
        }
    }
}

/// A fresh bucket on the server (moto and MinIO accept unsigned bucket creation from
/// localhost only with their default settings; a signed one would need an S3 client).
async fn bucket(endpoint: &str) -> String {
    let bucket = format!("botshop-test-{}", uuid::Uuid::new_v4().simple());
    let response = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    bucket
}

fn settings(endpoint: &str, bucket: &str) -> S3Settings {
    let settings = MediaSettings {
        media_s3_bucket: Some(bucket.to_owned()),
        media_s3_endpoint: Some(endpoint.to_owned()),
        media_s3_access_key_id: Some("testing".to_owned()),
        media_s3_secret_access_key: Some(SecretString::from("testing")),
        ..MediaSettings::default()
    };
    match settings.target().unwrap() {
        MediaTarget::S3(settings) => settings,
        MediaTarget::Local(_) => unreachable!(),
    }
}

#[tokio::test]
async fn a_picture_is_read_back_from_the_bucket_with_its_type_and_caching() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = bucket(&endpoint).await;
    let store = infra_media::open(&MediaTarget::S3(settings(&endpoint, &bucket)))
        .await
        .unwrap();
    let name = MediaName::of(b"jpeg bytes", ImageFormat::Jpeg);
    assert_eq!(store.get(&name).await.unwrap(), None);
    store.put(&name, b"jpeg bytes".to_vec()).await.unwrap();
    store.put(&name, b"jpeg bytes".to_vec()).await.unwrap();
    assert_eq!(
        store.get(&name).await.unwrap().unwrap().bytes,
        b"jpeg bytes"
    );

    // What the bucket holds, as anyone serving it directly would see it.
    let direct = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_endpoint(&endpoint)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_allow_http(true)
        .build()
        .unwrap();
    let object =
        object_store::ObjectStore::get(&direct, &object_store::path::Path::from(name.to_string()))
            .await
            .unwrap();
    let attribute = |which| object.attributes.get(&which).map(|value| value.to_string());
    assert_eq!(
        attribute(object_store::Attribute::ContentType).as_deref(),
        Some("image/jpeg")
    );
    assert_eq!(
        attribute(object_store::Attribute::CacheControl).as_deref(),
        Some(infra_media::s3::IMMUTABLE)
    );
}

#[tokio::test]
async fn a_missing_bucket_fails_the_start_up_check() {
    let Some(endpoint) = endpoint() else { return };
    let missing = format!("botshop-missing-{}", uuid::Uuid::new_v4().simple());
    let store = S3MediaStore::new(&settings(&endpoint, &missing)).unwrap();
    let error = store.check().await.unwrap_err();
    let mut shown = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        shown.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    assert!(shown.contains(&missing), "{shown}");
    assert!(!shown.contains("testing"), "credentials in {shown}");
}
