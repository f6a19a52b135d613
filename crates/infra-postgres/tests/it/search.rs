//! Browsing the catalog: search, price and stock filters, and sorts, combined with
//! pagination.

use domain::catalog::{ProductFilter, ProductQueryInput};
use domain::ports::CatalogRepository;
use domain::{CategoryId, Paginated, Product};
use infra_postgres::test_support::TestDatabase;
use infra_postgres::{SeedCategory, SeedProduct};

use crate::support::{deactivate, page, product_id, rub, seed};

contract_tests!(
    search_finds_mixed_case_cyrillic_in_names_and_descriptions,
    search_treats_yo_as_ye,
    like_wildcards_in_the_search_are_literal,
    price_range_is_inclusive_and_hides_inactive_products,
    in_stock_means_unlimited_or_above_zero,
    filters_and_sorts_combine_with_pagination,
    newest_first_breaks_ties_by_id,
);

fn product(name: &str, description: Option<&str>, price: &str, stock: Option<u32>) -> SeedProduct {
    SeedProduct {
        name: name.to_owned(),
        description: description.map(str::to_owned),
        price: rub(price),
        images: vec![],
        sort_order: 0,
        stock,
    }
}

/// Pizzas (category 1) and drinks (category 2), sort order as listed. "Пицца Гавайская"
/// is inactive.
async fn shop(db: &TestDatabase) {
    let category = |slug: &str, sort_order: i32, products: Vec<SeedProduct>| SeedCategory {
        name: slug.to_owned(),
        slug: slug.to_owned(),
        sort_order,
        parent_slug: None,
        products: products
            .into_iter()
            .zip(0..)
            .map(|(product, sort_order)| SeedProduct {
                sort_order,
                ..product
            })
            .collect(),
    };
    seed(
        db,
        &[
            category(
                "pizza",
                0,
                vec![
                    product(
                        "Пицца Маргарита",
                        Some("Томатный соус, МОЦАРЕЛЛА, базилик"),
                        "590",
                        None,
                    ),
                    product("Пицца Пепперони", Some("Пикантная"), "690", Some(0)),
                    product(
                        "Пицца Четыре сыра",
                        Some("Моцарелла, пармезан, горгонзола"),
                        "750",
                        Some(3),
                    ),
                    product("Пицца Гавайская", Some("Ананас"), "650", None),
                ],
            ),
            category(
                "drinks",
                1,
                vec![
                    product("Сок 100% яблочный", None, "120", Some(10)),
                    product("Сок_томатный", None, "120", None),
                    product("Ежевичный морс", Some("Ягоды и мёд"), "150", Some(1)),
                    product("Ёжик в тумане", Some("Коктейль"), "200", None),
                ],
            ),
        ],
    )
    .await;
    deactivate(db, product_id(db, "Пицца Гавайская").await).await;
}

fn names(listing: &Paginated<Product>) -> Vec<&str> {
    listing.items.iter().map(|p| p.name.as_str()).collect()
}

async fn list(
    db: &TestDatabase,
    input: ProductQueryInput<'_>,
    limit: i64,
    offset: i64,
) -> Paginated<Product> {
    let filter = ProductFilter::parse(input).unwrap();
    db.store()
        .list_products(filter, page(limit, offset))
        .await
        .unwrap()
}

async fn search(db: &TestDatabase, q: &str) -> Vec<String> {
    let input = ProductQueryInput {
        q: Some(q),
        ..ProductQueryInput::default()
    };
    let listing = list(db, input, 100, 0).await;
    assert_eq!(listing.total, listing.items.len() as u64);
    names(&listing).into_iter().map(str::to_owned).collect()
}

async fn search_finds_mixed_case_cyrillic_in_names_and_descriptions(db: &TestDatabase) {
    shop(db).await;
    assert_eq!(
        search(db, "пицца").await,
        ["Пицца Маргарита", "Пицца Пепперони", "Пицца Четыре сыра"]
    );
    assert_eq!(search(db, "ПИЦЦА  маргарита").await, ["Пицца Маргарита"]);
    // In the description, whatever its case.
    assert_eq!(
        search(db, "моцарелла").await,
        ["Пицца Маргарита", "Пицца Четыре сыра"]
    );
    assert!(search(db, "суши").await.is_empty());
    // The inactive pizza is never found.
    assert!(search(db, "ананас").await.is_empty());
}

async fn search_treats_yo_as_ye(db: &TestDatabase) {
    shop(db).await;
    assert_eq!(search(db, "ежик").await, ["Ёжик в тумане"]);
    assert_eq!(search(db, "ЁЖИК").await, ["Ёжик в тумане"]);
    assert_eq!(search(db, "ёжевичный").await, ["Ежевичный морс"]);
    assert_eq!(search(db, "мед").await, ["Ежевичный морс"]);
}

async fn like_wildcards_in_the_search_are_literal(db: &TestDatabase) {
    shop(db).await;
    assert_eq!(search(db, "%").await, ["Сок 100% яблочный"]);
    assert_eq!(search(db, "100%").await, ["Сок 100% яблочный"]);
    assert_eq!(search(db, "_").await, ["Сок_томатный"]);
    // As wildcards these would match "сок 100% яблочный" and "сок_томатный".
    assert!(search(db, "с_к").await.is_empty());
    assert!(search(db, "сок%яблочный").await.is_empty());
    assert!(search(db, "\\").await.is_empty());
    assert!(search(db, "\\%").await.is_empty());
}

async fn price_range_is_inclusive_and_hides_inactive_products(db: &TestDatabase) {
    shop(db).await;
    let input = ProductQueryInput {
        min_price: Some("590"),
        max_price: Some("690.00"),
        ..ProductQueryInput::default()
    };
    let listing = list(db, input, 10, 0).await;
    // Гавайская (650) is inactive.
    assert_eq!(names(&listing), ["Пицца Маргарита", "Пицца Пепперони"]);
    assert_eq!(listing.total, 2);

    let input = ProductQueryInput {
        max_price: Some("149.99"),
        ..ProductQueryInput::default()
    };
    let listing = list(db, input, 10, 0).await;
    assert_eq!(names(&listing), ["Сок 100% яблочный", "Сок_томатный"]);

    let input = ProductQueryInput {
        min_price: Some("750.01"),
        ..ProductQueryInput::default()
    };
    assert_eq!(list(db, input, 10, 0).await.total, 0);
}

async fn in_stock_means_unlimited_or_above_zero(db: &TestDatabase) {
    shop(db).await;
    let input = ProductQueryInput {
        in_stock: Some("true"),
        ..ProductQueryInput::default()
    };
    let listing = list(db, input, 100, 0).await;
    // Пепперони has none left. The default order is the products' sort order, then id,
    // across categories.
    assert_eq!(
        names(&listing),
        [
            "Пицца Маргарита",
            "Сок 100% яблочный",
            "Сок_томатный",
            "Пицца Четыре сыра",
            "Ежевичный морс",
            "Ёжик в тумане",
        ]
    );
    assert!(listing.items.iter().all(Product::in_stock));
    let everything = list(db, ProductQueryInput::default(), 100, 0).await;
    assert_eq!(everything.total, 7);
}

async fn filters_and_sorts_combine_with_pagination(db: &TestDatabase) {
    shop(db).await;
    let pizza = db
        .store()
        .list_categories(None, page(10, 0))
        .await
        .unwrap()
        .items[0]
        .id;
    assert_eq!(pizza, CategoryId(1));

    // Category, stock, and the dearest first, a page at a time.
    let input = |sort: &'static str| ProductQueryInput {
        category_id: Some(pizza.0),
        in_stock: Some("true"),
        sort: Some(sort),
        ..ProductQueryInput::default()
    };
    let first = list(db, input("price_desc"), 1, 0).await;
    assert_eq!(names(&first), ["Пицца Четыре сыра"]);
    assert_eq!(first.total, 2);
    let second = list(db, input("price_desc"), 1, 1).await;
    assert_eq!(names(&second), ["Пицца Маргарита"]);
    assert_eq!(second.total, 2);
    let beyond = list(db, input("price_desc"), 1, 2).await;
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.total, 2);

    // Cheapest first; the two juices cost the same, and the lower id comes first.
    let cheapest = ProductQueryInput {
        sort: Some("price_asc"),
        ..ProductQueryInput::default()
    };
    let listing = list(db, cheapest.clone(), 3, 0).await;
    assert_eq!(
        names(&listing),
        ["Сок 100% яблочный", "Сок_томатный", "Ежевичный морс"]
    );
    assert_eq!(listing.total, 7);
    let listing = list(db, cheapest, 3, 3).await;
    assert_eq!(
        names(&listing),
        ["Ёжик в тумане", "Пицца Маргарита", "Пицца Пепперони"]
    );

    // Dearest first, with the juices' tie still broken by the lower id.
    let dearest = ProductQueryInput {
        sort: Some("price_desc"),
        ..ProductQueryInput::default()
    };
    let listing = list(db, dearest, 10, 4).await;
    assert_eq!(
        names(&listing),
        ["Ежевичный морс", "Сок 100% яблочный", "Сок_томатный"]
    );

    // Search, price and stock together, in the default order.
    let input = ProductQueryInput {
        q: Some("Сок"),
        min_price: Some("100"),
        in_stock: Some("true"),
        ..ProductQueryInput::default()
    };
    let listing = list(db, input, 1, 1).await;
    assert_eq!(names(&listing), ["Сок_томатный"]);
    assert_eq!(listing.total, 2);
}

async fn newest_first_breaks_ties_by_id(db: &TestDatabase) {
    shop(db).await;
    let added = [
        ("Пицца Маргарита", "2025-01-01T10:00:00.000000Z"),
        ("Пицца Пепперони", "2025-03-01T10:00:00.000000Z"),
        ("Пицца Четыре сыра", "2025-02-01T10:00:00.000000Z"),
        ("Сок 100% яблочный", "2025-03-01T10:00:00.000000Z"),
        ("Сок_томатный", "2025-01-15T10:00:00.000000Z"),
        ("Ежевичный морс", "2025-01-01T09:59:59.500000Z"),
        ("Ёжик в тумане", "2025-01-01T10:00:00.500000Z"),
    ];
    for (name, created_at) in added {
        db.execute(&format!(
            "UPDATE products SET created_at = '{created_at}' WHERE name = '{name}'"
        ))
        .await
        .unwrap();
    }
    let newest = ProductQueryInput {
        sort: Some("newest"),
        ..ProductQueryInput::default()
    };
    let listing = list(db, newest.clone(), 4, 0).await;
    assert_eq!(
        names(&listing),
        [
            // Added at the same instant: the higher id counts as newer.
            "Сок 100% яблочный",
            "Пицца Пепперони",
            "Пицца Четыре сыра",
            "Сок_томатный",
        ]
    );
    assert_eq!(listing.total, 7);
    let listing = list(db, newest, 4, 4).await;
    assert_eq!(
        names(&listing),
        ["Ёжик в тумане", "Пицца Маргарита", "Ежевичный морс"]
    );
}
