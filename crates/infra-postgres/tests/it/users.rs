//! `UserRepository` contract.

use domain::ports::UserRepository;
use infra_postgres::test_support::TestDatabase;
use time::Duration;

use crate::support::{T0, count, profile};

contract_tests!(
    upsert_creates_the_user_then_updates_names_keeping_the_id,
    upsert_without_changes_keeps_updated_at,
    concurrent_first_upserts_of_one_user_share_one_row,
    upsert_keeps_telegram_ids_beyond_32_bits,
    upsert_stores_the_language_code_and_a_change_of_it_is_a_change,
);

/// The stored `language_code` of the user with this Telegram id.
async fn language_code(db: &TestDatabase, telegram_id: i64) -> Option<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let connection = db.database().connection();
    connection
        .query_one_raw(Statement::from_string(
            connection.get_database_backend(),
            format!("SELECT language_code FROM users WHERE telegram_id = {telegram_id}"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "language_code")
        .unwrap()
}

async fn upsert_stores_the_language_code_and_a_change_of_it_is_a_change(db: &TestDatabase) {
    let store = db.store();
    let mut english = profile(42, Some("ivan"));
    english.language_code = Some("en".to_owned());
    store.upsert(&english, T0).await.unwrap();
    assert_eq!(language_code(db, 42).await.as_deref(), Some("en"));

    let later = T0 + Duration::hours(1);
    let mut russian = english.clone();
    russian.language_code = Some("ru".to_owned());
    let updated = store.upsert(&russian, later).await.unwrap();
    assert_eq!(language_code(db, 42).await.as_deref(), Some("ru"));
    assert_eq!(updated.updated_at, later);
}

async fn upsert_creates_the_user_then_updates_names_keeping_the_id(db: &TestDatabase) {
    let store = db.store();
    let created = store.upsert(&profile(42, Some("ivan")), T0).await.unwrap();
    assert_eq!(created.telegram_id.get(), 42);
    assert_eq!(created.username.as_deref(), Some("ivan"));
    assert_eq!(created.first_name.as_deref(), Some("Иван"));
    assert_eq!(created.last_name, None);
    assert_eq!((created.created_at, created.updated_at), (T0, T0));

    let later = T0 + Duration::hours(1);
    let mut renamed = profile(42, None);
    renamed.last_name = Some("Петров".to_owned());
    let updated = store.upsert(&renamed, later).await.unwrap();

    assert_eq!(updated.id, created.id);
    assert_eq!(updated.username, None);
    assert_eq!(updated.last_name.as_deref(), Some("Петров"));
    assert_eq!(updated.created_at, T0);
    assert_eq!(updated.updated_at, later);
    assert_eq!(count(db, "users").await, 1);
}

async fn upsert_without_changes_keeps_updated_at(db: &TestDatabase) {
    let store = db.store();
    let created = store.upsert(&profile(7, Some("anna")), T0).await.unwrap();
    let again = store
        .upsert(&profile(7, Some("anna")), T0 + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(again, created);
}

async fn concurrent_first_upserts_of_one_user_share_one_row(db: &TestDatabase) {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = db.store();
            tokio::spawn(async move { store.upsert(&profile(777, Some("racer")), T0).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap().id);
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "ids differ: {ids:?}");
    assert_eq!(count(db, "users").await, 1);
}

async fn upsert_keeps_telegram_ids_beyond_32_bits(db: &TestDatabase) {
    let user = db
        .store()
        .upsert(&profile(7_000_000_000, None), T0)
        .await
        .unwrap();
    assert_eq!(user.telegram_id.get(), 7_000_000_000);
}
