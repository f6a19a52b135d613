//! Reading a customer's orders back: a page of them with their lines, or one.

use std::collections::HashMap;

use domain::{Order, OrderId, Page, Paginated, RepositoryError, UserId};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult, PaginatorTrait,
    QueryFilter, QueryOrder, Statement,
};

use crate::entities::{order_items, orders};
use crate::error::repository_error;
use crate::pg;
use crate::store::{SqlStore, order_from_rows};

/// The orders page with `$join` attaching each order's lines as `line`.
macro_rules! page_with_lines {
    ($join:literal) => {
        concat!(
            r#"SELECT page.*,
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
"#,
            $join,
            r#"
ORDER BY page."created_at" DESC, page."id" DESC, line."id" ASC"#
        )
    };
}

/// A customer's page of orders, newest first, each joined to its lines in line order;
/// every row carries the number of the customer's orders (`total_matching`). Parameters:
/// the user id, the limit, the offset.
///
/// The lines come from a LATERAL subquery, so PostgreSQL looks up each order's lines
/// separately, for the page's orders only (its `ORDER BY` keeps the planner from
/// flattening it into a plain join): a lookup by `order_id`, which the `order_items(order_id)`
/// index answers. A plain join let the statistics choose the join itself: right after a
/// burst of orders, before autovacuum had analysed the table, it hash-joined a sequential
/// scan of every order line, and the page fell from 1 600 to 340 requests a second.
pub const PAGE_WITH_LINES_POSTGRES: &str = page_with_lines!(
    r#"LEFT JOIN LATERAL (
    SELECT * FROM "order_items"
    WHERE "order_items"."order_id" = page."id"
    ORDER BY "order_items"."id"
) AS line ON TRUE"#
);

/// The same page on SQLite, which has no LATERAL and always loops over the page's orders
/// through the index. (`$n` placeholders, which sqlx binds on SQLite too.)
const PAGE_WITH_LINES_SQLITE: &str =
    page_with_lines!(r#"LEFT JOIN "order_items" AS line ON line."order_id" = page."id""#);

/// One page of the customer's orders, in one round trip: the page (with the total riding
/// along, `COUNT(*) OVER ()` counted before LIMIT) and its lines. Only a page past the end
/// has no row to carry the total, and counts separately.
pub(super) async fn list_for_user(
    store: &SqlStore,
    user: UserId,
    page: Page,
) -> Result<Paginated<Order>, RepositoryError> {
    let backend = store.backend();
    let limit = i64::from(page.limit());
    let offset = i64::try_from(page.offset()).unwrap_or(i64::MAX);
    let values: Vec<sea_orm::Value> = vec![user.0.into(), limit.into(), offset.into()];
    let found = match backend {
        DatabaseBackend::Postgres => {
            pg::fetch_all(&store.db, PAGE_WITH_LINES_POSTGRES, values).await
        }
        _ => {
            store
                .db
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    PAGE_WITH_LINES_SQLITE,
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
            .count(&store.db)
            .await
            .map_err(|err| repository_error(err, "failed to count orders"))?,
    };
    let items = orders
        .into_iter()
        .map(|(order, lines)| order_from_rows(order, lines))
        .collect::<Result<_, _>>()?;
    Ok(Paginated { items, total, page })
}

/// The customer's order `id`, or `None` if it is not theirs or does not exist.
pub(super) async fn find_for_user(
    store: &SqlStore,
    user: UserId,
    id: OrderId,
) -> Result<Option<Order>, RepositoryError> {
    let Some(order) = orders::Entity::find_by_id(id.0)
        .filter(orders::Column::UserId.eq(user.0))
        .one(&store.db)
        .await
        .map_err(|err| repository_error(err, "failed to find order"))?
    else {
        return Ok(None);
    };
    let items = lines_of(&store.db, vec![order.id])
        .await?
        .remove(&order.id)
        .unwrap_or_default();
    order_from_rows(order, items).map(Some)
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
