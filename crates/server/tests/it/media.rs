//! Uploaded pictures on the real stack: the real re-encoder and MEDIA_DIR, then a product
//! that shows the picture through the public API.

use std::io::Cursor;

use serde_json::{Value, json};
use server::config::{DatabaseTarget, MediaTarget};

use crate::support::*;

const API_TOKEN: &str = "e2e-media-api-token-0123456789abcdefghij";
const BOUNDARY: &str = "botshop-e2e-boundary";

/// A 3000×2000 JPEG carrying an EXIF segment with a GPS position in it.
fn camera_photo() -> Vec<u8> {
    let picture = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(3000, 2000, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    }));
    let mut plain = Cursor::new(Vec::new());
    picture
        .write_to(&mut plain, image::ImageFormat::Jpeg)
        .unwrap();
    let plain = plain.into_inner();
    let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\0\0\0\0\0".to_vec();
    exif.extend_from_slice(b"GPS 59.9386N 30.3141E");
    let mut photo = plain[..2].to_vec();
    photo.extend_from_slice(&[0xFF, 0xE1]);
    photo.extend_from_slice(&u16::try_from(exif.len() + 2).unwrap().to_be_bytes());
    photo.extend_from_slice(&exif);
    photo.extend_from_slice(&plain[2..]);
    photo
}

fn form(file: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"IMG_0001.JPG\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn run(database: DatabaseTarget) {
    let telegram = FakeTelegram::start().await;
    let mut settings = settings(database, &telegram.server.uri());
    settings.auth.admin_api_token = Some(domain::admin::ApiToken::new(API_TOKEN).unwrap());
    settings.server.public_base_url = Some("https://shop.example.com".to_owned());
    let MediaTarget::Local(media_dir) = settings.media_target.clone() else {
        panic!("the tests keep pictures on disk");
    };
    let app = TestApp::spawn(&settings).await;
    let photo = camera_photo();
    let upload = || {
        app.client
            .post(app.url("/admin/images"))
            .header("Authorization", format!("Bearer {API_TOKEN}"))
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(form(&photo))
            .send()
    };

    let response = upload().await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let uploaded: Value = response.json().await.unwrap();
    let name = uploaded["name"].as_str().unwrap().to_owned();
    let url = format!("https://shop.example.com/media/{name}");
    assert_eq!(uploaded["url"], url);
    assert!(name.ends_with(".jpg"), "{name}");
    assert_eq!(
        (uploaded["width"].as_u64(), uploaded["height"].as_u64()),
        (Some(2048), Some(1365))
    );

    // The same photo again: the same name, one file.
    let again: Value = upload().await.unwrap().json().await.unwrap();
    assert_eq!(again["url"], url);
    let files: Vec<String> = std::fs::read_dir(&media_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|file| !file.starts_with('.'))
        .collect();
    assert_eq!(files, vec![name.clone()]);

    // Served from this shop, without the GPS position, as a 2048-px JPEG.
    let served = app
        .client
        .get(format!("{}/media/{name}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(
        served.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(served.headers()["content-type"], "image/jpeg");
    let bytes = served.bytes().await.unwrap();
    assert!(!bytes.windows(6).any(|w| w == b"59.938"), "GPS survived");
    assert!(!bytes.windows(4).any(|w| w == b"Exif"), "EXIF survived");
    let decoded = image::load_from_memory(&bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (2048, 1365));

    // A product shows it through the public API.
    let created = app
        .client
        .post(app.url("/admin/products"))
        .header("Authorization", format!("Bearer {API_TOKEN}"))
        .json(&json!({"category_id": 1, "name": "Фото-пицца", "price": "450", "images": [url]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let created: Value = created.json().await.unwrap();
    let public: Value = app
        .get(&format!("/products/{}", created["id"]), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(public["images"], json!([url]));
    assert_eq!(public["image_url"], url);
    let _ = std::fs::remove_dir_all(media_dir);
}

#[tokio::test]
async fn an_uploaded_photo_is_cleaned_stored_once_and_shown_on_sqlite() {
    run(fresh_sqlite("media-e2e")).await;
}

#[tokio::test]
async fn an_uploaded_photo_is_cleaned_stored_once_and_shown_on_postgres() {
    let Some((database, target)) = seeded_postgres().await else {
        return;
    };
    run(target).await;
    database.cleanup().await;
}
