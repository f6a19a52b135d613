//! [`CatalogRepository`] over SQL.

use async_trait::async_trait;
use domain::catalog::ProductSort;
use domain::order::StockReturn;
use domain::ports::{CatalogRepository, ProductFilter};
use domain::{Category, Page, Paginated, Product, ProductId, RepositoryError};
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Select, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::entities::{categories, products};
use crate::error::{corrupt_row, repository_error};
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

    async fn return_stock(&self, returns: &[StockReturn]) -> Result<(), RepositoryError> {
        if returns.is_empty() {
            return Ok(());
        }
        // IMMEDIATE on SQLite for the same reason as an order's transaction: it queues for
        // the write lock instead of failing with SQLITE_BUSY.
        let transaction = self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
            .map_err(|err| repository_error(err, "failed to begin returning stock"))?;
        match return_stock_in(&transaction, returns).await {
            Ok(()) => transaction
                .commit()
                .await
                .map_err(|err| repository_error(err, "failed to commit the returned stock")),
            Err(err) => {
                if let Err(rollback) = transaction.rollback().await {
                    // The pool discards a connection whose transaction it cannot end, so
                    // nothing was written either way.
                    tracing::warn!(error = %rollback, "failed to roll back returning stock");
                }
                Err(err)
            }
        }
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

/// Adds each quantity back, in product-id order (the order placements lock rows in, so
/// the two never deadlock). Unlimited products stay unlimited; missing ones are skipped.
async fn return_stock_in(
    transaction: &DatabaseTransaction,
    returns: &[StockReturn],
) -> Result<(), RepositoryError> {
    let mut returns = returns.to_vec();
    returns.sort_unstable_by_key(|r| r.product_id);
    for StockReturn {
        product_id,
        quantity,
    } in returns
    {
        let quantity = i32::try_from(quantity).map_err(|err| {
            corrupt_row(format!(
                "{quantity} units cannot be returned to stock: {err}"
            ))
        })?;
        let update = Query::update()
            .table(products::Entity)
            .value(
                products::Column::Stock,
                Expr::col(products::Column::Stock).add(quantity),
            )
            .and_where(products::Column::Id.eq(product_id.0))
            .and_where(products::Column::Stock.is_not_null())
            .to_owned();
        transaction
            .execute(&update)
            .await
            .map_err(|err| repository_error(err, "failed to return stock"))?;
    }
    Ok(())
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
