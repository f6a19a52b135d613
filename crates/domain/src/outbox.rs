//! Durable manager notifications: the transactional outbox and its relay.
//!
//! Placing an order writes an `order_created` event in the order's own transaction, so an
//! order never exists without its notification, nor a notification without its order. The
//! [`Relay`] then delivers events, claimed through the [`Outbox`] port, through the
//! [`Notifier`] port until each one is sent or,
//! when retrying cannot help, dead:
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
//! - a 429 is honoured: the whole chat is held back for `retry_after`, not just the one
//!   message, and the wait does not count as a failed attempt. A 5xx with `Retry-After`
//!   holds the chat the same way but does count, so a server that keeps failing makes
//!   the event dead in the end instead of retrying it for ever;
//! - a permanent failure, or running out of attempts, makes the event dead with its reason,
//!   logged once as an error. `server outbox retry-dead` puts dead events back in line;
//! - sent events are deleted once they are older than the retention ([`prune_sent`]),
//!   in batches; dead events are kept for operators to inspect.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Notify, watch};

use crate::clock::Clock;
use crate::error::RepositoryError;
use crate::ports::{Notifier, NotifyError, OrderPlaced, Outbox};
use crate::settings::{InvalidSetting, check_range};

/// An outbox event's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub i64);

/// The one kind of event today; stored as its `as_str` spelling.
pub const ORDER_CREATED: &str = "order_created";

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

/// An event a relay has claimed, with what it needs to deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEvent {
    pub id: EventId,
    /// This claim's token, for recording the outcome.
    pub token: ClaimToken,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    pub notification: OrderPlaced,
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

/// The longest wait a 429 may impose on the chat.
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
    /// Telegram asked the chat to wait until then (by this relay's clock).
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
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!("notification relay started");
        let mut held_until: Option<OffsetDateTime> = None;
        let mut storage_failing = false;
        while !*shutdown.borrow() {
            let now = self.clock.now();
            let wait = match held_until {
                Some(until) if until > now => to_std(until - now),
                _ => match self.pass(Some(&shutdown)).await {
                    Ok(pass) => {
                        if storage_failing {
                            tracing::info!("notification relay: storage is reachable again");
                            storage_failing = false;
                        }
                        held_until = pass.held_until;
                        if pass.claimed > 0 && pass.held_until.is_none() {
                            // There may be more due events: look again at once.
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
                },
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified(), if held_until.is_none_or(|until| until <= self.clock.now()) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("notification relay stopped");
    }

    /// Claims one batch of due events and attempts each. Stops early — releasing the rest
    /// of the batch — when Telegram asks the chat to wait or `shutdown` turns true.
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
        for event in events.by_ref() {
            // Never start a send that could outlast the claim: another relay may claim the
            // event once the lease runs out, and would send it a second time.
            if self.clock.now() + self.config.send_timeout + LEASE_MARGIN > lease_ends {
                unattempted.push((event.id, event.token));
                break;
            }
            self.attempt(event, &mut pass).await?;
            let stopping = shutdown.is_some_and(|s| *s.borrow());
            if pass.held_until.is_some() || stopping {
                break;
            }
        }
        unattempted.extend(events.map(|e| (e.id, e.token)));
        if !unattempted.is_empty() {
            self.outbox.release(&unattempted).await?;
        }
        Ok(pass)
    }

    async fn attempt(
        &self,
        event: ClaimedEvent,
        pass: &mut RelayPass,
    ) -> Result<(), RepositoryError> {
        let order_id = event.notification.order.id.0;
        let outcome = match tokio::time::timeout(
            self.config.send_timeout,
            self.notifier.order_placed(&event.notification),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(NotifyError::Transient {
                reason: format!("no answer within {:?}", self.config.send_timeout),
                retry_after: None,
            }),
        };
        let (id, token) = (event.id, &event.token);
        match outcome {
            Ok(receipt) => {
                let recorded = self.outbox.mark_sent(id, token, receipt.message_id).await?;
                if self.lease_lost(recorded, id, order_id, pass) {
                    return Ok(());
                }
                tracing::info!(event_id = id.0, order_id, "manager notified of new order");
                pass.sent += 1;
            }
            Err(NotifyError::RateLimited {
                reason,
                retry_after,
            }) => {
                // Telegram limits the chat, not the message: hold every pending event back.
                // The wait is Telegram's instruction, not our failure, so it costs no attempt.
                let wait = self.hold(retry_after, pass).await?;
                let recorded = self
                    .outbox
                    .retry_later(id, token, event.attempts, wait, &reason)
                    .await?;
                if self.lease_lost(recorded, id, order_id, pass) {
                    return Ok(());
                }
                tracing::warn!(
                    event_id = id.0,
                    order_id,
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
                // is asked nothing before then, by this relay or any other; the attempt
                // still counts, so an event it keeps failing goes dead in the end.
                let wait = match retry_after {
                    Some(retry_after) => Some(self.hold(retry_after, pass).await?),
                    None => None,
                };
                if attempts >= self.config.max_attempts {
                    let reason = format!("gave up after {attempts} attempts; last error: {reason}");
                    let recorded = self.outbox.mark_dead(id, token, attempts, &reason).await?;
                    if self.lease_lost(recorded, id, order_id, pass) {
                        return Ok(());
                    }
                    tracing::error!(event_id = id.0, order_id, %reason, "manager notification is dead");
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
                        return Ok(());
                    }
                    tracing::warn!(event_id = id.0, order_id, attempts, retry_in_ms = delay.as_millis() as u64, %reason, "manager notification failed; will retry");
                    pass.retried += 1;
                }
            }
            Err(NotifyError::Permanent { reason }) => {
                let attempts = event.attempts + 1;
                let recorded = self.outbox.mark_dead(id, token, attempts, &reason).await?;
                if self.lease_lost(recorded, id, order_id, pass) {
                    return Ok(());
                }
                tracing::error!(event_id = id.0, order_id, %reason, "manager notification is dead: retrying cannot help");
                pass.dead += 1;
            }
        }
        Ok(())
    }

    /// Holds the whole chat for `retry_after`, clamped so that an absurd value (from a
    /// proxy, say) cannot stall delivery for ever or overflow the clock, and returns the
    /// wait. The pass stops there.
    async fn hold(
        &self,
        retry_after: time::Duration,
        pass: &mut RelayPass,
    ) -> Result<Duration, RepositoryError> {
        let wait = to_std(retry_after.clamp(time::Duration::ZERO, MAX_RETRY_AFTER));
        self.outbox.hold_pending(wait).await?;
        pass.held_until = Some(self.clock.now() + wait);
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
            "the claim on this manager notification was lost before its outcome was recorded \
             (the relay stalled past its lease); another relay owns it now, nothing was changed"
        );
        pass.lease_lost += 1;
        true
    }
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
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use tokio::sync::mpsc;

    use super::*;
    use crate::clock::TokioClock;
    use crate::entities::{Order, OrderStatus};
    use crate::money::Money;
    use crate::ports::{DeliveryReceipt, MockNotifier, MockOutbox};
    use crate::values::{OrderId, TelegramId, UserId};

    fn start() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_766_400_000).unwrap()
    }

    fn notification(order_id: i64) -> OrderPlaced {
        OrderPlaced {
            order: Order {
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
        held_until: Mutex<Option<OffsetDateTime>>,
        claims: Mutex<u64>,
    }

    impl FakeOutbox {
        fn with_events(clock: TokioClock, ids: &[i64]) -> Self {
            let events = ids
                .iter()
                .map(|&id| Stored {
                    id: EventId(id),
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
                held_until: Mutex::new(None),
                claims: Mutex::new(0),
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
            if self
                .held_until
                .lock()
                .unwrap()
                .is_some_and(|until| until > now)
            {
                return Ok(Vec::new());
            }
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
                })
                .take(limit as usize)
                .map(|e| {
                    e.locked_until = Some(now + lease);
                    e.token = Some(claim.clone());
                    ClaimedEvent {
                        id: e.id,
                        token: claim.clone(),
                        attempts: e.attempts,
                        notification: notification(e.id.0 * 100),
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
        ) -> Result<Recorded, RepositoryError> {
            Ok(self.update(id, token, |e| {
                e.attempts = attempts;
                e.state = State::Dead(reason.to_owned());
            }))
        }

        async fn release(&self, claims: &[(EventId, ClaimToken)]) -> Result<(), RepositoryError> {
            for (id, token) in claims {
                let _ = self.update(*id, token, |_| {});
                self.releases.lock().unwrap().push(*id);
            }
            Ok(())
        }

        async fn hold_pending(&self, wait: Duration) -> Result<(), RepositoryError> {
            let until = self.clock.now() + wait;
            let mut held = self.held_until.lock().unwrap();
            *held = Some(held.map_or(until, |held| held.max(until)));
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
        async fn order_placed(&self, n: &OrderPlaced) -> Result<DeliveryReceipt, NotifyError> {
            let _ = self.calls.send((n.order.id.0, self.clock.now()));
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
            let outbox = Arc::new(FakeOutbox::with_events(clock, events));
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
                notification: notification(500),
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
            .expect_order_placed()
            .withf(|n| n.order.id == OrderId(500))
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
            *h.outbox.held_until.lock().unwrap(),
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
            async fn order_placed(&self, _: &OrderPlaced) -> Result<DeliveryReceipt, NotifyError> {
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
            async fn order_placed(&self, _: &OrderPlaced) -> Result<DeliveryReceipt, NotifyError> {
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
            h.outbox.held_until.lock().unwrap().is_some(),
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
            async fn order_placed(&self, _: &OrderPlaced) -> Result<DeliveryReceipt, NotifyError> {
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
