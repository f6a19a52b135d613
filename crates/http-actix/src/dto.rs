//! The API's JSON shapes. They live here and nowhere else: the domain never sees them.
//!
//! Money travels as a decimal string with two places ("250.00") so no client parses it as
//! a float; timestamps as RFC 3339 in UTC.

use domain::order::{OrderInput, OrderLineInput};
use domain::{Category, Order, OrderItem, Paginated, Product, User};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The envelope of every collection.
#[derive(Debug, Serialize)]
pub struct PageDto<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

impl<T> PageDto<T> {
    pub fn from_page<D>(page: Paginated<D>, convert: impl Fn(D) -> T) -> Self {
        PageDto {
            items: page.items.into_iter().map(convert).collect(),
            total: page.total,
            limit: page.page.limit(),
            offset: page.page.offset(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CategoryDto {
    pub id: i64,
    pub name: String,
    pub slug: String,
    pub sort_order: i32,
}

impl From<Category> for CategoryDto {
    fn from(c: Category) -> Self {
        CategoryDto {
            id: c.id.0,
            name: c.name,
            slug: c.slug,
            sort_order: c.sort_order,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ProductDto {
    pub id: i64,
    pub category_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub price: String,
    pub image_url: Option<String>,
    pub sort_order: i32,
}

impl From<Product> for ProductDto {
    fn from(p: Product) -> Self {
        ProductDto {
            id: p.id.0,
            category_id: p.category_id.0,
            name: p.name,
            description: p.description,
            price: p.price.to_string(),
            image_url: p.image_url,
            sort_order: p.sort_order,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct UserDto {
    pub id: i64,
    pub telegram_id: i64,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
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

#[derive(Debug, Serialize)]
pub struct OrderDto {
    pub id: i64,
    pub status: &'static str,
    pub total_amount: String,
    pub delivery_address: String,
    pub phone: String,
    pub comment: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub items: Vec<OrderItemDto>,
}

#[derive(Debug, Serialize)]
pub struct OrderItemDto {
    pub product_id: i64,
    pub product_name: String,
    pub quantity: u32,
    pub price: String,
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    pub items: Vec<CreateOrderItem>,
    pub delivery_address: String,
    pub phone: String,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderItem {
    pub product_id: i64,
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

/// Query parameters of collections, kept as text so that a bad value gets a 422 that names
/// its parameter rather than a generic parse failure.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub category_id: Option<String>,
}
