//! The domain's relay over the real outbox: several server instances, each with its own
//! relay and pool, share one PostgreSQL database without sending an event twice.
//!
//! PostgreSQL only: a SQLite database belongs to one server instance.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::clock::SystemClock;
use domain::outbox::{Relay, RelayConfig};
use domain::ports::{DeliveryReceipt, Notifier, NotifyError, OrderPlaced, Outbox};
use infra_postgres::test_support::TestDatabase;
use infra_postgres::{Database, PoolOptions};
use tokio::sync::{Barrier, Notify};

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
    async fn order_placed(
        &self,
        notification: &OrderPlaced,
    ) -> Result<DeliveryReceipt, NotifyError> {
        if !self.met.swap(true, Ordering::SeqCst) {
            self.meeting.wait().await;
        }
        let order_id = notification.order.id.0;
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
