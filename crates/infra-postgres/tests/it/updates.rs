//! `UpdateLog`: each Telegram update is first seen once, across concurrent requests.

use domain::ports::UpdateLog;
use infra_postgres::test_support::TestDatabase;
use time::{Duration, OffsetDateTime};

use crate::support::count;

contract_tests!(
    an_update_is_first_seen_once,
    concurrent_deliveries_of_one_update_see_it_first_once,
    old_updates_are_forgotten,
);

async fn an_update_is_first_seen_once(db: &TestDatabase) {
    let store = db.store();
    let now = OffsetDateTime::now_utc();
    assert!(store.first_seen(1001, now).await.unwrap());
    assert!(!store.first_seen(1001, now).await.unwrap());
    assert!(store.first_seen(1002, now).await.unwrap());
    assert_eq!(count(db, "telegram_updates").await, 2);
}

async fn concurrent_deliveries_of_one_update_see_it_first_once(db: &TestDatabase) {
    let store = db.store();
    let now = OffsetDateTime::now_utc();
    let deliveries = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.first_seen(77, now).await.unwrap() })
    });
    let mut firsts = 0;
    for delivery in deliveries {
        if delivery.await.unwrap() {
            firsts += 1;
        }
    }
    assert_eq!(firsts, 1);
}

async fn old_updates_are_forgotten(db: &TestDatabase) {
    let store = db.store();
    let now = OffsetDateTime::now_utc();
    store.first_seen(1, now - Duration::days(10)).await.unwrap();
    store.first_seen(2, now - Duration::hours(1)).await.unwrap();
    let forgotten = store
        .forget_older_than(std::time::Duration::from_secs(7 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!(forgotten, 1);
    assert_eq!(count(db, "telegram_updates").await, 1);
    assert!(!store.first_seen(2, now).await.unwrap());
}
