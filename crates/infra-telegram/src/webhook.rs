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
