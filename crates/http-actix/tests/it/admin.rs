//! The admin API's HTTP side: who gets in, what each route reads and answers, and the
//! problems it names.

use actix_web::test::TestRequest;
use domain::admin::{Admin, AuditEntry, OrderDetails};
use domain::lifecycle::{Applied, ChangedBy, StatusHistoryEntry};
use domain::{OrderStatus, Paginated, TelegramId};
use serde_json::json;

use crate::support::*;

fn bearer() -> (&'static str, String) {
    ("Authorization", format!("Bearer {API_TOKEN}"))
}

fn details(status: OrderStatus) -> OrderDetails {
    let mut order = order(5);
    order.status = status;
    OrderDetails {
        order,
        customer: customer(),
        history: vec![StatusHistoryEntry {
            from: None,
            status: OrderStatus::Pending,
            by: ChangedBy::Customer,
            at: at(),
            note: None,
        }],
    }
}

#[actix_web::test]
async fn only_admins_get_in() {
    let mut mocks = Mocks::new().with_customer();
    mocks.order_admin.expect_list_orders().returning(|_, page| {
        Ok(Paginated {
            items: vec![order(5)],
            total: 1,
            page,
        })
    });
    let app = mocks.app().await;
    let list = || TestRequest::get().uri("/api/v1/admin/orders");
    problem(&app, list(), 401, "missing_authorization").await;
    problem(
        &app,
        list().insert_header(("Authorization", "Bearer not-the-token")),
        401,
        "invalid_api_token",
    )
    .await;
    // A valid customer who is not an admin: refused, and nothing is read.
    let body = problem(
        &app,
        list().insert_header(("Authorization", auth_header(987_654_321))),
        403,
        "forbidden",
    )
    .await;
    assert!(body.get("items").is_none());
    let forged = auth_header(ADMIN).replace("777", "778");
    problem(
        &app,
        list().insert_header(("Authorization", forged)),
        401,
        "hash_mismatch",
    )
    .await;
    // The admin, in person or by token.
    for header in [("Authorization", auth_header(ADMIN)), bearer()] {
        let (status, _, body) = call(&app, list().insert_header(header)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body[0]["id"], 5);
    }
}

#[actix_web::test]
async fn the_order_list_reads_its_filters_and_pages() {
    let mut mocks = Mocks::new();
    mocks
        .order_admin
        .expect_list_orders()
        .withf(|filter, page| {
            filter.status == Some(OrderStatus::Confirmed)
                && filter.customer == Some(TelegramId::parse(42).unwrap())
                && filter
                    .created_from
                    .is_some_and(|from| from.unix_timestamp() == 1_766_361_600)
                && filter.created_to.is_none()
                && page.limit() == 2
                && page.offset() == 2
        })
        .times(1)
        .returning(|_, page| {
            Ok(Paginated {
                items: vec![order(9), order(8)],
                total: 7,
                page,
            })
        });
    let app = mocks.app().await;
    let raw = call_raw(
        &app,
        TestRequest::get()
            .uri("/api/v1/admin/orders?status=CONFIRMED&customer_telegram_id=42&created_from=2025-12-22T00:00:00Z&limit=2&offset=2")
            .insert_header(bearer()),
    )
    .await;
    assert_eq!(raw.status, 200, "{}", raw.body);
    assert_eq!(raw.header("x-total-count"), Some("7"));
    assert!(raw.header("link").unwrap().contains("offset=4"));
    assert_eq!(raw.json()[1]["id"], 8);

    let app = Mocks::new().app().await;
    for (query, field) in [
        ("status=LOST", "status"),
        ("status=%20PENDING", "status"),
        ("created_from=2025-12-22T00:00:00Z%0B", "created_from"),
        ("created_from=yesterday", "created_from"),
        ("created_to=2025-13-01T00:00:00Z", "created_to"),
        ("customer_telegram_id=-4", "customer_telegram_id"),
        // Valid RFC 3339, but past the end of what UTC can express.
        ("created_to=9999-12-31T23:59:59-01:00", "created_to"),
        ("limit=0", "limit"),
    ] {
        let body = problem(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/admin/orders?{query}"))
                .insert_header(bearer()),
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
}

#[actix_web::test]
async fn one_order_comes_with_its_customer_and_history() {
    let mut mocks = Mocks::new();
    mocks
        .order_admin
        .expect_order_details()
        .returning(|id| Ok((id.0 == 5).then(|| details(OrderStatus::Pending))));
    let app = mocks.app().await;
    let (status, _, body) = call(
        &app,
        TestRequest::get()
            .uri("/api/v1/admin/orders/5")
            .insert_header(bearer()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 5);
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        body["customer"]["telegram_id"],
        customer().telegram_id.get()
    );
    assert_eq!(body["status_history"][0]["status"], "PENDING");
    assert_eq!(body["status_history"][0]["from"], serde_json::Value::Null);
    problem(
        &app,
        TestRequest::get()
            .uri("/api/v1/admin/orders/6")
            .insert_header(bearer()),
        404,
        "not_found",
    )
    .await;
}

#[actix_web::test]
async fn a_status_change_goes_through_the_lifecycle_with_its_note_and_admin() {
    let mut mocks = Mocks::new();
    mocks
        .lifecycle
        .expect_current_status()
        .returning(|_, _| Ok(Some(OrderStatus::Confirmed)));
    mocks
        .lifecycle
        .expect_apply_status_change()
        .withf(|change| {
            change.from == OrderStatus::Confirmed
                && change.to == OrderStatus::Shipped
                && change.note.as_deref() == Some("СДЭК 1234567890")
                && change.admin == Some(Admin::ApiToken)
                && change.by == ChangedBy::System
        })
        .times(1)
        .returning(|change| {
            let mut shipped = order(change.order_id.0);
            shipped.status = OrderStatus::Shipped;
            Ok(Applied::Changed(Box::new(shipped)))
        });
    mocks
        .order_admin
        .expect_order_details()
        .returning(|_| Ok(Some(details(OrderStatus::Shipped))));
    let app = mocks.app().await;
    let (status, _, body) = call(
        &app,
        TestRequest::post()
            .uri("/api/v1/admin/orders/5/status")
            .insert_header(bearer())
            .set_json(json!({"status": "SHIPPED", "note": "  СДЭК 1234567890 "})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "SHIPPED");
}

#[actix_web::test]
async fn a_disallowed_change_is_a_409_naming_the_current_status() {
    let mut mocks = Mocks::new();
    mocks
        .lifecycle
        .expect_current_status()
        .returning(|_, id| Ok((id.0 == 5).then_some(OrderStatus::Delivered)));
    mocks.lifecycle.expect_apply_status_change().never();
    let app = mocks.app().await;
    let change = |id: i64, body: serde_json::Value| {
        TestRequest::post()
            .uri(&format!("/api/v1/admin/orders/{id}/status"))
            .insert_header(("Authorization", auth_header(ADMIN)))
            .set_json(body)
    };
    let body = problem(
        &app,
        change(5, json!({"status": "CANCELLED"})),
        409,
        "invalid_transition",
    )
    .await;
    assert_eq!(body["current_status"], "DELIVERED");
    assert!(body["detail"].as_str().unwrap().contains("DELIVERED"));
    problem(
        &app,
        change(6, json!({"status": "CANCELLED"})),
        404,
        "not_found",
    )
    .await;
    for (body, field) in [
        (json!({"status": "GONE"}), "status"),
        (json!({}), "status"),
        (
            json!({"status": "CANCELLED", "note": "x".repeat(501)}),
            "note",
        ),
        (json!({"status": "CANCELLED", "note": "a\u{0}b"}), "note"),
        (json!({"status": "CANCELLED", "extra": 1}), "extra"),
    ] {
        let problem = problem(&app, change(5, body.clone()), 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
}

#[actix_web::test]
async fn the_audit_log_is_listed_with_its_filters() {
    let mut mocks = Mocks::new();
    mocks
        .audit
        .expect_list_audit()
        .withf(|filter, _| {
            filter.actor.as_deref() == Some("api-token")
                && filter.entity.as_deref() == Some("order")
                && filter.entity_id.as_deref() == Some("5")
        })
        .returning(|_, page| {
            Ok(Paginated {
                items: vec![AuditEntry {
                    id: 1,
                    at: at(),
                    actor: "api-token".into(),
                    action: "order.status".into(),
                    entity: "order".into(),
                    entity_id: "5".into(),
                    before: json!({"status": "PENDING"}),
                    after: json!({"status": "CONFIRMED"}),
                }],
                total: 1,
                page,
            })
        });
    let app = mocks.app().await;
    let (status, _, body) = call(
        &app,
        TestRequest::get()
            .uri("/api/v1/admin/audit?actor=api-token&entity=order&entity_id=5")
            .insert_header(bearer()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["after"]["status"], "CONFIRMED");
    assert_eq!(body[0]["actor"], "api-token");
}

#[actix_web::test]
async fn each_admin_has_a_rate_limit_of_their_own() {
    let mut mocks = Mocks::new().with_config(|config| config.ip_rate_limit_per_minute = 0);
    mocks.order_admin.expect_list_orders().returning(|_, page| {
        Ok(Paginated {
            items: vec![],
            total: 0,
            page,
        })
    });
    let app = mocks.app().await;
    // The limiters read tokio's clock: stopped, the allowance cannot refill mid-test.
    tokio::time::pause();
    let list = |header: (&'static str, String)| {
        TestRequest::get()
            .uri("/api/v1/admin/orders")
            .insert_header(header)
    };
    for _ in 0..http_actix::ADMIN_RATE_LIMIT_PER_MINUTE {
        let (status, _, body) = call(&app, list(bearer())).await;
        assert_eq!(status, 200, "{body}");
    }
    problem(&app, list(bearer()), 429, "rate_limited").await;
    // The person is another admin, with an allowance of their own.
    let (status, _, _) = call(&app, list(("Authorization", auth_header(ADMIN)))).await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn categories_are_created_changed_and_deleted_with_named_problems() {
    use domain::catalog_admin::CatalogChangeError;
    use domain::{Category, CategoryId};
    let mut mocks = Mocks::new();
    mocks
        .catalog_admin
        .expect_create_category()
        .returning(|new, context| {
            assert_eq!(context.admin, domain::admin::Admin::ApiToken);
            match new.slug.as_str() {
                "taken" => Err(CatalogChangeError::SlugTaken),
                "deep" => Err(CatalogChangeError::InvalidParent("at most 3 levels".into())),
                "orphan" => Err(CatalogChangeError::ParentNotFound),
                _ => Ok(Category {
                    id: CategoryId(9),
                    name: new.name.clone(),
                    slug: new.slug.clone(),
                    sort_order: new.sort_order,
                    parent_id: new.parent_id,
                    is_active: new.is_active,
                }),
            }
        });
    mocks
        .catalog_admin
        .expect_update_category()
        .withf(|id, patch, _| id.0 == 9 && patch.parent_id == Some(None) && patch.name.is_none())
        .returning(|id, _, _| {
            Ok(Category {
                id,
                name: "Острая".into(),
                slug: "spicy".into(),
                sort_order: 0,
                parent_id: None,
                is_active: true,
            })
        });
    mocks
        .catalog_admin
        .expect_delete_category()
        .returning(|id, _| match id.0 {
            9 => Ok(()),
            10 => Err(CatalogChangeError::CategoryNotEmpty {
                products: 4,
                children: 0,
            }),
            _ => Err(CatalogChangeError::NotFound),
        });
    let app = mocks.app().await;
    let create = |body: serde_json::Value| {
        TestRequest::post()
            .uri("/api/v1/admin/categories")
            .insert_header(bearer())
            .set_json(body)
    };
    let raw = call_raw(
        &app,
        create(json!({"name": "Острая", "slug": "spicy", "parent_id": 1})),
    )
    .await;
    assert_eq!(raw.status, 201, "{}", raw.body);
    assert_eq!(raw.header("location"), Some("/api/v1/categories/9"));
    assert_eq!(raw.json()["parent_id"], 1);
    for (body, field, code) in [
        (json!({"name": "x", "slug": "taken"}), "slug", "slug_taken"),
        (
            json!({"name": "x", "slug": "deep", "parent_id": 3}),
            "parent_id",
            "invalid_parent",
        ),
        (
            json!({"name": "x", "slug": "orphan", "parent_id": 3}),
            "parent_id",
            "not_found",
        ),
        (
            json!({"name": "x", "slug": "Not A Slug"}),
            "slug",
            "invalid_slug",
        ),
        (json!({"slug": "no-name"}), "name", "required"),
        (
            json!({"name": "x", "slug": "y", "sort_order": "first"}),
            "sort_order",
            "invalid_type",
        ),
    ] {
        let problem = problem(&app, create(body.clone()), 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["code"], code, "{body}: {problem}");
    }

    let (status, _, body) = call(
        &app,
        TestRequest::patch()
            .uri("/api/v1/admin/categories/9")
            .insert_header(bearer())
            .set_json(json!({"parent_id": null})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["parent_id"], serde_json::Value::Null);
    let own_parent = problem(
        &app,
        TestRequest::patch()
            .uri("/api/v1/admin/categories/9")
            .insert_header(bearer())
            .set_json(json!({"parent_id": 9})),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(own_parent["errors"][0]["field"], "parent_id");

    let delete = |id: i64| {
        TestRequest::delete()
            .uri(&format!("/api/v1/admin/categories/{id}"))
            .insert_header(bearer())
    };
    let (status, _, _) = call(&app, delete(9)).await;
    assert_eq!(status, 204);
    let body = problem(&app, delete(10), 409, "category_not_empty").await;
    assert!(
        body["detail"].as_str().unwrap().contains("4 products"),
        "{body}"
    );
    problem(&app, delete(11), 404, "not_found").await;
}

#[actix_web::test]
async fn stock_is_set_and_adjusted_with_its_conflicts() {
    use domain::catalog_admin::{CatalogChangeError, StockChange};
    let mut mocks = Mocks::new();
    mocks
        .catalog_admin
        .expect_change_stock()
        .returning(|product, change, _| match (product.0, change) {
            (1, StockChange::Set(stock)) => Ok(*stock),
            (1, StockChange::Adjust { delta: 2, reason }) if reason == "приёмка" => {
                Ok(Some(7))
            }
            (1, StockChange::Adjust { .. }) => Err(CatalogChangeError::StockConflict(
                "only 5 units are left".into(),
            )),
            _ => Err(CatalogChangeError::NotFound),
        });
    let app = mocks.app().await;
    let set = |id: i64, body: serde_json::Value| {
        TestRequest::put()
            .uri(&format!("/api/v1/admin/products/{id}/stock"))
            .insert_header(bearer())
            .set_json(body)
    };
    let adjust = |body: serde_json::Value| {
        TestRequest::post()
            .uri("/api/v1/admin/products/1/stock/adjustments")
            .insert_header(bearer())
            .set_json(body)
    };
    let (status, _, body) = call(&app, set(1, json!({"stock": 5}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"product_id": 1, "stock": 5}));
    let (_, _, body) = call(&app, set(1, json!({"stock": null}))).await;
    assert_eq!(body["stock"], serde_json::Value::Null);
    problem(&app, set(2, json!({"stock": 1})), 404, "not_found").await;
    for body in [json!({}), json!({"stock": -1}), json!({"stock": 1.5})] {
        let problem = problem(&app, set(1, body.clone()), 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "stock", "{body}: {problem}");
    }
    let (status, _, body) = call(&app, adjust(json!({"delta": 2, "reason": " приёмка "}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stock"], 7);
    let body = problem(
        &app,
        adjust(json!({"delta": -9, "reason": "брак"})),
        409,
        "stock_conflict",
    )
    .await;
    assert_eq!(body["detail"], "only 5 units are left");
    let body = problem(
        &app,
        adjust(json!({"delta": 0, "reason": ""})),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn products_are_listed_created_changed_and_deleted_with_named_problems() {
    use domain::catalog_admin::{AdminProduct, CatalogChangeError};
    let admin_product = |id: i64| AdminProduct {
        product: product(id, 59_000),
        sku: Some("PZ-1".into()),
    };
    let mut mocks = Mocks::new();
    mocks
        .catalog_admin
        .expect_list_products()
        .withf(|filter, _| {
            filter.is_active == Some(false)
                && filter.sku.as_deref() == Some("PZ-1")
                && filter.public.category_id.is_some_and(|id| id.0 == 2)
        })
        .returning(move |_, page| {
            Ok(Paginated {
                items: vec![admin_product(3)],
                total: 1,
                page,
            })
        });
    mocks
        .catalog_admin
        .expect_create_product()
        .returning(move |new, _| match new.sku.as_deref() {
            Some("TAKEN") => Err(CatalogChangeError::SkuTaken),
            _ if new.category_id.0 == 99 => Err(CatalogChangeError::CategoryNotFound),
            _ => Ok(admin_product(7)),
        });
    mocks
        .catalog_admin
        .expect_update_product()
        .withf(|_, patch, _| patch.description == Some(None) && patch.sku == Some(None))
        .returning(move |id, _, _| Ok(admin_product(id.0)));
    mocks
        .catalog_admin
        .expect_delete_product()
        .returning(|id, _| match id.0 {
            7 => Ok(()),
            8 => Err(CatalogChangeError::ProductInOrders { orders: 3 }),
            _ => Err(CatalogChangeError::NotFound),
        });
    let app = mocks.app().await;

    let (status, _, body) = call(
        &app,
        TestRequest::get()
            .uri("/api/v1/admin/products?category_id=2&is_active=false&sku=PZ-1")
            .insert_header(bearer()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["sku"], "PZ-1");
    assert_eq!(body[0]["is_active"], true);
    problem(
        &app,
        TestRequest::get()
            .uri("/api/v1/admin/products?is_active=maybe")
            .insert_header(bearer()),
        422,
        "validation_failed",
    )
    .await;

    let create = |body: serde_json::Value| {
        TestRequest::post()
            .uri("/api/v1/admin/products")
            .insert_header(bearer())
            .set_json(body)
    };
    let raw = call_raw(
        &app,
        create(json!({"category_id": 2, "name": "Маргарита", "price": "590", "stock": 5})),
    )
    .await;
    assert_eq!(raw.status, 201, "{}", raw.body);
    assert_eq!(raw.header("location"), Some("/api/v1/products/7"));
    for (body, field, code) in [
        (
            json!({"category_id": 2, "name": "x", "price": "1", "sku": "TAKEN"}),
            "sku",
            "sku_taken",
        ),
        (
            json!({"category_id": 99, "name": "x", "price": "1"}),
            "category_id",
            "not_found",
        ),
        (
            json!({"category_id": 2, "name": "x", "price": "0"}),
            "price",
            "invalid_price",
        ),
        (
            json!({"category_id": 2, "name": "x", "price": "1.999"}),
            "price",
            "invalid_price",
        ),
        (
            json!({"category_id": 2, "name": "x", "price": "1", "images": ["ftp://x"]}),
            "images",
            "invalid_images",
        ),
        (
            json!({"name": "x", "price": "1"}),
            "category_id",
            "required",
        ),
        (
            json!({"category_id": 2, "name": "x", "price": "1", "sku": "has space"}),
            "sku",
            "invalid_sku",
        ),
    ] {
        let problem = problem(&app, create(body.clone()), 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["code"], code, "{body}: {problem}");
    }

    let patch = |body: serde_json::Value| {
        TestRequest::patch()
            .uri("/api/v1/admin/products/7")
            .insert_header(bearer())
            .set_json(body)
    };
    let (status, _, body) = call(&app, patch(json!({"description": null, "sku": null}))).await;
    assert_eq!(status, 200, "{body}");
    let body = problem(&app, patch(json!({"stock": 3})), 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "stock");

    let delete = |id: i64| {
        TestRequest::delete()
            .uri(&format!("/api/v1/admin/products/{id}"))
            .insert_header(bearer())
    };
    let (status, _, _) = call(&app, delete(7)).await;
    assert_eq!(status, 204);
    let body = problem(&app, delete(8), 409, "product_in_orders").await;
    assert!(
        body["detail"].as_str().unwrap().contains("deactivate"),
        "{body}"
    );
    problem(&app, delete(9), 404, "not_found").await;
}

#[actix_web::test]
async fn the_report_covers_every_day_and_names_a_bad_period() {
    use domain::stats::{DayStats, Sums, TopProduct};
    let mut mocks = Mocks::new();
    mocks
        .stats
        .expect_sums()
        .withf(|period| period.days().len() == 3)
        .returning(|period| {
            Ok(Sums {
                days: vec![DayStats {
                    day: period.from.date(),
                    orders: 2,
                    revenue: money(150_000),
                }],
                by_status: vec![(domain::OrderStatus::Pending, 2)],
                top_products: vec![TopProduct {
                    product_id: domain::ProductId(1),
                    name: "Маргарита".into(),
                    quantity: 3,
                    revenue: money(150_000),
                }],
            })
        });
    let app = mocks.app().await;
    let (status, _, body) = call(
        &app,
        TestRequest::get()
            .uri("/api/v1/admin/stats?from=2025-12-01&to=2025-12-03")
            .insert_header(bearer()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["from"], "2025-12-01");
    assert_eq!(body["to"], "2025-12-03");
    assert_eq!(body["total_orders"], 2);
    assert_eq!(body["total_revenue"], "1500.00");
    assert_eq!(body["days"].as_array().unwrap().len(), 3);
    assert_eq!(body["days"][1]["orders"], 0);
    assert_eq!(body["by_status"].as_array().unwrap().len(), 6);
    assert_eq!(body["top_products"][0]["quantity"], 3);
    for (query, field) in [
        ("from=2025-12-05&to=2025-12-01", "from"),
        ("from=yesterday", "from"),
        ("from=2020-01-01&to=2025-12-01", "from"),
    ] {
        let problem = problem(
            &app,
            TestRequest::get()
                .uri(&format!("/api/v1/admin/stats?{query}"))
                .insert_header(bearer()),
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
}

#[actix_web::test]
async fn the_catalog_is_exported_as_json_or_csv() {
    use domain::catalog_io::{CatalogFile, CategoryRecord};
    let mut mocks = Mocks::new();
    mocks.catalog_admin.expect_export().returning(|| {
        Ok(CatalogFile {
            categories: vec![CategoryRecord {
                slug: "pizza".into(),
                name: "=Пицца".into(),
                parent_slug: None,
                sort_order: 0,
                is_active: true,
            }],
            products: vec![],
        })
    });
    let app = mocks.app().await;
    let export = |query: &str| {
        TestRequest::get()
            .uri(&format!("/api/v1/admin/catalog/export{query}"))
            .insert_header(bearer())
    };
    let raw = call_raw(&app, export("")).await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.json()["categories"][0]["slug"], "pizza");
    assert_eq!(raw.json()["categories"][0]["name"], "=Пицца");
    let raw = call_raw(&app, export("?format=csv")).await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(
        raw.header("content-disposition")
            .unwrap()
            .contains("catalog.csv")
    );
    assert!(raw.body.starts_with("kind,slug,"), "{}", raw.body);
    // The spreadsheet would run it: written with a quote before it.
    assert!(raw.body.contains(",'=Пицца,"), "{}", raw.body);
    let body = problem(&app, export("?format=xml"), 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "format");
}

#[actix_web::test]
async fn an_import_reads_csv_or_json_and_names_every_problem() {
    use domain::catalog_admin::CatalogChangeError;
    use domain::catalog_io::{CSV_COLUMNS, ImportCounts, ImportProblem, ImportReport};
    let mut mocks = Mocks::new();
    mocks
        .catalog_admin
        .expect_import()
        .returning(|file, dry_run, _| {
            if file.categories.iter().any(|(_, c)| c.slug == "orphan") {
                return Err(CatalogChangeError::Import(vec![ImportProblem::new(
                    2,
                    "parent_slug",
                    "parent_slug \"nowhere\" names no category",
                )]));
            }
            Ok(ImportReport {
                dry_run,
                categories: ImportCounts {
                    created: file.categories.len() as u64,
                    ..ImportCounts::default()
                },
                products: ImportCounts::default(),
            })
        });
    let app = mocks.app().await;
    let header = CSV_COLUMNS.join(",");
    let import = |query: &str, content_type: &str, body: String| {
        TestRequest::post()
            .uri(&format!("/api/v1/admin/catalog/import{query}"))
            .insert_header(bearer())
            .insert_header(("Content-Type", content_type.to_owned()))
            .set_payload(body)
    };
    let csv = format!("{header}\r\ncategory,pizza,,,,Пицца,,,,,true,0,\r\n");
    let (status, _, body) = call(&app, import("?dry_run=true", "text/csv", csv.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dry_run"], true);
    assert_eq!(body["categories"]["created"], 1);
    let json = r#"{"categories": [{"slug": "pizza", "name": "Пицца"}]}"#.to_owned();
    let (status, _, body) = call(&app, import("", "application/json", json)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dry_run"], false);

    // Rows the server can read but not accept: every problem, by line.
    let bad = format!(
        "{header}\r\ncategory,Bad Slug,,,,,,,,,true,0,\r\nproduct,,,pizza,,x,,0,,,maybe,0,\r\n"
    );
    let body = problem(&app, import("", "text/csv", bad), 422, "import_refused").await;
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(problems[0]["line"], 3);
    assert_eq!(problems[0]["field"], "is_active");
    let orphan = format!("{header}\r\ncategory,orphan,nowhere,,,Сирота,,,,,true,0,\r\n");
    let body = problem(&app, import("", "text/csv", orphan), 422, "import_refused").await;
    assert_eq!(body["problems"][0]["field"], "parent_slug");
    problem(
        &app,
        import("", "text/plain", csv.clone()),
        415,
        "unsupported_media_type",
    )
    .await;
    problem(
        &app,
        import("?dry_run=perhaps", "text/csv", csv),
        422,
        "validation_failed",
    )
    .await;
}
