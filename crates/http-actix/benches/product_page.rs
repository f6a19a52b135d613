//! Serialising a page of 50 products, the body of `GET /api/v1/products`.
//!
//! `cargo bench -p http-actix --bench product_page`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domain::{CategoryId, Money, Product, ProductId};
use http_actix::dto::ProductDto;

fn page_of_50() -> Vec<ProductDto> {
    (1..=50)
        .map(|id| Product {
            price_stars: None,
            id: ProductId(id),
            category_id: CategoryId(1),
            name: format!("Пицца Фирменная №{id}"),
            description: Some(format!(
                "Свежие ингредиенты, порция {} г. Готовим за {} минут, доставка горячим.",
                200 + id * 10,
                10 + id % 20
            )),
            price: Money::from_minor(9_900 + (id * 7_919) % 190_000).unwrap_or(Money::ZERO),
            images: vec![format!("https://cdn.example.com/products/{id}.jpg")],
            is_active: true,
            sort_order: i32::try_from(id).unwrap_or(0),
            stock: (id % 5 == 0).then_some(1_000_000),
        })
        .map(ProductDto::from)
        .collect()
}

fn serialize(c: &mut Criterion) {
    let page = page_of_50();
    let bytes = serde_json::to_vec(&page)
        .map(|json| json.len())
        .unwrap_or(0);
    assert!(bytes > 0, "the fixture must serialise");

    let mut group = c.benchmark_group("product_page");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("serialize_50_products", |b| {
        b.iter(|| serde_json::to_vec(black_box(&page)))
    });
    group.finish();
}

criterion_group!(benches, serialize);
criterion_main!(benches);
