//! [`CatalogRepository`] over SQL.

use async_trait::async_trait;
use domain::catalog::ProductSort;
use domain::ports::{CatalogRepository, ProductFilter};
use domain::{Category, CategoryId, Page, Paginated, Product, ProductId, RepositoryError};
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QueryResult, QuerySelect, QueryTrait, Select,
};

use crate::entities::{categories, products};
use crate::error::repository_error;
use crate::store::{ShownProduct, SqlStore, category_from_row, product_from_row};

// A page carries its total (`COUNT(*) OVER ()`), so both come from one statement; only a
// page past the end counts apart, and a catalog edit between the two can make that
// `total` off by one for that response, which a listing tolerates.

/// The character that makes the next one literal in a search pattern. A backslash, as most
/// people expect; it is declared with `ESCAPE` because SQLite has no default escape.
const LIKE_ESCAPE: char = '\\';

/// The column each row of a product page carries the number of matching products in.
const TOTAL_MATCHING: &str = "total_matching";

#[async_trait]
impl CatalogRepository for SqlStore {
    async fn list_categories(
        &self,
        parent: Option<CategoryId>,
        page: Page,
    ) -> Result<Paginated<Category>, RepositoryError> {
        let under = match parent {
            Some(parent) => categories::Column::ParentId.eq(parent.0),
            None => categories::Column::ParentId.is_null(),
        };
        let matching = visible_categories().filter(under);
        let rows = matching
            .clone()
            .order_by_asc(categories::Column::SortOrder)
            .order_by_asc(categories::Column::Id)
            .limit(u64::from(page.limit()))
            .offset(page.offset())
            .all(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to list categories"))?;
        let total = matching
            .count(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to count categories"))?;
        Ok(Paginated {
            items: rows.into_iter().map(category_from_row).collect(),
            total,
            page,
        })
    }

    async fn child_categories(
        &self,
        parents: &[CategoryId],
    ) -> Result<Vec<Category>, RepositoryError> {
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        let rows = visible_categories()
            .filter(categories::Column::ParentId.is_in(parents.iter().map(|p| p.0)))
            .order_by_asc(categories::Column::SortOrder)
            .order_by_asc(categories::Column::Id)
            .all(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to list subcategories"))?;
        Ok(rows.into_iter().map(category_from_row).collect())
    }

    async fn find_category(&self, id: CategoryId) -> Result<Option<Category>, RepositoryError> {
        Ok(visible_categories()
            .filter(categories::Column::Id.eq(id.0))
            .one(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to find category"))?
            .map(category_from_row))
    }

    async fn list_products(
        &self,
        filter: ProductFilter,
        page: Page,
    ) -> Result<Paginated<Product>, RepositoryError> {
        let backend = self.db.get_database_backend();
        let statement = product_page(&filter, page, backend).build(backend);
        // A text search runs on the search pool, planned once per connection, in turn.
        let (db, turn) = match (&filter.search, &self.search) {
            (Some(_), Some(search)) => (&search.connection, Some(search.turn().await?)),
            _ => (&self.db, None),
        };
        let found = db
            .query_all_raw(statement)
            .await
            .map_err(|err| repository_error(err, "failed to list products"))?;
        // The connection is back in the pool: the next search may use it while this one
        // reads its rows.
        drop(turn);
        let mut total = None;
        let mut items = Vec::with_capacity(found.len());
        for row in &found {
            let (product, matched) = listed_product(row)
                .map_err(|err| repository_error(err, "failed to read a product"))?;
            total.get_or_insert(u64::try_from(matched).unwrap_or(0));
            items.push(product.into_product()?);
        }
        // An empty page has no row to carry the total: past the last page, count apart.
        let total = match total {
            Some(total) => total,
            None if page.offset() == 0 => 0,
            None => matching_products(&filter, backend)
                .count(&self.db)
                .await
                .map_err(|err| repository_error(err, "failed to count products"))?,
        };
        Ok(Paginated { items, total, page })
    }

    async fn find_active_product(&self, id: ProductId) -> Result<Option<Product>, RepositoryError> {
        products::Entity::find_by_id(id.0)
            .filter(products::Column::IsActive.eq(true))
            .filter(Expr::cust(IN_VISIBLE_CATEGORY))
            .one(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to find product"))?
            .map(product_from_row)
            .transpose()
    }
}

/// The ids of the visible categories: active, under an active parent and grandparent
/// (the tree has at most three levels, so these are all its ancestors).
macro_rules! visible_category_ids {
    () => {
        r#"SELECT visible."id" FROM "categories" visible
    LEFT JOIN "categories" visible_parent ON visible_parent."id" = visible."parent_id"
    LEFT JOIN "categories" visible_grandparent
        ON visible_grandparent."id" = visible_parent."parent_id"
    WHERE visible."is_active"
        AND (visible_parent."id" IS NULL OR visible_parent."is_active")
        AND (visible_grandparent."id" IS NULL OR visible_grandparent."is_active")"#
    };
}
pub(crate) use visible_category_ids;

/// A product row's condition: its category is visible.
pub(crate) const IN_VISIBLE_CATEGORY: &str = concat!(
    r#""products"."category_id" IN ("#,
    visible_category_ids!(),
    ")"
);

/// [`IN_VISIBLE_CATEGORY`] for PostgreSQL listings: the visible categories are read once per
/// statement (an InitPlan) and each product checked against the list, where `IN` lets the
/// planner join the three category scans to every candidate product, which costs a
/// search with 100 products about 0.3 ms more to run and more to plan.
const IN_VISIBLE_CATEGORY_ONCE: &str = concat!(
    r#""products"."category_id" = ANY(ARRAY("#,
    visible_category_ids!(),
    "))"
);

/// A category row's condition: it is visible.
const VISIBLE_CATEGORY: &str = concat!(r#""categories"."id" IN ("#, visible_category_ids!(), ")");

/// The categories shown by the public catalog.
fn visible_categories() -> Select<categories::Entity> {
    categories::Entity::find().filter(Expr::cust(VISIBLE_CATEGORY))
}

/// The page of products `list_products` reads: the active products matching `filter`, in
/// its order, each with the number of all of them in [`TOTAL_MATCHING`].
///
/// The total rides on every row of the page, so that a search reads its matches once: a
/// separate COUNT would look them all up again (on PostgreSQL, a second trigram index
/// scan, which costs as much as the page itself).
pub(crate) fn product_page(
    filter: &ProductFilter,
    page: Page,
    backend: DatabaseBackend,
) -> Select<products::Entity> {
    use products::Column::*;
    // Read by position in `listed_product`.
    sorted(matching_products(filter, backend), filter.sort)
        .select_only()
        .columns([
            Id,
            CategoryId,
            Name,
            Description,
            PriceMinor,
            IsActive,
            SortOrder,
            Stock,
            Images,
            PriceStars,
        ])
        .column_as(Expr::cust("COUNT(*) OVER ()"), TOTAL_MATCHING)
        .limit(u64::from(page.limit()))
        .offset(page.offset())
}

/// A row of [`product_page`], read by position (a page of a hundred products would
/// otherwise look up each of its columns by name): the product, and the number of
/// matches.
fn listed_product(row: &QueryResult) -> Result<(ShownProduct, i64), DbErr> {
    Ok((
        ShownProduct {
            id: row.try_get_by_index(0)?,
            category_id: row.try_get_by_index(1)?,
            name: row.try_get_by_index(2)?,
            description: row.try_get_by_index(3)?,
            price_minor: row.try_get_by_index(4)?,
            is_active: row.try_get_by_index(5)?,
            sort_order: row.try_get_by_index(6)?,
            stock: row.try_get_by_index(7)?,
            images: row.try_get_by_index(8)?,
            price_stars: row.try_get_by_index(9)?,
        },
        row.try_get_by_index(10)?,
    ))
}

/// The active products of visible categories that match every part of `filter`,
/// unordered, as `backend` finds them best.
fn matching_products(filter: &ProductFilter, backend: DatabaseBackend) -> Select<products::Entity> {
    let shown = products::Entity::find()
        .filter(products::Column::IsActive.eq(true))
        .filter(Expr::cust(match backend {
            DatabaseBackend::Postgres => IN_VISIBLE_CATEGORY_ONCE,
            _ => IN_VISIBLE_CATEGORY,
        }));
    filtered(shown, filter, backend)
}

/// `matching` narrowed by every part of `filter` (category, search, price, stock): for
/// the public catalog, and for the admin's list of every product.
pub(crate) fn filtered(
    mut matching: Select<products::Entity>,
    filter: &ProductFilter,
    backend: DatabaseBackend,
) -> Select<products::Entity> {
    match (filter.category_id, filter.include_descendants) {
        (Some(category), false) => {
            matching = matching.filter(products::Column::CategoryId.eq(category.0));
        }
        // The category, its children and their children: the whole subtree of a tree of
        // at most three levels.
        (Some(category), true) => {
            let children = Query::select()
                .column(categories::Column::Id)
                .from(categories::Entity)
                .and_where(categories::Column::ParentId.eq(category.0))
                .to_owned();
            let grandchildren = Query::select()
                .column(categories::Column::Id)
                .from(categories::Entity)
                .and_where(categories::Column::ParentId.in_subquery(children.clone()))
                .to_owned();
            matching = matching.filter(
                Condition::any()
                    .add(products::Column::CategoryId.eq(category.0))
                    .add(products::Column::CategoryId.in_subquery(children))
                    .add(products::Column::CategoryId.in_subquery(grandchildren)),
            );
        }
        (None, _) => {}
    }
    // The domain normalised the search as the stored text was normalised, so a plain
    // substring match finds it, whatever the case, on both databases. On PostgreSQL the
    // word index (migration 17) or the trigram index (migration 13) of `search_text`
    // finds the candidates, when the search has parts they can look up.
    if let Some(search) = &filter.search {
        let pattern = LikeExpr::new(format!("%{}%", escape_like(search))).escape(LIKE_ESCAPE);
        let words = match backend {
            DatabaseBackend::Postgres => word_candidates(search),
            _ => None,
        };
        let searched = if let Some(words) = words {
            matching = matching.filter(words);
            // The candidates are few: check the phrase on each, not through the trigrams.
            Expr::cust(r#"("products"."search_text" || '')"#)
        } else if has_trigram(search) {
            Expr::col(products::Column::SearchText)
        } else {
            // Without a trigram the index would be read whole and every product checked
            // anyway, slower than reading the table. PostgreSQL plans so itself when it
            // sees the pattern, but a cached generic plan does not see it; this expression,
            // which the index does not cover, keeps such searches on the table always.
            Expr::cust(r#"("products"."search_text" || '')"#)
        };
        matching = matching.filter(searched.like(pattern));
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
pub(crate) fn sorted(
    query: Select<products::Entity>,
    sort: ProductSort,
) -> Select<products::Entity> {
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

/// A condition that every product holding the phrase `search` meets, served by the word
/// index of migration 17 (PostgreSQL only), or `None` when `search` is one word or has no
/// part the index can look up well.
///
/// A phrase «t1 t2 … tn» (normalised: single spaces) found in a product's `search_text`
/// ends a word with `t1`, holds `t2` … `tn-1` as whole words and starts a word with `tn`.
/// The dictionary turns «ends with `t1`» and «starts with `tn`» into the few words that do,
/// through its trigram index, when `t1` or `tn` has a trigram to look up (shorter ones
/// would match too many words to help); the middle words are looked up as they are. A
/// product with a word too long for the dictionary carries the empty word, and is always
/// a candidate. The caller still checks the phrase itself on the candidates.
fn word_candidates(search: &str) -> Option<Condition> {
    let words: Vec<&str> = search.split(' ').collect();
    let [first, middle @ .., last] = words.as_slice() else {
        return None;
    };
    let in_dictionary = |pattern: String| {
        Expr::cust_with_values(
            r#""products"."search_words" && ARRAY(SELECT "word" FROM "search_dictionary" WHERE "word" LIKE $1 ESCAPE '\')"#,
            [pattern],
        )
    };
    let mut holds = Condition::all();
    if has_trigram(first) {
        holds = holds.add(in_dictionary(format!("%{}", escape_like(first))));
    }
    if !middle.is_empty() {
        holds = holds.add(Expr::cust_with_values(
            r#""products"."search_words" @> string_to_array($1, ' ')"#,
            [middle.join(" ")],
        ));
    }
    if has_trigram(last) {
        holds = holds.add(in_dictionary(format!("{}%", escape_like(last))));
    }
    if holds.is_empty() {
        return None;
    }
    Some(
        Condition::any()
            .add(holds)
            .add(Expr::cust(r#""products"."search_words" @> ARRAY['']"#)),
    )
}

/// Whether `search` holds three letters or digits in a row: then `pg_trgm` extracts at least
/// one trigram from its pattern, and its index finds the candidates. (It also extracts some
/// from shorter words between spaces, but not reliably enough to rely on.)
fn has_trigram(search: &str) -> bool {
    let mut run = 0;
    for c in search.chars() {
        run = if c.is_alphanumeric() { run + 1 } else { 0 };
        if run == 3 {
            return true;
        }
    }
    false
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
    fn three_letters_or_digits_in_a_row_make_a_trigram() {
        for search in ["сок", "острый суп", "a b 100", "ёжик"] {
            assert!(has_trigram(search), "{search}");
        }
        for search in ["", "с", "сы", "a b c", "1 %", "ab-cd", "%__%"] {
            assert!(!has_trigram(search), "{search}");
        }
    }

    #[test]
    fn like_wildcards_and_the_escape_are_made_literal() {
        assert_eq!(escape_like("100%_сок\\"), "100\\%\\_сок\\\\");
        assert_eq!(escape_like("пицца"), "пицца");
    }
}
