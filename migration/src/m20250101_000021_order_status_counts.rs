//! `order_status_counts`: how many orders are in each status, kept by triggers, so that
//! the admin's order list can give its exact `X-Total-Count` without counting a million
//! rows (`count(*)` of the 900 000 DELIVERED orders of a big shop reads 900 000 index
//! entries on every page).
//!
//! The triggers fire for every writer (the application, an operator's SQL, a restore),
//! on insert, on a change of status and on delete, and a TRUNCATE of `orders` empties the
//! counts. On PostgreSQL the counts are spread over 32 rows per status (`shard` = the
//! order's id modulo 32), so that orders placed at the same moment rarely wait for one
//! another's counter row; a total is the sum of a status's rows. The PostgreSQL triggers
//! run once per statement over its transition tables, adding up what the statement did
//! before touching a counter: a row trigger would update one counter row a million times
//! in a bulk load's one transaction, and each update walks the chain of the previous
//! versions (quadratic). SQLite has one writer at a time, row triggers, and shard 0 only.
//! Filling the table counts the existing orders once. A later migration that rebuilds
//! `orders` on SQLite must create its triggers again.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &str = r#"
-- No order may be written between the count below and the triggers (an instance still
-- running the previous version during a rolling deploy): it would never be counted.
LOCK TABLE "orders" IN SHARE ROW EXCLUSIVE MODE;
CREATE TABLE "order_status_counts" (
    "status" varchar NOT NULL,
    "shard" smallint NOT NULL,
    "orders" bigint NOT NULL,
    PRIMARY KEY ("status", "shard")
);
INSERT INTO "order_status_counts" ("status", "shard", "orders")
SELECT "status", ("id" % 32)::smallint, count(*) FROM "orders" GROUP BY 1, 2;
CREATE FUNCTION orders_count_statuses() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO "order_status_counts" ("status", "shard", "orders")
        SELECT "status", ("id" % 32)::smallint, count(*) FROM new_orders GROUP BY 1, 2
        ORDER BY 1, 2
        ON CONFLICT ("status", "shard")
        DO UPDATE SET "orders" = "order_status_counts"."orders" + EXCLUDED."orders";
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE "order_status_counts" AS c SET "orders" = c."orders" - d.n
        FROM (SELECT "status", ("id" % 32)::smallint AS shard, count(*) AS n
              FROM old_orders GROUP BY 1, 2) AS d
        WHERE c."status" = d."status" AND c."shard" = d.shard;
    ELSE
        INSERT INTO "order_status_counts" ("status", "shard", "orders")
        SELECT "status", shard, sum(delta) FROM (
            SELECT "status", ("id" % 32)::smallint AS shard, -1 AS delta FROM old_orders
            UNION ALL
            SELECT "status", ("id" % 32)::smallint, 1 FROM new_orders
        ) AS changes
        GROUP BY 1, 2 HAVING sum(delta) <> 0
        ORDER BY 1, 2
        ON CONFLICT ("status", "shard")
        DO UPDATE SET "orders" = "order_status_counts"."orders" + EXCLUDED."orders";
    END IF;
    RETURN NULL;
END
$body$;
CREATE TRIGGER orders_count_insert AFTER INSERT ON "orders"
    REFERENCING NEW TABLE AS new_orders
    FOR EACH STATEMENT EXECUTE FUNCTION orders_count_statuses();
CREATE TRIGGER orders_count_update AFTER UPDATE ON "orders"
    REFERENCING OLD TABLE AS old_orders NEW TABLE AS new_orders
    FOR EACH STATEMENT EXECUTE FUNCTION orders_count_statuses();
CREATE TRIGGER orders_count_delete AFTER DELETE ON "orders"
    REFERENCING OLD TABLE AS old_orders
    FOR EACH STATEMENT EXECUTE FUNCTION orders_count_statuses();
ALTER TABLE "orders" ENABLE ALWAYS TRIGGER orders_count_insert;
ALTER TABLE "orders" ENABLE ALWAYS TRIGGER orders_count_update;
ALTER TABLE "orders" ENABLE ALWAYS TRIGGER orders_count_delete;
CREATE FUNCTION orders_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    DELETE FROM "order_status_counts";
    RETURN NULL;
END
$body$;
CREATE TRIGGER orders_count_truncate
    AFTER TRUNCATE ON "orders"
    FOR EACH STATEMENT EXECUTE FUNCTION orders_count_truncate();
ALTER TABLE "orders" ENABLE ALWAYS TRIGGER orders_count_truncate;
"#;

const POSTGRES_DOWN: &str = r#"
DROP TRIGGER orders_count_truncate ON "orders";
DROP FUNCTION orders_count_truncate();
DROP TRIGGER orders_count_delete ON "orders";
DROP TRIGGER orders_count_update ON "orders";
DROP TRIGGER orders_count_insert ON "orders";
DROP FUNCTION orders_count_statuses();
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
