//! The category tree: one level at a time, visibility of inactive subtrees (their
//! categories and their products, listed or ordered), products of a subtree, and the
//! database's own refusal of cycles and trees deeper than three levels.

use domain::order::PlaceOrderError;
use domain::ports::{CatalogRepository, OrderRepository, ProductFilter};
use domain::{CategoryId, MAX_CATEGORY_LEVELS};
use infra_postgres::SeedCategory;
use infra_postgres::test_support::TestDatabase;

use crate::support::{T0, category, count, new_order, new_user, page, product_id, seed};

contract_tests!(
    categories_are_listed_one_level_at_a_time,
    an_inactive_category_hides_its_subtree_and_its_products,
    products_of_a_subtree_are_listed_with_include_descendants,
    products_of_a_hidden_category_cannot_be_ordered,
    the_database_refuses_cycles_and_a_fourth_level,
    a_category_with_subcategories_cannot_be_deleted,
);

fn under(parent: &str, mut child: SeedCategory) -> SeedCategory {
    child.parent_slug = Some(parent.to_owned());
    child
}

/// food → pizza → spicy; food → drinks; sweets (a second root).
async fn tree(db: &TestDatabase) {
    seed(
        db,
        &[
            category("food", 1, &[("Хлеб", "50", 0)]),
            category("sweets", 2, &[("Зефир", "90", 0)]),
            under("food", category("pizza", 1, &[("Маргарита", "450", 0)])),
            under("food", category("drinks", 2, &[("Квас", "90", 0)])),
            under("pizza", category("spicy", 1, &[("Дьябло", "520", 0)])),
        ],
    )
    .await;
}

async fn id_of(db: &TestDatabase, slug: &str) -> CategoryId {
    CategoryId(
        db.query_i64(&format!("SELECT id FROM categories WHERE slug = '{slug}'"))
            .await
            .unwrap(),
    )
}

fn slugs(categories: &[domain::Category]) -> Vec<&str> {
    categories.iter().map(|c| c.slug.as_str()).collect()
}

async fn categories_are_listed_one_level_at_a_time(db: &TestDatabase) {
    tree(db).await;
    let store = db.store();
    let (food, pizza) = (id_of(db, "food").await, id_of(db, "pizza").await);

    let roots = store.list_categories(None, page(10, 0)).await.unwrap();
    assert_eq!(slugs(&roots.items), ["food", "sweets"]);
    assert_eq!(roots.total, 2);
    assert!(
        roots
            .items
            .iter()
            .all(|c| c.parent_id.is_none() && c.is_active)
    );

    let children = store
        .list_categories(Some(food), page(10, 0))
        .await
        .unwrap();
    assert_eq!(slugs(&children.items), ["pizza", "drinks"]);
    assert!(children.items.iter().all(|c| c.parent_id == Some(food)));
    let second = store.list_categories(Some(food), page(1, 1)).await.unwrap();
    assert_eq!((slugs(&second.items), second.total), (vec!["drinks"], 2));

    let grouped = store.child_categories(&[food, pizza]).await.unwrap();
    assert_eq!(slugs(&grouped), ["pizza", "spicy", "drinks"]);
    assert!(store.child_categories(&[]).await.unwrap().is_empty());

    let found = store.find_category(pizza).await.unwrap().unwrap();
    assert_eq!(
        (found.slug.as_str(), found.parent_id),
        ("pizza", Some(food))
    );
    assert_eq!(
        store.find_category(CategoryId(999_999)).await.unwrap(),
        None
    );
}

async fn an_inactive_category_hides_its_subtree_and_its_products(db: &TestDatabase) {
    tree(db).await;
    let store = db.store();
    let (food, pizza, spicy) = (
        id_of(db, "food").await,
        id_of(db, "pizza").await,
        id_of(db, "spicy").await,
    );
    db.execute(&format!(
        "UPDATE categories SET is_active = false WHERE id = {}",
        pizza.0
    ))
    .await
    .unwrap();

    let children = store
        .list_categories(Some(food), page(10, 0))
        .await
        .unwrap();
    assert_eq!(slugs(&children.items), ["drinks"]);
    assert!(
        store
            .list_categories(Some(pizza), page(10, 0))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(store.find_category(pizza).await.unwrap(), None);
    // The grandchild of an inactive category is hidden too, though active itself.
    assert_eq!(store.find_category(spicy).await.unwrap(), None);
    assert_eq!(
        slugs(&store.child_categories(&[food, pizza]).await.unwrap()),
        ["drinks"]
    );

    let listed = store
        .list_products(ProductFilter::default(), page(10, 0))
        .await
        .unwrap();
    let names: Vec<&str> = listed.items.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(listed.total, 3);
    for hidden in ["Маргарита", "Дьябло"] {
        assert!(!names.contains(&hidden), "{names:?}");
        let id = product_id(db, hidden).await;
        assert_eq!(
            store.find_active_product(id).await.unwrap(),
            None,
            "{hidden}"
        );
    }

    // A root deactivated hides everything under it.
    db.execute(&format!(
        "UPDATE categories SET is_active = true WHERE id = {}; \
         UPDATE categories SET is_active = false WHERE id = {}",
        pizza.0, food.0
    ))
    .await
    .unwrap();
    let roots = store.list_categories(None, page(10, 0)).await.unwrap();
    assert_eq!(slugs(&roots.items), ["sweets"]);
    assert_eq!(store.find_category(spicy).await.unwrap(), None);
    let listed = store
        .list_products(ProductFilter::default(), page(10, 0))
        .await
        .unwrap();
    assert_eq!(slugs_of_products(&listed.items), ["Зефир"]);
}

fn slugs_of_products(products: &[domain::Product]) -> Vec<&str> {
    products.iter().map(|p| p.name.as_str()).collect()
}

async fn products_of_a_subtree_are_listed_with_include_descendants(db: &TestDatabase) {
    tree(db).await;
    let store = db.store();
    let food = id_of(db, "food").await;
    let filter = |include_descendants| ProductFilter {
        category_id: Some(food),
        include_descendants,
        ..ProductFilter::default()
    };
    let own = store
        .list_products(filter(false), page(10, 0))
        .await
        .unwrap();
    assert_eq!(slugs_of_products(&own.items), ["Хлеб"]);
    let all = store
        .list_products(filter(true), page(10, 0))
        .await
        .unwrap();
    let mut names = slugs_of_products(&all.items);
    names.sort_unstable();
    assert_eq!(names, ["Дьябло", "Квас", "Маргарита", "Хлеб"]);
    assert_eq!(all.total, 4);

    // Hidden parts of the subtree stay hidden.
    db.execute("UPDATE categories SET is_active = false WHERE slug = 'pizza'")
        .await
        .unwrap();
    let visible = store
        .list_products(filter(true), page(10, 0))
        .await
        .unwrap();
    let mut names = slugs_of_products(&visible.items);
    names.sort_unstable();
    assert_eq!(names, ["Квас", "Хлеб"]);
}

async fn products_of_a_hidden_category_cannot_be_ordered(db: &TestDatabase) {
    tree(db).await;
    let user = new_user(db, 1001).await;
    let (bread, diablo) = (product_id(db, "Хлеб").await, product_id(db, "Дьябло").await);
    let store = db.store();
    // Priced once while everything is visible, so that a remembered price would say yes.
    store
        .place(new_order(&user, &[(bread, 1), (diablo, 1)], T0))
        .await
        .unwrap();
    db.execute("UPDATE categories SET is_active = false WHERE slug = 'pizza'")
        .await
        .unwrap();

    let result = store
        .place(new_order(&user, &[(bread, 1), (diablo, 1)], T0))
        .await;
    match result {
        Err(PlaceOrderError::ProductUnavailable(ids)) => assert_eq!(ids, [diablo]),
        other => panic!("expected ProductUnavailable, got {other:?}"),
    }
    assert_eq!(count(db, "orders").await, 1);
    // The visible one alone still sells.
    store
        .place(new_order(&user, &[(bread, 1)], T0))
        .await
        .unwrap();
}

async fn the_database_refuses_cycles_and_a_fourth_level(db: &TestDatabase) {
    tree(db).await;
    let (food, pizza, spicy, drinks, sweets) = (
        id_of(db, "food").await,
        id_of(db, "pizza").await,
        id_of(db, "spicy").await,
        id_of(db, "drinks").await,
        id_of(db, "sweets").await,
    );
    assert_eq!(MAX_CATEGORY_LEVELS, migration::MAX_CATEGORY_LEVELS);
    let refused = |sql: String| async move {
        assert!(db.execute(&sql).await.is_err(), "{sql} was accepted");
    };
    // Its own parent, its child's child, its grandchild's child.
    refused(format!(
        "UPDATE categories SET parent_id = {0} WHERE id = {0}",
        food.0
    ))
    .await;
    refused(format!(
        "UPDATE categories SET parent_id = {} WHERE id = {}",
        pizza.0, food.0
    ))
    .await;
    refused(format!(
        "UPDATE categories SET parent_id = {} WHERE id = {}",
        spicy.0, food.0
    ))
    .await;
    // A fourth level: under spicy (level 3).
    refused(format!(
        "INSERT INTO categories (name, slug, sort_order, parent_id) VALUES ('x', 'x', 0, {})",
        spicy.0
    ))
    .await;
    // Moving pizza (with spicy below it) under drinks would make spicy level 4.
    refused(format!(
        "UPDATE categories SET parent_id = {} WHERE id = {}",
        drinks.0, pizza.0
    ))
    .await;
    // A parent that does not exist.
    refused(
        "INSERT INTO categories (name, slug, sort_order, parent_id) VALUES ('y', 'y', 0, 999999)"
            .to_owned(),
    )
    .await;
    // Allowed: a third level elsewhere, and moving a subtree where it fits.
    db.execute(&format!(
        "INSERT INTO categories (name, slug, sort_order, parent_id) VALUES ('Морс', 'mors', 0, {})",
        drinks.0
    ))
    .await
    .unwrap();
    db.execute(&format!(
        "UPDATE categories SET parent_id = {} WHERE id = {}",
        sweets.0, pizza.0
    ))
    .await
    .unwrap();
    db.execute(&format!(
        "UPDATE categories SET parent_id = NULL WHERE id = {}",
        pizza.0
    ))
    .await
    .unwrap();
}

async fn a_category_with_subcategories_cannot_be_deleted(db: &TestDatabase) {
    // No products anywhere, so only the tree stands in the way.
    seed(
        db,
        &[
            category("parent", 0, &[]),
            under("parent", category("child", 0, &[])),
        ],
    )
    .await;
    assert!(
        db.execute("DELETE FROM categories WHERE slug = 'parent'")
            .await
            .is_err()
    );
    assert_eq!(count(db, "categories").await, 2);
    db.execute("DELETE FROM categories WHERE slug = 'child'")
        .await
        .unwrap();
    db.execute("DELETE FROM categories WHERE slug = 'parent'")
        .await
        .unwrap();
    assert_eq!(count(db, "categories").await, 0);
}
