//! BotShop's database schema as sea-orm-migration steps.
//!
//! The server runs [`Migrator`] at startup (`Migrator::up(connection, None)`); the
//! storage adapter's tests build their template database with it.
//!
//! Every step is written with the portable schema builder and runs on PostgreSQL and on
//! SQLite, and every step's `down` drops exactly what its `up` created, so that
//! `up → down → up` is always possible.
//!
//! Conventions the adapter relies on:
//! - Money is stored as integer minor units (kopecks) in `bigint` columns named `*_minor`,
//!   never as `numeric`: SeaORM reads a SQLite `Decimal` through `f64`, which would make
//!   prices inexact. The adapter converts with `domain::Money::from_minor` and
//!   `Money::minor_units`.
//! - Timestamps are `timestamptz` (text on SQLite) and always written in UTC.
//! - Constraints that the database can check cheaply (`CHECK`, foreign keys, `UNIQUE`)
//!   are declared in `CREATE TABLE`, because SQLite cannot add them later (except on a
//!   column being added, which SQLite accepts in `ALTER TABLE ... ADD COLUMN`).
//! - Text the catalog is searched by is normalised by the application (see
//!   [`product_search_text`]), never by SQL: SQLite's `lower()` and `LIKE` fold only
//!   ASCII.
//!
//! Architecture invariant: this crate depends on sea-orm-migration only, never on the
//! domain or on an adapter.

pub use m20250101_000012_category_tree::MAX_CATEGORY_LEVELS;
pub use sea_orm_migration::migrator::MigrationStatus;
pub use sea_orm_migration::prelude::*;

mod m20250101_000001_create_users;
mod m20250101_000002_create_catalog;
mod m20250101_000003_create_orders;
mod m20250101_000004_create_outbox_events;
mod m20250101_000005_add_product_stock_and_search_text;
mod m20250101_000006_create_idempotency_keys;
mod m20250101_000007_relay_at_scale;
mod m20250101_000008_products_revision;
mod m20250101_000009_outbox_claim_tokens_and_retention;
mod m20250101_000010_outbox_dead_index;
mod m20250101_000011_product_images;
mod m20250101_000012_category_tree;
mod m20250101_000013_products_search_trigram;
mod m20250101_000014_outbox_any_chat;
mod m20250101_000015_order_status_history;
mod m20250101_000016_telegram_updates;
mod m20250101_000017_products_search_words;
mod m20250101_000018_outbox_manager_notice;
mod m20250101_000019_admin_audit_log;
mod m20250101_000020_product_sku;
mod m20250101_000021_order_status_counts;
mod m20250101_000022_payments;
mod m20250101_000023_outbox_pending_chat;

/// Applies BotShop's schema steps in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20250101_000001_create_users::Migration),
            Box::new(m20250101_000002_create_catalog::Migration),
            Box::new(m20250101_000003_create_orders::Migration),
            Box::new(m20250101_000004_create_outbox_events::Migration),
            Box::new(m20250101_000005_add_product_stock_and_search_text::Migration),
            Box::new(m20250101_000006_create_idempotency_keys::Migration),
            Box::new(m20250101_000007_relay_at_scale::Migration),
            Box::new(m20250101_000008_products_revision::Migration),
            Box::new(m20250101_000009_outbox_claim_tokens_and_retention::Migration),
            Box::new(m20250101_000010_outbox_dead_index::Migration),
            Box::new(m20250101_000011_product_images::Migration),
            Box::new(m20250101_000012_category_tree::Migration),
            Box::new(m20250101_000013_products_search_trigram::Migration),
            Box::new(m20250101_000014_outbox_any_chat::Migration),
            Box::new(m20250101_000015_order_status_history::Migration),
            Box::new(m20250101_000016_telegram_updates::Migration),
            Box::new(m20250101_000017_products_search_words::Migration),
            Box::new(m20250101_000018_outbox_manager_notice::Migration),
            Box::new(m20250101_000019_admin_audit_log::Migration),
            Box::new(m20250101_000020_product_sku::Migration),
            Box::new(m20250101_000021_order_status_counts::Migration),
            Box::new(m20250101_000022_payments::Migration),
            Box::new(m20250101_000023_outbox_pending_chat::Migration),
        ]
    }
}

/// The order statuses the `orders.status` CHECK constraint accepts, spelled as the domain
/// spells them (`domain::OrderStatus::as_str`). Kept here rather than imported so that a
/// migration never changes because the domain did.
pub const ORDER_STATUSES: [&str; 6] = [
    "PENDING",
    "CONFIRMED",
    "PROCESSING",
    "SHIPPED",
    "DELIVERED",
    "CANCELLED",
];

/// A product's search text as `domain::catalog::product_search_text` computes it (Unicode
/// lower case, `ё` folded into `е`, runs of white space collapsed), for filling in the
/// products that existed before the column did.
///
/// A copy rather than an import, like [`ORDER_STATUSES`], because this crate never
/// depends on the domain. It MUST give the same text as the domain's function, or old
/// products would not be found as new ones are; the storage adapter's tests compare the
/// two.
pub fn product_search_text(name: &str, description: Option<&str>) -> String {
    let text = match description {
        Some(description) => format!("{name} {description}"),
        None => name.to_owned(),
    };
    let lowered = text.to_lowercase().replace('ё', "е");
    lowered.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_names_are_unique_and_in_time_order() {
        let names: Vec<String> = Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn search_text_folds_case_yo_and_white_space() {
        assert_eq!(
            product_search_text("Пицца  МАРГАРИТА", Some("Ёлочный\tсоус ")),
            "пицца маргарита елочный соус"
        );
        assert_eq!(product_search_text("Квас", None), "квас");
    }
}
