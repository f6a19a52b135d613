//! `StatsRepository`: per-day, per-status and best-seller sums over a period, on both
//! databases.

use domain::lifecycle::{ChangedBy, StatusChange};
use domain::ports::{OrderLifecycle, StatsRepository};
use domain::stats::Period;
use domain::{Money, OrderStatus};
use infra_postgres::test_support::TestDatabase;
use time::macros::{date, datetime};

use crate::support::{new_user, place_order, product_id, seed, stocked_category};

contract_tests!(the_database_sums_a_period_by_day_status_and_product);

async fn the_database_sums_a_period_by_day_status_and_product(db: &TestDatabase) {
    seed(
        db,
        &[stocked_category(
            "pizza",
            &[("Маргарита", "500", None), ("Пепперони", "700", None)],
        )],
    )
    .await;
    let (margherita, pepperoni) = (
        product_id(db, "Маргарита").await,
        product_id(db, "Пепперони").await,
    );
    let user = new_user(db, 1001).await;
    // Dec 1 (late evening UTC), Dec 2 twice (one cancelled), and Dec 5 (outside).
    place_order(db, &user, margherita, 2, datetime!(2025-12-01 23:59:59 UTC)).await;
    place_order(db, &user, pepperoni, 1, datetime!(2025-12-02 00:00:00 UTC)).await;
    let cancelled = place_order(db, &user, pepperoni, 5, datetime!(2025-12-02 12:00:00 UTC)).await;
    place_order(db, &user, margherita, 9, datetime!(2025-12-05 10:00:00 UTC)).await;
    let store = db.store();
    store
        .apply_status_change(StatusChange {
            order_id: cancelled.id,
            from: OrderStatus::Pending,
            to: OrderStatus::Cancelled,
            by: ChangedBy::Customer,
            at: datetime!(2025-12-02 13:00:00 UTC),
            note: None,
            admin: None,
        })
        .await
        .unwrap();

    let period = Period::parse(
        Some("2025-12-01"),
        Some("2025-12-03"),
        date!(2025 - 12 - 22),
    )
    .unwrap();
    let mut sums = store.sums(period).await.unwrap();
    sums.days.sort_by_key(|day| day.day);
    let days: Vec<_> = sums
        .days
        .iter()
        .map(|day| (day.day, day.orders, day.revenue))
        .collect();
    let rub = |roubles: i64| Money::from_minor(roubles * 100).unwrap();
    assert_eq!(
        days,
        [
            (date!(2025 - 12 - 01), 1, rub(1000)),
            // The cancelled order counts as an order, not as revenue.
            (date!(2025 - 12 - 02), 2, rub(700)),
        ]
    );
    sums.by_status.sort_by_key(|(status, _)| status.as_str());
    assert_eq!(
        sums.by_status,
        [(OrderStatus::Cancelled, 1), (OrderStatus::Pending, 2)]
    );
    let top: Vec<_> = sums
        .top_products
        .iter()
        .map(|p| (p.product_id, p.name.as_str(), p.quantity, p.revenue))
        .collect();
    assert_eq!(
        top,
        [
            (margherita, "Маргарита", 2, rub(1000)),
            (pepperoni, "Пепперони", 1, rub(700)),
        ]
    );

    let empty = Period::parse(
        Some("2024-01-01"),
        Some("2024-01-31"),
        date!(2025 - 12 - 22),
    )
    .unwrap();
    assert_eq!(
        store.sums(empty).await.unwrap(),
        domain::stats::Sums::default()
    );
}
