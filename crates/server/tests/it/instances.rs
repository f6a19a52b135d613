//! Two server processes on one PostgreSQL database: an admin change through one shows at
//! once through the other (LISTEN/NOTIFY drops the other's cached answers), and an order
//! placed through either is priced as the catalog is now.

use std::time::Duration;

use infra_postgres::test_support::TestDatabase;
use serde_json::{Value, json};

use crate::process::{Database, start_with};
use crate::support::auth;

const API_TOKEN: &str = "two-instances-admin-api-token-0123456789";

#[tokio::test]
async fn a_price_change_through_one_instance_shows_at_once_through_the_other() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    db.store()
        .seed_catalog(&server::demo::catalog("http://127.0.0.1:8000"))
        .await
        .unwrap();
    let telegram = wiremock::MockServer::start().await;
    let database = Database::Url(db.url().to_owned());
    // An hour of caching: only the announcement can make the other instance see the change.
    let env = [
        ("ADMIN_API_TOKEN", API_TOKEN),
        ("CATALOG_CACHE_TTL", "3600"),
        // The test polls one address many times a second.
        ("IP_RATE_LIMIT_PER_MINUTE", "100000"),
    ];
    let (one, other) = (
        start_with(&database, &telegram.uri(), &env),
        start_with(&database, &telegram.uri(), &env),
    );
    let client = reqwest::Client::new();
    let url = |port: u16, path: &str| format!("http://127.0.0.1:{port}/api/v1{path}");
    let card = |port: u16| {
        let request = client.get(url(port, "/products/1"));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            let etag = response.headers()["etag"].to_str().unwrap().to_owned();
            let body: Value = response.json().await.unwrap();
            (body["price"].as_str().unwrap().to_owned(), etag)
        }
    };
    // The other instance has the card and the category page cached.
    let (price_before, etag_before) = card(other.port).await;
    assert_ne!(price_before, "999.00");
    let listing: Value = client
        .get(url(other.port, "/products?category_id=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listing.as_array().unwrap().iter().any(|p| p["id"] == 1));

    let changed = client
        .patch(url(one.port, "/admin/products/1"))
        .header("Authorization", format!("Bearer {API_TOKEN}"))
        .json(&json!({"price": "999.00", "name": "Пицца Дорогая"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        changed.status().as_u16(),
        200,
        "{}",
        changed.text().await.unwrap()
    );

    // The other instance shows it (polled until it does, with a deadline far below the
    // cache's hour: this is the announcement, not the cache expiring).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (price_after, etag_after) = loop {
        let (price, etag) = card(other.port).await;
        if price == "999.00" {
            break (price, etag);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other instance still shows {price}"
        );
        // A poll interval, not a timing assumption: the loop ends on the condition.
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(price_after, "999.00");
    assert_ne!(etag_after, etag_before, "the ETag changes with the answer");
    let listing: Value = client
        .get(url(other.port, "/products?category_id=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let renamed = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == 1)
        .unwrap();
    assert_eq!(renamed["name"], "Пицца Дорогая");

    // An order through either instance is priced as the catalog is now.
    for port in [other.port, one.port] {
        let order: Value = client
            .post(url(port, "/orders"))
            .header("Authorization", auth(555_000 + i64::from(port), "Анна"))
            .json(&json!({
                "items": [{"product_id": 1, "quantity": 2}],
                "delivery_address": "ул. Пушкина, д. 10",
                "phone": "+79001234567"
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(order["total_amount"], "1998.00", "{order}");
    }
    drop((one, other));
    db.cleanup().await;
}
