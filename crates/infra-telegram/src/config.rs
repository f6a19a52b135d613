//! What the adapter needs to know, and the checks that make it safe to use.

use std::fmt;
use std::time::Duration;

use time::UtcOffset;
use time::macros::offset;

/// Telegram's public Bot API endpoint.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

/// How long one API call may take in total, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The offset the manager reads order times in: Moscow time.
pub const DEFAULT_UTC_OFFSET: UtcOffset = offset!(+3);

/// The adapter's configuration. Build it with [`TelegramConfig::new`] and override the
/// defaults as needed; it is checked by [`crate::TelegramNotifier::new`].
///
/// `Debug` is written by hand so that the bot token is never printed.
#[derive(Clone)]
pub struct TelegramConfig {
    /// The Bot API base URL, without the `/bot<token>` part. Tests point it at a fake.
    pub api_url: String,
    /// The bot's secret token, as issued by @BotFather (`123456:ABC-DEF…`).
    pub bot_token: String,
    /// The chat that receives new-order messages (the manager's user id for a private chat).
    pub manager_chat_id: i64,
    /// The offset order times are shown in (`NOTIFY_UTC_OFFSET`).
    pub utc_offset: UtcOffset,
    /// The total time allowed for one API call.
    pub timeout: Duration,
}

impl TelegramConfig {
    /// A configuration with the default API URL, time zone offset and timeout.
    pub fn new(bot_token: impl Into<String>, manager_chat_id: i64) -> Self {
        Self {
            api_url: DEFAULT_API_URL.to_owned(),
            bot_token: bot_token.into(),
            manager_chat_id,
            utc_offset: DEFAULT_UTC_OFFSET,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramConfig")
            .field("api_url", &self.api_url)
            .field("bot_token", &"<redacted>")
            .field("manager_chat_id", &self.manager_chat_id)
            .field("utc_offset", &self.utc_offset)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a [`TelegramConfig`] cannot be used. No variant ever contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelegramConfigError {
    #[error("telegram bot token must not be empty")]
    EmptyToken,
    #[error(
        "telegram bot token may only contain ASCII letters, digits, ':', '_' and '-' (like 123456:ABC-DEF)"
    )]
    InvalidToken,
    #[error("telegram api url is invalid: {0}")]
    InvalidApiUrl(String),
    #[error("telegram timeout must be greater than zero")]
    ZeroTimeout,
    #[error("failed to build the telegram http client: {0}")]
    HttpClient(String),
}

/// Checks the token's alphabet.
///
/// Real tokens look like `123456:ABC-DEF_ghi`. Anything else would be percent-encoded or
/// reinterpreted inside the URL path, and then the encoded form would escape the
/// `<redacted>` replacement in error strings; rejecting it here keeps redaction exact.
pub(crate) fn check_token(token: &str) -> Result<(), TelegramConfigError> {
    if token.is_empty() {
        return Err(TelegramConfigError::EmptyToken);
    }
    let valid = token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'));
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
        let config = TelegramConfig::new("123456:SECRET-TOKEN-abc", 42);
        let printed = format!("{config:?}");
        assert!(!printed.contains("SECRET"), "{printed}");
        assert!(printed.contains("<redacted>"));
        assert!(printed.contains("42"));
    }

    #[test]
    fn defaults_are_the_public_api_moscow_time_and_ten_seconds() {
        let config = TelegramConfig::new("1:a", 42);
        assert_eq!(config.api_url, "https://api.telegram.org");
        assert_eq!(config.utc_offset, UtcOffset::from_hms(3, 0, 0).unwrap());
        assert_eq!(config.timeout, Duration::from_secs(10));
    }

    #[test]
    fn tokens_that_would_be_mangled_in_a_url_are_rejected() {
        assert_eq!(check_token(""), Err(TelegramConfigError::EmptyToken));
        for bad in ["12 34:abc", "123/456", "123:a?b", "123:a%41", "123:é"] {
            assert_eq!(
                check_token(bad),
                Err(TelegramConfigError::InvalidToken),
                "{bad}"
            );
        }
        assert_eq!(check_token("123456:SECRET-TOKEN_abc"), Ok(()));
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
