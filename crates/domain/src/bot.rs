//! The bot's side of Telegram: updates in, each handled once.
//!
//! Telegram redelivers an update until it gets a 2xx, and several instances may receive
//! them, so every update is first recorded by its `update_id` ([`UpdateLog`]); a
//! redelivered one is acknowledged and ignored. What an update asks for is decided here;
//! the inbound adapter only turns Telegram's JSON into an [`Update`].

use std::sync::Arc;

use time::OffsetDateTime;

use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::clock::Clock;
use crate::error::RepositoryError;
use crate::lifecycle::{ChangeRequest, ChangeStatusError, ChangedBy, Scope, change_status};
use crate::payments::{PaymentService, PreCheckout, ReceivedPayment, RefundedPayment};
use crate::ports::{
    BotReplies, ExclusiveRoles, OrderLifecycle, OrderPlaced, PollError, RoleLease, UpdateLog,
    UpdateSource,
};
use crate::values::TelegramId;

/// One update from Telegram, as BotShop understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub update_id: i64,
    pub kind: UpdateKind,
}

impl Update {
    /// An update from Telegram's JSON (a webhook's body): `None` without an `update_id`.
    pub fn parse(body: &[u8]) -> Option<Self> {
        Self::from_json(&serde_json::from_slice(body).ok()?)
    }

    /// An update from Telegram's JSON, read leniently: only `update_id` is required, and
    /// anything unexpected elsewhere makes it an ignored update, never an error.
    pub fn from_json(update: &serde_json::Value) -> Option<Self> {
        let update_id = update.get("update_id")?.as_i64()?;
        let command = update.get("message").and_then(|message| {
            let chat_id = message.get("chat")?.get("id")?.as_i64()?;
            let text = message.get("text")?.as_str()?;
            let from = message
                .get("from")
                .and_then(|from| from.get("id"))
                .and_then(serde_json::Value::as_i64);
            Some(UpdateKind::from_text(chat_id, from, text))
        });
        let button = update.get("callback_query").and_then(|query| {
            Some(UpdateKind::Button {
                callback_id: query.get("id")?.as_str()?.to_owned(),
                from: query.get("from")?.get("id")?.as_i64()?,
                // Telegram caps it at 64 bytes; anything longer is not a button of ours.
                data: query
                    .get("data")?
                    .as_str()
                    .filter(|data| data.len() <= 64)?
                    .to_owned(),
            })
        });
        let kind = payment_update(update)
            .or(command)
            .or(button)
            .unwrap_or(UpdateKind::Ignored);
        Some(Update { update_id, kind })
    }
}

/// A payment's update: `pre_checkout_query`, or a message with `successful_payment` or
/// `refunded_payment`. Anything malformed in one is not a payment of ours.
fn payment_update(update: &serde_json::Value) -> Option<UpdateKind> {
    let text = |value: &serde_json::Value, key: &str| {
        value
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    if let Some(query) = update.get("pre_checkout_query") {
        let query_id = text(query, "id")?;
        let read = || {
            let from = query.get("from")?;
            Some(PreCheckout {
                query_id: query_id.clone(),
                from: from.get("id")?.as_i64()?,
                language_code: text(from, "language_code"),
                currency: text(query, "currency")?,
                total_amount: query.get("total_amount")?.as_i64()?,
                payload: text(query, "invoice_payload")?,
            })
        };
        // Telegram waits for an answer to every query: one that cannot be read is refused.
        return Some(match read() {
            Some(query) => UpdateKind::PreCheckout(query),
            None => UpdateKind::UnreadablePreCheckout { query_id },
        });
    }
    let message = update.get("message")?;
    if let Some(paid) = message.get("successful_payment") {
        return Some(UpdateKind::Payment(ReceivedPayment {
            from: message.get("from")?.get("id")?.as_i64()?,
            currency: text(paid, "currency")?,
            total_amount: paid.get("total_amount")?.as_i64()?,
            payload: text(paid, "invoice_payload")?,
            telegram_payment_charge_id: text(paid, "telegram_payment_charge_id")
                .filter(|id| !id.is_empty())?,
            provider_payment_charge_id: text(paid, "provider_payment_charge_id")
                .filter(|id| !id.is_empty()),
        }));
    }
    let refunded = message.get("refunded_payment")?;
    Some(UpdateKind::Refunded(RefundedPayment {
        telegram_payment_charge_id: text(refunded, "telegram_payment_charge_id")
            .filter(|id| !id.is_empty())?,
    }))
}

/// What an update asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateKind {
    /// Telegram asks whether a payment may go on (answered within 10 seconds).
    PreCheckout(PreCheckout),
    /// A pre-checkout query whose fields cannot be read: refused.
    UnreadablePreCheckout { query_id: String },
    /// A payment was made: the only proof of payment.
    Payment(ReceivedPayment),
    /// A Stars payment was refunded.
    Refunded(RefundedPayment),
    /// `/start` in a chat: a welcome, and the Mini App's button when there is one.
    Start { chat_id: i64 },
    /// `/orders` from `from` in a chat: a manager's list of open orders.
    Orders { chat_id: i64, from: i64 },
    /// `/admin` from `from` in a chat: an admin's button to the admin panel.
    Admin { chat_id: i64, from: i64 },
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
    /// `/start@ShopBot` are all `/start`; `/orders` and `/admin` likewise (`from` is
    /// their sender); anything else is ignored.
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
            ("/admin", Some(from)) => UpdateKind::Admin { chat_id, from },
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
    /// A pre-checkout query, answered: ok or not.
    PreCheckoutAnswered { ok: bool },
    /// A payment or a refund, recorded (now or before).
    PaymentRecorded,
}

/// What [`BotService::receive`] did with an update, and the reply it leaves to send.
#[derive(Debug, Clone)]
pub struct Received {
    /// The update's id, for the logs.
    pub update_id: i64,
    /// What became of it, if the reply goes out.
    pub handled: Handled,
    /// What the bot still has to say ([`BotService::reply`]).
    pub reply: Option<Reply>,
}

/// A reply of the bot's, sent once its update is recorded and acted on.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `/start`: the welcome.
    Welcome { chat_id: i64 },
    /// `/orders` from a manager: the open orders with their buttons.
    OpenOrders {
        chat_id: i64,
        orders: Vec<OrderPlaced>,
    },
    /// `/admin` from an admin: the admin panel's button.
    AdminPanel { chat_id: i64, private_chat: bool },
    /// A button press: its answer.
    Button {
        callback_id: String,
        outcome: ButtonOutcome,
    },
}

/// Handles updates: records each once, then acts on it.
#[derive(Clone)]
pub struct BotService {
    log: Arc<dyn UpdateLog>,
    replies: Arc<dyn BotReplies>,
    orders: Arc<dyn OrderLifecycle>,
    managers: Vec<TelegramId>,
    admins: Vec<TelegramId>,
    relay_wake: Arc<Notify>,
    payments: Option<PaymentService>,
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
            admins: Vec::new(),
            relay_wake,
            payments: None,
        }
    }

    /// Payments' updates (pre-checkout queries, payments, refunds) go to `payments`;
    /// without it they are acknowledged and logged, never acted on.
    pub fn with_payments(mut self, payments: PaymentService) -> Self {
        self.payments = Some(payments);
        self
    }

    /// `admins`: the Telegram users (`ADMIN_TELEGRAM_IDS`) whom `/admin` answers with the
    /// admin panel's button; nobody else's `/admin` is answered.
    pub fn with_admins(mut self, admins: Vec<TelegramId>) -> Self {
        self.admins = admins;
        self
    }

    /// Handles `update`, once per `update_id` whatever the redeliveries: [`Self::receive`],
    /// then [`Self::reply`].
    ///
    /// # Errors
    /// When the update cannot be recorded: the caller answers so that Telegram delivers
    /// it again later.
    pub async fn handle(
        &self,
        update: Update,
        now: OffsetDateTime,
    ) -> Result<Handled, RepositoryError> {
        let received = self.receive(update, now).await?;
        Ok(self.reply(received).await)
    }

    /// Records `update` (once per `update_id`) and does what it asks, all but the bot's
    /// reply, which is returned for [`Self::reply`]: a webhook answers Telegram in between,
    /// so that a slow or flooded chat never holds Telegram's delivery of the next updates.
    /// What must not be lost (a payment, a status change and its notifications) is
    /// committed here. A pre-checkout query is the exception: it is answered here, as
    /// Telegram allows 10 seconds for it.
    ///
    /// # Errors
    /// When the update cannot be recorded: the caller answers so that Telegram delivers
    /// it again later.
    pub async fn receive(
        &self,
        update: Update,
        now: OffsetDateTime,
    ) -> Result<Received, RepositoryError> {
        let update_id = update.update_id;
        let done = |handled| Received {
            update_id,
            handled,
            reply: None,
        };
        // A payment is recorded before the update is: it must never be lost to an update
        // marked seen whose payment failed to commit. Payments are once-only by their own
        // charge id, so a redelivery changes nothing; a failure answers so that Telegram
        // delivers it again.
        match (&update.kind, &self.payments) {
            (UpdateKind::Payment(payment), Some(payments)) => {
                payments.receive(payment, now).await?;
                self.log.first_seen(update_id, now).await?;
                return Ok(done(Handled::PaymentRecorded));
            }
            (UpdateKind::Refunded(refund), Some(payments)) => {
                if !payments.refunded(refund, now).await? {
                    tracing::warn!(update_id, "a refund of a payment BotShop has no record of");
                }
                self.log.first_seen(update_id, now).await?;
                return Ok(done(Handled::PaymentRecorded));
            }
            // Telegram gives 10 seconds: a pre-checkout query is answered first, whatever
            // the update log says (answering a redelivery again is harmless), and its
            // update recorded afterwards.
            (UpdateKind::PreCheckout(query), Some(payments)) => {
                let ok = match payments.pre_checkout(query, now).await {
                    Ok(verdict) => verdict.is_ok(),
                    Err(error) => {
                        tracing::warn!(update_id, %error, "could not answer a pre-checkout query");
                        return Ok(done(Handled::ReplyFailed));
                    }
                };
                if let Err(error) = self.log.first_seen(update_id, now).await {
                    tracing::warn!(update_id, %error, "a pre-checkout query was answered but not recorded");
                }
                return Ok(done(Handled::PreCheckoutAnswered { ok }));
            }
            (UpdateKind::UnreadablePreCheckout { query_id }, Some(payments)) => {
                tracing::warn!(update_id, "an unreadable pre-checkout query: refused");
                if let Err(error) = payments.refuse_pre_checkout(query_id).await {
                    tracing::warn!(update_id, %error, "could not answer a pre-checkout query");
                    return Ok(done(Handled::ReplyFailed));
                }
                return Ok(done(Handled::PreCheckoutAnswered { ok: false }));
            }
            (UpdateKind::Payment(_) | UpdateKind::Refunded(_), None) => {
                tracing::error!(
                    update_id,
                    "a payment arrived while PAYMENTS is off: it is not recorded; refund it \
                     in Telegram or turn payments on"
                );
            }
            _ => {}
        }
        if !self.log.first_seen(update_id, now).await? {
            return Ok(done(Handled::Duplicate));
        }
        let reply = match update.kind {
            // Handled above when payments are wired; without them nothing can answer.
            UpdateKind::PreCheckout(_)
            | UpdateKind::UnreadablePreCheckout { .. }
            | UpdateKind::Payment(_)
            | UpdateKind::Refunded(_) => {
                tracing::warn!(
                    update_id,
                    "a payment update, and payments are not wired: ignored"
                );
                return Ok(done(Handled::Ignored));
            }
            UpdateKind::Ignored => return Ok(done(Handled::Ignored)),
            UpdateKind::Start { chat_id } => Reply::Welcome { chat_id },
            UpdateKind::Orders { chat_id, from } => {
                // Only managers see the orders; anyone else's `/orders` is ignored.
                if !self.managers.iter().any(|id| id.get() == from) {
                    return Ok(done(Handled::Ignored));
                }
                let orders = self.orders.open_orders(OPEN_ORDERS_SHOWN).await?;
                Reply::OpenOrders { chat_id, orders }
            }
            UpdateKind::Admin { chat_id, from } => {
                if !self.admins.iter().any(|id| id.get() == from) {
                    return Ok(done(Handled::Ignored));
                }
                // A private chat's id is its user's id.
                Reply::AdminPanel {
                    chat_id,
                    private_chat: chat_id == from,
                }
            }
            UpdateKind::Button {
                callback_id,
                from,
                data,
            } => {
                let outcome = self.press(from, &data, now).await;
                Reply::Button {
                    callback_id,
                    outcome,
                }
            }
        };
        let handled = match &reply {
            Reply::Button { outcome, .. } => Handled::Pressed(*outcome),
            _ => Handled::Replied,
        };
        Ok(Received {
            update_id,
            handled,
            reply: Some(reply),
        })
    }

    /// Sends the reply [`Self::receive`] left, if any: what became of the update. A reply
    /// that fails is logged (Telegram already has, or will get, its 200: it must not
    /// redeliver the update for it).
    pub async fn reply(&self, received: Received) -> Handled {
        let Received {
            update_id,
            handled,
            reply,
        } = received;
        let Some(reply) = reply else {
            return handled;
        };
        let (what, sent) = match &reply {
            Reply::Welcome { chat_id } => ("/start", self.replies.welcome(*chat_id).await),
            Reply::OpenOrders { chat_id, orders } => (
                "/orders",
                self.replies.show_open_orders(*chat_id, orders).await,
            ),
            Reply::AdminPanel {
                chat_id,
                private_chat,
            } => (
                "/admin",
                self.replies.admin_panel(*chat_id, *private_chat).await,
            ),
            Reply::Button {
                callback_id,
                outcome,
            } => (
                "a button press",
                self.replies.answer_button(callback_id, *outcome).await,
            ),
        };
        match sent {
            Ok(()) => handled,
            Err(error) => {
                tracing::warn!(update_id, %error, "could not answer {what}");
                // A press was acted on whatever became of its answer.
                match reply {
                    Reply::Button { .. } => handled,
                    _ => Handled::ReplyFailed,
                }
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
            admin: None,
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

/// The role held by the one instance that polls Telegram.
pub const POLLER_ROLE: &str = "telegram-poller";

/// How the [`Poller`] waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollerConfig {
    /// How long one `getUpdates` waits for an update (Telegram's long poll; at most 50 s).
    pub wait: Duration,
    /// The pause after a failure worth retrying soon (the network, a 5xx, the database).
    pub retry: Duration,
    /// The pause between attempts to take the role while another instance holds it: how
    /// long polling may stop when its instance goes.
    pub standby: Duration,
    /// The pause after Telegram refused (a webhook is set, another poller, a bad token).
    pub refused: Duration,
}

impl Default for PollerConfig {
    fn default() -> Self {
        Self {
            wait: Duration::from_secs(25),
            retry: Duration::from_secs(5),
            standby: Duration::from_secs(10),
            refused: Duration::from_secs(30),
        }
    }
}

/// Receives the bot's updates by long polling (`getUpdates`), for shops without a public
/// HTTPS address: the [`UpdateSource`] delivers them, and each goes through the same
/// [`BotService::handle`] as a webhook's.
///
/// Only one instance polls at a time ([`POLLER_ROLE`], see [`ExclusiveRoles`]): Telegram
/// allows one `getUpdates` per bot. The others stand by and take over when it goes.
/// An update is confirmed to Telegram (the next request's offset) only after it was
/// handled, so a crash loses none; the [`UpdateLog`] makes its redelivery harmless.
pub struct Poller {
    source: Arc<dyn UpdateSource>,
    roles: Arc<dyn ExclusiveRoles>,
    bot: Arc<BotService>,
    clock: Arc<dyn Clock>,
    config: PollerConfig,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How a turn of the poll loop ended.
enum Turn {
    Continue,
    Stop,
}

impl Poller {
    pub fn new(
        source: Arc<dyn UpdateSource>,
        roles: Arc<dyn ExclusiveRoles>,
        bot: Arc<BotService>,
        clock: Arc<dyn Clock>,
        config: PollerConfig,
    ) -> Self {
        Self {
            source,
            roles,
            bot,
            clock,
            config,
        }
    }

    /// Polls until `stop` turns `true` (or its sender goes): a `getUpdates` in flight is
    /// abandoned at once, an update being handled is finished, and the role is released.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let lease = match self.roles.try_take(POLLER_ROLE).await {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    tracing::debug!("another instance polls Telegram; standing by");
                    if pause(&mut stop, self.config.standby).await {
                        return;
                    }
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "could not take the Telegram poller's role");
                    if pause(&mut stop, self.config.retry).await {
                        return;
                    }
                    continue;
                }
            };
            tracing::info!("polling Telegram for the bot's updates (getUpdates)");
            match self.poll(lease, &mut stop).await {
                Turn::Stop => return,
                Turn::Continue => {}
            }
        }
    }

    /// Polls while the role holds; releases it when stopping.
    async fn poll(&self, mut lease: Box<dyn RoleLease>, stop: &mut watch::Receiver<bool>) -> Turn {
        let mut offset = None;
        loop {
            if *stop.borrow() {
                lease.release().await;
                return Turn::Stop;
            }
            if !lease.still_held().await {
                tracing::warn!(
                    "lost the Telegram poller's role (its database connection); taking it again"
                );
                return Turn::Continue;
            }
            let polled = tokio::select! {
                _ = stopped(stop) => {
                    lease.release().await;
                    return Turn::Stop;
                }
                polled = self.source.next_updates(offset, self.config.wait) => polled,
            };
            let pause_for = match polled {
                Ok(updates) => match self.handle_all(updates, &mut offset).await {
                    Ok(()) => None,
                    Err(error) => {
                        tracing::warn!(%error, "could not record a Telegram update; it comes again");
                        Some(self.config.retry)
                    }
                },
                Err(PollError::Conflict(reason)) => {
                    tracing::error!(
                        %reason,
                        "Telegram refuses getUpdates: a webhook is set (run `server telegram \
                         delete-webhook`, or set TELEGRAM_UPDATES=webhook) or another process \
                         polls with this bot's token"
                    );
                    Some(self.config.refused)
                }
                Err(PollError::Refused(reason)) => {
                    tracing::error!(%reason, "Telegram refuses the bot: check TELEGRAM_BOT_TOKEN");
                    Some(self.config.refused)
                }
                Err(PollError::Unavailable {
                    reason,
                    retry_after,
                }) => {
                    tracing::warn!(%reason, "could not poll Telegram; trying again");
                    Some(retry_after.unwrap_or(self.config.retry))
                }
            };
            if let Some(wait) = pause_for
                && pause(stop, wait).await
            {
                lease.release().await;
                return Turn::Stop;
            }
        }
    }

    /// Handles `updates` in order, moving `offset` past each one handled; stops at the
    /// first that cannot be recorded, which is then fetched again.
    async fn handle_all(
        &self,
        updates: Vec<Update>,
        offset: &mut Option<i64>,
    ) -> Result<(), RepositoryError> {
        for update in updates {
            let update_id = update.update_id;
            // An update Telegram already had confirmed is not handled again.
            if offset.is_some_and(|next| update_id < next) {
                continue;
            }
            let handled = self.bot.handle(update, self.clock.now()).await?;
            tracing::debug!(update_id, ?handled, "telegram update (polled)");
            *offset = Some(update_id.saturating_add(1));
        }
        Ok(())
    }
}

/// Waits `wait`, or less when `stop` turns `true`: `true` when stopping.
async fn pause(stop: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        _ = stopped(stop) => true,
        _ = tokio::time::sleep(wait) => *stop.borrow(),
    }
}

/// Resolves when `stop` turns `true` or its sender goes.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
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
            payment: Default::default(),
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
            .returning(|_| Ok(Applied::Changed(Box::new(order(OrderStatus::Confirmed)))));
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
    async fn admin_answers_an_admin_with_the_panel_and_ignores_anyone_else() {
        const ADMIN: i64 = 4242;
        assert_eq!(
            UpdateKind::from_text(9, Some(ADMIN), "/admin@ShopBot"),
            UpdateKind::Admin {
                chat_id: 9,
                from: ADMIN
            }
        );
        let mut replies = MockBotReplies::new();
        replies
            .expect_admin_panel()
            .withf(|chat, private| *chat == 9 && !private)
            .times(1)
            .returning(|_, _| Ok(()));
        replies
            .expect_admin_panel()
            .withf(|chat, private| *chat == ADMIN && *private)
            .times(1)
            .returning(|_, _| Ok(()));
        let bot = service(fresh_log(), replies, MockOrderLifecycle::new())
            .with_admins(vec![TelegramId::parse(ADMIN).unwrap()]);
        let admin_from = |update_id, from| Update {
            update_id,
            kind: UpdateKind::Admin { chat_id: 9, from },
        };
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            bot.handle(admin_from(1, ADMIN), now).await.unwrap(),
            Handled::Replied
        );
        // In the admin's private chat (its id is the admin's).
        let private = Update {
            update_id: 4,
            kind: UpdateKind::Admin {
                chat_id: ADMIN,
                from: ADMIN,
            },
        };
        assert_eq!(bot.handle(private, now).await.unwrap(), Handled::Replied);
        // A manager who is not an admin, and a stranger: nothing is sent.
        assert_eq!(
            bot.handle(admin_from(2, MANAGER), now).await.unwrap(),
            Handled::Ignored
        );
        assert_eq!(
            bot.handle(admin_from(3, 12345), now).await.unwrap(),
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

    /// A webhook answers Telegram between the two: receiving records the update and acts
    /// on it, but says nothing; the reply is sent after.
    #[tokio::test]
    async fn receiving_leaves_the_reply_for_later() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let mut log = MockUpdateLog::new();
        log.expect_first_seen().times(1).returning(|_, _| Ok(true));
        let welcomed = Arc::new(AtomicBool::new(false));
        let mut replies = MockBotReplies::new();
        let flag = Arc::clone(&welcomed);
        replies.expect_welcome().times(1).returning(move |_| {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        let bot = service(log, replies, MockOrderLifecycle::new());
        let received = bot
            .receive(start(7), OffsetDateTime::UNIX_EPOCH)
            .await
            .unwrap();
        assert!(!welcomed.load(Ordering::SeqCst), "nothing sent yet");
        assert!(matches!(
            received.reply,
            Some(Reply::Welcome { chat_id: 42 })
        ));
        assert_eq!(bot.reply(received).await, Handled::Replied);
        assert!(welcomed.load(Ordering::SeqCst));
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

    #[test]
    fn updates_are_read_leniently() {
        let start = br#"{"update_id": 5, "message": {"chat": {"id": 42}, "text": "/start"}}"#;
        assert_eq!(
            Update::parse(start),
            Some(Update {
                update_id: 5,
                kind: UpdateKind::Start { chat_id: 42 }
            })
        );
        let press = br#"{"update_id": 9, "callback_query": {"id": "cb", "from": {"id": 777}, "message": {}, "data": "s:5:P:C"}}"#;
        assert_eq!(
            Update::parse(press).map(|u| u.kind),
            Some(UpdateKind::Button {
                callback_id: "cb".into(),
                from: 777,
                data: "s:5:P:C".into()
            })
        );
        let long = format!(
            r#"{{"update_id": 9, "callback_query": {{"id": "cb", "from": {{"id": 7}}, "data": "{}"}}}}"#,
            "x".repeat(65)
        );
        assert_eq!(
            Update::parse(long.as_bytes()).map(|u| u.kind),
            Some(UpdateKind::Ignored)
        );
        for ignored in [
            &br#"{"update_id": 6, "message": {"chat": {"id": 42}, "photo": []}}"#[..],
            br#"{"update_id": 7, "callback_query": {"id": "x"}}"#,
            br#"{"update_id": 8, "message": {"chat": "nope", "text": "/start"}}"#,
        ] {
            assert_eq!(
                Update::parse(ignored).map(|u| u.kind),
                Some(UpdateKind::Ignored)
            );
        }
        for broken in [&b"not json"[..], b"{}", br#"{"update_id": "5"}"#, b"[]"] {
            assert_eq!(Update::parse(broken), None);
        }
    }
}

#[cfg(test)]
mod poller_tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;
    use crate::clock::SystemClock;
    use crate::ports::{MockBotReplies, MockOrderLifecycle};

    /// Telegram's side of `getUpdates`: scripted answers, then a long poll that never
    /// ends; it records every offset asked for.
    struct ScriptedSource {
        answers: Mutex<VecDeque<Result<Vec<Update>, PollError>>>,
        offsets: Mutex<Vec<Option<i64>>>,
        exhausted: watch::Sender<bool>,
    }

    #[async_trait::async_trait]
    impl UpdateSource for ScriptedSource {
        async fn next_updates(
            &self,
            offset: Option<i64>,
            _wait: Duration,
        ) -> Result<Vec<Update>, PollError> {
            self.offsets.lock().unwrap().push(offset);
            let next = self.answers.lock().unwrap().pop_front();
            match next {
                Some(answer) => answer,
                None => {
                    self.exhausted.send_replace(true);
                    std::future::pending().await
                }
            }
        }
    }

    /// Records update ids; fails the ids in `failing` once each.
    #[derive(Default)]
    struct Log {
        seen: Mutex<Vec<i64>>,
        failing: Mutex<Vec<i64>>,
    }

    #[async_trait::async_trait]
    impl UpdateLog for Log {
        async fn first_seen(
            &self,
            update_id: i64,
            _at: OffsetDateTime,
        ) -> Result<bool, RepositoryError> {
            let mut failing = self.failing.lock().unwrap();
            if let Some(at) = failing.iter().position(|id| *id == update_id) {
                failing.remove(at);
                return Err(RepositoryError::Unavailable(anyhow::anyhow!(
                    "the database is down"
                )));
            }
            let mut seen = self.seen.lock().unwrap();
            let first = !seen.contains(&update_id);
            seen.push(update_id);
            Ok(first)
        }

        async fn forget_older_than(
            &self,
            _age: std::time::Duration,
        ) -> Result<u64, RepositoryError> {
            Ok(0)
        }
    }

    /// The role: free after `busy` refusals; counts releases and can be lost once.
    #[derive(Default)]
    struct Roles {
        busy: Mutex<u32>,
        taken: Mutex<u32>,
        released: Arc<Mutex<u32>>,
        lose_first: Mutex<bool>,
    }

    struct Lease {
        held: bool,
        released: Arc<Mutex<u32>>,
    }

    #[async_trait::async_trait]
    impl RoleLease for Lease {
        async fn still_held(&mut self) -> bool {
            self.held
        }
        async fn release(self: Box<Self>) {
            *self.released.lock().unwrap() += 1;
        }
    }

    #[async_trait::async_trait]
    impl ExclusiveRoles for Roles {
        async fn try_take(
            &self,
            role: &'static str,
        ) -> Result<Option<Box<dyn RoleLease>>, RepositoryError> {
            assert_eq!(role, POLLER_ROLE);
            let mut busy = self.busy.lock().unwrap();
            if *busy > 0 {
                *busy -= 1;
                return Ok(None);
            }
            *self.taken.lock().unwrap() += 1;
            let mut lose = self.lose_first.lock().unwrap();
            let held = !*lose;
            *lose = false;
            Ok(Some(Box::new(Lease {
                held,
                released: Arc::clone(&self.released),
            })))
        }
    }

    fn ignored(update_id: i64) -> Update {
        Update {
            update_id,
            kind: UpdateKind::Ignored,
        }
    }

    struct Run {
        source: Arc<ScriptedSource>,
        log: Arc<Log>,
        roles: Arc<Roles>,
    }

    /// Runs a poller over `answers` until the script is exhausted and the poller waits in
    /// a long poll, then stops it; the poller must end.
    async fn run(answers: Vec<Result<Vec<Update>, PollError>>, log: Log, roles: Roles) -> Run {
        let (exhausted, mut exhausted_rx) = watch::channel(false);
        let source = Arc::new(ScriptedSource {
            answers: Mutex::new(answers.into()),
            offsets: Mutex::new(Vec::new()),
            exhausted,
        });
        let log = Arc::new(log);
        let roles = Arc::new(roles);
        let bot = Arc::new(BotService::new(
            log.clone(),
            Arc::new(MockBotReplies::new()),
            Arc::new(MockOrderLifecycle::new()),
            vec![],
            Arc::new(Notify::new()),
        ));
        let poller = Poller::new(
            source.clone(),
            roles.clone(),
            bot,
            Arc::new(SystemClock),
            PollerConfig::default(),
        );
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(poller.run(stop_rx));
        exhausted_rx.wait_for(|done| *done).await.unwrap();
        stop.send_replace(true);
        task.await.unwrap();
        Run { source, log, roles }
    }

    #[tokio::test(start_paused = true)]
    async fn updates_are_handled_in_order_and_confirmed_one_past_the_last() {
        let run = run(
            vec![
                Ok(vec![ignored(10), ignored(11)]),
                Ok(vec![]),
                // A late copy of a confirmed update is not handled again.
                Ok(vec![ignored(11), ignored(12)]),
            ],
            Log::default(),
            Roles::default(),
        )
        .await;
        assert_eq!(*run.log.seen.lock().unwrap(), [10, 11, 12]);
        assert_eq!(
            *run.source.offsets.lock().unwrap(),
            [None, Some(12), Some(12), Some(13)]
        );
        // Stopping during the long poll releases the role.
        assert_eq!(*run.roles.released.lock().unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_update_that_cannot_be_recorded_is_fetched_again() {
        let log = Log {
            failing: Mutex::new(vec![21]),
            ..Log::default()
        };
        let run = run(
            vec![
                Ok(vec![ignored(20), ignored(21), ignored(22)]),
                Ok(vec![ignored(21), ignored(22)]),
            ],
            log,
            Roles::default(),
        )
        .await;
        assert_eq!(*run.log.seen.lock().unwrap(), [20, 21, 22]);
        assert_eq!(
            *run.source.offsets.lock().unwrap(),
            [None, Some(21), Some(23)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_and_failures_are_waited_out() {
        let run = run(
            vec![
                Err(PollError::Conflict("webhook is active".into())),
                Err(PollError::Unavailable {
                    reason: "429".into(),
                    retry_after: Some(Duration::from_secs(3)),
                }),
                Err(PollError::Refused("Unauthorized".into())),
                Ok(vec![ignored(1)]),
            ],
            Log::default(),
            Roles::default(),
        )
        .await;
        assert_eq!(*run.log.seen.lock().unwrap(), [1]);
        assert_eq!(
            *run.source.offsets.lock().unwrap(),
            [None, None, None, None, Some(2)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_instance_polls_the_others_stand_by_and_a_lost_role_is_taken_again() {
        let roles = Roles {
            busy: Mutex::new(2),
            lose_first: Mutex::new(true),
            ..Roles::default()
        };
        let started = tokio::time::Instant::now();
        let run = run(vec![Ok(vec![ignored(1)])], Log::default(), roles).await;
        // Two refusals stood by (10 s each) before the role was taken; the first lease
        // was lost before it polled, and the role was taken again.
        assert!(started.elapsed() >= Duration::from_secs(20));
        assert_eq!(*run.roles.taken.lock().unwrap(), 2);
        assert_eq!(*run.log.seen.lock().unwrap(), [1]);
        assert_eq!(*run.source.offsets.lock().unwrap(), [None, Some(2)]);
        assert_eq!(*run.roles.released.lock().unwrap(), 1);
    }
}
