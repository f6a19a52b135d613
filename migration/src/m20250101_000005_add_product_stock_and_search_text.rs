//! Limited stock and a normalised search text on products.
//!
//! `stock` is NULL for unlimited products (digital goods, made to order), so every
//! existing product stays orderable. `search_text` is what the catalog searches: the
//! application writes `domain::catalog::product_search_text` with every product it
//! writes, and this step fills it in for the products that exist already.

use sea_orm_migration::{prelude::*, schema::*};

use crate::product_search_text;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
    Name,
    Description,
    PriceMinor,
    IsActive,
    Stock,
    SearchText,
}

const PRODUCTS_PRICE_INDEX: &str = "idx_products_is_active_price_minor";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time. SQLite cannot add a
        // constraint to an existing table, but it accepts one declared with a new column
        // (and checks it against the existing rows), which is the form used here on both
        // backends.
        manager
            .alter_table(
                Table::alter()
                    .table(Products::Table)
                    .add_column(integer_null(Products::Stock).check((
                        "ck_products_stock_non_negative",
                        Expr::col(Products::Stock).gte(0),
                    )))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Products::Table)
                    .add_column(text(Products::SearchText).default(""))
                    .to_owned(),
            )
            .await?;
        backfill_search_text(manager).await?;

        // Serves the price filter and the price sorts of the active products. It is the
        // only new index: a search is a substring match that no B-tree can serve, and
        // `total` counts every match anyway. `stock` is deliberately not indexed, so that
        // PostgreSQL can update it in place (a HOT update) with every order.
        manager
            .create_index(
                Index::create()
                    .name(PRODUCTS_PRICE_INDEX)
                    .table(Products::Table)
                    .col(Products::IsActive)
                    .col(Products::PriceMinor)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(PRODUCTS_PRICE_INDEX)
                    .table(Products::Table)
                    .to_owned(),
            )
            .await?;
        // SQLite drops a column together with the CHECK declared on it.
        manager
            .alter_table(
                Table::alter()
                    .table(Products::Table)
                    .drop_column(Products::SearchText)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Products::Table)
                    .drop_column(Products::Stock)
                    .to_owned(),
            )
            .await
    }

    /// Both backends have transactional DDL, so a step never half-applies.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// Writes the search text of every existing product. It is computed here, in Rust, because
/// SQL cannot: SQLite's `lower()` folds only ASCII, and neither database folds `ё` into
/// `е`. A shop's catalog is small (hundreds of rows), so one update per row is fine.
async fn backfill_search_text(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let connection = manager.get_connection();
    let select = Query::select()
        .columns([Products::Id, Products::Name, Products::Description])
        .from(Products::Table)
        .order_by(Products::Id, Order::Asc)
        .to_owned();
    for row in connection.query_all(&select).await? {
        let id: i64 = row.try_get("", "id")?;
        let name: String = row.try_get("", "name")?;
        let description: Option<String> = row.try_get("", "description")?;
        let update = Query::update()
            .table(Products::Table)
            .value(
                Products::SearchText,
                product_search_text(&name, description.as_deref()),
            )
            .and_where(Expr::col(Products::Id).eq(id))
            .to_owned();
        connection.execute(&update).await?;
    }
    Ok(())
}
