//! Uploaded pictures: `POST /api/v1/admin/images` takes one, `GET /media/{name}` serves
//! it forever (a name is its content's hash, so it never changes).

use actix_multipart::Multipart;
use actix_web::http::header::{self, ETag, EntityTag};
use actix_web::{HttpRequest, HttpResponse, web};
use domain::media::{ImageError, MAX_DECODED_SIDE, MAX_UPLOAD_BYTES, MediaName, UploadError};
use futures_util::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::AdminCaller;

/// Where stored pictures are served.
pub const MEDIA_PATH: &str = "/media/";

/// How long browsers and CDNs keep a picture: a year, never revalidated.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Room for the multipart framing around the picture (boundaries, part headers).
const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// The upload form, for the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ImageUpload {
    /// The picture: JPEG, PNG or WebP, at most 5 MiB.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// A stored picture.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedImageDto {
    /// The picture's absolute URL, ready for a product's `images`.
    #[schema(example = "https://shop.example.com/media/3f1c…9a.jpg")]
    pub url: String,
    /// Its name under `/media/`: the SHA-256 of its bytes and the extension.
    pub name: String,
    #[schema(example = "image/jpeg")]
    pub content_type: &'static str,
    /// Its size after re-encoding, in pixels.
    pub width: u32,
    pub height: u32,
    /// Its size after re-encoding, in bytes.
    pub bytes: usize,
}

/// Uploads a product picture.
///
/// `multipart/form-data` with one part named `file`: a JPEG, PNG or WebP of at most
/// 5 MiB, recognised by its content (not its name or declared type). The picture is
/// decoded and re-encoded in its own format: its metadata (EXIF, GPS, camera serials)
/// goes, the orientation the camera recorded is applied, and the longer side is scaled to
/// at most 2 048 px. It is stored under the SHA-256 of the result, so the same picture
/// uploaded twice is stored once and has one URL.
#[utoipa::path(
    post,
    path = "/api/v1/admin/images",
    tag = "admin",
    security(("tma" = []), ("bearer" = [])),
    request_body(content = inline(ImageUpload), content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored (or already there); `Location` is its URL", body = UploadedImageDto,
            headers(("Location" = String, description = "The picture's absolute URL"))),
        (status = 401, response = crate::openapi::AdminUnauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 413, response = crate::openapi::ImageTooLarge),
        (status = 415, response = crate::openapi::UnsupportedImage),
        (status = 422, response = crate::openapi::InvalidImage),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn upload_image(
    req: HttpRequest,
    state: web::Data<ApiState>,
    _admin: AdminCaller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("multipart/form-data"));
    if !multipart {
        return Err(ApiError::UnsupportedMediaType {
            expected: "multipart/form-data",
        });
    }
    let too_large = ApiError::PayloadTooLarge {
        limit: MAX_UPLOAD_BYTES,
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD) {
        return Err(too_large);
    }
    // Without the shop's public address a picture's URL would name an address nobody
    // reaches, and it would be stored in products.
    let Some(media_url) = state.media_url.as_deref() else {
        return Err(ApiError::NotConfigured("PUBLIC_BASE_URL"));
    };
    let bytes = read_file_part(Multipart::new(req.headers(), payload)).await?;
    let uploaded = state.media.upload(bytes).await.map_err(upload_error)?;
    let url = format!("{media_url}{}", uploaded.name);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, url.clone()))
        .json(UploadedImageDto {
            url,
            name: uploaded.name.to_string(),
            content_type: uploaded.name.format().content_type(),
            width: uploaded.width,
            height: uploaded.height,
            bytes: uploaded.bytes,
        }))
}

/// The bytes of the one part named `file`, at most [`MAX_UPLOAD_BYTES`]; other parts are
/// read past (within the same limit) and ignored.
async fn read_file_part(mut multipart: Multipart) -> Result<Vec<u8>, ApiError> {
    let malformed = |_| {
        ApiError::validation(
            "file",
            "invalid_multipart",
            "the body must be multipart/form-data with the picture in a part named file",
        )
    };
    let mut file: Option<Vec<u8>> = None;
    let mut other_bytes = 0usize;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(malformed)?;
        let is_file = field.name() == Some("file");
        if is_file && file.is_some() {
            return Err(ApiError::validation(
                "file",
                "one_file",
                "send one picture per request",
            ));
        }
        let mut part = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(malformed)?;
            if is_file {
                if part.len() + chunk.len() > MAX_UPLOAD_BYTES {
                    return Err(ApiError::PayloadTooLarge {
                        limit: MAX_UPLOAD_BYTES,
                    });
                }
                part.extend_from_slice(&chunk);
            } else {
                other_bytes += chunk.len();
                if other_bytes > MULTIPART_OVERHEAD {
                    return Err(ApiError::PayloadTooLarge {
                        limit: MAX_UPLOAD_BYTES,
                    });
                }
            }
        }
        if is_file {
            file = Some(part);
        }
    }
    match file {
        Some(bytes) if !bytes.is_empty() => Ok(bytes),
        Some(_) => Err(ApiError::UnsupportedImage),
        None => Err(ApiError::validation(
            "file",
            "required",
            "send the picture in a multipart part named file",
        )),
    }
}

fn upload_error(error: UploadError) -> ApiError {
    match error {
        UploadError::TooLarge => ApiError::PayloadTooLarge {
            limit: MAX_UPLOAD_BYTES,
        },
        UploadError::UnsupportedFormat => ApiError::UnsupportedImage,
        UploadError::Image(ImageError::Undecodable) => ApiError::validation(
            "file",
            "invalid_image",
            "the picture could not be decoded; it may be damaged or incomplete",
        ),
        UploadError::Image(ImageError::TooManyPixels) => ApiError::validation(
            "file",
            "image_too_large",
            format!("the picture must be at most {MAX_DECODED_SIDE} pixels on each side"),
        ),
        UploadError::Image(ImageError::Failed(reason)) => ApiError::Internal(reason.into()),
        UploadError::Storage(error) => ApiError::MediaUnavailable(error),
    }
}

/// An uploaded picture.
///
/// Served with `Cache-Control: public, max-age=31536000, immutable`: a name is the
/// SHA-256 of the bytes, so what it names never changes.
#[utoipa::path(
    get,
    path = "/media/{name}",
    tag = "assets",
    params(
        ("name" = String, Path, pattern = r"^[0-9a-f]{64}\.(jpg|png|webp)$", description = "The name an upload answered with"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer: 304 when unchanged"),
    ),
    responses(
        (status = 200, description = "The picture", content_type = "image/jpeg", body = Vec<u8>,
            headers(("ETag" = String, description = "The content's SHA-256"), ("Cache-Control" = String, description = "`public, max-age=31536000, immutable`"))),
        (status = 304, description = "Unchanged since the `ETag` in `If-None-Match`"),
        (status = 404, response = crate::openapi::NotFound),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn get_media(
    req: HttpRequest,
    state: web::Data<ApiState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::NotFound("Picture not found");
    let name = MediaName::parse(&name).ok_or_else(not_found)?;
    let tag = EntityTag::new_strong(name.hash().to_owned());
    let cache = (header::CACHE_CONTROL, IMMUTABLE);
    let candidates: Vec<String> = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(',').map(|c| c.trim().to_owned()).collect())
        .unwrap_or_default();
    // The client holds these very bytes: nothing to read.
    if candidates
        .iter()
        .any(|candidate| candidate.trim_start_matches("W/") == tag.to_string())
    {
        return Ok(HttpResponse::NotModified()
            .insert_header(ETag(tag))
            .insert_header(cache)
            .finish());
    }
    let fresh = candidates.iter().any(|candidate| candidate == "*");
    let stored = state
        .media
        .get(&name)
        .await
        .map_err(ApiError::MediaUnavailable)?
        .ok_or_else(not_found)?;
    if fresh {
        return Ok(HttpResponse::NotModified()
            .insert_header(ETag(tag))
            .insert_header(cache)
            .finish());
    }
    Ok(HttpResponse::Ok()
        .content_type(name.format().content_type())
        .insert_header(ETag(tag))
        .insert_header(cache)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ))
        .body(stored.bytes))
}
