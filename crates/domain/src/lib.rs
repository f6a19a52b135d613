//! BotShop's pure core.
//!
//! It holds the shop's rules: entities and value types with their invariants, order
//! validation and pricing, Telegram `initData` verification, the use-case services, and
//! the ports (repository and notifier traits) that adapters implement.
//!
//! Architecture invariant: this crate performs no I/O and depends on no I/O crate — no
//! sea-orm, actix, reqwest or tokio networking. It uses tokio's timers and sync
//! primitives only (the notification relay waits and is woken). Time comes in as a
//! parameter or through the [`clock::Clock`] trait.

pub mod admin;
pub mod auth;
pub mod bot;
pub mod catalog;
pub mod catalog_admin;
pub mod catalog_io;
pub mod clock;
pub mod entities;
pub mod error;
pub mod idempotency;
pub mod lifecycle;
pub mod media;
pub mod money;
pub mod order;
pub mod outbox;
pub mod pagination;
pub mod payments;
pub mod ports;
pub mod services;
pub mod settings;
pub mod stats;
pub mod values;

pub use entities::{Category, MAX_CATEGORY_LEVELS, Order, OrderItem, OrderStatus, Product, User};
pub use error::{FieldError, RepositoryError};
pub use money::Money;
pub use pagination::{Page, Paginated};
pub use values::{CategoryId, OrderId, ProductId, Quantity, TelegramId, UserId};
