//! [`CatalogRepository`] over SQL.

use async_trait::async_trait;
use domain::catalog::ProductSort;
use domain::ports::{CatalogRepository, ProductFilter};
use domain::{Category, Page, Paginated, Product, ProductId, RepositoryError};
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};

use crate::entities::{categories, products};
use crate::error::repository_error;
use crate::store::{SqlStore, category_from_row, product_from_row};

// The page and its total are two statements outside a transaction: a catalog edit between
// them can make `total` off by one for that response, which a listing tolerates.

/// The character that makes the next one literal in a search pattern. A backslash, as most
/// people expect; it is declared with `ESCAPE` because SQLite has no default escape.
const LIKE_ESCAPE: char = '\\';

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
        let matching = matching_products(&filter);
        let rows = sorted(matching.clone(), filter.sort)
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

/// The active products that match every part of `filter`, unordered.
fn matching_products(filter: &ProductFilter) -> Select<products::Entity> {
    let mut matching = products::Entity::find().filter(products::Column::IsActive.eq(true));
    if let Some(category) = filter.category_id {
        matching = matching.filter(products::Column::CategoryId.eq(category.0));
    }
    // The domain normalised the search as the stored text was normalised, so a plain
    // substring match finds it, whatever the case, on both databases.
    if let Some(search) = &filter.search {
        let pattern = format!("%{}%", escape_like(search));
        matching = matching.filter(
            Expr::col(products::Column::SearchText)
                .like(LikeExpr::new(pattern).escape(LIKE_ESCAPE)),
        );
    }
    if let Some(min) = filter.min_price {
        matching = matching.filter(products::Column::PriceMinor.gte(min.minor_units()));
    }
    if let Some(max) = filter.max_price {
        matching = matching.filter(products::Column::PriceMinor.lte(max.minor_units()));
    }
    if filter.in_stock_only {
        matching = matching.filter(
            products::Column::Stock
                .is_null()
                .or(products::Column::Stock.gt(0)),
        );
    }
    matching
}

/// `query` in `sort`'s order, with the id as the final tie-break so that pages never
/// overlap or skip a product.
fn sorted(query: Select<products::Entity>, sort: ProductSort) -> Select<products::Entity> {
    match sort {
        ProductSort::Default => query
            .order_by_asc(products::Column::SortOrder)
            .order_by_asc(products::Column::Id),
        ProductSort::PriceAsc => query
            .order_by_asc(products::Column::PriceMinor)
            .order_by_asc(products::Column::Id),
        ProductSort::PriceDesc => query
            .order_by_desc(products::Column::PriceMinor)
            .order_by_asc(products::Column::Id),
        ProductSort::Newest => query
            .order_by_desc(products::Column::CreatedAt)
            .order_by_desc(products::Column::Id),
    }
}

/// `text` with LIKE's wildcards (and the escape character itself) made literal.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_') || c == LIKE_ESCAPE {
            escaped.push(LIKE_ESCAPE);
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_and_the_escape_are_made_literal() {
        assert_eq!(escape_like("100%_сок\\"), "100\\%\\_сок\\\\");
        assert_eq!(escape_like("пицца"), "пицца");
    }
}
