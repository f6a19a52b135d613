//! [`CatalogAdmin`] over SQL: categories and stock changed through the admin API, each
//! change with its audit row in the same transaction.

use async_trait::async_trait;
use domain::catalog_admin::{
    CatalogChangeError, CategoryPatch, ChangeContext, NewCategory, StockChange,
};
use domain::lifecycle::AuditRecord;
use domain::ports::CatalogAdmin;
use domain::{Category, CategoryId, ProductId, RepositoryError};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, SqlErr, Statement,
};
use serde_json::json;

use crate::entities::{categories, products};
use crate::error::repository_error;
use crate::orders::record_audit;
use crate::store::{SqlStore, category_from_row, stored_stock};
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
            let before = categories::Entity::find_by_id(id.0)
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
                       RETURNING "stock""#,
                    vec![(*delta).into(), product.0.into()],
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
                return Err(CatalogChangeError::StockConflict(match current.stock {
                    None => "the stock is unlimited: set a number of units first".to_owned(),
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
    // The tree's triggers (migration 12) refuse with `category tree: <reason>`.
    let text = err.to_string();
    if let Some(at) = text.find("category tree: ") {
        let reason = text[at + "category tree: ".len()..]
            .split(['\n', '"'])
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        return CatalogChangeError::InvalidParent(reason);
    }
    CatalogChangeError::Repository(repository_error(err, context))
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
    Ok(())
}
