//! The Telegram Bot API adapter: BotShop's implementation of [`domain::ports::Notifier`].
//!
//! It renders the bot's messages (pure functions: the manager's new-order message
//! [`render_order_message`] and its edits [`render_manager_update`], the customer's
//! status message [`render_status_message`] in Russian or English) and delivers them with
//! `sendMessage` or `editMessageText` through one shared `reqwest` client. Telegram's answers
//! are mapped at this seam onto [`domain::ports::NotifyError`], so no `reqwest` type ever
//! leaves the crate.
//!
//! Architecture invariant: this crate depends on `domain` only, never on another adapter
//! (`infra-postgres`, `http-actix`) or on the server; the server wires it in as an
//! `Arc<dyn Notifier>`.
//!
//! Architecture invariant: the bot token never leaves this crate in readable form. It is
//! part of every request URL, so every error string built here has the URL stripped and
//! the token replaced with `<redacted>`, and nothing logged here contains it. Neither do
//! error reasons or logs contain the customer's phone, address or the message text.

mod bot;
mod config;
mod notifier;
mod payments;
mod polling;
mod render;
mod webhook;

pub use bot::{
    ADMIN_BUTTON, NO_OPEN_ORDERS, SHOP_BUTTON, render_admin_panel, render_button_answer,
    render_welcome,
};
pub use config::{
    BotToken, DEFAULT_API_URL, DEFAULT_TIMEOUT, DEFAULT_TIMEOUT_SECS, DEFAULT_UTC_OFFSET,
    TelegramConfig, TelegramConfigError, TelegramSettings, UpdatesMode,
};
pub use notifier::{CallbackButton, InlineKeyboard, TelegramNotifier, manager_keyboard};
pub use render::{
    Language, MESSAGE_LIMIT, button_label, format_rubles, render_customer_notice,
    render_manager_notice, render_manager_update, render_order_message, render_status_message,
    status_phrase,
};
pub use webhook::{ALLOWED_UPDATES, WebhookInfo};
