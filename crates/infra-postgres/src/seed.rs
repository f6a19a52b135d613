//! Filling an empty shop with a starter catalog (the `server seed` command).

use anyhow::Context as _;
use domain::Money;
use domain::catalog::product_search_text;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use time::OffsetDateTime;

use crate::entities::{categories, products};
use crate::store::{SqlStore, timestamp_value};
use crate::transaction::write_transaction;

/// A category to create, with its products.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedCategory {
    pub name: String,
    /// What makes seeding idempotent: a category whose slug exists is left alone.
    pub slug: String,
    pub sort_order: i32,
    /// The slug of the category it goes under (one seeded earlier in the same list, or
    /// already in the shop); `None` for a root.
    pub parent_slug: Option<String>,
    pub products: Vec<SeedProduct>,
}

/// A product to create (active) in its [`SeedCategory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedProduct {
    pub name: String,
    pub description: Option<String>,
    pub price: Money,
    /// The gallery, checked with `domain::values::product_images` before anything is written.
    pub images: Vec<String>,
    pub sort_order: i32,
    /// Units in stock; `None` for unlimited.
    pub stock: Option<u32>,
}

/// What [`SqlStore::seed_catalog`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedOutcome {
    pub categories_created: usize,
    /// Categories whose slug already existed; their products were not touched.
    pub categories_skipped: usize,
    pub products_created: usize,
}

impl SqlStore {
    /// Creates each category whose slug does not exist yet, with its products, in one
    /// transaction. Running it again creates nothing; two runs racing each other create
    /// each category once.
    ///
    /// # Errors
    /// If the database fails; nothing is written then.
    pub async fn seed_catalog(&self, categories: &[SeedCategory]) -> anyhow::Result<SeedOutcome> {
        let now = OffsetDateTime::now_utc();
        write_transaction(&self.db, "the seed transaction", async |transaction| {
            let backend = transaction.get_database_backend();

            let mut outcome = SeedOutcome::default();
            for category in categories {
                let parent_id = match &category.parent_slug {
                    Some(parent) => Some(
                        categories::Entity::find()
                            .filter(categories::Column::Slug.eq(parent.as_str()))
                            .one(transaction)
                            .await
                            .context("failed to look up a parent category")?
                            .with_context(|| {
                                format!(
                                    "the parent {parent:?} of category {:?} does not exist",
                                    category.slug
                                )
                            })?
                            .id,
                    ),
                    None => None,
                };
                let insert_category = Query::insert()
                    .into_table(categories::Entity)
                    .columns([
                        categories::Column::Name,
                        categories::Column::Slug,
                        categories::Column::SortOrder,
                        categories::Column::ParentId,
                    ])
                    .values([
                        Expr::val(category.name.as_str()),
                        Expr::val(category.slug.as_str()),
                        Expr::val(category.sort_order),
                        Expr::val(parent_id),
                    ])
                    .context("failed to build the category insert")?
                    .on_conflict(
                        OnConflict::column(categories::Column::Slug)
                            .do_nothing()
                            .to_owned(),
                    )
                    .returning_col(categories::Column::Id)
                    .to_owned();
                let Some(row) = transaction
                    .query_one(&insert_category)
                    .await
                    .with_context(|| format!("failed to insert category {:?}", category.slug))?
                else {
                    outcome.categories_skipped += 1;
                    continue;
                };
                let category_id: i64 = row
                    .try_get("", "id")
                    .context("failed to read the new category's id")?;
                outcome.categories_created += 1;

                if category.products.is_empty() {
                    continue;
                }
                let mut insert_products = Query::insert()
                    .into_table(products::Entity)
                    .columns([
                        products::Column::CategoryId,
                        products::Column::Name,
                        products::Column::Description,
                        products::Column::PriceMinor,
                        products::Column::Images,
                        products::Column::IsActive,
                        products::Column::SortOrder,
                        products::Column::Stock,
                        products::Column::SearchText,
                        products::Column::CreatedAt,
                        products::Column::UpdatedAt,
                    ])
                    .to_owned();
                for product in &category.products {
                    let stock = product
                        .stock
                        .map(i32::try_from)
                        .transpose()
                        .with_context(|| format!("the stock of {:?} is too large", product.name))?;
                    insert_products
                        .values([
                            Expr::val(category_id),
                            Expr::val(product.name.as_str()),
                            Expr::val(product.description.clone()),
                            Expr::val(product.price.minor_units()),
                            Expr::val(images_json(&product.name, &product.images)?),
                            Expr::val(true),
                            Expr::val(product.sort_order),
                            Expr::val(stock),
                            Expr::val(product_search_text(
                                &product.name,
                                product.description.as_deref(),
                            )),
                            Expr::val(timestamp_value(backend, now)),
                            Expr::val(timestamp_value(backend, now)),
                        ])
                        .context("failed to build the product insert")?;
                }
                transaction
                    .execute(&insert_products)
                    .await
                    .with_context(|| {
                        format!("failed to insert the products of {:?}", category.slug)
                    })?;
                outcome.products_created += category.products.len();
            }
            Ok(outcome)
        })
        .await
    }

    /// Whether the shop has no category at all (and so no product), which is when the
    /// `server seed` command is worth running.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn catalog_is_empty(&self) -> anyhow::Result<bool> {
        let any = categories::Entity::find()
            .select_only()
            .column(categories::Column::Id)
            .limit(1)
            .into_tuple::<i64>()
            .one(&self.db)
            .await
            .context("failed to check whether the catalog is empty")?;
        Ok(any.is_none())
    }
}

/// A gallery as stored: checked by the domain's rule, then a JSON array.
fn images_json(product: &str, images: &[String]) -> anyhow::Result<String> {
    let images = domain::values::product_images(images.to_vec())
        .with_context(|| format!("the images of {product:?}"))?;
    serde_json::to_string(&images).context("failed to encode the images")
}
