//! The shop's entities as the rest of the system sees them.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use crate::money::Money;
use crate::values::{CategoryId, OrderId, ProductId, TelegramId, UserId};

/// A customer, created on their first authenticated request (lazy onboarding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub telegram_id: TelegramId,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A section of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub id: CategoryId,
    pub name: String,
    pub slug: String,
    pub sort_order: i32,
    /// The category it belongs under; `None` for a root. The tree has at most
    /// [`MAX_CATEGORY_LEVELS`] levels and no cycles (the database refuses either).
    pub parent_id: Option<CategoryId>,
    /// An inactive category and everything under it is hidden from the public catalog,
    /// and their products are neither listed nor orderable.
    pub is_active: bool,
}

/// How deep the category tree may be: a root, its children, their children.
pub const MAX_CATEGORY_LEVELS: u32 = 3;

/// Something the shop sells. Only active products are shown or can be ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: ProductId,
    pub category_id: CategoryId,
    pub name: String,
    pub description: Option<String>,
    pub price: Money,
    /// The gallery, in display order: 0 to [`crate::values::MAX_PRODUCT_IMAGES`] absolute
    /// http(s) URLs (see [`crate::values::product_images`]). The first is the main picture.
    pub images: Vec<String>,
    pub is_active: bool,
    pub sort_order: i32,
    /// Units left; `None` means unlimited (digital goods, made to order).
    pub stock: Option<u32>,
    /// The price in Telegram Stars (`PAYMENTS=stars`); `None`: it cannot be paid in Stars.
    pub price_stars: Option<u32>,
}

impl Product {
    /// The main picture: the gallery's first image (what the seed's `image_url` was).
    pub fn image_url(&self) -> Option<&str> {
        self.images.first().map(String::as_str)
    }

    /// Whether at least one unit can be ordered now.
    pub fn in_stock(&self) -> bool {
        self.stock.is_none_or(|units| units > 0)
    }
}

/// Where an order is in its life. A new order is [`OrderStatus::Pending`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Processing,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Processing,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
    ];

    /// The stable spelling used in JSON and in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Processing => "PROCESSING",
            OrderStatus::Shipped => "SHIPPED",
            OrderStatus::Delivered => "DELIVERED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown order status {0:?}")]
pub struct UnknownOrderStatus(pub String);

impl FromStr for OrderStatus {
    type Err = UnknownOrderStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownOrderStatus(s.to_owned()))
    }
}

/// A placed order with its lines. Line names and prices are snapshots taken when the
/// order was placed, so later catalog changes do not alter it.
///
/// Its `Debug` output redacts the customer's personal data (phone, address, comment).
#[derive(Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub user_id: UserId,
    pub status: OrderStatus,
    pub total_amount: Money,
    pub delivery_address: String,
    pub phone: String,
    pub comment: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub items: Vec<OrderItem>,
    /// Whether it is paid online, and what it owes.
    pub payment: crate::payments::OrderPayment,
}

impl fmt::Debug for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Order")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("status", &self.status)
            .field("total_amount", &self.total_amount)
            .field("delivery_address", &"<redacted>")
            .field("phone", &"<redacted>")
            .field("comment", &self.comment.as_ref().map(|_| "<redacted>"))
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("items", &self.items)
            .field("payment", &self.payment)
            .finish()
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItem {
    pub product_id: ProductId,
    pub product_name: String,
    pub quantity: u32,
    /// The unit price when the order was placed.
    pub price: Money,
}

impl OrderItem {
    /// `price × quantity`. Cannot overflow: the order's total was computed from the same
    /// values when it was placed.
    pub fn line_total(&self) -> Money {
        self.price.checked_mul(self.quantity).unwrap_or(self.price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_debug_output_holds_no_personal_data() {
        let order = Order {
            id: crate::values::OrderId(1),
            user_id: UserId(1),
            status: OrderStatus::Pending,
            total_amount: Money::ZERO,
            delivery_address: "ул. Секретная, 7".into(),
            phone: "+79995551234".into(),
            comment: Some("код 1234".into()),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            items: vec![],
            payment: Default::default(),
        };
        let printed = format!("{order:?}");
        for secret in ["Секретная", "9995551234", "код 1234"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    #[test]
    fn order_status_round_trips_through_its_spelling() {
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>().unwrap(), status);
        }
        assert!("pending".parse::<OrderStatus>().is_err());
    }
}
