//! `CatalogAdmin`: categories created, changed and deleted under the tree's rules, stock
//! set and adjusted without losing an order's decrement, each change audited in its
//! transaction.

use domain::admin::{Admin, AuditFilter};
use domain::catalog_admin::{
    CatalogChangeError, CategoryInput, CategoryPatch, ChangeContext, NewCategory, StockChange,
};
use domain::ports::{AuditLog, CatalogAdmin};
use domain::{CategoryId, ProductId, TelegramId};
use infra_postgres::test_support::TestDatabase;
use serde_json::json;

use crate::support::{T0, new_user, page, place_order, product_id, seed, stock, stocked_category};

contract_tests!(
    categories_are_created_changed_and_deleted_with_their_audit,
    the_tree_and_the_slugs_refuse_what_they_must,
    stock_is_set_and_adjusted_never_below_zero,
    adjustments_and_orders_racing_lose_nothing,
);

fn context() -> ChangeContext {
    ChangeContext {
        admin: Admin::Person(TelegramId::parse(777).unwrap()),
        at: T0,
    }
}

fn new(name: &str, slug: &str, parent: Option<i64>) -> NewCategory {
    NewCategory::parse(&CategoryInput {
        name: Some(name),
        slug: Some(slug),
        parent_id: Some(parent),
        ..CategoryInput::default()
    })
    .unwrap()
}

async fn categories_are_created_changed_and_deleted_with_their_audit(db: &TestDatabase) {
    let store = db.store();
    let pizza = store
        .create_category(&new("Пицца", "pizza", None), context())
        .await
        .unwrap();
    let spicy = store
        .create_category(&new("Острая", "spicy", Some(pizza.id.0)), context())
        .await
        .unwrap();
    assert_eq!(spicy.parent_id, Some(pizza.id));
    assert!(spicy.is_active);

    let patch = CategoryPatch::parse(&CategoryInput {
        name: Some("Очень острая"),
        parent_id: Some(None),
        is_active: Some(false),
        ..CategoryInput::default()
    })
    .unwrap();
    let changed = store
        .update_category(spicy.id, &patch, context())
        .await
        .unwrap();
    assert_eq!(changed.name, "Очень острая");
    assert_eq!(changed.parent_id, None);
    assert!(!changed.is_active);
    let all = store.all_categories().await.unwrap();
    assert_eq!(all.len(), 2, "inactive categories are listed too");

    store.delete_category(spicy.id, context()).await.unwrap();
    assert!(matches!(
        store.delete_category(spicy.id, context()).await,
        Err(CatalogChangeError::NotFound)
    ));

    let log = store
        .list_audit(&AuditFilter::default(), page(100, 0))
        .await
        .unwrap();
    let actions: Vec<_> = log.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "category.delete",
            "category.update",
            "category.create",
            "category.create"
        ]
    );
    let update = &log.items[1];
    assert_eq!(update.actor, "777");
    assert_eq!(update.entity_id, spicy.id.0.to_string());
    assert_eq!(
        update.before,
        json!({"name": "Острая", "parent_id": pizza.id.0, "is_active": true})
    );
    assert_eq!(
        update.after,
        json!({"name": "Очень острая", "parent_id": null, "is_active": false})
    );
    assert_eq!(log.items[0].before["slug"], "spicy");
}

async fn the_tree_and_the_slugs_refuse_what_they_must(db: &TestDatabase) {
    let store = db.store();
    let root = store
        .create_category(&new("Пицца", "pizza", None), context())
        .await
        .unwrap();
    let child = store
        .create_category(&new("Острая", "spicy", Some(root.id.0)), context())
        .await
        .unwrap();
    let grandchild = store
        .create_category(&new("Очень", "very", Some(child.id.0)), context())
        .await
        .unwrap();
    // A fourth level.
    let refused = store
        .create_category(
            &new("Слишком", "too-deep", Some(grandchild.id.0)),
            context(),
        )
        .await;
    assert!(
        matches!(&refused, Err(CatalogChangeError::InvalidParent(reason)) if reason.contains("3 levels")),
        "{refused:?}"
    );
    // A cycle: the root under its grandchild.
    let cycle = CategoryPatch {
        parent_id: Some(Some(grandchild.id)),
        ..CategoryPatch::default()
    };
    assert!(matches!(
        store.update_category(root.id, &cycle, context()).await,
        Err(CatalogChangeError::InvalidParent(_))
    ));
    assert!(matches!(
        store
            .create_category(&new("Другая", "pizza", None), context())
            .await,
        Err(CatalogChangeError::SlugTaken)
    ));
    let taken = CategoryPatch {
        slug: Some("spicy".into()),
        ..CategoryPatch::default()
    };
    assert!(matches!(
        store.update_category(root.id, &taken, context()).await,
        Err(CatalogChangeError::SlugTaken)
    ));
    assert!(matches!(
        store
            .create_category(&new("Сироты", "orphans", Some(999_999)), context())
            .await,
        Err(CatalogChangeError::ParentNotFound)
    ));
    assert!(matches!(
        store
            .update_category(CategoryId(999_999), &taken, context())
            .await,
        Err(CatalogChangeError::NotFound)
    ));
    // Not empty: a child, then a product.
    assert!(matches!(
        store.delete_category(child.id, context()).await,
        Err(CatalogChangeError::CategoryNotEmpty {
            products: 0,
            children: 1
        })
    ));
    seed(db, &[stocked_category("drinks", &[("Квас", "90", None)])]).await;
    let drinks = store
        .all_categories()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.slug == "drinks")
        .unwrap();
    assert!(matches!(
        store.delete_category(drinks.id, context()).await,
        Err(CatalogChangeError::CategoryNotEmpty {
            products: 1,
            children: 0
        })
    ));
    // Nothing refused was written or audited: three creations only.
    assert_eq!(store.all_categories().await.unwrap().len(), 4);
    let log = store
        .list_audit(&AuditFilter::default(), page(100, 0))
        .await
        .unwrap();
    assert_eq!(log.total, 3);
}

async fn stock_is_set_and_adjusted_never_below_zero(db: &TestDatabase) {
    seed(
        db,
        &[stocked_category("pizza", &[("Маргарита", "450", None)])],
    )
    .await;
    let product = product_id(db, "Маргарита").await;
    let store = db.store();
    let adjust = |delta: i64| StockChange::adjust(delta, "приёмка").unwrap();
    assert!(matches!(
        store.change_stock(product, &adjust(5), context()).await,
        Err(CatalogChangeError::StockConflict(reason)) if reason.contains("unlimited")
    ));
    assert_eq!(
        store
            .change_stock(product, &StockChange::Set(Some(3)), context())
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(
        store
            .change_stock(product, &adjust(4), context())
            .await
            .unwrap(),
        Some(7)
    );
    assert!(matches!(
        store.change_stock(product, &adjust(-8), context()).await,
        Err(CatalogChangeError::StockConflict(reason)) if reason.contains('7')
    ));
    assert_eq!(
        store
            .change_stock(product, &adjust(-7), context())
            .await
            .unwrap(),
        Some(0)
    );
    // Never past the largest stock either.
    let most = StockChange::adjust(i64::from(domain::catalog_admin::MAX_STOCK), "приёмка").unwrap();
    store.change_stock(product, &most, context()).await.unwrap();
    assert!(matches!(
        store.change_stock(product, &adjust(1), context()).await,
        Err(CatalogChangeError::StockConflict(reason)) if reason.contains("would pass")
    ));
    let back = StockChange::adjust(-i64::from(domain::catalog_admin::MAX_STOCK), "учёт").unwrap();
    store.change_stock(product, &back, context()).await.unwrap();
    assert_eq!(stock(db, product).await, Some(0));
    assert_eq!(
        store
            .change_stock(product, &StockChange::Set(None), context())
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store
            .change_stock(ProductId(999_999), &StockChange::Set(Some(1)), context())
            .await,
        Err(CatalogChangeError::NotFound)
    ));
    let log = store
        .list_audit(&AuditFilter::default(), page(100, 0))
        .await
        .unwrap();
    assert_eq!(log.total, 6, "refused changes are not audited");
    let removal = &log.items[3];
    assert_eq!(removal.action, "product.stock.adjust");
    assert_eq!(removal.before, json!({"stock": 7}));
    assert_eq!(
        removal.after,
        json!({"stock": 0, "delta": -7, "reason": "приёмка"})
    );
}

async fn adjustments_and_orders_racing_lose_nothing(db: &TestDatabase) {
    seed(
        db,
        &[stocked_category(
            "pizza",
            &[("Маргарита", "450", Some(100))],
        )],
    )
    .await;
    let product = product_id(db, "Маргарита").await;
    let user = new_user(db, 1001).await;
    let mut tasks = Vec::new();
    for n in 0..10 {
        let store = db.store();
        tasks.push(tokio::spawn(async move {
            let change = StockChange::adjust(if n % 2 == 0 { 3 } else { -2 }, "учёт").unwrap();
            store
                .change_stock(product, &change, context())
                .await
                .map(|_| ())
        }));
    }
    // Orders take a unit each meanwhile.
    for _ in 0..5 {
        place_order(db, &user, product, 1, T0).await;
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // 100 + 5 × 3 − 5 × 2 − 5 ordered.
    assert_eq!(stock(db, product).await, Some(100));
}

mod products {
    use domain::Money;
    use domain::catalog::{ProductFilter, ProductQueryInput};
    use domain::catalog_admin::{AdminProductFilter, NewProduct, ProductInput, ProductPatch};
    use domain::ports::CatalogRepository;

    use super::*;

    contract_tests!(
        products_are_created_changed_listed_and_deleted_with_their_audit,
        a_product_in_orders_is_kept_and_skus_are_unique,
        concurrent_changes_of_name_and_description_keep_the_search_text_whole,
    );

    /// One admin renames a product while another rewrites its description: the search
    /// text is always built from the row as it ends up (each change waits for the other).
    async fn concurrent_changes_of_name_and_description_keep_the_search_text_whole(
        db: &TestDatabase,
    ) {
        let category = pizza(db).await;
        let id = db
            .store()
            .create_product(&new_product(category, "Маргарита", None), context())
            .await
            .unwrap()
            .product
            .id;
        for round in 0..10 {
            let name = format!("Имя {round}");
            let description = format!("Описание {round}");
            let (a, b) = (db.store(), db.store());
            let rename = tokio::spawn(async move {
                let patch = ProductPatch {
                    name: Some(name),
                    ..ProductPatch::default()
                };
                a.update_product(id, &patch, context()).await.unwrap();
            });
            let describe = tokio::spawn(async move {
                let patch = ProductPatch {
                    description: Some(Some(description)),
                    ..ProductPatch::default()
                };
                b.update_product(id, &patch, context()).await.unwrap();
            });
            rename.await.unwrap();
            describe.await.unwrap();
            let product = db.store().find_product(id).await.unwrap().unwrap().product;
            let expected =
                domain::catalog::product_search_text(&product.name, product.description.as_deref());
            let stored = db
                .query_i64(&format!(
                    "SELECT COUNT(*) FROM products WHERE id = {} AND search_text = '{expected}'",
                    id.0
                ))
                .await
                .unwrap();
            assert_eq!(stored, 1, "round {round}: {product:?}");
        }
    }

    fn new_product(category: i64, name: &str, sku: Option<&str>) -> NewProduct {
        NewProduct::parse(&ProductInput {
            category_id: Some(category),
            name: Some(name),
            price: Some("590.00"),
            sku: Some(sku),
            stock: Some(Some(5)),
            ..ProductInput::default()
        })
        .unwrap()
    }

    async fn pizza(db: &TestDatabase) -> i64 {
        db.store()
            .create_category(&new("Пицца", "pizza", None), context())
            .await
            .unwrap()
            .id
            .0
    }

    async fn products_are_created_changed_listed_and_deleted_with_their_audit(db: &TestDatabase) {
        let category = pizza(db).await;
        let store = db.store();
        let created = store
            .create_product(&new_product(category, "Маргарита", Some("PZ-1")), context())
            .await
            .unwrap();
        assert_eq!(created.sku.as_deref(), Some("PZ-1"));
        assert_eq!(created.product.stock, Some(5));
        assert_eq!(created.product.price, Money::from_minor(59_000).unwrap());
        let id = created.product.id;

        // Renamed and hidden: the public search follows the new name, and hides it.
        let patch = ProductPatch::parse(&ProductInput {
            name: Some("Кальцоне"),
            description: Some(Some("С ветчиной")),
            ..ProductInput::default()
        })
        .unwrap();
        let renamed = store.update_product(id, &patch, context()).await.unwrap();
        assert_eq!(renamed.product.name, "Кальцоне");
        let search = |q: &'static str| {
            ProductFilter::parse(ProductQueryInput {
                q: Some(q),
                ..ProductQueryInput::default()
            })
            .unwrap()
        };
        let found =
            CatalogRepository::list_products(&store, search("кальцоне с ветчиной"), page(10, 0))
                .await
                .unwrap();
        assert_eq!(found.total, 1, "the search text follows the change");
        assert_eq!(
            CatalogRepository::list_products(&store, search("маргарита"), page(10, 0))
                .await
                .unwrap()
                .total,
            0
        );
        let hide = ProductPatch {
            is_active: Some(false),
            ..ProductPatch::default()
        };
        store.update_product(id, &hide, context()).await.unwrap();
        assert!(store.find_active_product(id).await.unwrap().is_none());

        // The admin list shows it, by state and SKU.
        let admin_list = |is_active: Option<bool>, sku: Option<&str>| AdminProductFilter {
            public: ProductFilter::default(),
            is_active,
            sku: sku.map(str::to_owned),
        };
        let listed = CatalogAdmin::list_products(&store, &admin_list(None, None), page(10, 0))
            .await
            .unwrap();
        assert_eq!(listed.total, 1);
        assert!(!listed.items[0].product.is_active);
        for (filter, total) in [
            (admin_list(Some(true), None), 0),
            (admin_list(Some(false), None), 1),
            (admin_list(None, Some("PZ-1")), 1),
            (admin_list(None, Some("PZ-2")), 0),
        ] {
            let listed = CatalogAdmin::list_products(&store, &filter, page(10, 0))
                .await
                .unwrap();
            assert_eq!(listed.total, total, "{filter:?}");
        }

        store.delete_product(id, context()).await.unwrap();
        assert!(store.find_product(id).await.unwrap().is_none());
        let log = store
            .list_audit(&AuditFilter::default(), page(100, 0))
            .await
            .unwrap();
        let actions: Vec<_> = log.items.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "product.delete",
                "product.update",
                "product.update",
                "product.create",
                "category.create"
            ]
        );
        assert_eq!(
            log.items[2].after,
            json!({"name": "Кальцоне", "description": "С ветчиной"})
        );
        assert_eq!(log.items[1].before, json!({"is_active": true}));
    }

    async fn a_product_in_orders_is_kept_and_skus_are_unique(db: &TestDatabase) {
        let category = pizza(db).await;
        let store = db.store();
        let ordered = store
            .create_product(&new_product(category, "Маргарита", Some("PZ-1")), context())
            .await
            .unwrap()
            .product
            .id;
        assert!(matches!(
            store
                .create_product(&new_product(category, "Другая", Some("PZ-1")), context())
                .await,
            Err(CatalogChangeError::SkuTaken)
        ));
        // Products without a SKU never collide.
        for name in ["Без артикула", "Тоже без"] {
            store
                .create_product(&new_product(category, name, None), context())
                .await
                .unwrap();
        }
        assert!(matches!(
            store
                .create_product(&new_product(999_999, "Сирота", None), context())
                .await,
            Err(CatalogChangeError::CategoryNotFound)
        ));
        let user = new_user(db, 1001).await;
        place_order(db, &user, ordered, 1, T0).await;
        assert!(matches!(
            store.delete_product(ordered, context()).await,
            Err(CatalogChangeError::ProductInOrders { orders: 1 })
        ));
        assert!(store.find_product(ordered).await.unwrap().is_some());
        assert!(matches!(
            store.delete_product(ProductId(999_999), context()).await,
            Err(CatalogChangeError::NotFound)
        ));
    }
}

mod export {
    use domain::catalog_admin::{CategoryInput, NewCategory};

    use super::*;

    contract_tests!(the_export_names_categories_by_slug_parents_first_and_products_by_sku);

    async fn the_export_names_categories_by_slug_parents_first_and_products_by_sku(
        db: &TestDatabase,
    ) {
        let store = db.store();
        // A child created before its parent would sort first by id: the export still puts
        // the parent first.
        let root = store
            .create_category(&new("Напитки", "drinks", None), context())
            .await
            .unwrap();
        let hot = NewCategory::parse(&CategoryInput {
            name: Some("Горячие"),
            slug: Some("hot"),
            sort_order: Some(0),
            parent_id: Some(Some(root.id.0)),
            is_active: Some(false),
        })
        .unwrap();
        store.create_category(&hot, context()).await.unwrap();
        seed(
            db,
            &[stocked_category("pizza", &[("Маргарита", "450", Some(3))])],
        )
        .await;
        let product = product_id(db, "Маргарита").await;
        db.execute(&format!(
            "UPDATE products SET sku = 'PZ-1', price_stars = 45 WHERE id = {}",
            product.0
        ))
        .await
        .unwrap();

        let file = store.export().await.unwrap();
        let slugs: Vec<_> = file
            .categories
            .iter()
            .map(|c| (c.slug.as_str(), c.parent_slug.as_deref(), c.is_active))
            .collect();
        assert_eq!(
            slugs,
            [
                ("drinks", None, true),
                ("pizza", None, true),
                ("hot", Some("drinks"), false)
            ]
        );
        assert_eq!(file.products.len(), 1);
        let exported = &file.products[0];
        assert_eq!(exported.sku.as_deref(), Some("PZ-1"));
        assert_eq!(exported.category_slug, "pizza");
        assert_eq!(exported.price, "450.00");
        assert_eq!(exported.stock, Some(3));
        assert_eq!(exported.price_stars, Some(Some(45)));
        let csv = file.to_csv();
        assert!(
            csv.contains("\r\nproduct,,,pizza,PZ-1,Маргарита,,450.00,3,,true,0,45\r\n"),
            "{csv}"
        );
    }
}

mod import {
    use domain::catalog_io::{ImportFile, ImportReport};

    use super::*;

    contract_tests!(export_then_import_changes_nothing_and_an_import_upserts_all_or_nothing,);

    fn counts(report: &ImportReport) -> [u64; 6] {
        [
            report.categories.created,
            report.categories.updated,
            report.categories.unchanged,
            report.products.created,
            report.products.updated,
            report.products.unchanged,
        ]
    }

    async fn export_then_import_changes_nothing_and_an_import_upserts_all_or_nothing(
        db: &TestDatabase,
    ) {
        seed(
            db,
            &[
                stocked_category(
                    "pizza",
                    &[("Маргарита", "450", Some(3)), ("Пепперони", "690", None)],
                ),
                stocked_category("drinks", &[("Квас", "90", None)]),
            ],
        )
        .await;
        db.execute("UPDATE products SET sku = 'KV-1' WHERE name = 'Квас'")
            .await
            .unwrap();
        let store = db.store();
        let exported = store.export().await.unwrap();

        // The export read back, as CSV and as JSON: nothing to do.
        for file in [
            ImportFile::from_csv(&exported.to_csv()).unwrap(),
            ImportFile::from_json(&serde_json::to_string(&exported).unwrap()).unwrap(),
        ] {
            let report = store.import(&file, false, context()).await.unwrap();
            assert_eq!(counts(&report), [0, 0, 2, 0, 0, 3]);
        }

        // A new category under pizza, a renamed kvass (by SKU), a new product; dry run first.
        let mut changed = exported.clone();
        changed.categories.push(domain::catalog_io::CategoryRecord {
            slug: "spicy".into(),
            name: "Острая".into(),
            parent_slug: Some("pizza".into()),
            sort_order: 0,
            is_active: true,
        });
        let kvass = changed
            .products
            .iter_mut()
            .find(|p| p.sku.as_deref() == Some("KV-1"))
            .unwrap();
        kvass.name = "Квас хлебный".into();
        let mut diablo = kvass.clone();
        diablo.sku = Some("PZ-D".into());
        diablo.category_slug = "spicy".into();
        diablo.name = "Диабло".into();
        changed.products.push(diablo);
        let file = ImportFile::from_csv(&changed.to_csv()).unwrap();
        let dry = store.import(&file, true, context()).await.unwrap();
        assert!(dry.dry_run);
        assert_eq!(counts(&dry), [1, 0, 2, 1, 1, 2]);
        assert_eq!(
            store.all_categories().await.unwrap().len(),
            2,
            "a dry run writes nothing"
        );
        let done = store.import(&file, false, context()).await.unwrap();
        assert_eq!(counts(&done), [1, 0, 2, 1, 1, 2]);
        assert_eq!(store.all_categories().await.unwrap().len(), 3);
        let log = store
            .list_audit(&AuditFilter::default(), page(10, 0))
            .await
            .unwrap();
        assert_eq!(log.items[0].action, "catalog.import");
        // And once more: nothing left to do.
        let again = store.import(&file, false, context()).await.unwrap();
        assert_eq!(counts(&again), [0, 0, 3, 0, 0, 4]);

        // One bad record refuses the whole file: a missing parent, a fourth level.
        let mut broken = changed.clone();
        broken.products[0].name = "Переименована".into();
        broken.categories.push(domain::catalog_io::CategoryRecord {
            slug: "orphan".into(),
            name: "Сирота".into(),
            parent_slug: Some("nowhere".into()),
            sort_order: 0,
            is_active: true,
        });
        let refused = store
            .import(
                &ImportFile::from_csv(&broken.to_csv()).unwrap(),
                false,
                context(),
            )
            .await;
        let Err(CatalogChangeError::Import(problems)) = refused else {
            panic!("{refused:?}");
        };
        assert_eq!(problems[0].field, "parent_slug");
        let mut deep = changed.clone();
        for (slug, parent) in [("very", "spicy"), ("too-deep", "very")] {
            deep.categories.push(domain::catalog_io::CategoryRecord {
                slug: slug.into(),
                name: slug.into(),
                parent_slug: Some(parent.into()),
                sort_order: 0,
                is_active: true,
            });
        }
        let refused = store
            .import(
                &ImportFile::from_csv(&deep.to_csv()).unwrap(),
                false,
                context(),
            )
            .await;
        let Err(CatalogChangeError::Import(problems)) = refused else {
            panic!("{refused:?}");
        };
        assert_eq!(problems[0].field, "parent_slug", "{problems:?}");
        assert!(problems[0].message.contains("3 levels"), "{problems:?}");
        // Nothing of either was written.
        assert_eq!(store.all_categories().await.unwrap().len(), 3);
        let names: Vec<String> = store
            .export()
            .await
            .unwrap()
            .products
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert!(!names.contains(&"Переименована".to_owned()));
    }
}
