//! A word index for searches of more than one word, on PostgreSQL only.
//!
//! The trigram index of migration 13 finds a search's candidates from its trigrams, and a
//! catalog's words share their trigrams: with 100 000 products, «острый суп» reads the
//! posting lists of «ост», «стр», «суп» and the like, thousands of rows each, to find
//! the 55 that hold the phrase (about 3 ms a search, most of the database's time).
//!
//! A search of several words is more selective by its words than by its trigrams. The
//! catalog matches a search as a substring of `search_text`, whose words are separated by
//! single spaces (the application normalises both); a phrase «t1 t2 … tn» found in it
//! ends the word it starts in with `t1`, holds `t2` … `tn-1` as whole words, and starts a
//! word with `tn`. So:
//!
//! - `products.search_words` (generated from `search_text`): the product's distinct words,
//!   with a GIN index, which finds the products holding any of a few words;
//! - `search_dictionary`: every word any product has had, with a trigram index, which
//!   turns «the words ending in `t1`» or «starting with `tn`» into a few words.
//!
//! The catalog (`infra-postgres`'s `catalog.rs`) looks up each usable part of a phrase in
//! the dictionary, intersects the products holding one of the found words, and then
//! checks the phrase itself on those few rows. Words of more than 64 characters are too
//! long for the dictionary: a product holding one carries the empty word instead, and the
//! catalog always checks the products carrying it, so that nothing is missed.
//!
//! The dictionary only grows (a trigger adds the words of each new or changed product):
//! a word no product holds any more costs a lookup that finds nothing. Its size is the
//! catalog's vocabulary, far smaller than the catalog.
//!
//! Going down drops all of it; `search_text` and the trigram index stay. SQLite keeps its
//! scan of `search_text`; nothing changes on it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

// The dictionary's index takes each new word at once (`fastupdate = off`): with GIN's
// pending list, 100 000 new words (a catalog imported at once) would be scanned on every
// search until a vacuum, and the planner, counting them, would read the table instead.
// New words are rare after the first import, so their cost does not matter.
//
// Words are sorted before they are added so that two transactions adding the same new
// words take their index locks in one order.
const POSTGRES_UP: &str = r#"
CREATE FUNCTION botshop_search_words(search_text text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT CASE WHEN length(word) <= 64 THEN word ELSE '' END),
                    '{}')
    FROM unnest(string_to_array(search_text, ' ')) AS word
$$;

ALTER TABLE "products" ADD COLUMN "search_words" text[]
    GENERATED ALWAYS AS (botshop_search_words("search_text")) STORED;
CREATE INDEX "idx_products_search_words" ON "products" USING gin ("search_words");

CREATE TABLE "search_dictionary" ("word" text PRIMARY KEY);
INSERT INTO "search_dictionary" ("word")
SELECT DISTINCT word FROM "products", unnest("products"."search_words") AS word WHERE word <> '';
CREATE INDEX "idx_search_dictionary_trgm" ON "search_dictionary" USING gin ("word" gin_trgm_ops)
    WITH (fastupdate = off);

CREATE FUNCTION botshop_learn_search_words() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO "search_dictionary" ("word")
    SELECT word FROM unnest(NEW."search_words") AS word WHERE word <> '' ORDER BY word
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER "products_search_words_insert" AFTER INSERT ON "products"
    FOR EACH ROW EXECUTE FUNCTION botshop_learn_search_words();
CREATE TRIGGER "products_search_words_update" AFTER UPDATE OF "search_text" ON "products"
    FOR EACH ROW WHEN (OLD."search_text" IS DISTINCT FROM NEW."search_text")
    EXECUTE FUNCTION botshop_learn_search_words();
ANALYZE "search_dictionary";
"#;

const POSTGRES_DOWN: &str = r#"
DROP TRIGGER "products_search_words_update" ON "products";
DROP TRIGGER "products_search_words_insert" ON "products";
DROP FUNCTION botshop_learn_search_words();
DROP TABLE "search_dictionary";
ALTER TABLE "products" DROP COLUMN "search_words";
DROP FUNCTION botshop_search_words(text);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_UP)
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_DOWN)
                .await?;
        }
        Ok(())
    }
}
