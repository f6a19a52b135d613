//! [`OrderLifecycle`] over SQL: a status change is one transaction that moves the status
//! only if it is still the one the domain checked the transition from (a compare-and-set),
//! writes the history row and the outbox events the change causes (the customer's message,
//! the manager's message refreshed), and for a cancellation returns the order's units to limited
//! stock, in product-id order like placement takes them, so the two never deadlock. A
//! cancellation locks the order's row, then returns the stock, then changes the status (whose
//! trigger updates the counts per status): placement locks products and then a counter, so
//! the counters always come last.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use domain::catalog_admin::CatalogChange;
use domain::lifecycle::{
    Applied, ChangedBy, OPEN_STATUSES, Scope, StatusChange, StatusHistoryEntry,
};
use domain::outbox::OutboxEvent;
use domain::ports::{OrderLifecycle, OrderPlaced};
use domain::{OrderId, OrderStatus, ProductId, RepositoryError, TelegramId};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::lines_of;
use crate::entities::{order_status_history, orders, products, users};
use crate::error::{corrupt_row, repository_error};
use crate::outbox::append_outbox_event;
use crate::store::{SqlStore, order_from_rows, payment_of, timestamp_value};
use crate::transaction::write_transaction;
use domain::payments::cancellation_refund_events;

#[async_trait]
impl OrderLifecycle for SqlStore {
    async fn current_status(
        &self,
        scope: Scope,
        order: OrderId,
    ) -> Result<Option<OrderStatus>, RepositoryError> {
        let mut query = orders::Entity::find_by_id(order.0)
            .select_only()
            .column(orders::Column::Status);
        if let Scope::Customer(user) = scope {
            query = query.filter(orders::Column::UserId.eq(user.0));
        }
        query
            .into_tuple::<String>()
            .one(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to read an order's status"))?
            .map(|status| parse_status(order.0, &status))
            .transpose()
    }

    async fn apply_status_change(&self, change: StatusChange) -> Result<Applied, RepositoryError> {
        let applied = write_transaction(&self.db, "a status change", async |transaction| {
            apply(transaction, &change).await
        })
        .await?;
        if let Applied::Changed(order) = &applied
            && order.status == OrderStatus::Cancelled
        {
            // The stock came back: cached answers showing the old stock are stale.
            self.committed(CatalogChange::Products(
                order.items.iter().map(|item| item.product_id).collect(),
            ));
        }
        Ok(applied)
    }

    async fn open_orders(&self, limit: u32) -> Result<Vec<OrderPlaced>, RepositoryError> {
        let open = OPEN_STATUSES.map(|status| status.as_str());
        let rows = orders::Entity::find()
            .filter(orders::Column::Status.is_in(open))
            .order_by_desc(orders::Column::CreatedAt)
            .order_by_desc(orders::Column::Id)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to list open orders"))?;
        let mut lines = lines_of(&self.db, rows.iter().map(|row| row.id).collect()).await?;
        let customers: HashMap<i64, i64> = users::Entity::find()
            .filter(users::Column::Id.is_in(rows.iter().map(|row| row.user_id)))
            .all(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to read the orders' customers"))?
            .into_iter()
            .map(|user| (user.id, user.telegram_id))
            .collect();
        rows.into_iter()
            .map(|row| {
                let customer = customers
                    .get(&row.user_id)
                    .and_then(|id| TelegramId::parse(*id).ok())
                    .ok_or_else(|| {
                        corrupt_row(format!("order {} has no valid customer", row.id))
                    })?;
                let items = lines.remove(&row.id).unwrap_or_default();
                Ok(OrderPlaced {
                    order: order_from_rows(row, items)?,
                    customer,
                })
            })
            .collect()
    }

    async fn refresh_manager_message(&self, order: OrderId) -> Result<(), RepositoryError> {
        write_transaction(&self.db, "a manager message refresh", async |transaction| {
            append_outbox_event(
                transaction,
                &OutboxEvent::ManagerMessageUpdate { order_id: order },
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn history(&self, order: OrderId) -> Result<Vec<StatusHistoryEntry>, RepositoryError> {
        let Some(created) = orders::Entity::find_by_id(order.0)
            .one(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to find order"))?
        else {
            return Ok(Vec::new());
        };
        let rows = order_status_history::Entity::find()
            .filter(order_status_history::Column::OrderId.eq(order.0))
            .order_by_asc(order_status_history::Column::Id)
            .all(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to read an order's history"))?;
        let mut history = vec![StatusHistoryEntry {
            from: None,
            status: OrderStatus::Pending,
            by: ChangedBy::Customer,
            at: created.created_at,
            note: None,
        }];
        for row in rows {
            history.push(StatusHistoryEntry {
                from: Some(parse_status(order.0, &row.from_status)?),
                status: parse_status(order.0, &row.to_status)?,
                by: changed_by(order.0, &row.changed_by, row.manager_telegram_id)?,
                at: row.changed_at,
                note: row.note,
            });
        }
        Ok(history)
    }
}

pub(crate) async fn apply(
    transaction: &DatabaseTransaction,
    change: &StatusChange,
) -> Result<Applied, RepositoryError> {
    let backend = transaction.get_database_backend();
    let order_id = change.order_id.0;
    let cancelling = change.to == OrderStatus::Cancelled;
    let mut refunds = Vec::new();
    if cancelling {
        // Locks in the order every writer takes them: the order's row, then the products
        // whose stock comes back, and only then (through the status change's trigger, at
        // its statement's end) the counters per status (migration 21). Placing an order
        // locks its products and then a counter, so taking a counter before the products
        // here could close a cycle with it.
        let mut current = orders::Entity::find_by_id(order_id);
        if backend == sea_orm::DatabaseBackend::Postgres {
            current = current.lock_exclusive();
        }
        let current = current
            .one(transaction)
            .await
            .map_err(|err| repository_error(err, "failed to read an order's status"))?;
        match current {
            None => return Ok(Applied::NotFound),
            Some(row) if row.status != change.from.as_str() => {
                return Ok(Applied::Stale {
                    current: parse_status(order_id, &row.status)?,
                });
            }
            Some(row) => {
                // A paid order's money goes back (the domain decides how), in this
                // transaction.
                let payment = payment_of(&row)?;
                let paid_by = crate::payments::applied_payment(transaction, order_id).await?;
                refunds = cancellation_refund_events(change.order_id, &payment, paid_by);
            }
        }
        let lines = lines_of(transaction, vec![order_id])
            .await?
            .remove(&order_id)
            .unwrap_or_default();
        return_stock(transaction, &lines).await?;
    }
    let moved = transaction
        .execute(
            &Query::update()
                .table(orders::Entity)
                .value(orders::Column::Status, change.to.as_str())
                .value(
                    orders::Column::UpdatedAt,
                    timestamp_value(backend, change.at),
                )
                .and_where(orders::Column::Id.eq(order_id))
                .and_where(orders::Column::Status.eq(change.from.as_str()))
                .to_owned(),
        )
        .await
        .map_err(|err| repository_error(err, "failed to change an order's status"))?
        .rows_affected();
    if moved != 1 {
        if cancelling {
            // The row is locked and was checked above (SQLite: the transaction is the
            // only writer): nothing can have moved it. Undo the stock rather than keep it.
            return Err(RepositoryError::Unknown(anyhow::anyhow!(
                "order {order_id} changed under its lock while it was cancelled"
            )));
        }
        let current = orders::Entity::find_by_id(order_id)
            .select_only()
            .column(orders::Column::Status)
            .into_tuple::<String>()
            .one(transaction)
            .await
            .map_err(|err| repository_error(err, "failed to read an order's status"))?;
        return Ok(match current {
            Some(status) => Applied::Stale {
                current: parse_status(order_id, &status)?,
            },
            None => Applied::NotFound,
        });
    }

    let manager = match change.by {
        ChangedBy::Manager(id) => Some(id.get()),
        _ => None,
    };
    transaction
        .execute(
            &Query::insert()
                .into_table(order_status_history::Entity)
                .columns([
                    order_status_history::Column::OrderId,
                    order_status_history::Column::FromStatus,
                    order_status_history::Column::ToStatus,
                    order_status_history::Column::ChangedBy,
                    order_status_history::Column::ManagerTelegramId,
                    order_status_history::Column::Note,
                    order_status_history::Column::ChangedAt,
                ])
                .values([
                    Expr::val(order_id),
                    Expr::val(change.from.as_str()),
                    Expr::val(change.to.as_str()),
                    Expr::val(change.by.kind()),
                    Expr::val(manager),
                    Expr::val(change.note.clone()),
                    Expr::val(timestamp_value(backend, change.at)),
                ])
                .map_err(|err| RepositoryError::Unknown(anyhow::anyhow!("the history row: {err}")))?
                .to_owned(),
        )
        .await
        .map_err(|err| repository_error(err, "failed to write the history row"))?;

    // What the change tells, written with it (the domain decides what).
    for event in change.events().iter().chain(&refunds) {
        append_outbox_event(transaction, event).await?;
    }
    if let Some(record) = change.audit() {
        super::admin::record_audit(transaction, &record, change.at).await?;
    }

    let order = orders::Entity::find_by_id(order_id)
        .one(transaction)
        .await
        .map_err(|err| repository_error(err, "failed to read the changed order"))?
        .ok_or_else(|| corrupt_row(format!("order {order_id} vanished while it changed")))?;
    let lines = lines_of(transaction, vec![order_id])
        .await?
        .remove(&order_id)
        .unwrap_or_default();
    if cancelling {
        // Other instances' cached answers show the old stock.
        let products = lines
            .iter()
            .map(|line| ProductId(line.product_id))
            .collect();
        crate::notify::announce(transaction, &CatalogChange::Products(products)).await?;
    }
    order_from_rows(order, lines).map(|order| Applied::Changed(Box::new(order)))
}

/// Gives a cancelled order's units back to limited stock, product by product in id order:
/// the order placement takes stock in.
async fn return_stock(
    transaction: &DatabaseTransaction,
    lines: &[crate::entities::order_items::Model],
) -> Result<(), RepositoryError> {
    let mut units: BTreeMap<i64, i64> = BTreeMap::new();
    for line in lines {
        *units.entry(line.product_id).or_default() += i64::from(line.quantity);
    }
    for (product, quantity) in units {
        transaction
            .execute(
                &Query::update()
                    .table(products::Entity)
                    .value(
                        products::Column::Stock,
                        Expr::col(products::Column::Stock).add(quantity),
                    )
                    .and_where(products::Column::Id.eq(product))
                    .and_where(products::Column::Stock.is_not_null())
                    .to_owned(),
            )
            .await
            .map_err(|err| repository_error(err, "failed to return stock"))?;
    }
    Ok(())
}

fn parse_status(order: i64, status: &str) -> Result<OrderStatus, RepositoryError> {
    status
        .parse()
        .map_err(|err| corrupt_row(format!("order {order} has an invalid status: {err}")))
}

fn changed_by(order: i64, kind: &str, manager: Option<i64>) -> Result<ChangedBy, RepositoryError> {
    match (kind, manager) {
        ("customer", _) => Ok(ChangedBy::Customer),
        ("system", _) => Ok(ChangedBy::System),
        ("manager", Some(id)) => TelegramId::parse(id)
            .map(ChangedBy::Manager)
            .map_err(|_| corrupt_row(format!("order {order}'s history names manager {id}"))),
        _ => Err(corrupt_row(format!(
            "order {order}'s history has an invalid author {kind:?}"
        ))),
    }
}
