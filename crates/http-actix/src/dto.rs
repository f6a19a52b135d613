//! The API's JSON shapes. They live here and nowhere else: the domain never sees them.
//!
//! Money travels as a decimal string with two places ("250.00") so no client parses it as
//! a float; timestamps as RFC 3339 in UTC.

use domain::lifecycle::StatusHistoryEntry;
use domain::order::{OrderInput, OrderLineInput};
use domain::{Category, Order, OrderItem, Product, User};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{RefOr, Schema};

/// A catalog category, a node of a tree of at most three levels.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 5, "name": "Острая", "slug": "pizza-spicy", "sort_order": 1, "parent_id": 1, "is_active": true}))]
pub struct CategoryDto {
    pub id: i64,
    pub name: String,
    pub slug: String,
    pub sort_order: i32,
    /// The category it belongs under; `null` for a root.
    pub parent_id: Option<i64>,
    /// Always `true` in the public catalog, which hides inactive categories.
    pub is_active: bool,
    /// With `include_children=true` only: the visible subcategories, one level.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion, nullable = false)]
    pub children: Option<Vec<CategoryDto>>,
}

impl From<Category> for CategoryDto {
    fn from(c: Category) -> Self {
        CategoryDto {
            id: c.id.0,
            name: c.name,
            slug: c.slug,
            sort_order: c.sort_order,
            parent_id: c.parent_id.map(|p| p.0),
            is_active: c.is_active,
            children: None,
        }
    }
}

/// A product on sale.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 5, "category_id": 1, "name": "Маргарита", "description": "Томаты, моцарелла, базилик",
    "price": "250.00", "image_url": "https://shop.example.com/static/demo/pizza.svg",
    "images": ["https://shop.example.com/static/demo/pizza.svg", "https://shop.example.com/static/demo/pizza-slice.svg"],
    "sort_order": 0, "stock": 12, "in_stock": true
}))]
pub struct ProductDto {
    pub id: i64,
    pub category_id: i64,
    pub name: String,
    pub description: Option<String>,
    /// Roubles, a decimal string with two places.
    #[schema(example = "250.00", pattern = r"^\d+\.\d{2}$")]
    pub price: String,
    /// The main picture: the first of `images`, or `null` (kept for clients written for
    /// the seed).
    pub image_url: Option<String>,
    /// The gallery in display order: 0–10 absolute http(s) URLs.
    #[schema(max_items = 10)]
    pub images: Vec<String>,
    pub sort_order: i32,
    /// Units left; `null` means unlimited.
    pub stock: Option<u32>,
    /// Whether at least one unit can be ordered now.
    pub in_stock: bool,
    /// The price in Telegram Stars (`PAYMENTS=stars`), or `null` when it has none.
    #[schema(example = 120)]
    pub price_stars: Option<u32>,
}

impl From<Product> for ProductDto {
    fn from(p: Product) -> Self {
        let in_stock = p.in_stock();
        let image_url = p.image_url().map(str::to_owned);
        ProductDto {
            price_stars: p.price_stars,
            stock: p.stock,
            in_stock,
            id: p.id.0,
            category_id: p.category_id.0,
            name: p.name,
            description: p.description,
            price: p.price.to_string(),
            image_url,
            images: p.images,
            sort_order: p.sort_order,
        }
    }
}

/// The customer, as Telegram vouched for them.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 1, "telegram_id": 987654321, "username": "ivan", "first_name": "Иван",
    "last_name": null, "created_at": "2025-12-22T12:30:00Z"
}))]
pub struct UserDto {
    pub id: i64,
    pub telegram_id: i64,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        UserDto {
            id: u.id.0,
            telegram_id: u.telegram_id.get(),
            username: u.username,
            first_name: u.first_name,
            last_name: u.last_name,
            created_at: rfc3339(u.created_at),
        }
    }
}

/// An order, with the price of each line as it was when the order was placed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 123, "status": "PENDING", "total_amount": "800.00",
    "delivery_address": "ул. Пушкина, д. 10", "phone": "+79001234567",
    "comment": "Домофон не работает",
    "created_at": "2025-12-22T12:30:00Z", "updated_at": "2025-12-22T12:30:00Z",
    "items": [
        {"product_id": 1, "product_name": "Товар 1", "quantity": 2, "price": "250.00"},
        {"product_id": 2, "product_name": "Товар 2", "quantity": 1, "price": "300.00"}
    ],
    "payment_status": "unpaid", "payment_currency": "RUB", "payment_amount": 80000,
    "payment_due_by": "2025-12-22T13:00:00Z", "paid_at": null
}))]
pub struct OrderDto {
    pub id: i64,
    #[schema(schema_with = order_status_schema)]
    pub status: &'static str,
    /// Roubles, a decimal string with two places.
    #[schema(example = "800.00")]
    pub total_amount: String,
    pub delivery_address: String,
    pub phone: String,
    pub comment: Option<String>,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub items: Vec<OrderItemDto>,
    /// `not_required` (paid on delivery), `unpaid`, `paid` or `refunded`.
    #[schema(schema_with = payment_status_schema)]
    pub payment_status: &'static str,
    /// What the order owes online: the currency (`XTR` for Telegram Stars) and the amount
    /// in its smallest units (kopecks, cents, whole stars); `null` when paid on delivery.
    #[schema(example = "RUB")]
    pub payment_currency: Option<&'static str>,
    #[schema(example = 80000)]
    pub payment_amount: Option<i64>,
    /// RFC 3339, UTC: until when an unpaid order waits for its payment.
    #[schema(format = DateTime)]
    pub payment_due_by: Option<String>,
    /// RFC 3339, UTC: when the payment arrived.
    #[schema(format = DateTime)]
    pub paid_at: Option<String>,
    /// `GET /orders/{id}` and a cancellation only: the order's statuses, oldest first,
    /// starting with its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub history: Option<Vec<HistoryEntryDto>>,
}

/// One step of an order's life.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "CONFIRMED", "at": "2025-12-22T12:35:00Z", "by": "manager"}))]
pub struct HistoryEntryDto {
    #[schema(schema_with = order_status_schema)]
    pub status: &'static str,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub at: String,
    /// `customer`, `manager` or `system`.
    #[schema(schema_with = changed_by_schema)]
    pub by: &'static str,
}

impl From<StatusHistoryEntry> for HistoryEntryDto {
    fn from(entry: StatusHistoryEntry) -> Self {
        HistoryEntryDto {
            status: entry.status.as_str(),
            at: rfc3339(entry.at),
            by: entry.by.kind(),
        }
    }
}

fn changed_by_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .enum_values(Some(["customer", "manager", "system"]))
        .description(Some("Who made the change"))
}

/// One line of an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderItemDto {
    pub product_id: i64,
    /// The product's name when the order was placed.
    pub product_name: String,
    pub quantity: u32,
    /// The unit price when the order was placed, a decimal string with two places.
    #[schema(example = "250.00")]
    pub price: String,
}

fn payment_status_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .enum_values(Some(
            domain::payments::PaymentStatus::ALL
                .iter()
                .map(|status| status.as_str()),
        ))
        .description(Some(
            "not_required (paid on delivery), unpaid, paid (only Telegram's successful_payment \
             makes it so) or refunded",
        ))
        .examples(["not_required"])
}

/// `status` is one of the domain's order statuses, spelled as stored.
fn order_status_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .enum_values(Some(
            domain::OrderStatus::ALL
                .iter()
                .map(|status| status.as_str()),
        ))
        .description(Some(
            "PENDING when new; then CONFIRMED, PROCESSING, SHIPPED, DELIVERED, or CANCELLED",
        ))
        .examples(["PENDING"])
}

impl From<Order> for OrderDto {
    fn from(o: Order) -> Self {
        OrderDto {
            id: o.id.0,
            status: o.status.as_str(),
            total_amount: o.total_amount.to_string(),
            delivery_address: o.delivery_address,
            phone: o.phone,
            comment: o.comment,
            created_at: rfc3339(o.created_at),
            updated_at: rfc3339(o.updated_at),
            items: o.items.into_iter().map(OrderItemDto::from).collect(),
            payment_status: o.payment.status.as_str(),
            payment_currency: o.payment.due.map(|due| due.currency.code()),
            payment_amount: o.payment.due.map(|due| due.amount),
            payment_due_by: o.payment.due_by.map(rfc3339),
            paid_at: o.payment.paid_at.map(rfc3339),
            history: None,
        }
    }
}

impl From<OrderItem> for OrderItemDto {
    fn from(i: OrderItem) -> Self {
        OrderItemDto {
            product_id: i.product_id.0,
            product_name: i.product_name,
            quantity: i.quantity,
            price: i.price.to_string(),
        }
    }
}

/// `POST /orders`. Unknown fields are refused, so a client cannot try to set a price, a
/// total, a status or a user.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "items": [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1}],
    "delivery_address": "ул. Пушкина, д. 10",
    "phone": "+79001234567",
    "comment": "Домофон не работает"
}))]
pub struct CreateOrderRequest {
    /// 1–50 lines; the same product twice is merged.
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<CreateOrderItem>,
    /// At most 500 characters, not blank; no control characters other than newline and tab.
    /// Kept without the white space around it.
    #[schema(
        min_length = 1,
        max_length = 500,
        example = "ул. Пушкина, д. 10",
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub delivery_address: String,
    /// 7–15 digits, optionally starting with `+` and grouped by spaces, dashes or parentheses;
    /// spaces may surround it.
    #[schema(
        example = "+79001234567",
        pattern = r"^ *\+?[ ()\-]*(?:[0-9][ ()\-]*){7,15}$"
    )]
    pub phone: String,
    /// At most 1000 characters; no control characters other than newline and tab. Blank or
    /// `null` means no comment.
    #[serde(default)]
    #[schema(
        max_length = 1000,
        example = "Домофон не работает",
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub comment: Option<String>,
}

/// One line of a new order. Its price is read from the catalog, never from the client.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderItem {
    #[schema(minimum = 1)]
    pub product_id: i64,
    /// 1–100.
    #[schema(minimum = 1, maximum = 100)]
    pub quantity: i64,
}

impl From<CreateOrderRequest> for OrderInput {
    fn from(r: CreateOrderRequest) -> Self {
        OrderInput {
            items: r
                .items
                .into_iter()
                .map(|i| OrderLineInput {
                    product_id: i.product_id,
                    quantity: i.quantity,
                })
                .collect(),
            delivery_address: r.delivery_address,
            phone: r.phone,
            comment: r.comment,
        }
    }
}

/// RFC 3339 in UTC, e.g. `2025-12-22T12:30:00Z`.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The orders a product listing may be sorted in, for the OpenAPI document only: handlers
/// read [`ListQuery::sort`] as text and the domain parses it.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ProductSortParam {
    Default,
    PriceAsc,
    PriceDesc,
    Newest,
}

/// Query parameters of collections, kept as text so that a bad value gets a 422 that names
/// its parameter rather than a generic parse failure.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub category_id: Option<String>,
    pub include_descendants: Option<String>,
    pub parent_id: Option<String>,
    pub include_children: Option<String>,
    pub q: Option<String>,
    pub min_price: Option<String>,
    pub max_price: Option<String>,
    pub in_stock: Option<String>,
    pub sort: Option<String>,
}

/// The answer of the health and readiness probes.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct StatusDto {
    pub status: &'static str,
}

/// An order as the admin sees it: the order, its customer, and its whole history.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminOrderDto {
    #[serde(flatten)]
    pub order: OrderDto,
    pub customer: UserDto,
    /// Oldest first, starting with its creation.
    pub status_history: Vec<AdminHistoryEntryDto>,
    /// The statuses the order may move to now, in lifecycle order (the domain's table of
    /// transitions); empty once it is DELIVERED or CANCELLED.
    #[schema(value_type = Vec<String>, example = json!(["CONFIRMED", "PROCESSING", "SHIPPED", "DELIVERED", "CANCELLED"]))]
    pub next_statuses: Vec<&'static str>,
}

impl From<domain::admin::OrderDetails> for AdminOrderDto {
    fn from(details: domain::admin::OrderDetails) -> Self {
        let next_statuses = domain::lifecycle::next_statuses(details.order.status)
            .into_iter()
            .map(|status| status.as_str())
            .collect();
        AdminOrderDto {
            next_statuses,
            order: OrderDto::from(details.order),
            customer: UserDto::from(details.customer),
            status_history: details
                .history
                .into_iter()
                .map(AdminHistoryEntryDto::from)
                .collect(),
        }
    }
}

/// One step of an order's life, with who and why.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"from": "PENDING", "status": "CONFIRMED", "at": "2025-12-22T12:35:00Z",
    "by": "manager", "manager_telegram_id": 777, "note": "позвонили"}))]
pub struct AdminHistoryEntryDto {
    /// `null` for the order's creation.
    #[schema(schema_with = order_status_schema)]
    pub from: Option<&'static str>,
    #[schema(schema_with = order_status_schema)]
    pub status: &'static str,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub at: String,
    #[schema(schema_with = changed_by_schema)]
    pub by: &'static str,
    /// The manager's Telegram id, when `by` is `manager`.
    pub manager_telegram_id: Option<i64>,
    pub note: Option<String>,
}

impl From<StatusHistoryEntry> for AdminHistoryEntryDto {
    fn from(entry: StatusHistoryEntry) -> Self {
        AdminHistoryEntryDto {
            from: entry.from.map(|status| status.as_str()),
            status: entry.status.as_str(),
            at: rfc3339(entry.at),
            by: entry.by.kind(),
            manager_telegram_id: match entry.by {
                domain::lifecycle::ChangedBy::Manager(id) => Some(id.get()),
                _ => None,
            },
            note: entry.note,
        }
    }
}

/// `POST /admin/orders/{id}/status`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "SHIPPED", "note": "СДЭК 1234567890"}))]
pub struct StatusChangeRequest {
    /// The status wanted: PENDING, CONFIRMED, PROCESSING, SHIPPED, DELIVERED or CANCELLED.
    pub status: String,
    /// Why, for the history (at most 500 characters; no control characters other than
    /// newline and tab).
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// One admin change.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 1, "at": "2025-12-22T12:35:00Z", "actor": "777",
    "action": "order.status", "entity": "order", "entity_id": "123",
    "before": {"status": "PENDING"}, "after": {"status": "CONFIRMED", "note": "позвонили"}}))]
pub struct AuditEntryDto {
    pub id: i64,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub at: String,
    /// The admin's Telegram id, or `api-token`.
    pub actor: String,
    /// What was done, e.g. `order.status`.
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    /// The changed fields before the change.
    #[schema(value_type = Object)]
    pub before: serde_json::Value,
    /// The changed fields after it.
    #[schema(value_type = Object)]
    pub after: serde_json::Value,
}

impl From<domain::admin::AuditEntry> for AuditEntryDto {
    fn from(entry: domain::admin::AuditEntry) -> Self {
        AuditEntryDto {
            id: entry.id,
            at: rfc3339(entry.at),
            actor: entry.actor,
            action: entry.action,
            entity: entry.entity,
            entity_id: entry.entity_id,
            before: entry.before,
            after: entry.after,
        }
    }
}

/// A category as the admin creates or changes it. Creating needs `name` and `slug`; a
/// change sets only the fields sent (`parent_id: null` makes it a root).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Острая", "slug": "pizza-spicy", "sort_order": 1, "parent_id": 1, "is_active": true}))]
pub struct CategoryRequest {
    /// 1–100 characters, one line.
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// 1–64 lower-case Latin letters, digits and single hyphens; unique.
    #[schema(pattern = "^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64)]
    pub slug: Option<String>,
    #[schema(minimum = 0, maximum = 2_147_483_647)]
    pub sort_order: Option<i64>,
    /// The category it goes under (the tree has at most three levels and no cycles);
    /// `null`: a root.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    pub parent_id: Option<Option<i64>>,
    pub is_active: Option<bool>,
}

/// A field that may be sent as `null`: absent is `None`, `null` is `Some(None)`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `PUT /admin/products/{id}/stock`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"stock": 25}))]
pub struct StockRequest {
    /// Units in stock, or `null` for unlimited. Required (send `null` explicitly).
    #[serde(deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 1_000_000_000)]
    pub stock: Option<Option<i64>>,
}

/// `POST /admin/products/{id}/stock/adjustments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"delta": -2, "reason": "брак при приёмке"}))]
pub struct StockAdjustmentRequest {
    /// Units to add (negative: to remove); never below zero.
    #[schema(minimum = -1_000_000_000, maximum = 1_000_000_000)]
    pub delta: i64,
    /// Why, for the audit log (1–200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
}

/// A product's stock after a change.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"product_id": 3, "stock": 23}))]
pub struct StockDto {
    pub product_id: i64,
    /// `null`: unlimited.
    pub stock: Option<u32>,
}

/// A product as the admin sees it: the public fields, and whether it is on sale and its
/// SKU.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminProductDto {
    #[serde(flatten)]
    pub product: ProductDto,
    pub is_active: bool,
    pub sku: Option<String>,
}

impl From<domain::catalog_admin::AdminProduct> for AdminProductDto {
    fn from(admin: domain::catalog_admin::AdminProduct) -> Self {
        let is_active = admin.product.is_active;
        AdminProductDto {
            product: ProductDto::from(admin.product),
            is_active,
            sku: admin.sku,
        }
    }
}

/// A product as the admin creates or changes it. Creating needs `category_id`, `name` and
/// `price`; a change sets only the fields sent (`null` clears `description` and `sku`).
/// `stock` only when creating (then `PUT …/stock`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"category_id": 1, "name": "Пицца Маргарита", "description": "Томаты, моцарелла",
    "price": "590.00", "images": ["https://shop.example.com/media/ab12.jpg"], "sku": "PZ-MARG-30", "stock": 20}))]
pub struct ProductRequest {
    #[schema(minimum = 1)]
    pub category_id: Option<i64>,
    /// 1–200 characters, one line.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub description: Option<Option<String>>,
    /// Roubles, above zero, at most two places: `"590"` or `"590.00"`.
    #[schema(pattern = r"^\d{1,10}(\.\d{1,2})?$", example = "590.00")]
    pub price: Option<String>,
    /// 0–10 absolute http(s) URLs, in display order.
    #[schema(max_items = 10)]
    pub images: Option<Vec<String>>,
    pub is_active: Option<bool>,
    #[schema(minimum = 0, maximum = 2_147_483_647)]
    pub sort_order: Option<i64>,
    /// 1–64 visible ASCII characters, unique; `null`: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 64)]
    pub sku: Option<Option<String>>,
    /// Creating only: units in stock, or `null` for unlimited (the default).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 1_000_000_000)]
    pub stock: Option<Option<i64>>,
    /// The price in Telegram Stars, a whole number from 1 to 1 000 000; `null`: none (the
    /// product cannot then be ordered while `PAYMENTS=stars`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 1_000_000)]
    pub price_stars: Option<Option<i64>>,
}

/// Query parameters of `GET /admin/products`: the public list's, and `is_active`, `sku`.
#[derive(Debug, Deserialize)]
pub struct AdminProductsQuery {
    #[serde(flatten)]
    pub public: ListQuery,
    pub is_active: Option<String>,
    pub sku: Option<String>,
}

/// The admin's report over a period.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "from": "2025-12-01", "to": "2025-12-02", "total_orders": 3, "total_revenue": "1500.00",
    "days": [{"day": "2025-12-01", "orders": 0, "revenue": "0.00"}, {"day": "2025-12-02", "orders": 3, "revenue": "1500.00"}],
    "by_status": [{"status": "PENDING", "orders": 2}, {"status": "CANCELLED", "orders": 1}],
    "top_products": [{"product_id": 1, "name": "Пицца Маргарита", "quantity": 4, "revenue": "2360.00"}]
}))]
pub struct ReportDto {
    /// The first day, UTC.
    #[schema(format = Date)]
    pub from: String,
    /// The last day, UTC (included).
    #[schema(format = Date)]
    pub to: String,
    pub total_orders: u64,
    /// The total of the orders not cancelled.
    pub total_revenue: String,
    /// Every day of the period, those without orders at zero.
    pub days: Vec<ReportDayDto>,
    /// Orders placed in the period, by the status they are in now; every status.
    pub by_status: Vec<ReportStatusDto>,
    /// The best-selling products (orders not cancelled), at most 10.
    pub top_products: Vec<ReportProductDto>,
}

/// One day of a report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportDayDto {
    #[schema(format = Date)]
    pub day: String,
    pub orders: u64,
    pub revenue: String,
}

/// Orders in one status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportStatusDto {
    #[schema(schema_with = order_status_schema)]
    pub status: &'static str,
    pub orders: u64,
}

/// A best-selling product.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportProductDto {
    pub product_id: i64,
    pub name: String,
    pub quantity: u64,
    pub revenue: String,
}

impl From<domain::stats::Report> for ReportDto {
    fn from(report: domain::stats::Report) -> Self {
        let date = |day: time::Date| day.to_string();
        ReportDto {
            from: date(report.period.from.date()),
            to: date(report.period.to.date() - time::Duration::days(1)),
            total_orders: report.total_orders,
            total_revenue: report.total_revenue.to_string(),
            days: report
                .days
                .into_iter()
                .map(|day| ReportDayDto {
                    day: date(day.day),
                    orders: day.orders,
                    revenue: day.revenue.to_string(),
                })
                .collect(),
            by_status: report
                .by_status
                .into_iter()
                .map(|(status, orders)| ReportStatusDto {
                    status: status.as_str(),
                    orders,
                })
                .collect(),
            top_products: report
                .top_products
                .into_iter()
                .map(|product| ReportProductDto {
                    product_id: product.product_id.0,
                    name: product.name,
                    quantity: product.quantity,
                    revenue: product.revenue.to_string(),
                })
                .collect(),
        }
    }
}
