//! The category tree: `categories.parent_id` (a root has none) and `categories.is_active`.
//! Existing categories become active roots.
//!
//! The database keeps the tree a tree even when the application is bypassed:
//! - a category is never its own parent (a CHECK), and a parent must exist and cannot be
//!   deleted while it has children (on PostgreSQL a foreign key, `ON DELETE RESTRICT`; on
//!   SQLite, which cannot drop a column a foreign key names, triggers);
//! - a trigger refuses, on insert and on every change of `parent_id`, a parent that is
//!   the category itself or one of its descendants (a cycle), and a tree deeper than
//!   [`MAX_CATEGORY_LEVELS`] levels (a root is level 1), counting the subtree a moved
//!   category brings along.
//!
//! On PostgreSQL the trigger walks the tree with a recursive query and first takes a
//! transaction-scoped advisory lock, so that two concurrent moves (A under B, B under A)
//! cannot each pass against the tree the other is changing. SQLite cannot use `WITH` in a
//! trigger, and serialises writers anyway; its triggers look at most three levels up and
//! two down, which covers every tree the depth rule admits.
//!
//! Both refuse with the message `category tree: ...` (on PostgreSQL with SQLSTATE 23514,
//! `check_violation`). Only operators' SQL and the seed reach them today; the admin API
//! will check the rule first and map a refusal to a 409.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

/// How deep the tree may be: a root, its children, their children.
pub const MAX_CATEGORY_LEVELS: u32 = 3;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &str = r#"
ALTER TABLE "categories"
    ADD COLUMN "parent_id" bigint REFERENCES "categories" ("id") ON DELETE RESTRICT,
    ADD COLUMN "is_active" boolean NOT NULL DEFAULT true,
    ADD CONSTRAINT "categories_not_own_parent" CHECK ("parent_id" <> "id");
CREATE INDEX "idx_categories_parent_id" ON "categories" ("parent_id");

CREATE FUNCTION categories_check_tree() RETURNS trigger LANGUAGE plpgsql AS $body$
DECLARE
    parent_level integer;
    subtree_height integer;
BEGIN
    IF NEW."parent_id" IS NULL THEN
        RETURN NEW;
    END IF;
    -- One tree change at a time, so that each sees the tree the other left.
    PERFORM pg_advisory_xact_lock(hashtext('botshop.categories_tree'));
    -- The new parent's ancestors, the parent included, with their level from it.
    IF EXISTS (
        WITH RECURSIVE up ("id", "parent_id", "steps") AS (
            SELECT "id", "parent_id", 0 FROM "categories" WHERE "id" = NEW."parent_id"
            UNION ALL
            SELECT c."id", c."parent_id", up."steps" + 1
            FROM "categories" c JOIN up ON c."id" = up."parent_id"
            WHERE up."steps" < 64
        )
        SELECT 1 FROM up WHERE "id" = NEW."id"
    ) THEN
        RAISE EXCEPTION 'category tree: category % cannot be under its own descendant %',
            NEW."id", NEW."parent_id" USING ERRCODE = 'check_violation';
    END IF;
    WITH RECURSIVE up ("id", "parent_id", "steps") AS (
        SELECT "id", "parent_id", 1 FROM "categories" WHERE "id" = NEW."parent_id"
        UNION ALL
        SELECT c."id", c."parent_id", up."steps" + 1
        FROM "categories" c JOIN up ON c."id" = up."parent_id"
        WHERE up."steps" < 64
    )
    SELECT max("steps") INTO parent_level FROM up;
    -- How many levels the category brings along below itself (0: none).
    WITH RECURSIVE down ("id", "depth") AS (
        SELECT "id", 0 FROM "categories" WHERE "id" = NEW."id"
        UNION ALL
        SELECT c."id", down."depth" + 1
        FROM "categories" c JOIN down ON c."parent_id" = down."id"
        WHERE down."depth" < 64
    )
    SELECT coalesce(max("depth"), 0) INTO subtree_height FROM down;
    IF coalesce(parent_level, 0) + 1 + subtree_height > 3 THEN
        -- MAX_CATEGORY_LEVELS
        RAISE EXCEPTION 'category tree: at most 3 levels (category % under %)',
            NEW."id", NEW."parent_id" USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$body$;
CREATE TRIGGER categories_tree
    BEFORE INSERT OR UPDATE OF "parent_id" ON "categories"
    FOR EACH ROW EXECUTE FUNCTION categories_check_tree();
ALTER TABLE "categories" ENABLE ALWAYS TRIGGER categories_tree;
"#;

const POSTGRES_DOWN: &str = r#"
DROP TRIGGER categories_tree ON "categories";
DROP FUNCTION categories_check_tree();
DROP INDEX "idx_categories_parent_id";
ALTER TABLE "categories"
    DROP CONSTRAINT "categories_not_own_parent",
    DROP COLUMN "is_active",
    DROP COLUMN "parent_id";
"#;

/// SQLite's part of the rule, as one `WHEN` condition over `NEW`: the new parent's
/// ancestors (`p1` the parent, `p2`, `p3` above it) and the category's own children and
/// grandchildren. A valid tree has at most three levels, so three ancestors reach past
/// the root and a moved category's subtree is at most two levels deep.
const SQLITE_CYCLE: &str = r#"NEW."parent_id" IS NOT NULL AND (
        NEW."parent_id" = NEW."id"
        OR NEW."id" = (SELECT "parent_id" FROM "categories" WHERE "id" = NEW."parent_id")
        OR NEW."id" = (SELECT p2."parent_id" FROM "categories" p1
                       JOIN "categories" p2 ON p2."id" = p1."parent_id"
                       WHERE p1."id" = NEW."parent_id")
    )"#;

/// The new parent's level (1 for a root) plus one, plus the levels of the category's
/// subtree, above 3.
const SQLITE_TOO_DEEP: &str = r#"NEW."parent_id" IS NOT NULL AND (
        1
        + (SELECT CASE
               WHEN p1."parent_id" IS NULL THEN 1
               WHEN p2."parent_id" IS NULL THEN 2
               ELSE 3 END
           FROM "categories" p1 LEFT JOIN "categories" p2 ON p2."id" = p1."parent_id"
           WHERE p1."id" = NEW."parent_id")
        + CASE
              WHEN EXISTS (SELECT 1 FROM "categories" c JOIN "categories" g
                           ON g."parent_id" = c."id" WHERE c."parent_id" = NEW."id") THEN 2
              WHEN EXISTS (SELECT 1 FROM "categories" WHERE "parent_id" = NEW."id") THEN 1
              ELSE 0 END
    ) > 3"#;

fn sqlite_up() -> String {
    let mut sql = String::from(
        r#"
ALTER TABLE "categories" ADD COLUMN "parent_id" integer
    CONSTRAINT "categories_not_own_parent" CHECK ("parent_id" <> "id");
ALTER TABLE "categories" ADD COLUMN "is_active" boolean NOT NULL DEFAULT true;
CREATE INDEX "idx_categories_parent_id" ON "categories" ("parent_id");
"#,
    );
    for (event, name) in [("INSERT", "insert"), ("UPDATE OF \"parent_id\"", "update")] {
        sql.push_str(&format!(
            r#"
CREATE TRIGGER "categories_tree_cycle_{name}" BEFORE {event} ON "categories"
    FOR EACH ROW WHEN {SQLITE_CYCLE}
BEGIN
    SELECT RAISE(ABORT, 'category tree: a category cannot be under its own descendant');
END;
CREATE TRIGGER "categories_tree_depth_{name}" BEFORE {event} ON "categories"
    FOR EACH ROW WHEN {SQLITE_TOO_DEEP}
BEGIN
    SELECT RAISE(ABORT, 'category tree: at most 3 levels');
END;
"#
        ));
    }
    // What the foreign key does on PostgreSQL. SQLite cannot drop a column a foreign key
    // names, so the column has none and these triggers keep the rule instead.
    sql.push_str(
        r#"
CREATE TRIGGER "categories_parent_exists_insert" BEFORE INSERT ON "categories"
    FOR EACH ROW WHEN NEW."parent_id" IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM "categories" WHERE "id" = NEW."parent_id")
BEGIN
    SELECT RAISE(ABORT, 'category tree: the parent category does not exist');
END;
CREATE TRIGGER "categories_parent_exists_update" BEFORE UPDATE OF "parent_id" ON "categories"
    FOR EACH ROW WHEN NEW."parent_id" IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM "categories" WHERE "id" = NEW."parent_id")
BEGIN
    SELECT RAISE(ABORT, 'category tree: the parent category does not exist');
END;
CREATE TRIGGER "categories_keep_children" BEFORE DELETE ON "categories"
    FOR EACH ROW WHEN EXISTS (SELECT 1 FROM "categories" WHERE "parent_id" = OLD."id")
BEGIN
    SELECT RAISE(ABORT, 'category tree: a category with subcategories cannot be deleted');
END;
"#,
    );
    sql
}

const SQLITE_DOWN: &str = r#"
DROP TRIGGER "categories_parent_exists_insert";
DROP TRIGGER "categories_parent_exists_update";
DROP TRIGGER "categories_keep_children";
DROP TRIGGER "categories_tree_cycle_insert";
DROP TRIGGER "categories_tree_depth_insert";
DROP TRIGGER "categories_tree_cycle_update";
DROP TRIGGER "categories_tree_depth_update";
DROP INDEX "idx_categories_parent_id";
ALTER TABLE "categories" DROP COLUMN "is_active";
ALTER TABLE "categories" DROP COLUMN "parent_id";
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => connection.execute_unprepared(POSTGRES_UP).await?,
            _ => connection.execute_unprepared(&sqlite_up()).await?,
        };
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => connection.execute_unprepared(POSTGRES_DOWN).await?,
            _ => connection.execute_unprepared(SQLITE_DOWN).await?,
        };
        Ok(())
    }
}
