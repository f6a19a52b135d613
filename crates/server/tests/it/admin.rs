//! The admin API on the real stack: a program with ADMIN_API_TOKEN moves an order, the
//! customer hears, the history and the audit log say who; a customer who is not an admin
//! gets 403 and no data.

use serde_json::{Value, json};
use server::config::DatabaseTarget;

use crate::support::*;

const API_TOKEN: &str = "e2e-admin-api-token-0123456789abcdefgh";
const CUSTOMER: i64 = 987_654_321;

async fn run(database: DatabaseTarget) {
    let mut telegram = FakeTelegram::start().await;
    let mut settings = settings(database, &telegram.server.uri());
    settings.auth.admin_api_token = Some(domain::admin::ApiToken::new(API_TOKEN).unwrap());
    let app = TestApp::spawn(&settings).await;
    let buyer = auth(CUSTOMER, "Иван");
    let order: Value = app
        .client
        .post(app.url("/orders"))
        .header("Authorization", &buyer)
        .json(&json!({
            "items": [{"product_id": 1, "quantity": 1}],
            "delivery_address": "ул. Пушкина, д. 10",
            "phone": "+79001234567"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = order["id"].as_i64().unwrap();
    let admin = |request: reqwest::RequestBuilder| {
        request.header("Authorization", format!("Bearer {API_TOKEN}"))
    };

    // A customer is not an admin.
    let refused = app
        .client
        .get(app.url("/admin/orders"))
        .header("Authorization", &buyer)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "forbidden");

    let listed: Value = admin(app.client.get(app.url("/admin/orders?status=PENDING")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["id"], id);

    let moved = admin(
        app.client
            .post(app.url(&format!("/admin/orders/{id}/status"))),
    )
    .json(&json!({"status": "CONFIRMED", "note": "оплата при получении"}))
    .send()
    .await
    .unwrap();
    assert_eq!(moved.status().as_u16(), 200);
    let moved: Value = moved.json().await.unwrap();
    assert_eq!(moved["status"], "CONFIRMED");
    assert_eq!(moved["customer"]["telegram_id"], CUSTOMER);
    assert_eq!(moved["status_history"][1]["by"], "system");
    assert_eq!(moved["status_history"][1]["note"], "оплата при получении");

    // The customer hears, as with the manager's buttons.
    let told = loop {
        let (method, body) = telegram.next_call().await;
        if method == "sendMessage" && body["chat_id"] == CUSTOMER {
            break body;
        }
    };
    assert!(told["text"].as_str().unwrap().contains("подтверждён"));

    // An order never goes back to PENDING: 409 naming its status.
    let conflict = admin(
        app.client
            .post(app.url(&format!("/admin/orders/{id}/status"))),
    )
    .json(&json!({"status": "PENDING"}))
    .send()
    .await
    .unwrap();
    assert_eq!(conflict.status().as_u16(), 409);
    let conflict: Value = conflict.json().await.unwrap();
    assert_eq!(conflict["code"], "invalid_transition");
    assert_eq!(conflict["current_status"], "CONFIRMED");

    // The catalog: a new category shows in the public catalog at once, a stock change on
    // the product's card.
    let created = admin(app.client.post(app.url("/admin/categories")))
        .json(&json!({"name": "Сезонное", "slug": "seasonal", "sort_order": 99}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let created: Value = created.json().await.unwrap();
    let public: Value = app
        .get(&format!("/categories/{}", created["id"]), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(public["slug"], "seasonal");
    // A new product in it, on sale at once.
    let product = admin(app.client.post(app.url("/admin/products")))
        .json(
            &json!({"category_id": created["id"], "name": "Глинтвейн", "price": "350",
                      "sku": "WINE-1", "stock": 10}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(product.status().as_u16(), 201);
    let product: Value = product.json().await.unwrap();
    let listed: Value = app
        .get(&format!("/products?category_id={}", created["id"]), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["name"], "Глинтвейн");
    assert_eq!(listed[0]["id"], product["id"]);

    // Read first, so that the card is in the catalog cache: the change must drop it.
    let before: Value = app.get("/products/1", None).await.json().await.unwrap();
    assert_ne!(before["stock"], 12);
    let stocked = admin(app.client.put(app.url("/admin/products/1/stock")))
        .json(&json!({"stock": 12}))
        .send()
        .await
        .unwrap();
    assert_eq!(stocked.status().as_u16(), 200);
    let after: Value = app.get("/products/1", None).await.json().await.unwrap();
    assert_eq!(after["stock"], 12);

    let audit: Value = admin(
        app.client
            .get(app.url(&format!("/admin/audit?entity=order&entity_id={id}"))),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit[0]["actor"], "api-token");
    assert_eq!(audit[0]["before"], json!({"status": "PENDING"}));
    assert_eq!(
        audit[0]["after"],
        json!({"status": "CONFIRMED", "note": "оплата при получении"})
    );
}

#[tokio::test]
async fn a_program_runs_an_order_through_the_admin_api_on_sqlite() {
    run(fresh_sqlite("admin")).await;
}

#[tokio::test]
async fn a_program_runs_an_order_through_the_admin_api_on_postgres() {
    let Some((database, target)) = seeded_postgres().await else {
        return;
    };
    run(target).await;
    database.cleanup().await;
}
