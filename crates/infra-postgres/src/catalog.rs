//! [`CatalogRepository`] over SQL.

use async_trait::async_trait;
use domain::ports::{CatalogRepository, ProductFilter};
use domain::{Category, Page, Paginated, Product, ProductId, RepositoryError};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entities::{categories, products};
use crate::error::repository_error;
use crate::store::{SqlStore, category_from_row, product_from_row};

// The page and its total are two statements outside a transaction: a catalog edit between
// them can make `total` off by one for that response, which a listing tolerates.

#[async_trait]
impl CatalogRepository for SqlStore {
    async fn list_categories(&self, page: Page) -> Result<Paginated<Category>, RepositoryError> {
        let rows = categories::Entity::find()
            .order_by_asc(categories::Column::SortOrder)
            .order_by_asc(categories::Column::Id)
            .limit(u64::from(page.limit()))
            .offset(page.offset())
            .all(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to list categories"))?;
        let total = categories::Entity::find()
            .count(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to count categories"))?;
        Ok(Paginated {
            items: rows.into_iter().map(category_from_row).collect(),
            total,
            page,
        })
    }

    async fn list_products(
        &self,
        filter: ProductFilter,
        page: Page,
    ) -> Result<Paginated<Product>, RepositoryError> {
        let mut matching = products::Entity::find().filter(products::Column::IsActive.eq(true));
        if let Some(category) = filter.category_id {
            matching = matching.filter(products::Column::CategoryId.eq(category.0));
        }
        let rows = matching
            .clone()
            .order_by_asc(products::Column::SortOrder)
            .order_by_asc(products::Column::Id)
            .limit(u64::from(page.limit()))
            .offset(page.offset())
            .all(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to list products"))?;
        let total = matching
            .count(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to count products"))?;
        Ok(Paginated {
            items: rows
                .into_iter()
                .map(product_from_row)
                .collect::<Result<_, _>>()?,
            total,
            page,
        })
    }

    async fn find_active_product(&self, id: ProductId) -> Result<Option<Product>, RepositoryError> {
        products::Entity::find_by_id(id.0)
            .filter(products::Column::IsActive.eq(true))
            .one(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to find product"))?
            .map(product_from_row)
            .transpose()
    }
}
