//! `idx_products_search_text_trgm`: a trigram index of `products.search_text`, on
//! PostgreSQL only, so that a catalog search stays fast with 100 000 products.
//!
//! The catalog matches a search as a substring (`search_text LIKE '%…%'`), which no B-tree
//! can serve: without this index every search reads every active product. A GIN index of
//! `pg_trgm`'s trigrams serves `LIKE '%…%'` for any pattern of at least three characters
//! (PostgreSQL finds the candidate rows from the pattern's trigrams, then checks each).
//! Shorter searches have no trigram to look up and read the table as before.
//!
//! `pg_trgm` ships with PostgreSQL and is a trusted extension (PostgreSQL 13 and later),
//! so the database's owner may create it; where the server's role may not, a superuser
//! runs `CREATE EXTENSION pg_trgm` once and this step finds it there.
//!
//! Going down drops the index but keeps the extension: an extension belongs to the whole
//! database, where other indexes or queries may use it (dropping it would then fail, or
//! with `CASCADE` remove them), and on its own it holds no data and changes nothing of
//! ours.
//!
//! SQLite keeps its scan of `search_text` (a catalog there is small); nothing changes on
//! it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

// `gin_trgm_ops` resolves through the search path, where `CREATE EXTENSION` put it (the
// schema it is created in, `public` by default, like our tables).
const POSTGRES_UP: &str = r#"
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX "idx_products_search_text_trgm" ON "products" USING gin ("search_text" gin_trgm_ops);
"#;

const POSTGRES_DOWN: &str = r#"DROP INDEX "idx_products_search_text_trgm";"#;

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
