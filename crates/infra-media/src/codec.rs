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

/// The most memory a decoded picture may take: 192 MiB, a 64-megapixel RGB photo or a
/// 48-megapixel one with transparency (phones take 12–50). Checked against what the
/// decoder says it will produce before it allocates anything; the scaled copy and the
/// encoding add at most about as much again.
pub const MAX_DECODED_BYTES: u64 = 192 * 1024 * 1024;

/// The largest colour profile kept, in bytes (real ones are a few KiB).
const MAX_ICC_PROFILE: usize = 64 * 1024;

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
        // The permit goes with the work: a request that gives up (a client timeout) must not
        // free it while its picture is still being decoded.
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| ImageError::Failed("the image codec was shut down".to_owned()))?;
        tokio::task::spawn_blocking(move || {
            let processed = process(format, &bytes, MAX_DECODED_BYTES);
            drop(permit);
            processed
        })
        .await
        .map_err(|error| ImageError::Failed(format!("the image task failed: {error}")))?
    }
}

/// The whole transformation, synchronously, refusing a picture that would decode to more
/// than `max_decoded_bytes`.
pub fn process(
    format: ImageFormat,
    bytes: &[u8],
    max_decoded_bytes: u64,
) -> Result<ProcessedImage, ImageError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), codec_format(format));
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    limits.max_alloc = Some(max_decoded_bytes);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    // The decoders do not hold the decoded picture to `max_alloc`: checked here, from the
    // header, before a byte of it is allocated (a small PNG can claim gigabytes).
    if decoder.total_bytes() > max_decoded_bytes {
        return Err(ImageError::TooManyPixels);
    }
    // Phones store pictures sideways and say so in EXIF; the metadata goes, so the turn
    // is applied to the pixels. An unreadable orientation is no orientation.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    // The colour profile is not personal data, and without it wide-gamut photos look
    // washed out: it is kept. Everything else (EXIF, GPS, XMP, comments) is not. Only an
    // RGB profile describes what is encoded (grey and CMYK pictures become RGB), and only
    // one of a sensible size.
    let icc_profile =
        decoder.icc_profile().ok().flatten().filter(|profile| {
            profile.len() <= MAX_ICC_PROFILE && profile.get(16..20) == Some(b"RGB ")
        });
    let mut picture = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    if picture.width().max(picture.height()) > MAX_SIDE {
        // Keeps the aspect ratio, the longer side becoming MAX_SIDE (the same whichever way
        // the picture is turned, so it is scaled first: turning the smaller copy is cheaper).
        picture = picture.resize(MAX_SIDE, MAX_SIDE, FilterType::Triangle);
    }
    picture.apply_orientation(orientation);
    // A photo sent as WebP is stored as a JPEG: the WebP encoder here is lossless only,
    // which would make a photo many times larger. One with transparency stays WebP.
    let format = match format {
        ImageFormat::Webp if !picture.color().has_alpha() => ImageFormat::Jpeg,
        other => other,
    };
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
