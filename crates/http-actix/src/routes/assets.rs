//! Pictures BotShop serves itself, so that the demo shop looks like a shop with no
//! internet: small SVGs embedded in the binary, under `/static/demo/`. The demo catalog
//! points its products' galleries at them with absolute URLs built from
//! `PUBLIC_BASE_URL`.

use actix_web::http::header::{self, ETag, EntityTag};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;

/// Where the demo pictures are served.
pub const DEMO_ASSETS_PATH: &str = "/static/demo/";

macro_rules! embedded {
    ($($name:literal,)+) => {
        /// Every embedded picture: its file name and its bytes.
        pub const DEMO_ASSETS: &[(&str, &[u8])] = &[
            $(($name, include_bytes!(concat!("../../static/demo/", $name)))),+
        ];
    };
}

embedded! {
    "desserts-1.svg",
    "desserts-2.svg",
    "desserts-3.svg",
    "desserts-4.svg",
    "desserts-5.svg",
    "desserts.svg",
    "drinks-1.svg",
    "drinks-2.svg",
    "drinks-3.svg",
    "drinks-4.svg",
    "drinks-5.svg",
    "drinks.svg",
    "pizza-1.svg",
    "pizza-2.svg",
    "pizza-3.svg",
    "pizza-4.svg",
    "pizza-5.svg",
    "pizza.svg",
    "rolls-1.svg",
    "rolls-2.svg",
    "rolls-3.svg",
    "rolls-4.svg",
    "rolls-5.svg",
    "rolls.svg",
}

/// One of the demo pictures.
///
/// An SVG image, cacheable for a day. SVGs are served with a policy that forbids scripts
/// and loading anything, so an SVG can never run code on this origin.
#[utoipa::path(
    get,
    path = "/static/demo/{name}",
    tag = "assets",
    params(
        ("name" = String, Path, pattern = r"^[a-z0-9-]{1,64}\.svg$", description = "The file name, e.g. `pizza-1.svg`"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer: 304 when unchanged"),
    ),
    responses(
        (status = 200, description = "The picture", content_type = "image/svg+xml", body = String,
            headers(("ETag" = String, description = "Validator for If-None-Match"), ("Cache-Control" = String, description = "`public, max-age=86400`"))),
        (status = 304, description = "Unchanged since the `ETag` in `If-None-Match`"),
        (status = 404, response = crate::openapi::NotFound),
    )
)]
pub async fn demo_asset(
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Some((name, bytes)) = DEMO_ASSETS.iter().find(|(file, _)| *file == name.as_str()) else {
        return Err(ApiError::NotFound("Picture not found"));
    };
    // The content never changes within a build: its length and name make a strong
    // validator together with the build's version.
    let tag = EntityTag::new_strong(format!(
        "{}-{}-{}",
        env!("CARGO_PKG_VERSION"),
        name.trim_end_matches(".svg"),
        bytes.len()
    ));
    let cache = (header::CACHE_CONTROL, "public, max-age=86400");
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|t| t.trim() == tag.to_string() || t.trim() == "*")
        });
    if fresh {
        return Ok(HttpResponse::NotModified()
            .insert_header(ETag(tag))
            .insert_header(cache)
            .finish());
    }
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header(ETag(tag))
        .insert_header(cache)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        ))
        .body(*bytes))
}
