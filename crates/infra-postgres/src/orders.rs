//! [`OrderRepository`] over SQL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use domain::idempotency::IdempotencyKey;
use domain::order::{
    NewOrder, OrderDraft, PlaceOrderError, PricedOrder, StockShortage, price_order,
};
use domain::outbox::ORDER_CREATED;
use domain::ports::OrderRepository;
use domain::{
    CategoryId, Order, OrderId, OrderItem, OrderStatus, Page, Paginated, Product, ProductId,
    RepositoryError, UserId,
};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait,
    FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, SqliteTransactionMode,
    Statement, TransactionOptions, TransactionTrait,
};

use crate::entities::{idempotency_keys, order_items, orders, outbox_events, products};
use crate::error::{corrupt_row, is_transaction_conflict, repository_error};
use crate::outbox::PENDING;
use crate::pg;
use crate::price_hints::PriceHints;
use crate::store::{
    SqlStore, money, order_from_rows, product_from_row, stored_instant, stored_stock,
    timestamp_value,
};
use time::OffsetDateTime;

/// How many times [`OrderRepository::place`] runs its transaction when PostgreSQL aborts it
/// because of a concurrent one. Placements lock products in id order and so never deadlock
/// each other; this covers anything else that might (an operator's script updating the
/// same rows in another order), so that a customer never sees a deadlock error.
const PLACE_ATTEMPTS: u32 = 3;

#[async_trait]
impl OrderRepository for SqlStore {
    async fn place(&self, order: NewOrder) -> Result<Order, PlaceOrderError> {
        if self.backend() == DatabaseBackend::Postgres {
            match self.place_in_one_statement(&order).await {
                Ok(Some(placed)) => {
                    self.placements
                        .in_one_statement
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(placed);
                }
                // No hint, a stale one, or a refusal: the transaction decides, from the
                // rows it locks, and reports exactly what is wrong.
                Ok(None) => {}
                // Aborted by a concurrent transaction, so nothing was written: the
                // transactional path below retries.
                Err(err) if is_transaction_conflict(&err) => {}
                Err(err) => return Err(err.into()),
            }
        }
        self.placements
            .in_a_transaction
            .fetch_add(1, Ordering::Relaxed);
        let mut attempt = 1;
        loop {
            match self.place_once(&order).await {
                // PostgreSQL rolled the whole transaction back, so running it again is
                // safe: nothing of the first attempt remains.
                Err(PlaceOrderError::Repository(err))
                    if attempt < PLACE_ATTEMPTS && is_transaction_conflict(&err) =>
                {
                    tracing::warn!(
                        attempt,
                        error = format!("{err:#}"),
                        "an order transaction conflicted with another one; retrying"
                    );
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn list_for_user(
        &self,
        user: UserId,
        page: Page,
    ) -> Result<Paginated<Order>, RepositoryError> {
        // One round trip: the page of orders (with the total riding along, `COUNT(*) OVER
        // ()` counted before LIMIT), joined to its lines. Only a page past the end has no
        // row to carry the total.
        let backend = self.db.get_database_backend();
        let limit = i64::from(page.limit());
        let offset = i64::try_from(page.offset()).unwrap_or(i64::MAX);
        let values: Vec<sea_orm::Value> = vec![user.0.into(), limit.into(), offset.into()];
        let found = match backend {
            DatabaseBackend::Postgres => pg::fetch_all(&self.db, PAGE_WITH_LINES_SQL, values).await,
            _ => {
                self.db
                    .query_all_raw(Statement::from_sql_and_values(
                        backend,
                        PAGE_WITH_LINES_SQL,
                        values,
                    ))
                    .await
            }
        }
        .map_err(|err| repository_error(err, "failed to list orders"))?;

        let mut total: Option<u64> = None;
        let mut orders: Vec<(orders::Model, Vec<order_items::Model>)> = Vec::new();
        for row in &found {
            let order_id: i64 = row
                .try_get("", "id")
                .map_err(|err| repository_error(err, "failed to read an order"))?;
            if orders.last().is_none_or(|(order, _)| order.id != order_id) {
                orders.push((
                    orders::Model::from_query_result(row, "")
                        .map_err(|err| repository_error(err, "failed to read an order"))?,
                    Vec::new(),
                ));
            }
            if total.is_none() {
                let matching: i64 = row
                    .try_get("", "total_matching")
                    .map_err(|err| repository_error(err, "failed to read the order count"))?;
                total = Some(u64::try_from(matching).unwrap_or(0));
            }
            let line_id: Option<i64> = row
                .try_get("", "line_id")
                .map_err(|err| repository_error(err, "failed to read an order line"))?;
            if line_id.is_some()
                && let Some((_, lines)) = orders.last_mut()
            {
                lines.push(
                    order_items::Model::from_query_result(row, "line_")
                        .map_err(|err| repository_error(err, "failed to read an order line"))?,
                );
            }
        }
        let total = match total {
            Some(total) => total,
            None if page.offset() == 0 => 0,
            None => orders::Entity::find()
                .filter(orders::Column::UserId.eq(user.0))
                .count(&self.db)
                .await
                .map_err(|err| repository_error(err, "failed to count orders"))?,
        };
        let items = orders
            .into_iter()
            .map(|(order, lines)| order_from_rows(order, lines))
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

/// How the orders placed through one pool were written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlacementCounts {
    /// Placements that ended in the single statement (PostgreSQL): priced from hints that
    /// the database confirmed while it held the products' locks.
    pub in_one_statement: u64,
    /// Placements the transactional path decided, placed or refused: every one on SQLite,
    /// and on PostgreSQL those without a hint, whose hint was stale, that the database
    /// refused, or whose statement a concurrent transaction aborted.
    pub in_a_transaction: u64,
}

/// What every store over one pool shares about placing orders.
#[derive(Debug, Default)]
pub(crate) struct Placements {
    pub(crate) hints: PriceHints,
    in_one_statement: AtomicU64,
    in_a_transaction: AtomicU64,
}

impl Placements {
    pub(crate) fn counts(&self) -> PlacementCounts {
        PlacementCounts {
            in_one_statement: self.in_one_statement.load(Ordering::Relaxed),
            in_a_transaction: self.in_a_transaction.load(Ordering::Relaxed),
        }
    }
}

impl SqlStore {
    /// Places the order in ONE statement, so one round trip and no `BEGIN`/`COMMIT`, when
    /// every product has a hint: the domain prices the draft from the hints, and the
    /// statement locks the products in id order, checks each line against its locked row
    /// (active, same name, same price, enough stock) and, only if every line matches (and
    /// the idempotency key is still free), takes the stock and inserts the order, its
    /// lines, its outbox event and the key's order — atomically, as any one statement is.
    ///
    /// So the prices written are the database's at commit time, exactly as in the
    /// transactional path. `Ok(None)` means nothing was written (no hint, a stale one, or
    /// a line the database refuses): the transactional path then decides, with the
    /// precise error. Either way the locked rows refresh the hints.
    async fn place_in_one_statement(
        &self,
        order: &NewOrder,
    ) -> Result<Option<Order>, RepositoryError> {
        let NewOrder {
            user_id,
            draft,
            placed_at,
            idempotency_key,
        } = order;
        let ids = draft.product_ids();
        let Some(hinted) = self.placements.hints.get(&ids) else {
            return Ok(None);
        };
        let Ok(priced) = price_order(draft, &hinted) else {
            // What the hints say is wrong (inactive, out of stock) may no longer be: only
            // the locked rows may refuse an order.
            return Ok(None);
        };
        let placed_at = stored_instant(*placed_at);
        let at = timestamp_value(DatabaseBackend::Postgres, placed_at);
        let row = NewOrderRow {
            user_id: *user_id,
            total_amount_minor: priced.total_amount.minor_units(),
            draft,
            at,
            items: &priced.items,
        };
        let (mut values, lines) = order_values(&row)?;
        let product_params: Vec<String> = (0..priced.items.len())
            .map(|position| format!("${}", ORDER_PARAMS + 1 + position * LINE_PARAMS))
            .collect();
        let key_param = idempotency_key.as_ref().map(|key| {
            values.push(key.as_str().into());
            values.len()
        });
        let sql = one_statement_sql(&lines, &product_params.join(", "), ids.len(), key_param);
        let rows = pg::fetch_all(&self.db, &sql, values)
            .await
            .map_err(|err| repository_error(err, "failed to place the order in one statement"))?;

        let order_id: Option<i64> = match rows.first() {
            Some(row) => row
                .try_get("", "order_id")
                .map_err(|err| repository_error(err, "failed to read the new order's id"))?,
            None => None,
        };
        // The order (if any) is committed: nothing below may fail the placement, or a retry
        // would place it twice. An unreadable row only costs its hint.
        let mut seen = Vec::with_capacity(rows.len());
        for row in &rows {
            match locked_product(row) {
                Ok(product) => seen.push(product),
                Err(error) => {
                    tracing::warn!(%error, "could not read a locked product back; dropping the hints");
                    seen.clear();
                    break;
                }
            }
        }
        if order_id.is_some() {
            // The rows are as locked, before the statement took the stock.
            for product in &mut seen {
                let taken = draft
                    .lines()
                    .iter()
                    .find(|line| line.product_id == product.id)
                    .map_or(0, |line| line.quantity.get());
                product.stock = product.stock.map(|stock| stock.saturating_sub(taken));
            }
        }
        self.placements.hints.remember(&ids, seen);

        Ok(order_id.map(|id| pending_order(id, *user_id, draft, placed_at, priced)))
    }

    /// One attempt at placing the order, in one transaction.
    async fn place_once(&self, order: &NewOrder) -> Result<Order, PlaceOrderError> {
        // On SQLite, a deferred transaction that reads and then writes can fail at once
        // with SQLITE_BUSY when another writer got there first; an IMMEDIATE one takes the
        // write lock up front and waits its turn under the busy timeout instead. It also
        // makes the placement the only writer, which is what serialises stock on SQLite.
        let transaction = self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
            .map_err(|err| repository_error(err, "failed to begin the order transaction"))?;

        match place_in(&transaction, order, &self.placements.hints).await {
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
}

/// A customer's page of orders, newest first, each joined to its lines in line order; every
/// row carries the number of the customer's orders (`total_matching`). Parameters: the
/// user id, the limit, the offset (`$n` placeholders, which sqlx binds on SQLite too).
const PAGE_WITH_LINES_SQL: &str = r#"SELECT page.*,
       line."id" AS "line_id", line."order_id" AS "line_order_id",
       line."product_id" AS "line_product_id", line."product_name" AS "line_product_name",
       line."quantity" AS "line_quantity", line."price_minor" AS "line_price_minor"
FROM (
    SELECT "orders".*, COUNT(*) OVER () AS "total_matching"
    FROM "orders"
    WHERE "orders"."user_id" = $1
    ORDER BY "orders"."created_at" DESC, "orders"."id" DESC
    LIMIT $2 OFFSET $3
) AS page
LEFT JOIN "order_items" AS line ON line."order_id" = page."id"
ORDER BY page."created_at" DESC, page."id" DESC, line."id" ASC"#;

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

/// Prices the draft against the products as the transaction sees them, takes the stock and
/// writes the order.
async fn place_in(
    transaction: &DatabaseTransaction,
    order: &NewOrder,
    hints: &PriceHints,
) -> Result<Order, PlaceOrderError> {
    let NewOrder {
        user_id,
        draft,
        placed_at,
        idempotency_key,
    } = order;
    let (user_id, placed_at) = (*user_id, stored_instant(*placed_at));
    let catalog = products_for(transaction, draft).await?;
    hints.remember(&draft.product_ids(), catalog.clone());
    let priced = price_order(draft, &catalog)?;
    take_stock(transaction, draft, &catalog).await?;

    let backend = transaction.get_database_backend();
    let at = timestamp_value(backend, placed_at);
    let new_order = NewOrderRow {
        user_id,
        total_amount_minor: priced.total_amount.minor_units(),
        draft,
        at,
        items: &priced.items,
    };
    let order_id = match backend {
        DatabaseBackend::Postgres => insert_order_in_one_statement(transaction, &new_order).await?,
        _ => insert_order_step_by_step(transaction, &new_order).await?,
    };

    if let Some(key) = idempotency_key {
        attach_to_key(transaction, user_id, key, order_id).await?;
    }

    Ok(pending_order(order_id, user_id, draft, placed_at, priced))
}

/// The order as it was just written.
fn pending_order(
    order_id: i64,
    user_id: UserId,
    draft: &OrderDraft,
    placed_at: OffsetDateTime,
    priced: PricedOrder,
) -> Order {
    Order {
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

/// What the order's insert statements write.
struct NewOrderRow<'a> {
    user_id: UserId,
    total_amount_minor: i64,
    draft: &'a OrderDraft,
    at: sea_orm::Value,
    items: &'a [OrderItem],
}

/// The order, its lines and its outbox event in three statements (SQLite, where a
/// statement is a function call, not a round trip).
async fn insert_order_step_by_step(
    transaction: &DatabaseTransaction,
    row: &NewOrderRow<'_>,
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
        ])
        .values([
            Expr::val(row.user_id.0),
            Expr::val(OrderStatus::Pending.as_str()),
            Expr::val(row.total_amount_minor),
            Expr::val(row.draft.delivery_address().as_str()),
            Expr::val(row.draft.phone().as_str()),
            Expr::val(
                row.draft
                    .comment()
                    .map(|comment| comment.as_str().to_owned()),
            ),
            Expr::val(row.at.clone()),
            Expr::val(row.at.clone()),
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
    for item in row.items {
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
            Expr::val(row.at.clone()),
            Expr::val(row.at.clone()),
        ])
        .map_err(|err| corrupt_row(format!("failed to build the outbox event insert: {err}")))?
        .to_owned();
    transaction
        .execute(&insert_event)
        .await
        .map_err(|err| repository_error(err, "failed to insert the order's outbox event"))?;

    Ok(order_id)
}

/// The order, its lines and its outbox event in ONE statement on PostgreSQL: three
/// data-modifying CTEs, one round trip. The lines' ids follow the cart's order, which is
/// the order they are read back in.
async fn insert_order_in_one_statement(
    transaction: &DatabaseTransaction,
    row: &NewOrderRow<'_>,
) -> Result<i64, PlaceOrderError> {
    let (values, lines) = order_values(row)?;
    let sql = format!(
        r#"WITH new_order AS (
    INSERT INTO "orders" ("user_id", "status", "total_amount_minor", "delivery_address", "phone", "comment", "created_at", "updated_at")
    VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
    RETURNING "id"
), new_lines AS (
    INSERT INTO "order_items" ("order_id", "product_id", "product_name", "quantity", "price_minor")
    SELECT new_order."id", line.product_id, line.product_name, line.quantity, line.price_minor
    FROM new_order, (VALUES {lines}) AS line (product_id, product_name, quantity, price_minor, position)
    ORDER BY line.position
), new_event AS (
    INSERT INTO "outbox_events" ("kind", "order_id", "status", "next_attempt_at", "created_at")
    SELECT $8, new_order."id", $9, $7, $7 FROM new_order
)
SELECT "id" FROM new_order"#
    );
    transaction
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            sql,
            values,
        ))
        .await
        .map_err(|err| {
            repository_error(
                err,
                "failed to insert the order, its lines and its outbox event",
            )
        })?
        .ok_or_else(|| corrupt_row("the order insert returned no id".to_owned()))?
        .try_get("", "id")
        .map_err(|err| repository_error(err, "failed to read the new order's id").into())
}

/// Parameters `$1`..`$9` of the order statements: the order's columns, then its event's.
const ORDER_PARAMS: usize = 9;
/// Parameters per line, after the order's: product id, name, quantity, price.
const LINE_PARAMS: usize = 4;

/// The order's parameters (`$1`..`$9`: user, status, total, address, phone, comment, time,
/// event kind, event status) followed by each line's four, and the `VALUES` rows that
/// name the lines' parameters: `(product_id, product_name, quantity, price_minor,
/// position)`.
fn order_values(row: &NewOrderRow<'_>) -> Result<(Vec<sea_orm::Value>, String), RepositoryError> {
    use std::fmt::Write as _;

    let mut values: Vec<sea_orm::Value> =
        Vec::with_capacity(ORDER_PARAMS + LINE_PARAMS * row.items.len() + 1);
    values.extend([
        row.user_id.0.into(),
        OrderStatus::Pending.as_str().into(),
        row.total_amount_minor.into(),
        row.draft.delivery_address().as_str().into(),
        row.draft.phone().as_str().into(),
        row.draft
            .comment()
            .map(|comment| comment.as_str().to_owned())
            .into(),
        row.at.clone(),
        ORDER_CREATED.into(),
        PENDING.into(),
    ]);
    let mut lines = String::new();
    for (position, item) in row.items.iter().enumerate() {
        let quantity = i32::try_from(item.quantity)
            .map_err(|err| corrupt_row(format!("quantity out of range: {err}")))?;
        let first = values.len() + 1;
        if position > 0 {
            lines.push_str(", ");
        }
        let _ = write!(
            lines,
            "(${first}::bigint, ${}::text, ${}::integer, ${}::bigint, {position})",
            first + 1,
            first + 2,
            first + 3
        );
        values.push(item.product_id.0.into());
        values.push(item.product_name.as_str().into());
        values.push(quantity.into());
        values.push(item.price.minor_units().into());
    }
    Ok((values, lines))
}

/// The single statement of [`SqlStore::place_in_one_statement`]. `lines` are the `VALUES`
/// rows of [`order_values`], `product_params` the lines' product-id parameters, `products`
/// how many distinct products the cart has, and `key_param` the idempotency key's
/// parameter, if the request has one.
///
/// `locked` takes the row locks in id order, as the transactional path does, and returns
/// each row's newest version (PostgreSQL re-reads a row it had to wait for), so `verdict`
/// judges the rows as they are at commit. Every write is conditional on `verdict`.
///
/// The writes filter on what `locked` and `claimed_key` returned, never on a column of
/// the row they update: their scans read the statement's snapshot, which may be older
/// than the locked row. (A product made limited after the snapshot would otherwise look
/// unlimited to the stock update, and keep its stock.) Each write finds its row already
/// locked by this statement and updates the newest version, computing the stock from it;
/// the `CHECK (stock >= 0)` constraint stands behind `verdict`. The answer is the locked
/// rows, each with the new order's id (NULL when nothing was written).
fn one_statement_sql(
    lines: &str,
    product_params: &str,
    products: usize,
    key_param: Option<usize>,
) -> String {
    let (claim_key, key_is_free, attach_key) = match key_param {
        Some(key) => (
            format!(
                r#"claimed_key AS (
    SELECT 1 FROM "idempotency_keys"
    WHERE "user_id" = $1 AND "key" = ${key} AND "order_id" IS NULL
    FOR UPDATE
), "#
            ),
            " AND EXISTS (SELECT 1 FROM claimed_key)",
            format!(
                r#", attached AS (
    UPDATE "idempotency_keys" SET "order_id" = new_order."id" FROM new_order
    WHERE "idempotency_keys"."user_id" = $1 AND "idempotency_keys"."key" = ${key}
)"#
            ),
        ),
        None => (String::new(), "", String::new()),
    };
    format!(
        r#"WITH line (product_id, product_name, quantity, price_minor, position) AS (
    VALUES {lines}
), locked AS (
    SELECT product."id", product."category_id", product."name", product."price_minor",
           product."is_active", product."sort_order", product."stock"
    FROM "products" AS product
    WHERE product."id" IN ({product_params})
    ORDER BY product."id"
    FOR UPDATE
), {claim_key}verdict AS (
    SELECT count(*) = {products}{key_is_free} AS ok
    FROM locked JOIN line ON line.product_id = locked."id"
    WHERE locked."is_active" AND locked."price_minor" = line.price_minor
      AND locked."name" = line.product_name
      AND (locked."stock" IS NULL OR locked."stock" >= line.quantity)
), taken AS (
    UPDATE "products" AS product SET "stock" = product."stock" - line.quantity
    FROM locked JOIN line ON line.product_id = locked."id", verdict
    WHERE verdict.ok AND product."id" = locked."id" AND locked."stock" IS NOT NULL
), new_order AS (
    INSERT INTO "orders" ("user_id", "status", "total_amount_minor", "delivery_address", "phone", "comment", "created_at", "updated_at")
    SELECT $1, $2, $3, $4, $5, $6, $7, $7 FROM verdict WHERE verdict.ok
    RETURNING "id"
), new_lines AS (
    INSERT INTO "order_items" ("order_id", "product_id", "product_name", "quantity", "price_minor")
    SELECT new_order."id", line.product_id, line.product_name, line.quantity, line.price_minor
    FROM new_order, line
    ORDER BY line.position
), new_event AS (
    INSERT INTO "outbox_events" ("kind", "order_id", "status", "next_attempt_at", "created_at")
    SELECT $8, new_order."id", $9, $7, $7 FROM new_order
){attach_key}
SELECT (SELECT "id" FROM new_order) AS "order_id", locked.* FROM locked"#
    )
}

/// A row of `locked`: the fields pricing reads.
fn locked_product(row: &sea_orm::QueryResult) -> Result<Product, RepositoryError> {
    let read = |err| repository_error(err, "failed to read a locked product");
    let id: i64 = row.try_get("", "id").map_err(read)?;
    let stock: Option<i32> = row.try_get("", "stock").map_err(read)?;
    Ok(Product {
        id: ProductId(id),
        category_id: CategoryId(row.try_get("", "category_id").map_err(read)?),
        name: row.try_get("", "name").map_err(read)?,
        description: None,
        price: money(row.try_get("", "price_minor").map_err(read)?, || {
            format!("the price of product {id}")
        })?,
        image_url: None,
        is_active: row.try_get("", "is_active").map_err(read)?,
        sort_order: row.try_get("", "sort_order").map_err(read)?,
        stock: stored_stock(id, stock)?,
    })
}

/// The draft's products as they are now, whether active or not (the pricing rule tells
/// the two failures apart).
///
/// On PostgreSQL the rows are locked `FOR UPDATE`, in ascending id order: a concurrent
/// placement or price change of the same products waits until this order commits, so the
/// snapshot is the price and the stock at commit time, and two carts never lock the same
/// products in opposite orders. The lock is exclusive even for unlimited products, whose
/// stock is not updated: a shared lock would have to be upgraded for the stock update,
/// which is how two carts deadlock. (SQLite has no row locks; the IMMEDIATE transaction
/// already excludes other writers.)
async fn products_for(
    transaction: &DatabaseTransaction,
    draft: &OrderDraft,
) -> Result<Vec<Product>, RepositoryError> {
    products::Entity::find()
        .filter(products::Column::Id.is_in(draft.product_ids().into_iter().map(|id| id.0)))
        .order_by_asc(products::Column::Id)
        .lock_exclusive()
        .all(transaction)
        .await
        .map_err(|err| repository_error(err, "failed to read the ordered products"))?
        .into_iter()
        .map(product_from_row)
        .collect()
}

/// Takes each line's quantity from its product's limited stock, in product-id order.
///
/// `price_order` has already checked the stock of the locked rows, so every update should
/// succeed; the condition (`stock >= n`) still guards the write itself, so that stock can
/// never go negative through a path that skipped the check (and the `CHECK (stock >= 0)`
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

    // PostgreSQL: every line in one statement. The rows are already locked (in id order)
    // by `products_for`, so this cannot deadlock; RETURNING says which lines it took.
    let mut refused = Vec::with_capacity(lines.len());
    if transaction.get_database_backend() == DatabaseBackend::Postgres && lines.len() > 1 {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(lines.len() * 2);
        let mut rows = Vec::with_capacity(lines.len());
        for line in &lines {
            let quantity = i32::try_from(line.quantity.get())
                .map_err(|err| corrupt_row(format!("quantity out of range: {err}")))?;
            rows.push(format!(
                "(${}::bigint, ${}::integer)",
                values.len() + 1,
                values.len() + 2
            ));
            values.push(line.product_id.0.into());
            values.push(quantity.into());
        }
        let sql = format!(
            r#"UPDATE "products" AS product SET "stock" = product."stock" - line.quantity
FROM (VALUES {}) AS line (id, quantity)
WHERE product."id" = line.id AND product."stock" >= line.quantity
RETURNING product."id""#,
            rows.join(", ")
        );
        let taken: Vec<i64> = transaction
            .query_all_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                sql,
                values,
            ))
            .await
            .map_err(|err| repository_error(err, "failed to take stock"))?
            .iter()
            .filter_map(|row| row.try_get::<i64>("", "id").ok())
            .collect();
        if taken.len() == lines.len() {
            return Ok(());
        }
        refused.extend(
            lines
                .into_iter()
                .filter(|line| !taken.contains(&line.product_id.0)),
        );
    } else {
        refused = lines;
    }

    let mut shortages = Vec::new();
    for line in refused {
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

/// Records that `key` placed `order_id`, in the order's transaction: the order and the
/// record commit together, so a retry finds the order even if the response is lost.
///
/// Only a key without an order takes it. A claim runs out after
/// [`domain::idempotency::IN_PROGRESS_LEASE`], after which a retry may take the key over
/// while this request still runs; whichever places its order first wins, and the other's
/// transaction is rolled back here with [`PlaceOrderError::IdempotencyKeyInUse`], so the
/// key still places one order. (On PostgreSQL the loser waits for the winner's row lock,
/// then sees its order.) The same answer fits a key that is gone: a retry claims it anew.
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
