//! The catalog: categories and the products in them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Categories {
    Table,
    Id,
    Name,
    Slug,
    SortOrder,
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
    CategoryId,
    Name,
    Description,
    PriceMinor,
    ImageUrl,
    IsActive,
    SortOrder,
    CreatedAt,
    UpdatedAt,
}

const PRODUCTS_CATEGORY_INDEX: &str = "idx_products_category_id_sort_order";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Categories::Table)
                    .col(big_pk_auto(Categories::Id))
                    .col(text(Categories::Name))
                    .col(text_uniq(Categories::Slug))
                    .col(integer(Categories::SortOrder).default(0))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Products::Table)
                    .col(big_pk_auto(Products::Id))
                    .col(big_integer(Products::CategoryId))
                    .col(text(Products::Name))
                    .col(text_null(Products::Description))
                    // Kopecks; see the crate docs for why money is an integer.
                    .col(big_integer(Products::PriceMinor).check((
                        "ck_products_price_minor_non_negative",
                        Expr::col(Products::PriceMinor).gte(0),
                    )))
                    .col(text_null(Products::ImageUrl))
                    .col(boolean(Products::IsActive).default(true))
                    .col(integer(Products::SortOrder).default(0))
                    .col(timestamp_with_time_zone(Products::CreatedAt))
                    .col(timestamp_with_time_zone(Products::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_products_category_id")
                            .from(Products::Table, Products::CategoryId)
                            .to(Categories::Table, Categories::Id)
                            // A category with products cannot vanish from under them.
                            .on_delete(ForeignKeyAction::Restrict)
                            .on_update(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;

        // Serves "active products of a category, by sort order".
        manager
            .create_index(
                Index::create()
                    .name(PRODUCTS_CATEGORY_INDEX)
                    .table(Products::Table)
                    .col(Products::CategoryId)
                    .col(Products::SortOrder)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(PRODUCTS_CATEGORY_INDEX)
                    .table(Products::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Products::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Categories::Table).to_owned())
            .await
    }

    /// Both backends have transactional DDL, so a step never half-applies.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
