//! Telegram Mini App authentication: verifying `initData`.
//!
//! The Mini App sends `Authorization: tma <initData>`, where initData is the raw
//! `Telegram.WebApp.initData` query string. Telegram signs it with a key derived from the
//! bot token, so a valid hash proves that Telegram issued it to this bot:
//!
//! - `secret = HMAC_SHA256(key = "WebAppData", msg = bot_token)`, derived once;
//! - `hash = hex(HMAC_SHA256(key = secret, msg = data_check_string))`, where the
//!   data_check_string is every field but `hash`, as `key=value` with the value URL-decoded,
//!   sorted by key and joined by `\n`.
//!
//! Nothing here logs or echoes the initData, the hash or the token.

use std::borrow::Cow;
use std::fmt;

use ring::hmac;
use serde::Deserialize;
use time::{Duration, OffsetDateTime};

use crate::settings::InvalidSetting;
use crate::values::TelegramId;

/// How far in the future an `auth_date` may lie, for clocks that disagree a little.
pub const MAX_CLOCK_SKEW: Duration = Duration::seconds(60);

/// The default for how old initData may be, in seconds (`INIT_DATA_MAX_AGE`): one day.
pub const DEFAULT_MAX_AGE_SECS: u32 = 86_400;

/// The default for how old initData may be: one day.
// A u32 always fits an i64 (`i64::from` is not const).
pub const DEFAULT_MAX_AGE: Duration = Duration::seconds(DEFAULT_MAX_AGE_SECS as i64);

/// The authentication configuration keys; each field name is its key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// Seconds after which initData is refused as expired (positive).
    pub init_data_max_age: u32,
    /// Comma-separated Telegram user ids of the shop's managers and admins: they may press
    /// the order buttons and use the admin API.
    #[serde(deserialize_with = "id_list")]
    pub admin_telegram_ids: Vec<i64>,
    /// The admin API's token for programs (`Authorization: Bearer …`), at least 32
    /// characters; unset or empty: no program may use the admin API.
    #[serde(deserialize_with = "optional_api_token")]
    pub admin_api_token: Option<crate::admin::ApiToken>,
}

/// `ADMIN_API_TOKEN`: unset or blank is `None`; anything else must pass
/// [`crate::admin::ApiToken::new`]. The error names the key, never the value.
fn optional_api_token<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<crate::admin::ApiToken>, D::Error> {
    let Some(token) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if token.trim().is_empty() {
        return Ok(None);
    }
    crate::admin::ApiToken::new(token.trim())
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A list of ids, however the configuration spells it: `"1, 2"`, `1` or `[1, 2]`.
fn id_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(i64),
        Many(Vec<i64>),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::One(id) => Ok(vec![id]),
        Raw::Many(ids) => Ok(ids),
        Raw::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(|id| {
                id.parse::<i64>().map_err(|_| {
                    serde::de::Error::custom(
                        "ADMIN_TELEGRAM_IDS must be comma-separated Telegram user ids",
                    )
                })
            })
            .collect(),
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            init_data_max_age: DEFAULT_MAX_AGE_SECS,
            admin_telegram_ids: Vec::new(),
            admin_api_token: None,
        }
    }
}

impl AuthSettings {
    /// Checks every value, naming the key of the first bad one.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.init_data_max_age == 0 {
            return Err(InvalidSetting::new(
                "INIT_DATA_MAX_AGE",
                "must be a positive number of seconds",
            ));
        }
        if self.admin_telegram_ids.iter().any(|id| *id <= 0) {
            return Err(InvalidSetting::new(
                "ADMIN_TELEGRAM_IDS",
                "must be Telegram user ids (positive numbers)",
            ));
        }
        Ok(())
    }

    /// How old initData may be.
    pub fn max_age(&self) -> Duration {
        Duration::seconds(i64::from(self.init_data_max_age))
    }
}

/// Why initData was refused. Each reason has a stable `code` for API clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the Authorization header is missing")]
    MissingAuthorization,
    #[error("initData is longer than {MAX_INIT_DATA_BYTES} bytes")]
    TooLong,
    #[error("initData has more than {MAX_INIT_DATA_FIELDS} fields")]
    TooManyFields,
    #[error("the Authorization header must use the tma scheme: `tma <initData>`")]
    InvalidScheme,
    #[error("initData has no hash")]
    MissingHash,
    #[error("initData repeats a key")]
    DuplicateKey,
    #[error("initData hash is not 64 hexadecimal characters")]
    InvalidHashFormat,
    #[error("initData signature does not match")]
    HashMismatch,
    #[error("initData has no auth_date")]
    MissingAuthDate,
    #[error("initData auth_date is not a unix timestamp")]
    InvalidAuthDate,
    #[error("initData has expired")]
    Expired,
    #[error("initData auth_date is in the future")]
    AuthDateInFuture,
    #[error("initData has no user")]
    MissingUser,
    #[error("initData user is not valid JSON with a positive id")]
    InvalidUser,
    /// `Authorization: Bearer …` that is not the admin API token (or none is configured).
    #[error("the API token is not valid")]
    InvalidApiToken,
}

impl AuthError {
    /// The stable, machine-readable reason.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingAuthorization => "missing_authorization",
            AuthError::TooLong => "init_data_too_long",
            AuthError::TooManyFields => "init_data_too_many_fields",
            AuthError::InvalidScheme => "invalid_auth_scheme",
            AuthError::MissingHash => "missing_hash",
            AuthError::DuplicateKey => "duplicate_key",
            AuthError::InvalidHashFormat => "invalid_hash_format",
            AuthError::HashMismatch => "hash_mismatch",
            AuthError::MissingAuthDate => "missing_auth_date",
            AuthError::InvalidAuthDate => "invalid_auth_date",
            AuthError::Expired => "init_data_expired",
            AuthError::AuthDateInFuture => "auth_date_in_future",
            AuthError::MissingUser => "missing_user",
            AuthError::InvalidUser => "invalid_user",
            AuthError::InvalidApiToken => "invalid_api_token",
        }
    }
}

/// The Telegram profile carried by verified initData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramUser {
    pub id: TelegramId,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The user's language as an IETF tag (`"ru"`, `"en"`, `"pt-br"`), so that messages to
    /// them can be written in it. `None` when Telegram sent none or it is not a plausible
    /// tag.
    pub language_code: Option<String>,
}

/// The longest language tag kept; Telegram's are a few characters, and IETF tags that
/// matter for choosing a language are well within this.
const MAX_LANGUAGE_CODE_LEN: usize = 35;

/// A language code as stored: ASCII letters, digits and `-`, at most
/// [`MAX_LANGUAGE_CODE_LEN`], lower-cased; anything else is dropped rather than refused.
fn language_code(code: String) -> Option<String> {
    let plausible = !code.is_empty()
        && code.len() <= MAX_LANGUAGE_CODE_LEN
        && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    plausible.then(|| code.to_ascii_lowercase())
}

/// A profile field as stored and shown: Telegram signed it, so it is never a reason to
/// refuse the customer, but control characters (NUL, which PostgreSQL refuses, escapes,
/// line breaks) are dropped.
fn profile_text(text: String) -> String {
    if text.chars().any(char::is_control) {
        text.chars().filter(|c| !c.is_control()).collect()
    } else {
        text
    }
}

/// initData whose signature and freshness have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedInitData {
    pub user: TelegramUser,
    pub auth_date: OffsetDateTime,
}

/// Extracts the initData from an `Authorization` header value (`tma <initData>`).
///
/// The scheme is matched case-insensitively, as HTTP auth schemes are.
pub fn init_data_from_authorization(header: Option<&str>) -> Result<&str, AuthError> {
    let header = header.ok_or(AuthError::MissingAuthorization)?;
    let (scheme, data) = header
        .trim()
        .split_once(' ')
        .ok_or(AuthError::InvalidScheme)?;
    if !scheme.eq_ignore_ascii_case("tma") {
        return Err(AuthError::InvalidScheme);
    }
    let data = data.trim();
    if data.is_empty() {
        return Err(AuthError::InvalidScheme);
    }
    Ok(data)
}

/// The longest initData [`InitDataVerifier::verify`] reads. What Telegram signs (a user,
/// a chat, a start parameter, a few ids and the signatures) is well under 2 KiB; anything
/// longer is refused before any decoding or hashing.
pub const MAX_INIT_DATA_BYTES: usize = 8 * 1024;

/// The most `&`-separated fields [`InitDataVerifier::verify`] reads: Telegram sends about a
/// dozen.
pub const MAX_INIT_DATA_FIELDS: usize = 32;

/// Verifies (and, for tools and tests, signs) initData for one bot.
///
/// The secret key is derived from the bot token once, here; the token itself is not kept.
pub struct InitDataVerifier {
    key: hmac::Key,
    max_age: Duration,
}

/// Never prints key material.
impl fmt::Debug for InitDataVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitDataVerifier")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct UserJson {
    id: i64,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    language_code: Option<String>,
}

impl InitDataVerifier {
    pub fn new(bot_token: &str, max_age: Duration) -> Self {
        let web_app_data = hmac::Key::new(hmac::HMAC_SHA256, b"WebAppData");
        let secret = hmac::sign(&web_app_data, bot_token.as_bytes());
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_ref()),
            max_age,
        }
    }

    /// Checks the signature, then freshness against `now`, then the user.
    ///
    /// The string is split on `&` before any decoding, so an encoded `&` or `=` inside a
    /// value cannot shift fields. A repeated key is refused rather than guessed at.
    pub fn verify(
        &self,
        init_data: &str,
        now: OffsetDateTime,
    ) -> Result<VerifiedInitData, AuthError> {
        // Bounded before any parsing: a request cannot make the server decode, sort or
        // hash more than this.
        if init_data.len() > MAX_INIT_DATA_BYTES {
            return Err(AuthError::TooLong);
        }
        if init_data.split('&').filter(|p| !p.is_empty()).count() > MAX_INIT_DATA_FIELDS {
            return Err(AuthError::TooManyFields);
        }
        let mut fields: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::with_capacity(8);
        let mut hash: Option<Cow<'_, str>> = None;
        for part in init_data.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = decode_pair(part);
            if key == "hash" {
                if hash.replace(value).is_some() {
                    return Err(AuthError::DuplicateKey);
                }
            } else {
                fields.push((key, value));
            }
        }
        fields.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if fields.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(AuthError::DuplicateKey);
        }

        let hash = hash.ok_or(AuthError::MissingHash)?;
        let expected = decode_hex_32(&hash).ok_or(AuthError::InvalidHashFormat)?;
        // Compared in constant time, so a forged hash learns nothing from the timing.
        if !constant_time_eq(self.tag(&fields).as_ref(), &expected) {
            return Err(AuthError::HashMismatch);
        }

        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_ref())
        };

        let auth_date = field("auth_date").ok_or(AuthError::MissingAuthDate)?;
        let auth_date: i64 = auth_date.parse().map_err(|_| AuthError::InvalidAuthDate)?;
        let auth_date = OffsetDateTime::from_unix_timestamp(auth_date)
            .map_err(|_| AuthError::InvalidAuthDate)?;
        if auth_date - now > MAX_CLOCK_SKEW {
            return Err(AuthError::AuthDateInFuture);
        }
        if now - auth_date > self.max_age {
            return Err(AuthError::Expired);
        }

        let user = field("user").ok_or(AuthError::MissingUser)?;
        let user: UserJson = serde_json::from_str(user).map_err(|_| AuthError::InvalidUser)?;
        let id = TelegramId::parse(user.id).map_err(|_| AuthError::InvalidUser)?;
        Ok(VerifiedInitData {
            user: TelegramUser {
                id,
                username: user.username.map(profile_text),
                first_name: user.first_name.map(profile_text),
                last_name: user.last_name.map(profile_text),
                language_code: user.language_code.and_then(language_code),
            },
            auth_date,
        })
    }

    /// `HMAC_SHA256(secret, data_check_string)` of fields already sorted by key, the one
    /// place the data-check string is defined (for `verify` and `sign` alike). It is
    /// streamed into the HMAC rather than built: no allocation.
    fn tag(&self, sorted: &[(Cow<'_, str>, Cow<'_, str>)]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        for (i, (key, value)) in sorted.iter().enumerate() {
            if i > 0 {
                context.update(b"\n");
            }
            context.update(key.as_bytes());
            context.update(b"=");
            context.update(value.as_bytes());
        }
        context.sign()
    }

    /// Signs `fields` as Telegram would and returns the initData query string, `hash` last.
    ///
    /// For the `sign-init-data` command and for tests: a client of a real shop gets its
    /// initData from Telegram, never from this.
    pub fn sign(&self, fields: &[(&str, &str)]) -> String {
        let mut sorted: Vec<(Cow<'_, str>, Cow<'_, str>)> = fields
            .iter()
            .map(|&(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)))
            .collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let tag = self.tag(&sorted);
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            out.append_pair(k, v);
        }
        out.append_pair("hash", &encode_hex(tag.as_ref()));
        out.finish()
    }
}

/// Splits `part` (which holds no raw `&`) at its first `=` and decodes both sides as
/// `application/x-www-form-urlencoded`, exactly as `form_urlencoded::parse` (and the
/// browser's URLSearchParams) does: `+` is a space, `%XX` a byte, a malformed `%` stays as
/// it is, and bytes that are not UTF-8 become U+FFFD.
fn decode_pair(part: &str) -> (Cow<'_, str>, Cow<'_, str>) {
    let (key, value) = part.split_once('=').unwrap_or((part, ""));
    (decode_component(key), decode_component(value))
}

/// One side of a pair (see [`decode_pair`]). Borrowed when there is nothing to decode.
///
/// Our own rather than `form_urlencoded::parse`, which was a third of verifying initData:
/// the user's JSON is nearly all `%XX`, and a plain loop over the bytes decodes it several
/// times faster than the crate's iterator chain. A property test holds the two equal.
fn decode_component(encoded: &str) -> Cow<'_, str> {
    let bytes = encoded.as_bytes();
    let Some(first) = bytes.iter().position(|&b| b == b'%' || b == b'+') else {
        return Cow::Borrowed(encoded);
    };
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..first]);
    let mut i = first;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            ) {
                (Some(high), Some(low)) => {
                    out.push((high << 4) | low);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(decoded) => Cow::Owned(decoded),
        Err(invalid) => Cow::Owned(String::from_utf8_lossy(invalid.as_bytes()).into_owned()),
    }
}

/// Compares in time independent of where the bytes differ, so the comparison does not
/// reveal how much of a forged hash (or secret) was right. Every secret BotShop checks
/// goes through it: initData hashes, the webhook's secret.
#[inline(never)]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

fn decode_hex_32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
    }
    Some(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const TOKEN: &str = "123456:TEST-TOKEN";
    const NOW: i64 = 1_766_400_000;

    fn verifier() -> InitDataVerifier {
        InitDataVerifier::new(TOKEN, DEFAULT_MAX_AGE)
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(NOW).unwrap()
    }

    fn user_json() -> String {
        r#"{"id":987654321,"first_name":"Иван","last_name":"Петров","username":"ivan","language_code":"ru"}"#.to_owned()
    }

    fn signed(fields: &[(&str, &str)]) -> String {
        verifier().sign(fields)
    }

    fn standard() -> String {
        let auth_date = NOW.to_string();
        signed(&[
            ("query_id", "AAH"),
            ("user", &user_json()),
            ("auth_date", &auth_date),
        ])
    }

    /// A hash computed independently of `sign`, straight from Telegram's description.
    fn telegram_hash(check_string: &str) -> String {
        let secret = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, b"WebAppData"),
            TOKEN.as_bytes(),
        );
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, secret.as_ref()),
            check_string.as_bytes(),
        );
        encode_hex(tag.as_ref())
    }

    /// Validly signed initData with `extra` more fields named `f0`, `f1`, …, each `value`.
    fn signed_with_extra(extra: usize, value: &str) -> String {
        let auth_date = NOW.to_string();
        let user = user_json();
        let names: Vec<String> = (0..extra).map(|i| format!("f{i}")).collect();
        let mut fields: Vec<(&str, &str)> = vec![("user", &user), ("auth_date", &auth_date)];
        fields.extend(names.iter().map(|name| (name.as_str(), value)));
        signed(&fields)
    }

    #[test]
    fn oversized_init_data_is_refused_before_parsing_even_when_signed() {
        // 31 signed fields and the hash: 32, the most accepted.
        let most = signed_with_extra(29, "x");
        assert!(verifier().verify(&most, now()).is_ok());
        let too_many = signed_with_extra(30, "x");
        assert!(matches!(
            verifier().verify(&too_many, now()),
            Err(AuthError::TooManyFields)
        ));
        let long = signed_with_extra(1, &"x".repeat(MAX_INIT_DATA_BYTES));
        assert!(matches!(
            verifier().verify(&long, now()),
            Err(AuthError::TooLong)
        ));
        // Empty parts (`&&`) are not fields.
        assert!(verifier().verify(&format!("&&{most}&&"), now()).is_ok());
    }

    #[test]
    fn valid_init_data_yields_the_user() {
        let verified = verifier().verify(&standard(), now()).unwrap();
        assert_eq!(verified.user.id.get(), 987_654_321);
        assert_eq!(verified.user.first_name.as_deref(), Some("Иван"));
        assert_eq!(verified.user.last_name.as_deref(), Some("Петров"));
        assert_eq!(verified.user.language_code.as_deref(), Some("ru"));
        assert_eq!(verified.user.username.as_deref(), Some("ivan"));
        assert_eq!(verified.auth_date.unix_timestamp(), NOW);
    }

    #[test]
    fn hash_follows_telegrams_algorithm_not_just_our_signer() {
        // Built by hand: percent-encoded user JSON, fields in a non-sorted order.
        let user = r#"{"id":42,"first_name":"Ann"}"#;
        let check = format!("auth_date={NOW}\nquery_id=Q1\nuser={user}");
        let hash = telegram_hash(&check);
        let encoded_user: String = form_urlencoded::byte_serialize(user.as_bytes()).collect();
        let raw = format!("user={encoded_user}&query_id=Q1&auth_date={NOW}&hash={hash}");
        let verified = verifier().verify(&raw, now()).unwrap();
        assert_eq!(verified.user.id.get(), 42);
    }

    #[test]
    fn encoded_ampersand_and_equals_inside_a_value_cannot_shift_fields() {
        let auth_date = NOW.to_string();
        let raw = signed(&[
            ("auth_date", &auth_date),
            ("start_param", "a=b&hash=00&user=evil"),
            ("user", &user_json()),
        ]);
        assert!(
            raw.contains("a%3Db%26hash%3D00"),
            "the value must travel encoded: {raw}"
        );
        let verified = verifier().verify(&raw, now()).unwrap();
        assert_eq!(verified.user.id.get(), 987_654_321);
    }

    #[test]
    fn cyrillic_names_survive_encoding() {
        let auth_date = NOW.to_string();
        let user = r#"{"id":5,"first_name":"Ёжик","last_name":"В тумане","username":"ёж"}"#;
        let raw = signed(&[("auth_date", &auth_date), ("user", user)]);
        let verified = verifier().verify(&raw, now()).unwrap();
        assert_eq!(verified.user.first_name.as_deref(), Some("Ёжик"));
        assert_eq!(verified.user.last_name.as_deref(), Some("В тумане"));
    }

    #[test]
    fn control_characters_in_the_signed_profile_are_dropped_not_refused() {
        let user =
            r#"{"id":8,"first_name":"Ив\u0000ан\r\n","last_name":"\u001b ","username":"iv\tan"}"#;
        let auth_date = NOW.to_string();
        let verified = verifier()
            .verify(&signed(&[("user", user), ("auth_date", &auth_date)]), now())
            .unwrap();
        assert_eq!(verified.user.first_name.as_deref(), Some("Иван"));
        assert_eq!(verified.user.last_name.as_deref(), Some(" "));
        assert_eq!(verified.user.username.as_deref(), Some("ivan"));
    }

    #[test]
    fn a_language_code_is_kept_lower_case_and_an_implausible_one_is_dropped() {
        let auth_date = NOW.to_string();
        let language = |user: &str| {
            verifier()
                .verify(&signed(&[("user", user), ("auth_date", &auth_date)]), now())
                .unwrap()
                .user
                .language_code
        };
        assert_eq!(
            language(r#"{"id":1,"language_code":"pt-BR"}"#).as_deref(),
            Some("pt-br")
        );
        assert_eq!(language(r#"{"id":1,"language_code":"e<n>"}"#), None);
        assert_eq!(language(r#"{"id":1,"language_code":""}"#), None);
        assert_eq!(language(r#"{"id":1}"#), None);
    }

    #[test]
    fn escaped_slashes_in_photo_url_are_signed_as_sent() {
        // Telegram escapes `/` as `\/` in the user JSON; the check string keeps the escapes.
        let user =
            r#"{"id":7,"first_name":"A","photo_url":"https:\/\/t.me\/i\/userpic\/320\/x.svg"}"#;
        let check = format!("auth_date={NOW}\nuser={user}");
        let hash = telegram_hash(&check);
        let encoded: String = form_urlencoded::byte_serialize(user.as_bytes()).collect();
        let raw = format!("auth_date={NOW}&user={encoded}&hash={hash}");
        assert_eq!(verifier().verify(&raw, now()).unwrap().user.id.get(), 7);
    }

    #[test]
    fn signature_field_stays_in_the_check_string() {
        let auth_date = NOW.to_string();
        let raw = signed(&[
            ("auth_date", &auth_date),
            ("signature", "c2lnbmF0dXJl"),
            ("user", &user_json()),
        ]);
        assert!(verifier().verify(&raw, now()).is_ok());
        // Dropping the signature field changes the check string, so the hash no longer fits.
        let without: Vec<&str> = raw
            .split('&')
            .filter(|p| !p.starts_with("signature="))
            .collect();
        assert_eq!(
            verifier().verify(&without.join("&"), now()),
            Err(AuthError::HashMismatch)
        );
    }

    #[test]
    fn authorization_header_needs_the_tma_scheme() {
        assert_eq!(
            init_data_from_authorization(None),
            Err(AuthError::MissingAuthorization)
        );
        assert_eq!(
            init_data_from_authorization(Some("Bearer abc")),
            Err(AuthError::InvalidScheme)
        );
        assert_eq!(
            init_data_from_authorization(Some("tma")),
            Err(AuthError::InvalidScheme)
        );
        assert_eq!(
            init_data_from_authorization(Some("tma   ")),
            Err(AuthError::InvalidScheme)
        );
        assert_eq!(init_data_from_authorization(Some("TMA a=1")), Ok("a=1"));
    }

    #[test]
    fn missing_hash_is_rejected() {
        let raw = standard();
        let without: Vec<&str> = raw.split('&').filter(|p| !p.starts_with("hash=")).collect();
        assert_eq!(
            verifier().verify(&without.join("&"), now()),
            Err(AuthError::MissingHash)
        );
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let raw = standard();
        assert_eq!(
            verifier().verify(&format!("{raw}&query_id=BBB"), now()),
            Err(AuthError::DuplicateKey)
        );
        assert_eq!(
            verifier().verify(&format!("{raw}&hash=00"), now()),
            Err(AuthError::DuplicateKey)
        );
    }

    #[test]
    fn malformed_hash_is_rejected() {
        let raw = standard();
        let (body, _) = raw.rsplit_once("&hash=").unwrap();
        for bad in ["abc", &"z".repeat(64), &"a".repeat(63), &"a".repeat(66)] {
            let candidate = format!("{body}&hash={bad}");
            assert_eq!(
                verifier().verify(&candidate, now()),
                Err(AuthError::InvalidHashFormat),
                "{bad}"
            );
        }
    }

    #[test]
    fn tampered_user_is_rejected() {
        let raw = standard().replace("987654321", "987654322");
        assert_eq!(verifier().verify(&raw, now()), Err(AuthError::HashMismatch));
    }

    #[test]
    fn a_different_bot_token_does_not_verify() {
        let other = InitDataVerifier::new("654321:OTHER", DEFAULT_MAX_AGE);
        assert_eq!(
            other.verify(&standard(), now()),
            Err(AuthError::HashMismatch)
        );
    }

    #[test]
    fn auth_date_must_be_present_and_numeric() {
        let raw = signed(&[("user", &user_json())]);
        assert_eq!(
            verifier().verify(&raw, now()),
            Err(AuthError::MissingAuthDate)
        );
        let raw = signed(&[("auth_date", "yesterday"), ("user", &user_json())]);
        assert_eq!(
            verifier().verify(&raw, now()),
            Err(AuthError::InvalidAuthDate)
        );
    }

    #[test]
    fn stale_init_data_is_rejected() {
        let at = |t: i64| signed(&[("auth_date", &t.to_string()), ("user", &user_json())]);
        assert!(
            verifier().verify(&at(NOW - 86_400), now()).is_ok(),
            "exactly max age is fine"
        );
        assert_eq!(
            verifier().verify(&at(NOW - 86_401), now()),
            Err(AuthError::Expired)
        );
        let strict = InitDataVerifier::new(TOKEN, Duration::seconds(60));
        assert_eq!(strict.verify(&at(NOW - 61), now()), Err(AuthError::Expired));
    }

    #[test]
    fn auth_date_more_than_a_minute_ahead_is_rejected() {
        let at = |t: i64| signed(&[("auth_date", &t.to_string()), ("user", &user_json())]);
        assert!(verifier().verify(&at(NOW + 60), now()).is_ok());
        assert_eq!(
            verifier().verify(&at(NOW + 61), now()),
            Err(AuthError::AuthDateInFuture)
        );
    }

    #[test]
    fn user_must_be_present_and_valid() {
        let auth_date = NOW.to_string();
        let raw = signed(&[("auth_date", &auth_date)]);
        assert_eq!(verifier().verify(&raw, now()), Err(AuthError::MissingUser));
        for bad in [
            "not json",
            r#"{"first_name":"A"}"#,
            r#"{"id":-4}"#,
            r#"{"id":"12"}"#,
        ] {
            let raw = signed(&[("auth_date", &auth_date), ("user", bad)]);
            assert_eq!(
                verifier().verify(&raw, now()),
                Err(AuthError::InvalidUser),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_error_has_a_distinct_code() {
        let all = [
            AuthError::MissingAuthorization,
            AuthError::InvalidScheme,
            AuthError::MissingHash,
            AuthError::DuplicateKey,
            AuthError::InvalidHashFormat,
            AuthError::HashMismatch,
            AuthError::MissingAuthDate,
            AuthError::InvalidAuthDate,
            AuthError::Expired,
            AuthError::AuthDateInFuture,
            AuthError::MissingUser,
            AuthError::InvalidUser,
        ];
        let mut codes: Vec<_> = all.iter().map(AuthError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn debug_output_holds_no_key_material() {
        let printed = format!("{:?}", verifier());
        assert!(!printed.contains("TEST-TOKEN"));
    }

    /// What a raw initData string means once decoded: its fields, with the hash lowercased.
    fn meaning(raw: &str) -> Vec<(String, String)> {
        let mut fields: Vec<(String, String)> = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = decode_pair(p);
                let v = if k == "hash" {
                    v.to_ascii_lowercase()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        fields.sort();
        fields
    }

    proptest! {
        #[test]
        fn pairs_decode_exactly_as_form_urlencoded_does(
            part in proptest::collection::vec(
                prop_oneof![
                    Just("%".to_owned()),
                    Just("+".to_owned()),
                    Just("=".to_owned()),
                    Just("%D0%98".to_owned()),
                    Just("%d0".to_owned()),
                    Just("%FF".to_owned()),
                    Just("%7b%22".to_owned()),
                    Just("%G1".to_owned()),
                    "[a-zA-Z0-9%+=]",
                    "\\PC",
                ],
                0..24,
            )
            // A part never holds a raw `&`: the query string is split at them first.
            .prop_map(|pieces| pieces.concat().replace('&', "a"))
        ) {
            let ours = decode_pair(&part);
            let theirs = form_urlencoded::parse(part.as_bytes())
                .next()
                .unwrap_or((Cow::Borrowed(""), Cow::Borrowed("")));
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn sign_then_verify_round_trips(
            id in 1i64..i64::MAX,
            first in "\\PC{0,24}",
            extra in "\\PC{0,40}",
            age in 0i64..86_400,
        ) {
            let user = serde_json::json!({"id": id, "first_name": first}).to_string();
            let auth_date = (NOW - age).to_string();
            let raw = signed(&[("auth_date", &auth_date), ("query_id", &extra), ("user", &user)]);
            let verified = verifier().verify(&raw, now()).unwrap();
            prop_assert_eq!(verified.user.id.get(), id);
            prop_assert_eq!(verified.user.first_name.as_deref(), Some(first.as_str()));
        }

        #[test]
        fn any_changed_byte_fails(index in any::<prop::sample::Index>(), replacement in 0x20u8..0x7f) {
            let raw = standard();
            let mut bytes = raw.clone().into_bytes();
            let at = index.index(bytes.len());
            prop_assume!(bytes[at] != replacement);
            bytes[at] = replacement;
            let mutated = String::from_utf8(bytes).unwrap();
            // Some edits do not change what the string means (`%2C` and `%2c`, a hash digit's
            // case): the signature rightly still holds for those. Every other edit must fail.
            prop_assume!(meaning(&mutated) != meaning(&raw));
            prop_assert!(verifier().verify(&mutated, now()).is_err());
        }
    }
}
