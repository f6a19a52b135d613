use infra_postgres::test_support::TestDatabase;
use serde_json::{Value, json};
use server::config::{DatabaseTarget, SecretString};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::support::*;

/// The seed's message for `order`, built independently of the adapter's renderer.
fn expected_message(order: &Value, telegram_id: i64, comment: &str) -> String {
    let rubles = |s: &str| {
        let s = s.strip_suffix(".00").unwrap_or(s);
        format!("{s} ₽")
    };
    let mut lines = String::new();
    for item in order["items"].as_array().unwrap() {
        let price: rust_decimal::Decimal = item["price"].as_str().unwrap().parse().unwrap();
        let total = price * rust_decimal::Decimal::from(item["quantity"].as_u64().unwrap());
        lines.push_str(&format!(
            "• {} × {} = {}\n",
            item["product_name"].as_str().unwrap(),
            item["quantity"],
            rubles(&format!("{total:.2}"))
        ));
    }
    let created = OffsetDateTime::parse(order["created_at"].as_str().unwrap(), &Rfc3339)
        .unwrap()
        .to_offset(time::UtcOffset::from_hms(3, 0, 0).unwrap())
        .format(format_description!("[day].[month].[year] [hour]:[minute]"))
        .unwrap();
    format!(
        "🛒 Новый заказ #{id}\n\n👤 Покупатель: ID {telegram_id}\n\n📦 Состав заказа:\n{lines}\n💰 Итого: {total}\n\n📍 Адрес: ул. Пушкина, д. 10\n📞 Телефон: +79001234567\n💬 Комментарий: {comment}\n\n🕐 Создан: {created}",
        id = order["id"],
        total = rubles(order["total_amount"].as_str().unwrap()),
    )
}

/// Catalog → order → my orders → someone else's order is 404 → the manager's message.
async fn walk_the_shop(database: DatabaseTarget) {
    let mut telegram = FakeTelegram::start().await;
    let app = TestApp::spawn(&settings(database, &telegram.server.uri())).await;

    // The seed's shapes: lists are JSON arrays, the count and the pages in headers.
    let categories = app.get("/categories", None).await;
    assert_eq!(header(&categories, "x-total-count"), Some("4".to_owned()));
    let categories: Value = categories.json().await.unwrap();
    assert_eq!(categories.as_array().map(Vec::len), Some(4), "{categories}");
    let pizza = categories[0]["id"].as_i64().unwrap();

    // The tree, one level at a time: pizza's subcategories, and one category by id.
    let spicy: Value = app
        .get(&format!("/categories?parent_id={pizza}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(spicy[0]["name"], "Острая", "{spicy}");
    assert_eq!(spicy[0]["parent_id"], pizza);
    let spicy_id = spicy[0]["id"].as_i64().unwrap();
    let with_children: Value = app
        .get("/categories?include_children=true", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(with_children[0]["children"][0]["id"], spicy_id);
    let one: Value = app
        .get(&format!("/categories/{spicy_id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["slug"], "pizza-spicy");

    // Without limit, a whole category at once, as a seed client expects.
    let whole: Value = app
        .get(&format!("/products?category_id={pizza}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(whole.as_array().map(Vec::len), Some(4), "{whole}");
    assert!(
        whole
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["images"].as_array().is_some_and(|i| i.len() == 2)
                && p["image_url"] == p["images"][0]),
        "the demo catalog has pictures: {whole}"
    );
    let subtree: Value = app
        .get(
            &format!("/products?category_id={pizza}&include_descendants=true"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(subtree.as_array().map(Vec::len), Some(6), "{subtree}");

    let products = app
        .get(&format!("/products?category_id={pizza}&limit=2"), None)
        .await;
    assert_eq!(header(&products, "x-total-count"), Some("4".to_owned()));
    assert_eq!(
        header(&products, "link"),
        Some(format!(
            "</api/v1/products?category_id={pizza}&limit=2&offset=2>; rel=\"next\""
        ))
    );
    let products: Value = products.json().await.unwrap();
    assert_eq!(products.as_array().map(Vec::len), Some(2), "{products}");
    let first = &products[0];
    let second = &products[1];
    let card: Value = app
        .get(&format!("/products/{}", first["id"]), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(card["name"], first["name"]);

    // A NUL (which PostgreSQL refuses in text) or another control character in any text
    // the client sends is a 422 naming the field, never a 500.
    let search = app.get("/products?q=%00", None).await;
    assert_eq!(search.status().as_u16(), 422);
    let problem: Value = search.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "q", "{problem}");

    let buyer = auth(987_654_321, "Иван");
    for (field, address, comment) in [
        ("delivery_address", "ул. Пушкина\u{0}, д. 10", "ок"),
        ("comment", "ул. Пушкина, д. 10", "Домофон\u{0}"),
    ] {
        let response = app
            .client
            .post(app.url("/orders"))
            .header("Authorization", &buyer)
            .json(&json!({
                "items": [{"product_id": first["id"], "quantity": 1}],
                "delivery_address": address,
                "phone": "+79001234567",
                "comment": comment
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 422, "{field}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        assert_eq!(
            problem["errors"][0]["code"], "control_character",
            "{problem}"
        );
    }

    let response = app
        .client
        .post(app.url("/orders"))
        .header("Authorization", &buyer)
        .json(&json!({
            "items": [
                {"product_id": first["id"], "quantity": 2},
                {"product_id": second["id"], "quantity": 1},
                {"product_id": first["id"], "quantity": 1}
            ],
            "delivery_address": "ул. Пушкина, д. 10",
            "phone": "+79001234567",
            "comment": "Домофон не работает"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/orders/{}", order["id"]));
    assert_eq!(order["status"], "PENDING");

    // The total comes from database prices: 3 × first + 1 × second.
    let price = |p: &Value| {
        p["price"]
            .as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap()
    };
    let expected_total = price(first) * rust_decimal::Decimal::from(3) + price(second);
    assert_eq!(order["total_amount"], format!("{expected_total:.2}"));
    assert_eq!(
        order["items"][0]["quantity"], 3,
        "repeated lines are merged"
    );

    let me: Value = app
        .get("/users/me", Some(&buyer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["telegram_id"].as_i64(), me["first_name"].as_str()),
        (Some(987_654_321), Some("Иван"))
    );

    let mine: Value = app
        .get("/orders/my", Some(&buyer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");
    assert_eq!(mine[0]["id"], order["id"]);
    let same: Value = app
        .get(&format!("/orders/{}", order["id"]), Some(&buyer))
        .await
        .json()
        .await
        .unwrap();
    let mut same = same;
    let history = same
        .as_object_mut()
        .and_then(|o| o.remove("history"))
        .unwrap();
    assert_eq!(same, order);
    assert_eq!(history[0]["status"], "PENDING", "{history}");
    assert_eq!(history[0]["by"], "customer");

    let stranger = auth(111_111_111, "Пётр");
    let response = app
        .get(&format!("/orders/{}", order["id"]), Some(&stranger))
        .await;
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    // The customer cancels while it is PENDING; once only. A stranger cannot.
    let cancel = |who: String| {
        app.client
            .post(app.url(&format!("/orders/{}/cancel", order["id"])))
            .header("Authorization", who)
            .send()
    };
    let refused = cancel(stranger.clone()).await.unwrap();
    assert_eq!(refused.status().as_u16(), 404);
    let cancelled = cancel(buyer.clone()).await.unwrap();
    assert_eq!(cancelled.status().as_u16(), 200);
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(cancelled["history"][1]["status"], "CANCELLED");
    assert_eq!(cancelled["history"][1]["by"], "customer");
    let again = cancel(buyer.clone()).await.unwrap();
    assert_eq!(again.status().as_u16(), 409);

    // Operations on the real stack: liveness, readiness against the real database, metrics
    // that saw the order, and the API description.
    let get = |path: &str| app.client.get(format!("{}{path}", app.base)).send();
    assert_eq!(get("/health").await.unwrap().status().as_u16(), 200);
    assert_eq!(get("/ready").await.unwrap().status().as_u16(), 200);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("botshop_orders_created_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("botshop_db_pool_connections{state=\"idle\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("route=\"/api/v1/orders/{id}\""),
        "{metrics}"
    );
    // The outbox gauges come from the background refresher the server started, which
    // counts at once at start-up: wait for its first read to show, a condition polled, not
    // a duration slept.
    let mut metrics = metrics;
    for _ in 0..100 {
        if metrics.contains("botshop_outbox_events{state=\"dead\"} 0") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        metrics = get("/metrics").await.unwrap().text().await.unwrap();
    }
    assert!(
        metrics.contains("botshop_outbox_events{state=\"dead\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("botshop_outbox_gauges_age_seconds"),
        "{metrics}"
    );
    let spec: Value = get("/api-docs/openapi.json")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));

    let message = telegram.next_message().await;
    assert_eq!(message["chat_id"], MANAGER_CHAT);
    assert_eq!(message["parse_mode"], "HTML");
    assert_eq!(
        message["text"].as_str().unwrap(),
        expected_message(&order, 987_654_321, "Домофон не работает")
    );

    // The cancellation told the customer in their chat, refreshed the manager's message
    // to show it, and told the manager with a message of its own (in any order).
    let mut calls = vec![
        telegram.next_call().await,
        telegram.next_call().await,
        telegram.next_call().await,
    ];
    calls.sort_by_key(|(method, body)| (method.clone(), body["chat_id"].as_i64()));
    let (edit, notice, told) = (&calls[0], &calls[1], &calls[2]);
    assert_eq!(edit.0, "editMessageText", "{calls:?}");
    assert_eq!(edit.1["chat_id"], MANAGER_CHAT);
    assert_eq!(notice.0, "sendMessage", "{calls:?}");
    assert_eq!(notice.1["chat_id"], MANAGER_CHAT);
    assert_eq!(
        notice.1["text"].as_str().unwrap(),
        format!(
            "❌ Клиент отменил заказ #{}\n💰 Сумма: {} ₽",
            order["id"],
            // Whole roubles are written without kopecks, as in every message.
            order["total_amount"]
                .as_str()
                .unwrap()
                .trim_end_matches(".00")
        )
    );
    assert_eq!(told.0, "sendMessage", "{calls:?}");
    assert_eq!(told.1["chat_id"], 987_654_321);
    let text = told.1["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("#{}", order["id"])) && text.contains("отменён"),
        "{text}"
    );
}

#[tokio::test]
async fn a_customer_walks_the_shop_on_postgres() {
    // The demo catalog loaded as `server seed` does.
    let Some((database, target)) = crate::support::seeded_postgres().await else {
        return;
    };
    walk_the_shop(target).await;
    database.cleanup().await;
}

#[tokio::test]
async fn the_embedded_default_serves_the_demo_catalog_by_itself() {
    let dir = std::env::temp_dir().join(format!(
        "botshop-e2e-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("botshop.db");
    walk_the_shop(DatabaseTarget::EmbeddedSqlite(
        path.to_string_lossy().into_owned(),
    ))
    .await;
    let _ = std::fs::remove_dir_all(dir);
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test]
async fn a_slow_database_gives_a_503_problem_not_a_hanging_request() {
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    database
        .store()
        .seed_catalog(&server::demo::catalog("http://127.0.0.1:8000"))
        .await
        .unwrap();
    let telegram = FakeTelegram::start().await;
    let mut settings = settings(
        DatabaseTarget::Url(SecretString::from(database.url())),
        &telegram.server.uri(),
    );
    settings.database.database_statement_timeout_ms = 300;
    let app = TestApp::spawn(&settings).await;

    // Product 1 is locked, so placing an order for it waits on the database.
    let lock = database
        .hold("SELECT id FROM products WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let response = app
        .client
        .post(app.url("/orders"))
        .header("Authorization", auth(42, "Анна"))
        .json(&json!({
            "items": [{"product_id": 1, "quantity": 1}],
            "delivery_address": "ул. Ленина, д. 1",
            "phone": "+79001234567"
        }))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "service_unavailable");
    assert!(
        waited < std::time::Duration::from_secs(5),
        "the statement timeout, not the client, ended the wait ({waited:?})"
    );
    lock.release().await.unwrap();
    assert_eq!(
        database
            .query_i64("SELECT COUNT(*) FROM orders")
            .await
            .unwrap(),
        0,
        "nothing was written"
    );
    database.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_requests_with_one_idempotency_key_place_one_order() {
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    database
        .store()
        .seed_catalog(&server::demo::catalog("http://127.0.0.1:8000"))
        .await
        .unwrap();
    let telegram = FakeTelegram::start().await;
    let mut settings = settings(
        DatabaseTarget::Url(SecretString::from(database.url())),
        &telegram.server.uri(),
    );
    // This test is about idempotency, not about the per-customer rate limit.
    settings.http.order_rate_limit_per_minute = 1_000;
    settings.http.order_rate_limit_burst = 1_000;
    let app = std::sync::Arc::new(TestApp::spawn(&settings).await);
    let buyer = auth(555, "Ольга");
    let body = json!({
        "items": [{"product_id": 2, "quantity": 1}],
        "delivery_address": "пр. Мира, д. 5",
        "phone": "+79001234567"
    });

    let requests: Vec<_> = (0..20)
        .map(|_| {
            let (app, buyer, body) = (app.clone(), buyer.clone(), body.clone());
            tokio::spawn(async move {
                let response = app
                    .client
                    .post(app.url("/orders"))
                    .header("Authorization", buyer)
                    .header("Idempotency-Key", "7b0f6a2e-checkout")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap();
                (status, body)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for request in requests {
        let (status, body) = request.await.unwrap();
        match status {
            201 => ids.push(body["id"].as_i64().unwrap()),
            409 => assert_eq!(body["code"], "idempotency_key_in_use", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(
        database
            .query_i64("SELECT COUNT(*) FROM orders")
            .await
            .unwrap(),
        1,
        "exactly one order exists"
    );
    let order_id = database.query_i64("SELECT id FROM orders").await.unwrap();
    assert!(!ids.is_empty());
    assert!(
        ids.iter().all(|id| *id == order_id),
        "every 2xx carries the one order's id: {ids:?}"
    );

    // Once it is done, a retry is a replay, not a new order.
    let replay = app
        .client
        .post(app.url("/orders"))
        .header("Authorization", &buyer)
        .header("Idempotency-Key", "7b0f6a2e-checkout")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status().as_u16(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replayed: Value = replay.json().await.unwrap();
    assert_eq!(replayed["id"].as_i64(), Some(order_id));
    database.cleanup().await;
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
