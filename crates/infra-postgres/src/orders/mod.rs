//! [`OrderRepository`] over SQL: placing orders (one optimistic statement on PostgreSQL, a
//! transaction on SQLite) and reading them back.

mod admin;
pub(crate) mod lifecycle;
mod place_postgres;
mod place_sqlite;
mod read;

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use domain::order::{NewOrder, OrderDraft, PlaceOrderError, PricedOrder};
use domain::ports::OrderRepository;
use domain::{Order, OrderId, OrderStatus, Page, Paginated, RepositoryError, UserId};
use sea_orm::DatabaseBackend;
use time::OffsetDateTime;

use crate::price_hints::PriceHints;
use crate::store::SqlStore;

pub(crate) use admin::record_audit;
#[cfg(feature = "test-support")]
pub use read::PAGE_WITH_LINES_POSTGRES;
pub(crate) use read::lines_of;

#[async_trait]
impl OrderRepository for SqlStore {
    async fn place(&self, order: NewOrder) -> Result<Order, PlaceOrderError> {
        match self.backend() {
            DatabaseBackend::Postgres => place_postgres::place(self, &order).await,
            _ => {
                self.placements.transactions.fetch_add(1, Ordering::Relaxed);
                place_sqlite::place(self, &order).await
            }
        }
    }

    async fn list_for_user(
        &self,
        user: UserId,
        page: Page,
    ) -> Result<Paginated<Order>, RepositoryError> {
        read::list_for_user(self, user, page).await
    }

    async fn find_for_user(
        &self,
        user: UserId,
        id: OrderId,
    ) -> Result<Option<Order>, RepositoryError> {
        read::find_for_user(self, user, id).await
    }
}

/// How the orders placed through one pool reached the database, since it opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlacementCounts {
    /// Plain reads of the ordered products (PostgreSQL): placements of products this
    /// process had no hint for, or whose hint pricing refused.
    pub reads: u64,
    /// Placement statements sent (PostgreSQL).
    pub statements: u64,
    /// Of those, the ones that wrote nothing: a product had changed since it was priced,
    /// its stock had run short, the idempotency key was taken, or a concurrent
    /// transaction aborted it.
    pub refused: u64,
    /// Placements in a transaction (SQLite).
    pub transactions: u64,
}

/// What every store over one pool shares about placing orders.
#[derive(Debug, Default)]
pub(crate) struct Placements {
    pub(crate) hints: PriceHints,
    reads: AtomicU64,
    statements: AtomicU64,
    refused: AtomicU64,
    transactions: AtomicU64,
}

impl Placements {
    pub(crate) fn counts(&self) -> PlacementCounts {
        PlacementCounts {
            reads: self.reads.load(Ordering::Relaxed),
            statements: self.statements.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            transactions: self.transactions.load(Ordering::Relaxed),
        }
    }

    fn count_read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    fn count_statement(&self, placed: bool) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        if !placed {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The order as it was just written.
fn pending_order(
    order_id: i64,
    user_id: UserId,
    draft: &OrderDraft,
    placed_at: OffsetDateTime,
    priced: PricedOrder,
    terms: &domain::payments::PaymentTerms,
) -> Order {
    Order {
        payment: domain::payments::OrderPayment::at_placement(priced.payment, placed_at, terms),
        id: OrderId(order_id),
        user_id,
        status: OrderStatus::Pending,
        total_amount: priced.total_amount,
        delivery_address: draft.delivery_address().as_str().to_owned(),
        phone: draft.phone().as_str().to_owned(),
        comment: draft.comment().map(|comment| comment.as_str().to_owned()),
        created_at: placed_at,
        updated_at: placed_at,
        items: priced.items,
    }
}
