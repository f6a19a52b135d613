//! Payments on the real stack against a fake Bot API: Stars and a provider, the invoice
//! link (its exact amount and currency), pre-checkout accepted and refused, a payment once
//! however often Telegram delivers it, a payment after expiry refunded, expiry returning
//! stock, and the Stars refund of a cancelled paid order; on SQLite and PostgreSQL.

use std::time::Duration;

use domain::payments::{Currency, PaymentMode, PaymentTerms};
use infra_postgres::test_support::TestDatabase;
use serde_json::{Value, json};
use server::config::{DatabaseTarget, UpdatesMode};

use crate::support::*;

const SECRET: &str = "e2e_payments-secret";
const API_TOKEN: &str = "payments-admin-token-0123456789abcdef";
const CUSTOMER: i64 = 987_654_321;
const STRANGER: i64 = 555_000_111;

struct Shop {
    app: TestApp,
    telegram: FakeTelegram,
    db: TestDatabase,
    buyer: String,
    next_update: i64,
}

impl Shop {
    async fn open(db: TestDatabase, target: DatabaseTarget, mode: PaymentMode) -> Self {
        let telegram = FakeTelegram::start().await;
        let mut settings = settings(target, &telegram.server.uri());
        settings.http.telegram_webhook_secret =
            Some(serde_json::from_value(json!(SECRET)).unwrap());
        settings.updates = UpdatesMode::Webhook;
        settings.auth.admin_api_token = Some(domain::admin::ApiToken::new(API_TOKEN).unwrap());
        settings.payment_terms = PaymentTerms {
            mode,
            timeout: Duration::from_secs(30 * 60),
        };
        settings.telegram.payment_provider_token =
            Some(secrecy::SecretString::from("284685063:TEST:provider-token"));
        settings.payment_expiry_interval = Duration::from_millis(50);
        let app = TestApp::spawn(&settings).await;
        Self {
            app,
            telegram,
            db,
            buyer: auth(CUSTOMER, "Иван"),
            next_update: 1,
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn order(&self, items: Value) -> (u16, Value) {
        let response = self
            .app
            .client
            .post(self.app.url("/orders"))
            .header("Authorization", &self.buyer)
            .json(&json!({
                "items": items,
                "delivery_address": "ул. Пушкина, д. 10",
                "phone": "+79001234567"
            }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn invoice(&self, id: i64, who: &str) -> (u16, Value) {
        let response = self
            .app
            .client
            .post(self.app.url(&format!("/orders/{id}/invoice")))
            .header("Authorization", who)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn mine(&self, id: i64) -> Value {
        self.app
            .get(&format!("/orders/{id}"), Some(&self.buyer))
            .await
            .json()
            .await
            .unwrap()
    }

    /// Posts `update` (given its body) to the webhook as Telegram would; a fresh
    /// `update_id` unless `update_id` is given.
    async fn deliver(&mut self, body: Value, update_id: Option<i64>) -> u16 {
        let update_id = update_id.unwrap_or_else(|| {
            self.next_update += 1;
            self.next_update
        });
        let mut update = body;
        update["update_id"] = json!(update_id);
        self.app
            .client
            .post(format!("{}/telegram/webhook", self.app.base))
            .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
            .json(&update)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The calls to Telegram until one to `method`, which is returned.
    async fn next(&mut self, method: &str) -> Value {
        loop {
            let (called, body) = self.telegram.next_call().await;
            if called == method {
                return body;
            }
        }
    }

    /// The calls to Telegram until a message to `chat` containing `text`.
    async fn message_to(&mut self, chat: i64, text: &str) -> Value {
        loop {
            let (called, body) = self.telegram.next_call().await;
            if called == "sendMessage"
                && body["chat_id"] == chat
                && body["text"].as_str().unwrap_or_default().contains(text)
            {
                return body;
            }
        }
    }

    async fn calls_of(&self, method: &str) -> Vec<Value> {
        self.telegram
            .server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|request| request.url.path().ends_with(&format!("/{method}")))
            .map(|request| serde_json::from_slice(&request.body).unwrap())
            .collect()
    }
}

fn pre_checkout(from: i64, currency: &str, amount: i64, payload: &str) -> Value {
    json!({"pre_checkout_query": {
        "id": format!("pcq-{from}-{amount}"),
        "from": {"id": from, "first_name": "Иван", "language_code": "en"},
        "currency": currency, "total_amount": amount, "invoice_payload": payload
    }})
}

fn successful_payment(currency: &str, amount: i64, payload: &str, charge: &str) -> Value {
    json!({"message": {
        "message_id": 900, "date": 0,
        "chat": {"id": CUSTOMER, "type": "private"},
        "from": {"id": CUSTOMER, "first_name": "Иван"},
        "successful_payment": {
            "currency": currency, "total_amount": amount, "invoice_payload": payload,
            "telegram_payment_charge_id": charge,
            "provider_payment_charge_id": format!("provider-{charge}")
        }
    }})
}

fn refunded_payment(charge: &str, payload: &str) -> Value {
    json!({"message": {
        "message_id": 901, "date": 0,
        "chat": {"id": CUSTOMER, "type": "private"},
        "from": {"id": CUSTOMER, "first_name": "Иван"},
        "refunded_payment": {
            "currency": "XTR", "total_amount": 240, "invoice_payload": payload,
            "telegram_payment_charge_id": charge
        }
    }})
}

/// Product 1's stock, as the admin API reads it (the public catalog may answer from its
/// cache for a few seconds).
async fn stock(shop: &Shop) -> Option<i64> {
    let (status, product) = shop
        .admin(reqwest::Method::GET, "/admin/products/1", Value::Null)
        .await;
    assert_eq!(status, 200, "{product}");
    product["stock"].as_i64()
}

/// The order's deadline moved into the past, as if the timeout had run out.
async fn past_its_deadline(db: &TestDatabase, id: i64) {
    let past = if db.is_sqlite() {
        "'2000-01-01T00:00:00.000000Z'"
    } else {
        "'2000-01-01T00:00:00Z'"
    };
    db.execute(&format!(
        "UPDATE orders SET payment_due_by = {past} WHERE id = {id}"
    ))
    .await
    .unwrap();
}

async fn stars(db: TestDatabase, target: DatabaseTarget) {
    let mut shop = Shop::open(db, target, PaymentMode::Stars).await;

    // Only products with a Stars price can be ordered: product 2 has none.
    let (status, _) = shop
        .admin(
            reqwest::Method::PATCH,
            "/admin/products/1",
            json!({"price_stars": 120}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = shop
        .admin(
            reqwest::Method::PUT,
            "/admin/products/1/stock",
            json!({"stock": 5}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, refused) = shop
        .order(json!([{"product_id": 1, "quantity": 1}, {"product_id": 2, "quantity": 1}]))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["code"], "no_stars_price");
    assert_eq!(refused["product_ids"], json!([2]));

    let (status, order) = shop.order(json!([{"product_id": 1, "quantity": 2}])).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["payment_status"], "unpaid");
    assert_eq!(order["payment_currency"], "XTR");
    assert_eq!(order["payment_amount"], 240);
    let id = order["id"].as_i64().unwrap();
    let announced = shop.message_to(MANAGER_CHAT, "Новый заказ").await;
    assert!(
        announced["text"]
            .as_str()
            .unwrap()
            .contains("💳 Не оплачен: 240 ⭐"),
        "{announced}"
    );

    // The invoice: exactly 240 stars, no provider token, a payload naming the order.
    let (status, invoice) = shop.invoice(id, &shop.buyer).await;
    assert_eq!(status, 200, "{invoice}");
    assert_eq!(invoice["amount"], 240);
    assert_eq!(invoice["currency"], "XTR");
    assert!(invoice["expires_at"].is_string());
    let created = shop.next("createInvoiceLink").await;
    assert_eq!(created["currency"], "XTR");
    assert_eq!(created["prices"][0]["amount"], 240);
    assert!(created.get("provider_token").is_none(), "{created}");
    let payload = created["payload"].as_str().unwrap().to_owned();
    assert!(payload.starts_with(&format!("o:{id}:")), "{payload}");
    // Asked again: the same link, and Telegram is not asked again. Someone else: 404.
    let (_, again) = shop.invoice(id, &shop.buyer).await;
    assert_eq!(again["invoice_link"], invoice["invoice_link"]);
    assert_eq!(shop.calls_of("createInvoiceLink").await.len(), 1);
    let (status, _) = shop.invoice(id, &auth(STRANGER, "Чужой")).await;
    assert_eq!(status, 404);

    // Pre-checkout: refused for a wrong amount and for someone else; accepted otherwise.
    for (from, amount, why) in [(CUSTOMER, 239, "amount"), (STRANGER, 240, "not found")] {
        assert_eq!(
            shop.deliver(pre_checkout(from, "XTR", amount, &payload), None)
                .await,
            200
        );
        let answer = shop.next("answerPreCheckoutQuery").await;
        assert_eq!(answer["ok"], false, "{why}");
        assert!(
            answer["error_message"].as_str().unwrap().contains(why),
            "{answer}"
        );
    }
    assert_eq!(
        shop.deliver(pre_checkout(CUSTOMER, "XTR", 240, &payload), None)
            .await,
        200
    );
    let answer = shop.next("answerPreCheckoutQuery").await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert!(answer.get("error_message").is_none());

    // The payment: the order is paid and confirmed; the manager and the customer hear.
    let paid = successful_payment("XTR", 240, &payload, "charge-stars-1");
    assert_eq!(shop.deliver(paid.clone(), Some(500)).await, 200);
    shop.message_to(MANAGER_CHAT, "💳 Оплачен заказ").await;
    let mine = shop.mine(id).await;
    assert_eq!(mine["status"], "CONFIRMED");
    assert_eq!(mine["payment_status"], "paid");
    assert!(mine["paid_at"].is_string());
    assert_eq!(mine["history"][1]["by"], "system");
    // Redelivered, with the same update and with another one: nothing more.
    assert_eq!(shop.deliver(paid.clone(), Some(500)).await, 200);
    assert_eq!(shop.deliver(paid, None).await, 200);
    assert_eq!(
        shop.db
            .query_i64("SELECT count(*) FROM payments")
            .await
            .unwrap(),
        1
    );
    let notices = shop
        .db
        .query_i64(&format!(
            "SELECT count(*) FROM outbox_events WHERE order_id = {id} AND kind = 'manager_notice'"
        ))
        .await
        .unwrap();
    assert_eq!(notices, 1);
    // Paid already: no second payment.
    assert_eq!(
        shop.deliver(pre_checkout(CUSTOMER, "XTR", 240, &payload), None)
            .await,
        200
    );
    let answer = shop.next("answerPreCheckoutQuery").await;
    assert_eq!(answer["ok"], false);
    assert!(
        answer["error_message"]
            .as_str()
            .unwrap()
            .contains("already paid")
    );
    let (status, problem) = shop.invoice(id, &shop.buyer).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("order_already_paid"))
    );

    // The manager cancels the paid order: the stars go back, and Telegram's
    // refunded_payment marks the order refunded.
    let (status, _) = shop
        .admin(
            reqwest::Method::POST,
            &format!("/admin/orders/{id}/status"),
            json!({"status": "CANCELLED", "note": "нет в наличии"}),
        )
        .await;
    assert_eq!(status, 200);
    let refund = shop.next("refundStarPayment").await;
    assert_eq!(refund["user_id"], CUSTOMER);
    assert_eq!(refund["telegram_payment_charge_id"], "charge-stars-1");
    assert_eq!(
        shop.deliver(refunded_payment("charge-stars-1", &payload), None)
            .await,
        200
    );
    assert_eq!(shop.mine(id).await["payment_status"], "refunded");

    // An unpaid order past its deadline is cancelled by the system, its stock returned
    // and the customer told; a payment that arrives after that is refunded.
    let (_, late) = shop.order(json!([{"product_id": 1, "quantity": 3}])).await;
    let late_id = late["id"].as_i64().unwrap();
    assert_eq!(stock(&shop).await, Some(2));
    shop.invoice(late_id, &shop.buyer).await;
    let late_payload = shop.next("createInvoiceLink").await["payload"]
        .as_str()
        .unwrap()
        .to_owned();
    past_its_deadline(&shop.db, late_id).await;
    // The pre-checkout of an expired order is refused even before the system cancels it.
    shop.deliver(pre_checkout(CUSTOMER, "XTR", 360, &late_payload), None)
        .await;
    let answer = shop.next("answerPreCheckoutQuery").await;
    assert_eq!(answer["ok"], false);
    shop.message_to(CUSTOMER, &format!("Заказ #{late_id} отменён"))
        .await;
    let expired = shop.mine(late_id).await;
    assert_eq!(expired["status"], "CANCELLED");
    assert_eq!(expired["history"][1]["by"], "system");
    assert_eq!(stock(&shop).await, Some(5));
    assert_eq!(
        shop.deliver(
            successful_payment("XTR", 360, &late_payload, "charge-late"),
            None
        )
        .await,
        200
    );
    let refund = shop.next("refundStarPayment").await;
    assert_eq!(refund["telegram_payment_charge_id"], "charge-late");
    shop.message_to(CUSTOMER, "Звёзды вернутся на ваш счёт")
        .await;
    assert_eq!(shop.mine(late_id).await["status"], "CANCELLED");

    // A refund Telegram refuses goes dead at once, and tells the manager to see to it.
    shop.telegram.answer_method(
        "refundStarPayment",
        telegram_error(400, "Bad Request: BALANCE_TOO_LOW", None),
    );
    assert_eq!(
        shop.deliver(
            successful_payment("XTR", 360, &late_payload, "charge-late-again"),
            None
        )
        .await,
        200
    );
    let refused = shop.next("refundStarPayment").await;
    assert_eq!(refused["telegram_payment_charge_id"], "charge-late-again");
    shop.message_to(
        MANAGER_CHAT,
        &format!("Не удалось вернуть звёзды за заказ #{late_id}"),
    )
    .await;
    shop.db.cleanup().await;
}

async fn provider(db: TestDatabase, target: DatabaseTarget) {
    let mut shop = Shop::open(
        db,
        target,
        PaymentMode::Provider(Currency::provider("RUB").unwrap()),
    )
    .await;
    let (status, order) = shop
        .order(json!([{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1}]))
        .await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_i64().unwrap();
    // The stored total ("1234.50"), in kopecks, exactly.
    let kopecks: i64 = order["total_amount"]
        .as_str()
        .unwrap()
        .replace('.', "")
        .parse()
        .unwrap();
    assert_eq!(order["payment_currency"], "RUB");
    assert_eq!(order["payment_amount"], kopecks);

    let (status, invoice) = shop.invoice(id, &shop.buyer).await;
    assert_eq!(status, 200, "{invoice}");
    let created = shop.next("createInvoiceLink").await;
    assert_eq!(created["currency"], "RUB");
    assert_eq!(created["prices"][0]["amount"], kopecks);
    assert_eq!(created["provider_token"], "284685063:TEST:provider-token");
    let payload = created["payload"].as_str().unwrap().to_owned();

    // The customer cancels before paying; the payment that still comes is the manager's
    // to refund through the provider.
    let cancelled = shop
        .app
        .client
        .post(shop.app.url(&format!("/orders/{id}/cancel")))
        .header("Authorization", &shop.buyer)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status().as_u16(), 200);
    assert_eq!(
        shop.deliver(pre_checkout(CUSTOMER, "RUB", kopecks, &payload), None)
            .await,
        200
    );
    let answer = shop.next("answerPreCheckoutQuery").await;
    assert_eq!(answer["ok"], false);
    assert_eq!(
        shop.deliver(
            successful_payment("RUB", kopecks, &payload, "charge-rub"),
            None
        )
        .await,
        200
    );
    shop.message_to(
        MANAGER_CHAT,
        "Верните деньги покупателю через платёжного провайдера",
    )
    .await;
    shop.message_to(CUSTOMER, "Магазин вернёт деньги").await;
    assert!(shop.calls_of("refundStarPayment").await.is_empty());
    let outcome = shop
        .db
        .query_i64("SELECT count(*) FROM payments WHERE outcome = 'refund_manual'")
        .await
        .unwrap();
    assert_eq!(outcome, 1);
    shop.db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stars_are_paid_once_refunded_and_expired_on_sqlite() {
    let (db, target) = seeded_sqlite().await;
    stars(db, target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stars_are_paid_once_refunded_and_expired_on_postgres() {
    let Some((db, target)) = seeded_postgres().await else {
        return;
    };
    stars(db, target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_invoice_is_exact_and_its_late_payment_is_flagged_on_sqlite() {
    let (db, target) = seeded_sqlite().await;
    provider(db, target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_invoice_is_exact_and_its_late_payment_is_flagged_on_postgres() {
    let Some((db, target)) = seeded_postgres().await else {
        return;
    };
    provider(db, target).await;
}
