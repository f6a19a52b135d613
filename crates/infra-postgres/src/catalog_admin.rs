//! [`CatalogAdmin`] over SQL: categories and stock changed through the admin API, each
//! change with its audit row in the same transaction.

use async_trait::async_trait;
use std::collections::HashMap;

use domain::catalog::product_search_text;
use domain::catalog_admin::{
    AdminProduct, AdminProductFilter, CatalogChange, CatalogChangeError, CategoryPatch,
    ChangeContext, MAX_STOCK, NewCategory, NewProduct, ProductPatch, StockChange,
};
use domain::catalog_io::{CatalogFile, CategoryRecord, ImportFile, ImportReport, ProductRecord};
use domain::lifecycle::AuditRecord;
use domain::ports::CatalogAdmin;
use domain::{Category, CategoryId, Page, Paginated, ProductId, RepositoryError};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DatabaseBackend,
    DatabaseTransaction, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    SqlErr, Statement,
};
use serde_json::json;

use crate::catalog::{filtered, sorted};
use crate::entities::{categories, order_items, products};
use crate::error::repository_error;
use crate::notify::announce;
use crate::orders::record_audit;
use crate::store::{SqlStore, category_from_row, product_from_row, stored_stock, timestamp_value};
use crate::transaction::write_transaction;

#[async_trait]
impl CatalogAdmin for SqlStore {
    async fn all_categories(&self) -> Result<Vec<Category>, RepositoryError> {
        Ok(categories::Entity::find()
            .order_by_asc(categories::Column::SortOrder)
            .order_by_asc(categories::Column::Id)
            .all(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to list categories"))?
            .into_iter()
            .map(category_from_row)
            .collect())
    }

    async fn create_category(
        &self,
        new: &NewCategory,
        context: ChangeContext,
    ) -> Result<Category, CatalogChangeError> {
        write_transaction(&self.db, "a category's creation", async |transaction| {
            if let Some(parent) = new.parent_id {
                require_parent(transaction, parent).await?;
            }
            let row = categories::ActiveModel {
                id: ActiveValue::NotSet,
                name: ActiveValue::Set(new.name.clone()),
                slug: ActiveValue::Set(new.slug.clone()),
                sort_order: ActiveValue::Set(new.sort_order),
                parent_id: ActiveValue::Set(new.parent_id.map(|id| id.0)),
                is_active: ActiveValue::Set(new.is_active),
            }
            .insert(transaction)
            .await
            .map_err(|err| change_error(err, "failed to create a category"))?;
            let category = category_from_row(row);
            audit(
                transaction,
                context,
                "category.create",
                "category",
                category.id.0,
                json!({}),
                category_json(&category),
            )
            .await?;
            Ok(category)
        })
        .await
    }

    async fn update_category(
        &self,
        id: CategoryId,
        patch: &CategoryPatch,
        context: ChangeContext,
    ) -> Result<Category, CatalogChangeError> {
        write_transaction(&self.db, "a category's update", async |transaction| {
            // Locked (PostgreSQL; SQLite's writers run one at a time): a concurrent change
            // cannot slip between this read and the update, nor falsify the audit's before.
            let mut find = categories::Entity::find_by_id(id.0);
            if transaction.get_database_backend() == DatabaseBackend::Postgres {
                find = find.lock_exclusive();
            }
            let before = find
                .one(transaction)
                .await
                .map_err(|err| repository_error(err, "failed to find a category"))?
                .ok_or(CatalogChangeError::NotFound)?;
            if let Some(Some(parent)) = patch.parent_id {
                require_parent(transaction, parent).await?;
            }
            let mut row: categories::ActiveModel = before.clone().into();
            if let Some(name) = &patch.name {
                row.name = ActiveValue::Set(name.clone());
            }
            if let Some(slug) = &patch.slug {
                row.slug = ActiveValue::Set(slug.clone());
            }
            if let Some(order) = patch.sort_order {
                row.sort_order = ActiveValue::Set(order);
            }
            if let Some(parent) = patch.parent_id {
                row.parent_id = ActiveValue::Set(parent.map(|id| id.0));
            }
            if let Some(active) = patch.is_active {
                row.is_active = ActiveValue::Set(active);
            }
            let after = if row.is_changed() {
                row.update(transaction)
                    .await
                    .map_err(|err| change_error(err, "failed to update a category"))?
            } else {
                before.clone()
            };
            let (before, after) = (category_from_row(before), category_from_row(after));
            let (old, new) = changed_fields(&category_json(&before), &category_json(&after));
            if !new.as_object().is_some_and(serde_json::Map::is_empty) {
                audit(
                    transaction,
                    context,
                    "category.update",
                    "category",
                    id.0,
                    old,
                    new,
                )
                .await?;
            }
            Ok(after)
        })
        .await
    }

    async fn delete_category(
        &self,
        id: CategoryId,
        context: ChangeContext,
    ) -> Result<(), CatalogChangeError> {
        write_transaction(&self.db, "a category's deletion", async |transaction| {
            let row = categories::Entity::find_by_id(id.0)
                .one(transaction)
                .await
                .map_err(|err| repository_error(err, "failed to find a category"))?
                .ok_or(CatalogChangeError::NotFound)?;
            let products = products::Entity::find()
                .filter(products::Column::CategoryId.eq(id.0))
                .count(transaction)
                .await
                .map_err(|err| repository_error(err, "failed to count a category's products"))?;
            let children = categories::Entity::find()
                .filter(categories::Column::ParentId.eq(id.0))
                .count(transaction)
                .await
                .map_err(|err| repository_error(err, "failed to count subcategories"))?;
            if products > 0 || children > 0 {
                return Err(CatalogChangeError::CategoryNotEmpty { products, children });
            }
            categories::Entity::delete_by_id(id.0)
                .exec(transaction)
                .await
                .map_err(|err| match err.sql_err() {
                    // A product or subcategory added meanwhile.
                    Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
                        CatalogChangeError::CategoryNotEmpty {
                            products: 0,
                            children: 0,
                        }
                    }
                    _ => change_error(err, "failed to delete a category"),
                })?;
            let category = category_from_row(row);
            audit(
                transaction,
                context,
                "category.delete",
                "category",
                id.0,
                category_json(&category),
                json!({}),
            )
            .await
        })
        .await
    }

    async fn list_products(
        &self,
        filter: &AdminProductFilter,
        page: Page,
    ) -> Result<Paginated<AdminProduct>, RepositoryError> {
        let backend = self.backend();
        let matching = || {
            let mut query = products::Entity::find();
            if let Some(active) = filter.is_active {
                query = query.filter(products::Column::IsActive.eq(active));
            }
            if let Some(sku) = &filter.sku {
                query = query.filter(products::Column::Sku.eq(sku.as_str()));
            }
            filtered(query, &filter.public, backend)
        };
        let rows = sorted(matching(), filter.public.sort)
            .limit(u64::from(page.limit()))
            .offset(page.offset())
            .all(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to list products"))?;
        let total = matching()
            .count(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to count products"))?;
        let items = rows
            .into_iter()
            .map(admin_product)
            .collect::<Result<_, _>>()?;
        Ok(Paginated { items, total, page })
    }

    async fn find_product(&self, id: ProductId) -> Result<Option<AdminProduct>, RepositoryError> {
        products::Entity::find_by_id(id.0)
            .one(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to find a product"))?
            .map(admin_product)
            .transpose()
    }

    async fn create_product(
        &self,
        new: &NewProduct,
        context: ChangeContext,
    ) -> Result<AdminProduct, CatalogChangeError> {
        write_transaction(&self.db, "a product's creation", async |transaction| {
            require_category(transaction, new.category_id).await?;
            let backend = transaction.get_database_backend();
            let stock =
                new.stock.map(i32::try_from).transpose().map_err(|_| {
                    CatalogChangeError::StockConflict("the stock is too large".into())
                })?;
            let images = serde_json::to_string(&new.images).map_err(|err| {
                RepositoryError::Unknown(anyhow::anyhow!("the images of a product: {err}"))
            })?;
            let insert = Query::insert()
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
                    products::Column::Sku,
                    products::Column::PriceStars,
                    products::Column::SearchText,
                    products::Column::CreatedAt,
                    products::Column::UpdatedAt,
                ])
                .values([
                    Expr::val(new.category_id.0),
                    Expr::val(new.name.as_str()),
                    Expr::val(new.description.clone()),
                    Expr::val(new.price.minor_units()),
                    Expr::val(images),
                    Expr::val(new.is_active),
                    Expr::val(new.sort_order),
                    Expr::val(stock),
                    Expr::val(new.sku.clone()),
                    Expr::val(new.price_stars.map(i64::from)),
                    Expr::val(product_search_text(&new.name, new.description.as_deref())),
                    Expr::val(timestamp_value(backend, context.at)),
                    Expr::val(timestamp_value(backend, context.at)),
                ])
                .map_err(|err| {
                    RepositoryError::Unknown(anyhow::anyhow!("the product insert: {err}"))
                })?
                .returning_col(products::Column::Id)
                .to_owned();
            let id: i64 = transaction
                .query_one(&insert)
                .await
                .map_err(|err| product_error(err, "failed to create a product"))?
                .ok_or_else(|| {
                    RepositoryError::Unknown(anyhow::anyhow!("a product insert returned no id"))
                })?
                .try_get("", "id")
                .map_err(|err| repository_error(err, "failed to read a new product's id"))?;
            let product = load_product(transaction, ProductId(id)).await?;
            audit(
                transaction,
                context,
                "product.create",
                "product",
                id,
                json!({}),
                product_json(&product),
            )
            .await?;
            Ok(product)
        })
        .await
    }

    async fn update_product(
        &self,
        id: ProductId,
        patch: &ProductPatch,
        context: ChangeContext,
    ) -> Result<AdminProduct, CatalogChangeError> {
        write_transaction(&self.db, "a product's update", async |transaction| {
            let before = load_product(transaction, id).await?;
            if let Some(category) = patch.category_id {
                require_category(transaction, category).await?;
            }
            let backend = transaction.get_database_backend();
            let mut update = Query::update();
            update
                .table(products::Entity)
                .and_where(Expr::col(products::Column::Id).eq(id.0));
            let mut changed = false;
            let mut set = |column: products::Column, value: sea_orm::Value| {
                update.value(column, value);
                changed = true;
            };
            if let Some(category) = patch.category_id {
                set(products::Column::CategoryId, category.0.into());
            }
            if let Some(name) = &patch.name {
                set(products::Column::Name, name.clone().into());
            }
            if let Some(description) = &patch.description {
                set(products::Column::Description, description.clone().into());
            }
            if let Some(price) = patch.price {
                set(products::Column::PriceMinor, price.minor_units().into());
            }
            if let Some(images) = &patch.images {
                let images = serde_json::to_string(images).map_err(|err| {
                    RepositoryError::Unknown(anyhow::anyhow!("the images of a product: {err}"))
                })?;
                set(products::Column::Images, images.into());
            }
            if let Some(active) = patch.is_active {
                set(products::Column::IsActive, active.into());
            }
            if let Some(order) = patch.sort_order {
                set(products::Column::SortOrder, order.into());
            }
            if let Some(sku) = &patch.sku {
                set(products::Column::Sku, sku.clone().into());
            }
            if let Some(stars) = patch.price_stars {
                set(products::Column::PriceStars, stars.map(i64::from).into());
            }
            if patch.name.is_some() || patch.description.is_some() {
                let name = patch.name.as_deref().unwrap_or(&before.product.name);
                let description = match &patch.description {
                    Some(description) => description.as_deref(),
                    None => before.product.description.as_deref(),
                };
                set(
                    products::Column::SearchText,
                    product_search_text(name, description).into(),
                );
            }
            if changed {
                update.value(
                    products::Column::UpdatedAt,
                    timestamp_value(backend, context.at),
                );
                transaction
                    .execute(&update)
                    .await
                    .map_err(|err| product_error(err, "failed to update a product"))?;
            }
            let after = load_product(transaction, id).await?;
            let (old, new) = changed_fields(&product_json(&before), &product_json(&after));
            if !new.as_object().is_some_and(serde_json::Map::is_empty) {
                audit(
                    transaction,
                    context,
                    "product.update",
                    "product",
                    id.0,
                    old,
                    new,
                )
                .await?;
            }
            Ok(after)
        })
        .await
    }

    async fn delete_product(
        &self,
        id: ProductId,
        context: ChangeContext,
    ) -> Result<(), CatalogChangeError> {
        write_transaction(&self.db, "a product's deletion", async |transaction| {
            let before = load_product(transaction, id).await?;
            let orders = order_items::Entity::find()
                .filter(order_items::Column::ProductId.eq(id.0))
                .count(transaction)
                .await
                .map_err(|err| repository_error(err, "failed to count a product's orders"))?;
            if orders > 0 {
                return Err(CatalogChangeError::ProductInOrders { orders });
            }
            products::Entity::delete_by_id(id.0)
                .exec(transaction)
                .await
                .map_err(|err| match err.sql_err() {
                    // Ordered meanwhile.
                    Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
                        CatalogChangeError::ProductInOrders { orders: 1 }
                    }
                    _ => product_error(err, "failed to delete a product"),
                })?;
            audit(
                transaction,
                context,
                "product.delete",
                "product",
                id.0,
                product_json(&before),
                json!({}),
            )
            .await
        })
        .await
    }

    async fn import(
        &self,
        file: &ImportFile,
        dry_run: bool,
        context: ChangeContext,
    ) -> Result<ImportReport, CatalogChangeError> {
        crate::catalog_import::import(self, file, dry_run, context).await
    }

    async fn export(&self) -> Result<CatalogFile, RepositoryError> {
        let categories = self.all_categories().await?;
        let slugs: HashMap<i64, String> = categories
            .iter()
            .map(|category| (category.id.0, category.slug.clone()))
            .collect();
        // Parents before children: by depth (at most three levels), then sort order.
        let depth = |category: &Category| {
            let mut depth = 0;
            let mut parent = category.parent_id;
            while let Some(id) = parent {
                depth += 1;
                parent = categories
                    .iter()
                    .find(|c| c.id == id)
                    .and_then(|c| c.parent_id)
                    .filter(|_| depth < 3);
            }
            depth
        };
        let mut ordered: Vec<(usize, &Category)> =
            categories.iter().map(|c| (depth(c), c)).collect();
        ordered.sort_by_key(|(depth, c)| (*depth, c.sort_order, c.id.0));
        let category_records = ordered
            .into_iter()
            .map(|(_, category)| CategoryRecord {
                slug: category.slug.clone(),
                name: category.name.clone(),
                parent_slug: category.parent_id.and_then(|id| slugs.get(&id.0).cloned()),
                sort_order: category.sort_order,
                is_active: category.is_active,
            })
            .collect();
        let rows = products::Entity::find()
            .order_by_asc(products::Column::CategoryId)
            .order_by_asc(products::Column::SortOrder)
            .order_by_asc(products::Column::Id)
            .all(&self.db)
            .await
            .map_err(|err| repository_error(err, "failed to read the products"))?;
        let mut product_records = Vec::with_capacity(rows.len());
        for row in rows {
            let sku = row.sku.clone();
            let product = product_from_row(row)?;
            product_records.push(ProductRecord {
                price_stars: Some(product.price_stars),
                sku,
                category_slug: slugs
                    .get(&product.category_id.0)
                    .cloned()
                    .unwrap_or_default(),
                name: product.name,
                description: product.description,
                price: product.price.to_string(),
                stock: product.stock,
                images: product.images,
                is_active: product.is_active,
                sort_order: product.sort_order,
            });
        }
        Ok(CatalogFile {
            categories: category_records,
            products: product_records,
        })
    }

    async fn change_stock(
        &self,
        product: ProductId,
        change: &StockChange,
        context: ChangeContext,
    ) -> Result<Option<u32>, CatalogChangeError> {
        write_transaction(&self.db, "a stock change", async |transaction| {
            let backend = transaction.get_database_backend();
            // One statement: the change applies to the stock as it is when it runs, after
            // any order that took units first, and never drives it below zero.
            let (sql, values): (&str, Vec<sea_orm::Value>) = match change {
                StockChange::Set(stock) => (
                    r#"UPDATE "products" SET "stock" = $1 WHERE "id" = $2 RETURNING "stock""#,
                    vec![stock.map(i64::from).into(), product.0.into()],
                ),
                StockChange::Adjust { delta, .. } => (
                    r#"UPDATE "products" SET "stock" = "stock" + $1
                       WHERE "id" = $2 AND "stock" IS NOT NULL AND "stock" + $1 >= 0
                         AND "stock" + $1 <= $3
                       RETURNING "stock""#,
                    vec![
                        (*delta).into(),
                        product.0.into(),
                        i64::from(MAX_STOCK).into(),
                    ],
                ),
            };
            let updated = transaction
                .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
                .await
                .map_err(|err| change_error(err, "failed to change a product's stock"))?;
            let Some(updated) = updated else {
                // Why nothing changed: no such product, or an adjustment it cannot take.
                let current = products::Entity::find_by_id(product.0)
                    .one(transaction)
                    .await
                    .map_err(|err| repository_error(err, "failed to find a product"))?
                    .ok_or(CatalogChangeError::NotFound)?;
                let grows = matches!(change, StockChange::Adjust { delta, .. } if *delta > 0);
                return Err(CatalogChangeError::StockConflict(match current.stock {
                    None => "the stock is unlimited: set a number of units first".to_owned(),
                    Some(_) if grows => {
                        format!("the stock would pass {MAX_STOCK} units")
                    }
                    Some(left) => format!("only {left} units are left"),
                }));
            };
            let stock: Option<i32> = updated
                .try_get("", "stock")
                .map_err(|err| repository_error(err, "failed to read the new stock"))?;
            let stock = stored_stock(product.0, stock)?;
            let (action, before, after) = match change {
                StockChange::Set(_) => ("product.stock.set", json!({}), json!({ "stock": stock })),
                StockChange::Adjust { delta, reason } => (
                    "product.stock.adjust",
                    json!({ "stock": stock.map(|now| i64::from(now) - delta) }),
                    json!({ "stock": stock, "delta": delta, "reason": reason }),
                ),
            };
            audit(
                transaction,
                context,
                action,
                "product",
                product.0,
                before,
                after,
            )
            .await?;
            Ok(stock)
        })
        .await
    }
}

/// A product row as the admin sees it.
fn admin_product(row: products::Model) -> Result<AdminProduct, RepositoryError> {
    let sku = row.sku.clone();
    Ok(AdminProduct {
        product: product_from_row(row)?,
        sku,
    })
}

/// The product `id` in the transaction, locked on PostgreSQL until it ends (so that a
/// concurrent change waits, and the search text and the audit's before are built from the
/// row as it is), or `NotFound`.
async fn load_product(
    transaction: &DatabaseTransaction,
    id: ProductId,
) -> Result<AdminProduct, CatalogChangeError> {
    let mut find = products::Entity::find_by_id(id.0);
    if transaction.get_database_backend() == DatabaseBackend::Postgres {
        find = find.lock_exclusive();
    }
    let row = find
        .one(transaction)
        .await
        .map_err(|err| repository_error(err, "failed to find a product"))?
        .ok_or(CatalogChangeError::NotFound)?;
    Ok(admin_product(row)?)
}

/// Refuses a category that does not exist.
async fn require_category(
    transaction: &DatabaseTransaction,
    category: CategoryId,
) -> Result<(), CatalogChangeError> {
    categories::Entity::find_by_id(category.0)
        .one(transaction)
        .await
        .map_err(|err| repository_error(err, "failed to find a category"))?
        .map(|_| ())
        .ok_or(CatalogChangeError::CategoryNotFound)
}

/// A product write's error: a taken SKU, or the database's.
fn product_error(err: DbErr, context: &'static str) -> CatalogChangeError {
    if let Some(SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
        return CatalogChangeError::SkuTaken;
    }
    CatalogChangeError::Repository(repository_error(err, context))
}

fn product_json(product: &AdminProduct) -> serde_json::Value {
    let p = &product.product;
    json!({
        "category_id": p.category_id.0,
        "name": p.name,
        "description": p.description,
        "price": p.price.to_string(),
        "images": p.images,
        "is_active": p.is_active,
        "sort_order": p.sort_order,
        "sku": product.sku,
        "price_stars": p.price_stars,
    })
}

/// Refuses a parent that does not exist.
async fn require_parent(
    transaction: &DatabaseTransaction,
    parent: CategoryId,
) -> Result<(), CatalogChangeError> {
    categories::Entity::find_by_id(parent.0)
        .one(transaction)
        .await
        .map_err(|err| repository_error(err, "failed to find the parent category"))?
        .map(|_| ())
        .ok_or(CatalogChangeError::ParentNotFound)
}

/// A write's error: a taken slug, the tree's refusal, or the database's.
fn change_error(err: DbErr, context: &'static str) -> CatalogChangeError {
    if let Some(SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
        return CatalogChangeError::SlugTaken;
    }
    if let Some(reason) = tree_refusal(&err) {
        return CatalogChangeError::InvalidParent(reason);
    }
    CatalogChangeError::Repository(repository_error(err, context))
}

/// The category tree's reason when its triggers (migration 12) refused a write: they
/// refuse with `category tree: <reason>`.
pub(crate) fn tree_refusal(err: &DbErr) -> Option<String> {
    const PREFIX: &str = "category tree: ";
    let text = err.to_string();
    let at = text.find(PREFIX)?;
    Some(
        text[at + PREFIX.len()..]
            .split(['\n', '"'])
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
    )
}

fn category_json(category: &Category) -> serde_json::Value {
    json!({
        "name": category.name,
        "slug": category.slug,
        "sort_order": category.sort_order,
        "parent_id": category.parent_id.map(|id| id.0),
        "is_active": category.is_active,
    })
}

/// The fields that differ between `before` and `after`, each side's values.
fn changed_fields(
    before: &serde_json::Value,
    after: &serde_json::Value,
) -> (serde_json::Value, serde_json::Value) {
    let (mut old, mut new) = (serde_json::Map::new(), serde_json::Map::new());
    if let (Some(before), Some(after)) = (before.as_object(), after.as_object()) {
        for (key, value) in after {
            if before.get(key) != Some(value) {
                old.insert(key.clone(), before.get(key).cloned().unwrap_or_default());
                new.insert(key.clone(), value.clone());
            }
        }
    }
    (old.into(), new.into())
}

async fn audit(
    transaction: &DatabaseTransaction,
    context: ChangeContext,
    action: &'static str,
    entity: &'static str,
    id: i64,
    before: serde_json::Value,
    after: serde_json::Value,
) -> Result<(), CatalogChangeError> {
    let record = AuditRecord {
        actor: context.admin.actor(),
        action,
        entity,
        entity_id: id.to_string(),
        before,
        after,
    };
    record_audit(transaction, &record, context.at).await?;
    // Every instance drops what the change made stale, once it commits: a stock change
    // concerns its product's answers; anything else may change which products a listing
    // shows.
    let change = match action {
        "product.stock.set" | "product.stock.adjust" => {
            CatalogChange::Products(vec![ProductId(id)])
        }
        _ => CatalogChange::Everything,
    };
    announce(transaction, &change).await?;
    Ok(())
}
