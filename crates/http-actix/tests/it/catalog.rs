use actix_web::test::{self, TestRequest};
use domain::catalog::{ProductFilter, ProductSort};
use domain::{CategoryId, Page, Paginated, ProductId, RepositoryError};
use mockall::predicate::eq;

use crate::support::*;

#[actix_web::test]
async fn categories_are_paginated_with_total() {
    let mut mocks = Mocks::new();
    mocks
        .catalog
        .expect_list_categories()
        .with(eq(Page::parse(Some(2), Some(1)).unwrap()))
        .returning(|page| {
            Ok(Paginated {
                items: vec![category(2), category(3)],
                total: 4,
                page,
            })
        });
    let app = mocks.app().await;
    let (status, content_type, body) = call(
        &app,
        TestRequest::get().uri("/api/v1/categories?limit=2&offset=1"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    assert_eq!(
        body,
        serde_json::json!({
            "items": [
                {"id": 2, "name": "Категория 2", "slug": "cat-2", "sort_order": 2},
                {"id": 3, "name": "Категория 3", "slug": "cat-3", "sort_order": 3}
            ],
            "total": 4, "limit": 2, "offset": 1
        })
    );
}

#[actix_web::test]
async fn products_default_to_a_page_of_fifty_and_filter_by_category() {
    let mut mocks = Mocks::new();
    mocks
        .catalog
        .expect_list_products()
        .with(
            eq(ProductFilter {
                category_id: Some(CategoryId(7)),
                ..ProductFilter::default()
            }),
            eq(Page::default()),
        )
        .returning(|_, page| {
            Ok(Paginated {
                items: vec![product(1, 25_050)],
                total: 1,
                page,
            })
        });
    let app = mocks.app().await;
    let (status, _, body) = call(
        &app,
        TestRequest::get().uri("/api/v1/products?category_id=7"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["limit"].as_u64(), body["offset"].as_u64()),
        (Some(50), Some(0))
    );
    assert_eq!(
        body["items"][0],
        serde_json::json!({
            "id": 1, "category_id": 1, "name": "Товар 1", "description": "Описание",
            "price": "250.50", "image_url": null, "images": [], "sort_order": 0,
            "stock": null, "in_stock": true})
    );
}

#[actix_web::test]
async fn product_card_shows_price_as_a_two_place_string() {
    let mut mocks = Mocks::new();
    mocks
        .catalog
        .expect_find_active_product()
        .with(eq(ProductId(5)))
        .returning(|id| Ok(Some(product(id.0, 50_000))));
    let app = mocks.app().await;
    let (status, _, body) = call(&app, TestRequest::get().uri("/api/v1/products/5")).await;
    assert_eq!(status, 200);
    assert_eq!(body["price"], "500.00");
}

#[actix_web::test]
async fn inactive_or_missing_product_is_404() {
    let mut mocks = Mocks::new();
    mocks
        .catalog
        .expect_find_active_product()
        .returning(|_| Ok(None));
    let app = mocks.app().await;
    problem(
        &app,
        TestRequest::get().uri("/api/v1/products/9"),
        404,
        "not_found",
    )
    .await;
}

#[actix_web::test]
async fn bad_pagination_is_422_naming_the_parameter() {
    let app = Mocks::new().app().await;
    let body = problem(
        &app,
        TestRequest::get().uri("/api/v1/products?limit=101"),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "limit");
    let body = problem(
        &app,
        TestRequest::get().uri("/api/v1/categories?offset=-1"),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "offset");
    let body = problem(
        &app,
        TestRequest::get().uri("/api/v1/products?limit=ten"),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "limit");
    let body = problem(
        &app,
        TestRequest::get().uri("/api/v1/products?category_id=x"),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "category_id");
}

#[actix_web::test]
async fn a_non_numeric_product_id_is_422_naming_id() {
    let app = Mocks::new().app().await;
    let body = problem(
        &app,
        TestRequest::get().uri("/api/v1/products/abc"),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "id");
}

#[actix_web::test]
async fn a_database_outage_is_503_without_details() {
    let mut mocks = Mocks::new();
    mocks.catalog.expect_list_categories().returning(|_| {
        Err(RepositoryError::Unavailable(anyhow::anyhow!(
            "pool timed out at 10.0.0.5"
        )))
    });
    let app = mocks.app().await;
    let body = problem(
        &app,
        TestRequest::get().uri("/api/v1/categories"),
        503,
        "service_unavailable",
    )
    .await;
    assert!(!body.to_string().contains("10.0.0.5"));
}

#[actix_web::test]
async fn a_value_the_database_refuses_is_422_not_500() {
    let mut mocks = Mocks::new();
    mocks.catalog.expect_list_categories().returning(|_| {
        Err(RepositoryError::InvalidData(anyhow::anyhow!(
            "invalid byte sequence for encoding \"UTF8\": 0x00"
        )))
    });
    let app = mocks.app().await;
    let body = problem(
        &app,
        TestRequest::get().uri("/api/v1/categories"),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "invalid_value");
    assert!(
        !body.to_string().contains("0x00"),
        "no driver detail: {body}"
    );
}

#[actix_web::test]
async fn product_listing_passes_search_filters_and_sort_to_the_catalog() {
    let mut mocks = Mocks::new();
    mocks
        .catalog
        .expect_list_products()
        .withf(|filter, page| {
            filter.search.as_deref() == Some("пицца")
                && filter.min_price.map(|m| m.minor_units()) == Some(10_000)
                && filter.max_price.map(|m| m.minor_units()) == Some(99_950)
                && filter.in_stock_only
                && filter.sort == ProductSort::PriceAsc
                && filter.category_id == Some(CategoryId(2))
                && page.limit() == 10
        })
        .returning(|_, page| {
            Ok(Paginated {
                items: vec![domain::Product {
                    stock: Some(3),
                    ..product(1, 59_000)
                }],
                total: 1,
                page,
            })
        });
    let app = mocks.app().await;
    let uri = "/api/v1/products?q=%D0%9F%D0%98%D0%A6%D0%A6%D0%90&min_price=100&max_price=999.50&in_stock=true&sort=price_asc&category_id=2&limit=10";
    let (status, _, body) = call(&app, TestRequest::get().uri(uri)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["stock"], 3);
    assert_eq!(body["items"][0]["in_stock"], true);
}

#[actix_web::test]
async fn invalid_listing_parameters_are_422_naming_each() {
    let app = Mocks::new().app().await;
    for (query, field) in [
        ("min_price=-1", "min_price"),
        ("min_price=%20100", "min_price"),
        ("min_price=1e3", "min_price"),
        ("q=%0D", "q"),
        ("sort=cheapest", "sort"),
        ("limit=101", "limit"),
        ("in_stock=maybe", "in_stock"),
        ("max_price=1.005", "max_price"),
        ("min_price=1000000000000000000000000000", "min_price"),
        ("max_price=79228162514264337593543950335", "max_price"),
    ] {
        let body = problem(
            &app,
            TestRequest::get().uri(&format!("/api/v1/products?{query}")),
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], field, "{query}");
    }
}

#[actix_web::test]
async fn catalog_answers_carry_an_etag_and_answer_if_none_match_with_304() {
    let mut mocks = Mocks::new();
    mocks
        .catalog
        .expect_find_active_product()
        .returning(|id| Ok(Some(product(id.0, 50_000))));
    mocks.catalog.expect_list_categories().returning(|page| {
        Ok(Paginated {
            items: vec![category(1)],
            total: 1,
            page,
        })
    });
    let app = mocks.app().await;
    for uri in ["/api/v1/products/5", "/api/v1/categories"] {
        let response = test::call_service(&app, TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers().get("cache-control").unwrap(),
            "public, max-age=30"
        );
        let etag = response
            .headers()
            .get("etag")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();

        let again = TestRequest::get()
            .uri(uri)
            .insert_header(("If-None-Match", etag.clone()))
            .to_request();
        let response = test::call_service(&app, again).await;
        assert_eq!(response.status().as_u16(), 304, "{uri}");
        assert_eq!(
            response.headers().get("etag").unwrap().to_str().unwrap(),
            etag
        );
        assert!(test::read_body(response).await.is_empty());

        let stale = TestRequest::get()
            .uri(uri)
            .insert_header(("If-None-Match", "\"0000\""))
            .to_request();
        assert_eq!(test::call_service(&app, stale).await.status().as_u16(), 200);
    }
}

#[actix_web::test]
async fn repeated_catalog_reads_are_served_from_memory() {
    let mut mocks = Mocks::new();
    mocks
        .catalog
        .expect_list_products()
        .times(1)
        .returning(|_, page| {
            Ok(Paginated {
                items: vec![product(1, 100)],
                total: 1,
                page,
            })
        });
    let app = mocks.app().await;
    for _ in 0..3 {
        let (status, _, body) = call(
            &app,
            TestRequest::get().uri("/api/v1/products?q=%D0%BF%D0%B8%D1%86%D1%86%D0%B0"),
        )
        .await;
        assert_eq!((status, body["total"].as_u64()), (200, Some(1)));
    }
    // The same search spelled differently is the same validated filter: still one load.
    let (status, _, _) = call(
        &app,
        TestRequest::get().uri("/api/v1/products?q=%D0%9F%D0%98%D0%A6%D0%A6%D0%90"),
    )
    .await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn an_order_refreshes_the_products_it_touched() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    let stock = Arc::new(AtomicU32::new(5));
    let mut mocks = Mocks::new().with_customer();
    let seen = stock.clone();
    mocks
        .catalog
        .expect_find_active_product()
        .times(2)
        .returning(move |id| {
            Ok(Some(domain::Product {
                stock: Some(seen.load(Ordering::SeqCst)),
                ..product(id.0, 25_000)
            }))
        });
    let taken = stock.clone();
    mocks.orders.expect_place().returning(move |_| {
        taken.store(3, Ordering::SeqCst);
        Ok(order(123))
    });
    let app = mocks.app().await;
    let card = || TestRequest::get().uri("/api/v1/products/1");
    assert_eq!(call(&app, card()).await.2["stock"], 5);
    assert_eq!(call(&app, card()).await.2["stock"], 5, "served from memory");

    let order = TestRequest::post()
        .uri("/api/v1/orders")
        .insert_header(("Authorization", auth_header(987_654_321)))
        .set_json(serde_json::json!({
            "items": [{"product_id": 1, "quantity": 2}],
            "delivery_address": "ул. Пушкина, д. 10",
            "phone": "+79001234567"
        }));
    assert_eq!(call(&app, order).await.0, 201);
    assert_eq!(
        call(&app, card()).await.2["stock"],
        3,
        "the order's product was reloaded"
    );
}

#[actix_web::test]
async fn a_product_shows_its_gallery_and_its_first_image_as_image_url() {
    let mut mocks = Mocks::new();
    mocks.catalog.expect_find_active_product().returning(|id| {
        let mut p = product(id.0, 25_050);
        p.images = vec![
            "https://cdn.example.com/5-a.jpg".into(),
            "https://cdn.example.com/5-b.jpg".into(),
        ];
        Ok(Some(p))
    });
    let app = mocks.app().await;
    let (status, _, body) = call(&app, TestRequest::get().uri("/api/v1/products/5")).await;
    assert_eq!(status, 200);
    assert_eq!(body["image_url"], "https://cdn.example.com/5-a.jpg");
    assert_eq!(
        body["images"],
        serde_json::json!([
            "https://cdn.example.com/5-a.jpg",
            "https://cdn.example.com/5-b.jpg"
        ])
    );
}

#[actix_web::test]
async fn demo_pictures_are_served_from_the_binary_as_safe_cacheable_svg() {
    let app = Mocks::new().app().await;
    let raw = call_raw(&app, TestRequest::get().uri("/static/demo/pizza-1.svg")).await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), Some("image/svg+xml"));
    assert!(raw.body.starts_with("<svg"), "{}", raw.body);
    assert_eq!(raw.header("cache-control"), Some("public, max-age=86400"));
    assert_eq!(raw.header("x-content-type-options"), Some("nosniff"));
    assert!(
        raw.header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    let etag = raw.header("etag").unwrap().to_owned();
    let again = call_raw(
        &app,
        TestRequest::get()
            .uri("/static/demo/pizza-1.svg")
            .insert_header(("If-None-Match", etag.as_str())),
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    for missing in ["/static/demo/nope.svg", "/static/demo/..%2FCargo.toml"] {
        let body = problem(&app, TestRequest::get().uri(missing), 404, "not_found").await;
        assert_eq!(body["detail"], "Picture not found", "{missing}");
    }
}
