//! BotShop's storage adapter: the domain's repository ports over SQL, with SeaORM.
//!
//! [`Database`] opens the pool (PostgreSQL in production, SQLite for a single-file
//! deployment or a quick start); [`SqlStore`] implements
//! [`domain::ports::UserRepository`], [`domain::ports::CatalogRepository`],
//! [`domain::ports::OrderRepository`], the transactional outbox [`domain::ports::Outbox`]
//! and [`domain::ports::IdempotencyStore`] over it. The schema lives in the
//! `migration` crate, which the server runs against [`Database::connection`].
//!
//! Architecture invariants:
//! - This crate depends on `domain` only, never on another adapter or on the server.
//! - SeaORM stays inside: the entities are private, every `DbErr` becomes a
//!   [`domain::RepositoryError`] at the seam, and the only SeaORM type in a public
//!   signature is the connection handed to the migrator.
//! - Pricing is the domain's: [`domain::order::price_order`] decides totals and which
//!   products may be ordered; SQL only stores what it decided.
//! - Stock never oversells: on PostgreSQL the placement statement locks its products in id
//!   order and takes stock only if each locked row still holds the units (and the priced
//!   revision); on SQLite the IMMEDIATE transaction is the only writer, and a conditional
//!   update (`stock >= n`) takes it. A CHECK constraint stands behind both.
//! - Catalog search matches the application's normalised `search_text`
//!   ([`domain::catalog::product_search_text`], written with every product), never SQL's
//!   case folding, which on SQLite covers ASCII only.
//! - Money is kept as integer kopecks and converted with [`domain::Money::from_minor`] and
//!   [`domain::Money::minor_units`], so both backends stay exact.
//! - Timestamps are stored in UTC, to the microsecond, and bound as parameters in the same
//!   spelling, so that SQLite (which keeps them as text) compares and sorts them in time
//!   order.
//! - An order and its outbox event are written in one transaction; several relays can
//!   share the outbox, because claiming events is a single locking statement.

mod catalog;
mod catalog_admin;
mod catalog_import;
mod database;
mod entities;
mod error;
mod idempotency;
mod notify;
mod orders;
mod outbox;
mod payments;
mod pg;
mod price_hints;
mod roles;
mod seed;
mod settings;
mod stats;
mod store;
#[cfg(feature = "test-support")]
pub mod test_support;
mod transaction;
mod updates;
mod users;

pub use database::{BackupError, Database, PoolOptions, search_connections};
pub use notify::{CATALOG_CHANNEL, follow_catalog_changes};
/// The query behind a customer's orders page on PostgreSQL, for the tests of its plan.
#[cfg(feature = "test-support")]
#[doc(hidden)]
pub use orders::PAGE_WITH_LINES_POSTGRES;
pub use orders::PlacementCounts;
/// The outbox counts query, for the test of its plan.
#[cfg(feature = "test-support")]
#[doc(hidden)]
pub use outbox::OUTBOX_COUNTS_SQL;
/// Writes an outbox event inside the caller's transaction (for status changes and any
/// other change that must notify someone).
pub use outbox::append_outbox_event;
pub use seed::{SeedCategory, SeedOutcome, SeedProduct};
pub use settings::{DatabaseSettings, DatabaseTarget};
pub use store::SqlStore;
