//! Browsing the catalog: search, filters and sort, validated.

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::error::FieldError;
use crate::money::Money;
use crate::values::CategoryId;

/// How a product listing is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProductSort {
    /// `sort_order`, then id.
    #[default]
    Default,
    PriceAsc,
    PriceDesc,
    /// Newest first.
    Newest,
}

impl FromStr for ProductSort {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "default" => Ok(ProductSort::Default),
            "price_asc" => Ok(ProductSort::PriceAsc),
            "price_desc" => Ok(ProductSort::PriceDesc),
            "newest" => Ok(ProductSort::Newest),
            _ => Err(()),
        }
    }
}

/// Which active products a listing shows, and in what order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductFilter {
    pub category_id: Option<CategoryId>,
    /// With `category_id`: also the products of its subcategories (the whole subtree).
    pub include_descendants: bool,
    /// Already normalised with [`search_text`]: match it as a substring of a product's
    /// normalised name and description.
    pub search: Option<String>,
    pub min_price: Option<Money>,
    pub max_price: Option<Money>,
    /// Only products that can be ordered now (unlimited, or stock above zero).
    pub in_stock_only: bool,
    pub sort: ProductSort,
}

/// The raw query parameters of a product listing.
#[derive(Debug, Clone, Default)]
pub struct ProductQueryInput<'a> {
    pub category_id: Option<i64>,
    pub include_descendants: Option<&'a str>,
    pub q: Option<&'a str>,
    pub min_price: Option<&'a str>,
    pub max_price: Option<&'a str>,
    pub in_stock: Option<&'a str>,
    pub sort: Option<&'a str>,
}

/// The longest search text accepted, in characters.
pub const MAX_SEARCH_CHARS: usize = 100;

impl ProductFilter {
    /// Validates every parameter and names each one at fault.
    pub fn parse(input: ProductQueryInput<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let category_id = match input.category_id {
            Some(id) if id <= 0 => {
                errors.push(FieldError::new(
                    "category_id",
                    "invalid_id",
                    "category_id must be a positive integer",
                ));
                None
            }
            other => other.map(CategoryId),
        };
        // The limits hold for `q` as sent, which is what the published schema can say.
        let search = match input.q {
            Some(q) if crate::values::has_control_character(q) => {
                errors.push(FieldError::new(
                    "q",
                    "control_character",
                    "q must not contain control characters (other than newline and tab)",
                ));
                None
            }
            Some(q) if q.chars().count() > MAX_SEARCH_CHARS => {
                errors.push(FieldError::new(
                    "q",
                    "too_long",
                    format!("q must be at most {MAX_SEARCH_CHARS} characters"),
                ));
                None
            }
            Some(q) => Some(search_text(q)).filter(|q| !q.is_empty()),
            None => None,
        };
        let min_price = price_param("min_price", input.min_price, &mut errors);
        let max_price = price_param("max_price", input.max_price, &mut errors);
        let in_stock_only = bool_param("in_stock", input.in_stock, &mut errors);
        let include_descendants = bool_param(
            "include_descendants",
            input.include_descendants,
            &mut errors,
        );
        let sort = match input.sort.map(str::parse::<ProductSort>) {
            None => ProductSort::Default,
            Some(Ok(sort)) => sort,
            Some(Err(())) => {
                errors.push(FieldError::new(
                    "sort",
                    "invalid_sort",
                    "sort must be one of default, price_asc, price_desc, newest",
                ));
                ProductSort::Default
            }
        };
        if errors.is_empty() {
            Ok(Self {
                category_id,
                include_descendants,
                search,
                min_price,
                max_price,
                in_stock_only,
                sort,
            })
        } else {
            Err(errors)
        }
    }
}

/// A boolean query parameter: `true` or `false`; absent is `false`.
pub fn bool_param(name: &'static str, raw: Option<&str>, errors: &mut Vec<FieldError>) -> bool {
    match raw {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            errors.push(FieldError::new(
                name,
                "invalid_boolean",
                format!("{name} must be true or false"),
            ));
            false
        }
    }
}

/// A price bound: [`crate::values::patterns::PRICE`] exactly (no sign, no exponent, no
/// white space), so that the server accepts what the published schema describes and
/// nothing else. A minimum above the maximum is not an error: nothing matches.
pub(crate) fn price_param(
    name: &'static str,
    raw: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> Option<Money> {
    let raw = raw?;
    let parsed = is_price_text(raw)
        .then(|| Decimal::from_str(raw).ok())
        .flatten()
        .and_then(|d| Money::parse(d).ok());
    if parsed.is_none() {
        errors.push(FieldError::new(
            name,
            "invalid_price",
            format!(
                "{name} must be an amount in roubles with at most ten digits before the point \
                 and two after it, such as 100 or 99.90"
            ),
        ));
    }
    parsed
}

/// Whether `raw` is 1–10 ASCII digits, then optionally a point and 1–2 digits.
pub(crate) fn is_price_text(raw: &str) -> bool {
    let (whole, fraction) = match raw.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (raw, None),
    };
    let digits =
        |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole, 10) && fraction.is_none_or(|f| digits(f, 2))
}

/// The normalised form products are searched by: Unicode lower case, `ё` folded into `е`
/// (Russian writers use them interchangeably), runs of white space collapsed.
///
/// The application writes it next to each product, because SQLite's `LIKE` folds only
/// ASCII: comparing normalised text works the same on every database.
pub fn search_text(text: &str) -> String {
    let lowered = text.to_lowercase().replace('ё', "е");
    lowered.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text a product is found by: its name and description, normalised.
pub fn product_search_text(name: &str, description: Option<&str>) -> String {
    match description {
        Some(description) => search_text(&format!("{name} {description}")),
        None => search_text(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn search_text_folds_cyrillic_case_and_yo() {
        assert_eq!(search_text("Пицца  МАРГАРИТА"), "пицца маргарита");
        assert_eq!(search_text("Ёжик"), "ежик");
        assert!(
            product_search_text("Пицца Маргарита", Some("Томаты")).contains(&search_text("пицца"))
        );
    }

    #[test]
    fn filters_parse_and_combine() {
        let filter = ProductFilter::parse(ProductQueryInput {
            category_id: Some(2),
            include_descendants: Some("true"),
            q: Some("  ПИЦЦА "),
            min_price: Some("100"),
            max_price: Some("999.99"),
            in_stock: Some("true"),
            sort: Some("price_desc"),
        })
        .unwrap();
        assert_eq!(filter.category_id, Some(CategoryId(2)));
        assert!(filter.include_descendants);
        assert_eq!(filter.search.as_deref(), Some("пицца"));
        assert_eq!(filter.min_price.unwrap().minor_units(), 10_000);
        assert_eq!(filter.max_price.unwrap().minor_units(), 99_999);
        assert!(filter.in_stock_only);
        assert_eq!(filter.sort, ProductSort::PriceDesc);
    }

    #[test]
    fn a_search_with_a_control_character_is_refused_naming_q() {
        for q in ["\0", "пиц\0ца", "\u{1b}"] {
            let errors = ProductFilter::parse(ProductQueryInput {
                q: Some(q),
                ..ProductQueryInput::default()
            })
            .unwrap_err();
            assert_eq!(
                (errors[0].field.as_str(), errors[0].code),
                ("q", "control_character")
            );
        }
        // Newline and tab are white space in a search.
        let filter = ProductFilter::parse(ProductQueryInput {
            q: Some("пицца\tострая\n"),
            ..ProductQueryInput::default()
        })
        .unwrap();
        assert_eq!(filter.search.as_deref(), Some("пицца острая"));
    }

    #[test]
    fn invalid_parameters_are_named() {
        let errors = ProductFilter::parse(ProductQueryInput {
            category_id: Some(0),
            min_price: Some("-1"),
            max_price: Some("abc"),
            in_stock: Some("yes"),
            sort: Some("cheapest"),
            ..ProductQueryInput::default()
        })
        .unwrap_err();
        assert_eq!(
            fields(&errors),
            ["category_id", "min_price", "max_price", "in_stock", "sort"]
        );
    }

    #[test]
    fn a_minimum_above_the_maximum_is_an_empty_range_not_an_error() {
        // The schema cannot say "min_price <= max_price", so the server does not demand it.
        let filter = ProductFilter::parse(ProductQueryInput {
            min_price: Some("500"),
            max_price: Some("100"),
            ..ProductQueryInput::default()
        })
        .unwrap();
        assert!(filter.min_price > filter.max_price);
    }

    #[test]
    fn prices_are_exactly_the_published_pattern() {
        for ok in ["0", "100", "99.9", "99.90", "0000000001", "9999999999.99"] {
            assert!(is_price_text(ok), "{ok}");
            let filter = ProductFilter::parse(ProductQueryInput {
                min_price: Some(ok),
                ..ProductQueryInput::default()
            });
            assert!(filter.is_ok(), "{ok}");
        }
        for bad in [
            "",
            " 100",
            "100 ",
            "+1",
            "-1",
            "1e3",
            "1_000",
            ".5",
            "5.",
            "1.234",
            "١٢٣",
            "12345678901",
            "100\n",
            "1,5",
        ] {
            assert!(!is_price_text(bad), "{bad:?}");
            let errors = ProductFilter::parse(ProductQueryInput {
                min_price: Some(bad),
                ..ProductQueryInput::default()
            })
            .unwrap_err();
            assert_eq!(errors[0].code, "invalid_price", "{bad:?}");
        }
    }

    #[test]
    fn the_search_limit_counts_the_text_as_sent() {
        // 101 characters that normalise to fewer are still too long: the schema says 100.
        let q = format!("{}a", " ".repeat(100));
        let errors = ProductFilter::parse(ProductQueryInput {
            q: Some(&q),
            ..ProductQueryInput::default()
        })
        .unwrap_err();
        assert_eq!(errors[0].code, "too_long");
    }

    #[test]
    fn blank_search_means_no_search() {
        let filter = ProductFilter::parse(ProductQueryInput {
            q: Some("   "),
            ..ProductQueryInput::default()
        })
        .unwrap();
        assert_eq!(filter.search, None);
    }
}
