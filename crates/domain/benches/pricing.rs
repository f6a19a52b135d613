//! Validating and pricing a 10-line cart, as `POST /orders` does before it writes.
//!
//! `cargo bench -p domain --bench pricing`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use domain::order::{OrderDraft, OrderInput, OrderLineInput, price_order};
use domain::payments::PaymentTerms;
use domain::{CategoryId, Money, Product, ProductId};

fn catalog() -> Vec<Product> {
    (1..=10)
        .map(|id| Product {
            price_stars: None,
            id: ProductId(id),
            category_id: CategoryId(1 + id % 3),
            name: format!("Пицца Фирменная №{id}"),
            description: Some("Томаты, моцарелла, базилик".to_owned()),
            price: Money::from_minor(9_900 + id * 1_234).unwrap_or(Money::ZERO),
            images: vec![],
            is_active: true,
            sort_order: 0,
            stock: (id % 2 == 0).then_some(1_000),
        })
        .collect()
}

fn cart() -> OrderInput {
    OrderInput {
        items: (1..=10)
            .map(|id| OrderLineInput {
                product_id: id,
                quantity: 1 + id % 3,
            })
            .collect(),
        delivery_address: "г. Москва, ул. Пушкина, д. 10, кв. 5".to_owned(),
        phone: "+7 (900) 123-45-67".to_owned(),
        comment: Some("Домофон не работает".to_owned()),
    }
}

fn parse_and_price(c: &mut Criterion) {
    let catalog = catalog();
    let priced = OrderDraft::parse(cart())
        .map(|draft| price_order(&draft, &catalog, &PaymentTerms::default()).is_ok());
    assert!(matches!(priced, Ok(true)), "the fixture must price");

    // The cart is cloned outside the measurement: `parse` takes it by value.
    c.bench_function("order_parse_and_price_10_lines", |b| {
        b.iter_batched(
            cart,
            |input| {
                let draft = OrderDraft::parse(black_box(input)).ok()?;
                price_order(&draft, black_box(&catalog), &PaymentTerms::default()).ok()
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, parse_and_price);
criterion_main!(benches);
