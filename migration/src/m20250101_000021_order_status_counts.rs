//! `order_status_counts`: how many orders are in each status, kept by triggers, so that
//! the admin's order list can give its exact `X-Total-Count` without counting a million
//! rows (`count(*)` of the 900 000 DELIVERED orders of a big shop reads 900 000 index
//! entries on every page).
//!
//! The triggers fire for every writer (the application, an operator's SQL, a restore),
//! on insert, on a change of status and on delete, and a TRUNCATE of `orders` empties the
//! counts. On PostgreSQL the counts are spread over 32 rows per status (`shard` = the
//! order's id modulo 32), so that orders placed at the same moment rarely wait for one
//! another's counter row; a total is the sum of a status's rows. SQLite has one writer at a
//! time and uses shard 0 only. Filling the table counts the existing orders once.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &str = r#"
CREATE TABLE "order_status_counts" (
    "status" varchar NOT NULL,
    "shard" smallint NOT NULL,
    "orders" bigint NOT NULL,
    PRIMARY KEY ("status", "shard")
);
INSERT INTO "order_status_counts" ("status", "shard", "orders")
SELECT "status", ("id" % 32)::smallint, count(*) FROM "orders" GROUP BY 1, 2;
CREATE FUNCTION orders_count_status() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD."status" = NEW."status" AND OLD."id" = NEW."id" THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE "order_status_counts" SET "orders" = "orders" - 1
        WHERE "status" = OLD."status" AND "shard" = OLD."id" % 32;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO "order_status_counts" ("status", "shard", "orders")
        VALUES (NEW."status", NEW."id" % 32, 1)
        ON CONFLICT ("status", "shard")
        DO UPDATE SET "orders" = "order_status_counts"."orders" + 1;
    END IF;
    RETURN NULL;
END
$body$;
CREATE TRIGGER orders_count_status
    AFTER INSERT OR DELETE OR UPDATE OF "status", "id" ON "orders"
    FOR EACH ROW EXECUTE FUNCTION orders_count_status();
ALTER TABLE "orders" ENABLE ALWAYS TRIGGER orders_count_status;
CREATE FUNCTION orders_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    DELETE FROM "order_status_counts";
    RETURN NULL;
END
$body$;
CREATE TRIGGER orders_count_truncate
    AFTER TRUNCATE ON "orders"
    FOR EACH STATEMENT EXECUTE FUNCTION orders_count_truncate();
"#;

const POSTGRES_DOWN: &str = r#"
DROP TRIGGER orders_count_truncate ON "orders";
DROP FUNCTION orders_count_truncate();
DROP TRIGGER orders_count_status ON "orders";
DROP FUNCTION orders_count_status();
DROP TABLE "order_status_counts";
"#;

const SQLITE_UP: &str = r#"
CREATE TABLE "order_status_counts" (
    "status" varchar NOT NULL,
    "shard" integer NOT NULL,
    "orders" integer NOT NULL,
    PRIMARY KEY ("status", "shard")
);
INSERT INTO "order_status_counts" ("status", "shard", "orders")
SELECT "status", 0, count(*) FROM "orders" GROUP BY "status";
CREATE TRIGGER orders_count_insert AFTER INSERT ON "orders"
BEGIN
    INSERT INTO "order_status_counts" ("status", "shard", "orders") VALUES (NEW."status", 0, 1)
    ON CONFLICT ("status", "shard") DO UPDATE SET "orders" = "orders" + 1;
END;
CREATE TRIGGER orders_count_update AFTER UPDATE OF "status" ON "orders"
    WHEN OLD."status" IS NOT NEW."status"
BEGIN
    UPDATE "order_status_counts" SET "orders" = "orders" - 1
    WHERE "status" = OLD."status" AND "shard" = 0;
    INSERT INTO "order_status_counts" ("status", "shard", "orders") VALUES (NEW."status", 0, 1)
    ON CONFLICT ("status", "shard") DO UPDATE SET "orders" = "orders" + 1;
END;
CREATE TRIGGER orders_count_delete AFTER DELETE ON "orders"
BEGIN
    UPDATE "order_status_counts" SET "orders" = "orders" - 1
    WHERE "status" = OLD."status" AND "shard" = 0;
END;
"#;

const SQLITE_DOWN: &str = r#"
DROP TRIGGER orders_count_delete;
DROP TRIGGER orders_count_update;
DROP TRIGGER orders_count_insert;
DROP TABLE "order_status_counts";
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = match manager.get_database_backend() {
            DatabaseBackend::Postgres => POSTGRES_UP,
            _ => SQLITE_UP,
        };
        manager.get_connection().execute_unprepared(sql).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = match manager.get_database_backend() {
            DatabaseBackend::Postgres => POSTGRES_DOWN,
            _ => SQLITE_DOWN,
        };
        manager.get_connection().execute_unprepared(sql).await?;
        Ok(())
    }
}
