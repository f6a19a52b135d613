//! Setting the bot up: its webhook (`setWebhook`, `deleteWebhook`, `getWebhookInfo`) and
//! the menu button that opens the Mini App (`setChatMenuButton`). Used by the
//! `server telegram ...` commands and at start-up.

use domain::ports::NotifyError;
use serde::{Deserialize, Serialize};

use crate::bot::SHOP_BUTTON;
use crate::notifier::TelegramNotifier;

/// The update types BotShop handles, as `allowed_updates`.
pub const ALLOWED_UPDATES: [&str; 3] = ["message", "callback_query", "pre_checkout_query"];

/// What `getWebhookInfo` says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebhookInfo {
    /// Empty when no webhook is set (updates then wait for `getUpdates`).
    pub url: String,
    pub pending_update_count: u64,
    /// When Telegram last failed to deliver (Unix time), and why.
    pub last_error_date: Option<i64>,
    pub last_error_message: Option<String>,
    /// The update types the webhook was set for; absent: Telegram's default (every type
    /// BotShop handles).
    #[serde(default)]
    pub allowed_updates: Option<Vec<String>>,
}

impl WebhookInfo {
    /// Whether a webhook is set that leaves out an update type BotShop handles (one set
    /// before BotShop handled it): register it again to receive them.
    pub fn misses_updates(&self) -> Vec<&'static str> {
        match &self.allowed_updates {
            Some(allowed) if !self.url.is_empty() => ALLOWED_UPDATES
                .into_iter()
                .filter(|kind| !allowed.iter().any(|a| a == kind))
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Serialize)]
struct SetWebhook<'a> {
    url: &'a str,
    secret_token: &'a str,
    allowed_updates: [&'a str; 3],
}

#[derive(Serialize)]
struct DeleteWebhook {
    drop_pending_updates: bool,
}

#[derive(Serialize)]
struct NoParameters {}

#[derive(Serialize)]
struct SetChatMenuButton<'a> {
    menu_button: MenuButton<'a>,
}

#[derive(Serialize)]
struct MenuButton<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    web_app: WebApp<'a>,
}

#[derive(Serialize)]
struct WebApp<'a> {
    url: &'a str,
}

impl TelegramNotifier {
    /// Points Telegram's updates at `url` (HTTPS), with `secret` in every delivery's
    /// `X-Telegram-Bot-Api-Secret-Token`, for the update types BotShop handles.
    ///
    /// # Errors
    /// Telegram's refusal (a non-HTTPS URL, a bad secret) or a network failure.
    pub async fn set_webhook(&self, url: &str, secret: &str) -> Result<(), NotifyError> {
        let request = SetWebhook {
            url,
            secret_token: secret,
            allowed_updates: ALLOWED_UPDATES,
        };
        let _: bool = self.call("setWebhook", &request).await?;
        Ok(())
    }

    /// Removes the webhook (pending updates are kept for `getUpdates` or the next one).
    ///
    /// # Errors
    /// As [`TelegramNotifier::set_webhook`].
    pub async fn delete_webhook(&self) -> Result<(), NotifyError> {
        let request = DeleteWebhook {
            drop_pending_updates: false,
        };
        let _: bool = self.call("deleteWebhook", &request).await?;
        Ok(())
    }

    /// The webhook as Telegram sees it.
    ///
    /// # Errors
    /// As [`TelegramNotifier::set_webhook`].
    pub async fn webhook_info(&self) -> Result<WebhookInfo, NotifyError> {
        self.call("getWebhookInfo", &NoParameters {}).await
    }

    /// Makes the bot's menu button open the Mini App at `url`, in every private chat.
    ///
    /// # Errors
    /// As [`TelegramNotifier::set_webhook`].
    pub async fn set_menu_button(&self, url: &str) -> Result<(), NotifyError> {
        let request = SetChatMenuButton {
            menu_button: MenuButton {
                kind: "web_app",
                text: SHOP_BUTTON,
                web_app: WebApp { url },
            },
        };
        let _: bool = self.call("setChatMenuButton", &request).await?;
        Ok(())
    }

    /// The Mini App's address, when `MINI_APP_URL` is set.
    pub fn mini_app_url(&self) -> Option<&str> {
        self.mini_app_url.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(json: serde_json::Value) -> WebhookInfo {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_webhook_set_before_payments_misses_pre_checkout_queries() {
        let old = info(
            serde_json::json!({"url": "https://shop.example.com/telegram/webhook",
            "pending_update_count": 0, "allowed_updates": ["message", "callback_query"]}),
        );
        assert_eq!(old.misses_updates(), ["pre_checkout_query"]);
        let now = info(
            serde_json::json!({"url": "https://shop.example.com/telegram/webhook",
            "pending_update_count": 0, "allowed_updates": ALLOWED_UPDATES}),
        );
        assert!(now.misses_updates().is_empty());
        // Telegram's default (no list) includes every type BotShop handles.
        let default = info(serde_json::json!({"url": "https://x", "pending_update_count": 0}));
        assert!(default.misses_updates().is_empty());
        let none = info(serde_json::json!({"url": "", "pending_update_count": 0,
            "allowed_updates": ["message"]}));
        assert!(none.misses_updates().is_empty());
    }
}
