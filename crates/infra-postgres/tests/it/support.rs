//! Fixtures shared by the contract tests.

use std::str::FromStr;
use std::time::Duration;

use domain::auth::TelegramUser;
use domain::order::{NewOrder, OrderDraft, OrderInput, OrderLineInput};
use domain::ports::{OrderRepository, UserRepository};
use domain::{Money, Order, Page, ProductId, TelegramId, User};
use infra_postgres::test_support::TestDatabase;
use infra_postgres::{Database, PoolOptions, SeedCategory, SeedProduct};
use rust_decimal::Decimal;
use time::OffsetDateTime;
use time::macros::datetime;

pub const T0: OffsetDateTime = datetime!(2025-01-01 10:00:00 UTC);

pub fn rub(amount: &str) -> Money {
    Money::parse(Decimal::from_str(amount).unwrap()).unwrap()
}

pub fn page(limit: i64, offset: i64) -> Page {
    Page::parse(Some(limit), Some(offset)).unwrap()
}

pub fn profile(telegram_id: i64, username: Option<&str>) -> TelegramUser {
    TelegramUser {
        id: TelegramId::parse(telegram_id).unwrap(),
        username: username.map(str::to_owned),
        first_name: Some("Иван".to_owned()),
        last_name: None,
        language_code: None,
    }
}

pub async fn new_user(db: &TestDatabase, telegram_id: i64) -> User {
    db.store()
        .upsert(&profile(telegram_id, None), T0)
        .await
        .unwrap()
}

/// A category whose products are `(name, price, sort_order)`.
pub fn category(slug: &str, sort_order: i32, products: &[(&str, &str, i32)]) -> SeedCategory {
    SeedCategory {
        name: format!("Категория {slug}"),
        slug: slug.to_owned(),
        sort_order,
        parent_slug: None,
        products: products
            .iter()
            .map(|&(name, price, sort_order)| SeedProduct {
                name: name.to_owned(),
                description: Some(format!("Описание: {name}")),
                price: rub(price),
                images: vec![],
                sort_order,
                stock: None,
            })
            .collect(),
    }
}

/// A category whose products are `(name, price, stock)`, in sort order, with no
/// description; `None` stock is unlimited.
pub fn stocked_category(slug: &str, products: &[(&str, &str, Option<u32>)]) -> SeedCategory {
    SeedCategory {
        name: format!("Категория {slug}"),
        slug: slug.to_owned(),
        sort_order: 0,
        parent_slug: None,
        products: products
            .iter()
            .zip(0..)
            .map(|(&(name, price, stock), sort_order)| SeedProduct {
                name: name.to_owned(),
                description: None,
                price: rub(price),
                images: vec![],
                sort_order,
                stock,
            })
            .collect(),
    }
}

pub async fn seed(db: &TestDatabase, categories: &[SeedCategory]) {
    db.store().seed_catalog(categories).await.unwrap();
}

pub async fn product_id(db: &TestDatabase, name: &str) -> ProductId {
    ProductId(
        db.query_i64(&format!("SELECT id FROM products WHERE name = '{name}'"))
            .await
            .unwrap(),
    )
}

pub async fn deactivate(db: &TestDatabase, product: ProductId) {
    let sql = format!(
        "UPDATE products SET is_active = false WHERE id = {}",
        product.0
    );
    assert_eq!(db.execute(&sql).await.unwrap(), 1);
}

/// A product's stock as stored; `None` is unlimited.
pub async fn stock(db: &TestDatabase, product: ProductId) -> Option<i64> {
    let stored = db
        .query_i64(&format!(
            "SELECT CAST(COALESCE(stock, -1) AS BIGINT) FROM products WHERE id = {}",
            product.0
        ))
        .await
        .unwrap();
    (stored >= 0).then_some(stored)
}

pub async fn count(db: &TestDatabase, table: &str) -> i64 {
    db.query_i64(&format!("SELECT COUNT(*) FROM {table}"))
        .await
        .unwrap()
}

pub fn draft(lines: &[(ProductId, i64)]) -> OrderDraft {
    OrderDraft::parse(OrderInput {
        items: lines
            .iter()
            .map(|&(product, quantity)| OrderLineInput {
                product_id: product.0,
                quantity,
            })
            .collect(),
        delivery_address: "ул. Пушкина, д. 10".to_owned(),
        phone: "+79001234567".to_owned(),
        comment: Some("Домофон не работает".to_owned()),
    })
    .unwrap()
}

/// A catalog of one product, "Маргарита" at 450.00; returns its id.
pub async fn one_product(db: &TestDatabase) -> ProductId {
    seed(db, &[category("pizza", 0, &[("Маргарита", "450", 0)])]).await;
    product_id(db, "Маргарита").await
}

/// An order of `lines` for `user` at `placed_at`, without an idempotency key.
pub fn new_order(user: &User, lines: &[(ProductId, i64)], placed_at: OffsetDateTime) -> NewOrder {
    NewOrder {
        payment_terms: Default::default(),
        user_id: user.id,
        draft: draft(lines),
        placed_at,
        idempotency_key: None,
    }
}

/// Places an order of `quantity` × `product` for `user` at `placed_at`.
pub async fn place_order(
    db: &TestDatabase,
    user: &User,
    product: ProductId,
    quantity: i64,
    placed_at: OffsetDateTime,
) -> Order {
    db.store()
        .place(NewOrder {
            payment_terms: Default::default(),
            user_id: user.id,
            draft: draft(&[(product, quantity)]),
            placed_at,
            idempotency_key: None,
        })
        .await
        .unwrap()
}

/// A pool of its own to the test database, larger than the test database's, so that many
/// transactions really run at once.
pub async fn wide_pool(db: &TestDatabase, connections: u32) -> Database {
    Database::connect(
        db.url(),
        PoolOptions {
            max_connections: connections,
            acquire_timeout: Duration::from_secs(60),
            sqlite_busy_timeout: Duration::from_secs(60),
            ..PoolOptions::default()
        },
    )
    .await
    .unwrap()
}
