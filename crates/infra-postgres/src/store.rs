//! The repositories' shared state and the conversions between rows and domain types.

use std::sync::Arc;

use domain::catalog_admin::CatalogChange;
use domain::payments::{AmountDue, Currency, OrderPayment, PaymentStatus};
use domain::{Category, CategoryId, Money, Order, OrderId, OrderItem, OrderStatus, Product};
use domain::{ProductId, RepositoryError, TelegramId, User, UserId};
use sea_orm::sea_query::Value;
use sea_orm::{DatabaseBackend, DatabaseConnection};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::Database;
use crate::entities::{categories, order_items, orders, products, users};
use crate::error::corrupt_row;
use crate::orders::{PlacementCounts, Placements};

/// The repositories: implements [`domain::ports::UserRepository`],
/// [`domain::ports::CatalogRepository`], [`domain::ports::OrderRepository`],
/// [`domain::ports::Outbox`] and [`domain::ports::IdempotencyStore`] over one
/// connection pool.
///
/// Cheap to clone (it shares the pool); wrap it in an `Arc` once per port.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(crate) db: DatabaseConnection,
    /// PostgreSQL: the pool text searches run on, with generic plans (see
    /// [`crate::database::search_connections`]).
    pub(crate) search: Option<crate::database::SearchPool>,
    /// Shared by every store over the same [`Database`].
    pub(crate) placements: Arc<Placements>,
    /// SQLite only: where committed catalog changes are told to this process's cache (see
    /// [`crate::follow_catalog_changes`]).
    pub(crate) local_changes: Option<tokio::sync::broadcast::Sender<CatalogChange>>,
}

impl SqlStore {
    /// The repositories over `database`'s pool (the same as [`Database::store`]).
    pub fn new(database: &Database) -> Self {
        database.store()
    }

    /// How the orders placed through this pool were written, since it opened.
    pub fn placement_counts(&self) -> PlacementCounts {
        self.placements.counts()
    }

    /// Tells this process's followers of catalog changes (SQLite) that `change` committed;
    /// PostgreSQL announced it in the transaction itself.
    pub(crate) fn committed(&self, change: CatalogChange) {
        if let Some(changes) = &self.local_changes {
            // No follower (a tool, a test): nobody caches anything.
            let _ = changes.send(change);
        }
    }

    pub(crate) fn backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }
}

/// SQLite keeps timestamps as text and compares them as text, so they must all have one
/// fixed-width UTC spelling for `ORDER BY created_at` to be chronological. (The driver's
/// own RFC 3339 spelling drops the fraction on whole seconds, which sorts them wrongly.)
const SQLITE_TIMESTAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// The instant as the database will keep it: in UTC, to the microsecond (PostgreSQL's
/// precision), so that what a write returns equals what a later read returns.
pub(crate) fn stored_instant(at: OffsetDateTime) -> OffsetDateTime {
    let utc = at.to_offset(UtcOffset::UTC);
    utc.replace_nanosecond(utc.nanosecond() / 1_000 * 1_000)
        .unwrap_or(utc)
}

/// A timestamp bound as a statement parameter for `backend`: a `timestamptz` on
/// PostgreSQL, the fixed-width UTC text on SQLite.
pub(crate) fn timestamp_value(backend: DatabaseBackend, at: OffsetDateTime) -> Value {
    let at = stored_instant(at);
    if backend == DatabaseBackend::Sqlite
        && let Ok(text) = at.format(SQLITE_TIMESTAMP)
    {
        return Value::from(text);
    }
    Value::from(at)
}

/// The database's "now" as an SQL expression, spelled as `backend` stores timestamps: a
/// `timestamptz` on PostgreSQL; on SQLite the fixed-width text of [`timestamp_value`]
/// (SQLite's clock has milliseconds, padded to the six digits every stored timestamp has,
/// so that it compares chronologically with them as text).
///
/// Statements that judge or set the outbox's leases, schedules, holds and retention use
/// it instead of a timestamp from the application, so that server instances whose wall
/// clocks disagree still agree on them (see [`domain::ports::Outbox`]).
pub(crate) fn database_now(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Sqlite => "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')",
        _ => "now()",
    }
}

/// The database's "now" moved by the offset bound at `param` (see [`offset_value`]), as
/// an SQL expression spelled as [`database_now`].
pub(crate) fn database_now_plus(backend: DatabaseBackend, param: &str) -> String {
    match backend {
        DatabaseBackend::Sqlite => {
            format!("(strftime('%Y-%m-%dT%H:%M:%f', 'now', {param}) || '000Z')")
        }
        _ => format!("(now() + {param} * interval '1 microsecond')"),
    }
}

/// `offset` (forward, or backward when `earlier`) bound for [`database_now_plus`]: a count
/// of microseconds on PostgreSQL, a date modifier such as `+1.500000 seconds` on SQLite.
/// Saturates far beyond any offset the outbox uses (an hour, ten years).
pub(crate) fn offset_value(
    backend: DatabaseBackend,
    offset: std::time::Duration,
    earlier: bool,
) -> Value {
    let sign = if earlier { "-" } else { "+" };
    if backend == DatabaseBackend::Sqlite {
        return Value::from(format!(
            "{sign}{}.{:06} seconds",
            offset.as_secs(),
            offset.subsec_micros()
        ));
    }
    let micros = i64::try_from(offset.as_micros()).unwrap_or(i64::MAX);
    Value::from(if earlier { -micros } else { micros })
}

pub(crate) fn money(minor: i64, what: impl FnOnce() -> String) -> Result<Money, RepositoryError> {
    Money::from_minor(minor).map_err(|err| corrupt_row(format!("{} is invalid: {err}", what())))
}

pub(crate) fn user_from_row(row: users::Model) -> Result<User, RepositoryError> {
    let telegram_id = TelegramId::parse(row.telegram_id)
        .map_err(|err| corrupt_row(format!("user {} has an invalid telegram id: {err}", row.id)))?;
    Ok(User {
        id: UserId(row.id),
        telegram_id,
        username: row.username,
        first_name: row.first_name,
        last_name: row.last_name,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

pub(crate) fn category_from_row(row: categories::Model) -> Category {
    Category {
        id: CategoryId(row.id),
        name: row.name,
        slug: row.slug,
        sort_order: row.sort_order,
        parent_id: row.parent_id.map(CategoryId),
        is_active: row.is_active,
    }
}

/// A product's stock as stored (`NULL` is unlimited); a CHECK keeps it non-negative.
pub(crate) fn stored_stock(id: i64, stock: Option<i32>) -> Result<Option<u32>, RepositoryError> {
    stock
        .map(u32::try_from)
        .transpose()
        .map_err(|err| corrupt_row(format!("product {id} has an invalid stock: {err}")))
}

pub(crate) fn product_from_row(row: products::Model) -> Result<Product, RepositoryError> {
    ShownProduct {
        id: row.id,
        category_id: row.category_id,
        name: row.name,
        description: row.description,
        price_minor: row.price_minor,
        is_active: row.is_active,
        sort_order: row.sort_order,
        stock: row.stock,
        images: row.images,
        price_stars: row.price_stars,
    }
    .into_product()
}

/// The columns of a product that make its domain [`Product`] (not its search text, its
/// revision or its timestamps), as stored.
#[derive(Debug)]
pub(crate) struct ShownProduct {
    pub id: i64,
    pub category_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub price_minor: i64,
    pub is_active: bool,
    pub sort_order: i32,
    pub stock: Option<i32>,
    pub images: String,
    pub price_stars: Option<i32>,
}

impl ShownProduct {
    pub(crate) fn into_product(self) -> Result<Product, RepositoryError> {
        let id = self.id;
        let stock = stored_stock(id, self.stock)?;
        Ok(Product {
            id: ProductId(id),
            category_id: CategoryId(self.category_id),
            name: self.name,
            description: self.description,
            price: money(self.price_minor, || format!("the price of product {id}"))?,
            images: serde_json::from_str(&self.images).map_err(|err| {
                corrupt_row(format!("product {id} has an invalid images array: {err}"))
            })?,
            is_active: self.is_active,
            sort_order: self.sort_order,
            stock,
            price_stars: stored_stars(id, self.price_stars)?,
        })
    }
}

/// A product's Stars price as stored; a CHECK keeps it positive.
pub(crate) fn stored_stars(id: i64, stars: Option<i32>) -> Result<Option<u32>, RepositoryError> {
    stars
        .map(u32::try_from)
        .transpose()
        .map_err(|err| corrupt_row(format!("product {id} has an invalid Stars price: {err}")))
}

/// An order's payment from its row.
pub(crate) fn payment_of(row: &orders::Model) -> Result<OrderPayment, RepositoryError> {
    stored_payment(
        row.id,
        &row.payment_status,
        row.payment_currency.as_deref(),
        row.payment_amount,
        row.payment_due_by,
        row.paid_at,
    )
}

/// An order's payment from its columns (migration 22).
fn stored_payment(
    id: i64,
    status: &str,
    currency: Option<&str>,
    amount: Option<i64>,
    due_by: Option<OffsetDateTime>,
    paid_at: Option<OffsetDateTime>,
) -> Result<OrderPayment, RepositoryError> {
    let status = PaymentStatus::parse(status)
        .ok_or_else(|| corrupt_row(format!("order {id} has an invalid payment status")))?;
    let due = match (currency, amount) {
        (Some(code), Some(amount)) => Some(AmountDue {
            currency: Currency::parse(code).ok_or_else(|| {
                corrupt_row(format!("order {id} owes in an unknown currency {code:?}"))
            })?,
            amount,
        }),
        _ => None,
    };
    Ok(OrderPayment {
        status,
        due,
        due_by,
        paid_at,
    })
}

pub(crate) fn order_item_from_row(row: order_items::Model) -> Result<OrderItem, RepositoryError> {
    let id = row.id;
    let quantity = u32::try_from(row.quantity)
        .map_err(|err| corrupt_row(format!("order line {id} has an invalid quantity: {err}")))?;
    Ok(OrderItem {
        product_id: ProductId(row.product_id),
        product_name: row.product_name,
        quantity,
        price: money(row.price_minor, || format!("the price of order line {id}"))?,
    })
}

/// Builds the domain order from its row and its lines (in line order).
pub(crate) fn order_from_rows(
    row: orders::Model,
    items: Vec<order_items::Model>,
) -> Result<Order, RepositoryError> {
    let id = row.id;
    let status: OrderStatus = row
        .status
        .parse()
        .map_err(|err| corrupt_row(format!("order {id} has an invalid status: {err}")))?;
    let payment = payment_of(&row)?;
    Ok(Order {
        payment,
        id: OrderId(id),
        user_id: UserId(row.user_id),
        status,
        total_amount: money(row.total_amount_minor, || {
            format!("the total of order {id}")
        })?,
        delivery_address: row.delivery_address,
        phone: row.phone,
        comment: row.comment,
        created_at: row.created_at,
        updated_at: row.updated_at,
        items: items
            .into_iter()
            .map(order_item_from_row)
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn stored_instants_are_utc_microseconds() {
        let at = datetime!(2025-03-01 12:00:00.123456789 +03:00);
        let stored = stored_instant(at);
        assert_eq!(stored, datetime!(2025-03-01 09:00:00.123456 UTC));
        assert_eq!(stored.offset(), UtcOffset::UTC);
    }

    #[test]
    fn sqlite_timestamps_sort_chronologically_as_text() {
        let spell = |at: OffsetDateTime| match timestamp_value(DatabaseBackend::Sqlite, at) {
            Value::String(Some(text)) => text,
            other => panic!("expected text, got {other:?}"),
        };
        let whole = spell(datetime!(2025-03-01 09:00:01 UTC));
        let before = spell(datetime!(2025-03-01 09:00:00.5 UTC));
        assert_eq!(whole, "2025-03-01T09:00:01.000000Z");
        assert!(before < whole);
    }
}
