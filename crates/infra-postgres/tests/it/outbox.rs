//! `Outbox` contract, and the outbox half of `OrderRepository::place`.

use domain::order::{NewOrder, PlaceOrderError};
use domain::outbox::{ClaimedEvent, EventId, OutboxCounts};
use domain::ports::{OrderRepository, Outbox};
use domain::{Order, TelegramId};
use infra_postgres::test_support::TestDatabase;
use infra_postgres::{Database, PoolOptions};
use sea_orm::{ConnectionTrait, Statement};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::support::{T0, count, draft, new_user, one_product, place_order};

contract_tests!(
    placing_an_order_creates_one_pending_order_created_event,
    claim_returns_due_events_oldest_first_up_to_the_limit_with_their_orders,
    a_claimed_event_is_not_claimed_again_until_its_lease_expires,
    concurrent_claimers_never_share_an_event,
    mark_sent_records_the_message_and_ends_delivery,
    retry_later_reschedules_the_event_and_keeps_the_error,
    mark_dead_ends_delivery_with_the_reason,
    release_clears_only_the_lease,
    a_hold_keeps_every_event_back_until_it_ends_and_rewrites_none,
    a_hold_never_moves_earlier,
    counts_summarise_the_outbox,
    counts_read_only_the_partial_indexes_of_pending_and_dead_events,
    retry_dead_puts_dead_events_back_in_line,
    a_failing_event_insert_leaves_no_order_behind,
    a_late_outcome_never_changes_a_sent_event,
    an_unreadable_event_is_set_aside_and_the_rest_are_delivered,
);

/// An outbox row as stored.
#[derive(Debug, Clone, PartialEq)]
struct EventRow {
    id: EventId,
    kind: String,
    order_id: i64,
    status: String,
    attempts: i32,
    next_attempt_at: OffsetDateTime,
    locked_until: Option<OffsetDateTime>,
    last_error: Option<String>,
    telegram_message_id: Option<i64>,
    created_at: OffsetDateTime,
    sent_at: Option<OffsetDateTime>,
    dead_at: Option<OffsetDateTime>,
}

/// Every outbox row, by id.
async fn events(db: &TestDatabase) -> Vec<EventRow> {
    let connection = db.database().connection();
    let rows = connection
        .query_all_raw(Statement::from_string(
            connection.get_database_backend(),
            "SELECT * FROM outbox_events ORDER BY id",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|row| EventRow {
            id: EventId(row.try_get("", "id").unwrap()),
            kind: row.try_get("", "kind").unwrap(),
            order_id: row.try_get("", "order_id").unwrap(),
            status: row.try_get("", "status").unwrap(),
            attempts: row.try_get("", "attempts").unwrap(),
            next_attempt_at: row.try_get("", "next_attempt_at").unwrap(),
            locked_until: row.try_get("", "locked_until").unwrap(),
            last_error: row.try_get("", "last_error").unwrap(),
            telegram_message_id: row.try_get("", "telegram_message_id").unwrap(),
            created_at: row.try_get("", "created_at").unwrap(),
            sent_at: row.try_get("", "sent_at").unwrap(),
            dead_at: row.try_get("", "dead_at").unwrap(),
        })
        .collect()
}

async fn event(db: &TestDatabase, id: EventId) -> EventRow {
    events(db)
        .await
        .into_iter()
        .find(|event| event.id == id)
        .unwrap()
}

/// Claims with a 30-second lease.
async fn claim(db: &TestDatabase, now: OffsetDateTime, limit: u32) -> Vec<ClaimedEvent> {
    db.store()
        .claim_due(now, now + Duration::seconds(30), limit)
        .await
        .unwrap()
}

fn order_ids(claimed: &[ClaimedEvent]) -> Vec<i64> {
    claimed.iter().map(|e| e.notification.order.id.0).collect()
}

/// `n` orders of one customer, placed a second apart from T0, and their events' ids.
async fn orders_with_events(db: &TestDatabase, n: i64) -> (Vec<Order>, Vec<EventId>) {
    let product = one_product(db).await;
    let user = new_user(db, 1001).await;
    let mut orders = Vec::new();
    for i in 0..n {
        orders.push(place_order(db, &user, product, 1, T0 + Duration::seconds(i)).await);
    }
    let ids = events(db).await.iter().map(|e| e.id).collect();
    (orders, ids)
}

async fn placing_an_order_creates_one_pending_order_created_event(db: &TestDatabase) {
    let product = one_product(db).await;
    let user = new_user(db, 1001).await;
    assert_eq!(db.store().counts().await.unwrap(), OutboxCounts::default());
    // Not UTC and finer than a microsecond, like the clock may give.
    let placed_at = datetime!(2025-02-03 15:04:05.123456789 +03:00);

    let order = place_order(db, &user, product, 2, placed_at).await;

    let stored = events(db).await;
    assert_eq!(stored.len(), 1);
    let event = &stored[0];
    assert_eq!(
        (event.kind.as_str(), event.order_id, event.status.as_str()),
        ("order_created", order.id.0, "PENDING")
    );
    assert_eq!(event.attempts, 0);
    // Due at once.
    assert_eq!(event.created_at, order.created_at);
    assert_eq!(event.next_attempt_at, order.created_at);
    assert_eq!(
        (
            &event.locked_until,
            &event.last_error,
            &event.telegram_message_id
        ),
        (&None, &None, &None)
    );
    assert_eq!((event.sent_at, event.dead_at), (None, None));
    assert_eq!(
        db.store().counts().await.unwrap(),
        OutboxCounts {
            pending: 1,
            dead: 0,
            oldest_pending: Some(datetime!(2025-02-03 12:04:05.123456 UTC)),
        }
    );

    // Every order gets its own event.
    place_order(db, &user, product, 1, placed_at).await;
    assert_eq!(count(db, "outbox_events").await, 2);
}

async fn claim_returns_due_events_oldest_first_up_to_the_limit_with_their_orders(
    db: &TestDatabase,
) {
    let product = one_product(db).await;
    let ivan = new_user(db, 1001).await;
    // Beyond 32 bits, as real Telegram ids may be.
    let maria = new_user(db, 6_000_000_001).await;
    let first = place_order(db, &ivan, product, 3, T0).await;
    let second = place_order(db, &maria, product, 1, T0 + Duration::seconds(1)).await;
    let third = place_order(db, &ivan, product, 2, T0 + Duration::seconds(2)).await;
    let _not_yet_due = place_order(db, &maria, product, 1, T0 + Duration::hours(1)).await;

    let now = T0 + Duration::seconds(10);
    let claimed = claim(db, now, 2).await;
    assert_eq!(order_ids(&claimed), [first.id.0, second.id.0]);
    let ids = events(db).await.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(claimed[0].id, ids[0]);
    assert_eq!(claimed[0].attempts, 0);
    // The full order, exactly as placed, and who placed it.
    assert_eq!(claimed[0].notification.order, first);
    assert_eq!(claimed[0].notification.order.items.len(), 1);
    assert_eq!(claimed[0].notification.order.items[0].quantity, 3);
    assert_eq!(
        claimed[0].notification.customer,
        TelegramId::parse(1001).unwrap()
    );
    assert_eq!(claimed[1].notification.order, second);
    assert_eq!(
        claimed[1].notification.customer,
        TelegramId::parse(6_000_000_001).unwrap()
    );

    // The rest that is due; the order placed an hour later is not.
    let rest = claim(db, now, 10).await;
    assert_eq!(order_ids(&rest), [third.id.0]);
    assert_eq!(rest[0].notification.order, third);
    assert!(claim(db, now, 10).await.is_empty());
    assert!(claim(db, now, 0).await.is_empty());
}

async fn a_claimed_event_is_not_claimed_again_until_its_lease_expires(db: &TestDatabase) {
    let (orders, ids) = orders_with_events(db, 1).await;
    let store = db.store();
    let lease_until = T0 + Duration::milliseconds(30_500);

    let claimed = store.claim_due(T0, lease_until, 10).await.unwrap();
    assert_eq!(order_ids(&claimed), [orders[0].id.0]);
    assert_eq!(event(db, ids[0]).await.locked_until, Some(lease_until));

    // On SQLite these compare as text: a whole second and a fraction before the lease
    // ends must sort before it.
    for now in [
        T0,
        T0 + Duration::seconds(30),
        lease_until - Duration::milliseconds(1),
    ] {
        assert!(
            store
                .claim_due(now, now + Duration::seconds(30), 10)
                .await
                .unwrap()
                .is_empty(),
            "claimed again at {now} under a lease until {lease_until}"
        );
    }

    // The relay holding it died: after the lease, another takes it over, with a new lease.
    let later = lease_until + Duration::milliseconds(1);
    let taken_over = store
        .claim_due(later, later + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(order_ids(&taken_over), [orders[0].id.0]);
    assert_eq!(
        event(db, ids[0]).await.locked_until,
        Some(later + Duration::seconds(30))
    );
    // Claiming is no attempt.
    assert_eq!(taken_over[0].attempts, 0);
    assert_eq!(event(db, ids[0]).await.status, "PENDING");
}

async fn concurrent_claimers_never_share_an_event(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 10).await;
    let now = T0 + Duration::minutes(1);
    // Four claimers, each with a pool of its own as separate server instances would have,
    // asking for more than there is between them.
    let mut claimers = Vec::new();
    for _ in 0..4 {
        let pool = Database::connect(db.url(), PoolOptions::default())
            .await
            .unwrap();
        claimers.push(tokio::spawn(async move {
            let claimed = pool
                .store()
                .claim_due(now, now + Duration::seconds(30), 3)
                .await
                .unwrap();
            pool.close().await.unwrap();
            claimed.into_iter().map(|e| e.id).collect::<Vec<_>>()
        }));
    }
    let mut all = Vec::new();
    for claimer in claimers {
        let claimed = claimer.await.unwrap();
        assert!(
            claimed.is_sorted(),
            "each batch is oldest first: {claimed:?}"
        );
        all.extend(claimed);
    }
    all.sort();
    assert_eq!(all, ids, "every event claimed exactly once");
}

async fn mark_sent_records_the_message_and_ends_delivery(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 2).await;
    let store = db.store();
    claim(db, T0 + Duration::seconds(5), 10).await;
    let sent_at = T0 + Duration::milliseconds(5_250);

    store.mark_sent(ids[0], Some(777), sent_at).await.unwrap();
    store.mark_sent(ids[1], None, sent_at).await.unwrap();

    let first = event(db, ids[0]).await;
    assert_eq!(first.status, "SENT");
    assert_eq!(first.telegram_message_id, Some(777));
    assert_eq!(first.sent_at, Some(sent_at));
    assert_eq!(first.locked_until, None);
    assert_eq!(first.attempts, 0);
    let second = event(db, ids[1]).await;
    assert_eq!(
        (second.status.as_str(), second.telegram_message_id),
        ("SENT", None)
    );

    // Never delivered again, even long after any lease.
    assert!(claim(db, T0 + Duration::days(1), 10).await.is_empty());
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.pending, counts.dead), (0, 0));
    assert_eq!(counts.oldest_pending, None);
}

async fn retry_later_reschedules_the_event_and_keeps_the_error(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 1).await;
    let store = db.store();
    claim(db, T0, 10).await;
    let next = T0 + Duration::milliseconds(1_500);

    store
        .retry_later(ids[0], 1, next, "HTTP 502 Bad Gateway")
        .await
        .unwrap();

    let stored = event(db, ids[0]).await;
    assert_eq!(stored.status, "PENDING");
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.next_attempt_at, next);
    assert_eq!(stored.last_error.as_deref(), Some("HTTP 502 Bad Gateway"));
    assert_eq!(stored.locked_until, None);

    // Not due a whole second or a millisecond early (on SQLite these compare as text,
    // "...:01.000000Z" < "...:01.499000Z" < "...:01.500000Z"); due on time, with its
    // attempts.
    assert!(claim(db, T0 + Duration::seconds(1), 10).await.is_empty());
    assert!(
        claim(db, next - Duration::milliseconds(1), 10)
            .await
            .is_empty()
    );
    let again = claim(db, next, 10).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (ids[0], 1));
}

async fn mark_dead_ends_delivery_with_the_reason(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 2).await;
    let store = db.store();
    claim(db, T0 + Duration::seconds(5), 10).await;
    let died_at = T0 + Duration::seconds(6);

    store
        .mark_dead(ids[0], 3, "Forbidden: bot was blocked by the user", died_at)
        .await
        .unwrap();

    let dead = event(db, ids[0]).await;
    assert_eq!(dead.status, "DEAD");
    assert_eq!(dead.attempts, 3);
    assert_eq!(
        dead.last_error.as_deref(),
        Some("Forbidden: bot was blocked by the user")
    );
    assert_eq!(dead.dead_at, Some(died_at));
    assert_eq!(dead.locked_until, None);
    assert_eq!(dead.sent_at, None);
    // The other event of the batch is untouched.
    assert_eq!(event(db, ids[1]).await.status, "PENDING");

    let later = claim(db, T0 + Duration::days(1), 10).await;
    assert_eq!(later.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[1]]);
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.pending, counts.dead), (1, 1));
}

async fn release_clears_only_the_lease(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 3).await;
    let store = db.store();
    let now = T0 + Duration::seconds(5);
    store.retry_later(ids[0], 2, T0, "HTTP 500").await.unwrap();
    let before = events(db).await;
    assert_eq!(claim(db, now, 10).await.len(), 3);

    store.release(&[ids[0], ids[2]]).await.unwrap();
    store.release(&[]).await.unwrap();

    let after = events(db).await;
    assert_eq!(after[0].locked_until, None);
    assert!(
        after[1].locked_until.is_some(),
        "not released, still leased"
    );
    assert_eq!(after[2].locked_until, None);
    // The schedule, the attempts and the error are kept.
    for (before, after) in before.iter().zip(&after) {
        assert_eq!(
            (
                &after.status,
                after.attempts,
                after.next_attempt_at,
                &after.last_error
            ),
            (
                &before.status,
                before.attempts,
                before.next_attempt_at,
                &before.last_error
            )
        );
    }
    // Released events are claimable at once, in their turn.
    let again = claim(db, now, 10).await;
    assert_eq!(
        again.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[0], ids[2]]
    );
    assert_eq!(again[0].attempts, 2);
}

async fn a_hold_keeps_every_event_back_until_it_ends_and_rewrites_none(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 3).await;
    let store = db.store();
    let now = T0 + Duration::seconds(10);
    let until = now + Duration::seconds(5);
    // ids[0]: the event that got the 429, leased; ids[1], ids[2]: due now, free.
    let claimed = claim(db, now, 1).await;
    assert_eq!(claimed[0].id, ids[0]);
    let before = events(db).await;

    store.hold_pending(until).await.unwrap();

    assert_eq!(
        events(db).await,
        before,
        "a hold writes no event: a 429 during a rush must not rewrite the backlog"
    );
    store.release(&[ids[0]]).await.unwrap();
    assert!(
        claim(db, until - Duration::milliseconds(1), 10)
            .await
            .is_empty(),
        "nothing is claimed while the hold runs"
    );
    let resumed = claim(db, until, 10).await;
    assert_eq!(
        resumed.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids,
        "when it ends, every due event is claimed in its own order"
    );
}

async fn a_hold_never_moves_earlier(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 1).await;
    let store = db.store();
    let now = T0 + Duration::seconds(10);
    let later = now + Duration::seconds(30);

    store.hold_pending(later).await.unwrap();
    store
        .hold_pending(now + Duration::seconds(1))
        .await
        .unwrap();

    assert!(
        claim(db, now + Duration::seconds(2), 10).await.is_empty(),
        "a shorter hold does not cut a longer one short"
    );
    let resumed = claim(db, later, 10).await;
    assert_eq!(resumed.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
}

async fn counts_summarise_the_outbox(db: &TestDatabase) {
    let product = one_product(db).await;
    let user = new_user(db, 1001).await;
    let store = db.store();
    // Placed out of time order, and a fraction apart. The oldest pending is the first
    // written (lowest id) pending event, which one index entry finds; the clock a
    // placement reads moves forward, so that is the oldest but for clock skew between
    // concurrent placements.
    let times = [
        T0 + Duration::seconds(1),
        T0,
        T0 + Duration::milliseconds(1_500),
        T0 + Duration::milliseconds(999),
        T0 + Duration::seconds(3),
    ];
    for at in times {
        place_order(db, &user, product, 1, at).await;
    }
    let ids: Vec<EventId> = events(db).await.iter().map(|e| e.id).collect();
    // The oldest one is sent, so the oldest pending is the first written of the rest.
    store.mark_sent(ids[1], Some(10), T0).await.unwrap();
    store
        .mark_dead(ids[3], 1, "Unauthorized", T0)
        .await
        .unwrap();
    // Leased and retried events are still pending.
    claim(db, T0 + Duration::seconds(2), 1).await;
    store
        .retry_later(ids[2], 1, T0 + Duration::hours(1), "timeout")
        .await
        .unwrap();

    assert_eq!(
        store.counts().await.unwrap(),
        OutboxCounts {
            pending: 3,
            dead: 1,
            oldest_pending: Some(T0 + Duration::seconds(1)),
        }
    );
}

/// The counts run every few seconds, while sent events — nearly every row — only grow:
/// each part of the query must come from the partial index of its state. The planner is
/// told to avoid sequential scans, so that a plan still reading the table (the one-pass
/// `COUNT(CASE ...)` over every row this query replaced) shows, and no index covering
/// the query would be an error in the plan, not a pass.
async fn counts_read_only_the_partial_indexes_of_pending_and_dead_events(db: &TestDatabase) {
    use sea_orm::TransactionTrait;

    let (_, ids) = orders_with_events(db, 3).await;
    let store = db.store();
    store.mark_sent(ids[0], Some(1), T0).await.unwrap();
    store
        .mark_dead(ids[1], 1, "Unauthorized", T0)
        .await
        .unwrap();
    let sql = infra_postgres::OUTBOX_COUNTS_SQL;
    let connection = db.database().connection();
    let plan: Vec<String> = if db.is_sqlite() {
        connection
            .query_all_raw(Statement::from_string(
                sea_orm::DatabaseBackend::Sqlite,
                format!("EXPLAIN QUERY PLAN {sql}"),
            ))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String>("", "detail").unwrap())
            .collect()
    } else {
        let transaction = connection.begin().await.unwrap();
        transaction
            .execute_unprepared("SET LOCAL enable_seqscan = off")
            .await
            .unwrap();
        let plan = transaction
            .query_all_raw(Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                format!("EXPLAIN {sql}"),
            ))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String>("", "QUERY PLAN").unwrap())
            .collect();
        transaction.rollback().await.unwrap();
        plan
    };
    let plan = plan.join("\n");
    assert_eq!(
        plan.matches("idx_outbox_events_pending_id").count(),
        2,
        "the pending count and the oldest pending event: {plan}"
    );
    assert_eq!(
        plan.matches("idx_outbox_events_dead_id").count(),
        1,
        "{plan}"
    );
    // PostgreSQL may visit the rows an index found (a bitmap heap scan of the pending
    // ones), never the table as such; SQLite's plan names the index on every read.
    assert!(!plan.contains("Seq Scan"), "{plan}");
    if db.is_sqlite() {
        for line in plan.lines().filter(|line| line.contains("outbox_events")) {
            assert!(line.contains("INDEX idx_outbox_events_"), "{plan}");
        }
    }
    assert_eq!(
        store.counts().await.unwrap(),
        OutboxCounts {
            pending: 1,
            dead: 1,
            oldest_pending: Some(T0 + Duration::seconds(2)),
        }
    );
}

async fn retry_dead_puts_dead_events_back_in_line(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 4).await;
    let store = db.store();
    let died_at = T0 + Duration::seconds(10);
    assert_eq!(claim(db, died_at, 10).await.len(), 4);
    store
        .mark_dead(
            ids[0],
            20,
            "gave up after 20 attempts; last error: HTTP 500",
            died_at,
        )
        .await
        .unwrap();
    store
        .mark_dead(ids[2], 1, "Forbidden: bot was kicked", died_at)
        .await
        .unwrap();
    store.mark_sent(ids[1], Some(5), died_at).await.unwrap();
    store.release(&[ids[3]]).await.unwrap();
    let before = events(db).await;
    let now = T0 + Duration::days(2);

    assert_eq!(store.retry_dead(now).await.unwrap(), 2);

    let after = events(db).await;
    for i in [0, 2] {
        assert_eq!(after[i].status, "PENDING");
        assert_eq!(after[i].attempts, 0);
        assert_eq!(after[i].next_attempt_at, now);
        assert_eq!(after[i].dead_at, None);
        assert_eq!(after[i].locked_until, None);
        assert_eq!(
            after[i].last_error, before[i].last_error,
            "the reason is kept"
        );
    }
    assert_eq!(after[1], before[1], "sent events stay sent");
    assert_eq!(after[3], before[3], "pending events keep their schedule");

    let counts = store.counts().await.unwrap();
    assert_eq!((counts.pending, counts.dead), (3, 0));
    let revived = claim(db, now, 10).await;
    assert_eq!(
        revived
            .iter()
            .map(|e| (e.id, e.attempts))
            .collect::<Vec<_>>(),
        [(ids[0], 0), (ids[2], 0), (ids[3], 0)]
    );
    assert_eq!(store.retry_dead(now).await.unwrap(), 0);
}

async fn a_failing_event_insert_leaves_no_order_behind(db: &TestDatabase) {
    let product = one_product(db).await;
    let user = new_user(db, 1001).await;
    // The event is the last thing `place` writes: failing it must undo the order and its
    // lines too.
    if db.is_sqlite() {
        db.execute(
            "CREATE TRIGGER refuse_outbox_events BEFORE INSERT ON outbox_events \
             BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
        .await
        .unwrap();
    } else {
        db.execute(
            "CREATE FUNCTION refuse_outbox_events() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'boom'; END $$",
        )
        .await
        .unwrap();
        db.execute(
            "CREATE TRIGGER refuse_outbox_events BEFORE INSERT ON outbox_events \
             FOR EACH ROW EXECUTE FUNCTION refuse_outbox_events()",
        )
        .await
        .unwrap();
    }

    let result = db
        .store()
        .place(NewOrder {
            user_id: user.id,
            draft: draft(&[(product, 2)]),
            placed_at: T0,
            idempotency_key: None,
        })
        .await;

    match result {
        Err(PlaceOrderError::Repository(err)) => {
            let chain = format!("{err:#}");
            assert!(chain.contains("outbox event"), "unexpected error: {chain}");
            assert!(chain.contains("boom"), "unexpected error: {chain}");
        }
        other => panic!("expected a repository error, got {other:?}"),
    }
    assert_eq!(count(db, "orders").await, 0);
    assert_eq!(count(db, "order_items").await, 0);
    assert_eq!(count(db, "outbox_events").await, 0);

    // Nothing was left half-done: with the trigger gone, the same order goes through.
    let drop_trigger = if db.is_sqlite() {
        "DROP TRIGGER refuse_outbox_events"
    } else {
        "DROP TRIGGER refuse_outbox_events ON outbox_events"
    };
    db.execute(drop_trigger).await.unwrap();
    let order = place_order(db, &user, product, 2, T0).await;
    assert_eq!(count(db, "orders").await, 1);
    assert_eq!(count(db, "order_items").await, 1);
    assert_eq!(events(db).await[0].order_id, order.id.0);
}

async fn a_late_outcome_never_changes_a_sent_event(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 1).await;
    let store = db.store();
    claim(db, T0 + Duration::seconds(5), 10).await;
    store
        .mark_sent(ids[0], Some(1), T0 + Duration::seconds(6))
        .await
        .unwrap();
    // A relay that lost its claim reports a failure afterwards: it must not undo the send.
    store
        .mark_dead(ids[0], 1, "late failure", T0 + Duration::seconds(7))
        .await
        .unwrap();
    store
        .retry_later(ids[0], 1, T0 + Duration::seconds(8), "late")
        .await
        .unwrap();
    let sent = event(db, ids[0]).await;
    assert_eq!(sent.status, "SENT");
    assert_eq!(sent.last_error, None);
    assert_eq!(store.retry_dead(T0 + Duration::days(1)).await.unwrap(), 0);
}

async fn an_unreadable_event_is_set_aside_and_the_rest_are_delivered(db: &TestDatabase) {
    let (orders, ids) = orders_with_events(db, 2).await;
    // Break the first event's customer: a Telegram id the domain refuses.
    let broken_user = orders[0].user_id.0;
    db.execute(&format!(
        "UPDATE users SET telegram_id = -{broken_user} WHERE id = {broken_user}"
    ))
    .await
    .unwrap();
    // Both orders belong to that customer in this fixture, so add a healthy one.
    let product = one_product(db).await;
    let healthy = new_user(db, 2002).await;
    let healthy_order = place_order(db, &healthy, product, 1, T0 + Duration::seconds(3)).await;

    let claimed = claim(db, T0 + Duration::seconds(10), 10).await;
    assert_eq!(
        order_ids(&claimed),
        [healthy_order.id.0],
        "the healthy event still goes out"
    );
    for id in &ids {
        let dead = event(db, *id).await;
        assert_eq!(dead.status, "DEAD");
        assert!(dead.last_error.unwrap().contains("unreadable event"));
    }
}
