//! `Outbox` contract, and the outbox half of `OrderRepository::place`.
//!
//! Every instant the outbox judges or writes is the database's own, so these tests bound
//! what it wrote by the test's clock read before and after (the database is on this
//! machine), and move time on by rewriting the stored instants into the past or future.

use domain::order::{NewOrder, PlaceOrderError};
use domain::outbox::{
    ChangedBy, ClaimToken, ClaimedEvent, EventId, EventKind, Notice, OutboxCounts, OutboxEvent,
    Recipient, Recorded, prune_sent,
};
use domain::ports::{
    Notification, OrderPlaced, OrderRepository, Outbox, StatusChanged, UserRepository,
};
use domain::{Order, OrderStatus, TelegramId};
use infra_postgres::test_support::TestDatabase;
use infra_postgres::{Database, PoolOptions, append_outbox_event};
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use time::macros::{datetime, format_description};
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
    what_a_death_leaves_to_do_is_written_with_it_while_the_claim_holds,
    release_clears_only_the_lease,
    a_hold_keeps_every_event_back_until_it_ends_and_rewrites_none,
    a_hold_never_moves_earlier,
    a_hold_keeps_back_only_its_own_chat,
    a_claim_passes_over_a_held_chats_backlog_without_reading_it,
    events_appended_in_a_transaction_are_claimed_with_what_they_need,
    an_appended_event_is_written_only_if_its_transaction_commits,
    a_manager_message_update_waits_for_the_new_order_message,
    an_order_is_announced_once_but_may_change_status_many_times,
    counts_summarise_the_outbox,
    counts_read_only_the_partial_indexes_of_pending_and_dead_events,
    retry_dead_puts_dead_events_back_in_line,
    a_failing_event_insert_leaves_no_order_behind,
    a_late_outcome_never_changes_a_sent_event,
    an_outcome_under_an_expired_and_retaken_claim_changes_nothing,
    an_unreadable_event_is_set_aside_and_the_rest_are_delivered,
    sent_events_older_than_the_retention_are_pruned_in_batches,
);

/// The lease the tests claim with.
const LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// An instant as an SQL literal of `db`'s timestamp column type.
fn at_sql(db: &TestDatabase, at: OffsetDateTime) -> String {
    let text = at
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        ))
        .unwrap();
    if db.is_sqlite() {
        format!("'{text}'")
    } else {
        format!("'{text}'::timestamptz")
    }
}

/// Runs `UPDATE table SET column = at` on the rows `filter` selects: time moves on, as
/// far as the database can tell.
async fn set_time(db: &TestDatabase, table: &str, column: &str, at: OffsetDateTime, filter: &str) {
    db.execute(&format!(
        "UPDATE {table} SET {column} = {} WHERE {filter}",
        at_sql(db, at)
    ))
    .await
    .unwrap();
}

/// Lets every lease run out.
async fn expire_leases(db: &TestDatabase) {
    set_time(
        db,
        "outbox_events",
        "locked_until",
        T0,
        "locked_until IS NOT NULL",
    )
    .await;
}

/// The test's clock now, to the millisecond below (SQLite's clock has milliseconds).
fn before() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_millisecond(now.millisecond()).unwrap()
}

/// Asserts that the database wrote `what` as its now plus `offset`, some time between
/// `from` and now.
fn assert_written_at(what: &str, at: OffsetDateTime, from: OffsetDateTime, offset: Duration) {
    let to = OffsetDateTime::now_utc() + offset;
    assert!(
        from + offset <= at && at <= to,
        "{what} is {at}, not the database's now plus {offset} (between {} and {to})",
        from + offset
    );
}

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
    claim_token: Option<String>,
    chat: String,
    payload: Option<String>,
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
            claim_token: row.try_get("", "claim_token").unwrap(),
            chat: row.try_get("", "chat").unwrap(),
            payload: row.try_get("", "payload").unwrap(),
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
async fn claim(db: &TestDatabase, limit: u32) -> Vec<ClaimedEvent> {
    db.store().claim_due(LEASE, limit).await.unwrap()
}

fn order_ids(claimed: &[ClaimedEvent]) -> Vec<i64> {
    claimed.iter().map(|e| e.order_id.0).collect()
}

/// The new-order notification a claimed `order_created` event carries.
fn placed(event: &ClaimedEvent) -> &OrderPlaced {
    match &event.notification {
        Ok(Notification::NewOrder(placed)) => placed,
        other => panic!("not a new order: {other:?}"),
    }
}

fn ids_of(claimed: &[ClaimedEvent]) -> Vec<EventId> {
    claimed.iter().map(|e| e.id).collect()
}

/// The claim of `id` in `claimed`.
fn token(claimed: &[ClaimedEvent], id: EventId) -> ClaimToken {
    claimed.iter().find(|e| e.id == id).unwrap().token.clone()
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

    let from = before();
    let order = place_order(db, &user, product, 2, placed_at).await;

    let stored = events(db).await;
    assert_eq!(stored.len(), 1);
    let event = &stored[0];
    assert_eq!(
        (event.kind.as_str(), event.order_id, event.status.as_str()),
        ("order_created", order.id.0, "PENDING")
    );
    assert_eq!(event.attempts, 0);
    assert_eq!(event.created_at, order.created_at);
    // Due at once, by the database's clock, which is the one the claim judges it by.
    assert_written_at(
        "next_attempt_at",
        event.next_attempt_at,
        from,
        Duration::ZERO,
    );
    assert_eq!(
        (
            &event.locked_until,
            &event.last_error,
            &event.telegram_message_id,
            &event.claim_token,
        ),
        (&None, &None, &None, &None)
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
    let not_yet_due = place_order(db, &maria, product, 1, T0 + Duration::seconds(3)).await;
    let future = OffsetDateTime::now_utc() + Duration::hours(1);
    set_time(
        db,
        "outbox_events",
        "next_attempt_at",
        future,
        &format!("order_id = {}", not_yet_due.id.0),
    )
    .await;

    let claimed = claim(db, 2).await;
    assert_eq!(order_ids(&claimed), [first.id.0, second.id.0]);
    let stored = events(db).await;
    assert_eq!(claimed[0].id, stored[0].id);
    assert_eq!(claimed[0].attempts, 0);
    // Each event gets a token of its own, stored with it.
    assert_ne!(claimed[0].token, claimed[1].token);
    for (claimed, stored) in claimed.iter().zip(&stored) {
        assert!(!claimed.token.as_str().is_empty());
        assert_eq!(stored.claim_token.as_deref(), Some(claimed.token.as_str()));
    }
    // The full order, exactly as placed, and who placed it.
    assert_eq!(placed(&claimed[0]).order, first);
    assert_eq!(placed(&claimed[0]).order.items.len(), 1);
    assert_eq!(placed(&claimed[0]).order.items[0].quantity, 3);
    assert_eq!(
        placed(&claimed[0]).customer,
        TelegramId::parse(1001).unwrap()
    );
    assert_eq!(
        (claimed[0].kind, claimed[0].recipient),
        (EventKind::OrderCreated, Recipient::ManagerChat)
    );
    assert_eq!(placed(&claimed[1]).order, second);
    assert_eq!(
        placed(&claimed[1]).customer,
        TelegramId::parse(6_000_000_001).unwrap()
    );

    // The rest that is due; the event due in an hour is not.
    let rest = claim(db, 10).await;
    assert_eq!(order_ids(&rest), [third.id.0]);
    assert_eq!(placed(&rest[0]).order, third);
    assert!(claim(db, 10).await.is_empty());
    assert!(claim(db, 0).await.is_empty());
}

async fn a_claimed_event_is_not_claimed_again_until_its_lease_expires(db: &TestDatabase) {
    let (orders, ids) = orders_with_events(db, 1).await;
    let store = db.store();

    let from = before();
    let claimed = store
        .claim_due(std::time::Duration::from_millis(30_500), 10)
        .await
        .unwrap();
    assert_eq!(order_ids(&claimed), [orders[0].id.0]);
    let leased = event(db, ids[0]).await;
    // The lease runs from the database's now, whatever the claimer's clock says.
    assert_written_at(
        "locked_until",
        leased.locked_until.unwrap(),
        from,
        Duration::milliseconds(30_500),
    );

    assert!(
        claim(db, 10).await.is_empty(),
        "claimed again under a lease"
    );
    // A lease a millisecond from its end still holds (on SQLite these compare as text).
    let almost_over = OffsetDateTime::now_utc() + Duration::seconds(1);
    set_time(db, "outbox_events", "locked_until", almost_over, "TRUE").await;
    assert!(
        claim(db, 10).await.is_empty(),
        "claimed again under a lease"
    );

    // The relay holding it died: after the lease, another takes it over, with a new lease
    // and a new token.
    expire_leases(db).await;
    let from = before();
    let taken_over = claim(db, 10).await;
    assert_eq!(order_ids(&taken_over), [orders[0].id.0]);
    assert_ne!(taken_over[0].token, claimed[0].token);
    let retaken = event(db, ids[0]).await;
    assert_written_at(
        "locked_until",
        retaken.locked_until.unwrap(),
        from,
        Duration::seconds(30),
    );
    // Claiming is no attempt.
    assert_eq!(taken_over[0].attempts, 0);
    assert_eq!(retaken.status, "PENDING");
}

async fn concurrent_claimers_never_share_an_event(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 10).await;
    // Four claimers, each with a pool of its own as separate server instances would have,
    // asking for more than there is between them.
    let mut claimers = Vec::new();
    for _ in 0..4 {
        let pool = Database::connect(db.url(), PoolOptions::default())
            .await
            .unwrap();
        claimers.push(tokio::spawn(async move {
            let claimed = pool.store().claim_due(LEASE, 3).await.unwrap();
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
    let claimed = claim(db, 10).await;

    let from = before();
    let first = store
        .mark_sent(ids[0], &token(&claimed, ids[0]), Some(777))
        .await
        .unwrap();
    let second = store
        .mark_sent(ids[1], &token(&claimed, ids[1]), None)
        .await
        .unwrap();
    assert_eq!((first, second), (Recorded::Done, Recorded::Done));

    let first = event(db, ids[0]).await;
    assert_eq!(first.status, "SENT");
    assert_eq!(first.telegram_message_id, Some(777));
    assert_written_at("sent_at", first.sent_at.unwrap(), from, Duration::ZERO);
    assert_eq!((first.locked_until, first.claim_token), (None, None));
    assert_eq!(first.attempts, 0);
    let second = event(db, ids[1]).await;
    assert_eq!(
        (second.status.as_str(), second.telegram_message_id),
        ("SENT", None)
    );

    // Never delivered again, even long after any lease.
    expire_leases(db).await;
    assert!(claim(db, 10).await.is_empty());
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.pending, counts.dead), (0, 0));
    assert_eq!(counts.oldest_pending, None);
}

async fn retry_later_reschedules_the_event_and_keeps_the_error(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 1).await;
    let store = db.store();
    let claimed = claim(db, 10).await;

    let from = before();
    let recorded = store
        .retry_later(
            ids[0],
            &claimed[0].token,
            1,
            std::time::Duration::from_millis(1_500),
            "HTTP 502 Bad Gateway",
        )
        .await
        .unwrap();
    assert_eq!(recorded, Recorded::Done);

    let stored = event(db, ids[0]).await;
    assert_eq!(stored.status, "PENDING");
    assert_eq!(stored.attempts, 1);
    assert_written_at(
        "next_attempt_at",
        stored.next_attempt_at,
        from,
        Duration::milliseconds(1_500),
    );
    assert_eq!(stored.last_error.as_deref(), Some("HTTP 502 Bad Gateway"));
    assert_eq!((stored.locked_until, stored.claim_token), (None, None));

    // Not due before its time; due once it has come, with its attempts.
    assert!(claim(db, 10).await.is_empty());
    set_time(db, "outbox_events", "next_attempt_at", T0, "TRUE").await;
    let again = claim(db, 10).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (ids[0], 1));
}

/// `mark_dead` with a follow-up writes both in one transaction, and neither when the claim
/// was lost.
async fn what_a_death_leaves_to_do_is_written_with_it_while_the_claim_holds(db: &TestDatabase) {
    let (orders, ids) = orders_with_events(db, 2).await;
    let store = db.store();
    let claimed = claim(db, 10).await;
    let notice = |order: &Order| OutboxEvent::ManagerNotice {
        order_id: order.id,
        notice: Notice::RefundFailed,
    };
    let notices = "SELECT count(*) FROM outbox_events WHERE kind = 'manager_notice'";

    let recorded = store
        .mark_dead(
            ids[0],
            &token(&claimed, ids[0]),
            1,
            "Bad Request: BALANCE_TOO_LOW",
            Some(notice(&orders[0])),
        )
        .await
        .unwrap();
    assert_eq!(recorded, Recorded::Done);
    assert_eq!(event(db, ids[0]).await.status, "DEAD");
    assert_eq!(db.query_i64(notices).await.unwrap(), 1);

    // A claim lost meanwhile: nothing is recorded, nothing appended.
    let recorded = store
        .mark_dead(
            ids[1],
            &ClaimToken::new("not-the-claim"),
            1,
            "late",
            Some(notice(&orders[1])),
        )
        .await
        .unwrap();
    assert_eq!(recorded, Recorded::LeaseLost);
    assert_eq!(event(db, ids[1]).await.status, "PENDING");
    assert_eq!(db.query_i64(notices).await.unwrap(), 1);

    // The notice is a manager's message like any other, about its order.
    expire_leases(db).await;
    let next = claim(db, 10).await;
    let told: Vec<_> = next
        .iter()
        .filter(|event| event.kind == EventKind::ManagerNotice)
        .collect();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].order_id, orders[0].id);
}

async fn mark_dead_ends_delivery_with_the_reason(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 2).await;
    let store = db.store();
    let claimed = claim(db, 10).await;

    let from = before();
    let recorded = store
        .mark_dead(
            ids[0],
            &token(&claimed, ids[0]),
            3,
            "Forbidden: bot was blocked by the user",
            None,
        )
        .await
        .unwrap();
    assert_eq!(recorded, Recorded::Done);

    let dead = event(db, ids[0]).await;
    assert_eq!(dead.status, "DEAD");
    assert_eq!(dead.attempts, 3);
    assert_eq!(
        dead.last_error.as_deref(),
        Some("Forbidden: bot was blocked by the user")
    );
    assert_written_at("dead_at", dead.dead_at.unwrap(), from, Duration::ZERO);
    assert_eq!((dead.locked_until, dead.claim_token), (None, None));
    assert_eq!(dead.sent_at, None);
    // The other event of the batch is untouched.
    assert_eq!(event(db, ids[1]).await.status, "PENDING");

    expire_leases(db).await;
    let later = claim(db, 10).await;
    assert_eq!(ids_of(&later), [ids[1]]);
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.pending, counts.dead), (1, 1));
}

async fn release_clears_only_the_lease(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 3).await;
    let store = db.store();
    let first = claim(db, 1).await;
    let _ = store
        .retry_later(
            ids[0],
            &first[0].token,
            2,
            std::time::Duration::ZERO,
            "HTTP 500",
        )
        .await
        .unwrap();
    let before = events(db).await;
    let claimed = claim(db, 10).await;
    assert_eq!(claimed.len(), 3);

    // A release under another claim's token releases nothing.
    store
        .release(&[(ids[1], first[0].token.clone())])
        .await
        .unwrap();
    store
        .release(&[
            (ids[0], token(&claimed, ids[0])),
            (ids[2], token(&claimed, ids[2])),
        ])
        .await
        .unwrap();
    store.release(&[]).await.unwrap();

    let after = events(db).await;
    assert_eq!(
        (&after[0].locked_until, &after[0].claim_token),
        (&None, &None)
    );
    assert!(
        after[1].locked_until.is_some(),
        "not released, still leased"
    );
    assert_eq!(
        after[1].claim_token.as_deref(),
        Some(token(&claimed, ids[1]).as_str())
    );
    assert_eq!(
        (&after[2].locked_until, &after[2].claim_token),
        (&None, &None)
    );
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
    let again = claim(db, 10).await;
    assert_eq!(ids_of(&again), [ids[0], ids[2]]);
    assert_eq!(again[0].attempts, 2);
}

/// The hold's end, as stored.
async fn held_until(db: &TestDatabase) -> OffsetDateTime {
    let connection = db.database().connection();
    connection
        .query_one_raw(Statement::from_string(
            connection.get_database_backend(),
            "SELECT held_until FROM outbox_holds",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "held_until")
        .unwrap()
}

async fn a_hold_keeps_every_event_back_until_it_ends_and_rewrites_none(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 3).await;
    let store = db.store();
    // ids[0]: the event that got the 429, leased; ids[1], ids[2]: due now, free.
    let claimed = claim(db, 1).await;
    assert_eq!(claimed[0].id, ids[0]);
    let before_hold = events(db).await;

    let from = before();
    store
        .hold_chat(&Recipient::ManagerChat, std::time::Duration::from_secs(5))
        .await
        .unwrap();

    assert_written_at(
        "held_until",
        held_until(db).await,
        from,
        Duration::seconds(5),
    );
    assert_eq!(
        events(db).await,
        before_hold,
        "a hold writes no event: a 429 during a rush must not rewrite the backlog"
    );
    store
        .release(&[(ids[0], claimed[0].token.clone())])
        .await
        .unwrap();
    assert!(
        claim(db, 10).await.is_empty(),
        "nothing is claimed while the hold runs"
    );
    set_time(db, "outbox_holds", "held_until", T0, "TRUE").await;
    let resumed = claim(db, 10).await;
    assert_eq!(
        ids_of(&resumed),
        ids,
        "when it ends, every due event is claimed in its own order"
    );
}

async fn a_hold_never_moves_earlier(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 1).await;
    let store = db.store();

    let from = before();
    store
        .hold_chat(&Recipient::ManagerChat, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    store
        .hold_chat(&Recipient::ManagerChat, std::time::Duration::from_secs(1))
        .await
        .unwrap();

    assert_written_at(
        "held_until",
        held_until(db).await,
        from,
        Duration::seconds(30),
    );
    assert!(
        claim(db, 10).await.is_empty(),
        "a shorter hold does not cut a longer one short"
    );
    set_time(db, "outbox_holds", "held_until", T0, "TRUE").await;
    assert_eq!(ids_of(&claim(db, 10).await), ids);
}

/// Appends `events` in one transaction and commits it.
async fn append(db: &TestDatabase, events: &[OutboxEvent]) -> Vec<EventId> {
    let transaction = db.database().connection().begin().await.unwrap();
    let mut ids = Vec::new();
    for event in events {
        ids.push(append_outbox_event(&transaction, event).await.unwrap());
    }
    transaction.commit().await.unwrap();
    ids
}

fn confirmed(order: &Order) -> OutboxEvent {
    OutboxEvent::OrderStatusChanged {
        order_id: order.id,
        from: OrderStatus::Pending,
        to: OrderStatus::Confirmed,
        by: ChangedBy::Manager(TelegramId::parse(555).unwrap()),
    }
}

/// A sale while Telegram holds the manager chat: thousands of its messages wait, and a
/// customer's message must still be claimed without reading them (PostgreSQL: a claim
/// reads a chat's events only when the chat is not held).
async fn a_claim_passes_over_a_held_chats_backlog_without_reading_it(db: &TestDatabase) {
    let (orders, _) = orders_with_events(db, 1).await;
    let backlog: Vec<_> = (0..2000)
        .map(|_| OutboxEvent::ManagerMessageUpdate {
            order_id: orders[0].id,
        })
        .collect();
    append(db, &backlog).await;
    let customers = append(db, &[confirmed(&orders[0])]).await;
    db.store()
        .hold_chat(
            &Recipient::ManagerChat,
            std::time::Duration::from_secs(3600),
        )
        .await
        .unwrap();
    if !db.is_sqlite() {
        let connection = db.database().connection();
        let transaction = connection.begin().await.unwrap();
        // Planned as for a large table: on 2 000 rows reading them all is the cheap plan.
        transaction
            .execute_unprepared("SET LOCAL enable_seqscan = off")
            .await
            .unwrap();
        let sql = infra_postgres::test_support::claim_sql_postgres()
            .replace("$1", "30000000")
            .replace("$2", "10");
        let plan = transaction
            .query_all_raw(Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                format!("EXPLAIN (ANALYZE, FORMAT JSON) {sql}"),
            ))
            .await
            .unwrap();
        transaction.rollback().await.unwrap();
        let plan: serde_json::Value = plan[0].try_get("", "QUERY PLAN").unwrap();
        // Every row the search for due events (the `IN` subquery) read from the outbox,
        // however, over all loops; the update then fetches the rows it chose (by id, or, on
        // a table this small, by reading it: not counted).
        fn rows_read(node: &serde_json::Value) -> f64 {
            let count = |key: &str| node[key].as_f64().unwrap_or(0.0);
            let own = if node["Relation Name"] == "outbox_events" {
                // Returned, and read but filtered out.
                (count("Actual Rows")
                    + count("Rows Removed by Filter")
                    + count("Rows Removed by Index Recheck"))
                    * count("Actual Loops")
            } else {
                0.0
            };
            own + node["Plans"]
                .as_array()
                .map_or(0.0, |plans| plans.iter().map(rows_read).sum())
        }
        fn search(node: &serde_json::Value) -> Option<&serde_json::Value> {
            if node["Alias"] == "ANY_subquery" {
                return Some(node);
            }
            node["Plans"].as_array()?.iter().find_map(search)
        }
        let read = rows_read(search(&plan[0]["Plan"]).expect("the claim's subquery"));
        assert!(read < 50.0, "{read} pending events read: {plan}");
    }
    assert_eq!(
        ids_of(&claim(db, 10).await),
        customers,
        "the customer's message is claimed, none of the held chat's"
    );
}

async fn a_hold_keeps_back_only_its_own_chat(db: &TestDatabase) {
    let (orders, created) = orders_with_events(db, 2).await;
    let changed = append(db, &[confirmed(&orders[0]), confirmed(&orders[1])]).await;
    let customer = Recipient::Customer(TelegramId::parse(1001).unwrap());

    db.store()
        .hold_chat(&customer, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let claimed = claim(db, 10).await;
    assert_eq!(
        ids_of(&claimed),
        created,
        "the manager chat's events go on while the customer's chat is held"
    );
    db.store()
        .release(
            &claimed
                .iter()
                .map(|e| (e.id, e.token.clone()))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();

    db.store()
        .hold_chat(&Recipient::ManagerChat, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert!(claim(db, 10).await.is_empty(), "both chats are held");
    set_time(
        db,
        "outbox_holds",
        "held_until",
        T0,
        &format!("chat = '{}'", customer.chat_key()),
    )
    .await;
    assert_eq!(
        ids_of(&claim(db, 10).await),
        changed,
        "the customer's hold ended; the manager chat's still runs"
    );
}

async fn events_appended_in_a_transaction_are_claimed_with_what_they_need(db: &TestDatabase) {
    let product = one_product(db).await;
    let user = new_user(db, 1001).await;
    // The customer's language, as their initData said.
    db.store()
        .upsert(
            &domain::auth::TelegramUser {
                language_code: Some("en".to_owned()),
                ..crate::support::profile(1001, None)
            },
            T0,
        )
        .await
        .unwrap();
    let order = place_order(db, &user, product, 2, T0).await;
    let created = claim(db, 10).await;
    let recorded = db
        .store()
        .mark_sent(created[0].id, &created[0].token, Some(4242))
        .await
        .unwrap();
    assert_eq!(recorded, Recorded::Done);

    let ids = append(
        db,
        &[
            OutboxEvent::OrderStatusChanged {
                order_id: order.id,
                from: OrderStatus::Pending,
                to: OrderStatus::Cancelled,
                by: ChangedBy::Customer,
            },
            OutboxEvent::ManagerMessageUpdate { order_id: order.id },
        ],
    )
    .await;

    let stored = events(db).await;
    assert_eq!(stored[1].chat, "user:1001");
    assert_eq!(stored[2].chat, "manager_chat");
    assert_eq!(stored[2].payload, None);
    let claimed = claim(db, 10).await;
    assert_eq!(ids_of(&claimed), ids);
    let customer = TelegramId::parse(1001).unwrap();
    assert_eq!(claimed[0].recipient, Recipient::Customer(customer));
    assert_eq!(
        claimed[0].notification,
        Ok(Notification::StatusChanged(StatusChanged {
            payment: Default::default(),
            customer,
            language_code: Some("en".to_owned()),
            order_id: order.id,
            total_amount: order.total_amount,
            from: OrderStatus::Pending,
            to: OrderStatus::Cancelled,
            by: ChangedBy::Customer,
        }))
    );
    assert_eq!(claimed[1].recipient, Recipient::ManagerChat);
    match &claimed[1].notification {
        Ok(Notification::ManagerMessageEdit {
            message_id,
            order: placed,
        }) => {
            assert_eq!(*message_id, 4242, "the edit names the new-order message");
            assert_eq!(placed.order, order);
        }
        other => panic!("not an edit: {other:?}"),
    }
}

async fn an_appended_event_is_written_only_if_its_transaction_commits(db: &TestDatabase) {
    use sea_orm::TransactionTrait;
    let (orders, _) = orders_with_events(db, 1).await;
    let transaction = db.database().connection().begin().await.unwrap();
    append_outbox_event(&transaction, &confirmed(&orders[0]))
        .await
        .unwrap();
    transaction.rollback().await.unwrap();
    assert_eq!(
        count(db, "outbox_events").await,
        1,
        "only the order's own event"
    );

    let transaction = db.database().connection().begin().await.unwrap();
    let missing = OutboxEvent::ManagerMessageUpdate {
        order_id: domain::OrderId(orders[0].id.0 + 1000),
    };
    assert!(
        append_outbox_event(&transaction, &missing).await.is_err(),
        "an event of an order that does not exist is refused"
    );
    transaction.rollback().await.unwrap();
}

async fn a_manager_message_update_waits_for_the_new_order_message(db: &TestDatabase) {
    let (orders, _) = orders_with_events(db, 1).await;
    let created = claim(db, 1).await;
    let update = append(
        db,
        &[OutboxEvent::ManagerMessageUpdate {
            order_id: orders[0].id,
        }],
    )
    .await;
    let claimed = claim(db, 10).await;
    assert_eq!(ids_of(&claimed), update);
    let reason = claimed[0].notification.clone().unwrap_err().reason;
    assert!(reason.contains("not sent yet"), "{reason}");
    assert!(created[0].attempts == 0);
}

async fn an_order_is_announced_once_but_may_change_status_many_times(db: &TestDatabase) {
    let (orders, _) = orders_with_events(db, 1).await;
    append(db, &[confirmed(&orders[0]), confirmed(&orders[0])]).await;
    use sea_orm::TransactionTrait;
    let transaction = db.database().connection().begin().await.unwrap();
    let twice = append_outbox_event(
        &transaction,
        &OutboxEvent::OrderCreated {
            order_id: orders[0].id,
        },
    )
    .await;
    assert!(twice.is_err(), "a second order_created event was accepted");
    transaction.rollback().await.unwrap();
    assert_eq!(count(db, "outbox_events").await, 3);
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
    let claimed = claim(db, 10).await;
    // The oldest one is sent, so the oldest pending is the next oldest.
    let _ = store
        .mark_sent(ids[1], &token(&claimed, ids[1]), Some(10))
        .await
        .unwrap();
    let _ = store
        .mark_dead(ids[3], &token(&claimed, ids[3]), 1, "Unauthorized", None)
        .await
        .unwrap();
    // Leased and retried events are still pending.
    let _ = store
        .retry_later(
            ids[2],
            &token(&claimed, ids[2]),
            1,
            std::time::Duration::from_secs(3600),
            "timeout",
        )
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
    let claimed = claim(db, 10).await;
    let _ = store
        .mark_sent(ids[0], &token(&claimed, ids[0]), Some(1))
        .await
        .unwrap();
    let _ = store
        .mark_dead(ids[1], &token(&claimed, ids[1]), 1, "Unauthorized", None)
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
    // Either partial index of pending events (by id, or by chat and id) will do.
    assert_eq!(
        plan.matches("idx_outbox_events_pending_").count(),
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
    let claimed = claim(db, 10).await;
    assert_eq!(claimed.len(), 4);
    let _ = store
        .mark_dead(
            ids[0],
            &token(&claimed, ids[0]),
            20,
            "gave up after 20 attempts; last error: HTTP 500",
            None,
        )
        .await
        .unwrap();
    let _ = store
        .mark_dead(
            ids[2],
            &token(&claimed, ids[2]),
            1,
            "Forbidden: bot was kicked",
            None,
        )
        .await
        .unwrap();
    let _ = store
        .mark_sent(ids[1], &token(&claimed, ids[1]), Some(5))
        .await
        .unwrap();
    store
        .release(&[(ids[3], token(&claimed, ids[3]))])
        .await
        .unwrap();
    let before_revival = events(db).await;

    let from = before();
    assert_eq!(store.retry_dead().await.unwrap(), 2);

    let after = events(db).await;
    for i in [0, 2] {
        assert_eq!(after[i].status, "PENDING");
        assert_eq!(after[i].attempts, 0);
        assert_written_at(
            "next_attempt_at",
            after[i].next_attempt_at,
            from,
            Duration::ZERO,
        );
        assert_eq!(after[i].dead_at, None);
        assert_eq!(after[i].locked_until, None);
        assert_eq!(
            after[i].last_error, before_revival[i].last_error,
            "the reason is kept"
        );
    }
    assert_eq!(after[1], before_revival[1], "sent events stay sent");
    assert_eq!(
        after[3], before_revival[3],
        "pending events keep their schedule"
    );

    let counts = store.counts().await.unwrap();
    assert_eq!((counts.pending, counts.dead), (3, 0));
    let revived = claim(db, 10).await;
    assert_eq!(
        revived
            .iter()
            .map(|e| (e.id, e.attempts))
            .collect::<Vec<_>>(),
        [(ids[0], 0), (ids[2], 0), (ids[3], 0)]
    );
    assert_eq!(store.retry_dead().await.unwrap(), 0);
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
            payment_terms: Default::default(),
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
    let claimed = claim(db, 10).await;
    let token = &claimed[0].token;
    assert_eq!(
        store.mark_sent(ids[0], token, Some(1)).await.unwrap(),
        Recorded::Done
    );
    // A second outcome under the same claim must not undo the send.
    assert_eq!(
        store
            .mark_dead(ids[0], token, 1, "late failure", None)
            .await
            .unwrap(),
        Recorded::LeaseLost
    );
    assert_eq!(
        store
            .retry_later(ids[0], token, 1, std::time::Duration::ZERO, "late")
            .await
            .unwrap(),
        Recorded::LeaseLost
    );
    let sent = event(db, ids[0]).await;
    assert_eq!(sent.status, "SENT");
    assert_eq!(sent.last_error, None);
    assert_eq!(store.retry_dead().await.unwrap(), 0);
}

async fn an_outcome_under_an_expired_and_retaken_claim_changes_nothing(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 1).await;
    let store = db.store();
    // The first relay claims, then stalls past its lease; a second relay claims the event.
    let stale = claim(db, 10).await.remove(0);
    expire_leases(db).await;
    let current = claim(db, 10).await.remove(0);
    assert_eq!(current.id, stale.id);
    let retaken = event(db, ids[0]).await;

    // The first relay wakes up and reports: every one of its updates is refused.
    assert_eq!(
        store
            .mark_sent(ids[0], &stale.token, Some(1))
            .await
            .unwrap(),
        Recorded::LeaseLost
    );
    assert_eq!(
        store
            .retry_later(ids[0], &stale.token, 1, std::time::Duration::ZERO, "late")
            .await
            .unwrap(),
        Recorded::LeaseLost
    );
    assert_eq!(
        store
            .mark_dead(ids[0], &stale.token, 1, "late", None)
            .await
            .unwrap(),
        Recorded::LeaseLost
    );
    store
        .release(&[(ids[0], stale.token.clone())])
        .await
        .unwrap();
    assert_eq!(
        event(db, ids[0]).await,
        retaken,
        "the second relay's claim is intact"
    );

    // The second relay's outcome is recorded.
    assert_eq!(
        store
            .mark_sent(ids[0], &current.token, Some(2))
            .await
            .unwrap(),
        Recorded::Done
    );
    let sent = event(db, ids[0]).await;
    assert_eq!(
        (sent.status.as_str(), sent.telegram_message_id),
        ("SENT", Some(2))
    );
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

    let claimed = claim(db, 10).await;
    assert_eq!(
        order_ids(&claimed),
        [healthy_order.id.0],
        "the healthy event still goes out"
    );
    for id in &ids {
        let dead = event(db, *id).await;
        assert_eq!(dead.status, "DEAD");
        assert!(dead.last_error.unwrap().contains("unreadable event"));
        assert_eq!(dead.claim_token, None);
    }
}

async fn sent_events_older_than_the_retention_are_pruned_in_batches(db: &TestDatabase) {
    let (_, ids) = orders_with_events(db, 9).await;
    let store = db.store();
    let claimed = claim(db, 10).await;
    // ids[0..7] sent, ids[7] dead, ids[8] pending.
    for &id in &ids[..7] {
        let _ = store
            .mark_sent(id, &token(&claimed, id), Some(id.0))
            .await
            .unwrap();
    }
    let _ = store
        .mark_dead(ids[7], &token(&claimed, ids[7]), 1, "Forbidden", None)
        .await
        .unwrap();
    store
        .release(&[(ids[8], token(&claimed, ids[8]))])
        .await
        .unwrap();
    let retention = std::time::Duration::from_secs(30 * 24 * 3600);
    let now = OffsetDateTime::now_utc();
    // Five sent 31 days ago and more; one 29 days ago; one just now. The dead and the
    // pending events are as old as the oldest.
    let old = &ids[..5];
    let old_ids = old
        .iter()
        .map(|id| id.0.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    set_time(
        db,
        "outbox_events",
        "sent_at",
        now - Duration::days(31),
        &format!("id IN ({old_ids})"),
    )
    .await;
    set_time(
        db,
        "outbox_events",
        "sent_at",
        T0,
        &format!("id = {}", ids[0].0),
    )
    .await;
    set_time(
        db,
        "outbox_events",
        "sent_at",
        now - Duration::days(29),
        &format!("id = {}", ids[5].0),
    )
    .await;
    set_time(db, "outbox_events", "dead_at", T0, "TRUE").await;
    set_time(db, "outbox_events", "created_at", T0, "TRUE").await;

    // Batches of two: three statements for five old events.
    assert_eq!(prune_sent(&store, retention, 2).await.unwrap(), 5);

    let left: Vec<(EventId, String)> = events(db)
        .await
        .into_iter()
        .map(|e| (e.id, e.status))
        .collect();
    assert_eq!(
        left,
        [
            (ids[5], "SENT".to_owned()),
            (ids[6], "SENT".to_owned()),
            (ids[7], "DEAD".to_owned()),
            (ids[8], "PENDING".to_owned()),
        ],
        "recent sent events, dead and pending events stay"
    );
    assert_eq!(count(db, "orders").await, 9, "orders are never pruned");
    assert_eq!(prune_sent(&store, retention, 2).await.unwrap(), 0);
}
