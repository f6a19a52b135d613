//! [`PaymentRepository`] over SQL: invoices' nonces and links on the order, and every
//! `successful_payment` in `payments` (migration 22), recorded once by its
//! `telegram_payment_charge_id` in the transaction that acts on it.
//!
//! Recording a payment locks the order its payload names first (PostgreSQL: `FOR UPDATE`;
//! SQLite: the IMMEDIATE transaction is the only writer), so a payment and an expiry or a
//! cancellation of the same order happen one after the other: whichever comes second sees
//! what the first did. The domain judges the payment against the order as locked; a
//! payment that pays it marks it paid and moves it PENDING → CONFIRMED through the same
//! status change as every other ([`crate::orders::lifecycle::apply`]).

use async_trait::async_trait;
use domain::lifecycle::Applied;
use domain::payments::{
    PayableOrder, PaymentId, PaymentRecorded, PaymentRepository, PaymentStatus, PaymentVerdict,
    ReceivedPayment, RefundedPayment, confirmation, judge_payment,
};
use domain::{OrderId, OrderStatus, RepositoryError, TelegramId};
use sea_orm::sea_query::Query;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use time::OffsetDateTime;

use crate::entities::{orders, payments, users};
use crate::error::{corrupt_row, repository_error};
use crate::outbox::append_outbox_event;
use crate::store::{SqlStore, money, payment_of, timestamp_value};
use crate::transaction::write_transaction;

/// The order as payments see it, locked when `lock` (PostgreSQL).
async fn payable<C: ConnectionTrait>(
    connection: &C,
    order: OrderId,
    lock: bool,
) -> Result<Option<PayableOrder>, RepositoryError> {
    let mut query = orders::Entity::find_by_id(order.0);
    if lock && connection.get_database_backend() == DatabaseBackend::Postgres {
        query = query.lock_exclusive();
    }
    let Some(row) = query
        .one(connection)
        .await
        .map_err(|err| repository_error(err, "failed to read an order to pay"))?
    else {
        return Ok(None);
    };
    let customer: i64 = users::Entity::find_by_id(row.user_id)
        .select_only()
        .column(users::Column::TelegramId)
        .into_tuple()
        .one(connection)
        .await
        .map_err(|err| repository_error(err, "failed to read an order's customer"))?
        .ok_or_else(|| corrupt_row(format!("order {} has no customer", row.id)))?;
    let id = row.id;
    Ok(Some(PayableOrder {
        order_id: order,
        status: row
            .status
            .parse::<OrderStatus>()
            .map_err(|err| corrupt_row(format!("order {id}: {err}")))?,
        total_amount: money(row.total_amount_minor, || {
            format!("the total of order {id}")
        })?,
        customer: TelegramId::parse(customer)
            .map_err(|_| corrupt_row(format!("order {id}'s customer has an invalid id")))?,
        payment: payment_of(&row)?,
        invoice_nonce: row.invoice_nonce,
        invoice_link: row.invoice_link,
    }))
}

/// The recorded payment that paid `order`, if one did.
pub(crate) async fn applied_payment<C: ConnectionTrait>(
    connection: &C,
    order: i64,
) -> Result<Option<PaymentId>, RepositoryError> {
    payments::Entity::find()
        .select_only()
        .column(payments::Column::Id)
        .filter(payments::Column::OrderId.eq(order))
        .filter(payments::Column::Outcome.eq("applied"))
        .order_by_asc(payments::Column::Id)
        .into_tuple::<i64>()
        .one(connection)
        .await
        .map(|id| id.map(PaymentId))
        .map_err(|err| repository_error(err, "failed to read an order's payment"))
}

#[async_trait]
impl PaymentRepository for SqlStore {
    async fn payable_order(&self, order: OrderId) -> Result<Option<PayableOrder>, RepositoryError> {
        payable(&self.db, order, false).await
    }

    async fn claim_invoice_nonce(
        &self,
        order: OrderId,
        nonce: &str,
    ) -> Result<String, RepositoryError> {
        self.db
            .execute(
                &Query::update()
                    .table(orders::Entity)
                    .value(orders::Column::InvoiceNonce, nonce)
                    .and_where(orders::Column::Id.eq(order.0))
                    .and_where(orders::Column::InvoiceNonce.is_null())
                    .to_owned(),
            )
            .await
            .map_err(|err| repository_error(err, "failed to store an invoice's nonce"))?;
        orders::Entity::find_by_id(order.0)
            .select_only()
            .column(orders::Column::InvoiceNonce)
            .into_tuple::<Option<String>>()
            .one(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to read an invoice's nonce"))?
            .flatten()
            .ok_or_else(|| corrupt_row(format!("order {} lost its invoice nonce", order.0)))
    }

    async fn store_invoice_link(
        &self,
        order: OrderId,
        nonce: &str,
        link: &str,
    ) -> Result<(), RepositoryError> {
        self.db
            .execute(
                &Query::update()
                    .table(orders::Entity)
                    .value(orders::Column::InvoiceLink, link)
                    .and_where(orders::Column::Id.eq(order.0))
                    .and_where(orders::Column::InvoiceNonce.eq(nonce))
                    .and_where(orders::Column::InvoiceLink.is_null())
                    .to_owned(),
            )
            .await
            .map_err(|err| repository_error(err, "failed to store an invoice link"))?;
        Ok(())
    }

    async fn record_payment(
        &self,
        payment: &ReceivedPayment,
        at: OffsetDateTime,
    ) -> Result<PaymentRecorded, RepositoryError> {
        write_transaction(&self.db, "a payment", async |transaction| {
            record(transaction, payment, at).await
        })
        .await
    }

    async fn record_refund(
        &self,
        refund: &RefundedPayment,
        at: OffsetDateTime,
    ) -> Result<bool, RepositoryError> {
        write_transaction(&self.db, "a refund", async |transaction| {
            let backend = transaction.get_database_backend();
            let Some(row) = payments::Entity::find()
                .filter(
                    payments::Column::TelegramPaymentChargeId
                        .eq(refund.telegram_payment_charge_id.as_str()),
                )
                .one(transaction)
                .await
                .map_err(|err| repository_error(err, "failed to find a refunded payment"))?
            else {
                return Ok(false);
            };
            transaction
                .execute(
                    &Query::update()
                        .table(payments::Entity)
                        .value(payments::Column::RefundedAt, timestamp_value(backend, at))
                        .and_where(payments::Column::Id.eq(row.id))
                        .and_where(payments::Column::RefundedAt.is_null())
                        .to_owned(),
                )
                .await
                .map_err(|err| repository_error(err, "failed to mark a payment refunded"))?;
            if let (Some(order), "applied") = (row.order_id, row.outcome.as_str()) {
                transaction
                    .execute(
                        &Query::update()
                            .table(orders::Entity)
                            .value(
                                orders::Column::PaymentStatus,
                                PaymentStatus::Refunded.as_str(),
                            )
                            .and_where(orders::Column::Id.eq(order))
                            .and_where(
                                orders::Column::PaymentStatus.eq(PaymentStatus::Paid.as_str()),
                            )
                            .to_owned(),
                    )
                    .await
                    .map_err(|err| repository_error(err, "failed to mark an order refunded"))?;
            }
            Ok(true)
        })
        .await
    }

    async fn expired_unpaid(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OrderId>, RepositoryError> {
        let backend = self.backend();
        orders::Entity::find()
            .select_only()
            .column(orders::Column::Id)
            .filter(orders::Column::PaymentStatus.eq(PaymentStatus::Unpaid.as_str()))
            .filter(orders::Column::PaymentDueBy.lte(timestamp_value(backend, now)))
            .filter(orders::Column::Status.eq(OrderStatus::Pending.as_str()))
            .order_by_asc(orders::Column::PaymentDueBy)
            .order_by_asc(orders::Column::Id)
            .limit(u64::from(limit))
            .into_tuple::<i64>()
            .all(&self.db)
            .await
            .map(|ids| ids.into_iter().map(OrderId).collect())
            .map_err(|err| {
                repository_error(err, "failed to find unpaid orders past their deadline")
            })
    }
}

/// Records `payment` and acts on it, in `transaction`.
async fn record(
    transaction: &sea_orm::DatabaseTransaction,
    payment: &ReceivedPayment,
    at: OffsetDateTime,
) -> Result<PaymentRecorded, RepositoryError> {
    let backend = transaction.get_database_backend();
    let order = match payment.order_id() {
        Some(order) => payable(transaction, order, true).await?,
        None => None,
    };
    let verdict = judge_payment(order.as_ref(), payment);
    let outcome = verdict.outcome(payment);
    let order_id = order.as_ref().map(|order| order.order_id);
    let insert = Statement::from_sql_and_values(
        backend,
        r#"INSERT INTO "payments" ("order_id", "telegram_user_id", "currency", "total_amount",
    "invoice_payload", "telegram_payment_charge_id", "provider_payment_charge_id", "outcome",
    "received_at")
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT ("telegram_payment_charge_id") DO NOTHING
RETURNING "id""#,
        [
            order_id.map(|id| id.0).into(),
            payment.from.into(),
            payment.currency.as_str().into(),
            payment.total_amount.into(),
            payment.payload.as_str().into(),
            payment.telegram_payment_charge_id.as_str().into(),
            payment.provider_payment_charge_id.clone().into(),
            outcome.as_str().into(),
            timestamp_value(backend, at),
        ],
    );
    let Some(row) = transaction
        .query_one_raw(insert)
        .await
        .map_err(|err| repository_error(err, "failed to record a payment"))?
    else {
        return Ok(PaymentRecorded::Duplicate);
    };
    let recorded = PaymentId(
        row.try_get::<i64>("", "id")
            .map_err(|err| repository_error(err, "failed to read a recorded payment's id"))?,
    );
    let Some(order_id) = order_id else {
        tracing::error!(
            payment_id = recorded.0,
            "a payment whose payload names no order of this shop: recorded; refund it by hand"
        );
        return Ok(PaymentRecorded::Recorded(outcome));
    };
    let mut confirmed = false;
    if verdict == PaymentVerdict::Apply {
        let paid = transaction
            .execute(
                &Query::update()
                    .table(orders::Entity)
                    .value(orders::Column::PaymentStatus, PaymentStatus::Paid.as_str())
                    .value(orders::Column::PaidAt, timestamp_value(backend, at))
                    .and_where(orders::Column::Id.eq(order_id.0))
                    .and_where(orders::Column::PaymentStatus.eq(PaymentStatus::Unpaid.as_str()))
                    .to_owned(),
            )
            .await
            .map_err(|err| repository_error(err, "failed to mark an order paid"))?
            .rows_affected();
        // The order is locked and was judged unpaid: anything else means the data changed
        // under the lock, and nothing is kept.
        let changed_under_lock = || {
            RepositoryError::Unknown(anyhow::anyhow!(
                "order {} changed under its lock while it was paid",
                order_id.0
            ))
        };
        if paid != 1 {
            return Err(changed_under_lock());
        }
        let change = order
            .as_ref()
            .and_then(|order| confirmation(order_id, order.status, at));
        if let Some(change) = change {
            match crate::orders::lifecycle::apply(transaction, &change).await? {
                Applied::Changed(_) => confirmed = true,
                _ => return Err(changed_under_lock()),
            }
        }
    }
    for event in verdict.events(order_id, payment, recorded, confirmed) {
        append_outbox_event(transaction, &event).await?;
    }
    Ok(PaymentRecorded::Recorded(outcome))
}
