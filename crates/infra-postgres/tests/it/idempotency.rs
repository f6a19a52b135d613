//! `IdempotencyStore` contract, and the key's attachment to its order in `place`.

use std::sync::Arc;

use domain::idempotency::{
    IN_PROGRESS_LEASE, IdempotencyKey, KEY_TTL, KeyClaim, RequestFingerprint, StoredResponse,
};
use domain::order::{NewOrder, PlaceOrderError};
use domain::ports::{IdempotencyStore, OrderRepository};
use domain::{Order, ProductId, User};
use infra_postgres::test_support::TestDatabase;
use time::{Duration, OffsetDateTime};
use tokio::sync::Barrier;

use crate::support::{T0, count, new_order, new_user, one_product, stock, wide_pool};

contract_tests!(
    a_new_key_is_claimed_and_then_in_progress,
    a_completed_key_replays_its_response,
    a_different_request_with_the_key_is_a_mismatch,
    keys_are_scoped_to_their_user,
    a_key_whose_order_was_placed_answers_with_the_order,
    a_failed_placement_leaves_its_key_without_an_order,
    release_forgets_only_keys_without_an_order,
    a_placement_cannot_take_a_key_that_already_placed_an_order,
    an_abandoned_claim_is_taken_over_after_the_lease,
    an_expired_key_is_new_again,
    purge_deletes_only_expired_keys,
    concurrent_claims_of_one_key_have_exactly_one_winner,
);

fn key(value: &str) -> IdempotencyKey {
    IdempotencyKey::parse(value).unwrap()
}

fn fingerprint(body: &str) -> RequestFingerprint {
    RequestFingerprint::of(body.as_bytes())
}

const KEY: &str = "3f1c0e3e-9d7a-4b4e-9a53-0c1f6a0e6b11";
const BODY: &str = r#"{"items":[{"product_id":1,"quantity":1}]}"#;

fn response(order: i64) -> StoredResponse {
    StoredResponse {
        status: 201,
        body: format!(r#"{{"id":{order},"status":"PENDING","note":"Домофон"}}"#).into_bytes(),
    }
}

async fn claim(db: &TestDatabase, user: &User, body: &str, now: OffsetDateTime) -> KeyClaim {
    db.store()
        .claim(user.id, &key(KEY), fingerprint(body), now)
        .await
        .unwrap()
}

fn keyed_order(user: &User, product: ProductId, quantity: i64) -> NewOrder {
    NewOrder {
        idempotency_key: Some(key(KEY)),
        ..new_order(user, &[(product, quantity)], T0)
    }
}

/// The order the key points at, if any.
async fn order_of_key(db: &TestDatabase) -> Option<i64> {
    let stored = db
        .query_i64("SELECT COALESCE(order_id, -1) FROM idempotency_keys")
        .await
        .unwrap();
    (stored >= 0).then_some(stored)
}

async fn a_new_key_is_claimed_and_then_in_progress(db: &TestDatabase) {
    let user = new_user(db, 1).await;
    assert_eq!(claim(db, &user, BODY, T0).await, KeyClaim::Claimed);
    // The same request again while the first still runs.
    assert_eq!(
        claim(db, &user, BODY, T0 + Duration::seconds(1)).await,
        KeyClaim::InProgress
    );
    assert_eq!(count(db, "idempotency_keys").await, 1);
}

async fn a_completed_key_replays_its_response(db: &TestDatabase) {
    let user = new_user(db, 1).await;
    let store = db.store();
    assert_eq!(claim(db, &user, BODY, T0).await, KeyClaim::Claimed);
    store
        .complete(user.id, &key(KEY), response(7))
        .await
        .unwrap();

    // The exact bytes, however late within the day, and again and again.
    for later in [Duration::seconds(1), Duration::hours(23)] {
        assert_eq!(
            claim(db, &user, BODY, T0 + later).await,
            KeyClaim::Replay(response(7))
        );
    }
}

async fn a_different_request_with_the_key_is_a_mismatch(db: &TestDatabase) {
    let user = new_user(db, 1).await;
    let product = one_product(db).await;
    let other = r#"{"items":[{"product_id":1,"quantity":2}]}"#;
    assert_eq!(claim(db, &user, BODY, T0).await, KeyClaim::Claimed);
    // In progress...
    assert_eq!(claim(db, &user, other, T0).await, KeyClaim::Mismatch);
    // ...even long past the lease, which only the same request may take over...
    assert_eq!(
        claim(db, &user, other, T0 + Duration::hours(1)).await,
        KeyClaim::Mismatch
    );
    // ...placed...
    db.store()
        .place(keyed_order(&user, product, 1))
        .await
        .unwrap();
    assert_eq!(claim(db, &user, other, T0).await, KeyClaim::Mismatch);
    // ...and completed.
    db.store()
        .complete(user.id, &key(KEY), response(1))
        .await
        .unwrap();
    assert_eq!(claim(db, &user, other, T0).await, KeyClaim::Mismatch);
}

async fn keys_are_scoped_to_their_user(db: &TestDatabase) {
    let (alice, bob) = (new_user(db, 1).await, new_user(db, 2).await);
    assert_eq!(claim(db, &alice, BODY, T0).await, KeyClaim::Claimed);
    assert_eq!(claim(db, &bob, BODY, T0).await, KeyClaim::Claimed);
    db.store()
        .complete(alice.id, &key(KEY), response(1))
        .await
        .unwrap();
    assert_eq!(claim(db, &bob, BODY, T0).await, KeyClaim::InProgress);
}

async fn a_key_whose_order_was_placed_answers_with_the_order(db: &TestDatabase) {
    let user = new_user(db, 1).await;
    let product = one_product(db).await;
    assert_eq!(claim(db, &user, BODY, T0).await, KeyClaim::Claimed);
    let order = db
        .store()
        .place(keyed_order(&user, product, 1))
        .await
        .unwrap();
    assert_eq!(order_of_key(db).await, Some(order.id.0));

    // The response was never stored (the process died): the order itself answers, even
    // past the lease, and no second order can be placed.
    for later in [Duration::ZERO, Duration::hours(2)] {
        assert_eq!(
            claim(db, &user, BODY, T0 + later).await,
            KeyClaim::OrderPlaced(order.id)
        );
    }
    db.store()
        .complete(user.id, &key(KEY), response(order.id.0))
        .await
        .unwrap();
    assert_eq!(
        claim(db, &user, BODY, T0).await,
        KeyClaim::Replay(response(order.id.0))
    );
}

async fn a_failed_placement_leaves_its_key_without_an_order(db: &TestDatabase) {
    let user = new_user(db, 1).await;
    let product = one_product(db).await;
    db.execute("UPDATE products SET stock = 1").await.unwrap();
    assert_eq!(claim(db, &user, BODY, T0).await, KeyClaim::Claimed);

    let result = db.store().place(keyed_order(&user, product, 2)).await;
    assert!(
        matches!(result, Err(PlaceOrderError::InsufficientStock(_))),
        "expected InsufficientStock, got {result:?}"
    );
    // The key's update rolled back with the order.
    assert_eq!(count(db, "orders").await, 0);
    assert_eq!(order_of_key(db).await, None);

    // Released, the key serves a corrected retry.
    db.store().release(user.id, &key(KEY)).await.unwrap();
    assert_eq!(count(db, "idempotency_keys").await, 0);
    assert_eq!(claim(db, &user, BODY, T0).await, KeyClaim::Claimed);
    let order = db
        .store()
        .place(keyed_order(&user, product, 1))
        .await
        .unwrap();
    assert_eq!(order_of_key(db).await, Some(order.id.0));
}

async fn release_forgets_only_keys_without_an_order(db: &TestDatabase) {
    let user = new_user(db, 1).await;
    let product = one_product(db).await;
    assert_eq!(claim(db, &user, BODY, T0).await, KeyClaim::Claimed);
    let order: Order = db
        .store()
        .place(keyed_order(&user, product, 1))
        .await
        .unwrap();

    db.store().release(user.id, &key(KEY)).await.unwrap();
    assert_eq!(count(db, "idempotency_keys").await, 1);
    assert_eq!(
        claim(db, &user, BODY, T0).await,
        KeyClaim::OrderPlaced(order.id)
    );
    // Releasing a key that does not exist is no error.
    db.store()
        .release(user.id, &key("never-used"))
        .await
        .unwrap();
}

/// Two requests hold the key at once when the first outlived its lease and a retry took
/// it over. The first to place its order wins; the other's placement is refused and
/// rolled back, so the key still places one order.
async fn a_placement_cannot_take_a_key_that_already_placed_an_order(db: &TestDatabase) {
    let user = new_user(db, 1).await;
    let product = one_product(db).await;
    db.execute("UPDATE products SET stock = 10").await.unwrap();
    assert_eq!(claim(db, &user, BODY, T0).await, KeyClaim::Claimed);
    let first = db
        .store()
        .place(keyed_order(&user, product, 1))
        .await
        .unwrap();

    let second = db.store().place(keyed_order(&user, product, 1)).await;
    assert!(
        matches!(second, Err(PlaceOrderError::IdempotencyKeyInUse)),
        "expected IdempotencyKeyInUse, got {second:?}"
    );
    assert_eq!(count(db, "orders").await, 1);
    assert_eq!(stock(db, product).await, Some(9));
    assert_eq!(order_of_key(db).await, Some(first.id.0));
}

async fn an_abandoned_claim_is_taken_over_after_the_lease(db: &TestDatabase) {
    let user = new_user(db, 1).await;
    assert_eq!(claim(db, &user, BODY, T0).await, KeyClaim::Claimed);
    assert_eq!(
        claim(db, &user, BODY, T0 + IN_PROGRESS_LEASE).await,
        KeyClaim::InProgress,
        "a claim exactly as old as the lease still holds"
    );
    let taken_at = T0 + IN_PROGRESS_LEASE + Duration::seconds(1);
    assert_eq!(claim(db, &user, BODY, taken_at).await, KeyClaim::Claimed);
    // The taker's claim is fresh: the next retry waits for it.
    assert_eq!(
        claim(db, &user, BODY, taken_at + Duration::seconds(1)).await,
        KeyClaim::InProgress
    );
    assert_eq!(
        claim(
            db,
            &user,
            BODY,
            taken_at + IN_PROGRESS_LEASE + Duration::seconds(1)
        )
        .await,
        KeyClaim::Claimed
    );
}

async fn an_expired_key_is_new_again(db: &TestDatabase) {
    let user = new_user(db, 1).await;
    let product = one_product(db).await;
    assert_eq!(claim(db, &user, BODY, T0).await, KeyClaim::Claimed);
    let order = db
        .store()
        .place(keyed_order(&user, product, 1))
        .await
        .unwrap();
    db.store()
        .complete(user.id, &key(KEY), response(order.id.0))
        .await
        .unwrap();
    assert_eq!(
        claim(db, &user, BODY, T0 + KEY_TTL).await,
        KeyClaim::Replay(response(order.id.0)),
        "a key exactly as old as its time to live is still remembered"
    );

    // A day later, the key is new again, even for a different request.
    let later = T0 + KEY_TTL + Duration::seconds(1);
    let other = r#"{"items":[{"product_id":1,"quantity":5}]}"#;
    assert_eq!(claim(db, &user, other, later).await, KeyClaim::Claimed);
    assert_eq!(order_of_key(db).await, None);
    assert_eq!(
        claim(db, &user, other, later + Duration::seconds(1)).await,
        KeyClaim::InProgress
    );
    assert_eq!(claim(db, &user, BODY, later).await, KeyClaim::Mismatch);
    // The old order is untouched.
    assert_eq!(count(db, "orders").await, 1);
}

async fn purge_deletes_only_expired_keys(db: &TestDatabase) {
    let user = new_user(db, 1).await;
    let store = db.store();
    let (old, young) = (key("old"), key("young"));
    store
        .claim(user.id, &old, fingerprint(BODY), T0)
        .await
        .unwrap();
    store
        .claim(user.id, &young, fingerprint(BODY), T0 + Duration::hours(2))
        .await
        .unwrap();
    store.complete(user.id, &young, response(2)).await.unwrap();

    assert_eq!(store.purge_expired(T0 + KEY_TTL).await.unwrap(), 0);
    let now = T0 + KEY_TTL + Duration::hours(1);
    assert_eq!(store.purge_expired(now).await.unwrap(), 1);
    assert_eq!(count(db, "idempotency_keys").await, 1);
    assert_eq!(
        store
            .claim(user.id, &young, fingerprint(BODY), now)
            .await
            .unwrap(),
        KeyClaim::Replay(response(2))
    );
    assert_eq!(store.purge_expired(now).await.unwrap(), 0);
}

async fn concurrent_claims_of_one_key_have_exactly_one_winner(db: &TestDatabase) {
    const CLAIMS: usize = 20;
    let user = new_user(db, 1).await;
    let pool = wide_pool(db, CLAIMS as u32).await;
    let store = pool.store();
    let start = Arc::new(Barrier::new(CLAIMS));
    let tasks: Vec<_> = (0..CLAIMS)
        .map(|_| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store
                    .claim(user.id, &key(KEY), fingerprint(BODY), T0)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut claimed = 0;
    for task in tasks {
        match task.await.unwrap() {
            KeyClaim::Claimed => claimed += 1,
            KeyClaim::InProgress => {}
            other => panic!("expected Claimed or InProgress, got {other:?}"),
        }
    }
    assert_eq!(claimed, 1);
    assert_eq!(count(db, "idempotency_keys").await, 1);
    pool.close().await.unwrap();
}
