//! `CatalogRepository` contract, and seeding.

use domain::ports::{CatalogRepository, ProductFilter};
use domain::{CategoryId, ProductId};
use infra_postgres::SeedOutcome;
use infra_postgres::test_support::TestDatabase;

use crate::support::{category, count, deactivate, page, product_id, rub, seed};

contract_tests!(
    categories_are_ordered_by_sort_order_then_id_and_paginated_with_total,
    products_list_only_active_ones_in_order_with_total,
    products_can_be_filtered_by_category,
    find_active_product_hides_inactive_and_missing_products,
    seeding_is_idempotent_by_slug,
    catalog_is_empty_until_seeded,
    category_slugs_are_unique,
    galleries_come_back_in_order_and_bad_ones_are_never_written,
);

/// A product's images are read back in the order they were written, by the listing and
/// by the product card; a gallery the domain refuses is never written.
async fn galleries_come_back_in_order_and_bad_ones_are_never_written(db: &TestDatabase) {
    let mut pizza = category("pizza", 0, &[("Маргарита", "450", 0), ("Квас", "90", 1)]);
    let gallery = vec![
        "https://cdn.example.com/b.jpg".to_owned(),
        "https://cdn.example.com/a.jpg?size=2".to_owned(),
        "http://127.0.0.1:8000/static/demo/pizza.svg".to_owned(),
    ];
    pizza.products[0].images = gallery.clone();
    seed(db, &[pizza]).await;
    let store = db.store();

    let listed = store
        .list_products(ProductFilter::default(), page(10, 0))
        .await
        .unwrap();
    assert_eq!(listed.items[0].images, gallery);
    assert_eq!(listed.items[0].image_url(), Some(gallery[0].as_str()));
    assert!(listed.items[1].images.is_empty());
    assert_eq!(listed.items[1].image_url(), None);
    let card = store
        .find_active_product(product_id(db, "Маргарита").await)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(card.images, gallery);

    let mut bad = category("bad", 1, &[("Плохой", "10", 0)]);
    bad.products[0].images = vec!["/relative.jpg".to_owned()];
    assert!(db.store().seed_catalog(&[bad]).await.is_err());
    assert_eq!(count(db, "categories").await, 1);
}

async fn categories_are_ordered_by_sort_order_then_id_and_paginated_with_total(db: &TestDatabase) {
    seed(
        db,
        &[
            category("drinks", 2, &[]),
            category("pizza", 1, &[]),
            category("rolls", 1, &[]),
            category("sauces", 0, &[]),
        ],
    )
    .await;
    let store = db.store();

    let all = store.list_categories(None, page(10, 0)).await.unwrap();
    let slugs: Vec<&str> = all.items.iter().map(|c| c.slug.as_str()).collect();
    assert_eq!(slugs, ["sauces", "pizza", "rolls", "drinks"]);
    assert_eq!(all.total, 4);

    let second = store.list_categories(None, page(2, 1)).await.unwrap();
    let slugs: Vec<&str> = second.items.iter().map(|c| c.slug.as_str()).collect();
    assert_eq!(slugs, ["pizza", "rolls"]);
    assert_eq!(second.total, 4);
    assert_eq!(second.page, page(2, 1));

    let beyond = store.list_categories(None, page(10, 10)).await.unwrap();
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.total, 4);
}

async fn products_list_only_active_ones_in_order_with_total(db: &TestDatabase) {
    seed(
        db,
        &[
            category(
                "pizza",
                0,
                &[("Маргарита", "450", 1), ("Пепперони", "520", 0)],
            ),
            category("drinks", 1, &[("Морс", "120", 0), ("Квас", "99.90", 1)]),
        ],
    )
    .await;
    deactivate(db, product_id(db, "Пепперони").await).await;
    let store = db.store();

    let all = store
        .list_products(ProductFilter::default(), page(10, 0))
        .await
        .unwrap();
    let names: Vec<&str> = all.items.iter().map(|p| p.name.as_str()).collect();
    // By sort_order, then id: Маргарита and Квас share sort_order 1, and Маргарита was
    // inserted first. Inactive Пепперони (sort_order 0) is not listed.
    assert_eq!(names, ["Морс", "Маргарита", "Квас"]);
    assert_eq!(all.total, 3);
    assert!(all.items.iter().all(|p| p.is_active));
    assert_eq!(
        all.items[1].description.as_deref(),
        Some("Описание: Маргарита")
    );
    assert_eq!(all.items[2].price, rub("99.90"));

    let second = store
        .list_products(ProductFilter::default(), page(1, 1))
        .await
        .unwrap();
    let names: Vec<&str> = second.items.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Маргарита"]);
    assert_eq!(second.total, 3);
}

async fn products_can_be_filtered_by_category(db: &TestDatabase) {
    seed(
        db,
        &[
            category(
                "pizza",
                0,
                &[("Маргарита", "450", 0), ("Пепперони", "520", 1)],
            ),
            category("drinks", 1, &[("Морс", "120", 0)]),
        ],
    )
    .await;
    let store = db.store();
    let pizza = store
        .list_categories(None, page(10, 0))
        .await
        .unwrap()
        .items[0]
        .id;

    let filter = ProductFilter {
        category_id: Some(pizza),
        ..ProductFilter::default()
    };
    let pizzas = store.list_products(filter, page(10, 0)).await.unwrap();
    let names: Vec<&str> = pizzas.items.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Маргарита", "Пепперони"]);
    assert_eq!(pizzas.total, 2);
    assert!(pizzas.items.iter().all(|p| p.category_id == pizza));

    let nothing = ProductFilter {
        category_id: Some(CategoryId(9_999)),
        ..ProductFilter::default()
    };
    let none = store.list_products(nothing, page(10, 0)).await.unwrap();
    assert!(none.items.is_empty());
    assert_eq!(none.total, 0);
}

async fn find_active_product_hides_inactive_and_missing_products(db: &TestDatabase) {
    seed(
        db,
        &[category(
            "pizza",
            0,
            &[("Маргарита", "450.50", 0), ("Пепперони", "520", 1)],
        )],
    )
    .await;
    let margherita = product_id(db, "Маргарита").await;
    let pepperoni = product_id(db, "Пепперони").await;
    deactivate(db, pepperoni).await;
    let store = db.store();

    let found = store
        .find_active_product(margherita)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.name, "Маргарита");
    assert_eq!(found.price, rub("450.50"));
    assert_eq!(store.find_active_product(pepperoni).await.unwrap(), None);
    assert_eq!(
        store.find_active_product(ProductId(9_999)).await.unwrap(),
        None
    );
}

async fn seeding_is_idempotent_by_slug(db: &TestDatabase) {
    let catalog = [
        category(
            "pizza",
            0,
            &[("Маргарита", "450", 0), ("Пепперони", "520", 1)],
        ),
        category("drinks", 1, &[("Морс", "120", 0)]),
    ];
    let store = db.store();
    let first = store.seed_catalog(&catalog).await.unwrap();
    assert_eq!(
        first,
        SeedOutcome {
            categories_created: 2,
            categories_skipped: 0,
            products_created: 3,
        }
    );

    let more = [
        catalog[0].clone(),
        category("sauces", 2, &[("Чесночный", "50", 0)]),
    ];
    let second = store.seed_catalog(&more).await.unwrap();
    assert_eq!(
        second,
        SeedOutcome {
            categories_created: 1,
            categories_skipped: 1,
            products_created: 1,
        }
    );
    assert_eq!(count(db, "categories").await, 3);
    assert_eq!(count(db, "products").await, 4);
}

async fn catalog_is_empty_until_seeded(db: &TestDatabase) {
    let store = db.store();
    assert!(store.catalog_is_empty().await.unwrap());
    seed(db, &[category("pizza", 0, &[])]).await;
    assert!(!store.catalog_is_empty().await.unwrap());
}

async fn category_slugs_are_unique(db: &TestDatabase) {
    db.execute("INSERT INTO categories (name, slug) VALUES ('Пицца', 'pizza')")
        .await
        .unwrap();
    let duplicate = db
        .execute("INSERT INTO categories (name, slug) VALUES ('Ещё пицца', 'pizza')")
        .await;
    assert!(duplicate.is_err(), "a second 'pizza' slug was accepted");
    assert_eq!(count(db, "categories").await, 1);
}
