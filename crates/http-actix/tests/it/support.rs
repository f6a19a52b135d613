use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::test;
use domain::admin::{AdminAuthenticator, ApiToken};
use domain::auth::{DEFAULT_MAX_AGE, InitDataVerifier};
use domain::media::{MediaService, MockImageProcessor, MockMediaStore};
use domain::outbox::OutboxCounts;
use domain::payments::{MockPaymentGateway, MockPaymentRepository};
use domain::ports::{
    MockAuditLog, MockCatalogAdmin, MockCatalogRepository, MockIdempotencyStore, MockOrderAdmin,
    MockOrderLifecycle, MockOrderRepository, MockOutbox, MockStatsRepository, MockStorageProbe,
    MockUserRepository, Outbox, PoolStats, StorageProbe,
};
use domain::services::authenticate::Authenticator;
use domain::services::place_order::OrderService;
use domain::{
    Category, CategoryId, Money, Order, OrderId, OrderItem, OrderStatus, Product, ProductId,
    TelegramId, User, UserId,
};
use http_actix::{ApiState, Http, HttpConfig};
use serde_json::Value;
use time::OffsetDateTime;

pub const TOKEN: &str = "123456:TEST-TOKEN";
/// The admin API token the test app accepts.
pub const API_TOKEN: &str = "test-admin-api-token-0123456789abcdef";
/// Where the test shop says it lives (`PUBLIC_BASE_URL`).
pub const SHOP_URL: &str = "https://shop.example.com";
/// The Telegram user the test app takes for an admin.
pub const ADMIN: i64 = 777;

/// The mocks a test sets expectations on before building the app, and the app's settings.
pub struct Mocks {
    pub catalog: MockCatalogRepository,
    pub orders: MockOrderRepository,
    pub lifecycle: MockOrderLifecycle,
    pub users: MockUserRepository,
    pub idempotency: MockIdempotencyStore,
    pub order_admin: MockOrderAdmin,
    pub catalog_admin: MockCatalogAdmin,
    pub audit: MockAuditLog,
    pub stats: MockStatsRepository,
    pub images: MockImageProcessor,
    pub media: MockMediaStore,
    pub payments: MockPaymentRepository,
    pub gateway: Option<MockPaymentGateway>,
    pub storage: Arc<dyn StorageProbe>,
    pub outbox: Arc<dyn Outbox>,
    pub config: HttpConfig,
}

impl Mocks {
    pub fn new() -> Self {
        Self {
            catalog: MockCatalogRepository::new(),
            orders: MockOrderRepository::new(),
            lifecycle: MockOrderLifecycle::new(),
            users: MockUserRepository::new(),
            idempotency: MockIdempotencyStore::new(),
            order_admin: MockOrderAdmin::new(),
            catalog_admin: MockCatalogAdmin::new(),
            audit: MockAuditLog::new(),
            stats: MockStatsRepository::new(),
            images: MockImageProcessor::new(),
            media: MockMediaStore::new(),
            payments: MockPaymentRepository::new(),
            gateway: None,
            storage: Arc::new(MockStorageProbe::new()),
            outbox: Arc::new(MockOutbox::new()),
            config: HttpConfig::default(),
        }
    }

    pub fn with_config(mut self, change: impl FnOnce(&mut HttpConfig)) -> Self {
        change(&mut self.config);
        self
    }

    pub fn with_storage(mut self, storage: impl StorageProbe + 'static) -> Self {
        self.storage = Arc::new(storage);
        self
    }

    pub fn with_outbox(mut self, outbox: impl Outbox + 'static) -> Self {
        self.outbox = Arc::new(outbox);
        self
    }

    /// Every catalog read answers with something, and the probes with a healthy storage:
    /// enough for any route to do its job.
    pub fn answering_everything(mut self) -> Self {
        self.media.expect_get().returning(|_| {
            Ok(Some(domain::media::StoredMedia {
                bytes: b"picture".to_vec(),
            }))
        });
        self.lifecycle
            .expect_history()
            .returning(|_| Ok(Vec::new()));
        self.lifecycle
            .expect_current_status()
            .returning(|_, _| Ok(Some(domain::OrderStatus::Pending)));
        self.lifecycle
            .expect_apply_status_change()
            .returning(|change| {
                let mut cancelled = order(change.order_id.0);
                cancelled.status = change.to;
                Ok(domain::lifecycle::Applied::Changed(Box::new(cancelled)))
            });
        self.catalog
            .expect_find_category()
            .returning(|id| Ok(Some(category(id.0))));
        self.catalog
            .expect_child_categories()
            .returning(|_| Ok(Vec::new()));
        self.catalog.expect_list_categories().returning(|_, page| {
            Ok(domain::Paginated {
                items: vec![category(1)],
                total: 1,
                page,
            })
        });
        self.catalog.expect_list_products().returning(|_, page| {
            Ok(domain::Paginated {
                items: vec![product(1, 25_000)],
                total: 1,
                page,
            })
        });
        self.catalog
            .expect_find_active_product()
            .returning(|id| Ok(Some(product(id.0, 25_000))));
        self.with_storage(healthy_storage(PoolStats::default()))
            .with_outbox(outbox_counting(0, 0))
    }

    /// Any authenticated request upserts the user: answer with [`customer`].
    pub fn with_customer(mut self) -> Self {
        self.users.expect_upsert().returning(|profile, _| {
            Ok(User {
                telegram_id: profile.id,
                ..customer()
            })
        });
        self
    }

    pub fn state(self) -> (ApiState, HttpConfig) {
        let orders: Arc<MockOrderRepository> = Arc::new(self.orders);
        let lifecycle: Arc<MockOrderLifecycle> = Arc::new(self.lifecycle);
        let gateway = self
            .gateway
            .map(|gateway| Arc::new(gateway) as Arc<dyn domain::payments::PaymentGateway>);
        let state = ApiState {
            payments: domain::payments::PaymentService::new(
                Arc::new(self.payments),
                lifecycle.clone(),
                gateway,
                Arc::new(tokio::sync::Notify::new()),
            ),
            catalog: Arc::new(self.catalog),
            orders: orders.clone(),
            lifecycle,
            relay_wake: Arc::new(tokio::sync::Notify::new()),
            telegram: None,
            order_service: OrderService::new(
                orders,
                Arc::new(self.idempotency),
                Arc::new(tokio::sync::Notify::new()),
            ),
            authenticator: Authenticator::new(Arc::new(verifier()), Arc::new(self.users)),
            admin_auth: AdminAuthenticator::new(
                Arc::new(verifier()),
                vec![TelegramId::parse(ADMIN).unwrap()],
                Some(ApiToken::new(API_TOKEN).unwrap()),
            ),
            order_admin: Arc::new(self.order_admin),
            catalog_admin: Arc::new(self.catalog_admin),
            audit: Arc::new(self.audit),
            stats: Arc::new(self.stats),
            media: MediaService::new(Arc::new(self.images), Arc::new(self.media)),
            media_url: Some(format!("{SHOP_URL}/media/")),
            dev_sign_in: None,
            storage: self.storage,
            outbox: self.outbox,
        };
        (state, self.config)
    }

    /// The once-per-process part, from which each worker's app is made.
    pub fn http(self) -> Http {
        let (state, config) = self.state();
        Http::new(state, config).unwrap()
    }

    pub async fn app(
        self,
    ) -> impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    > {
        worker(&self.http()).await
    }
}

/// One worker's app, as the server makes one per actix worker.
pub async fn worker(
    http: &Http,
) -> impl Service<
    actix_http::Request,
    Response = ServiceResponse<impl MessageBody + use<>>,
    Error = actix_web::Error,
> + use<> {
    test::init_service(http.app()).await
}

/// A storage whose ping succeeds and whose pool looks like `stats`.
pub fn healthy_storage(stats: PoolStats) -> MockStorageProbe {
    let mut storage = MockStorageProbe::new();
    storage.expect_ping().returning(|| Ok(()));
    storage.expect_pool_stats().returning(move || stats);
    storage
}

/// An outbox holding `pending` and `dead` events.
pub fn outbox_counting(pending: u64, dead: u64) -> MockOutbox {
    let mut outbox = MockOutbox::new();
    outbox.expect_counts().returning(move || {
        Ok(OutboxCounts {
            pending,
            dead,
            ..OutboxCounts::default()
        })
    });
    outbox
}

pub fn verifier() -> InitDataVerifier {
    InitDataVerifier::new(TOKEN, DEFAULT_MAX_AGE)
}

/// A fresh, validly signed `Authorization` header for Telegram user `telegram_id`.
pub fn auth_header(telegram_id: i64) -> String {
    let auth_date = OffsetDateTime::now_utc().unix_timestamp().to_string();
    let user = format!(r#"{{"id":{telegram_id},"first_name":"Иван","username":"ivan"}}"#);
    format!(
        "tma {}",
        verifier().sign(&[("auth_date", &auth_date), ("user", &user)])
    )
}

pub fn at() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_766_406_600).unwrap()
}

pub fn customer() -> User {
    User {
        id: UserId(1),
        telegram_id: TelegramId::parse(987_654_321).unwrap(),
        username: Some("ivan".into()),
        first_name: Some("Иван".into()),
        last_name: None,
        created_at: at(),
        updated_at: at(),
    }
}

pub fn money(minor: i64) -> Money {
    Money::from_minor(minor).unwrap()
}

pub fn category(id: i64) -> Category {
    Category {
        id: CategoryId(id),
        name: format!("Категория {id}"),
        slug: format!("cat-{id}"),
        sort_order: id as i32,
        parent_id: None,
        is_active: true,
    }
}

pub fn product(id: i64, price_minor: i64) -> Product {
    Product {
        price_stars: None,
        id: ProductId(id),
        category_id: CategoryId(1),
        name: format!("Товар {id}"),
        description: Some("Описание".into()),
        price: money(price_minor),
        images: vec![],
        is_active: true,
        sort_order: 0,
        stock: None,
    }
}

pub fn order(id: i64) -> Order {
    Order {
        payment: Default::default(),
        id: OrderId(id),
        user_id: UserId(1),
        status: OrderStatus::Pending,
        total_amount: money(80_000),
        delivery_address: "ул. Пушкина, д. 10".into(),
        phone: "+79001234567".into(),
        comment: Some("Домофон не работает".into()),
        created_at: at(),
        updated_at: at(),
        items: vec![
            OrderItem {
                product_id: ProductId(1),
                product_name: "Товар 1".into(),
                quantity: 2,
                price: money(25_000),
            },
            OrderItem {
                product_id: ProductId(2),
                product_name: "Товар 2".into(),
                quantity: 1,
                price: money(30_000),
            },
        ],
    }
}

/// Sends the request and returns status, content type and parsed JSON body.
pub async fn call<S, B>(app: &S, req: test::TestRequest) -> (u16, String, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response = test::call_service(app, req.to_request()).await;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = test::read_body(response).await;
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)))
    };
    (status, content_type, json)
}

/// Asserts a problem+json answer with this status and code, and returns it.
pub async fn problem<S, B>(app: &S, req: test::TestRequest, status: u16, code: &str) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let (got, content_type, body) = call(app, req).await;
    assert_eq!(got, status, "body: {body}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["code"], code, "body: {body}");
    assert_eq!(body["status"], status);
    // Clients written for FastAPI show `detail` to the customer: every problem has one.
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(!detail.trim().is_empty(), "no human detail: {body}");
    body
}

/// A response in full: status, headers and the body as text.
pub struct Raw {
    pub status: u16,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: String,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

/// Sends the request and returns the whole response.
pub async fn call_raw<S, B>(app: &S, req: test::TestRequest) -> Raw
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response = test::call_service(app, req.to_request()).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = test::read_body(response).await;
    Raw {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// A peer address for `TestRequest::peer_addr`.
pub fn peer(ip: &str) -> std::net::SocketAddr {
    std::net::SocketAddr::new(ip.parse().unwrap(), 40_000)
}
