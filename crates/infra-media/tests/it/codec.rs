use std::io::Cursor;

use domain::media::{ImageError, ImageFormat, ImageProcessor, MAX_DECODED_SIDE, MediaName};
use image::{DynamicImage, GenericImageView, ImageFormat as Codec, Rgb, RgbImage, Rgba, RgbaImage};
use infra_media::ImageCodec;
use infra_media::codec::process;

fn encoded(picture: &DynamicImage, format: Codec) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    picture.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A JPEG with an EXIF segment (APP1) right after its start marker: a big-endian TIFF
/// header with one IFD holding the orientation, followed by a text that stands for GPS
/// data and a camera serial number.
fn jpeg_with_exif(width: u32, height: u32, orientation: u16) -> Vec<u8> {
    let picture = DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, _| {
        Rgb([(x % 256) as u8, 80, 160])
    }));
    let plain = encoded(&picture, Codec::Jpeg);
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // TIFF header, IFD at offset 8
    exif.extend_from_slice(&[0, 1]); // one entry
    exif.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]); // Orientation, SHORT, 1
    exif.extend_from_slice(&orientation.to_be_bytes());
    exif.extend_from_slice(&[0, 0]);
    exif.extend_from_slice(&[0, 0, 0, 0]); // no next IFD
    exif.extend_from_slice(b"GPS 55.7558N 37.6173E SERIAL-XK42");
    let length = u16::try_from(exif.len() + 2).unwrap();
    let mut out = plain[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&exif);
    out.extend_from_slice(&plain[2..]);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test]
async fn a_jpeg_loses_its_exif_and_gps_and_keeps_its_look() {
    let upload = jpeg_with_exif(64, 32, 1);
    assert!(contains(&upload, b"Exif") && contains(&upload, b"55.7558N"));
    let processed = ImageCodec::new()
        .process(ImageFormat::Jpeg, upload)
        .await
        .unwrap();
    assert_eq!(processed.format, ImageFormat::Jpeg);
    assert_eq!((processed.width, processed.height), (64, 32));
    assert!(!contains(&processed.bytes, b"Exif"), "EXIF survived");
    assert!(!contains(&processed.bytes, b"55.7558N"), "GPS survived");
    assert!(!contains(&processed.bytes, b"SERIAL-XK42"));
    let decoded = image::load_from_memory_with_format(&processed.bytes, Codec::Jpeg).unwrap();
    assert_eq!(decoded.dimensions(), (64, 32));
    let pixel = decoded.get_pixel(10, 5);
    assert!(
        pixel[1].abs_diff(80) < 12 && pixel[2].abs_diff(160) < 12,
        "{pixel:?}"
    );
}

#[tokio::test]
async fn a_sideways_phone_photo_is_turned_upright_before_its_exif_goes() {
    // Orientation 6: the camera was turned 90° clockwise; viewers rotate the pixels.
    let processed = ImageCodec::new()
        .process(ImageFormat::Jpeg, jpeg_with_exif(64, 32, 6))
        .await
        .unwrap();
    assert_eq!((processed.width, processed.height), (32, 64));
    assert!(!contains(&processed.bytes, b"Exif"));
}

#[tokio::test]
async fn a_large_picture_is_scaled_to_2048_on_its_longer_side() {
    let picture = DynamicImage::ImageRgb8(RgbImage::from_pixel(3000, 1500, Rgb([10, 200, 30])));
    let processed = ImageCodec::new()
        .process(ImageFormat::Png, encoded(&picture, Codec::Png))
        .await
        .unwrap();
    assert_eq!((processed.width, processed.height), (2048, 1024));
    let decoded = image::load_from_memory_with_format(&processed.bytes, Codec::Png).unwrap();
    assert_eq!(decoded.dimensions(), (2048, 1024));
    assert_eq!(decoded.get_pixel(1000, 500), Rgba([10, 200, 30, 255]));
}

#[tokio::test]
async fn a_small_picture_keeps_its_size_and_transparency() {
    let picture = DynamicImage::ImageRgba8(RgbaImage::from_fn(40, 30, |x, _| {
        Rgba([255, 0, 0, if x < 20 { 0 } else { 255 }])
    }));
    for (format, codec) in [
        (ImageFormat::Png, Codec::Png),
        (ImageFormat::Webp, Codec::WebP),
    ] {
        let processed = ImageCodec::new()
            .process(format, encoded(&picture, codec))
            .await
            .unwrap();
        assert_eq!(processed.format, format);
        assert_eq!(ImageFormat::sniff(&processed.bytes), Some(format));
        let decoded = image::load_from_memory_with_format(&processed.bytes, codec).unwrap();
        assert_eq!(decoded.dimensions(), (40, 30));
        assert_eq!(decoded.get_pixel(5, 5)[3], 0, "{format:?}");
        assert_eq!(
            decoded.get_pixel(30, 5),
            Rgba([255, 0, 0, 255]),
            "{format:?}"
        );
    }
}

#[tokio::test]
async fn the_same_picture_twice_gives_the_same_bytes_and_name() {
    let codec = ImageCodec::new();
    let first = codec
        .process(ImageFormat::Jpeg, jpeg_with_exif(50, 50, 1))
        .await
        .unwrap();
    let second = codec
        .process(ImageFormat::Jpeg, jpeg_with_exif(50, 50, 1))
        .await
        .unwrap();
    assert_eq!(
        MediaName::of(&first.bytes, first.format),
        MediaName::of(&second.bytes, second.format)
    );
}

#[tokio::test]
async fn a_broken_picture_is_undecodable() {
    let mut upload = encoded(&DynamicImage::ImageRgb8(RgbImage::new(20, 20)), Codec::Png);
    upload.truncate(40);
    for (format, bytes) in [
        (ImageFormat::Png, upload),
        (
            ImageFormat::Jpeg,
            vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 1, 2, 3],
        ),
        (ImageFormat::Webp, b"RIFF\x04\0\0\0WEBP".to_vec()),
    ] {
        let result = ImageCodec::new().process(format, bytes).await;
        assert_eq!(result, Err(ImageError::Undecodable), "{format:?}");
    }
}

#[tokio::test]
async fn a_canvas_past_the_side_limit_is_refused_before_it_is_allocated() {
    // Narrow enough to be tiny on disk, wider than any picture BotShop decodes.
    let picture = DynamicImage::ImageRgb8(RgbImage::new(MAX_DECODED_SIDE + 1, 1));
    let result = ImageCodec::new()
        .process(ImageFormat::Png, encoded(&picture, Codec::Png))
        .await;
    assert_eq!(result, Err(ImageError::TooManyPixels));
}

#[tokio::test]
async fn an_opaque_webp_photo_is_stored_as_a_jpeg() {
    let picture = DynamicImage::ImageRgb8(RgbImage::from_pixel(40, 30, Rgb([200, 40, 40])));
    let processed = ImageCodec::new()
        .process(ImageFormat::Webp, encoded(&picture, Codec::WebP))
        .await
        .unwrap();
    assert_eq!(processed.format, ImageFormat::Jpeg);
    assert_eq!(
        ImageFormat::sniff(&processed.bytes),
        Some(ImageFormat::Jpeg)
    );
    assert_eq!((processed.width, processed.height), (40, 30));
}

#[test]
fn a_picture_that_would_decode_past_the_memory_limit_is_refused_before_decoding() {
    // 1000 × 1000 with 16-bit RGBA is 8 MB decoded, from a PNG of a few kilobytes.
    let picture = DynamicImage::ImageRgba16(image::ImageBuffer::new(1000, 1000));
    let png = encoded(&picture, Codec::Png);
    assert!(png.len() < 100_000, "{}", png.len());
    assert_eq!(
        process(ImageFormat::Png, &png, 4 * 1024 * 1024),
        Err(ImageError::TooManyPixels)
    );
    assert!(process(ImageFormat::Png, &png, 16 * 1024 * 1024).is_ok());
}
