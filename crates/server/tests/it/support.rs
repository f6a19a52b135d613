use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::auth::InitDataVerifier;
use server::app::Application;
use server::config::{BotToken, DatabaseTarget, MediaTarget, Notifications, Settings};
use tokio::sync::mpsc;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const TOKEN: &str = "123456:E2E-TEST-TOKEN";
pub const MANAGER_CHAT: i64 = 424_242;

/// A fake Telegram Bot API that hands every sendMessage and editMessageText body to the
/// test as it arrives, so tests wait on the message itself rather than on a timer. Every
/// chat is answered with success unless [`FakeTelegram::answer_chat`] scripted it
/// otherwise (a 429, a 403, a 5xx...).
pub struct FakeTelegram {
    pub server: MockServer,
    pub messages: mpsc::UnboundedReceiver<(String, serde_json::Value)>,
    answers: Arc<Mutex<HashMap<i64, ResponseTemplate>>>,
    methods: Arc<Mutex<HashMap<String, ResponseTemplate>>>,
    polled: Arc<Polled>,
}

/// `getUpdates`: the updates waiting to be polled, and the offset of every poll.
#[derive(Default)]
struct Polled {
    waiting: Mutex<std::collections::VecDeque<serde_json::Value>>,
    offsets: Mutex<Vec<Option<i64>>>,
}

/// Answers `getUpdates` from a shared [`Polled`].
struct Poll(Arc<Polled>);

impl Respond for Poll {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        self.0
            .offsets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(body["offset"].as_i64());
        let next = self
            .0
            .waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop_front();
        match next {
            Some(update) => ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"ok": true, "result": [update]})),
            // A long poll that found nothing, shortened.
            None => ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"ok": true, "result": []}))
                .set_delay(Duration::from_millis(100)),
        }
    }
}

struct Forward {
    calls: mpsc::UnboundedSender<(String, serde_json::Value)>,
    answers: Arc<Mutex<HashMap<i64, ResponseTemplate>>>,
    methods: Arc<Mutex<HashMap<String, ResponseTemplate>>>,
}

impl Respond for Forward {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let method = request
            .url
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let by_method = self
            .methods
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&method)
            .cloned();
        let scripted = by_method.or_else(|| {
            body["chat_id"].as_i64().and_then(|chat| {
                self.answers
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .get(&chat)
                    .cloned()
            })
        });
        let result = match method.as_str() {
            "answerCallbackQuery"
            | "answerPreCheckoutQuery"
            | "refundStarPayment"
            | "setChatMenuButton" => {
                serde_json::json!(true)
            }
            "createInvoiceLink" => serde_json::json!(format!(
                "https://t.me/$invoice-{}",
                body["payload"].as_str().unwrap_or_default()
            )),
            _ => serde_json::json!({"message_id": 77}),
        };
        let _ = self.calls.send((method, body));
        scripted.unwrap_or_else(|| {
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"ok": true, "result": result}))
        })
    }
}

impl FakeTelegram {
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let (calls, messages) = mpsc::unbounded_channel();
        let answers = Arc::new(Mutex::new(HashMap::new()));
        let methods = Arc::new(Mutex::new(HashMap::new()));
        Mock::given(method("POST"))
            .and(path_regex(
                r"^/bot[^/]+/(sendMessage|editMessageText|answerCallbackQuery|createInvoiceLink|answerPreCheckoutQuery|refundStarPayment|setChatMenuButton)$",
            ))
            .respond_with(Forward {
                calls,
                answers: answers.clone(),
                methods: methods.clone(),
            })
            .mount(&server)
            .await;
        let polled = Arc::new(Polled::default());
        Mock::given(method("POST"))
            .and(path_regex(r"^/bot[^/]+/getUpdates$"))
            .respond_with(Poll(Arc::clone(&polled)))
            .mount(&server)
            .await;
        Mock::given(path_regex(r"^/bot[^/]+/getChat$"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"ok": true, "result": {"id": MANAGER_CHAT, "type": "private"}}),
            ))
            .mount(&server)
            .await;
        Self {
            server,
            messages,
            answers,
            methods,
            polled,
        }
    }

    /// Hands `update` to the next `getUpdates`.
    pub fn deliver_update(&self, update: serde_json::Value) {
        self.polled
            .waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push_back(update);
    }

    /// The offset of every `getUpdates` so far.
    pub fn poll_offsets(&self) -> Vec<Option<i64>> {
        self.polled
            .offsets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Answers every later call to `chat_id` with `response`.
    pub fn answer_chat(&self, chat_id: i64, response: ResponseTemplate) {
        self.answers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(chat_id, response);
    }

    /// Answers every later call of `method` (whatever its chat) with `response`.
    pub fn answer_method(&self, method: &str, response: ResponseTemplate) {
        self.methods
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(method.to_owned(), response);
    }

    /// The next message sent to Telegram, or a panic after a generous deadline.
    pub async fn next_message(&mut self) -> serde_json::Value {
        self.next_call().await.1
    }

    /// The next call (method, body), or a panic after a generous deadline.
    pub async fn next_call(&mut self) -> (String, serde_json::Value) {
        tokio::time::timeout(Duration::from_secs(30), self.messages.recv())
            .await
            .expect("no Telegram message arrived")
            .expect("the fake Telegram closed")
    }
}

/// Telegram's error answer.
pub fn telegram_error(
    status: u16,
    description: &str,
    retry_after: Option<u64>,
) -> ResponseTemplate {
    let mut body = serde_json::json!({
        "ok": false,
        "error_code": status,
        "description": description,
    });
    if let Some(retry_after) = retry_after {
        body["parameters"] = serde_json::json!({ "retry_after": retry_after });
    }
    ResponseTemplate::new(status).set_body_json(body)
}

pub fn settings(database: DatabaseTarget, telegram_url: &str) -> Settings {
    let mut settings = Settings::defaults().unwrap();
    settings.database.set_target(database);
    settings.bot_token = BotToken::new(TOKEN).unwrap();
    settings.demo_token = false;
    settings.notifications = Notifications::Telegram {
        chat_id: MANAGER_CHAT,
    };
    settings.http.port = 0;
    settings.telegram.telegram_api_url = telegram_url.to_owned();
    settings.database.database_max_connections = 5;
    settings.media_target = MediaTarget::Local(media_dir());
    settings
}

/// A directory of its own for one test's uploaded pictures.
pub fn media_dir() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "botshop-test-media-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ))
}

/// A running application and a client for it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn spawn(settings: &Settings) -> Self {
        let app = Application::build(settings)
            .await
            .expect("the application builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        Self {
            base,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub async fn get(&self, path: &str, auth: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        request.send().await.unwrap()
    }
}

/// A signed `Authorization` header for a Telegram user.
pub fn auth(telegram_id: i64, first_name: &str) -> String {
    let verifier = InitDataVerifier::new(TOKEN, time::Duration::seconds(86_400));
    let auth_date = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let user = serde_json::json!({"id": telegram_id, "first_name": first_name}).to_string();
    format!(
        "tma {}",
        verifier.sign(&[("auth_date", &auth_date), ("user", &user)])
    )
}

/// A fresh SQLite database holding the demo catalog, and the target that names it (like
/// [`seeded_postgres`], for tests that also reach into the database). Call
/// `TestDatabase::cleanup` when done.
pub async fn seeded_sqlite() -> (infra_postgres::test_support::TestDatabase, DatabaseTarget) {
    let database = infra_postgres::test_support::TestDatabase::sqlite().await;
    database
        .store()
        .seed_catalog(&server::demo::catalog("http://127.0.0.1:8000"))
        .await
        .unwrap();
    let target = DatabaseTarget::Url(secrecy::SecretString::from(database.url()));
    (database, target)
}

/// A fresh embedded SQLite file for the test called `name` (the server seeds it with the
/// demo catalog, as `cargo run -p server` does).
pub fn fresh_sqlite(name: &str) -> DatabaseTarget {
    let dir = std::env::temp_dir().join(format!("botshop-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shop.db");
    let _ = std::fs::remove_file(&file);
    DatabaseTarget::EmbeddedSqlite(file.to_string_lossy().into_owned())
}

/// A fresh PostgreSQL database holding the demo catalog, and the target that names it;
/// `None` when PostgreSQL is not available (and not required). Call
/// `TestDatabase::cleanup` when done.
pub async fn seeded_postgres()
-> Option<(infra_postgres::test_support::TestDatabase, DatabaseTarget)> {
    let database = infra_postgres::test_support::TestDatabase::postgres().await?;
    let db =
        infra_postgres::Database::connect(database.url(), infra_postgres::PoolOptions::default())
            .await
            .unwrap();
    db.store()
        .seed_catalog(&server::demo::catalog("http://127.0.0.1:8000"))
        .await
        .unwrap();
    db.close().await.unwrap();
    let target = DatabaseTarget::Url(secrecy::SecretString::from(database.url()));
    Some((database, target))
}
