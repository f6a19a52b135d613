//! Payments inside Telegram (a payment provider or Telegram Stars).
//!
//! - `products.price_stars`: a product's price in Telegram Stars, a positive whole number
//!   or NULL (the product cannot be paid in Stars). Pricing reads it, so the revision
//!   trigger of migration 8 now watches it too.
//! - `orders`: what the order owes and whether it is paid. `payment_status` is
//!   `not_required` (payments were off when it was placed; every existing order),
//!   `unpaid`, `paid` or `refunded`; `payment_currency` and `payment_amount` (in the
//!   currency's smallest units, or whole stars for `XTR`) are fixed when the order is
//!   placed; `payment_due_by` is when an unpaid order stops holding its stock; `paid_at`;
//!   `invoice_nonce` (the random half of the invoice's payload, so a payload cannot be
//!   forged into another order) and `invoice_link` (asking again returns the same link).
//!   A partial index finds the unpaid orders by their deadline.
//! - `payments`: every `successful_payment` Telegram delivered, unique by
//!   `telegram_payment_charge_id` (a redelivery changes nothing), with what became of it:
//!   `applied` (the order is paid), `refund_requested` (a Stars payment that came too
//!   late, refunded automatically) or `refund_manual` (a provider payment that came too
//!   late: the manager refunds it through the provider). `refunded_at` is set when
//!   Telegram reports the refund.
//! - `outbox_events.kind` admits `customer_notice` (a message to the customer about their
//!   payment) and `stars_refund` (a `refundStarPayment` call, delivered durably).
//!
//! Going down drops the payments and the new columns (the payment facts are lost with
//! them), and deletes the outbox events of the new kinds.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

use crate::m20250101_000018_outbox_manager_notice::{KINDS_AFTER, postgres_kinds, sqlite_rebuild};

#[derive(DeriveMigrationName)]
pub struct Migration;

const KINDS_NOW: &str = "'order_created', 'order_status_changed', 'manager_message_update', \
                         'manager_notice', 'customer_notice', 'stars_refund'";

const PAYMENT_STATUSES: &str = "'not_required', 'unpaid', 'paid', 'refunded'";
const OUTCOMES: &str = "'applied', 'refund_requested', 'refund_manual'";

fn revision_trigger_postgres(columns: &[&str]) -> String {
    let list = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let old = columns
        .iter()
        .map(|c| format!("OLD.\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let new = columns
        .iter()
        .map(|c| format!("NEW.\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"DROP TRIGGER products_revision ON "products";
CREATE TRIGGER products_revision
    BEFORE UPDATE OF {list} ON "products"
    FOR EACH ROW
    WHEN (({old}) IS DISTINCT FROM ({new}))
    EXECUTE FUNCTION products_bump_revision();
ALTER TABLE "products" ENABLE ALWAYS TRIGGER products_revision;
"#
    )
}

fn revision_trigger_sqlite(columns: &[&str]) -> String {
    let list = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let changed = columns
        .iter()
        .map(|c| format!("OLD.\"{c}\" IS NOT NEW.\"{c}\""))
        .collect::<Vec<_>>()
        .join(" OR ");
    format!(
        r#"DROP TRIGGER products_revision;
CREATE TRIGGER products_revision
    AFTER UPDATE OF {list} ON "products"
    FOR EACH ROW
    WHEN {changed}
BEGIN
    UPDATE "products" SET "revision" = OLD."revision" + 1 WHERE "id" = NEW."id";
END;
"#
    )
}

const WATCHED_BEFORE: [&str; 4] = ["name", "price_minor", "is_active", "category_id"];
const WATCHED_NOW: [&str; 5] = [
    "name",
    "price_minor",
    "price_stars",
    "is_active",
    "category_id",
];

/// The columns and tables, with the backend's type for an instant.
fn up_sql(instant: &str, id: &str) -> String {
    format!(
        r#"ALTER TABLE "products" ADD COLUMN "price_stars" integer NULL
    CONSTRAINT "ck_products_price_stars_positive" CHECK ("price_stars" > 0);
ALTER TABLE "orders" ADD COLUMN "payment_status" text NOT NULL DEFAULT 'not_required'
    CONSTRAINT "ck_orders_payment_status_known" CHECK ("payment_status" IN ({PAYMENT_STATUSES}));
ALTER TABLE "orders" ADD COLUMN "payment_currency" text NULL;
ALTER TABLE "orders" ADD COLUMN "payment_amount" bigint NULL
    CONSTRAINT "ck_orders_payment_amount_positive" CHECK ("payment_amount" > 0);
ALTER TABLE "orders" ADD COLUMN "payment_due_by" {instant} NULL;
ALTER TABLE "orders" ADD COLUMN "paid_at" {instant} NULL;
ALTER TABLE "orders" ADD COLUMN "invoice_nonce" text NULL;
ALTER TABLE "orders" ADD COLUMN "invoice_link" text NULL;
CREATE INDEX "idx_orders_unpaid_due" ON "orders" ("payment_due_by") WHERE "payment_status" = 'unpaid';
CREATE TABLE "payments" (
    "id" {id},
    "order_id" bigint NULL REFERENCES "orders" ("id") ON DELETE SET NULL ON UPDATE RESTRICT,
    "telegram_user_id" bigint NOT NULL,
    "currency" text NOT NULL,
    "total_amount" bigint NOT NULL,
    "invoice_payload" text NOT NULL,
    "telegram_payment_charge_id" text NOT NULL CONSTRAINT "uq_payments_telegram_charge" UNIQUE,
    "provider_payment_charge_id" text NULL,
    "outcome" text NOT NULL CONSTRAINT "ck_payments_outcome_known" CHECK ("outcome" IN ({OUTCOMES})),
    "received_at" {instant} NOT NULL,
    "refunded_at" {instant} NULL
);
CREATE INDEX "idx_payments_order_id" ON "payments" ("order_id");
"#
    )
}

const DOWN_SQL: &str = r#"DROP TABLE "payments";
DROP INDEX "idx_orders_unpaid_due";
ALTER TABLE "orders" DROP COLUMN "invoice_link";
ALTER TABLE "orders" DROP COLUMN "invoice_nonce";
ALTER TABLE "orders" DROP COLUMN "paid_at";
ALTER TABLE "orders" DROP COLUMN "payment_due_by";
ALTER TABLE "orders" DROP COLUMN "payment_amount";
ALTER TABLE "orders" DROP COLUMN "payment_currency";
ALTER TABLE "orders" DROP COLUMN "payment_status";
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        let sql = match manager.get_database_backend() {
            DatabaseBackend::Postgres => format!(
                "{}{}{}",
                up_sql("timestamp with time zone", "bigserial PRIMARY KEY"),
                revision_trigger_postgres(&WATCHED_NOW),
                postgres_kinds(KINDS_NOW),
            ),
            _ => format!(
                "{}{}{}",
                up_sql(
                    "timestamp_with_timezone_text",
                    "integer NOT NULL PRIMARY KEY AUTOINCREMENT"
                ),
                revision_trigger_sqlite(&WATCHED_NOW),
                sqlite_rebuild(KINDS_NOW, ""),
            ),
        };
        connection.execute_unprepared(&sql).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        let drop_events =
            r#"DELETE FROM "outbox_events" WHERE "kind" IN ('customer_notice', 'stars_refund');"#;
        let sql = match manager.get_database_backend() {
            DatabaseBackend::Postgres => format!(
                "{drop_events}\n{}\n{}{DOWN_SQL}ALTER TABLE \"products\" DROP COLUMN \"price_stars\";",
                postgres_kinds(KINDS_AFTER),
                revision_trigger_postgres(&WATCHED_BEFORE),
            ),
            _ => format!(
                "{}{}{DOWN_SQL}ALTER TABLE \"products\" DROP COLUMN \"price_stars\";",
                sqlite_rebuild(
                    KINDS_AFTER,
                    "WHERE \"kind\" NOT IN ('customer_notice', 'stars_refund')"
                ),
                revision_trigger_sqlite(&WATCHED_BEFORE),
            ),
        };
        connection.execute_unprepared(&sql).await?;
        Ok(())
    }

    /// Both backends have transactional DDL, so a step never half-applies.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
