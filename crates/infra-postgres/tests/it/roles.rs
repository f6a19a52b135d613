//! `ExclusiveRoles`: one holder at a time on PostgreSQL (an advisory lock that goes with
//! its connection); SQLite's single instance always holds.

use domain::ports::ExclusiveRoles;
use infra_postgres::test_support::TestDatabase;

contract_tests!(a_role_has_one_holder_until_it_is_released);

const ROLE: &str = "telegram-poller";

async fn a_role_has_one_holder_until_it_is_released(db: &TestDatabase) {
    // Two instances, as far as the database can tell: each lease holds a connection of
    // its own.
    let (first, second) = (db.store(), db.store());
    let mut held = first
        .try_take(ROLE)
        .await
        .unwrap()
        .expect("the role is free");
    assert!(held.still_held().await);
    if db.is_sqlite() {
        // One instance: nothing to exclude.
        assert!(second.try_take(ROLE).await.unwrap().is_some());
        held.release().await;
        return;
    }
    assert!(second.try_take(ROLE).await.unwrap().is_none());
    // Another role is another lock.
    let other = second.try_take("payment-expiry").await.unwrap();
    assert!(other.is_some());
    other.unwrap().release().await;

    held.release().await;
    let mut taken_over = second
        .try_take(ROLE)
        .await
        .unwrap()
        .expect("released, the role is free");
    assert!(first.try_take(ROLE).await.unwrap().is_none());

    // The holder's connection dies (a database restart, a network cut): PostgreSQL frees
    // the lock, the holder learns it has lost the role, and another instance takes it.
    // Only this test's database: other tests hold advisory locks of their own.
    let ours = "locktype = 'advisory' AND granted AND database = \
                (SELECT oid FROM pg_database WHERE datname = current_database())";
    let killed = db
        .query_i64(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks \
             WHERE {ours} AND pid <> pg_backend_pid()"
        ))
        .await
        .unwrap();
    assert_eq!(killed, 1);
    assert!(!taken_over.still_held().await);
    // pg_terminate_backend only signals: wait until the backend is gone with its lock.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while db
        .query_i64(&format!("SELECT count(*) FROM pg_locks WHERE {ours}"))
        .await
        .unwrap()
        > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the killed holder kept its lock"
        );
        // A poll interval, not a timing assumption: the loop ends on the condition.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let again = first
        .try_take(ROLE)
        .await
        .unwrap()
        .expect("the dead holder's role is free");
    taken_over.release().await;
    again.release().await;
}
