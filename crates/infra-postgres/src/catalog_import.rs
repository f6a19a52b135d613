//! [`CatalogAdmin::import`] over SQL: a file's categories and products upserted in one
//! transaction, or nothing at all.

use std::collections::HashMap;

use domain::catalog::product_search_text;
use domain::catalog_admin::{CatalogChange, CatalogChangeError, ChangeContext};
use domain::catalog_io::{CategoryRecord, ImportCounts, ImportFile, ImportProblem, ImportReport};
use domain::lifecycle::AuditRecord;
use domain::{Money, RepositoryError};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, SqlErr};
use serde_json::json;

use crate::catalog_admin::tree_refusal;
use crate::entities::{categories, products};
use crate::error::repository_error;
use crate::notify::announce;
use crate::orders::record_audit;
use crate::store::{SqlStore, timestamp_value};
use crate::transaction::write_transaction;

/// How an import's transaction ends: refused, or a dry run (rolled back on purpose).
enum Stop {
    Refused(CatalogChangeError),
    DryRun(ImportReport),
}

impl From<RepositoryError> for Stop {
    fn from(error: RepositoryError) -> Self {
        Stop::Refused(error.into())
    }
}

impl From<CatalogChangeError> for Stop {
    fn from(error: CatalogChangeError) -> Self {
        Stop::Refused(error)
    }
}

pub(crate) async fn import(
    store: &SqlStore,
    file: &ImportFile,
    dry_run: bool,
    context: ChangeContext,
) -> Result<ImportReport, CatalogChangeError> {
    let problems = file.problems();
    if !problems.is_empty() {
        return Err(CatalogChangeError::Import(problems));
    }
    let outcome = write_transaction(&store.db, "a catalog import", async |transaction| {
        let report = apply(transaction, file, dry_run, context).await?;
        if dry_run {
            return Err(Stop::DryRun(report));
        }
        Ok(report)
    })
    .await;
    match outcome {
        Ok(report) => Ok(report),
        Err(Stop::DryRun(report)) => Ok(report),
        Err(Stop::Refused(error)) => Err(error),
    }
}

async fn apply(
    transaction: &DatabaseTransaction,
    file: &ImportFile,
    dry_run: bool,
    context: ChangeContext,
) -> Result<ImportReport, Stop> {
    let backend = transaction.get_database_backend();
    if backend == sea_orm::DatabaseBackend::Postgres {
        // The snapshot below is what the import compares and matches against: no other
        // catalog change may slip in until it commits (SQLite's writers run one at a
        // time already). Orders wait for the import too.
        transaction
            .execute_unprepared(
                r#"LOCK TABLE "categories", "products" IN SHARE ROW EXCLUSIVE MODE"#,
            )
            .await
            .map_err(|err| repository_error(err, "failed to lock the catalog"))?;
    }
    let existing = categories::Entity::find()
        .all(transaction)
        .await
        .map_err(|err| repository_error(err, "failed to read the categories"))?;
    let mut ids: HashMap<String, i64> = existing
        .iter()
        .map(|row| (row.slug.clone(), row.id))
        .collect();
    let by_slug: HashMap<String, categories::Model> = existing
        .into_iter()
        .map(|row| (row.slug.clone(), row))
        .collect();
    let mut report = ImportReport {
        dry_run,
        ..ImportReport::default()
    };
    let mut problems = Vec::new();

    // Parents first: each pass places the records whose parent is placed or already
    // stored; what is left names a missing parent or a cycle.
    let mut pending: Vec<&(usize, CategoryRecord)> = file.categories.iter().collect();
    let in_file: std::collections::HashSet<&str> = file
        .categories
        .iter()
        .map(|(_, c)| c.slug.as_str())
        .collect();
    let mut placed: std::collections::HashSet<String> = std::collections::HashSet::new();
    while !pending.is_empty() {
        let (ready, waiting): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(_, c)| {
            c.parent_slug.as_deref().is_none_or(|parent| {
                placed.contains(parent) || (!in_file.contains(parent) && ids.contains_key(parent))
            })
        });
        if ready.is_empty() {
            for (line, category) in waiting {
                problems.push(ImportProblem::new(
                    *line,
                    "parent_slug",
                    format!(
                        "parent_slug {:?} names no category (or the file's categories form a cycle)",
                        category.parent_slug.as_deref().unwrap_or_default()
                    ),
                ));
            }
            break;
        }
        for (line, category) in ready {
            let parent = category
                .parent_slug
                .as_ref()
                .and_then(|slug| ids.get(slug).copied());
            let counted = match by_slug.get(&category.slug) {
                Some(row) => {
                    let same = row.name == category.name
                        && row.parent_id == parent
                        && row.sort_order == category.sort_order
                        && row.is_active == category.is_active;
                    if same {
                        &mut report.categories.unchanged
                    } else {
                        let update = Query::update()
                            .table(categories::Entity)
                            .value(categories::Column::Name, category.name.clone())
                            .value(categories::Column::ParentId, parent)
                            .value(categories::Column::SortOrder, category.sort_order)
                            .value(categories::Column::IsActive, category.is_active)
                            .and_where(Expr::col(categories::Column::Id).eq(row.id))
                            .to_owned();
                        if let Err(err) = transaction.execute(&update).await {
                            return Err(refusal(*line, "slug", err));
                        }
                        &mut report.categories.updated
                    }
                }
                None => {
                    let insert = Query::insert()
                        .into_table(categories::Entity)
                        .columns([
                            categories::Column::Name,
                            categories::Column::Slug,
                            categories::Column::SortOrder,
                            categories::Column::ParentId,
                            categories::Column::IsActive,
                        ])
                        .values([
                            Expr::val(category.name.clone()),
                            Expr::val(category.slug.clone()),
                            Expr::val(category.sort_order),
                            Expr::val(parent),
                            Expr::val(category.is_active),
                        ])
                        .map_err(|err| RepositoryError::Unknown(anyhow::anyhow!("{err}")))?
                        .returning_col(categories::Column::Id)
                        .to_owned();
                    match transaction.query_one(&insert).await {
                        Ok(Some(row)) => {
                            let id: i64 = row
                                .try_get("", "id")
                                .map_err(|err| repository_error(err, "failed to read an id"))?;
                            ids.insert(category.slug.clone(), id);
                        }
                        Ok(None) => {}
                        Err(err) => return Err(refusal(*line, "slug", err)),
                    }
                    &mut report.categories.created
                }
            };
            *counted += 1;
            placed.insert(category.slug.clone());
        }
        pending = waiting;
    }
    if !problems.is_empty() {
        return Err(CatalogChangeError::Import(problems).into());
    }

    let stored = products::Entity::find()
        .all(transaction)
        .await
        .map_err(|err| repository_error(err, "failed to read the products"))?;
    let by_sku: HashMap<&str, &products::Model> = stored
        .iter()
        .filter_map(|row| row.sku.as_deref().map(|sku| (sku, row)))
        .collect();
    let mut unnamed: HashMap<(i64, &str), Vec<&products::Model>> = HashMap::new();
    for row in stored.iter().filter(|row| row.sku.is_none()) {
        unnamed
            .entry((row.category_id, row.name.as_str()))
            .or_default()
            .push(row);
    }
    for (line, record) in &file.products {
        let Some(&category) = ids.get(&record.category_slug) else {
            problems.push(ImportProblem::new(
                *line,
                "category_slug",
                format!("category_slug {:?} names no category", record.category_slug),
            ));
            continue;
        };
        let matches: Vec<&products::Model> = match &record.sku {
            Some(sku) => by_sku.get(sku.as_str()).copied().into_iter().collect(),
            None => unnamed
                .get(&(category, record.name.as_str()))
                .cloned()
                .unwrap_or_default(),
        };
        let price = match record
            .price
            .parse::<sea_orm::prelude::Decimal>()
            .ok()
            .and_then(|d| Money::parse(d).ok())
        {
            Some(price) => price.minor_units(),
            None => {
                problems.push(ImportProblem::new(*line, "price", "price is not an amount"));
                continue;
            }
        };
        let images = serde_json::to_string(&record.images)
            .map_err(|err| RepositoryError::Unknown(anyhow::anyhow!("{err}")))?;
        let stock = record.stock.and_then(|units| i32::try_from(units).ok());
        let search = product_search_text(&record.name, record.description.as_deref());
        match matches.as_slice() {
            [] => {
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
                        Expr::val(category),
                        Expr::val(record.name.clone()),
                        Expr::val(record.description.clone()),
                        Expr::val(price),
                        Expr::val(images),
                        Expr::val(record.is_active),
                        Expr::val(record.sort_order),
                        Expr::val(stock),
                        Expr::val(record.sku.clone()),
                        Expr::val(record.price_stars.flatten().map(i64::from)),
                        Expr::val(search),
                        Expr::val(timestamp_value(backend, context.at)),
                        Expr::val(timestamp_value(backend, context.at)),
                    ])
                    .map_err(|err| RepositoryError::Unknown(anyhow::anyhow!("{err}")))?
                    .to_owned();
                if let Err(err) = transaction.execute(&insert).await {
                    return Err(refusal(*line, "sku", err));
                }
                report.products.created += 1;
            }
            [row] => {
                let same = row.category_id == category
                    && row.name == record.name
                    && row.description == record.description
                    && row.price_minor == price
                    && serde_json::from_str::<Vec<String>>(&row.images)
                        .ok()
                        .as_ref()
                        == Some(&record.images)
                    && row.is_active == record.is_active
                    && row.sort_order == record.sort_order
                    && row.stock == stock
                    && row.sku == record.sku
                    && record
                        .price_stars
                        .is_none_or(|stars| row.price_stars.map(i64::from) == stars.map(i64::from));
                if same {
                    report.products.unchanged += 1;
                    continue;
                }
                let mut update = Query::update();
                update
                    .table(products::Entity)
                    .value(products::Column::CategoryId, category)
                    .value(products::Column::Name, record.name.clone())
                    .value(products::Column::Description, record.description.clone())
                    .value(products::Column::PriceMinor, price)
                    .value(products::Column::Images, images)
                    .value(products::Column::IsActive, record.is_active)
                    .value(products::Column::SortOrder, record.sort_order)
                    .value(products::Column::Stock, stock)
                    .value(products::Column::Sku, record.sku.clone())
                    .value(products::Column::SearchText, search)
                    .value(
                        products::Column::UpdatedAt,
                        timestamp_value(backend, context.at),
                    )
                    .and_where(Expr::col(products::Column::Id).eq(row.id));
                // A file without `price_stars` leaves the price in stars as it is.
                if let Some(stars) = record.price_stars {
                    update.value(products::Column::PriceStars, stars.map(i64::from));
                }
                match transaction.execute(&update).await {
                    Ok(done) if done.rows_affected() == 1 => {}
                    Ok(_) => {
                        return Err(Stop::Refused(
                            RepositoryError::Unknown(anyhow::anyhow!(
                                "a product vanished during the import"
                            ))
                            .into(),
                        ));
                    }
                    Err(err) => return Err(refusal(*line, "sku", err)),
                }
                report.products.updated += 1;
            }
            _ => problems.push(ImportProblem::new(
                *line,
                "sku",
                "several products without a sku have this category and name: give them skus",
            )),
        }
    }
    if !problems.is_empty() {
        return Err(CatalogChangeError::Import(problems).into());
    }
    let counts = |c: ImportCounts| json!({"created": c.created, "updated": c.updated, "unchanged": c.unchanged});
    let record = AuditRecord {
        actor: context.admin.actor(),
        action: "catalog.import",
        entity: "catalog",
        entity_id: "import".to_owned(),
        before: json!({}),
        after: json!({"categories": counts(report.categories), "products": counts(report.products)}),
    };
    if !dry_run {
        record_audit(transaction, &record, context.at).await?;
        announce(transaction, &CatalogChange::Everything).await?;
    }
    Ok(report)
}

/// A write the database refused for one record: the import refused with its problem (a
/// taken SKU or slug, the tree's rules), or the error when it is not the record's fault.
/// Either way the transaction is over (PostgreSQL aborts it at the first failed statement).
fn refusal(line: usize, unique_field: &str, err: DbErr) -> Stop {
    let problem = if let Some(SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
        ImportProblem::new(line, unique_field, "another record already has this value")
    } else {
        let Some(reason) = tree_refusal(&err) else {
            return Stop::Refused(repository_error(err, "failed to import a record").into());
        };
        ImportProblem::new(line, "parent_slug", reason)
    };
    Stop::Refused(CatalogChangeError::Import(vec![problem]))
}
