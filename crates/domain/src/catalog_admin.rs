//! Changing the catalog through the admin API: categories (create, update, delete) and
//! stock (set, adjust), validated here, applied by the storage with an audit row in the
//! same transaction.

use crate::admin::Admin;
use crate::catalog::ProductFilter;
use crate::entities::Product;
use crate::error::{FieldError, RepositoryError};
use crate::money::Money;
use crate::values::{CategoryId, has_control_character, product_images};

/// The longest category name, in characters.
pub const MAX_CATEGORY_NAME_CHARS: usize = 100;
/// The longest slug, in characters.
pub const MAX_SLUG_CHARS: usize = 64;
/// The largest stock a product may hold.
pub const MAX_STOCK: u32 = 1_000_000_000;
/// The longest reason of a stock adjustment, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// A category's fields as an admin sent them; `None`: not sent. `parent_id` is
/// `Some(None)` when sent as `null` (make it a root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CategoryInput<'a> {
    pub name: Option<&'a str>,
    pub slug: Option<&'a str>,
    pub sort_order: Option<i64>,
    pub parent_id: Option<Option<i64>>,
    pub is_active: Option<bool>,
}

/// A change to a category: the fields to set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CategoryPatch {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub sort_order: Option<i32>,
    pub parent_id: Option<Option<CategoryId>>,
    pub is_active: Option<bool>,
}

/// A new category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCategory {
    pub name: String,
    pub slug: String,
    pub sort_order: i32,
    pub parent_id: Option<CategoryId>,
    pub is_active: bool,
}

/// A name as sent (trimmed): 1 to `max` characters on one line, or `None` with the field
/// error recorded.
fn one_line_name(name: &str, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > max {
        errors.push(FieldError::new(
            "name",
            "invalid_length",
            format!("name must be 1 to {max} characters"),
        ));
        None
    } else if has_control_character(name) || name.contains(['\n', '\t']) {
        errors.push(FieldError::new(
            "name",
            "control_character",
            "name must not contain control characters",
        ));
        None
    } else {
        Some(name.to_owned())
    }
}

impl CategoryPatch {
    /// Validates the fields sent, naming each bad one.
    pub fn parse(input: &CategoryInput<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = input
            .name
            .and_then(|name| one_line_name(name, MAX_CATEGORY_NAME_CHARS, &mut errors));
        let slug = input.slug.and_then(|slug| {
            if is_slug(slug) {
                Some(slug.to_owned())
            } else {
                errors.push(FieldError::new(
                    "slug",
                    "invalid_slug",
                    format!(
                        "slug must be 1 to {MAX_SLUG_CHARS} lower-case Latin letters, digits and \
                         single hyphens between them (e.g. spicy-pizza)"
                    ),
                ));
                None
            }
        });
        let sort_order = input
            .sort_order
            .and_then(|order| match i32::try_from(order) {
                Ok(order) if order >= 0 => Some(order),
                _ => {
                    errors.push(FieldError::new(
                        "sort_order",
                        "out_of_range",
                        "sort_order must be between 0 and 2147483647",
                    ));
                    None
                }
            });
        let parent_id = match input.parent_id {
            None => None,
            Some(None) => Some(None),
            Some(Some(id)) if id > 0 => Some(Some(CategoryId(id))),
            Some(Some(_)) => {
                errors.push(FieldError::new(
                    "parent_id",
                    "invalid_id",
                    "parent_id must be a category id or null",
                ));
                None
            }
        };
        if errors.is_empty() {
            Ok(Self {
                name,
                slug,
                sort_order,
                parent_id,
                is_active: input.is_active,
            })
        } else {
            Err(errors)
        }
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The patch, refused when it would put category `id` under itself (deeper cycles the
    /// database's tree refuses).
    pub fn for_category(self, id: CategoryId) -> Result<Self, Vec<FieldError>> {
        if self.parent_id == Some(Some(id)) {
            return Err(vec![FieldError::new(
                "parent_id",
                "invalid_parent",
                "a category cannot be under itself",
            )]);
        }
        Ok(self)
    }
}

impl NewCategory {
    /// A new category from what an admin sent: `name` and `slug` required; `sort_order` 0,
    /// no parent and active unless sent.
    pub fn parse(input: &CategoryInput<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if input.name.is_none() {
            errors.push(FieldError::new("name", "required", "name is required"));
        }
        if input.slug.is_none() {
            errors.push(FieldError::new("slug", "required", "slug is required"));
        }
        let patch = match CategoryPatch::parse(input) {
            Ok(patch) => patch,
            Err(mut more) => {
                errors.append(&mut more);
                return Err(errors);
            }
        };
        match (patch.name, patch.slug) {
            (Some(name), Some(slug)) if errors.is_empty() => Ok(Self {
                name,
                slug,
                sort_order: patch.sort_order.unwrap_or(0),
                parent_id: patch.parent_id.flatten(),
                is_active: patch.is_active.unwrap_or(true),
            }),
            _ => Err(errors),
        }
    }
}

/// Whether `slug` is 1–64 of `a-z`, `0-9` and single hyphens between them.
pub fn is_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= MAX_SLUG_CHARS
        && slug.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// The longest product name, in characters.
pub const MAX_PRODUCT_NAME_CHARS: usize = 200;
/// The longest product description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// The longest SKU, in characters.
pub const MAX_SKU_CHARS: usize = 64;
/// The highest price in Telegram Stars a product may have.
pub const MAX_PRICE_STARS: u32 = 1_000_000;

/// A product's fields as an admin sent them; `None`: not sent; `Some(None)`: sent as
/// `null` (no description, no SKU, unlimited stock).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductInput<'a> {
    pub category_id: Option<i64>,
    pub name: Option<&'a str>,
    pub description: Option<Option<&'a str>>,
    pub price: Option<&'a str>,
    pub images: Option<Vec<String>>,
    pub is_active: Option<bool>,
    pub sort_order: Option<i64>,
    pub sku: Option<Option<&'a str>>,
    pub stock: Option<Option<i64>>,
    /// The price in Telegram Stars: `Some(None)` removes it.
    pub price_stars: Option<Option<i64>>,
}

/// A change to a product: the fields to set. Stock changes go through [`StockChange`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductPatch {
    pub category_id: Option<CategoryId>,
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub price: Option<Money>,
    pub images: Option<Vec<String>>,
    pub is_active: Option<bool>,
    pub sort_order: Option<i32>,
    pub sku: Option<Option<String>>,
    pub price_stars: Option<Option<u32>>,
}

/// A new product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub category_id: CategoryId,
    pub name: String,
    pub description: Option<String>,
    pub price: Money,
    pub images: Vec<String>,
    pub is_active: bool,
    pub sort_order: i32,
    pub sku: Option<String>,
    /// `None`: unlimited.
    pub stock: Option<u32>,
    /// `None`: it cannot be paid in Telegram Stars.
    pub price_stars: Option<u32>,
}

/// A product as the admin sees it: the product, inactive or not, and its SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminProduct {
    pub product: Product,
    pub sku: Option<String>,
}

/// Which products the admin list shows: the public filters, and `is_active` (`None`:
/// both) and `sku`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminProductFilter {
    pub public: ProductFilter,
    pub is_active: Option<bool>,
    pub sku: Option<String>,
}

/// Whether `sku` is 1–64 visible ASCII characters.
pub fn is_sku(sku: &str) -> bool {
    !sku.is_empty() && sku.len() <= MAX_SKU_CHARS && sku.bytes().all(|b| b.is_ascii_graphic())
}

impl ProductPatch {
    /// Validates the fields sent, naming each bad one. `stock` is not a patch field: it is
    /// refused here (set it with [`StockChange`]).
    pub fn parse(input: &ProductInput<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let category_id = input.category_id.and_then(|id| {
            if id > 0 {
                Some(CategoryId(id))
            } else {
                errors.push(FieldError::new(
                    "category_id",
                    "invalid_id",
                    "category_id must be a category id",
                ));
                None
            }
        });
        let name = input
            .name
            .and_then(|name| one_line_name(name, MAX_PRODUCT_NAME_CHARS, &mut errors));
        let description =
            input
                .description
                .and_then(|description| match description.map(str::trim) {
                    None | Some("") => Some(None),
                    Some(text) if text.chars().count() > MAX_DESCRIPTION_CHARS => {
                        errors.push(FieldError::new(
                            "description",
                            "too_long",
                            format!(
                                "description must be at most {MAX_DESCRIPTION_CHARS} characters"
                            ),
                        ));
                        None
                    }
                    Some(text) if has_control_character(text) => {
                        errors.push(FieldError::new(
                    "description",
                    "control_character",
                    "description must not contain control characters (other than newline and tab)",
                ));
                        None
                    }
                    Some(text) => Some(Some(text.to_owned())),
                });
        let price = input.price.and_then(|raw| {
            let price = crate::catalog::price_param("price", Some(raw), &mut errors)?;
            if price == Money::ZERO {
                errors.push(FieldError::new(
                    "price",
                    "invalid_price",
                    "price must be above zero",
                ));
                None
            } else {
                Some(price)
            }
        });
        let images = input
            .images
            .clone()
            .and_then(|images| match product_images(images) {
                Ok(images) => Some(images),
                Err(error) => {
                    errors.push(FieldError::new(
                        "images",
                        "invalid_images",
                        error.to_string(),
                    ));
                    None
                }
            });
        let sort_order = input
            .sort_order
            .and_then(|order| match i32::try_from(order) {
                Ok(order) if order >= 0 => Some(order),
                _ => {
                    errors.push(FieldError::new(
                        "sort_order",
                        "out_of_range",
                        "sort_order must be between 0 and 2147483647",
                    ));
                    None
                }
            });
        let sku = input.sku.and_then(|sku| match sku.map(str::trim) {
            None => Some(None),
            Some(sku) if is_sku(sku) => Some(Some(sku.to_owned())),
            Some(_) => {
                errors.push(FieldError::new(
                    "sku",
                    "invalid_sku",
                    format!("sku must be 1 to {MAX_SKU_CHARS} visible ASCII characters, or null"),
                ));
                None
            }
        });
        let price_stars = input.price_stars.and_then(|stars| match stars {
            None => Some(None),
            Some(stars) => match u32::try_from(stars) {
                Ok(stars) if (1..=MAX_PRICE_STARS).contains(&stars) => Some(Some(stars)),
                _ => {
                    errors.push(FieldError::new(
                        "price_stars",
                        "out_of_range",
                        format!(
                            "price_stars must be a whole number of stars from 1 to \
                             {MAX_PRICE_STARS}, or null"
                        ),
                    ));
                    None
                }
            },
        });
        if errors.is_empty() {
            Ok(Self {
                category_id,
                name,
                description,
                price,
                images,
                is_active: input.is_active,
                sort_order,
                sku,
                price_stars,
            })
        } else {
            Err(errors)
        }
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl NewProduct {
    /// A new product: `category_id`, `name` and `price` required; no description, no
    /// images, active, sort order 0, no SKU and unlimited stock unless sent.
    pub fn parse(input: &ProductInput<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        for (field, sent) in [
            ("category_id", input.category_id.is_some()),
            ("name", input.name.is_some()),
            ("price", input.price.is_some()),
        ] {
            if !sent {
                errors.push(FieldError::new(
                    field,
                    "required",
                    format!("{field} is required"),
                ));
            }
        }
        let stock = match input.stock.flatten() {
            None => None,
            Some(units) => match StockChange::set(Some(units)) {
                Ok(StockChange::Set(stock)) => stock,
                Ok(StockChange::Adjust { .. }) => None,
                Err(mut more) => {
                    errors.append(&mut more);
                    None
                }
            },
        };
        let patch = match ProductPatch::parse(input) {
            Ok(patch) => patch,
            Err(mut more) => {
                errors.append(&mut more);
                return Err(errors);
            }
        };
        match (patch.category_id, patch.name, patch.price) {
            (Some(category_id), Some(name), Some(price)) if errors.is_empty() => Ok(Self {
                category_id,
                name,
                description: patch.description.flatten(),
                price,
                images: patch.images.unwrap_or_default(),
                is_active: patch.is_active.unwrap_or(true),
                sort_order: patch.sort_order.unwrap_or(0),
                sku: patch.sku.flatten(),
                stock,
                price_stars: patch.price_stars.flatten(),
            }),
            _ => Err(errors),
        }
    }
}

/// What a catalog change made stale in the catalog's cached answers, for every instance
/// that keeps some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogChange {
    /// Anything may have changed (a category, a new product, an unknown change).
    Everything,
    /// These products changed (their stock, say), nothing else.
    Products(Vec<crate::values::ProductId>),
}

/// Why a catalog change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogChangeError {
    #[error("no such category or product")]
    NotFound,
    /// Another category has this slug (422 naming `slug`).
    #[error("another category has this slug")]
    SlugTaken,
    /// Another product has this SKU (422 naming `sku`).
    #[error("another product has this SKU")]
    SkuTaken,
    /// The product's category does not exist (422 naming `category_id`).
    #[error("the category does not exist")]
    CategoryNotFound,
    /// A product that appears in orders cannot be deleted (409): deactivate it instead.
    #[error("the product appears in {orders} orders")]
    ProductInOrders { orders: u64 },
    /// The parent does not exist (422 naming `parent_id`).
    #[error("the parent category does not exist")]
    ParentNotFound,
    /// The tree refused the parent: a cycle, or more than three levels (422 naming
    /// `parent_id`, with the reason).
    #[error("{0}")]
    InvalidParent(String),
    /// A category still holding products or subcategories (409): deactivate it instead.
    #[error("the category still has {products} products and {children} subcategories")]
    CategoryNotEmpty { products: u64, children: u64 },
    /// An adjustment would take the stock below zero, or adjusts unlimited stock (409).
    #[error("{0}")]
    StockConflict(String),
    /// An import refused as a whole: every problem found (422).
    #[error("the import has {} problems", .0.len())]
    Import(Vec<crate::catalog_io::ImportProblem>),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// A change of a product's stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StockChange {
    /// Set it: a number of units, or `None` for unlimited.
    Set(Option<u32>),
    /// Add `delta` units (negative: remove), for `reason`; refused on unlimited stock and
    /// below zero.
    Adjust { delta: i64, reason: String },
}

impl StockChange {
    /// `PUT …/stock` with `{"stock": n | null}`.
    pub fn set(stock: Option<i64>) -> Result<Self, Vec<FieldError>> {
        match stock {
            None => Ok(StockChange::Set(None)),
            Some(units) => match u32::try_from(units) {
                Ok(units) if units <= MAX_STOCK => Ok(StockChange::Set(Some(units))),
                _ => Err(vec![FieldError::new(
                    "stock",
                    "out_of_range",
                    format!("stock must be between 0 and {MAX_STOCK}, or null for unlimited"),
                )]),
            },
        }
    }

    /// `POST …/stock/adjustments` with `{"delta": ±n, "reason": "…"}`.
    pub fn adjust(delta: i64, reason: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if delta == 0 || delta.unsigned_abs() > u64::from(MAX_STOCK) {
            errors.push(FieldError::new(
                "delta",
                "out_of_range",
                format!(
                    "delta must be a non-zero number of units between -{MAX_STOCK} and {MAX_STOCK}"
                ),
            ));
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            errors.push(FieldError::new(
                "reason",
                "invalid_length",
                format!("reason must be 1 to {MAX_REASON_CHARS} characters"),
            ));
        } else if has_control_character(reason) {
            errors.push(FieldError::new(
                "reason",
                "control_character",
                "reason must not contain control characters (other than newline and tab)",
            ));
        }
        if errors.is_empty() {
            Ok(StockChange::Adjust {
                delta,
                reason: reason.to_owned(),
            })
        } else {
            Err(errors)
        }
    }
}

/// Who made a catalog change and when, for its audit row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeContext {
    pub admin: Admin,
    pub at: time::OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lower_case_words_joined_by_single_hyphens() {
        for good in ["pizza", "spicy-pizza", "a1-b2-3", &"a".repeat(64)] {
            assert!(is_slug(good), "{good}");
        }
        for bad in [
            "",
            "Pizza",
            "spicy--pizza",
            "-pizza",
            "pizza-",
            "пицца",
            "a b",
            &"a".repeat(65),
        ] {
            assert!(!is_slug(bad), "{bad}");
        }
    }

    #[test]
    fn a_new_category_needs_a_name_and_a_slug_and_names_each_bad_field() {
        let errors = NewCategory::parse(&CategoryInput::default()).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "slug"]);
        let errors = NewCategory::parse(&CategoryInput {
            name: Some(" "),
            slug: Some("Bad Slug"),
            sort_order: Some(-1),
            parent_id: Some(Some(0)),
            is_active: None,
        })
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "slug", "sort_order", "parent_id"]);
        let new = NewCategory::parse(&CategoryInput {
            name: Some("  Острая  "),
            slug: Some("spicy"),
            parent_id: Some(Some(3)),
            ..CategoryInput::default()
        })
        .unwrap();
        assert_eq!(new.name, "Острая");
        assert_eq!(new.parent_id, Some(CategoryId(3)));
        assert!(new.is_active);
        assert_eq!(new.sort_order, 0);
    }

    #[test]
    fn a_patch_sets_only_what_was_sent_and_null_makes_a_root() {
        let patch = CategoryPatch::parse(&CategoryInput {
            parent_id: Some(None),
            is_active: Some(false),
            ..CategoryInput::default()
        })
        .unwrap();
        assert_eq!(patch.parent_id, Some(None));
        assert_eq!(patch.is_active, Some(false));
        assert!(patch.name.is_none());
        assert!(
            CategoryPatch::parse(&CategoryInput::default())
                .unwrap()
                .is_empty()
        );
        let own = CategoryPatch {
            parent_id: Some(Some(CategoryId(4))),
            ..CategoryPatch::default()
        };
        assert!(own.clone().for_category(CategoryId(5)).is_ok());
        assert_eq!(
            own.for_category(CategoryId(4)).unwrap_err()[0].field,
            "parent_id"
        );
    }

    #[test]
    fn stock_is_set_within_range_and_adjusted_by_a_reasoned_delta() {
        assert_eq!(StockChange::set(None).unwrap(), StockChange::Set(None));
        assert_eq!(
            StockChange::set(Some(5)).unwrap(),
            StockChange::Set(Some(5))
        );
        assert!(StockChange::set(Some(-1)).is_err());
        assert!(StockChange::set(Some(i64::from(MAX_STOCK) + 1)).is_err());
        assert!(StockChange::adjust(-3, " поломка ").is_ok());
        let fields =
            |errors: Vec<FieldError>| errors.into_iter().map(|e| e.field).collect::<Vec<_>>();
        assert_eq!(
            fields(StockChange::adjust(0, "").unwrap_err()),
            ["delta", "reason"]
        );
        assert_eq!(
            fields(StockChange::adjust(1, "a\u{0}").unwrap_err()),
            ["reason"]
        );
    }
}
