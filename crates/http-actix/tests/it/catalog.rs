use std::time::Duration;

use actix_web::test::{self, TestRequest};
use domain::catalog::{ProductFilter, ProductSort};
use domain::{Category, CategoryId, Page, Paginated, ProductId, RepositoryError};
use mockall::predicate::eq;

use crate::support::*;

#[actix_web::test]
async fn categories_are_paginated_with_total() {
    let mut mocks = Mocks::new();
    mocks
        .catalog
        .expect_list_categories()
        .with(eq(None), eq(Page::parse(Some(2), Some(1)).unwrap()))
        .returning(|_, page| {
            Ok(Paginated {
                items: vec![category(2), category(3)],
                total: 4,
                page,
            })
        });
    let app = mocks.app().await;
    let raw = call_raw(
        &app,
        TestRequest::get().uri("/api/v1/categories?limit=2&offset=1"),
    )
    .await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), Some("application/json"));
    // A JSON array, as the seed answers; the rest is in the headers.
    assert_eq!(
        raw.json(),
        serde_json::json!([
            {"id": 2, "name": "Категория 2", "slug": "cat-2", "sort_order": 2,
             "parent_id": null, "is_active": true},
            {"id": 3, "name": "Категория 3", "slug": "cat-3", "sort_order": 3,
             "parent_id": null, "is_active": true}
        ])
    );
    assert_eq!(raw.header("x-total-count"), Some("4"));
    assert_eq!(
        raw.header("link"),
        Some(
            "</api/v1/categories?limit=2&offset=3>; rel=\"next\", \
             </api/v1/categories?limit=1&offset=0>; rel=\"prev\""
        )
    );
    // The same from memory, and the 304 of an unchanged page says the same.
    let etag = raw.header("etag").unwrap().to_owned();
    let again = call_raw(
        &app,
        TestRequest::get()
            .uri("/api/v1/categories?limit=2&offset=1")
            .insert_header(("If-None-Match", etag.as_str())),
    )
    .await;
    assert_eq!(again.status, 304);
    assert_eq!(again.header("x-total-count"), Some("4"));
    assert_eq!(again.header("link"), raw.header("link"));
}

/// Browsers read the count and the links only if CORS exposes them.
#[actix_web::test]
async fn the_count_and_links_are_exposed_to_browsers() {
    let mut mocks = Mocks::new();
    mocks.catalog.expect_list_categories().returning(|_, page| {
        Ok(Paginated {
            items: vec![category(1)],
            total: 1,
            page,
        })
    });
    let app = mocks.app().await;
    let raw = call_raw(
        &app,
        TestRequest::get()
            .uri("/api/v1/categories")
            .insert_header(("Origin", "https://mini-app.example.com")),
    )
    .await;
    assert_eq!(raw.status, 200);
    let exposed = raw
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in ["x-total-count", "link"] {
        assert!(exposed.contains(name), "{exposed}");
    }
}

#[actix_web::test]
async fn products_default_to_a_page_of_one_hundred_and_filter_by_category() {
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
    let raw = call_raw(
        &app,
        TestRequest::get().uri("/api/v1/products?category_id=7"),
    )
    .await;
    assert_eq!(raw.status, 200);
    // The seed's shape: a JSON array, the count in a header, no links on a single page.
    assert_eq!(raw.header("x-total-count"), Some("1"));
    assert_eq!(raw.header("link"), None);
    let body = raw.json();
    assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(
        body[0],
        serde_json::json!({
            "id": 1, "category_id": 1, "name": "Товар 1", "description": "Описание",
            "price": "250.50", "image_url": null, "images": [], "sort_order": 0,
            "stock": null, "in_stock": true, "price_stars": null})
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
        TestRequest::get().uri("/api/v1/products?limit=501"),
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
    mocks.catalog.expect_list_categories().returning(|_, _| {
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
    mocks.catalog.expect_list_categories().returning(|_, _| {
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
    assert_eq!(body[0]["stock"], 3);
    assert_eq!(body[0]["in_stock"], true);
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
        ("limit=501", "limit"),
        ("limit=%2010", "limit"),
        ("offset=1%0B", "offset"),
        ("category_id=2%09", "category_id"),
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
    // Paused: the server's copy does not age between the requests, so max-age stays whole.
    tokio::time::pause();
    let mut mocks = Mocks::new();
    mocks
        .catalog
        .expect_find_active_product()
        .returning(|id| Ok(Some(product(id.0, 50_000))));
    mocks.catalog.expect_list_categories().returning(|_, page| {
        Ok(Paginated {
            items: vec![category(1)],
            total: 1,
            page,
        })
    });
    let app = mocks.app().await;
    // Answers showing stock are revalidated every time; categories may be reused for what
    // is left of the server's copy (a fresh one: the whole CATALOG_CACHE_TTL, 5 s).
    for (uri, cache_control) in [
        ("/api/v1/products/5", "no-cache"),
        ("/api/v1/categories", "public, max-age=5"),
    ] {
        let response = test::call_service(&app, TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers().get("cache-control").unwrap(),
            cache_control,
            "{uri}"
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
        assert_eq!(
            response.headers().get("cache-control").unwrap(),
            cache_control,
            "the 304 of {uri}"
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
    // A search is kept when it is asked again (most are asked once): loaded twice, then
    // served from memory.
    mocks
        .catalog
        .expect_list_products()
        .times(2)
        .returning(|_, page| {
            Ok(Paginated {
                items: vec![product(1, 100)],
                total: 1,
                page,
            })
        });
    let app = mocks.app().await;
    for _ in 0..4 {
        let raw = call_raw(
            &app,
            TestRequest::get().uri("/api/v1/products?q=%D0%BF%D0%B8%D1%86%D1%86%D0%B0"),
        )
        .await;
        assert_eq!((raw.status, raw.header("x-total-count")), (200, Some("1")));
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

/// A catalog whose product reads are counted per id, and whose first read of
/// `gated` waits until the test opens the gate (after saying it has started).
struct GatedCatalog {
    gated: i64,
    started: tokio::sync::Notify,
    gate: tokio::sync::Notify,
    reads: std::sync::Mutex<std::collections::HashMap<i64, u32>>,
}

impl GatedCatalog {
    fn reads_of(&self, id: i64) -> u32 {
        self.reads.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl domain::ports::CatalogRepository for GatedCatalog {
    async fn list_categories(
        &self,
        _: Option<CategoryId>,
        _: Page,
    ) -> Result<Paginated<domain::Category>, RepositoryError> {
        unreachable!("the gated catalog serves product pages only")
    }

    async fn child_categories(
        &self,
        _: &[CategoryId],
    ) -> Result<Vec<domain::Category>, RepositoryError> {
        unreachable!("the gated catalog serves product pages only")
    }

    async fn find_category(
        &self,
        _: CategoryId,
    ) -> Result<Option<domain::Category>, RepositoryError> {
        unreachable!("the gated catalog serves product pages only")
    }

    async fn list_products(
        &self,
        _: ProductFilter,
        _: Page,
    ) -> Result<Paginated<domain::Product>, RepositoryError> {
        unreachable!("the gated catalog serves product pages only")
    }

    async fn find_active_product(
        &self,
        id: ProductId,
    ) -> Result<Option<domain::Product>, RepositoryError> {
        let first = {
            let mut reads = self.reads.lock().unwrap();
            let count = reads.entry(id.0).or_default();
            *count += 1;
            *count == 1
        };
        if first && id.0 == self.gated {
            self.started.notify_one();
            self.gate.notified().await;
        }
        Ok(Some(product(id.0, 25_000)))
    }
}

fn order_for_products_1_and_2() -> TestRequest {
    // The mocked placement answers with `order(123)`, whose lines are products 1 and 2.
    TestRequest::post()
        .uri("/api/v1/orders")
        .insert_header(("Authorization", auth_header(987_654_321)))
        .set_json(serde_json::json!({
            "items": [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1}],
            "delivery_address": "ул. Пушкина, д. 10",
            "phone": "+79001234567"
        }))
}

fn gated_app_state(gated: i64) -> (std::sync::Arc<GatedCatalog>, http_actix::Http) {
    let mut mocks = Mocks::new().with_customer();
    mocks.orders.expect_place().returning(|_| Ok(order(123)));
    gated_app_state_with(gated, mocks)
}

/// As [`gated_app_state`], with the rest of the app from `mocks`.
fn gated_app_state_with(
    gated: i64,
    mocks: Mocks,
) -> (std::sync::Arc<GatedCatalog>, http_actix::Http) {
    let catalog = std::sync::Arc::new(GatedCatalog {
        gated,
        started: tokio::sync::Notify::new(),
        gate: tokio::sync::Notify::new(),
        reads: Default::default(),
    });
    let (mut state, config) = mocks.state();
    state.catalog = catalog.clone();
    (catalog, http_actix::Http::new(state, config).unwrap())
}

#[actix_web::test]
async fn an_order_leaves_other_products_cached_and_refreshes_its_own() {
    let (catalog, http) = gated_app_state(0);
    let app = worker(&http).await;
    let card = |id: i64| TestRequest::get().uri(&format!("/api/v1/products/{id}"));
    for id in [1, 3] {
        assert_eq!(call(&app, card(id)).await.0, 200);
    }
    assert_eq!(call(&app, order_for_products_1_and_2()).await.0, 201);
    for id in [1, 3] {
        assert_eq!(call(&app, card(id)).await.0, 200);
    }
    assert_eq!(catalog.reads_of(3), 1, "product 3's page stayed in memory");
    assert_eq!(catalog.reads_of(1), 2, "product 1's page was read again");
}

#[actix_web::test]
async fn a_page_loaded_while_an_order_for_other_products_commits_is_kept() {
    let (catalog, http) = gated_app_state(3);
    let app = worker(&http).await;
    let card = |id: i64| TestRequest::get().uri(&format!("/api/v1/products/{id}"));
    // Product 3's page is being read when an order for products 1 and 2 commits.
    let read = call(&app, card(3));
    let order = async {
        catalog.started.notified().await;
        let status = call(&app, order_for_products_1_and_2()).await.0;
        catalog.gate.notify_one();
        status
    };
    let ((status, _, _), ordered) = tokio::join!(read, order);
    assert_eq!((status, ordered), (200, 201));
    assert_eq!(call(&app, card(3)).await.0, 200);
    assert_eq!(
        catalog.reads_of(3),
        1,
        "the order could not have made product 3's page stale, so it was kept"
    );
}

#[actix_web::test]
async fn a_page_loaded_while_an_order_for_its_product_commits_is_not_kept() {
    let (catalog, http) = gated_app_state(1);
    let app = worker(&http).await;
    let card = |id: i64| TestRequest::get().uri(&format!("/api/v1/products/{id}"));
    let read = call(&app, card(1));
    let order = async {
        catalog.started.notified().await;
        let status = call(&app, order_for_products_1_and_2()).await.0;
        catalog.gate.notify_one();
        status
    };
    let ((status, _, _), ordered) = tokio::join!(read, order);
    assert_eq!((status, ordered), (200, 201));
    assert_eq!(call(&app, card(1)).await.0, 200);
    assert_eq!(
        catalog.reads_of(1),
        2,
        "the first read may predate the order: it was not kept"
    );
}

fn cache_control_of<B>(response: &actix_web::dev::ServiceResponse<B>) -> String {
    response
        .headers()
        .get("cache-control")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

#[actix_web::test]
async fn a_browser_may_keep_categories_no_longer_than_the_server_does() {
    tokio::time::pause();
    let mut mocks = Mocks::new().with_config(|c| c.catalog_cache_ttl = Duration::from_secs(10));
    mocks
        .catalog
        .expect_list_categories()
        .times(2)
        .returning(|_, page| {
            Ok(Paginated {
                items: vec![category(1)],
                total: 1,
                page,
            })
        });
    let app = mocks.app().await;
    let categories = || TestRequest::get().uri("/api/v1/categories").to_request();
    let first = test::call_service(&app, categories()).await;
    assert_eq!(cache_control_of(&first), "public, max-age=10");
    // Four seconds later the server's copy has six left, and so has the browser's.
    tokio::time::advance(Duration::from_secs(4)).await;
    let later = test::call_service(&app, categories()).await;
    assert_eq!(cache_control_of(&later), "public, max-age=6");
    tokio::time::advance(Duration::from_millis(5_500)).await;
    let last = test::call_service(&app, categories()).await;
    assert_eq!(
        cache_control_of(&last),
        "no-cache",
        "less than a second left"
    );
    // Expired: loaded again, for another ten seconds.
    tokio::time::advance(Duration::from_millis(500)).await;
    let reloaded = test::call_service(&app, categories()).await;
    assert_eq!(cache_control_of(&reloaded), "public, max-age=10");
}

#[actix_web::test]
async fn without_a_server_cache_every_catalog_answer_is_revalidated() {
    let app = Mocks::new()
        .answering_everything()
        .with_config(|c| c.catalog_cache_ttl = Duration::ZERO)
        .app()
        .await;
    for uri in [
        "/api/v1/categories",
        "/api/v1/products",
        "/api/v1/products/1",
    ] {
        let response = test::call_service(&app, TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(response.status().as_u16(), 200, "{uri}");
        assert_eq!(cache_control_of(&response), "no-cache", "{uri}");
    }
}

#[actix_web::test]
async fn categories_are_served_one_level_at_a_time_with_their_children_on_request() {
    let mut mocks = Mocks::new();
    let child = |id: i64, parent: i64| Category {
        parent_id: Some(CategoryId(parent)),
        ..category(id)
    };
    mocks
        .catalog
        .expect_list_categories()
        .with(eq(Some(CategoryId(1))), eq(Page::default()))
        .returning(move |_, page| {
            Ok(Paginated {
                items: vec![child(5, 1), child(6, 1)],
                total: 2,
                page,
            })
        });
    mocks
        .catalog
        .expect_child_categories()
        .withf(|parents: &[CategoryId]| parents == [CategoryId(5), CategoryId(6)])
        .returning(move |_| Ok(vec![child(7, 5), child(8, 5)]));
    let app = mocks.app().await;

    let raw = call_raw(
        &app,
        TestRequest::get().uri("/api/v1/categories?parent_id=1&include_children=true"),
    )
    .await;
    assert_eq!(raw.status, 200, "{}", raw.body);
    let body = raw.json();
    assert_eq!(body[0]["parent_id"], 1);
    assert_eq!(body[0]["is_active"], true);
    let children: Vec<i64> = body[0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(children, [7, 8]);
    assert_eq!(body[1]["children"], serde_json::json!([]));
}

#[actix_web::test]
async fn without_include_children_a_category_has_no_children_field() {
    let mut mocks = Mocks::new();
    mocks
        .catalog
        .expect_list_categories()
        .returning(|parent, page| {
            assert_eq!(parent, None, "the roots by default");
            Ok(Paginated {
                items: vec![category(1)],
                total: 1,
                page,
            })
        });
    let app = mocks.app().await;
    let (status, _, body) = call(&app, TestRequest::get().uri("/api/v1/categories")).await;
    assert_eq!(status, 200);
    assert!(body[0].get("children").is_none(), "{body}");
}

#[actix_web::test]
async fn one_category_by_id_or_a_404_that_says_so() {
    let mut mocks = Mocks::new();
    mocks
        .catalog
        .expect_find_category()
        .returning(|id| Ok((id == CategoryId(3)).then(|| category(3))));
    let app = mocks.app().await;
    let (status, _, body) = call(&app, TestRequest::get().uri("/api/v1/categories/3")).await;
    assert_eq!((status, body["slug"].as_str()), (200, Some("cat-3")));
    let body = problem(
        &app,
        TestRequest::get().uri("/api/v1/categories/4"),
        404,
        "not_found",
    )
    .await;
    assert_eq!(body["detail"], "Category not found");
    for bad in ["/api/v1/categories/0", "/api/v1/categories/x"] {
        problem(&app, TestRequest::get().uri(bad), 422, "validation_failed").await;
    }
}

#[actix_web::test]
async fn tree_parameters_are_checked_and_named() {
    let app = Mocks::new().app().await;
    for (uri, field) in [
        ("/api/v1/categories?parent_id=0", "parent_id"),
        ("/api/v1/categories?parent_id=abc", "parent_id"),
        (
            "/api/v1/categories?include_children=yes",
            "include_children",
        ),
        (
            "/api/v1/products?category_id=1&include_descendants=1",
            "include_descendants",
        ),
    ] {
        let body = problem(&app, TestRequest::get().uri(uri), 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], field, "{uri}");
    }
}

#[actix_web::test]
async fn include_descendants_reaches_the_catalog() {
    let mut mocks = Mocks::new();
    mocks
        .catalog
        .expect_list_products()
        .withf(|filter, _| filter.category_id == Some(CategoryId(1)) && filter.include_descendants)
        .returning(|_, page| {
            Ok(Paginated {
                items: vec![product(1, 100)],
                total: 1,
                page,
            })
        });
    let app = mocks.app().await;
    let (status, _, _) = call(
        &app,
        TestRequest::get().uri("/api/v1/products?category_id=1&include_descendants=true"),
    )
    .await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn a_cancellation_refreshes_the_pages_of_the_products_it_gave_back() {
    let mut mocks = Mocks::new().with_customer();
    mocks
        .lifecycle
        .expect_current_status()
        .returning(|_, _| Ok(Some(domain::OrderStatus::Pending)));
    mocks
        .lifecycle
        .expect_apply_status_change()
        .returning(|change| {
            // order(123) holds products 1 and 2.
            let mut cancelled = order(change.order_id.0);
            cancelled.status = domain::OrderStatus::Cancelled;
            Ok(domain::lifecycle::Applied::Changed(Box::new(cancelled)))
        });
    mocks
        .lifecycle
        .expect_history()
        .returning(|_| Ok(Vec::new()));
    let (catalog, http) = gated_app_state_with(0, mocks);
    let app = worker(&http).await;
    let card = |id: i64| TestRequest::get().uri(&format!("/api/v1/products/{id}"));
    for id in [1, 3] {
        assert_eq!(call(&app, card(id)).await.0, 200);
    }
    let cancel = TestRequest::post()
        .uri("/api/v1/orders/123/cancel")
        .insert_header(("Authorization", auth_header(987_654_321)));
    assert_eq!(call(&app, cancel).await.0, 200);
    for id in [1, 3] {
        assert_eq!(call(&app, card(id)).await.0, 200);
    }
    assert_eq!(catalog.reads_of(3), 1, "product 3's page stayed in memory");
    assert_eq!(
        catalog.reads_of(1),
        2,
        "product 1's stock changed: read again"
    );
}
