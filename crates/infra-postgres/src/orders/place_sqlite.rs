//! Placing an order on SQLite: one IMMEDIATE transaction that reads the products, has the
//! domain price the draft, takes the stock and writes the order, its lines, its outbox
//! event and its idempotency key's order.
//!
//! SQLite runs in-process, so a statement is a function call rather than a round trip,
//! and its one writer at a time is what serialises stock: the simple transactional shape
//! is also the fast one here.

use std::collections::HashMap;

use domain::idempotency::IdempotencyKey;
use domain::order::{NewOrder, OrderDraft, PlaceOrderError, StockShortage, price_order};
use domain::outbox::ORDER_CREATED;
use domain::payments::OrderPayment;
use domain::{Order, OrderStatus, Product, ProductId, RepositoryError, UserId};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::pending_order;
use crate::catalog::IN_VISIBLE_CATEGORY;
use crate::entities::{idempotency_keys, order_items, orders, outbox_events, products};
use crate::error::{corrupt_row, repository_error};
use crate::outbox::PENDING;
use crate::store::{SqlStore, database_now, product_from_row, stored_instant, timestamp_value};
use crate::transaction::write_transaction;

/// Places the order in one transaction. An IMMEDIATE one (see [`write_transaction`]): it
/// makes the placement the only writer, which is what serialises stock.
pub(super) async fn place(store: &SqlStore, order: &NewOrder) -> Result<Order, PlaceOrderError> {
    write_transaction(&store.db, "the order transaction", async |transaction| {
        place_in(transaction, order).await
    })
    .await
}

/// Prices the draft against the products as the transaction reads them, takes the stock
/// and writes the order.
async fn place_in(
    transaction: &DatabaseTransaction,
    order: &NewOrder,
) -> Result<Order, PlaceOrderError> {
    let NewOrder {
        user_id,
        draft,
        placed_at,
        idempotency_key,
        payment_terms,
    } = order;
    let (user_id, placed_at) = (*user_id, stored_instant(*placed_at));
    let catalog = products_for(transaction, draft).await?;
    let priced = price_order(draft, &catalog, payment_terms)?;
    take_stock(transaction, draft, &catalog).await?;

    let at = timestamp_value(DatabaseBackend::Sqlite, placed_at);
    let payment = OrderPayment::at_placement(priced.payment, placed_at, payment_terms);
    let order_id = insert_order(transaction, user_id, draft, &priced, &payment, at).await?;
    if let Some(key) = idempotency_key {
        attach_to_key(transaction, user_id, key, order_id).await?;
    }
    Ok(pending_order(
        order_id,
        user_id,
        draft,
        placed_at,
        priced,
        payment_terms,
    ))
}

/// The draft's products as they are now, whether active or not (the pricing rule tells
/// the two failures apart). The IMMEDIATE transaction excludes every other writer, so they
/// stay as read until it commits.
async fn products_for(
    transaction: &DatabaseTransaction,
    draft: &OrderDraft,
) -> Result<Vec<Product>, RepositoryError> {
    let ids: Vec<i64> = draft.product_ids().into_iter().map(|id| id.0).collect();
    let sellable: Vec<i64> = products::Entity::find()
        .select_only()
        .column(products::Column::Id)
        .filter(products::Column::Id.is_in(ids.clone()))
        .filter(Expr::cust(IN_VISIBLE_CATEGORY))
        .into_tuple()
        .all(transaction)
        .await
        .map_err(|err| repository_error(err, "failed to read the ordered products' categories"))?;
    products::Entity::find()
        .filter(products::Column::Id.is_in(ids))
        .order_by_asc(products::Column::Id)
        .all(transaction)
        .await
        .map_err(|err| repository_error(err, "failed to read the ordered products"))?
        .into_iter()
        .map(|row| {
            // A product of a hidden category is not on sale, whatever its own flag says.
            let mut product = product_from_row(row)?;
            product.is_active &= sellable.contains(&product.id.0);
            Ok(product)
        })
        .collect()
}

/// Takes each line's quantity from its product's limited stock, in product-id order.
///
/// `price_order` has already checked the stock as read, so every update should succeed;
/// the condition (`stock >= n`) still guards the write itself, so that stock can never go
/// negative through a path that skipped the check (and the `CHECK (stock >= 0)`
/// constraint stands behind it). A line it refuses is reported with what is left.
async fn take_stock(
    transaction: &DatabaseTransaction,
    draft: &OrderDraft,
    catalog: &[Product],
) -> Result<(), PlaceOrderError> {
    let limited: HashMap<ProductId, u32> = catalog
        .iter()
        .filter_map(|product| Some((product.id, product.stock?)))
        .collect();
    let mut lines: Vec<_> = draft
        .lines()
        .iter()
        .filter(|line| limited.contains_key(&line.product_id))
        .collect();
    lines.sort_unstable_by_key(|line| line.product_id);

    let mut shortages = Vec::new();
    for line in lines {
        let quantity = i32::try_from(line.quantity.get())
            .map_err(|err| corrupt_row(format!("quantity out of range: {err}")))?;
        let update = Query::update()
            .table(products::Entity)
            .value(
                products::Column::Stock,
                Expr::col(products::Column::Stock).sub(quantity),
            )
            .and_where(products::Column::Id.eq(line.product_id.0))
            .and_where(products::Column::Stock.gte(quantity))
            .to_owned();
        let result = transaction
            .execute(&update)
            .await
            .map_err(|err| repository_error(err, "failed to take stock"))?;
        if result.rows_affected() == 1 {
            continue;
        }
        let available = products::Entity::find_by_id(line.product_id.0)
            .select_only()
            .column(products::Column::Stock)
            .into_tuple::<Option<i32>>()
            .one(transaction)
            .await
            .map_err(|err| repository_error(err, "failed to read a product's stock"))?
            .flatten()
            .and_then(|stock| u32::try_from(stock).ok())
            .unwrap_or(0);
        shortages.push(StockShortage {
            product_id: line.product_id,
            requested: line.quantity.get(),
            available,
        });
    }
    if shortages.is_empty() {
        Ok(())
    } else {
        Err(PlaceOrderError::InsufficientStock(shortages))
    }
}

/// The order, its lines and its outbox event, in three statements.
async fn insert_order(
    transaction: &DatabaseTransaction,
    user_id: UserId,
    draft: &OrderDraft,
    priced: &domain::order::PricedOrder,
    payment: &OrderPayment,
    at: sea_orm::Value,
) -> Result<i64, PlaceOrderError> {
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
            orders::Column::PaymentStatus,
            orders::Column::PaymentCurrency,
            orders::Column::PaymentAmount,
            orders::Column::PaymentDueBy,
        ])
        .values([
            Expr::val(user_id.0),
            Expr::val(OrderStatus::Pending.as_str()),
            Expr::val(priced.total_amount.minor_units()),
            Expr::val(draft.delivery_address().as_str()),
            Expr::val(draft.phone().as_str()),
            Expr::val(draft.comment().map(|comment| comment.as_str().to_owned())),
            Expr::val(at.clone()),
            Expr::val(at.clone()),
            Expr::val(payment.status.as_str()),
            Expr::val(payment.due.map(|due| due.currency.code().to_owned())),
            Expr::val(payment.due.map(|due| due.amount)),
            Expr::val(
                payment
                    .due_by
                    .map(|due_by| timestamp_value(DatabaseBackend::Sqlite, due_by))
                    .unwrap_or(sea_orm::Value::String(None)),
            ),
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

    // Every line in one statement, in cart order (which is the order they are read in).
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
    for item in &priced.items {
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

    // The manager's notification, due at once by the database's clock, which is the one
    // the relay's claim judges it by (see `crate::outbox`). Written in this transaction,
    // so that it commits or rolls back with the order.
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
            Expr::cust(database_now(DatabaseBackend::Sqlite)),
            Expr::val(at),
        ])
        .map_err(|err| corrupt_row(format!("failed to build the outbox event insert: {err}")))?
        .to_owned();
    transaction
        .execute(&insert_event)
        .await
        .map_err(|err| repository_error(err, "failed to insert the order's outbox event"))?;

    Ok(order_id)
}

/// Records that `key` placed `order_id`, in the order's transaction: the order and the
/// record commit together, so a retry finds the order even if the response is lost.
///
/// Only a key without an order takes it. A claim runs out after
/// [`domain::idempotency::IN_PROGRESS_LEASE`], after which a retry may take the key over
/// while this request still runs; whichever places its order first wins, and the other's
/// transaction is rolled back here with [`PlaceOrderError::IdempotencyKeyInUse`], so the
/// key still places one order. The same answer fits a key that is gone: a retry claims
/// it anew.
async fn attach_to_key(
    transaction: &DatabaseTransaction,
    user_id: UserId,
    key: &IdempotencyKey,
    order_id: i64,
) -> Result<(), PlaceOrderError> {
    let update = Query::update()
        .table(idempotency_keys::Entity)
        .value(idempotency_keys::Column::OrderId, order_id)
        .and_where(idempotency_keys::Column::UserId.eq(user_id.0))
        .and_where(idempotency_keys::Column::Key.eq(key.as_str()))
        .and_where(idempotency_keys::Column::OrderId.is_null())
        .to_owned();
    let result = transaction.execute(&update).await.map_err(|err| {
        repository_error(err, "failed to attach the order to its idempotency key")
    })?;
    if result.rows_affected() == 1 {
        Ok(())
    } else {
        Err(PlaceOrderError::IdempotencyKeyInUse)
    }
}
