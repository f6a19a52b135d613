//! The manager's loop on the real stack: an order's message arrives with buttons, a press
//! comes back through the webhook (or a long poll), the order moves, the customer hears,
//! the message is redrawn; a stranger's press and a stale press change nothing.

use serde_json::{Value, json};
use server::config::{DatabaseTarget, UpdatesMode};

use crate::support::*;

const SECRET: &str = "e2e_webhook-secret";
const CUSTOMER: i64 = 987_654_321;
/// An admin (`ADMIN_TELEGRAM_IDS`): a manager too.
const ADMIN: i64 = 555_002;
/// A chat whose messages Telegram takes a minute to accept.
const SLOW_CHAT: i64 = 555_001;

/// A press of an order button, as Telegram's update.
fn press_update(update_id: i64, from: i64, data: &str) -> Value {
    json!({
        "update_id": update_id,
        "callback_query": {
            "id": format!("cb-{update_id}"),
            "from": {"id": from, "first_name": "M"},
            "message": {"message_id": 77, "chat": {"id": MANAGER_CHAT}},
            "data": data,
        }
    })
}

async fn press(app: &TestApp, update_id: i64, from: i64, data: &str) -> u16 {
    deliver(app, SECRET, &press_update(update_id, from, data)).await
}

/// Posts `update` to the webhook with `secret`; the answer's status.
async fn deliver(app: &TestApp, secret: &str, update: &Value) -> u16 {
    app.client
        .post(format!("{}/telegram/webhook", app.base))
        .header("X-Telegram-Bot-Api-Secret-Token", secret)
        .json(update)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The next calls to Telegram until one to each of `methods` (in any order), returned in
/// the order asked.
async fn each_of<const N: usize>(telegram: &mut FakeTelegram, methods: [&str; N]) -> [Value; N] {
    let mut found: [Option<Value>; N] = std::array::from_fn(|_| None);
    while found.iter().any(Option::is_none) {
        let (called, body) = telegram.next_call().await;
        if let Some(at) = methods
            .iter()
            .zip(&found)
            .position(|(method, found)| *method == called && found.is_none())
        {
            found[at] = Some(body);
        }
    }
    found.map(|body| body.unwrap_or_default())
}

/// Places one unit of product 1 for `buyer`; the order's id.
async fn place_order(app: &TestApp, buyer: &str) -> i64 {
    let order: Value = app
        .client
        .post(app.url("/orders"))
        .header("Authorization", buyer)
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
    order["id"].as_i64().unwrap()
}

/// The order `id` as its customer `buyer` sees it.
async fn order_of(app: &TestApp, id: i64, buyer: &str) -> Value {
    app.get(&format!("/orders/{id}"), Some(buyer))
        .await
        .json()
        .await
        .unwrap()
}

/// The product's stock as the admin API reads it from the database.
async fn stock_of(app: &TestApp, product: i64) -> Value {
    let product: Value = app
        .client
        .get(app.url(&format!("/admin/products/{product}")))
        .header("Authorization", auth(ADMIN, "Админ"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    product["stock"].clone()
}

/// The next calls to Telegram until one to `method`, which is returned.
async fn next(telegram: &mut FakeTelegram, method: &str) -> Value {
    loop {
        let (called, body) = telegram.next_call().await;
        if called == method {
            return body;
        }
    }
}

async fn run(database: DatabaseTarget) {
    let mut telegram = FakeTelegram::start().await;
    let mut settings = settings(database, &telegram.server.uri());
    settings.http.telegram_webhook_secret = Some(serde_json::from_value(json!(SECRET)).unwrap());
    settings.updates = UpdatesMode::Webhook;
    settings.auth.admin_telegram_ids = vec![ADMIN];
    let app = TestApp::spawn(&settings).await;

    // Telegram gets its 200 before the bot's reply is sent: a chat that takes a minute
    // to accept a message holds nothing (the reply times out after 10 s).
    telegram.answer_chat(
        SLOW_CHAT,
        wiremock::ResponseTemplate::new(200)
            .set_body_json(json!({"ok": true, "result": {"message_id": 1}}))
            .set_delay(std::time::Duration::from_secs(60)),
    );
    let start = json!({
        "update_id": 100,
        "message": {"message_id": 1, "date": 1, "text": "/start",
                    "chat": {"id": SLOW_CHAT, "type": "private"},
                    "from": {"id": SLOW_CHAT, "first_name": "S"}},
    });
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        deliver(&app, SECRET, &start),
    )
    .await
    .expect("the webhook answered before its reply was sent");
    assert_eq!(answered, 200);
    let welcome = next(&mut telegram, "sendMessage").await;
    assert_eq!(welcome["chat_id"], SLOW_CHAT, "and the reply went out");

    // Limited stock, to see a cancellation give it back.
    let stocked = app
        .client
        .put(app.url("/admin/products/1/stock"))
        .header("Authorization", auth(ADMIN, "Админ"))
        .json(&json!({"stock": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(stocked.status().as_u16(), 200);
    let buyer = auth(CUSTOMER, "Иван");
    let id = place_order(&app, &buyer).await;
    assert_eq!(stock_of(&app, 1).await, 4);

    // The new order's message, with a button to confirm it.
    let announced = next(&mut telegram, "sendMessage").await;
    assert_eq!(announced["chat_id"], MANAGER_CHAT);
    let confirm = format!("s:{id}:P:C");
    assert_eq!(
        announced["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        confirm
    );

    // Without the secret: refused, and nothing is done (the next answer is update 1's).
    assert_eq!(
        deliver(
            &app,
            "not-the-secret",
            &press_update(99, MANAGER_CHAT, &confirm)
        )
        .await,
        401
    );

    // A stranger's press: refused, nothing changes.
    assert_eq!(press(&app, 1, 111, &confirm).await, 200);
    let refused = next(&mut telegram, "answerCallbackQuery").await;
    assert_eq!(refused["callback_query_id"], "cb-1");
    assert!(
        refused["text"].as_str().unwrap().contains("менеджеры"),
        "{refused}"
    );

    // The manager's press (MANAGER_CHAT is a person here): the order is confirmed.
    assert_eq!(press(&app, 2, MANAGER_CHAT, &confirm).await, 200);
    // The press's answer, the customer's message and the manager's redraw, in any order.
    let [done, told, redrawn] = each_of(
        &mut telegram,
        ["answerCallbackQuery", "sendMessage", "editMessageText"],
    )
    .await;
    assert!(
        done["text"].as_str().unwrap().starts_with("Готово"),
        "{done}"
    );
    let mine = order_of(&app, id, &buyer).await;
    assert_eq!(mine["status"], "CONFIRMED");
    assert_eq!(mine["history"][1]["by"], "manager");
    assert_eq!(told["chat_id"], CUSTOMER);
    assert!(told["text"].as_str().unwrap().contains("подтверждён"));
    assert_eq!(
        redrawn["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        format!("s:{id}:C:R")
    );

    // The same press again (a stale button): "already", nothing moves, and the message
    // is redrawn to the truth.
    assert_eq!(press(&app, 3, MANAGER_CHAT, &confirm).await, 200);
    let [stale, refreshed] =
        each_of(&mut telegram, ["answerCallbackQuery", "editMessageText"]).await;
    assert!(stale["text"].as_str().unwrap().contains("уже"), "{stale}");
    assert_eq!(
        refreshed["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        format!("s:{id}:C:R")
    );
    // Redelivered update: handled once (no second answer before the next update's).
    assert_eq!(press(&app, 3, MANAGER_CHAT, &confirm).await, 200);
    assert_eq!(press(&app, 4, 111, &confirm).await, 200);
    let after = next(&mut telegram, "answerCallbackQuery").await;
    assert_eq!(
        after["callback_query_id"], "cb-4",
        "update 3 was answered once"
    );

    // An admin (not the manager chat) cancels with the last button of the redrawn message:
    // the stock comes back, the customer hears, the message keeps no buttons.
    let rows = redrawn["reply_markup"]["inline_keyboard"]
        .as_array()
        .unwrap();
    let last = rows.last().unwrap().as_array().unwrap();
    let cancel = last.last().unwrap()["callback_data"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(cancel, format!("s:{id}:C:X"));
    assert_eq!(press(&app, 5, ADMIN, &cancel).await, 200);
    let [done, told, redrawn] = each_of(
        &mut telegram,
        ["answerCallbackQuery", "sendMessage", "editMessageText"],
    )
    .await;
    assert_eq!(done["callback_query_id"], "cb-5");
    assert!(
        done["text"].as_str().unwrap().starts_with("Готово"),
        "{done}"
    );
    assert_eq!(told["chat_id"], CUSTOMER);
    assert!(told["text"].as_str().unwrap().contains("отменён"), "{told}");
    assert!(
        redrawn["reply_markup"]["inline_keyboard"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "a final status has no buttons: {redrawn}"
    );
    let mine = order_of(&app, id, &buyer).await;
    assert_eq!(mine["status"], "CANCELLED");
    assert_eq!(mine["history"][2]["status"], "CANCELLED");
    assert_eq!(mine["history"][2]["by"], "manager");
    assert_eq!(
        stock_of(&app, 1).await,
        5,
        "the cancellation gave the unit back"
    );
}

#[tokio::test]
async fn the_manager_moves_an_order_with_the_buttons_on_sqlite() {
    run(fresh_sqlite("manager")).await;
}

#[tokio::test]
async fn the_manager_moves_an_order_with_the_buttons_on_postgres() {
    let Some((database, target)) = seeded_postgres().await else {
        return;
    };
    run(target).await;
    database.cleanup().await;
}

/// Polling (`TELEGRAM_UPDATES=polling`): the same loop with the press delivered by
/// `getUpdates`, each update confirmed by the next poll's offset; the webhook is not
/// served.
async fn run_polling(database: DatabaseTarget) {
    let mut telegram = FakeTelegram::start().await;
    let mut settings = settings(database, &telegram.server.uri());
    settings.updates = UpdatesMode::Polling;
    // One connection for requests: the poller's lease, the catalog listener and the payment
    // expiry's lease hold their own on top, and must not starve them.
    settings.database.database_max_connections = 1;
    let app = TestApp::spawn(&settings).await;
    let buyer = auth(CUSTOMER, "Иван");
    let id = place_order(&app, &buyer).await;
    let announced = next(&mut telegram, "sendMessage").await;
    let confirm = format!("s:{id}:P:C");
    assert_eq!(
        announced["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        confirm
    );

    telegram.deliver_update(press_update(41, MANAGER_CHAT, &confirm));
    let [done, told] = each_of(&mut telegram, ["answerCallbackQuery", "sendMessage"]).await;
    assert_eq!(done["callback_query_id"], "cb-41");
    assert!(
        done["text"].as_str().unwrap().starts_with("Готово"),
        "{done}"
    );
    assert_eq!(told["chat_id"], CUSTOMER);
    assert!(told["text"].as_str().unwrap().contains("подтверждён"));
    let mine = order_of(&app, id, &buyer).await;
    assert_eq!(mine["status"], "CONFIRMED");

    // A stale press, polled next: its answer comes after the poll that confirmed 41.
    telegram.deliver_update(press_update(42, MANAGER_CHAT, &confirm));
    let stale = next(&mut telegram, "answerCallbackQuery").await;
    assert_eq!(stale["callback_query_id"], "cb-42");
    let offsets = telegram.poll_offsets();
    assert_eq!(offsets[0], None, "{offsets:?}");
    assert!(offsets.contains(&Some(42)), "{offsets:?}");
    assert!(
        offsets.iter().flatten().all(|offset| *offset <= 43),
        "{offsets:?}"
    );

    // No webhook while polling.
    let webhook = app
        .client
        .post(format!("{}/telegram/webhook", app.base))
        .json(&press_update(43, MANAGER_CHAT, &confirm))
        .send()
        .await
        .unwrap();
    assert_eq!(webhook.status().as_u16(), 404);
}

#[tokio::test]
async fn polling_delivers_the_managers_press_on_sqlite() {
    run_polling(fresh_sqlite("polling")).await;
}

#[tokio::test]
async fn polling_delivers_the_managers_press_on_postgres() {
    let Some((database, target)) = seeded_postgres().await else {
        return;
    };
    run_polling(target).await;
    database.cleanup().await;
}

/// With `MINI_APP_URL`, the server makes the bot's menu button open the Mini App as it
/// starts.
#[tokio::test]
async fn at_start_up_the_menu_button_opens_the_mini_app() {
    const URL: &str = "https://shop.example/app";
    let mut telegram = FakeTelegram::start().await;
    let mut settings = settings(fresh_sqlite("menu-button"), &telegram.server.uri());
    settings.telegram.mini_app_url = Some(URL.to_owned());
    let _app = TestApp::spawn(&settings).await;
    let set = next(&mut telegram, "setChatMenuButton").await;
    assert_eq!(set["menu_button"]["type"], "web_app");
    assert_eq!(set["menu_button"]["web_app"]["url"], URL);
}
