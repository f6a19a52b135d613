//! [`OrderRepository`] over SQL.

use std::collections::HashMap;

use async_trait::async_trait;
use domain::order::{NewOrder, OrderDraft, PlaceOrderError, PricedOrder, price_order};
use domain::outbox::ORDER_CREATED;
use domain::ports::OrderRepository;
use domain::{Order, OrderId, OrderStatus, Page, Paginated, Product, RepositoryError, UserId};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use time::OffsetDateTime;

use crate::entities::{order_items, orders, outbox_events, products};
use crate::error::{corrupt_row, repository_error};
use crate::outbox::PENDING;
use crate::store::{SqlStore, order_from_rows, product_from_row, stored_instant, timestamp_value};

#[async_trait]
impl OrderRepository for SqlStore {
    async fn place(&self, order: NewOrder) -> Result<Order, PlaceOrderError> {
        let NewOrder {
            user_id,
            draft,
            placed_at,
        } = order;
        let placed_at = stored_instant(placed_at);

        // On SQLite, a deferred transaction that reads and then writes can fail at once
        // with SQLITE_BUSY when another writer got there first; an IMMEDIATE one takes the
        // write lock up front and waits its turn under the busy timeout instead.
        let transaction = self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
            .map_err(|err| repository_error(err, "failed to begin the order transaction"))?;

        match place_in(&transaction, user_id, &draft, placed_at).await {
            Ok(order) => {
                transaction
                    .commit()
                    .await
                    .map_err(|err| repository_error(err, "failed to commit the order"))?;
                Ok(order)
            }
            Err(err) => {
                if let Err(rollback) = transaction.rollback().await {
                    // The pool discards a connection whose transaction it cannot end, so
                    // nothing was written either way; `err` is what the caller needs.
                    tracing::warn!(error = %rollback, "failed to roll back an order transaction");
                }
                Err(err)
            }
        }
    }

    async fn list_for_user(
        &self,
        user: UserId,
        page: Page,
    ) -> Result<Paginated<Order>, RepositoryError> {
        let of_user = orders::Entity::find().filter(orders::Column::UserId.eq(user.0));
        let rows = of_user
            .clone()
            .order_by_desc(orders::Column::CreatedAt)
            .order_by_desc(orders::Column::Id)
            .limit(u64::from(page.limit()))
            .offset(page.offset())
            .all(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to list orders"))?;
        let total = of_user
            .count(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to count orders"))?;

        let mut lines = lines_of(&self.db, rows.iter().map(|order| order.id).collect()).await?;
        let items = rows
            .into_iter()
            .map(|order| {
                let items = lines.remove(&order.id).unwrap_or_default();
                order_from_rows(order, items)
            })
            .collect::<Result<_, _>>()?;
        Ok(Paginated { items, total, page })
    }

    async fn find_for_user(
        &self,
        user: UserId,
        id: OrderId,
    ) -> Result<Option<Order>, RepositoryError> {
        let Some(order) = orders::Entity::find_by_id(id.0)
            .filter(orders::Column::UserId.eq(user.0))
            .one(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to find order"))?
        else {
            return Ok(None);
        };
        let items = lines_of(&self.db, vec![order.id])
            .await?
            .remove(&order.id)
            .unwrap_or_default();
        order_from_rows(order, items).map(Some)
    }
}

/// The lines of these orders, in one query, grouped by order and in line order.
pub(crate) async fn lines_of(
    connection: &impl ConnectionTrait,
    order_ids: Vec<i64>,
) -> Result<HashMap<i64, Vec<order_items::Model>>, RepositoryError> {
    let mut by_order: HashMap<i64, Vec<order_items::Model>> = HashMap::new();
    if order_ids.is_empty() {
        return Ok(by_order);
    }
    let rows = order_items::Entity::find()
        .filter(order_items::Column::OrderId.is_in(order_ids))
        .order_by_asc(order_items::Column::OrderId)
        .order_by_asc(order_items::Column::Id)
        .all(connection)
        .await
        .map_err(|err| repository_error(err, "failed to load order lines"))?;
    for row in rows {
        by_order.entry(row.order_id).or_default().push(row);
    }
    Ok(by_order)
}

/// Prices the draft against the products as the transaction sees them and writes it.
async fn place_in(
    transaction: &DatabaseTransaction,
    user_id: UserId,
    draft: &OrderDraft,
    placed_at: OffsetDateTime,
) -> Result<Order, PlaceOrderError> {
    let catalog = products_for(transaction, draft).await?;
    let PricedOrder {
        items,
        total_amount,
    } = price_order(draft, &catalog)?;

    let backend = transaction.get_database_backend();
    let at = timestamp_value(backend, placed_at);
    let insert_order = Query::insert()
        .into_table(orders::Entity)
        .columns([
            orders::Column::UserId,
            orders::Column::Status,
            orders::Column::TotalAmountMinor,
            orders::Column::DeliveryAddress,
            orders::Column::Phone,
            orders::Column::Comment,
            orders::Column::CreatedAt,
            orders::Column::UpdatedAt,
        ])
        .values([
            Expr::val(user_id.0),
            Expr::val(OrderStatus::Pending.as_str()),
            Expr::val(total_amount.minor_units()),
            Expr::val(draft.delivery_address().as_str()),
            Expr::val(draft.phone().as_str()),
            Expr::val(draft.comment().map(|comment| comment.as_str().to_owned())),
            Expr::val(at.clone()),
            Expr::val(at.clone()),
        ])
        .map_err(|err| corrupt_row(format!("failed to build the order insert: {err}")))?
        .returning_col(orders::Column::Id)
        .to_owned();
    let order_id: i64 = transaction
        .query_one(&insert_order)
        .await
        .map_err(|err| repository_error(err, "failed to insert order"))?
        .ok_or_else(|| corrupt_row("the order insert returned no id".to_owned()))?
        .try_get("", "id")
        .map_err(|err| repository_error(err, "failed to read the new order's id"))?;

    // Every line in one statement: one round trip however long the cart.
    let mut insert_items = Query::insert()
        .into_table(order_items::Entity)
        .columns([
            order_items::Column::OrderId,
            order_items::Column::ProductId,
            order_items::Column::ProductName,
            order_items::Column::Quantity,
            order_items::Column::PriceMinor,
        ])
        .to_owned();
    for item in &items {
        let quantity = i32::try_from(item.quantity)
            .map_err(|err| corrupt_row(format!("quantity out of range: {err}")))?;
        insert_items
            .values([
                Expr::val(order_id),
                Expr::val(item.product_id.0),
                Expr::val(item.product_name.as_str()),
                Expr::val(quantity),
                Expr::val(item.price.minor_units()),
            ])
            .map_err(|err| corrupt_row(format!("failed to build the line insert: {err}")))?;
    }
    transaction
        .execute(&insert_items)
        .await
        .map_err(|err| repository_error(err, "failed to insert order lines"))?;

    // The manager's notification, due at once. Written in this transaction, so that it
    // commits or rolls back with the order (see `crate::outbox`).
    let insert_event = Query::insert()
        .into_table(outbox_events::Entity)
        .columns([
            outbox_events::Column::Kind,
            outbox_events::Column::OrderId,
            outbox_events::Column::Status,
            outbox_events::Column::NextAttemptAt,
            outbox_events::Column::CreatedAt,
        ])
        .values([
            Expr::val(ORDER_CREATED),
            Expr::val(order_id),
            Expr::val(PENDING),
            Expr::val(at.clone()),
            Expr::val(at),
        ])
        .map_err(|err| corrupt_row(format!("failed to build the outbox event insert: {err}")))?
        .to_owned();
    transaction
        .execute(&insert_event)
        .await
        .map_err(|err| repository_error(err, "failed to insert the order's outbox event"))?;

    Ok(Order {
        id: OrderId(order_id),
        user_id,
        status: OrderStatus::Pending,
        total_amount,
        delivery_address: draft.delivery_address().as_str().to_owned(),
        phone: draft.phone().as_str().to_owned(),
        comment: draft.comment().map(|comment| comment.as_str().to_owned()),
        created_at: placed_at,
        updated_at: placed_at,
        items,
    })
}

/// The draft's products as they are now, whether active or not (the pricing rule tells
/// the two failures apart).
///
/// On PostgreSQL the rows are read `FOR SHARE`, in ascending id order: a concurrent price
/// change waits until this order commits, so the snapshot is the price at commit time, and
/// two orders never lock the same products in opposite orders. (SQLite has no row locks;
/// the IMMEDIATE transaction already excludes other writers.)
async fn products_for(
    transaction: &DatabaseTransaction,
    draft: &OrderDraft,
) -> Result<Vec<Product>, RepositoryError> {
    products::Entity::find()
        .filter(products::Column::Id.is_in(draft.product_ids().into_iter().map(|id| id.0)))
        .order_by_asc(products::Column::Id)
        .lock_shared()
        .all(transaction)
        .await
        .map_err(|err| repository_error(err, "failed to read the ordered products"))?
        .into_iter()
        .map(product_from_row)
        .collect()
}
