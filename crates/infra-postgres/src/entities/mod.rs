//! SeaORM entities: the tables as this adapter reads them.
//!
//! They are private to the crate. Nothing outside `infra-postgres` ever sees a row type;
//! the repositories convert rows into domain entities at the seam.

pub(crate) mod audit_log;
pub(crate) mod categories;
pub(crate) mod idempotency_keys;
pub(crate) mod order_items;
pub(crate) mod order_status_history;
pub(crate) mod orders;
pub(crate) mod outbox_events;
pub(crate) mod payments;
pub(crate) mod products;
pub(crate) mod users;
