//! Browsing the catalog: search, price and stock filters, and sorts, combined with
//! pagination.

use domain::catalog::ProductSort;
use domain::catalog::{ProductFilter, ProductQueryInput};
use domain::ports::CatalogRepository;
use domain::{CategoryId, Paginated, Product};
use infra_postgres::test_support::{TestDatabase, product_page_postgres};
use infra_postgres::{SeedCategory, SeedProduct};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, TransactionTrait};

use crate::support::{deactivate, page, product_id, rub, seed};

contract_tests!(
    search_finds_mixed_case_cyrillic_in_names_and_descriptions,
    search_treats_yo_as_ye,
    like_wildcards_in_the_search_are_literal,
    price_range_is_inclusive_and_hides_inactive_products,
    in_stock_means_unlimited_or_above_zero,
    filters_and_sorts_combine_with_pagination,
    newest_first_breaks_ties_by_id,
    a_search_too_short_for_trigrams_still_finds_substrings,
    a_phrase_is_found_from_the_ends_of_its_words,
    a_phrase_in_a_word_too_long_for_the_dictionary_is_found,
    a_changed_product_is_found_by_its_new_words,
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

/// A search with no three letters or digits in a row has no trigram to look up; it is
/// matched without the index (see `plans` below) and finds what any search finds.
async fn a_search_too_short_for_trigrams_still_finds_substrings(db: &TestDatabase) {
    shop(db).await;
    assert_eq!(search(db, "сы").await, ["Пицца Четыре сыра"]);
    assert_eq!(search(db, "ЕЖ").await, ["Ежевичный морс", "Ёжик в тумане"]);
    assert_eq!(
        search(db, "а м").await,
        ["Пицца Маргарита", "Пицца Четыре сыра"]
    );
    assert_eq!(search(db, "%").await, ["Сок 100% яблочный"]);
}

/// A phrase of several words is a substring of the text: it may start inside a word and
/// end inside one (on PostgreSQL the word index finds it from those ends).
async fn a_phrase_is_found_from_the_ends_of_its_words(db: &TestDatabase) {
    shop(db).await;
    assert_eq!(search(db, "ицца маргар").await, ["Пицца Маргарита"]);
    assert_eq!(search(db, "ца марг").await, ["Пицца Маргарита"]);
    assert_eq!(search(db, "ицца четыре сы").await, ["Пицца Четыре сыра"]);
    // A whole word in the middle, punctuation and all.
    assert_eq!(
        search(db, "томатный соус, моцарелла, баз").await,
        ["Пицца Маргарита"]
    );
    assert_eq!(search(db, "рита томатный соус,").await, ["Пицца Маргарита"]);
    // Not the end of a word, not a whole word, not the start of one.
    assert!(search(db, "пиц маргарита").await.is_empty());
    assert!(search(db, "томатный со моцарелла").await.is_empty());
    assert!(search(db, "пицца аргарита").await.is_empty());
    // Words found apart, but not as the phrase.
    assert!(search(db, "маргарита пицца").await.is_empty());
}

/// Words of more than 64 characters are too long for the dictionary, and the products
/// holding them are still found by any phrase.
async fn a_phrase_in_a_word_too_long_for_the_dictionary_is_found(db: &TestDatabase) {
    let long = "сверхдлинноесловокоторогоэтотсловарьнеудерживаетникакимобразомвовсе";
    assert!(long.chars().count() > 64);
    let described = format!("Перед {long} после");
    seed(
        db,
        &[SeedCategory {
            name: "other".to_owned(),
            slug: "other".to_owned(),
            sort_order: 0,
            parent_slug: None,
            products: vec![
                product("Длинный", Some(&described), "100", None),
                product("Короткий", Some("перед словом после"), "100", None),
            ],
        }],
    )
    .await;
    assert_eq!(search(db, "перед сверхдлинное").await, ["Длинный"]);
    assert_eq!(search(db, "образомвовсе после").await, ["Длинный"]);
    assert_eq!(
        search(db, &format!("перед {long} после")).await,
        ["Длинный"]
    );
    assert_eq!(search(db, "перед словом после").await, ["Короткий"]);
}

/// A product whose text changes is found by its new words, and no longer by its old.
async fn a_changed_product_is_found_by_its_new_words(db: &TestDatabase) {
    shop(db).await;
    let renamed = domain::catalog::product_search_text("Кальцоне Деревенская", Some("Бекон"));
    db.execute(&format!(
        "UPDATE products SET name = 'Кальцоне Деревенская', description = 'Бекон', \
         search_text = '{renamed}' WHERE name = 'Пицца Маргарита'"
    ))
    .await
    .unwrap();
    assert_eq!(
        search(db, "кальцоне деревенская бекон").await,
        ["Кальцоне Деревенская"]
    );
    assert_eq!(search(db, "льцоне деревен").await, ["Кальцоне Деревенская"]);
    assert!(search(db, "пицца маргарита").await.is_empty());
}

/// How PostgreSQL plans the catalog's searches over 30 000 products: each test makes
/// its own database.
mod plans {
    use super::*;

    /// 30 000 active products in 10 categories, named "<adjective> <noun> №<n>" from 20 × 20
    /// words, so that a two-word search matches 75 of them; analysed.
    async fn many_products(db: &TestDatabase) {
        db.execute(
            "INSERT INTO categories (name, slug, sort_order) \
             SELECT 'c' || c, 'c' || c, c FROM generate_series(1, 10) AS c",
        )
        .await
        .unwrap();
        db.execute(
            "INSERT INTO products (category_id, name, description, price_minor, sort_order, \
                                   search_text, created_at, updated_at) \
             SELECT (SELECT min(id) FROM categories) + i % 10, name, description, \
                    10000 + i * 7919 % 100000, i, name || ' ' || description, \
                    '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z' \
             FROM (SELECT i, \
                     (ARRAY['острый', 'сырный', 'грибной', 'томатный', 'куриный', 'рыбный', \
                            'овощной', 'мясной', 'сливочный', 'домашний', 'фирменный', \
                            'летний', 'зимний', 'легкий', 'пряный', 'сладкий', 'горячий', \
                            'холодный', 'свежий', 'копченый'])[i % 20 + 1] \
                     || ' ' || \
                     (ARRAY['суп', 'салат', 'ролл', 'бургер', 'пирог', 'стейк', 'соус', \
                            'чай', 'морс', 'коктейль', 'десерт', 'торт', 'хлеб', 'плов', \
                            'шашлык', 'омлет', 'сэндвич', 'кекс', 'сок', 'лимонад'])[i / 20 % 20 + 1] \
                     || ' №' || i AS name, \
                     'порция ' || (150 + i % 30 * 10) || ' г' AS description \
                   FROM generate_series(1, 30000) AS i) AS generated",
        )
        .await
        .unwrap();
        db.execute("VACUUM ANALYZE products").await.unwrap();
    }

    /// The plans of the statement `list_products` sends for `q` (and `category`, `sort`),
    /// as PostgreSQL plans it for these values (custom) and for any (generic, as it may
    /// cache it for a prepared statement).
    async fn plans(
        db: &TestDatabase,
        q: &str,
        category: Option<i64>,
        sort: ProductSort,
    ) -> [String; 2] {
        let category = category.map(|c| c.to_string());
        let mut filter = ProductFilter::parse(ProductQueryInput {
            q: Some(q),
            ..ProductQueryInput::default()
        })
        .unwrap();
        filter.sort = sort;
        if category.is_some() {
            let first = db
                .query_i64("SELECT min(id) FROM categories")
                .await
                .unwrap();
            filter.category_id = Some(CategoryId(first + 2));
        }
        let (sql, values) = product_page_postgres(&filter, page(100, 0));
        // PREPARE and EXECUTE on one connection: the transaction's.
        let transaction = db.database().connection().begin().await.unwrap();
        transaction
            .execute_unprepared(&format!("PREPARE page AS {sql}"))
            .await
            .unwrap();
        let mut plans = Vec::new();
        for mode in ["force_custom_plan", "force_generic_plan"] {
            transaction
                .execute_unprepared(&format!("SET LOCAL plan_cache_mode = {mode}"))
                .await
                .unwrap();
            let lines = transaction
                .query_all_raw(Statement::from_string(
                    DatabaseBackend::Postgres,
                    format!("EXPLAIN EXECUTE page({})", values.join(", ")),
                ))
                .await
                .unwrap()
                .into_iter()
                .map(|row| row.try_get::<String>("", "QUERY PLAN").unwrap())
                .collect::<Vec<_>>();
            plans.push(lines.join("\n"));
        }
        // A prepared statement outlives the transaction.
        transaction
            .execute_unprepared("DEALLOCATE page")
            .await
            .unwrap();
        transaction.rollback().await.unwrap();
        plans.try_into().unwrap()
    }

    const TRIGRAM_INDEX: &str = "idx_products_search_text_trgm";
    const WORD_INDEX: &str = "idx_products_search_words";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_phrase_uses_the_word_index_whatever_the_sort_and_category() {
        let Some(db) = TestDatabase::postgres().await else {
            return;
        };
        many_products(&db).await;
        let found = list(
            &db,
            ProductQueryInput {
                q: Some("Острый  СУП"),
                ..ProductQueryInput::default()
            },
            100,
            0,
        )
        .await;
        assert_eq!(found.total, 75);
        for category in [None, Some(3)] {
            for sort in [
                ProductSort::Default,
                ProductSort::PriceAsc,
                ProductSort::PriceDesc,
                ProductSort::Newest,
            ] {
                // Both ends long enough, a whole word in the middle, and both.
                for q in ["острый суп", "й суп №", "острый суп №1"] {
                    for plan in plans(&db, q, category, sort).await {
                        assert!(
                            plan.contains(WORD_INDEX) && !plan.contains(TRIGRAM_INDEX),
                            "{q} {category:?} {sort:?}:\n{plan}"
                        );
                        assert!(
                            plan.contains("idx_search_dictionary_trgm") || !q.starts_with("острый"),
                            "{q} {category:?} {sort:?}:\n{plan}"
                        );
                    }
                }
            }
        }
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_single_word_uses_the_trigram_index() {
        let Some(db) = TestDatabase::postgres().await else {
            return;
        };
        many_products(&db).await;
        for q in ["острый", "суп"] {
            for plan in plans(&db, q, None, ProductSort::Default).await {
                assert!(
                    plan.contains(TRIGRAM_INDEX) && !plan.contains(WORD_INDEX),
                    "{q}:\n{plan}"
                );
            }
        }
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_search_without_a_trigram_reads_the_table_even_in_a_generic_plan() {
        let Some(db) = TestDatabase::postgres().await else {
            return;
        };
        many_products(&db).await;
        for q in ["сы", "й с"] {
            for plan in plans(&db, q, None, ProductSort::Default).await {
                assert!(
                    !plan.contains(TRIGRAM_INDEX) && plan.contains("Seq Scan on products"),
                    "{q}:\n{plan}"
                );
            }
        }
        db.cleanup().await;
    }
}
