//! What the adapter needs to know, and the checks that make it safe to use: the runtime
//! [`TelegramConfig`], and [`TelegramSettings`], the configuration keys this adapter owns.

use std::fmt;
use std::time::Duration;

use domain::settings::{InvalidSetting, check_range};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use time::UtcOffset;
use time::macros::{format_description, offset};

/// Telegram's public Bot API endpoint.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

/// How long one API call may take in total, connection included, in seconds
/// (`TELEGRAM_TIMEOUT_SECS`).
pub const DEFAULT_TIMEOUT_SECS: u32 = 10;

/// How long one API call may take in total, connection included.
// A u32 always fits a u64 (`u64::from` is not const).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(DEFAULT_TIMEOUT_SECS as u64);

/// The offset the manager reads order times in: Moscow time.
pub const DEFAULT_UTC_OFFSET: UtcOffset = offset!(+3);

/// A bot token that passed the token rule. It never prints (`Debug` shows
/// `BotToken(<redacted>)`) and its memory is zeroized on drop.
///
/// [`BotToken::new`] is the one place a token is checked: the configuration and the
/// notifier both hold this type, so neither checks again.
#[derive(Clone)]
pub struct BotToken(SecretString);

impl BotToken {
    /// Checks `token` against the rule: digits, a colon, then the secret in ASCII letters,
    /// digits, `_` and `-`, as @BotFather issues them (`123456:ABC-DEF_ghi`).
    ///
    /// Anything else would be percent-encoded or reinterpreted inside the URL path, and
    /// then the encoded form would escape the `<redacted>` replacement in error strings;
    /// rejecting it here keeps redaction exact.
    ///
    /// # Errors
    /// [`TelegramConfigError::EmptyToken`] or [`TelegramConfigError::InvalidToken`], neither
    /// of which contains the token.
    pub fn new(token: impl Into<String>) -> Result<Self, TelegramConfigError> {
        let token = SecretString::from(token.into());
        check_token(token.expose_secret())?;
        Ok(Self(token))
    }

    /// The token itself, for signing and for request URLs. Never log it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BotToken(<redacted>)")
    }
}

/// The adapter's configuration. Build it with [`TelegramConfig::new`] (or
/// [`TelegramSettings::config`]) and override the defaults as needed; the API URL and
/// timeout are checked by [`crate::TelegramNotifier::new`].
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// The Bot API base URL, without the `/bot<token>` part. Tests point it at a fake.
    pub api_url: String,
    /// The bot's secret token, as issued by @BotFather (`123456:ABC-DEF…`).
    pub bot_token: BotToken,
    /// The chat that receives new-order messages (the manager's user id for a private chat).
    pub manager_chat_id: i64,
    /// The offset order times are shown in (`NOTIFY_UTC_OFFSET`).
    pub utc_offset: UtcOffset,
    /// The total time allowed for one API call.
    pub timeout: Duration,
    /// The Mini App's HTTPS address (`MINI_APP_URL`): the button under the bot's welcome.
    pub mini_app_url: Option<String>,
    /// The admin panel's address (`PUBLIC_BASE_URL/admin/`): the button `/admin` answers
    /// an admin with, when it is https.
    pub admin_panel_url: Option<String>,
    /// The payment provider's token from BotFather (`PAYMENT_PROVIDER_TOKEN`), for
    /// invoices in a provider's currency.
    pub payment_provider_token: Option<SecretString>,
}

impl TelegramConfig {
    /// A configuration with the default API URL, time zone offset and timeout.
    pub fn new(bot_token: BotToken, manager_chat_id: i64) -> Self {
        Self {
            api_url: DEFAULT_API_URL.to_owned(),
            bot_token,
            manager_chat_id,
            utc_offset: DEFAULT_UTC_OFFSET,
            timeout: DEFAULT_TIMEOUT,
            mini_app_url: None,
            admin_panel_url: None,
            payment_provider_token: None,
        }
    }
}

/// The Telegram configuration keys; each field name is its key, lower case
/// (`telegram_bot_token` is `TELEGRAM_BOT_TOKEN`). Unset keys take [`Default`]; the token
/// and the offset are checked as they are read, the rest by [`TelegramSettings::validate`].
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TelegramSettings {
    /// The bot's token from @BotFather. Empty counts as unset.
    #[serde(deserialize_with = "optional_bot_token")]
    pub telegram_bot_token: Option<BotToken>,
    /// The chat that receives new orders (non-zero).
    pub manager_chat_id: Option<i64>,
    /// The Bot API base URL (http:// or https://).
    pub telegram_api_url: String,
    /// The offset of the times in the manager's message, `+03:00` or `-05:30`.
    #[serde(deserialize_with = "utc_offset")]
    pub notify_utc_offset: UtcOffset,
    /// Timeout of one API call, in seconds (1–60).
    pub telegram_timeout_secs: u32,
    /// The Mini App's address (`https://…`), opened by the button under the bot's welcome
    /// to `/start`. Empty counts as unset.
    pub mini_app_url: Option<String>,
    /// How the bot receives its updates (`TELEGRAM_UPDATES`): `None` chooses (see
    /// [`UpdatesMode`]). Empty counts as unset.
    #[serde(deserialize_with = "optional_updates_mode")]
    pub telegram_updates: Option<UpdatesMode>,
    /// The payment provider's token from BotFather (`PAYMENTS=provider`). A secret. Empty
    /// counts as unset.
    pub payment_provider_token: Option<SecretString>,
}

/// How the bot receives Telegram's updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdatesMode {
    /// Telegram posts them to `POST /telegram/webhook` (a public HTTPS address and
    /// `TELEGRAM_WEBHOOK_SECRET`; the default when the secret is set).
    Webhook,
    /// One instance asks for them with `getUpdates` (no public address needed; the default
    /// for a configured bot without a webhook secret).
    Polling,
    /// The bot receives nothing (the default without a bot token and manager chat).
    Off,
}

impl Default for TelegramSettings {
    fn default() -> Self {
        Self {
            telegram_bot_token: None,
            manager_chat_id: None,
            telegram_api_url: DEFAULT_API_URL.to_owned(),
            notify_utc_offset: DEFAULT_UTC_OFFSET,
            telegram_timeout_secs: DEFAULT_TIMEOUT_SECS,
            mini_app_url: None,
            telegram_updates: None,
            payment_provider_token: None,
        }
    }
}

impl TelegramSettings {
    /// Checks every value, naming the key of the first bad one.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.manager_chat_id == Some(0) {
            return Err(InvalidSetting::new(
                "MANAGER_CHAT_ID",
                "must be a non-zero Telegram chat id",
            ));
        }
        if normalize_api_url(&self.telegram_api_url).is_err() {
            return Err(InvalidSetting::new(
                "TELEGRAM_API_URL",
                "must be an http:// or https:// URL",
            ));
        }
        if let Some(url) = self.mini_app_url()
            && !domain::values::is_absolute_https_url(url)
        {
            return Err(InvalidSetting::new(
                "MINI_APP_URL",
                "must be an https:// URL (Telegram opens Mini Apps over HTTPS only)",
            ));
        }
        check_range("TELEGRAM_TIMEOUT_SECS", self.telegram_timeout_secs, 1..=60)
    }

    /// `MINI_APP_URL`, trimmed; `None` when unset or blank.
    pub fn mini_app_url(&self) -> Option<&str> {
        self.mini_app_url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty())
    }

    /// `PAYMENT_PROVIDER_TOKEN`; `None` when unset or blank.
    pub fn payment_provider_token(&self) -> Option<&SecretString> {
        self.payment_provider_token
            .as_ref()
            .filter(|token| !token.expose_secret().trim().is_empty())
    }

    /// How long one API call may take.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.telegram_timeout_secs))
    }

    /// The notifier's configuration for `bot_token` and `manager_chat_id` (the server
    /// decides which token and chat apply: see its DEBUG rules).
    pub fn config(&self, bot_token: BotToken, manager_chat_id: i64) -> TelegramConfig {
        TelegramConfig {
            api_url: self.telegram_api_url.clone(),
            utc_offset: self.notify_utc_offset,
            timeout: self.timeout(),
            mini_app_url: self.mini_app_url().map(str::to_owned),
            payment_provider_token: self.payment_provider_token().cloned(),
            ..TelegramConfig::new(bot_token, manager_chat_id)
        }
    }
}

/// `TELEGRAM_UPDATES`: unset or blank is `None`; otherwise `webhook`, `polling` or `off`,
/// in any case.
fn optional_updates_mode<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<UpdatesMode>, D::Error> {
    let Some(mode) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    match mode.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "webhook" => Ok(Some(UpdatesMode::Webhook)),
        "polling" => Ok(Some(UpdatesMode::Polling)),
        "off" => Ok(Some(UpdatesMode::Off)),
        _ => Err(serde::de::Error::custom(InvalidSetting::new(
            "TELEGRAM_UPDATES",
            "must be webhook, polling or off",
        ))),
    }
}

/// `TELEGRAM_BOT_TOKEN`: unset or blank is `None`; anything else must pass [`BotToken::new`].
/// The error names the key and never contains the value.
fn optional_bot_token<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BotToken>, D::Error> {
    let Some(token) = Option::<SecretString>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if token.expose_secret().trim().is_empty() {
        return Ok(None);
    }
    BotToken::new(token.expose_secret()).map(Some).map_err(|_| {
        serde::de::Error::custom(InvalidSetting::new(
            "TELEGRAM_BOT_TOKEN",
            "must look like 123456:ABC-DEF... (digits, a colon, then the secret)",
        ))
    })
}

/// `NOTIFY_UTC_OFFSET`: `+03:00`, `-05:30`.
fn utc_offset<'de, D: Deserializer<'de>>(deserializer: D) -> Result<UtcOffset, D::Error> {
    let text = String::deserialize(deserializer)?;
    let format = format_description!("[offset_hour sign:mandatory]:[offset_minute]");
    UtcOffset::parse(text.trim(), &format).map_err(|_| {
        serde::de::Error::custom(InvalidSetting::new(
            "NOTIFY_UTC_OFFSET",
            format!("must look like +03:00 or -05:30, got {text:?}"),
        ))
    })
}

/// Why a [`TelegramConfig`] cannot be used. No variant ever contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelegramConfigError {
    #[error("telegram bot token must not be empty")]
    EmptyToken,
    #[error(
        "telegram bot token must look like 123456:ABC-DEF (digits, a colon, then ASCII letters, digits, '_' and '-')"
    )]
    InvalidToken,
    #[error("telegram api url is invalid: {0}")]
    InvalidApiUrl(String),
    #[error("telegram timeout must be greater than zero")]
    ZeroTimeout,
    #[error("failed to build the telegram http client: {0}")]
    HttpClient(String),
}

/// The token rule; see [`BotToken::new`].
fn check_token(token: &str) -> Result<(), TelegramConfigError> {
    if token.is_empty() {
        return Err(TelegramConfigError::EmptyToken);
    }
    let Some((id, secret)) = token.split_once(':') else {
        return Err(TelegramConfigError::InvalidToken);
    };
    let valid = !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && !secret.is_empty()
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if !valid {
        return Err(TelegramConfigError::InvalidToken);
    }
    Ok(())
}

/// Checks the base URL and returns it without a trailing slash, ready for `/bot<token>/`.
pub(crate) fn normalize_api_url(api_url: &str) -> Result<String, TelegramConfigError> {
    let trimmed = api_url.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(trimmed)
        .map_err(|e| TelegramConfigError::InvalidApiUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TelegramConfigError::InvalidApiUrl(format!(
            "scheme must be http or https, not {}",
            url.scheme()
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(TelegramConfigError::InvalidApiUrl(
            "it must not have a query or a fragment".to_owned(),
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_token() {
        let config = TelegramConfig::new(BotToken::new("123456:SECRET-TOKEN-abc").unwrap(), 42);
        let printed = format!("{config:?}");
        assert!(!printed.contains("SECRET"), "{printed}");
        assert!(printed.contains("<redacted>"));
        assert!(printed.contains("42"));
    }

    #[test]
    fn defaults_are_the_public_api_moscow_time_and_ten_seconds() {
        let config = TelegramConfig::new(BotToken::new("1:a").unwrap(), 42);
        assert_eq!(config.api_url, "https://api.telegram.org");
        assert_eq!(config.utc_offset, UtcOffset::from_hms(3, 0, 0).unwrap());
        assert_eq!(config.timeout, Duration::from_secs(10));
    }

    #[test]
    fn tokens_that_would_be_mangled_in_a_url_are_rejected() {
        assert_eq!(check_token(""), Err(TelegramConfigError::EmptyToken));
        for bad in [
            "12 34:abc",
            "123/456",
            "123:a?b",
            "123:a%41",
            "123:é",
            "abc:def",
            "123456",
            "123456:",
            ":abc",
            "123:a:b",
        ] {
            assert_eq!(
                check_token(bad),
                Err(TelegramConfigError::InvalidToken),
                "{bad}"
            );
        }
        assert_eq!(check_token("123456:SECRET-TOKEN_abc"), Ok(()));
    }

    #[test]
    fn a_bot_token_never_prints() {
        let token = BotToken::new("123456:SECRET-TOKEN-abc").unwrap();
        assert_eq!(format!("{token:?}"), "BotToken(<redacted>)");
    }

    fn settings(toml: &str) -> Result<TelegramSettings, String> {
        let settings: TelegramSettings = serde_json::from_str(toml).map_err(|e| e.to_string())?;
        settings.validate().map_err(|e| e.to_string())?;
        Ok(settings)
    }

    #[test]
    fn settings_default_to_the_adapter_defaults() {
        let s = settings("{}").unwrap();
        assert!(s.telegram_bot_token.is_none() && s.manager_chat_id.is_none());
        assert_eq!(s.telegram_api_url, DEFAULT_API_URL);
        assert_eq!(s.notify_utc_offset, DEFAULT_UTC_OFFSET);
        assert_eq!(s.timeout(), DEFAULT_TIMEOUT);
    }

    #[test]
    fn bad_settings_name_their_key_and_never_the_token() {
        let error = settings(r#"{"telegram_bot_token": "not a token"}"#).unwrap_err();
        assert!(
            error.contains("TELEGRAM_BOT_TOKEN") && !error.contains("not a token"),
            "{error}"
        );
        for (json, key) in [
            (r#"{"notify_utc_offset": "Moscow"}"#, "NOTIFY_UTC_OFFSET"),
            (r#"{"manager_chat_id": 0}"#, "MANAGER_CHAT_ID"),
            (r#"{"telegram_api_url": "ftp://x"}"#, "TELEGRAM_API_URL"),
            (r#"{"telegram_timeout_secs": 0}"#, "TELEGRAM_TIMEOUT_SECS"),
            (r#"{"telegram_timeout_secs": 61}"#, "TELEGRAM_TIMEOUT_SECS"),
        ] {
            let error = settings(json).unwrap_err();
            assert!(error.contains(key), "{json}: {error}");
        }
        let blank = settings(r#"{"telegram_bot_token": "  "}"#).unwrap();
        assert!(blank.telegram_bot_token.is_none(), "blank means unset");
    }

    #[test]
    fn api_url_loses_its_trailing_slash_and_must_be_http() {
        assert_eq!(
            normalize_api_url("https://api.telegram.org/").unwrap(),
            "https://api.telegram.org"
        );
        assert_eq!(
            normalize_api_url("http://127.0.0.1:8080/proxy").unwrap(),
            "http://127.0.0.1:8080/proxy"
        );
        assert!(normalize_api_url("not a url").is_err());
        assert!(normalize_api_url("ftp://example.com").is_err());
        assert!(normalize_api_url("https://example.com/?a=1").is_err());
    }
}
