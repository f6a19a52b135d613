//! [`StatsRepository`] over SQL: three grouped statements over the period's orders.

use async_trait::async_trait;
use domain::ports::StatsRepository;
use domain::stats::{DayStats, Period, Sums, TOP_PRODUCTS, TopProduct};
use domain::{OrderStatus, ProductId, RepositoryError};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use time::Date;

use crate::error::{corrupt_row, repository_error};
use crate::store::{SqlStore, money, timestamp_value};

#[async_trait]
impl StatsRepository for SqlStore {
    async fn sums(&self, period: Period) -> Result<Sums, RepositoryError> {
        let backend = self.backend();
        // The UTC day as `YYYY-MM-DD`: SQLite keeps timestamps as fixed-width UTC text.
        let day = match backend {
            DatabaseBackend::Postgres => {
                r#"to_char("created_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD')"#
            }
            _ => r#"substr("created_at", 1, 10)"#,
        };
        let bounds = || {
            vec![
                timestamp_value(backend, period.from),
                timestamp_value(backend, period.to),
            ]
        };
        let per_day = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    r#"SELECT {day} AS "day", COUNT(*) AS "orders",
                       COALESCE(SUM(CASE WHEN "status" <> 'CANCELLED' THEN "total_amount_minor" END), 0) AS "revenue"
                       FROM "orders" WHERE "created_at" >= $1 AND "created_at" < $2
                       GROUP BY 1"#
                ),
                bounds(),
            ))
            .await
            .map_err(|err| repository_error(err, "failed to sum orders per day"))?;
        let mut days = Vec::with_capacity(per_day.len());
        for row in per_day {
            let text: String = row
                .try_get("", "day")
                .map_err(|err| repository_error(err, "failed to read a day"))?;
            let day = Date::parse(
                &text,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map_err(|err| corrupt_row(format!("an order day {text:?}: {err}")))?;
            days.push(DayStats {
                day,
                orders: count(&row, "orders")?,
                revenue: sum(&row, "revenue")?,
            });
        }

        let per_status = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                r#"SELECT "status", COUNT(*) AS "orders" FROM "orders"
                   WHERE "created_at" >= $1 AND "created_at" < $2 GROUP BY "status""#,
                bounds(),
            ))
            .await
            .map_err(|err| repository_error(err, "failed to count orders per status"))?;
        let mut by_status = Vec::with_capacity(per_status.len());
        for row in per_status {
            let status: String = row
                .try_get("", "status")
                .map_err(|err| repository_error(err, "failed to read a status"))?;
            let status = status
                .parse::<OrderStatus>()
                .map_err(|err| corrupt_row(format!("an order status {status:?}: {err}")))?;
            by_status.push((status, count(&row, "orders")?));
        }

        // Each product's name from its latest line (a product may have been renamed).
        let mut values = bounds();
        values.push(i64::from(TOP_PRODUCTS).into());
        let top = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                r#"SELECT line."product_id", SUM(line."quantity") AS "quantity",
                          SUM(line."quantity" * line."price_minor") AS "revenue",
                          MAX(line."id") AS "latest"
                   FROM "order_items" AS line JOIN "orders" AS o ON o."id" = line."order_id"
                   WHERE o."created_at" >= $1 AND o."created_at" < $2 AND o."status" <> 'CANCELLED'
                   GROUP BY line."product_id"
                   ORDER BY "quantity" DESC, "revenue" DESC, line."product_id"
                   LIMIT $3"#,
                values,
            ))
            .await
            .map_err(|err| repository_error(err, "failed to sum the best-selling products"))?;
        let mut top_products = Vec::with_capacity(top.len());
        for row in top {
            let product: i64 = row
                .try_get("", "product_id")
                .map_err(|err| repository_error(err, "failed to read a product id"))?;
            let latest: i64 = row
                .try_get("", "latest")
                .map_err(|err| repository_error(err, "failed to read a line id"))?;
            let name = self
                .db
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    r#"SELECT "product_name" FROM "order_items" WHERE "id" = $1"#,
                    [latest.into()],
                ))
                .await
                .map_err(|err| repository_error(err, "failed to read a product's name"))?
                .map(|row| row.try_get::<String>("", "product_name"))
                .transpose()
                .map_err(|err| repository_error(err, "failed to read a product's name"))?
                .unwrap_or_default();
            top_products.push(TopProduct {
                product_id: ProductId(product),
                name,
                quantity: count(&row, "quantity")?,
                revenue: sum(&row, "revenue")?,
            });
        }
        Ok(Sums {
            days,
            by_status,
            top_products,
        })
    }
}

/// A non-negative count or quantity column (`bigint` on PostgreSQL, whatever SQLite sums
/// to).
fn count(row: &sea_orm::QueryResult, column: &str) -> Result<u64, RepositoryError> {
    let value: i64 = row
        .try_get("", column)
        .map_err(|err| repository_error(err, "failed to read a count"))?;
    u64::try_from(value).map_err(|_| corrupt_row(format!("a negative {column}: {value}")))
}

/// A sum of kopecks as money. PostgreSQL sums `bigint` into `numeric`, read as text.
fn sum(row: &sea_orm::QueryResult, column: &str) -> Result<domain::Money, RepositoryError> {
    let minor = match row.try_get::<i64>("", column) {
        Ok(minor) => minor,
        Err(_) => row
            .try_get::<sea_orm::prelude::Decimal>("", column)
            .map_err(|err| repository_error(err, "failed to read a sum"))?
            .try_into()
            .map_err(|_| corrupt_row(format!("a sum {column} out of range")))?,
    };
    money(minor, || format!("the sum {column}"))
}
