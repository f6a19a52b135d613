//! [`OrderAdmin`] and [`AuditLog`] over SQL: every customer's orders for the admin API,
//! and the record of admin changes.

use async_trait::async_trait;
use domain::admin::{AuditEntry, AuditFilter, OrderDetails, OrderFilter};
use domain::lifecycle::AuditRecord;
use domain::ports::{AuditLog, OrderAdmin, OrderLifecycle};
use domain::{Order, OrderId, Page, Paginated, RepositoryError};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Select,
};
use time::OffsetDateTime;

use super::lines_of;
use crate::entities::{audit_log, orders, users};
use crate::error::{corrupt_row, repository_error};
use crate::store::{SqlStore, order_from_rows, timestamp_value, user_from_row};

#[async_trait]
impl OrderAdmin for SqlStore {
    async fn list_orders(
        &self,
        filter: &OrderFilter,
        page: Page,
    ) -> Result<Paginated<Order>, RepositoryError> {
        let backend = self.backend();
        let rows = matching_orders(filter, backend)
            .order_by_desc(orders::Column::CreatedAt)
            .order_by_desc(orders::Column::Id)
            .limit(u64::from(page.limit()))
            .offset(page.offset())
            .all(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to list orders"))?;
        let by_status_only = filter.created_from.is_none()
            && filter.created_to.is_none()
            && filter.customer.is_none();
        let total = if by_status_only {
            counted_orders(&self.db, filter.status).await?
        } else {
            matching_orders(filter, backend)
                .count(&self.db)
                .await
                .map_err(|err| repository_error(err, "failed to count orders"))?
        };
        let mut lines = lines_of(&self.db, rows.iter().map(|row| row.id).collect()).await?;
        let items = rows
            .into_iter()
            .map(|row| {
                let items = lines.remove(&row.id).unwrap_or_default();
                order_from_rows(row, items)
            })
            .collect::<Result<_, _>>()?;
        Ok(Paginated { items, total, page })
    }

    async fn order_details(&self, id: OrderId) -> Result<Option<OrderDetails>, RepositoryError> {
        let Some(row) = orders::Entity::find_by_id(id.0)
            .one(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to find order"))?
        else {
            return Ok(None);
        };
        let customer = users::Entity::find_by_id(row.user_id)
            .one(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to read an order's customer"))?
            .ok_or_else(|| corrupt_row(format!("order {} has no customer", row.id)))?;
        let items = lines_of(&self.db, vec![row.id])
            .await?
            .remove(&row.id)
            .unwrap_or_default();
        let order = order_from_rows(row, items)?;
        let history = self.history(id).await?;
        Ok(Some(OrderDetails {
            order,
            customer: user_from_row(customer)?,
            history,
        }))
    }
}

/// How many orders are in `status` (or in all), from the counts the database keeps
/// (migration 21's `order_status_counts`): a few rows read, however many orders there are.
async fn counted_orders(
    db: &impl ConnectionTrait,
    status: Option<domain::OrderStatus>,
) -> Result<u64, RepositoryError> {
    let mut query = Query::select()
        .expr_as(
            Expr::cust(r#"CAST(COALESCE(SUM("orders"), 0) AS BIGINT)"#),
            "total",
        )
        .from("order_status_counts")
        .to_owned();
    if let Some(status) = status {
        query.and_where(Expr::col("status").eq(status.as_str()));
    }
    let row = db
        .query_one(&query)
        .await
        .map_err(|err| repository_error(err, "failed to read the order counts"))?
        .ok_or_else(|| corrupt_row("the order counts gave no row".to_owned()))?;
    let total: i64 = row
        .try_get("", "total")
        .map_err(|err| repository_error(err, "failed to read the order counts"))?;
    u64::try_from(total).map_err(|_| corrupt_row(format!("a negative order count: {total}")))
}

/// The orders matching every condition of `filter`.
fn matching_orders(filter: &OrderFilter, backend: DatabaseBackend) -> Select<orders::Entity> {
    let mut query = orders::Entity::find();
    if let Some(status) = filter.status {
        query = query.filter(orders::Column::Status.eq(status.as_str()));
    }
    if let Some(from) = filter.created_from {
        query =
            query.filter(Expr::col(orders::Column::CreatedAt).gte(timestamp_value(backend, from)));
    }
    if let Some(to) = filter.created_to {
        query = query.filter(Expr::col(orders::Column::CreatedAt).lt(timestamp_value(backend, to)));
    }
    if let Some(customer) = filter.customer {
        let customers = sea_orm::sea_query::Query::select()
            .column(users::Column::Id)
            .from(users::Entity)
            .and_where(users::Column::TelegramId.eq(customer.get()))
            .to_owned();
        query = query.filter(orders::Column::UserId.in_subquery(customers));
    }
    query
}

#[async_trait]
impl AuditLog for SqlStore {
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<Paginated<AuditEntry>, RepositoryError> {
        let backend = self.backend();
        let rows = matching_audit(filter, backend)
            .order_by_desc(audit_log::Column::Id)
            .limit(u64::from(page.limit()))
            .offset(page.offset())
            .all(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to list the audit log"))?;
        let total = matching_audit(filter, backend)
            .count(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to count the audit log"))?;
        let items = rows
            .into_iter()
            .map(|row| {
                let json = |text: &str, what: &str| {
                    serde_json::from_str(text).map_err(|err| {
                        corrupt_row(format!(
                            "audit entry {} has unreadable {what}: {err}",
                            row.id
                        ))
                    })
                };
                Ok(AuditEntry {
                    id: row.id,
                    at: row.at,
                    before: json(&row.before, "before")?,
                    after: json(&row.after, "after")?,
                    actor: row.actor,
                    action: row.action,
                    entity: row.entity,
                    entity_id: row.entity_id,
                })
            })
            .collect::<Result<_, RepositoryError>>()?;
        Ok(Paginated { items, total, page })
    }
}

/// The audit entries matching every condition of `filter`.
fn matching_audit(filter: &AuditFilter, backend: DatabaseBackend) -> Select<audit_log::Entity> {
    let mut query = audit_log::Entity::find();
    if let Some(actor) = &filter.actor {
        query = query.filter(audit_log::Column::Actor.eq(actor.as_str()));
    }
    if let Some(entity) = &filter.entity {
        query = query.filter(audit_log::Column::Entity.eq(entity.as_str()));
    }
    if let Some(entity_id) = &filter.entity_id {
        query = query.filter(audit_log::Column::EntityId.eq(entity_id.as_str()));
    }
    if let Some(from) = filter.from {
        query = query.filter(Expr::col(audit_log::Column::At).gte(timestamp_value(backend, from)));
    }
    if let Some(to) = filter.to {
        query = query.filter(Expr::col(audit_log::Column::At).lt(timestamp_value(backend, to)));
    }
    query
}

/// Records an admin change in the caller's transaction.
pub(crate) async fn record_audit<C: ConnectionTrait>(
    connection: &C,
    record: &AuditRecord,
    at: OffsetDateTime,
) -> Result<(), RepositoryError> {
    let backend = connection.get_database_backend();
    let insert = Query::insert()
        .into_table(audit_log::Entity)
        .columns([
            audit_log::Column::At,
            audit_log::Column::Actor,
            audit_log::Column::Action,
            audit_log::Column::Entity,
            audit_log::Column::EntityId,
            audit_log::Column::Before,
            audit_log::Column::After,
        ])
        .values([
            Expr::val(timestamp_value(backend, at)),
            Expr::val(record.actor.clone()),
            Expr::val(record.action),
            Expr::val(record.entity),
            Expr::val(record.entity_id.clone()),
            Expr::val(record.before.to_string()),
            Expr::val(record.after.to_string()),
        ])
        .map_err(|err| RepositoryError::Unknown(anyhow::anyhow!("the audit row: {err}")))?
        .to_owned();
    connection
        .execute(&insert)
        .await
        .map_err(|err| repository_error(err, "failed to record an admin change"))?;
    Ok(())
}
