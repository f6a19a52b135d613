//! The domain's relay over the real outbox: several server instances, each with its own
//! relay, pool and wall clock, share one PostgreSQL database without sending an event
//! twice.
//!
//! PostgreSQL only: a SQLite database belongs to one server instance.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::clock::{Clock, SystemClock};
use domain::outbox::{Relay, RelayConfig};
use domain::ports::{DeliveryReceipt, Notification, Notifier, NotifyError, Outbox};
use infra_postgres::test_support::TestDatabase;
use infra_postgres::{Database, PoolOptions};
use time::OffsetDateTime;
use tokio::sync::{Barrier, Notify, watch};

use crate::support::{T0, new_user, one_product, place_order};

const ORDERS: usize = 200;

/// Telegram's message id for an order, as the fake notifiers answer it.
fn message_id(order_id: i64) -> i64 {
    order_id + 1_000_000
}

/// Records the orders it delivers.
///
/// Each notifier's first delivery waits at a barrier for the other's: both relays then
/// hold a claimed batch at the same time, so both deliver some events however the
/// scheduler runs them, without sleeping. (The first relay to claim cannot take
/// everything, so the other always finds events of its own to claim.)
struct RecordingNotifier {
    delivered: Mutex<Vec<i64>>,
    met: AtomicBool,
    meeting: Arc<Barrier>,
}

impl RecordingNotifier {
    fn new(meeting: Arc<Barrier>) -> Self {
        Self {
            delivered: Mutex::new(Vec::new()),
            met: AtomicBool::new(false),
            meeting,
        }
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn deliver(&self, notification: &Notification) -> Result<DeliveryReceipt, NotifyError> {
        if !self.met.swap(true, Ordering::SeqCst) {
            self.meeting.wait().await;
        }
        let order_id = notification.order_id().0;
        self.delivered.lock().unwrap().push(order_id);
        Ok(DeliveryReceipt {
            message_id: Some(message_id(order_id)),
        })
    }
}

/// Passes until nothing is pending; each relay stops on its own once the outbox is done.
async fn relay_until_done(relay: Relay, outbox: Arc<dyn Outbox>) {
    while outbox.counts().await.unwrap().pending > 0 {
        let pass = relay.pass(None).await.unwrap();
        if pass.claimed == 0 {
            // The rest is leased by the other relay: let it run.
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_database_deliver_every_event_exactly_once() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let product = one_product(&db).await;
    let user = new_user(&db, 1001).await;
    let mut order_ids = Vec::with_capacity(ORDERS);
    for _ in 0..ORDERS {
        order_ids.push(place_order(&db, &user, product, 1, T0).await.id.0);
    }

    let meeting = Arc::new(Barrier::new(2));
    let notifiers = [
        Arc::new(RecordingNotifier::new(meeting.clone())),
        Arc::new(RecordingNotifier::new(meeting)),
    ];
    let config = RelayConfig {
        // Small batches, so that the two relays' claims interleave.
        batch_size: 5,
        ..RelayConfig::default()
    };
    let mut pools = Vec::new();
    let mut relays = Vec::new();
    for notifier in &notifiers {
        // Each relay has a pool of its own, as two server instances would.
        let pool = Database::connect(
            db.url(),
            PoolOptions {
                max_connections: 2,
                acquire_timeout: Duration::from_secs(30),
                ..PoolOptions::default()
            },
        )
        .await
        .unwrap();
        let outbox: Arc<dyn Outbox> = Arc::new(pool.store());
        let relay = Relay::new(
            outbox.clone(),
            notifier.clone(),
            Arc::new(SystemClock),
            config.clone(),
            Arc::new(Notify::new()),
        );
        relays.push(tokio::spawn(relay_until_done(relay, outbox)));
        pools.push(pool);
    }
    // A safety net, not a wait: a bug fails the test instead of hanging it.
    tokio::time::timeout(Duration::from_secs(120), async {
        for relay in relays {
            relay.await.unwrap();
        }
    })
    .await
    .expect("the relays did not finish");

    let delivered: Vec<Vec<i64>> = notifiers
        .iter()
        .map(|n| n.delivered.lock().unwrap().clone())
        .collect();
    assert!(
        delivered.iter().all(|d| !d.is_empty()),
        "both relays must deliver: {} and {} events",
        delivered[0].len(),
        delivered[1].len()
    );
    let all: Vec<i64> = delivered.concat();
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "some events were delivered twice");
    assert_eq!(unique, order_ids.iter().copied().collect::<HashSet<_>>());

    assert_eq!(
        db.query_i64(
            "SELECT COUNT(*) FROM outbox_events WHERE status = 'SENT' \
             AND telegram_message_id = order_id + 1000000 \
             AND sent_at IS NOT NULL AND locked_until IS NULL AND attempts = 0"
        )
        .await
        .unwrap(),
        ORDERS as i64
    );
    let counts = pools[0].store().counts().await.unwrap();
    assert_eq!((counts.pending, counts.dead), (0, 0));

    for pool in pools {
        pool.close().await.unwrap();
    }
    db.cleanup().await;
}

/// Another server's wall clock: the system's, off by a fixed amount.
struct SkewedClock(time::Duration);

impl Clock for SkewedClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.0
    }
}

/// Records the orders it delivers. A slow one takes its time over each delivery: it
/// reports that it has started, then waits until the other relay has finished two more
/// passes — so that the other relay looks for due events at least once, from start to end,
/// while this one holds its claim — instead of sleeping.
struct SlowNotifier {
    delivered: Mutex<Vec<i64>>,
    sending: Arc<Notify>,
    other_passes: Option<watch::Receiver<u64>>,
}

#[async_trait]
impl Notifier for SlowNotifier {
    async fn deliver(&self, notification: &Notification) -> Result<DeliveryReceipt, NotifyError> {
        self.sending.notify_one();
        if let Some(passes) = &self.other_passes {
            let mut passes = passes.clone();
            let seen = *passes.borrow_and_update();
            // An error means the other relay is done: nothing is left to wait for.
            let _ = passes.wait_for(|&n| n >= seen + 2).await;
        }
        let order_id = notification.order_id().0;
        self.delivered.lock().unwrap().push(order_id);
        Ok(DeliveryReceipt {
            message_id: Some(message_id(order_id)),
        })
    }
}

/// As [`relay_until_done`], counting the passes.
async fn relay_counting_passes(relay: Relay, outbox: Arc<dyn Outbox>, passes: watch::Sender<u64>) {
    while outbox.counts().await.unwrap().pending > 0 {
        let pass = relay.pass(None).await.unwrap();
        passes.send_modify(|n| *n += 1);
        if pass.claimed == 0 {
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_whose_clocks_are_30_s_apart_send_every_event_exactly_once() {
    const EVENTS: usize = 20;
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let product = one_product(&db).await;
    let user = new_user(&db, 1001).await;
    let mut order_ids = HashSet::new();
    for _ in 0..EVENTS {
        order_ids.insert(place_order(&db, &user, product, 1, T0).await.id.0);
    }
    // A lease far shorter than the skew: judged by each relay's own clock, the relay that
    // runs ahead would think every lease of the other long expired.
    let config = RelayConfig {
        batch_size: 5,
        send_timeout: Duration::from_secs(5),
        lease: Duration::from_secs(10),
        ..RelayConfig::default()
    };
    let (passes, other_passes) = watch::channel(0);
    let slow_sending = Arc::new(Notify::new());
    let slow = Arc::new(SlowNotifier {
        delivered: Mutex::new(Vec::new()),
        sending: slow_sending.clone(),
        other_passes: Some(other_passes),
    });
    let fast = Arc::new(SlowNotifier {
        delivered: Mutex::new(Vec::new()),
        sending: Arc::new(Notify::new()),
        other_passes: None,
    });
    let mut pools = Vec::new();
    for _ in 0..2 {
        pools.push(
            Database::connect(
                db.url(),
                PoolOptions {
                    max_connections: 2,
                    acquire_timeout: Duration::from_secs(30),
                    ..PoolOptions::default()
                },
            )
            .await
            .unwrap(),
        );
    }
    let slow_outbox: Arc<dyn Outbox> = Arc::new(pools[0].store());
    let fast_outbox: Arc<dyn Outbox> = Arc::new(pools[1].store());
    let slow_relay = Relay::new(
        slow_outbox.clone(),
        slow.clone(),
        Arc::new(SystemClock),
        config.clone(),
        Arc::new(Notify::new()),
    );
    let fast_relay = Relay::new(
        fast_outbox.clone(),
        fast.clone(),
        Arc::new(SkewedClock(time::Duration::seconds(30))),
        config,
        Arc::new(Notify::new()),
    );

    // The slow relay claims first and is mid-send when the one 30 s ahead starts.
    let slow_task = tokio::spawn(relay_until_done(slow_relay, slow_outbox));
    slow_sending.notified().await;
    let fast_task = tokio::spawn(relay_counting_passes(fast_relay, fast_outbox, passes));
    // A safety net, not a wait: a bug fails the test instead of hanging it.
    tokio::time::timeout(Duration::from_secs(120), async {
        slow_task.await.unwrap();
        fast_task.await.unwrap();
    })
    .await
    .expect("the relays did not finish");

    let slow_sent = slow.delivered.lock().unwrap().clone();
    let fast_sent = fast.delivered.lock().unwrap().clone();
    assert!(!slow_sent.is_empty(), "the slow relay delivered nothing");
    let all: Vec<i64> = [slow_sent, fast_sent].concat();
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        unique.len(),
        "some events were sent twice: {all:?}"
    );
    assert_eq!(unique, order_ids, "every event is sent");
    let counts = pools[0].store().counts().await.unwrap();
    assert_eq!((counts.pending, counts.dead), (0, 0));

    for pool in pools {
        pool.close().await.unwrap();
    }
    db.cleanup().await;
}
