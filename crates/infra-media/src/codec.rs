//! The image re-encoder: decodes an upload with the `image` crate, turns it the way its
//! metadata says, scales it down, and encodes it again without any metadata.

use std::io::Cursor;
use std::sync::Arc;

use async_trait::async_trait;
use domain::media::{
    ImageError, ImageFormat, ImageProcessor, MAX_DECODED_SIDE, MAX_SIDE, ProcessedImage,
};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageReader, Limits};
use tokio::sync::Semaphore;

/// JPEG quality of re-encoded photos: visually lossless for product pictures, about a
/// tenth of a camera's original after scaling to 2 048 px.
pub const JPEG_QUALITY: u8 = 85;

/// The most memory one decode may hold: a 12 000 × 12 000 RGBA canvas is 576 MB, so a
/// picture near the side limit must also be modest in depth.
const MAX_DECODE_ALLOC: u64 = 512 * 1024 * 1024;

/// Decodes and re-encodes pictures on tokio's blocking threads, one at a time: the work
/// is CPU-bound and can hold hundreds of megabytes, and uploads are rare admin actions,
/// so one at a time keeps the shop's other requests fast and its memory bounded.
#[derive(Debug, Clone)]
pub struct ImageCodec {
    permits: Arc<Semaphore>,
}

impl Default for ImageCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageCodec {
    pub fn new() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(1)),
        }
    }
}

#[async_trait]
impl ImageProcessor for ImageCodec {
    async fn process(
        &self,
        format: ImageFormat,
        bytes: Vec<u8>,
    ) -> Result<ProcessedImage, ImageError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ImageError::Failed("the image codec was shut down".to_owned()))?;
        tokio::task::spawn_blocking(move || process(format, &bytes))
            .await
            .map_err(|error| ImageError::Failed(format!("the image task failed: {error}")))?
    }
}

/// The whole transformation, synchronously.
pub fn process(format: ImageFormat, bytes: &[u8]) -> Result<ProcessedImage, ImageError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), codec_format(format));
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    // Phones store pictures sideways and say so in EXIF; the metadata goes, so the turn
    // is applied to the pixels. An unreadable orientation is no orientation.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    // The colour profile is not personal data, and without it wide-gamut photos look
    // washed out: it is kept. Everything else (EXIF, GPS, XMP, comments) is not.
    let icc_profile = decoder.icc_profile().ok().flatten();
    let mut picture = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    picture.apply_orientation(orientation);
    if picture.width().max(picture.height()) > MAX_SIDE {
        // Keeps the aspect ratio, the longer side becoming MAX_SIDE.
        picture = picture.resize(MAX_SIDE, MAX_SIDE, FilterType::Triangle);
    }
    let picture = match format {
        // JPEG has no alpha channel; 16-bit and float pictures are stored in 8 bits.
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(picture.to_rgb8()),
        ImageFormat::Png | ImageFormat::Webp if picture.color().has_alpha() => {
            DynamicImage::ImageRgba8(picture.to_rgba8())
        }
        ImageFormat::Png | ImageFormat::Webp => DynamicImage::ImageRgb8(picture.to_rgb8()),
    };
    let mut out = Vec::new();
    match format {
        ImageFormat::Jpeg => encode(
            &picture,
            JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY),
            icc_profile,
        ),
        ImageFormat::Png => encode(
            &picture,
            PngEncoder::new_with_quality(&mut out, CompressionType::Default, PngFilter::Adaptive),
            icc_profile,
        ),
        ImageFormat::Webp => encode(&picture, WebPEncoder::new_lossless(&mut out), icc_profile),
    }?;
    Ok(ProcessedImage {
        bytes: out,
        format,
        width: picture.width(),
        height: picture.height(),
    })
}

fn encode(
    picture: &DynamicImage,
    mut encoder: impl ImageEncoder,
    icc_profile: Option<Vec<u8>>,
) -> Result<(), ImageError> {
    if let Some(profile) = icc_profile {
        // An encoder that cannot carry a profile encodes without one.
        let _ = encoder.set_icc_profile(profile);
    }
    picture
        .write_with_encoder(encoder)
        .map_err(|error| ImageError::Failed(format!("could not encode the picture: {error}")))
}

fn codec_format(format: ImageFormat) -> image::ImageFormat {
    match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Webp => image::ImageFormat::WebP,
    }
}

fn decode_error(error: image::ImageError) -> ImageError {
    match error {
        image::ImageError::Limits(_) => ImageError::TooManyPixels,
        _ => ImageError::Undecodable,
    }
}
