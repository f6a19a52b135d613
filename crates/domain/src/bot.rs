//! The bot's side of Telegram: updates in, each handled once.
//!
//! Telegram redelivers an update until it gets a 2xx, and several instances may receive
//! them, so every update is first recorded by its `update_id` ([`UpdateLog`]); a
//! redelivered one is acknowledged and ignored. What an update asks for is decided here;
//! the inbound adapter only turns Telegram's JSON into an [`Update`].

use std::sync::Arc;

use time::OffsetDateTime;

use tokio::sync::Notify;

use crate::error::RepositoryError;
use crate::lifecycle::{ChangeRequest, ChangeStatusError, ChangedBy, Scope, change_status};
use crate::ports::{BotReplies, OrderLifecycle, UpdateLog};
use crate::values::TelegramId;

/// One update from Telegram, as BotShop understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub update_id: i64,
    pub kind: UpdateKind,
}

/// What an update asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateKind {
    /// `/start` in a chat: a welcome, and the Mini App's button when there is one.
    Start { chat_id: i64 },
    /// `/orders` from `from` in a chat: a manager's list of open orders.
    Orders { chat_id: i64, from: i64 },
    /// A press of an inline button: who pressed it and its `callback_data`.
    Button {
        callback_id: String,
        from: i64,
        data: String,
    },
    /// Anything BotShop does not act on (other messages, unknown commands, other update
    /// types): acknowledged and ignored, politely.
    Ignored,
}

impl UpdateKind {
    /// The command a message's text starts with: `/start`, `/start payload` and
    /// `/start@ShopBot` are all `/start`; `/orders` likewise (`from` is its sender);
    /// anything else is ignored.
    pub fn from_text(chat_id: i64, from: Option<i64>, text: &str) -> Self {
        let command = text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .split('@')
            .next()
            .unwrap_or_default();
        match (command, from) {
            ("/start", _) => UpdateKind::Start { chat_id },
            ("/orders", Some(from)) => UpdateKind::Orders { chat_id, from },
            _ => UpdateKind::Ignored,
        }
    }
}

/// A manager's button under an order's message: move `order_id` from `seen` (the status the
/// button was drawn for) to `to`. Its `callback_data` is `s:<order>:<seen>:<to>` with one
/// letter per status, at most 30 bytes (Telegram allows 64). The client sends it back as
/// is, so it is untrusted: it only names an order and a wish, and the lifecycle re-checks
/// everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusButton {
    pub order_id: crate::values::OrderId,
    pub seen: crate::entities::OrderStatus,
    pub to: crate::entities::OrderStatus,
}

fn status_letter(status: crate::entities::OrderStatus) -> char {
    use crate::entities::OrderStatus::*;
    match status {
        Pending => 'P',
        Confirmed => 'C',
        Processing => 'R',
        Shipped => 'S',
        Delivered => 'D',
        Cancelled => 'X',
    }
}

fn status_of_letter(letter: &str) -> Option<crate::entities::OrderStatus> {
    crate::entities::OrderStatus::ALL
        .into_iter()
        .find(|status| letter.len() == 1 && letter.starts_with(status_letter(*status)))
}

impl StatusButton {
    /// The button's `callback_data`.
    pub fn data(&self) -> String {
        format!(
            "s:{}:{}:{}",
            self.order_id.0,
            status_letter(self.seen),
            status_letter(self.to)
        )
    }

    /// Reads `callback_data`; `None` for anything that is not exactly a button's.
    pub fn parse(data: &str) -> Option<Self> {
        let mut parts = data.split(':');
        let (Some("s"), Some(order), Some(seen), Some(to), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if order.is_empty() || !order.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let order = order.parse::<i64>().ok().filter(|id| *id > 0)?;
        Some(Self {
            order_id: crate::values::OrderId(order),
            seen: status_of_letter(seen)?,
            to: status_of_letter(to)?,
        })
    }

    /// The buttons under an order's message in the manager chat: one per status that may
    /// follow `status`, in lifecycle order; none for a final status.
    pub fn for_order(
        order_id: crate::values::OrderId,
        status: crate::entities::OrderStatus,
    ) -> Vec<Self> {
        crate::lifecycle::next_statuses(status)
            .into_iter()
            .map(|to| Self {
                order_id,
                seen: status,
                to,
            })
            .collect()
    }
}

/// How many open orders `/orders` shows, newest first.
pub const OPEN_ORDERS_SHOWN: u32 = 20;

/// What came of a button press, for the answer the presser sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonOutcome {
    /// The order is now `status`.
    Changed {
        order_id: crate::values::OrderId,
        status: crate::entities::OrderStatus,
    },
    /// Someone was faster, or the press was stale: the order is `current`, and its
    /// message is being refreshed.
    AlreadyChanged {
        order_id: crate::values::OrderId,
        current: crate::entities::OrderStatus,
    },
    /// Only the shop's managers may press.
    NotAManager,
    /// No such order.
    NotFound,
    /// Not a button of ours (or one from an older version).
    Unknown,
    /// The change could not be made now (the database); press again.
    Failed,
}

/// What became of an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Seen before (a redelivery): nothing done again.
    Duplicate,
    /// Nothing to do.
    Ignored,
    /// Answered.
    Replied,
    /// The answer could not be sent; logged. Telegram is still told the update arrived, so
    /// that it does not redeliver it in a loop.
    ReplyFailed,
    /// A button press, answered with what came of it.
    Pressed(ButtonOutcome),
}

/// Handles updates: records each once, then acts on it.
#[derive(Clone)]
pub struct BotService {
    log: Arc<dyn UpdateLog>,
    replies: Arc<dyn BotReplies>,
    orders: Arc<dyn OrderLifecycle>,
    managers: Vec<TelegramId>,
    relay_wake: Arc<Notify>,
}

impl std::fmt::Debug for BotService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotService").finish_non_exhaustive()
    }
}

impl BotService {
    /// `managers`: the Telegram users who may press the order buttons. `relay_wake` is
    /// woken after a change, whose notifications are then in the outbox.
    pub fn new(
        log: Arc<dyn UpdateLog>,
        replies: Arc<dyn BotReplies>,
        orders: Arc<dyn OrderLifecycle>,
        managers: Vec<TelegramId>,
        relay_wake: Arc<Notify>,
    ) -> Self {
        Self {
            log,
            replies,
            orders,
            managers,
            relay_wake,
        }
    }

    /// Handles `update`, once per `update_id` whatever the redeliveries.
    ///
    /// # Errors
    /// When the update cannot be recorded: the caller answers so that Telegram delivers
    /// it again later.
    pub async fn handle(
        &self,
        update: Update,
        now: OffsetDateTime,
    ) -> Result<Handled, RepositoryError> {
        if !self.log.first_seen(update.update_id, now).await? {
            return Ok(Handled::Duplicate);
        }
        match update.kind {
            UpdateKind::Ignored => Ok(Handled::Ignored),
            UpdateKind::Start { chat_id } => match self.replies.welcome(chat_id).await {
                Ok(()) => Ok(Handled::Replied),
                Err(error) => {
                    tracing::warn!(update_id = update.update_id, %error, "could not answer /start");
                    Ok(Handled::ReplyFailed)
                }
            },
            UpdateKind::Orders { chat_id, from } => {
                // Only managers see the orders; anyone else's `/orders` is ignored.
                if !self.managers.iter().any(|id| id.get() == from) {
                    return Ok(Handled::Ignored);
                }
                let open = self.orders.open_orders(OPEN_ORDERS_SHOWN).await?;
                match self.replies.show_open_orders(chat_id, &open).await {
                    Ok(()) => Ok(Handled::Replied),
                    Err(error) => {
                        tracing::warn!(update_id = update.update_id, %error, "could not answer /orders");
                        Ok(Handled::ReplyFailed)
                    }
                }
            }
            UpdateKind::Button {
                callback_id,
                from,
                data,
            } => {
                let outcome = self.press(from, &data, now).await;
                if let Err(error) = self.replies.answer_button(&callback_id, outcome).await {
                    tracing::warn!(update_id = update.update_id, %error, "could not answer a button press");
                }
                Ok(Handled::Pressed(outcome))
            }
        }
    }

    /// A press of an order button: only a manager's counts, and the lifecycle decides.
    async fn press(&self, from: i64, data: &str, now: OffsetDateTime) -> ButtonOutcome {
        let Some(manager) = self.managers.iter().find(|id| id.get() == from).copied() else {
            return ButtonOutcome::NotAManager;
        };
        let Some(button) = StatusButton::parse(data) else {
            return ButtonOutcome::Unknown;
        };
        let request = ChangeRequest {
            scope: Scope::Any,
            order_id: button.order_id,
            seen: Some(button.seen),
            to: button.to,
            by: ChangedBy::Manager(manager),
            at: now,
            note: None,
        };
        let stale = |current| async move {
            // Show the manager the truth: the message is redrawn for the current status.
            match self.orders.refresh_manager_message(button.order_id).await {
                Ok(()) => self.relay_wake.notify_one(),
                Err(error) => tracing::warn!(%error, "could not refresh an order's message"),
            }
            ButtonOutcome::AlreadyChanged {
                order_id: button.order_id,
                current,
            }
        };
        match change_status(self.orders.as_ref(), request).await {
            Ok(order) => {
                self.relay_wake.notify_one();
                ButtonOutcome::Changed {
                    order_id: order.id,
                    status: order.status,
                }
            }
            Err(ChangeStatusError::AlreadyChanged { current }) => stale(current).await,
            Err(ChangeStatusError::NotAllowed { from, .. }) => stale(from).await,
            Err(ChangeStatusError::NotFound) => ButtonOutcome::NotFound,
            Err(ChangeStatusError::Repository(error)) => {
                tracing::warn!(%error, "a button press could not change the order");
                ButtonOutcome::Failed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::{Order, OrderStatus};
    use crate::lifecycle::Applied;
    use crate::ports::{MockBotReplies, MockOrderLifecycle, MockUpdateLog, NotifyError};
    use crate::values::{OrderId, UserId};

    const MANAGER: i64 = 777;

    fn service(
        log: MockUpdateLog,
        replies: MockBotReplies,
        orders: MockOrderLifecycle,
    ) -> BotService {
        BotService::new(
            Arc::new(log),
            Arc::new(replies),
            Arc::new(orders),
            vec![TelegramId::parse(MANAGER).unwrap()],
            Arc::new(Notify::new()),
        )
    }

    fn press(update_id: i64, from: i64, data: &str) -> Update {
        Update {
            update_id,
            kind: UpdateKind::Button {
                callback_id: format!("cb{update_id}"),
                from,
                data: data.to_owned(),
            },
        }
    }

    fn order(status: OrderStatus) -> Order {
        Order {
            id: OrderId(5),
            user_id: UserId(1),
            status,
            total_amount: crate::Money::ZERO,
            delivery_address: String::new(),
            phone: String::new(),
            comment: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            items: vec![],
        }
    }

    /// Replies that record each answer's outcome.
    fn answering(expected: ButtonOutcome) -> MockBotReplies {
        let mut replies = MockBotReplies::new();
        replies
            .expect_answer_button()
            .withf(move |_, outcome| *outcome == expected)
            .times(1)
            .returning(|_, _| Ok(()));
        replies
    }

    fn fresh_log() -> MockUpdateLog {
        let mut log = MockUpdateLog::new();
        log.expect_first_seen().returning(|_, _| Ok(true));
        log
    }

    #[tokio::test]
    async fn a_managers_press_changes_the_order_through_the_lifecycle() {
        let mut orders = MockOrderLifecycle::new();
        orders
            .expect_current_status()
            .returning(|_, _| Ok(Some(OrderStatus::Pending)));
        orders
            .expect_apply_status_change()
            .withf(|change| {
                change.to == OrderStatus::Confirmed
                    && change.by == ChangedBy::Manager(TelegramId::parse(MANAGER).unwrap())
            })
            .times(1)
            .returning(|_| Ok(Applied::Changed(order(OrderStatus::Confirmed))));
        let expected = ButtonOutcome::Changed {
            order_id: OrderId(5),
            status: OrderStatus::Confirmed,
        };
        let bot = service(fresh_log(), answering(expected), orders);
        let handled = bot
            .handle(press(1, MANAGER, "s:5:P:C"), OffsetDateTime::UNIX_EPOCH)
            .await
            .unwrap();
        assert_eq!(handled, Handled::Pressed(expected));
    }

    #[tokio::test]
    async fn a_strangers_press_changes_nothing() {
        let mut orders = MockOrderLifecycle::new();
        orders.expect_current_status().never();
        orders.expect_apply_status_change().never();
        let bot = service(fresh_log(), answering(ButtonOutcome::NotAManager), orders);
        bot.handle(press(2, 12345, "s:5:P:C"), OffsetDateTime::UNIX_EPOCH)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_stale_press_says_so_and_refreshes_the_message() {
        let mut orders = MockOrderLifecycle::new();
        orders
            .expect_current_status()
            .returning(|_, _| Ok(Some(OrderStatus::Cancelled)));
        orders.expect_apply_status_change().never();
        orders
            .expect_refresh_manager_message()
            .withf(|order| *order == OrderId(5))
            .times(1)
            .returning(|_| Ok(()));
        let expected = ButtonOutcome::AlreadyChanged {
            order_id: OrderId(5),
            current: OrderStatus::Cancelled,
        };
        let bot = service(fresh_log(), answering(expected), orders);
        bot.handle(press(3, MANAGER, "s:5:P:C"), OffsetDateTime::UNIX_EPOCH)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_button_that_is_not_ours_is_answered_and_ignored() {
        let mut orders = MockOrderLifecycle::new();
        orders.expect_current_status().never();
        let bot = service(fresh_log(), answering(ButtonOutcome::Unknown), orders);
        bot.handle(press(4, MANAGER, "buy:42"), OffsetDateTime::UNIX_EPOCH)
            .await
            .unwrap();
    }

    fn start(update_id: i64) -> Update {
        Update {
            update_id,
            kind: UpdateKind::Start { chat_id: 42 },
        }
    }

    #[test]
    fn buttons_round_trip_and_anything_else_is_refused() {
        use crate::entities::OrderStatus::*;
        use crate::values::OrderId;
        let buttons = StatusButton::for_order(OrderId(9_007_199_254_740_993), Pending);
        assert_eq!(buttons.len(), 5);
        for button in &buttons {
            let data = button.data();
            assert!(data.len() <= 64, "{data}");
            assert_eq!(StatusButton::parse(&data), Some(*button));
        }
        assert_eq!(buttons[0].data(), "s:9007199254740993:P:C");
        assert!(StatusButton::for_order(OrderId(1), Delivered).is_empty());
        for bad in [
            "",
            "s",
            "s:1:P",
            "s:1:P:C:x",
            "x:1:P:C",
            "s:-1:P:C",
            "s:0:P:C",
            "s:+1:P:C",
            "s:1:PP:C",
            "s:1:Q:C",
            "s:99999999999999999999:P:C",
            "s:1:p:c",
        ] {
            assert_eq!(StatusButton::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn commands_are_read_from_the_first_word() {
        for text in ["/start", "/start ref-7", "/start@ShopBot", "  /start  "] {
            assert_eq!(
                UpdateKind::from_text(1, Some(2), text),
                UpdateKind::Start { chat_id: 1 },
                "{text}"
            );
        }
        assert_eq!(
            UpdateKind::from_text(1, Some(2), "/orders@ShopBot"),
            UpdateKind::Orders {
                chat_id: 1,
                from: 2
            }
        );
        assert_eq!(
            UpdateKind::from_text(1, None, "/orders"),
            UpdateKind::Ignored
        );
        for text in ["start", "/started", "/order", "", "привет /start"] {
            assert_eq!(
                UpdateKind::from_text(1, Some(2), text),
                UpdateKind::Ignored,
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn orders_shows_a_manager_the_open_orders_and_ignores_anyone_else() {
        let mut orders = MockOrderLifecycle::new();
        orders
            .expect_open_orders()
            .withf(|limit| *limit == OPEN_ORDERS_SHOWN)
            .times(1)
            .returning(|_| Ok(Vec::new()));
        let mut replies = MockBotReplies::new();
        replies
            .expect_show_open_orders()
            .withf(|chat, orders| *chat == MANAGER && orders.is_empty())
            .times(1)
            .returning(|_, _| Ok(()));
        let bot = service(fresh_log(), replies, orders);
        let orders_from = |update_id, from| Update {
            update_id,
            kind: UpdateKind::Orders {
                chat_id: MANAGER,
                from,
            },
        };
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            bot.handle(orders_from(1, MANAGER), now).await.unwrap(),
            Handled::Replied
        );
        assert_eq!(
            bot.handle(orders_from(2, 12345), now).await.unwrap(),
            Handled::Ignored
        );
    }

    #[tokio::test]
    async fn an_update_is_handled_once() {
        let mut log = MockUpdateLog::new();
        let mut seen = std::collections::HashSet::new();
        log.expect_first_seen()
            .returning(move |id, _| Ok(seen.insert(id)));
        let mut replies = MockBotReplies::new();
        replies
            .expect_welcome()
            .withf(|chat| *chat == 42)
            .times(1)
            .returning(|_| Ok(()));
        let bot = service(log, replies, MockOrderLifecycle::new());
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(bot.handle(start(1), now).await.unwrap(), Handled::Replied);
        assert_eq!(bot.handle(start(1), now).await.unwrap(), Handled::Duplicate);
    }

    #[tokio::test]
    async fn a_failed_reply_is_not_a_failed_update() {
        let mut log = MockUpdateLog::new();
        log.expect_first_seen().returning(|_, _| Ok(true));
        let mut replies = MockBotReplies::new();
        replies.expect_welcome().returning(|_| {
            Err(NotifyError::Permanent {
                reason: "Forbidden: bot was blocked by the user".into(),
            })
        });
        let bot = service(log, replies, MockOrderLifecycle::new());
        let handled = bot
            .handle(start(2), OffsetDateTime::UNIX_EPOCH)
            .await
            .unwrap();
        assert_eq!(handled, Handled::ReplyFailed);
        let ignored = Update {
            update_id: 3,
            kind: UpdateKind::Ignored,
        };
        assert_eq!(
            bot.handle(ignored, OffsetDateTime::UNIX_EPOCH)
                .await
                .unwrap(),
            Handled::Ignored
        );
    }
}
