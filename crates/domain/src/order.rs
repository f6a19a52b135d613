//! Placing an order: validating what the customer sent and pricing it.

use std::collections::HashMap;

use time::OffsetDateTime;

use crate::entities::{OrderItem, Product};
use crate::error::{FieldError, RepositoryError};
use crate::money::Money;
use crate::values::{Comment, DeliveryAddress, Phone, ProductId, Quantity, UserId};

/// The most lines one order may have, as sent (before merging repeats).
pub const MAX_LINES: usize = 50;

/// An order as the customer sent it, before validation. The inbound adapter fills it from
/// its request body; [`OrderDraft::parse`] decides whether it is acceptable.
#[derive(Debug, Clone, Default)]
pub struct OrderInput {
    pub items: Vec<OrderLineInput>,
    pub delivery_address: String,
    pub phone: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct OrderLineInput {
    pub product_id: i64,
    pub quantity: i64,
}

/// A validated order, ready to be priced and stored.
///
/// Lines are merged by product (quantities added) and keep the order in which each product
/// first appeared.
#[derive(Debug, Clone)]
pub struct OrderDraft {
    lines: Vec<DraftLine>,
    delivery_address: DeliveryAddress,
    phone: Phone,
    comment: Option<Comment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DraftLine {
    pub product_id: ProductId,
    pub quantity: Quantity,
}

impl OrderDraft {
    /// Validates every field and reports every problem at once, each naming its field.
    pub fn parse(input: OrderInput) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();

        if input.items.is_empty() || input.items.len() > MAX_LINES {
            errors.push(FieldError::new(
                "items",
                "invalid_length",
                format!("items must hold 1 to {MAX_LINES} lines"),
            ));
        }

        let mut lines: Vec<DraftLine> = Vec::with_capacity(input.items.len());
        let mut position: HashMap<i64, usize> = HashMap::with_capacity(input.items.len());
        for (index, line) in input.items.iter().enumerate() {
            if line.product_id <= 0 {
                errors.push(FieldError::new(
                    format!("items[{index}].product_id"),
                    "invalid_id",
                    "product_id must be a positive integer",
                ));
            }
            let quantity = match Quantity::parse(line.quantity) {
                Ok(q) => q,
                Err(e) => {
                    errors.push(FieldError::new(
                        format!("items[{index}].quantity"),
                        "out_of_range",
                        e.to_string(),
                    ));
                    continue;
                }
            };
            match position.get(&line.product_id) {
                Some(&at) => {
                    let merged = i64::from(lines[at].quantity.get()) + i64::from(quantity.get());
                    match Quantity::parse(merged) {
                        Ok(q) => lines[at].quantity = q,
                        Err(_) => errors.push(FieldError::new(
                            format!("items[{index}].quantity"),
                            "out_of_range",
                            format!(
                                "the lines for product {} add up to more than {}",
                                line.product_id,
                                Quantity::MAX
                            ),
                        )),
                    }
                }
                None => {
                    position.insert(line.product_id, lines.len());
                    lines.push(DraftLine {
                        product_id: ProductId(line.product_id),
                        quantity,
                    });
                }
            }
        }

        let delivery_address = DeliveryAddress::parse(&input.delivery_address)
            .map_err(|e| errors.push(FieldError::new("delivery_address", e.code(), e.to_string())))
            .ok();
        let phone = Phone::parse(&input.phone)
            .map_err(|e| errors.push(FieldError::new("phone", "invalid", e.to_string())))
            .ok();
        let comment = match input.comment.as_deref().map(Comment::parse) {
            None => Some(None),
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                errors.push(FieldError::new("comment", e.code(), e.to_string()));
                None
            }
        };

        match (delivery_address, phone, comment) {
            (Some(delivery_address), Some(phone), Some(comment)) if errors.is_empty() => Ok(Self {
                lines,
                delivery_address,
                phone,
                comment,
            }),
            _ => Err(errors),
        }
    }

    pub fn lines(&self) -> &[DraftLine] {
        &self.lines
    }

    /// The distinct product ids, ascending: the order in which storage should touch rows.
    pub fn product_ids(&self) -> Vec<ProductId> {
        let mut ids: Vec<ProductId> = self.lines.iter().map(|l| l.product_id).collect();
        ids.sort_unstable();
        ids
    }

    pub fn delivery_address(&self) -> &DeliveryAddress {
        &self.delivery_address
    }

    pub fn phone(&self) -> &Phone {
        &self.phone
    }

    pub fn comment(&self) -> Option<&Comment> {
        self.comment.as_ref()
    }
}

/// What a customer's order must become in storage: who placed it, what, and when.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub user_id: UserId,
    pub draft: OrderDraft,
    pub placed_at: OffsetDateTime,
    /// The customer's idempotency key for this placement, already claimed: storage
    /// attaches the order to it in the order's own transaction.
    pub idempotency_key: Option<crate::idempotency::IdempotencyKey>,
    /// Whether the order is to be paid online, and how long it holds its stock unpaid.
    pub payment_terms: crate::payments::PaymentTerms,
}

/// A product the cart wants more of than is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockShortage {
    pub product_id: ProductId,
    pub requested: u32,
    pub available: u32,
}

/// An order's lines priced from the catalog, and their exact total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedOrder {
    pub items: Vec<OrderItem>,
    pub total_amount: Money,
    /// What it owes online under the placement's payment terms (`None`: paid on delivery).
    pub payment: Option<crate::payments::AmountDue>,
}

/// Why an order could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    /// Some products do not exist. Lists their ids, ascending.
    #[error("products not found: {0:?}")]
    ProductNotFound(Vec<ProductId>),
    /// Some products exist but are not on sale. Lists their ids, ascending.
    #[error("products unavailable: {0:?}")]
    ProductUnavailable(Vec<ProductId>),
    /// Not enough stock for some products (quantities summed per product). Lists each
    /// with what is available, by product id.
    #[error("insufficient stock: {0:?}")]
    InsufficientStock(Vec<StockShortage>),
    /// The total passed the largest amount the shop handles.
    #[error("order total is too large")]
    TotalTooLarge,
    /// Payments are in Telegram Stars and these products have no Stars price. Lists their
    /// ids, ascending.
    #[error("products without a price in Telegram Stars: {0:?}")]
    NoStarsPrice(Vec<ProductId>),
    /// The total cannot be paid in the shop's currency (a fraction of its smallest unit).
    #[error("the order's total cannot be paid in the shop's currency")]
    NotPayable,
    /// The idempotency key belongs to a request that is still running.
    #[error("the idempotency key is in use by a request still running")]
    IdempotencyKeyInUse,
    /// The idempotency key was used before for a different request.
    #[error("the idempotency key was used for a different request")]
    IdempotencyKeyReused,
    /// The caller's admission check refused a new placement (a rate limit); retry after
    /// this long.
    #[error("too many orders; retry in {0:?}")]
    NotAdmitted(std::time::Duration),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// Prices a draft against the catalog as it is now.
///
/// `catalog` must hold the current state of (at least) every product the draft names, read
/// inside the transaction that will store the order, so that the snapshot is the price the
/// customer is charged. Each line keeps the product's name and unit price; the total is
/// Σ price × quantity in exact decimal arithmetic.
///
/// # Errors
/// - [`PlaceOrderError::ProductNotFound`] if any product is missing from `catalog`;
/// - [`PlaceOrderError::ProductUnavailable`] if any is inactive (checked after existence);
/// - [`PlaceOrderError::InsufficientStock`] if any line wants more than its product's
///   limited stock (checked after availability);
/// - [`PlaceOrderError::TotalTooLarge`] if the sum passes [`Money`]'s range.
pub fn price_order(
    draft: &OrderDraft,
    catalog: &[Product],
    terms: &crate::payments::PaymentTerms,
) -> Result<PricedOrder, PlaceOrderError> {
    let by_id: HashMap<ProductId, &Product> = catalog.iter().map(|p| (p.id, p)).collect();

    let mut missing: Vec<ProductId> = draft
        .lines
        .iter()
        .filter(|l| !by_id.contains_key(&l.product_id))
        .map(|l| l.product_id)
        .collect();
    if !missing.is_empty() {
        missing.sort_unstable();
        return Err(PlaceOrderError::ProductNotFound(missing));
    }

    let mut inactive: Vec<ProductId> = draft
        .lines
        .iter()
        .filter(|l| by_id.get(&l.product_id).is_some_and(|p| !p.is_active))
        .map(|l| l.product_id)
        .collect();
    if !inactive.is_empty() {
        inactive.sort_unstable();
        return Err(PlaceOrderError::ProductUnavailable(inactive));
    }

    let mut shortages: Vec<StockShortage> = draft
        .lines
        .iter()
        .filter_map(|line| {
            let available = by_id.get(&line.product_id)?.stock?;
            (available < line.quantity.get()).then_some(StockShortage {
                product_id: line.product_id,
                requested: line.quantity.get(),
                available,
            })
        })
        .collect();
    if !shortages.is_empty() {
        shortages.sort_unstable_by_key(|s| s.product_id);
        return Err(PlaceOrderError::InsufficientStock(shortages));
    }

    let mut total = Money::ZERO;
    let mut total_stars: i64 = 0;
    let mut without_stars: Vec<ProductId> = Vec::new();
    let mut items = Vec::with_capacity(draft.lines.len());
    for line in &draft.lines {
        let Some(product) = by_id.get(&line.product_id) else {
            return Err(PlaceOrderError::ProductNotFound(vec![line.product_id]));
        };
        let line_total = product
            .price
            .checked_mul(line.quantity.get())
            .ok_or(PlaceOrderError::TotalTooLarge)?;
        total = total
            .checked_add(line_total)
            .ok_or(PlaceOrderError::TotalTooLarge)?;
        match product.price_stars {
            // At most 100 units × u32::MAX stars a line: no i64 overflow per line.
            Some(stars) => {
                total_stars = total_stars
                    .checked_add(i64::from(stars) * i64::from(line.quantity.get()))
                    .ok_or(PlaceOrderError::TotalTooLarge)?;
            }
            None => without_stars.push(product.id),
        }
        items.push(OrderItem {
            product_id: product.id,
            product_name: product.name.clone(),
            quantity: line.quantity.get(),
            price: product.price,
        });
    }
    let stars = if without_stars.is_empty() {
        Ok(total_stars)
    } else {
        without_stars.sort_unstable();
        without_stars.dedup();
        Err(without_stars)
    };
    let payment = crate::payments::amount_due(terms, total, stars).map_err(|err| match err {
        crate::payments::PaymentDueError::NoStarsPrice(ids) => PlaceOrderError::NoStarsPrice(ids),
        crate::payments::PaymentDueError::NotPayable => PlaceOrderError::NotPayable,
    })?;
    Ok(PricedOrder {
        items,
        total_amount: total,
        payment,
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use rust_decimal::Decimal;

    use super::*;

    /// Pricing with payments off, as every test here but the Stars ones wants.
    fn price_off(draft: &OrderDraft, catalog: &[Product]) -> Result<PricedOrder, PlaceOrderError> {
        price_order(draft, catalog, &crate::payments::PaymentTerms::default())
    }
    use crate::values::CategoryId;

    fn input(items: &[(i64, i64)]) -> OrderInput {
        OrderInput {
            items: items
                .iter()
                .map(|&(product_id, quantity)| OrderLineInput {
                    product_id,
                    quantity,
                })
                .collect(),
            delivery_address: "ул. Пушкина, д. 10".into(),
            phone: "+79001234567".into(),
            comment: Some("Домофон не работает".into()),
        }
    }

    fn product(id: i64, price: &str, active: bool) -> Product {
        Product {
            price_stars: None,
            id: ProductId(id),
            category_id: CategoryId(1),
            name: format!("Товар {id}"),
            description: None,
            price: Money::parse(Decimal::from_str(price).unwrap()).unwrap(),
            images: vec![],
            is_active: active,
            sort_order: 0,
            stock: None,
        }
    }

    fn stocked(id: i64, price: &str, stock: u32) -> Product {
        Product {
            stock: Some(stock),
            ..product(id, price, true)
        }
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn order_total_sums_price_times_quantity() {
        let draft = OrderDraft::parse(input(&[(1, 2), (2, 1)])).unwrap();
        let priced =
            price_off(&draft, &[product(1, "250", true), product(2, "300", true)]).unwrap();
        assert_eq!(priced.total_amount.to_string(), "800.00");
        assert_eq!(priced.items[0].product_name, "Товар 1");
        assert_eq!(priced.items[0].price.to_string(), "250.00");
        assert_eq!(priced.items[0].quantity, 2);
    }

    #[test]
    fn pricing_is_exact_with_kopecks() {
        let draft = OrderDraft::parse(input(&[(1, 3), (2, 7)])).unwrap();
        let priced = price_off(
            &draft,
            &[product(1, "0.10", true), product(2, "19.99", true)],
        )
        .unwrap();
        assert_eq!(priced.total_amount.to_string(), "140.23");
    }

    #[test]
    fn repeated_products_are_merged_and_quantities_added() {
        let draft = OrderDraft::parse(input(&[(5, 2), (3, 1), (5, 4)])).unwrap();
        let lines: Vec<(i64, u32)> = draft
            .lines()
            .iter()
            .map(|l| (l.product_id.0, l.quantity.get()))
            .collect();
        assert_eq!(lines, [(5, 6), (3, 1)]);
        assert_eq!(draft.product_ids(), [ProductId(3), ProductId(5)]);
    }

    #[test]
    fn merged_quantity_over_the_limit_is_rejected() {
        let errors = OrderDraft::parse(input(&[(5, 60), (5, 41)])).unwrap_err();
        assert_eq!(fields(&errors), ["items[1].quantity"]);
    }

    #[test]
    fn empty_and_oversized_carts_are_rejected() {
        assert_eq!(
            fields(&OrderDraft::parse(input(&[])).unwrap_err()),
            ["items"]
        );
        let many: Vec<(i64, i64)> = (1..=51).map(|i| (i, 1)).collect();
        assert_eq!(
            fields(&OrderDraft::parse(input(&many)).unwrap_err()),
            ["items"]
        );
        let fifty: Vec<(i64, i64)> = (1..=50).map(|i| (i, 1)).collect();
        assert!(OrderDraft::parse(input(&fifty)).is_ok());
    }

    #[test]
    fn every_invalid_field_is_named() {
        let mut bad = input(&[(0, 1), (2, 0), (3, 101)]);
        bad.delivery_address = "  ".into();
        bad.phone = "call me".into();
        bad.comment = Some("x".repeat(1001));
        let errors = OrderDraft::parse(bad).unwrap_err();
        assert_eq!(
            fields(&errors),
            [
                "items[0].product_id",
                "items[1].quantity",
                "items[2].quantity",
                "delivery_address",
                "phone",
                "comment"
            ]
        );
    }

    #[test]
    fn missing_products_are_listed_before_inactive_ones() {
        let draft = OrderDraft::parse(input(&[(9, 1), (2, 1), (7, 1)])).unwrap();
        match price_off(&draft, &[product(2, "1", false)]) {
            Err(PlaceOrderError::ProductNotFound(ids)) => {
                assert_eq!(ids, [ProductId(7), ProductId(9)])
            }
            other => panic!("expected ProductNotFound, got {other:?}"),
        }
        let draft = OrderDraft::parse(input(&[(3, 1), (2, 1), (1, 1)])).unwrap();
        let catalog = [
            product(1, "1", true),
            product(2, "1", false),
            product(3, "1", false),
        ];
        match price_off(&draft, &catalog) {
            Err(PlaceOrderError::ProductUnavailable(ids)) => {
                assert_eq!(ids, [ProductId(2), ProductId(3)])
            }
            other => panic!("expected ProductUnavailable, got {other:?}"),
        }
    }

    #[test]
    fn limited_stock_is_checked_against_summed_quantities() {
        let draft = OrderDraft::parse(input(&[(1, 2), (2, 1), (1, 2)])).unwrap();
        let catalog = [stocked(1, "10", 3), stocked(2, "10", 0)];
        match price_off(&draft, &catalog) {
            Err(PlaceOrderError::InsufficientStock(shortages)) => assert_eq!(
                shortages,
                [
                    StockShortage {
                        product_id: ProductId(1),
                        requested: 4,
                        available: 3
                    },
                    StockShortage {
                        product_id: ProductId(2),
                        requested: 1,
                        available: 0
                    },
                ]
            ),
            other => panic!("expected InsufficientStock, got {other:?}"),
        }
        let draft = OrderDraft::parse(input(&[(1, 3)])).unwrap();
        assert!(
            price_off(&draft, &[stocked(1, "10", 3)]).is_ok(),
            "exactly what is left is fine"
        );
        assert!(
            price_off(&draft, &[product(1, "10", true)]).is_ok(),
            "no stock count means unlimited"
        );
    }

    #[test]
    fn an_absurd_total_is_refused_rather_than_wrapped() {
        let draft = OrderDraft::parse(input(&[(1, 100), (2, 100)])).unwrap();
        let catalog = [
            product(1, "9999999999", true),
            product(2, "9999999999", true),
        ];
        assert!(matches!(
            price_off(&draft, &catalog),
            Err(PlaceOrderError::TotalTooLarge)
        ));
    }
}
