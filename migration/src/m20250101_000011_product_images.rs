//! `products.images`: a product's gallery, a JSON array of 0 to 10 image URLs in display
//! order, replacing the single `image_url`. Each existing `image_url` becomes the first
//! (and only) image; going down, the first image becomes `image_url` again.
//!
//! A JSON array in a text column rather than a table of images: the catalog reads whole
//! galleries with the product, in the same row, on both databases, and nothing queries
//! single images. A CHECK keeps it a JSON array of at most 10 elements even when the
//! application is bypassed; what each URL may be is the domain's rule
//! (`domain::values::product_images`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &str = r#"
ALTER TABLE "products" ADD COLUMN "images" text NOT NULL DEFAULT '[]'
    CONSTRAINT "products_images_array" CHECK (
        jsonb_typeof("images"::jsonb) = 'array' AND jsonb_array_length("images"::jsonb) <= 10
    );
UPDATE "products" SET "images" = jsonb_build_array("image_url")::text
    WHERE "image_url" IS NOT NULL;
ALTER TABLE "products" DROP COLUMN "image_url";
"#;

const POSTGRES_DOWN: &str = r#"
ALTER TABLE "products" ADD COLUMN "image_url" text;
UPDATE "products" SET "image_url" = "images"::jsonb ->> 0;
ALTER TABLE "products" DROP COLUMN "images";
"#;

const SQLITE_UP: &str = r#"
ALTER TABLE "products" ADD COLUMN "images" text NOT NULL DEFAULT '[]'
    CONSTRAINT "products_images_array" CHECK (
        json_valid("images") AND json_type("images") = 'array'
        AND json_array_length("images") <= 10
    );
UPDATE "products" SET "images" = json_array("image_url") WHERE "image_url" IS NOT NULL;
ALTER TABLE "products" DROP COLUMN "image_url";
"#;

const SQLITE_DOWN: &str = r#"
ALTER TABLE "products" ADD COLUMN "image_url" text;
UPDATE "products" SET "image_url" = json_extract("images", '$[0]');
ALTER TABLE "products" DROP COLUMN "images";
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
