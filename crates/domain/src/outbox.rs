//! Durable Telegram notifications: the transactional outbox and its relay.
//!
//! A change that someone must hear about writes a typed [`OutboxEvent`] in the change's
//! own transaction — placing an order writes [`OutboxEvent::OrderCreated`], a status
//! change [`OutboxEvent::OrderStatusChanged`] and [`OutboxEvent::ManagerMessageUpdate`] —
//! so a change never exists without its notification, nor a notification without its
//! change. Each event has a [`Recipient`]: the manager chat or a customer's private chat.
//! The [`Relay`] then delivers events, claimed through the [`Outbox`] port, through the
//! [`Notifier`] port (which renders them) until each one is sent or, when retrying cannot
//! help, dead. Delivery is at least once:
//!
//! - it claims due events under a lease (`locked_until`), so several relays — several
//!   server instances — can share one database without sending an event twice, and a
//!   relay that dies only delays its events until the lease runs out. Leases run on the
//!   database's clock, not on each instance's: instances whose clocks disagree still agree
//!   on when a lease ends;
//! - each claim carries a token, and recording an outcome requires it: a relay that
//!   stalled past its lease (the event may have been claimed and sent by another since)
//!   learns that its claim is lost, logs it, and changes nothing;
//! - a transient failure is retried with exponential backoff and jitter, from
//!   [`RelayConfig::backoff_base`] up to [`RelayConfig::backoff_max`];
//! - a 429 is honoured per chat: the chat that got it is held back for `retry_after` (all
//!   its pending events, not just the one message), every other chat goes on, and the
//!   wait does not count as a failed attempt. A 5xx with `Retry-After` holds the chat the
//!   same way but does count, so a server that keeps failing makes the event dead in the
//!   end instead of retrying it for ever;
//! - a permanent refusal ("bot was blocked by the user", "bot can't initiate conversation
//!   with a user", "chat not found") makes the event dead at once, without retries and
//!   without holding any chat; so does running out of attempts. Each is logged once as an
//!   error. `server outbox retry-dead` puts dead events back in line;
//! - sent events are deleted once they are older than the retention ([`prune_sent`]),
//!   in batches; dead events are kept for operators to inspect.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Notify, watch};

use crate::clock::Clock;
use crate::entities::OrderStatus;
use crate::error::RepositoryError;
use crate::ports::{Notification, Notifier, NotifyError, Outbox};
use crate::settings::{InvalidSetting, check_range};
use crate::values::{OrderId, TelegramId};

/// An outbox event's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub i64);

/// [`EventKind::OrderCreated`]'s stored spelling.
pub const ORDER_CREATED: &str = "order_created";

/// The kinds of event, stored as their [`EventKind::as_str`] spelling (a CHECK constraint
/// keeps the column to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    OrderCreated,
    OrderStatusChanged,
    ManagerMessageUpdate,
    ManagerNotice,
    CustomerNotice,
    StarsRefund,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::OrderCreated,
        EventKind::OrderStatusChanged,
        EventKind::ManagerMessageUpdate,
        EventKind::ManagerNotice,
        EventKind::CustomerNotice,
        EventKind::StarsRefund,
    ];

    /// The stable spelling stored in the `kind` column.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::OrderCreated => ORDER_CREATED,
            EventKind::OrderStatusChanged => "order_status_changed",
            EventKind::ManagerMessageUpdate => "manager_message_update",
            EventKind::ManagerNotice => "manager_notice",
            EventKind::CustomerNotice => "customer_notice",
            EventKind::StarsRefund => "stars_refund",
        }
    }

    /// The kind spelled `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// Who changed a status: defined with the lifecycle, which decides every change.
pub use crate::lifecycle::ChangedBy;

/// Which chat an event is delivered to. Holds are per recipient: Telegram's flood control
/// limits one chat, so a 429 in one chat delays only that chat's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// The shop's manager chat, as configured (`MANAGER_CHAT_ID`) when the event is sent:
    /// named, not numbered, so changing the setting redirects events still pending.
    ManagerChat,
    /// A customer's private chat with the bot (its id is the customer's Telegram id).
    Customer(TelegramId),
}

/// [`Recipient::ManagerChat`]'s chat key.
const MANAGER_CHAT_KEY: &str = "manager_chat";
/// The prefix of a customer's chat key.
const CUSTOMER_CHAT_PREFIX: &str = "user:";

impl Recipient {
    /// The key the storage files the recipient's events and holds under: `manager_chat`,
    /// or `user:<telegram id>`.
    pub fn chat_key(&self) -> String {
        match self {
            Recipient::ManagerChat => MANAGER_CHAT_KEY.to_owned(),
            Recipient::Customer(id) => format!("{CUSTOMER_CHAT_PREFIX}{}", id.get()),
        }
    }

    /// The recipient whose [`Recipient::chat_key`] is `key`, if any.
    pub fn from_chat_key(key: &str) -> Option<Self> {
        if key == MANAGER_CHAT_KEY {
            return Some(Recipient::ManagerChat);
        }
        let id = key.strip_prefix(CUSTOMER_CHAT_PREFIX)?.parse().ok()?;
        TelegramId::parse(id).ok().map(Recipient::Customer)
    }
}

/// A typed outbox event, as the change that causes it writes it — in that change's own
/// transaction (infra-postgres: `append_outbox_event`), so that the change never happens
/// without its event nor the event without its change. Each names its recipient
/// ([`OutboxEvent::recipient`]) and carries what rendering needs beyond the order, which
/// is read when the event is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxEvent {
    /// A new order: a new message in the manager chat. Its Telegram message id is kept
    /// when it is sent, for [`OutboxEvent::ManagerMessageUpdate`]. At most one per order.
    OrderCreated { order_id: OrderId },
    /// The order went from `from` to `to`: a new message in the customer's private chat,
    /// in their language.
    OrderStatusChanged {
        order_id: OrderId,
        from: OrderStatus,
        to: OrderStatus,
        by: ChangedBy,
    },
    /// Edit the manager-chat message that [`OutboxEvent::OrderCreated`] sent for the
    /// order so that it shows the order as it is when the edit is delivered. Waits (as a
    /// failed attempt) while that message has not been sent yet.
    ManagerMessageUpdate { order_id: OrderId },
    /// Something about the order the manager must notice: a new message in the manager
    /// chat (an edit of the order's message makes no sound).
    ManagerNotice { order_id: OrderId, notice: Notice },
    /// Something about the order its customer must hear (a payment that came too late): a
    /// new message in their private chat.
    CustomerNotice { order_id: OrderId, notice: Notice },
    /// Refund the recorded Stars payment `payment` of the order (`refundStarPayment`),
    /// durably: retried like a message, and a refund already made counts as done.
    StarsRefund {
        order_id: OrderId,
        payment: crate::payments::PaymentId,
    },
}

/// What a [`OutboxEvent::ManagerNotice`] tells the manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Notice {
    /// The customer cancelled the order themselves.
    CancelledByCustomer,
    /// The order was paid (and so confirmed).
    Paid,
    /// A Stars payment came when the order could no longer take it (cancelled, expired,
    /// paid already): it is refunded automatically.
    LatePaymentRefunded,
    /// A provider payment came when the order could no longer take it: the manager must
    /// refund it through the provider.
    LatePaymentToRefund,
    /// A paid Stars order was cancelled: the payment is refunded automatically.
    CancelledPaidRefunded,
    /// A paid provider order was cancelled: the manager must refund it through the
    /// provider.
    CancelledPaidToRefund,
    /// A Stars refund could not be made (Telegram refused it, or kept failing): the
    /// manager must see to it (top up the bot's balance and `server outbox retry-dead`).
    RefundFailed,
}

impl Notice {
    pub const ALL: [Notice; 7] = [
        Notice::CancelledByCustomer,
        Notice::Paid,
        Notice::LatePaymentRefunded,
        Notice::LatePaymentToRefund,
        Notice::CancelledPaidRefunded,
        Notice::CancelledPaidToRefund,
        Notice::RefundFailed,
    ];

    /// The stable spelling stored in the event's payload.
    pub fn as_str(&self) -> &'static str {
        match self {
            Notice::CancelledByCustomer => "cancelled_by_customer",
            Notice::Paid => "paid",
            Notice::LatePaymentRefunded => "late_payment_refunded",
            Notice::LatePaymentToRefund => "late_payment_to_refund",
            Notice::CancelledPaidRefunded => "cancelled_paid_refunded",
            Notice::CancelledPaidToRefund => "cancelled_paid_to_refund",
            Notice::RefundFailed => "refund_failed",
        }
    }

    /// The notice spelled `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|notice| notice.as_str() == text)
    }
}

/// What the relay writes when an event of `kind` about `order_id` goes dead, for someone
/// to act on: a Stars refund that cannot be made is the manager's to see to. Other
/// messages that die are only counted and logged (`server outbox status`).
pub fn when_dead(kind: EventKind, order_id: OrderId) -> Option<OutboxEvent> {
    match kind {
        EventKind::StarsRefund => Some(OutboxEvent::ManagerNotice {
            order_id,
            notice: Notice::RefundFailed,
        }),
        EventKind::OrderCreated
        | EventKind::OrderStatusChanged
        | EventKind::ManagerMessageUpdate
        | EventKind::ManagerNotice
        | EventKind::CustomerNotice => None,
    }
}

impl OutboxEvent {
    pub fn kind(&self) -> EventKind {
        match self {
            OutboxEvent::OrderCreated { .. } => EventKind::OrderCreated,
            OutboxEvent::OrderStatusChanged { .. } => EventKind::OrderStatusChanged,
            OutboxEvent::ManagerMessageUpdate { .. } => EventKind::ManagerMessageUpdate,
            OutboxEvent::ManagerNotice { .. } => EventKind::ManagerNotice,
            OutboxEvent::CustomerNotice { .. } => EventKind::CustomerNotice,
            OutboxEvent::StarsRefund { .. } => EventKind::StarsRefund,
        }
    }

    pub fn order_id(&self) -> OrderId {
        match self {
            OutboxEvent::OrderCreated { order_id }
            | OutboxEvent::OrderStatusChanged { order_id, .. }
            | OutboxEvent::ManagerMessageUpdate { order_id }
            | OutboxEvent::ManagerNotice { order_id, .. }
            | OutboxEvent::CustomerNotice { order_id, .. }
            | OutboxEvent::StarsRefund { order_id, .. } => *order_id,
        }
    }

    /// The recipient, given the order's customer.
    pub fn recipient(&self, customer: TelegramId) -> Recipient {
        match self {
            OutboxEvent::OrderCreated { .. }
            | OutboxEvent::ManagerMessageUpdate { .. }
            | OutboxEvent::ManagerNotice { .. } => Recipient::ManagerChat,
            OutboxEvent::OrderStatusChanged { .. }
            | OutboxEvent::CustomerNotice { .. }
            | OutboxEvent::StarsRefund { .. } => Recipient::Customer(customer),
        }
    }
}

/// Which claim holds an event: written by each claim, required by every update of the
/// claimed event. Opaque; the storage makes it unique per claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken(String);

impl ClaimToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether an update of a claimed event took effect.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Done,
    /// The event no longer holds this claim (its lease ran out and another relay claimed
    /// it, or it is no longer pending or gone): nothing was changed.
    LeaseLost,
}

/// Why a claimed event cannot be delivered yet (the manager's message an update edits
/// has not been sent). The relay treats it as a transient failure: retried with backoff,
/// dead in the end if it never becomes ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    /// Free of secrets and personal data: it is logged and stored.
    pub reason: String,
}

/// An event a relay has claimed, with what it needs to deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEvent {
    pub id: EventId,
    /// This claim's token, for recording the outcome.
    pub token: ClaimToken,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    pub kind: EventKind,
    pub order_id: OrderId,
    /// The chat it goes to, whose hold it obeys.
    pub recipient: Recipient,
    /// What to send, or why it cannot be sent yet.
    pub notification: Result<Notification, NotReady>,
}

/// A summary of what the outbox still has to do, for `server outbox status` and metrics.
/// Sent events are not counted: they are nearly every row and only ever grow, and
/// counting them would read them all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboxCounts {
    pub pending: u64,
    pub dead: u64,
    /// When the oldest pending event (the first written) was created.
    pub oldest_pending: Option<OffsetDateTime>,
}

/// How the relay paces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// How often to look for due events when nothing wakes the relay. Events committed in
    /// this process wake it at once; this bounds the delay for other instances' events.
    pub poll_interval: Duration,
    /// How many events to claim at once.
    pub batch_size: u32,
    /// How long one delivery may take before it counts as a transient failure.
    pub send_timeout: Duration,
    /// How long a claim lasts. MUST exceed `send_timeout` (by a few seconds): a relay starts
    /// a send only while the claim can outlast it, releasing the rest of its batch
    /// otherwise; a dead relay's events wait this long.
    pub lease: Duration,
    /// Attempts before an event is declared dead.
    pub max_attempts: u32,
    /// The first retry's delay; each further retry doubles it.
    pub backoff_base: Duration,
    /// The longest delay between two attempts.
    pub backoff_max: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(u64::from(DEFAULT_OUTBOX_POLL_INTERVAL_MS)),
            batch_size: 10,
            send_timeout: Duration::from_secs(15),
            lease: Duration::from_secs(30),
            max_attempts: DEFAULT_OUTBOX_MAX_ATTEMPTS,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(600),
        }
    }
}

/// `OUTBOX_POLL_INTERVAL_MS`'s default.
pub const DEFAULT_OUTBOX_POLL_INTERVAL_MS: u32 = 500;
/// `OUTBOX_MAX_ATTEMPTS`'s default.
pub const DEFAULT_OUTBOX_MAX_ATTEMPTS: u32 = 20;
/// `OUTBOX_RETENTION_DAYS`'s default.
pub const DEFAULT_OUTBOX_RETENTION_DAYS: u32 = 30;

/// The relay's configuration keys; each field name is its key. The server turns them into
/// a [`RelayConfig`] with [`RelaySettings::relay_config`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct RelaySettings {
    /// How often the relay looks for due events written by other instances (10–60000 ms).
    pub outbox_poll_interval_ms: u32,
    /// Failed attempts before an event is declared dead (at least 1).
    pub outbox_max_attempts: u32,
    /// How many days sent events are kept before they are deleted (1–3650).
    pub outbox_retention_days: u32,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            outbox_poll_interval_ms: DEFAULT_OUTBOX_POLL_INTERVAL_MS,
            outbox_max_attempts: DEFAULT_OUTBOX_MAX_ATTEMPTS,
            outbox_retention_days: DEFAULT_OUTBOX_RETENTION_DAYS,
        }
    }
}

impl RelaySettings {
    /// Checks every value, naming the key of the first bad one.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        check_range(
            "OUTBOX_POLL_INTERVAL_MS",
            self.outbox_poll_interval_ms,
            10..=60_000,
        )?;
        if self.outbox_max_attempts == 0 {
            return Err(InvalidSetting::new(
                "OUTBOX_MAX_ATTEMPTS",
                "must be at least 1",
            ));
        }
        check_range(
            "OUTBOX_RETENTION_DAYS",
            self.outbox_retention_days,
            1..=3650,
        )?;
        Ok(())
    }

    /// How long sent events are kept.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.outbox_retention_days) * 24 * 3600)
    }

    /// The relay's configuration for a notifier whose sends take at most `send_timeout`:
    /// a claim lasts twice that, so a live relay never loses an event it is still sending.
    pub fn relay_config(&self, send_timeout: Duration) -> RelayConfig {
        RelayConfig {
            poll_interval: Duration::from_millis(u64::from(self.outbox_poll_interval_ms)),
            send_timeout,
            lease: send_timeout * 2,
            max_attempts: self.outbox_max_attempts,
            ..RelayConfig::default()
        }
    }
}

impl RelayConfig {
    /// The delay before retry number `attempt` (1 = the first retry) of `event`:
    /// exponential, capped, with "equal jitter" — half the delay fixed, half spread —
    /// so that events which failed together do not all retry in the same instant.
    ///
    /// The jitter is a hash of the event and attempt, not a random draw: it spreads
    /// events just as well and keeps the relay reproducible in tests.
    pub fn backoff(&self, event: EventId, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(31);
        let full = self
            .backoff_base
            .saturating_mul(1u32 << exponent)
            .min(self.backoff_max);
        let half = full / 2;
        let spread = splitmix64((event.0 as u64) ^ (u64::from(attempt) << 48));
        // `spread / u64::MAX` is a fraction in [0, 1].
        let fraction = (spread >> 11) as f64 / (1u64 << 53) as f64;
        half + half.mul_f64(fraction)
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The longest wait a 429 may impose on a chat.
pub const MAX_RETRY_AFTER: time::Duration = time::Duration::hours(1);

/// Headroom between the end of the longest possible send and the end of its claim, for
/// recording the outcome.
const LEASE_MARGIN: Duration = Duration::from_secs(2);

/// What one pass of the relay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayPass {
    pub claimed: usize,
    pub sent: usize,
    pub retried: usize,
    pub dead: usize,
    /// Outcomes that could not be recorded because the claim had been lost (see
    /// [`Recorded::LeaseLost`]).
    pub lease_lost: usize,
    /// The latest end of the holds this pass put on chats (by this relay's clock).
    pub held_until: Option<OffsetDateTime>,
}

/// Delivers outbox events through the notifier. See the module docs.
pub struct Relay {
    outbox: Arc<dyn Outbox>,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
    config: RelayConfig,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// `wake` is notified by the order service after each commit, so new events go out
    /// at once instead of at the next poll.
    pub fn new(
        outbox: Arc<dyn Outbox>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
        config: RelayConfig,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            outbox,
            notifier,
            clock,
            config,
            wake,
        }
    }

    /// Runs until `shutdown` turns true. On shutdown the current send is finished (it is
    /// bounded by the send timeout) and every other claimed event is released, so no lease
    /// outlives the relay. A storage failure is logged and retried after the poll interval.
    ///
    /// A held chat does not stop the relay: the storage's claim skips that chat's events
    /// until its hold ends, and every other chat's go on.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!("notification relay started");
        let mut storage_failing = false;
        while !*shutdown.borrow() {
            let wait = match self.pass(Some(&shutdown)).await {
                Ok(pass) => {
                    if storage_failing {
                        tracing::info!("notification relay: storage is reachable again");
                        storage_failing = false;
                    }
                    if pass.claimed > 0 {
                        // There may be more due events: look again at once. Events of a
                        // chat held during this pass are not claimed again until the
                        // hold ends, so this cannot spin on them.
                        continue;
                    }
                    self.config.poll_interval
                }
                Err(error) => {
                    if !storage_failing {
                        tracing::error!(%error, "notification relay cannot reach the outbox; retrying");
                        storage_failing = true;
                    }
                    self.config.poll_interval
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("notification relay stopped");
    }

    /// Claims one batch of due events and attempts each. When Telegram asks a chat to
    /// wait, that chat's remaining events in the batch are released untried, and the
    /// others go on; the pass stops early — releasing the rest of the batch — when
    /// `shutdown` turns true or the claim could not outlast another send.
    pub async fn pass(
        &self,
        shutdown: Option<&watch::Receiver<bool>>,
    ) -> Result<RelayPass, RepositoryError> {
        // The lease is the database's, measured from its clock; this relay measures the
        // same span on its own clock, from before it asked, so its idea of the lease never
        // ends later than the database's. Only the length of the span matters, so this
        // clock may disagree with the database's by any amount.
        let claimed_at = self.clock.now();
        let lease_ends = claimed_at + self.config.lease;
        let events = self
            .outbox
            .claim_due(self.config.lease, self.config.batch_size)
            .await?;
        let mut pass = RelayPass {
            claimed: events.len(),
            ..RelayPass::default()
        };
        let mut events = events.into_iter();
        let mut unattempted: Vec<(EventId, ClaimToken)> = Vec::new();
        let mut held: HashSet<Recipient> = HashSet::new();
        for event in events.by_ref() {
            // Never start a send that could outlast the claim: another relay may claim the
            // event once the lease runs out, and would send it a second time.
            if self.clock.now() + self.config.send_timeout + LEASE_MARGIN > lease_ends {
                unattempted.push((event.id, event.token));
                break;
            }
            if held.contains(&event.recipient) {
                // Its chat was told to wait during this pass: it keeps its place in line.
                unattempted.push((event.id, event.token));
                continue;
            }
            let recipient = event.recipient;
            if self.attempt(event, &mut pass).await? == Held::Yes {
                held.insert(recipient);
            }
            if shutdown.is_some_and(|s| *s.borrow()) {
                break;
            }
        }
        unattempted.extend(events.map(|e| (e.id, e.token)));
        if !unattempted.is_empty() {
            self.outbox.release(&unattempted).await?;
        }
        Ok(pass)
    }

    /// Delivers one event and records the outcome; says whether its chat is now held.
    async fn attempt(
        &self,
        event: ClaimedEvent,
        pass: &mut RelayPass,
    ) -> Result<Held, RepositoryError> {
        let order_id = event.order_id.0;
        let kind = event.kind.as_str();
        let outcome = match &event.notification {
            Ok(notification) => match tokio::time::timeout(
                self.config.send_timeout,
                self.notifier.deliver(notification),
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(NotifyError::Transient {
                    reason: format!("no answer within {:?}", self.config.send_timeout),
                    retry_after: None,
                }),
            },
            Err(not_ready) => Err(NotifyError::Transient {
                reason: not_ready.reason.clone(),
                retry_after: None,
            }),
        };
        let (id, token, recipient) = (event.id, &event.token, &event.recipient);
        // Written with the event's death, if it goes dead.
        let then = when_dead(event.kind, event.order_id);
        let mut held = Held::No;
        match outcome {
            Ok(receipt) => {
                let recorded = self.outbox.mark_sent(id, token, receipt.message_id).await?;
                if self.lease_lost(recorded, id, order_id, pass) {
                    return Ok(held);
                }
                let what = match event.kind {
                    EventKind::OrderCreated => "manager notified of new order",
                    EventKind::OrderStatusChanged => "customer notified of a status change",
                    EventKind::ManagerMessageUpdate => "manager's message about the order updated",
                    EventKind::ManagerNotice => "manager told about the order",
                    EventKind::CustomerNotice => "customer told about their payment",
                    EventKind::StarsRefund => "stars payment refunded",
                };
                tracing::info!(event_id = id.0, order_id, kind, "{what}");
                pass.sent += 1;
            }
            Err(NotifyError::RateLimited {
                reason,
                retry_after,
            }) => {
                // Telegram limits the chat, not the message: hold that chat's pending
                // events back, and no other chat's. The wait is Telegram's instruction,
                // not our failure, so it costs no attempt.
                let wait = self.hold(recipient, retry_after, pass).await?;
                held = Held::Yes;
                let recorded = self
                    .outbox
                    .retry_later(id, token, event.attempts, wait, &reason)
                    .await?;
                if self.lease_lost(recorded, id, order_id, pass) {
                    return Ok(held);
                }
                tracing::warn!(
                    event_id = id.0,
                    order_id,
                    kind,
                    retry_after_s = wait.as_secs(),
                    "Telegram asked to slow down; holding the chat back"
                );
                pass.retried += 1;
            }
            Err(NotifyError::Transient {
                reason,
                retry_after,
            }) => {
                let attempts = event.attempts + 1;
                // A server that asks to be left alone for a while (a 5xx with Retry-After)
                // is asked nothing for this chat before then, by this relay or any other;
                // the attempt still counts, so an event it keeps failing goes dead in the
                // end.
                let wait = match retry_after {
                    Some(retry_after) => {
                        held = Held::Yes;
                        Some(self.hold(recipient, retry_after, pass).await?)
                    }
                    None => None,
                };
                if attempts >= self.config.max_attempts {
                    let reason = format!("gave up after {attempts} attempts; last error: {reason}");
                    let recorded = self
                        .outbox
                        .mark_dead(id, token, attempts, &reason, then)
                        .await?;
                    if self.lease_lost(recorded, id, order_id, pass) {
                        return Ok(held);
                    }
                    tracing::error!(event_id = id.0, order_id, kind, %reason, "notification is dead");
                    pass.dead += 1;
                } else {
                    let delay = self
                        .config
                        .backoff(id, attempts)
                        .max(wait.unwrap_or_default());
                    let recorded = self
                        .outbox
                        .retry_later(id, token, attempts, delay, &reason)
                        .await?;
                    if self.lease_lost(recorded, id, order_id, pass) {
                        return Ok(held);
                    }
                    tracing::warn!(event_id = id.0, order_id, kind, attempts, retry_in_ms = delay.as_millis() as u64, %reason, "notification failed; will retry");
                    pass.retried += 1;
                }
            }
            Err(NotifyError::Permanent { reason }) => {
                // Retrying cannot help (the customer blocked the bot, never started it, the
                // chat does not exist): dead at once, and no chat is held, this one included.
                let attempts = event.attempts + 1;
                let recorded = self
                    .outbox
                    .mark_dead(id, token, attempts, &reason, then)
                    .await?;
                if self.lease_lost(recorded, id, order_id, pass) {
                    return Ok(held);
                }
                tracing::error!(event_id = id.0, order_id, kind, %reason, "notification is dead: retrying cannot help");
                pass.dead += 1;
            }
        }
        Ok(held)
    }

    /// Holds `recipient`'s chat for `retry_after`, clamped so that an absurd value (from a
    /// proxy, say) cannot stall it for ever or overflow the clock, and returns the wait.
    async fn hold(
        &self,
        recipient: &Recipient,
        retry_after: time::Duration,
        pass: &mut RelayPass,
    ) -> Result<Duration, RepositoryError> {
        let wait = to_std(retry_after.clamp(time::Duration::ZERO, MAX_RETRY_AFTER));
        self.outbox.hold_chat(recipient, wait).await?;
        let until = self.clock.now() + wait;
        pass.held_until = Some(pass.held_until.map_or(until, |held| held.max(until)));
        Ok(wait)
    }

    /// Whether the outcome of `id` could not be recorded because its claim was lost; if
    /// so it is counted and logged, once per event: the relay that holds the event now
    /// decides what becomes of it.
    fn lease_lost(
        &self,
        recorded: Recorded,
        id: EventId,
        order_id: i64,
        pass: &mut RelayPass,
    ) -> bool {
        if recorded == Recorded::Done {
            return false;
        }
        tracing::warn!(
            event_id = id.0,
            order_id,
            lease_s = self.config.lease.as_secs(),
            "the claim on this notification was lost before its outcome was recorded \
             (the relay stalled past its lease); another relay owns it now, nothing was changed"
        );
        pass.lease_lost += 1;
        true
    }
}

/// Whether an attempt left its chat held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Yes,
    No,
}

/// How many sent events one statement of [`prune_sent`] deletes: small enough that a
/// delete never holds many locks or a long transaction, large enough that a month of
/// events goes in a few hundred statements.
pub const PRUNE_BATCH: u32 = 1000;

/// Deletes sent events older than `retention`, `batch` at a time, until none is left;
/// returns how many. Dead events are kept: operators inspect them.
pub async fn prune_sent(
    outbox: &dyn Outbox,
    retention: Duration,
    batch: u32,
) -> Result<u64, RepositoryError> {
    let mut deleted = 0;
    loop {
        let this_batch = outbox.delete_sent(retention, batch).await?;
        deleted += this_batch;
        if this_batch < u64::from(batch) || batch == 0 {
            return Ok(deleted);
        }
    }
}

fn to_std(duration: time::Duration) -> Duration {
    Duration::try_from(duration).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    use async_trait::async_trait;
    use tokio::sync::mpsc;

    use super::*;
    use crate::clock::TokioClock;
    use crate::entities::Order;
    use crate::money::Money;
    use crate::ports::{DeliveryReceipt, MockNotifier, MockOutbox, OrderPlaced};
    use crate::values::UserId;

    fn start() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_766_400_000).unwrap()
    }

    fn notification(order_id: i64) -> OrderPlaced {
        OrderPlaced {
            order: Order {
                payment: Default::default(),
                id: OrderId(order_id),
                user_id: UserId(1),
                status: OrderStatus::Pending,
                total_amount: Money::from_minor(100).unwrap(),
                delivery_address: "addr".into(),
                phone: "+79001234567".into(),
                comment: None,
                created_at: start(),
                updated_at: start(),
                items: vec![],
            },
            customer: TelegramId::parse(7).unwrap(),
        }
    }

    fn new_order(order_id: i64) -> Notification {
        Notification::NewOrder(notification(order_id))
    }

    fn transient(reason: &str) -> NotifyError {
        NotifyError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    enum State {
        Pending,
        Sent(Option<i64>),
        Dead(String),
    }

    #[derive(Debug, Clone)]
    struct Stored {
        id: EventId,
        recipient: Recipient,
        attempts: u32,
        next_attempt_at: OffsetDateTime,
        locked_until: Option<OffsetDateTime>,
        token: Option<ClaimToken>,
        state: State,
    }

    /// The database's clock: tokio's, plus however far a test moves it on behind the
    /// relay's back (as a relay frozen mid-send would see it).
    struct DbClock {
        tokio: TokioClock,
        jumped: Mutex<time::Duration>,
    }

    impl Clock for DbClock {
        fn now(&self) -> OffsetDateTime {
            self.tokio.now() + *self.jumped.lock().unwrap()
        }
    }

    /// An in-memory outbox with the port's semantics, on its own clock (the database's).
    struct FakeOutbox {
        clock: DbClock,
        events: Mutex<Vec<Stored>>,
        releases: Mutex<Vec<EventId>>,
        held_until: Mutex<HashMap<Recipient, OffsetDateTime>>,
        claims: Mutex<u64>,
        /// The events claimed as Stars refunds (the others are new orders).
        refunds: Vec<EventId>,
        /// What was appended with an event's death.
        appended: Mutex<Vec<OutboxEvent>>,
    }

    impl FakeOutbox {
        fn with_events(clock: TokioClock, ids: &[i64]) -> Self {
            let events: Vec<_> = ids.iter().map(|&id| (id, Recipient::ManagerChat)).collect();
            Self::with_chats(clock, &events)
        }

        fn with_chats(clock: TokioClock, events: &[(i64, Recipient)]) -> Self {
            let events = events
                .iter()
                .map(|&(id, recipient)| Stored {
                    id: EventId(id),
                    recipient,
                    attempts: 0,
                    next_attempt_at: start(),
                    locked_until: None,
                    token: None,
                    state: State::Pending,
                })
                .collect();
            Self {
                clock: DbClock {
                    tokio: clock,
                    jumped: Mutex::new(time::Duration::ZERO),
                },
                events: Mutex::new(events),
                releases: Mutex::new(Vec::new()),
                held_until: Mutex::new(HashMap::new()),
                claims: Mutex::new(0),
                refunds: Vec::new(),
                appended: Mutex::new(Vec::new()),
            }
        }

        fn state(&self, id: i64) -> Stored {
            self.events
                .lock()
                .unwrap()
                .iter()
                .find(|e| e.id.0 == id)
                .unwrap()
                .clone()
        }

        /// Applies `f` to the event if it is pending and holds `token`.
        fn update(&self, id: EventId, token: &ClaimToken, f: impl FnOnce(&mut Stored)) -> Recorded {
            let mut events = self.events.lock().unwrap();
            let event = events.iter_mut().find(|e| e.id == id).unwrap();
            if event.state != State::Pending || event.token.as_ref() != Some(token) {
                return Recorded::LeaseLost;
            }
            f(event);
            event.locked_until = None;
            Recorded::Done
        }
    }

    #[async_trait]
    impl Outbox for FakeOutbox {
        async fn claim_due(
            &self,
            lease: Duration,
            limit: u32,
        ) -> Result<Vec<ClaimedEvent>, RepositoryError> {
            let now = self.clock.now();
            let held = self.held_until.lock().unwrap().clone();
            let claim = {
                let mut claims = self.claims.lock().unwrap();
                *claims += 1;
                ClaimToken::new(format!("claim-{claims}"))
            };
            let mut events = self.events.lock().unwrap();
            Ok(events
                .iter_mut()
                .filter(|e| {
                    e.state == State::Pending
                        && e.next_attempt_at <= now
                        && e.locked_until.is_none_or(|l| l <= now)
                        && held.get(&e.recipient).is_none_or(|until| *until <= now)
                })
                .take(limit as usize)
                .map(|e| {
                    e.locked_until = Some(now + lease);
                    e.token = Some(claim.clone());
                    ClaimedEvent {
                        id: e.id,
                        token: claim.clone(),
                        attempts: e.attempts,
                        kind: if self.refunds.contains(&e.id) {
                            EventKind::StarsRefund
                        } else {
                            EventKind::OrderCreated
                        },
                        order_id: OrderId(e.id.0 * 100),
                        recipient: e.recipient,
                        notification: Ok(new_order(e.id.0 * 100)),
                    }
                })
                .collect())
        }

        async fn mark_sent(
            &self,
            id: EventId,
            token: &ClaimToken,
            message_id: Option<i64>,
        ) -> Result<Recorded, RepositoryError> {
            Ok(self.update(id, token, |e| e.state = State::Sent(message_id)))
        }

        async fn retry_later(
            &self,
            id: EventId,
            token: &ClaimToken,
            attempts: u32,
            delay: Duration,
            _: &str,
        ) -> Result<Recorded, RepositoryError> {
            let at = self.clock.now() + delay;
            Ok(self.update(id, token, |e| {
                e.attempts = attempts;
                e.next_attempt_at = at;
            }))
        }

        async fn mark_dead(
            &self,
            id: EventId,
            token: &ClaimToken,
            attempts: u32,
            reason: &str,
            then: Option<OutboxEvent>,
        ) -> Result<Recorded, RepositoryError> {
            let recorded = self.update(id, token, |e| {
                e.attempts = attempts;
                e.state = State::Dead(reason.to_owned());
            });
            if let (Recorded::Done, Some(then)) = (recorded, then) {
                self.appended.lock().unwrap().push(then);
            }
            Ok(recorded)
        }

        async fn release(&self, claims: &[(EventId, ClaimToken)]) -> Result<(), RepositoryError> {
            for (id, token) in claims {
                let _ = self.update(*id, token, |_| {});
                self.releases.lock().unwrap().push(*id);
            }
            Ok(())
        }

        async fn hold_chat(&self, chat: &Recipient, wait: Duration) -> Result<(), RepositoryError> {
            let until = self.clock.now() + wait;
            let mut held = self.held_until.lock().unwrap();
            let entry = held.entry(*chat).or_insert(until);
            *entry = (*entry).max(until);
            Ok(())
        }

        async fn counts(&self) -> Result<OutboxCounts, RepositoryError> {
            unreachable!("the relay does not count")
        }

        async fn retry_dead(&self) -> Result<u64, RepositoryError> {
            unreachable!("the relay does not revive")
        }

        async fn delete_sent(&self, _: Duration, _: u32) -> Result<u64, RepositoryError> {
            unreachable!("the relay does not prune")
        }
    }

    /// Answers each delivery with the next scripted outcome (success once the script runs
    /// out) and reports (order id, when) of every call.
    struct ScriptedNotifier {
        script: Mutex<VecDeque<Result<DeliveryReceipt, NotifyError>>>,
        clock: TokioClock,
        calls: mpsc::UnboundedSender<(i64, OffsetDateTime)>,
    }

    #[async_trait]
    impl Notifier for ScriptedNotifier {
        async fn deliver(&self, n: &Notification) -> Result<DeliveryReceipt, NotifyError> {
            let _ = self.calls.send((n.order_id().0, self.clock.now()));
            self.script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Ok(DeliveryReceipt {
                    message_id: Some(1),
                }))
        }
    }

    struct Harness {
        outbox: Arc<FakeOutbox>,
        calls: mpsc::UnboundedReceiver<(i64, OffsetDateTime)>,
        shutdown: watch::Sender<bool>,
        relay: tokio::task::JoinHandle<()>,
    }

    impl Harness {
        fn start(
            events: &[i64],
            script: Vec<Result<DeliveryReceipt, NotifyError>>,
            config: RelayConfig,
        ) -> Self {
            let clock = TokioClock::starting_at(start());
            Self::over(
                FakeOutbox::with_events(clock, events),
                clock,
                script,
                config,
            )
        }

        /// A relay over `outbox`, whose clock is `clock`, delivering through `script`.
        fn over(
            outbox: FakeOutbox,
            clock: TokioClock,
            script: Vec<Result<DeliveryReceipt, NotifyError>>,
            config: RelayConfig,
        ) -> Self {
            let outbox = Arc::new(outbox);
            let (tx, calls) = mpsc::unbounded_channel();
            let notifier = Arc::new(ScriptedNotifier {
                script: Mutex::new(script.into()),
                clock,
                calls: tx,
            });
            let relay = Relay::new(
                outbox.clone(),
                notifier,
                Arc::new(clock),
                config,
                Arc::new(Notify::new()),
            );
            let (shutdown, rx) = watch::channel(false);
            let relay = tokio::spawn(relay.run(rx));
            Self {
                outbox,
                calls,
                shutdown,
                relay,
            }
        }

        /// The next delivery attempt: (order id, seconds since start).
        async fn next_call(&mut self) -> (i64, f64) {
            let (order, at) = self.calls.recv().await.unwrap();
            (order, (at - start()).as_seconds_f64())
        }

        async fn stop(&mut self) {
            self.shutdown.send(true).unwrap();
            (&mut self.relay).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_successful_delivery_is_marked_sent_with_the_message_id() {
        let mut outbox = MockOutbox::new();
        outbox.expect_claim_due().times(1).returning(|_, _| {
            Ok(vec![ClaimedEvent {
                id: EventId(5),
                token: ClaimToken::new("t"),
                attempts: 0,
                kind: EventKind::OrderCreated,
                order_id: OrderId(500),
                recipient: Recipient::ManagerChat,
                notification: Ok(new_order(500)),
            }])
        });
        outbox
            .expect_mark_sent()
            .withf(|id, token, message_id| {
                *id == EventId(5) && token.as_str() == "t" && *message_id == Some(777)
            })
            .times(1)
            .returning(|_, _, _| Ok(Recorded::Done));
        let mut notifier = MockNotifier::new();
        notifier
            .expect_deliver()
            .withf(
                |n| matches!(n, Notification::NewOrder(placed) if placed.order.id == OrderId(500)),
            )
            .times(1)
            .returning(|_| {
                Ok(DeliveryReceipt {
                    message_id: Some(777),
                })
            });
        let relay = Relay::new(
            Arc::new(outbox),
            Arc::new(notifier),
            Arc::new(TokioClock::starting_at(start())),
            RelayConfig::default(),
            Arc::new(Notify::new()),
        );
        let pass = relay.pass(None).await.unwrap();
        assert_eq!((pass.claimed, pass.sent), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_is_retried_with_backoff() {
        let script = vec![Err(transient("HTTP 502")), Err(transient("HTTP 503"))];
        let mut h = Harness::start(&[1], script, RelayConfig::default());

        assert_eq!(h.next_call().await, (100, 0.0));
        let (_, second) = h.next_call().await;
        assert!(
            (0.5..=1.0).contains(&second),
            "first retry after 0.5–1 s, was {second}"
        );
        let (_, third) = h.next_call().await;
        let gap = third - second;
        assert!(
            (1.0..=2.0).contains(&gap),
            "second retry 1–2 s later, was {gap}"
        );
        h.stop().await;
        let event = h.outbox.state(1);
        assert_eq!((event.state, event.attempts), (State::Sent(Some(1)), 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_holds_the_whole_chat_for_retry_after() {
        let script = vec![Err(NotifyError::RateLimited {
            reason: "Too Many Requests: retry after 5".into(),
            retry_after: time::Duration::seconds(5),
        })];
        let mut h = Harness::start(&[1, 2, 3], script, RelayConfig::default());

        assert_eq!(h.next_call().await, (100, 0.0));
        // Neither the limited message nor the others go out before the wait is over.
        let (order, at) = h.next_call().await;
        assert_eq!(order, 100, "the limited message keeps its place in line");
        assert!(
            at >= 5.0,
            "nothing may be sent before retry_after, sent at {at}"
        );
        assert!(h.next_call().await.1 >= 5.0);
        assert!(h.next_call().await.1 >= 5.0);
        h.stop().await;
        for id in [1, 2, 3] {
            assert_eq!(h.outbox.state(id).state, State::Sent(Some(1)));
        }
        assert_eq!(h.outbox.state(1).attempts, 0, "a 429 costs no attempt");
        assert_eq!(
            h.outbox
                .held_until
                .lock()
                .unwrap()
                .get(&Recipient::ManagerChat)
                .copied(),
            Some(start() + time::Duration::seconds(5)),
            "the hold is stored, so that other relays wait too"
        );
        for id in [2, 3] {
            assert_eq!(
                h.outbox.state(id).next_attempt_at,
                start(),
                "the waiting events keep their schedule: a hold is one write, not one per event"
            );
        }
        assert_eq!(
            *h.outbox.releases.lock().unwrap(),
            [EventId(2), EventId(3)],
            "the rest of the batch was released, not left leased"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_makes_the_event_dead_without_retrying() {
        let script = vec![Err(NotifyError::Permanent {
            reason: "Forbidden: bot was blocked by the user".into(),
        })];
        let mut h = Harness::start(&[1, 2], script, RelayConfig::default());
        assert_eq!(h.next_call().await.0, 100);
        assert_eq!(h.next_call().await.0, 200, "the next event goes on");
        h.stop().await;
        let dead = h.outbox.state(1);
        assert_eq!(
            dead.state,
            State::Dead("Forbidden: bot was blocked by the user".into())
        );
        assert!(h.calls.try_recv().is_err(), "a dead event is never retried");
        assert_eq!(dead.attempts, 1);
        assert!(
            h.outbox.held_until.lock().unwrap().is_empty(),
            "a refusal holds no chat, its own included"
        );
    }

    /// A Stars refund that dies leaves the manager a notice, written with its death; any
    /// other message that dies leaves nothing.
    #[tokio::test(start_paused = true)]
    async fn a_dead_stars_refund_tells_the_manager() {
        let refused = || {
            Err(NotifyError::Permanent {
                reason: "Bad Request: BALANCE_TOO_LOW".into(),
            })
        };
        let clock = TokioClock::starting_at(start());
        let mut outbox = FakeOutbox::with_events(clock, &[1, 2]);
        outbox.refunds = vec![EventId(2)];
        let mut h = Harness::over(
            outbox,
            clock,
            vec![refused(), refused()],
            RelayConfig::default(),
        );
        assert_eq!(h.next_call().await.0, 100);
        assert_eq!(h.next_call().await.0, 200);
        h.stop().await;
        assert!(matches!(h.outbox.state(2).state, State::Dead(_)));
        assert_eq!(
            *h.outbox.appended.lock().unwrap(),
            [OutboxEvent::ManagerNotice {
                order_id: OrderId(200),
                notice: Notice::RefundFailed,
            }]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_in_one_chat_holds_only_that_chat() {
        let customer = Recipient::Customer(TelegramId::parse(7).unwrap());
        let events = [
            (1, customer),
            (2, customer),
            (3, Recipient::ManagerChat),
            (4, Recipient::ManagerChat),
        ];
        let clock = TokioClock::starting_at(start());
        let mut h = Harness::over(
            FakeOutbox::with_chats(clock, &events),
            clock,
            vec![Err(NotifyError::RateLimited {
                reason: "Too Many Requests: retry after 60".into(),
                retry_after: time::Duration::seconds(60),
            })],
            RelayConfig::default(),
        );

        assert_eq!(
            h.next_call().await,
            (100, 0.0),
            "the customer's chat gets a 429"
        );
        assert_eq!(
            h.next_call().await,
            (300, 0.0),
            "the manager chat's events go out at once"
        );
        assert_eq!(h.next_call().await, (400, 0.0));
        let (order, at) = h.next_call().await;
        assert_eq!(order, 100, "the limited chat keeps its order");
        assert!(at >= 60.0, "the held chat waited, sent at {at}");
        let (order, at) = h.next_call().await;
        assert_eq!(order, 200);
        assert!(
            at >= 60.0,
            "the held chat's other event waited too, sent at {at}"
        );
        h.stop().await;
        let held = h.outbox.held_until.lock().unwrap().clone();
        assert_eq!(
            held.keys().collect::<Vec<_>>(),
            [&customer],
            "only the limited chat was held"
        );
        for id in [1, 2, 3, 4] {
            assert_eq!(h.outbox.state(id).state, State::Sent(Some(1)));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_that_is_not_ready_is_retried_as_a_failed_attempt() {
        let mut outbox = MockOutbox::new();
        outbox.expect_claim_due().times(1).returning(|_, _| {
            Ok(vec![ClaimedEvent {
                id: EventId(9),
                token: ClaimToken::new("t"),
                attempts: 0,
                kind: EventKind::ManagerMessageUpdate,
                order_id: OrderId(900),
                recipient: Recipient::ManagerChat,
                notification: Err(NotReady {
                    reason: "the new-order message is not sent yet".into(),
                }),
            }])
        });
        outbox
            .expect_retry_later()
            .withf(|id, _, attempts, _, error| {
                *id == EventId(9) && *attempts == 1 && error.contains("not sent yet")
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(Recorded::Done));
        let mut notifier = MockNotifier::new();
        notifier.expect_deliver().never();
        let relay = Relay::new(
            Arc::new(outbox),
            Arc::new(notifier),
            Arc::new(TokioClock::starting_at(start())),
            RelayConfig::default(),
            Arc::new(Notify::new()),
        );
        let pass = relay.pass(None).await.unwrap();
        assert_eq!((pass.claimed, pass.retried, pass.held_until), (1, 1, None));
    }

    #[test]
    fn chat_keys_name_the_manager_chat_and_customers_and_read_back() {
        let customer = Recipient::Customer(TelegramId::parse(987_654_321).unwrap());
        assert_eq!(Recipient::ManagerChat.chat_key(), "manager_chat");
        assert_eq!(customer.chat_key(), "user:987654321");
        for recipient in [Recipient::ManagerChat, customer] {
            assert_eq!(
                Recipient::from_chat_key(&recipient.chat_key()),
                Some(recipient)
            );
        }
        for bad in ["", "user:", "user:-5", "user:x", "manager"] {
            assert_eq!(Recipient::from_chat_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn events_name_their_kind_order_and_recipient() {
        let customer = TelegramId::parse(42).unwrap();
        let changed = OutboxEvent::OrderStatusChanged {
            order_id: OrderId(5),
            from: OrderStatus::Pending,
            to: OrderStatus::Confirmed,
            by: ChangedBy::Manager(TelegramId::parse(1).unwrap()),
        };
        assert_eq!(changed.kind().as_str(), "order_status_changed");
        assert_eq!(changed.order_id(), OrderId(5));
        assert_eq!(changed.recipient(customer), Recipient::Customer(customer));
        for event in [
            OutboxEvent::OrderCreated {
                order_id: OrderId(5),
            },
            OutboxEvent::ManagerMessageUpdate {
                order_id: OrderId(5),
            },
        ] {
            assert_eq!(event.recipient(customer), Recipient::ManagerChat);
        }
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn running_out_of_attempts_makes_the_event_dead() {
        let config = RelayConfig {
            max_attempts: 3,
            ..RelayConfig::default()
        };
        let script = (0..10).map(|_| Err(transient("HTTP 500"))).collect();
        let mut h = Harness::start(&[1], script, config);
        for _ in 0..3 {
            assert_eq!(h.next_call().await.0, 100);
        }
        // Give the relay every chance to try again: the longest backoff, twice over.
        tokio::time::sleep(Duration::from_secs(1200)).await;
        h.stop().await;
        assert!(h.calls.try_recv().is_err(), "no fourth attempt");
        let event = h.outbox.state(1);
        assert_eq!(event.attempts, 3);
        assert_eq!(
            event.state,
            State::Dead("gave up after 3 attempts; last error: HTTP 500".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_that_hangs_times_out_as_a_transient_failure() {
        struct Hang;
        #[async_trait]
        impl Notifier for Hang {
            async fn deliver(&self, _: &Notification) -> Result<DeliveryReceipt, NotifyError> {
                std::future::pending().await
            }
        }
        let clock = TokioClock::starting_at(start());
        let outbox = Arc::new(FakeOutbox::with_events(clock, &[1]));
        let config = RelayConfig::default();
        let relay = Relay::new(
            outbox.clone(),
            Arc::new(Hang),
            Arc::new(clock),
            config.clone(),
            Arc::new(Notify::new()),
        );
        let pass = relay.pass(None).await.unwrap();
        assert_eq!(pass.retried, 1);
        let event = outbox.state(1);
        assert_eq!((event.attempts, event.locked_until), (1, None));
        assert!(event.next_attempt_at > start() + config.send_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_batch_never_sends_past_its_claim() {
        struct Slow {
            clock: TokioClock,
            calls: Mutex<Vec<OffsetDateTime>>,
        }
        #[async_trait]
        impl Notifier for Slow {
            async fn deliver(&self, _: &Notification) -> Result<DeliveryReceipt, NotifyError> {
                self.calls.lock().unwrap().push(self.clock.now());
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(DeliveryReceipt {
                    message_id: Some(1),
                })
            }
        }
        let clock = TokioClock::starting_at(start());
        let outbox = Arc::new(FakeOutbox::with_events(clock, &[1, 2, 3, 4, 5]));
        let notifier = Arc::new(Slow {
            clock,
            calls: Mutex::new(Vec::new()),
        });
        let config = RelayConfig::default(); // lease 30 s, sends of up to 15 s
        let relay = Relay::new(
            outbox.clone(),
            notifier.clone(),
            Arc::new(clock),
            config.clone(),
            Arc::new(Notify::new()),
        );
        let pass = relay.pass(None).await.unwrap();

        let lease_until = start() + config.lease;
        let calls = notifier.calls.lock().unwrap().clone();
        assert!(!calls.is_empty());
        for at in &calls {
            assert!(
                *at + config.send_timeout <= lease_until,
                "a send started at {at} could outlast the claim ending {lease_until}"
            );
        }
        assert_eq!(pass.sent, calls.len());
        let released = outbox.releases.lock().unwrap().clone();
        assert_eq!(
            released.len(),
            5 - calls.len(),
            "the rest of the batch went back in line"
        );
        for id in released {
            assert_eq!(outbox.state(id.0).locked_until, None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_absurd_retry_after_is_clamped_to_an_hour() {
        let script = vec![Err(NotifyError::RateLimited {
            reason: "Too Many Requests".into(),
            retry_after: time::Duration::seconds(i64::MAX / 4),
        })];
        let mut h = Harness::start(&[1], script, RelayConfig::default());
        assert_eq!(h.next_call().await.1, 0.0);
        let (_, at) = h.next_call().await;
        assert!((3600.0..3601.0).contains(&at), "retried after {at} s");
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_5xx_with_retry_after_counts_as_an_attempt_so_the_event_goes_dead() {
        let config = RelayConfig {
            max_attempts: 3,
            ..RelayConfig::default()
        };
        let script = (0..10)
            .map(|_| {
                Err(NotifyError::Transient {
                    reason: "HTTP 503 Service Unavailable".into(),
                    retry_after: Some(time::Duration::seconds(30)),
                })
            })
            .collect();
        let mut h = Harness::start(&[1], script, config);
        let mut previous = None;
        for _ in 0..3 {
            let (order, at) = h.next_call().await;
            assert_eq!(order, 100);
            if let Some(previous) = previous {
                assert!(
                    at - previous >= 30.0,
                    "Retry-After is honoured: {previous} then {at}"
                );
            }
            previous = Some(at);
        }
        // Give the relay every chance to try again: the longest backoff, twice over.
        tokio::time::sleep(Duration::from_secs(1200)).await;
        h.stop().await;
        assert!(h.calls.try_recv().is_err(), "no fourth attempt");
        let event = h.outbox.state(1);
        assert_eq!(event.attempts, 3);
        assert_eq!(
            event.state,
            State::Dead(
                "gave up after 3 attempts; last error: HTTP 503 Service Unavailable".into()
            )
        );
        assert!(
            h.outbox
                .held_until
                .lock()
                .unwrap()
                .contains_key(&Recipient::ManagerChat),
            "the server's wait holds the chat, as a 429's does"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_outcome_after_the_claim_was_lost_is_reported_and_changes_nothing() {
        /// Freezes "mid-send" while the database's clock runs past the lease, and another
        /// relay claims the event and sends it meanwhile.
        struct Stalled {
            outbox: Arc<FakeOutbox>,
            lease: Duration,
        }
        #[async_trait]
        impl Notifier for Stalled {
            async fn deliver(&self, _: &Notification) -> Result<DeliveryReceipt, NotifyError> {
                *self.outbox.clock.jumped.lock().unwrap() += self.lease + Duration::from_secs(1);
                let other = self.outbox.claim_due(self.lease, 10).await.unwrap();
                assert_eq!(other.len(), 1, "the expired claim is taken over");
                let recorded = self
                    .outbox
                    .mark_sent(other[0].id, &other[0].token, Some(2))
                    .await
                    .unwrap();
                assert_eq!(recorded, Recorded::Done);
                Ok(DeliveryReceipt {
                    message_id: Some(1),
                })
            }
        }
        let clock = TokioClock::starting_at(start());
        let outbox = Arc::new(FakeOutbox::with_events(clock, &[1]));
        let config = RelayConfig::default();
        let relay = Relay::new(
            outbox.clone(),
            Arc::new(Stalled {
                outbox: outbox.clone(),
                lease: config.lease,
            }),
            Arc::new(clock),
            config,
            Arc::new(Notify::new()),
        );

        let pass = relay.pass(None).await.unwrap();

        assert_eq!((pass.sent, pass.lease_lost), (0, 1));
        assert_eq!(
            outbox.state(1).state,
            State::Sent(Some(2)),
            "the other relay's record stands"
        );
    }

    #[tokio::test]
    async fn pruning_deletes_batch_after_batch_until_a_short_one() {
        let mut outbox = MockOutbox::new();
        let mut batches = vec![2, 2, 1].into_iter();
        outbox
            .expect_delete_sent()
            .withf(|age, limit| *age == Duration::from_secs(30 * 24 * 3600) && *limit == 2)
            .times(3)
            .returning(move |_, _| Ok(batches.next().unwrap()));
        let retention = RelaySettings::default().retention();
        assert_eq!(prune_sent(&outbox, retention, 2).await.unwrap(), 5);
    }

    #[test]
    fn retention_is_validated_in_days() {
        let settings = |days| RelaySettings {
            outbox_retention_days: days,
            ..RelaySettings::default()
        };
        assert_eq!(RelaySettings::default().outbox_retention_days, 30);
        assert!(settings(1).validate().is_ok());
        assert!(settings(3650).validate().is_ok());
        for days in [0, 3651] {
            let error = settings(days).validate().unwrap_err();
            assert!(
                error.to_string().contains("OUTBOX_RETENTION_DAYS"),
                "{error}"
            );
        }
    }

    #[test]
    fn backoff_grows_from_about_a_second_to_ten_minutes_with_jitter() {
        let config = RelayConfig::default();
        for attempt in 1..=30 {
            let full = Duration::from_secs(1u64 << (attempt - 1).min(20)).min(config.backoff_max);
            let delay = config.backoff(EventId(42), attempt);
            assert!(
                delay >= full / 2 && delay <= full,
                "attempt {attempt}: {delay:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
        assert!(config.backoff(EventId(1), 30) <= Duration::from_secs(600));
        let spread: std::collections::HashSet<_> =
            (0..50).map(|id| config.backoff(EventId(id), 5)).collect();
        assert!(
            spread.len() > 40,
            "events that failed together retry at different times"
        );
    }
}
