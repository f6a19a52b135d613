//! The demo catalog: what `server seed` loads, and what the embedded default loads by
//! itself into an empty database, so a new user sees a shop at once.

use domain::Money;
use http_actix::DEMO_ASSETS_PATH;
use infra_postgres::{SeedCategory, SeedProduct};

fn product(name: &str, description: &str, rubles: i64, sort_order: i32) -> SeedProduct {
    SeedProduct {
        // Filled in by `catalog`, which knows the category and the shop's address.
        images: Vec::new(),
        name: name.to_owned(),
        description: Some(description.to_owned()),
        // Every demo price is far below Money's maximum, so this cannot fail.
        price: Money::from_minor(rubles * 100).unwrap_or(Money::ZERO),
        sort_order,
        // Demo goods are made to order: unlimited.
        stock: None,
    }
}

fn subcategory(
    name: &str,
    slug: &str,
    parent: &str,
    sort_order: i32,
    products: Vec<SeedProduct>,
) -> SeedCategory {
    SeedCategory {
        parent_slug: Some(parent.to_owned()),
        ..category(name, slug, sort_order, products)
    }
}

fn category(name: &str, slug: &str, sort_order: i32, products: Vec<SeedProduct>) -> SeedCategory {
    SeedCategory {
        name: name.to_owned(),
        slug: slug.to_owned(),
        sort_order,
        parent_slug: None,
        products,
    }
}

/// Four root categories of four or five products each, and a subcategory of pizza
/// ("Острая", two products), with Russian names and rouble prices, and
/// pictures BotShop serves itself: each product's own, then its category's, as absolute
/// URLs under `base_url` (the shop's `PUBLIC_BASE_URL`).
pub fn catalog(base_url: &str) -> Vec<SeedCategory> {
    let mut catalog = categories();
    let base = base_url.trim_end_matches('/');
    let picture = |name: &str| format!("{base}{DEMO_ASSETS_PATH}{name}.svg");
    for category in &mut catalog {
        // A subcategory shows its parent's pictures (the spicy pizzas are pizzas).
        let (own, shared): (Vec<String>, &str) = match category.slug.as_str() {
            "pizza-spicy" => (vec!["pizza-5".into(), "pizza-2".into()], "pizza"),
            slug => (
                (1..=category.products.len())
                    .map(|n| format!("{slug}-{n}"))
                    .collect(),
                slug,
            ),
        };
        let shared = picture(shared);
        for (product, own) in category.products.iter_mut().zip(own) {
            product.images = vec![picture(&own), shared.clone()];
        }
    }
    catalog
}

fn categories() -> Vec<SeedCategory> {
    vec![
        category(
            "Пицца",
            "pizza",
            1,
            vec![
                product(
                    "Пицца Маргарита",
                    "Томатный соус, моцарелла, базилик",
                    590,
                    1,
                ),
                product(
                    "Пицца Пепперони",
                    "Пепперони, моцарелла, томатный соус",
                    690,
                    2,
                ),
                product(
                    "Пицца Четыре сыра",
                    "Моцарелла, горгонзола, пармезан, чеддер",
                    750,
                    3,
                ),
                product("Пицца Гавайская", "Курица, ананас, моцарелла", 650, 4),
            ],
        ),
        subcategory(
            "Острая",
            "pizza-spicy",
            "pizza",
            1,
            vec![
                product(
                    "Пицца Дьябло",
                    "Острая салями, халапеньо, моцарелла",
                    720,
                    1,
                ),
                product(
                    "Пицца Мексиканская",
                    "Курица, халапеньо, кукуруза, острый соус",
                    740,
                    2,
                ),
            ],
        ),
        category(
            "Роллы",
            "rolls",
            2,
            vec![
                product("Филадельфия", "Лосось, сливочный сыр, огурец", 540, 1),
                product("Калифорния", "Краб, авокадо, огурец, икра масаго", 480, 2),
                product("Унаги маки", "Угорь, соус унаги, кунжут", 420, 3),
                product("Ролл с тунцом", "Тунец, рис, нори", 390, 4),
                product("Овощной ролл", "Огурец, авокадо, болгарский перец", 290, 5),
            ],
        ),
        category(
            "Напитки",
            "drinks",
            3,
            vec![
                product("Морс клюквенный", "0,5 л, домашний", 150, 1),
                product("Лимонад Тархун", "0,5 л", 170, 2),
                product("Квас хлебный", "0,5 л, живой", 120, 3),
                product("Чай облепиховый", "0,4 л, с мёдом", 210, 4),
                product("Вода минеральная", "0,5 л, без газа", 90, 5),
            ],
        ),
        category(
            "Десерты",
            "desserts",
            4,
            vec![
                product("Чизкейк Нью-Йорк", "Классический, 130 г", 320, 1),
                product("Медовик", "Домашний, 150 г", 280, 2),
                product("Наполеон", "Заварной крем, 150 г", 290, 3),
                product("Сырники", "Со сметаной и вареньем", 260, 4),
                product(
                    "Блинчики с вареньем",
                    "Три штуки, малиновое варенье",
                    230,
                    5,
                ),
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_catalog_has_four_roots_a_subcategory_and_unique_slugs() {
        let catalog = catalog("http://127.0.0.1:8000");
        let roots = catalog.iter().filter(|c| c.parent_slug.is_none()).count();
        assert_eq!((catalog.len(), roots), (5, 4));
        assert_eq!(catalog.iter().map(|c| c.products.len()).sum::<usize>(), 21);
        let mut slugs: Vec<_> = catalog.iter().map(|c| c.slug.as_str()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), 5);
        // A parent is seeded before its children.
        for (at, category) in catalog.iter().enumerate() {
            if let Some(parent) = &category.parent_slug {
                assert!(catalog[..at].iter().any(|c| &c.slug == parent), "{parent}");
            }
        }
        assert!(
            catalog
                .iter()
                .flat_map(|c| &c.products)
                .all(|p| p.price > Money::ZERO)
        );
    }

    #[test]
    fn every_demo_picture_is_one_botshop_serves_with_an_absolute_url() {
        let catalog = catalog("https://shop.example.com/");
        let served: Vec<&str> = http_actix::DEMO_ASSETS
            .iter()
            .map(|(name, _)| *name)
            .collect();
        for product in catalog.iter().flat_map(|c| &c.products) {
            assert_eq!(product.images.len(), 2, "{}", product.name);
            assert!(domain::values::product_images(product.images.clone()).is_ok());
            for url in &product.images {
                let name = url
                    .strip_prefix("https://shop.example.com/static/demo/")
                    .unwrap_or_else(|| panic!("{url}"));
                assert!(served.contains(&name), "{url} is not served");
            }
        }
    }
}
