//! The bot's direct answers ([`BotReplies`]): sent at once, since they answer a person
//! who is waiting, rather than through the outbox.

use async_trait::async_trait;
use domain::bot::ButtonOutcome;
use domain::ports::{BotReplies, NotifyError, OrderPlaced};
use serde::Serialize;

use crate::notifier::{SentMessage, TelegramNotifier};

/// The welcome's text, with or without the Mini App's button under it.
pub fn render_welcome(with_shop_button: bool) -> &'static str {
    if with_shop_button {
        "👋 Здравствуйте! Это бот нашего магазина.\n\
         Нажмите «Открыть магазин», чтобы выбрать товары и оформить заказ. \
         Сюда же придут сообщения о ваших заказах."
    } else {
        "👋 Здравствуйте! Это бот нашего магазина. Сюда придут сообщения о ваших заказах."
    }
}

/// The text of the welcome's button.
pub const SHOP_BUTTON: &str = "🛍 Открыть магазин";

#[derive(Serialize)]
struct Welcome<'a> {
    chat_id: i64,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_markup: Option<Keyboard<'a>>,
}

#[derive(Serialize)]
struct Keyboard<'a> {
    inline_keyboard: [[WebAppButton<'a>; 1]; 1],
}

#[derive(Serialize)]
struct WebAppButton<'a> {
    text: &'a str,
    web_app: WebApp<'a>,
}

#[derive(Serialize)]
struct WebApp<'a> {
    url: &'a str,
}

/// The answer to an admin's `/admin`: with the panel's button when it can be opened in
/// Telegram (an https address), else the address and what to set.
pub fn render_admin_panel(url: Option<&str>, private_chat: bool) -> String {
    if !private_chat {
        return "🛠 Панель управления открывается в личном чате с ботом: напишите ему /admin."
            .to_owned();
    }
    match url {
        Some(url) if url.starts_with("https://") => {
            "🛠 Панель управления магазином: заказы, каталог, отчёты.".to_owned()
        }
        Some(url) => format!(
            "🛠 Панель управления магазином: {url}\n\
             Telegram открывает мини-приложения только по https: укажите адрес магазина \
             с https в PUBLIC_BASE_URL, и здесь появится кнопка."
        ),
        None => "🛠 Панель управления магазином не настроена.".to_owned(),
    }
}

/// The text of the admin panel's button.
pub const ADMIN_BUTTON: &str = "🛠 Открыть панель";

/// The short answer a manager sees after pressing an order button.
pub fn render_button_answer(outcome: ButtonOutcome) -> String {
    let status = |status| crate::render::status_phrase(status, crate::render::Language::Russian);
    match outcome {
        ButtonOutcome::Changed {
            order_id,
            status: new,
        } => {
            format!("Готово: заказ #{order_id} {}", status(new))
        }
        ButtonOutcome::AlreadyChanged { order_id, current } => {
            format!(
                "Заказ #{order_id} уже {}: сообщение обновлено",
                status(current)
            )
        }
        ButtonOutcome::NotAManager => "Менять заказы могут только менеджеры магазина".to_owned(),
        ButtonOutcome::NotFound => "Такого заказа нет".to_owned(),
        ButtonOutcome::Unknown => "Эта кнопка больше не работает".to_owned(),
        ButtonOutcome::Failed => "Не получилось, нажмите ещё раз".to_owned(),
    }
}

#[derive(Serialize)]
struct AnswerCallbackQuery<'a> {
    callback_query_id: &'a str,
    text: &'a str,
}

/// `/orders` when nothing is open.
pub const NO_OPEN_ORDERS: &str = "Открытых заказов нет.";

#[async_trait]
impl BotReplies for TelegramNotifier {
    async fn show_open_orders(
        &self,
        chat_id: i64,
        orders: &[OrderPlaced],
    ) -> Result<(), NotifyError> {
        if orders.is_empty() {
            self.send_message_to(chat_id, NO_OPEN_ORDERS).await?;
            return Ok(());
        }
        for placed in orders {
            let text = crate::render::render_manager_update(placed, self.utc_offset());
            let buttons = crate::notifier::manager_keyboard(placed.order.id, placed.order.status);
            self.send_message_with(chat_id, &text, Some(buttons))
                .await?;
        }
        Ok(())
    }

    async fn admin_panel(&self, chat_id: i64, private_chat: bool) -> Result<(), NotifyError> {
        let url = self.admin_panel_url.as_deref().filter(|_| private_chat);
        let text = render_admin_panel(url, private_chat);
        let request = Welcome {
            chat_id,
            text: &text,
            reply_markup: url
                .filter(|url| url.starts_with("https://"))
                .map(|url| Keyboard {
                    inline_keyboard: [[WebAppButton {
                        text: ADMIN_BUTTON,
                        web_app: WebApp { url },
                    }]],
                }),
        };
        let _: SentMessage = self.call("sendMessage", &request).await?;
        Ok(())
    }

    async fn answer_button(
        &self,
        callback_id: &str,
        outcome: ButtonOutcome,
    ) -> Result<(), NotifyError> {
        let text = render_button_answer(outcome);
        let request = AnswerCallbackQuery {
            callback_query_id: callback_id,
            text: &text,
        };
        let _: bool = self.call("answerCallbackQuery", &request).await?;
        Ok(())
    }

    async fn welcome(&self, chat_id: i64) -> Result<(), NotifyError> {
        let url = self.mini_app_url.as_deref();
        let request = Welcome {
            chat_id,
            text: render_welcome(url.is_some()),
            reply_markup: url.map(|url| Keyboard {
                inline_keyboard: [[WebAppButton {
                    text: SHOP_BUTTON,
                    web_app: WebApp { url },
                }]],
            }),
        };
        let _: SentMessage = self.call("sendMessage", &request).await?;
        Ok(())
    }
}
