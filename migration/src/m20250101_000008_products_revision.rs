//! `products.revision`: a number the database bumps whenever a product changes in a way
//! that could change how an order of it is priced: its name, price, whether it is on sale,
//! or its category. The stock is left out on purpose: it changes with every order, and
//! the placement statement checks the units it takes directly (see the storage adapter's
//! `orders::place_postgres`).
//!
//! Placing an order on PostgreSQL prices the cart from what it last read of the products
//! and then sends one statement that writes only if every locked product still has the
//! revision that was priced; comparing one number means the statement need not know which
//! fields pricing reads.
//!
//! A trigger does the bump, so every writer bumps it: the application, an operator's SQL,
//! a script. On PostgreSQL the revisions come from one sequence, `products_revision_seq`,
//! for new products too, so a product id never shows the same revision with other data
//! (a product deleted and inserted again under its old id gets a new one), and the
//! trigger is `ENABLE ALWAYS`, so it also fires for writers that run as a replica
//! (logical replication, `session_replication_role = replica`). On SQLite the column and
//! a counting trigger exist too, so that both databases keep the same column with the
//! same meaning (SQLite places orders in a transaction and does not compare it).

use sea_orm_migration::sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Products {
    Table,
    Revision,
}

/// A change of a watched column gives the row the sequence's next value. The sequence
/// belongs to the column, so it goes with it.
const POSTGRES_UP: &str = r#"
CREATE SEQUENCE products_revision_seq;
ALTER TABLE "products" ADD COLUMN "revision" bigint NOT NULL DEFAULT nextval('products_revision_seq');
ALTER SEQUENCE products_revision_seq OWNED BY "products"."revision";
CREATE FUNCTION products_bump_revision() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    NEW."revision" := nextval('products_revision_seq');
    RETURN NEW;
END
$body$;
CREATE TRIGGER products_revision
    BEFORE UPDATE OF "name", "price_minor", "is_active", "category_id" ON "products"
    FOR EACH ROW
    WHEN ((OLD."name", OLD."price_minor", OLD."is_active", OLD."category_id")
          IS DISTINCT FROM (NEW."name", NEW."price_minor", NEW."is_active", NEW."category_id"))
    EXECUTE FUNCTION products_bump_revision();
ALTER TABLE "products" ENABLE ALWAYS TRIGGER products_revision;
"#;

const POSTGRES_DOWN: &str = r#"
DROP TRIGGER products_revision ON "products";
DROP FUNCTION products_bump_revision();
ALTER TABLE "products" DROP COLUMN "revision";
"#;

/// SQLite's triggers run after the row is written, so this one writes the revision back;
/// recursive triggers are off by default, and the update names no watched column anyway.
const SQLITE_UP: &str = r#"
CREATE TRIGGER products_revision
    AFTER UPDATE OF "name", "price_minor", "is_active", "category_id" ON "products"
    FOR EACH ROW
    WHEN OLD."name" IS NOT NEW."name" OR OLD."price_minor" IS NOT NEW."price_minor"
      OR OLD."is_active" IS NOT NEW."is_active" OR OLD."category_id" IS NOT NEW."category_id"
BEGIN
    UPDATE "products" SET "revision" = OLD."revision" + 1 WHERE "id" = NEW."id";
END;
"#;

const SQLITE_DOWN: &str = r#"DROP TRIGGER products_revision;"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_UP)
                .await?;
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Products::Table)
                    .add_column(big_integer(Products::Revision).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(SQLITE_UP)
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_DOWN)
                .await?;
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(SQLITE_DOWN)
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Products::Table)
                    .drop_column(Products::Revision)
                    .to_owned(),
            )
            .await
    }

    /// Both backends have transactional DDL, so a step never half-applies.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
