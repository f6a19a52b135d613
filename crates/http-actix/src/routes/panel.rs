//! The admin panel: a Telegram Mini App served at `/admin/`, its files embedded in the
//! binary. It is a client of the admin API (`/api/v1/admin`), which it calls with the
//! admin's `Telegram.WebApp.initData`; nothing here reads or writes shop data.
//!
//! Outside Telegram, in the local embedded setup only (the demo token), the page offers a
//! development sign-in: `GET /admin/dev-sign-in?user_id=N` signs an initData for user N
//! with the demo token. Anywhere else it is not served, and an initData signed with the
//! published demo token could never pass a real bot token's check anyway.

use actix_web::http::header::{self, ETag, EntityTag};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::ApiState;
use crate::error::ApiError;

/// Where the panel is served.
pub const ADMIN_PANEL_PATH: &str = "/admin/";

const INDEX: &str = include_str!("../../admin/index.html");

/// The panel's files besides its page: name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../admin/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../admin/style.css"),
    ),
    (
        "vendor/telegram-web-app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../admin/vendor/telegram-web-app.js"),
    ),
];

/// What the page may load and where it may be shown: its own files, pictures from
/// anywhere over HTTPS (products' galleries), calls to this origin only; framed by
/// Telegram's web clients. telegram-web-app.js adds `<style>` elements, hence the inline
/// styles.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' https: data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'self' https://web.telegram.org https://*.telegram.org";

/// A file's fingerprint, for its `ETag` and the page's `?v=`: FNV-1a over its bytes, so
/// that any change of a file, not only of its length, reaches browsers.
fn fingerprint(parts: &[&[u8]]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Each file's fingerprint, and the whole panel's, computed once.
fn fingerprints() -> &'static (Vec<String>, String) {
    static FINGERPRINTS: std::sync::OnceLock<(Vec<String>, String)> = std::sync::OnceLock::new();
    FINGERPRINTS.get_or_init(|| {
        let each = FILES
            .iter()
            .map(|(_, _, bytes)| fingerprint(&[bytes]))
            .collect();
        let all: Vec<&[u8]> = FILES.iter().map(|(_, _, bytes)| *bytes).collect();
        (each, fingerprint(&all))
    })
}

/// The page, with the development sign-in switched on or off.
pub async fn index(state: web::Data<ApiState>) -> HttpResponse {
    let page = INDEX
        .replace(
            "{{DEV_SIGN_IN}}",
            if state.dev_sign_in.is_some() {
                "on"
            } else {
                "off"
            },
        )
        .replace("{{VERSION}}", &fingerprints().1);
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(page)
}

/// `/admin` without its slash: the page's relative paths need it.
pub async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, ADMIN_PANEL_PATH))
        .finish()
}

/// One of the panel's files.
pub async fn file(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let Some(index) = FILES.iter().position(|(name, _, _)| *name == path.as_str()) else {
        return Err(ApiError::NotFound("Not found"));
    };
    let (_, content_type, bytes) = FILES[index];
    let tag = EntityTag::new_strong(fingerprints().0[index].clone());
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|t| t.trim() == tag.to_string()));
    if fresh {
        return Ok(HttpResponse::NotModified()
            .insert_header(ETag(tag))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(ETag(tag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(bytes))
}

#[derive(Debug, Deserialize)]
pub struct DevSignInQuery {
    user_id: Option<String>,
}

/// The development sign-in: an initData for `user_id`, signed with the demo token. Only
/// served in the local embedded setup with the demo token; 404 anywhere else.
pub async fn dev_sign_in(
    state: web::Data<ApiState>,
    query: web::Query<DevSignInQuery>,
) -> Result<HttpResponse, ApiError> {
    let Some(signer) = &state.dev_sign_in else {
        return Err(ApiError::NotFound("Not found"));
    };
    let id = query
        .user_id
        .as_deref()
        .and_then(|raw| raw.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::validation(
                "user_id",
                "invalid_id",
                "user_id must be a Telegram user id",
            )
        })?;
    let auth_date = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let user = serde_json::json!({"id": id, "first_name": "Dev", "username": format!("dev{id}")})
        .to_string();
    let init_data = signer.sign(&[("auth_date", &auth_date), ("user", &user)]);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "init_data": init_data })))
}
