//! Value types with invariants: parse, don't validate.

use std::fmt;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// The shop's own id of a user (not the Telegram id).
    UserId
);
id_type!(
    /// A category's id.
    CategoryId
);
id_type!(
    /// A product's id.
    ProductId
);
id_type!(
    /// An order's id; the manager sees it as "#123".
    OrderId
);

/// A Telegram user id: a positive integer that may exceed 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TelegramId(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("telegram id must be a positive integer")]
pub struct InvalidTelegramId;

impl TelegramId {
    pub fn parse(value: i64) -> Result<Self, InvalidTelegramId> {
        if value <= 0 {
            return Err(InvalidTelegramId);
        }
        Ok(Self(value))
    }

    pub fn get(&self) -> i64 {
        self.0
    }
}

impl fmt::Display for TelegramId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How many units of one product an order line holds: 1 to [`Quantity::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quantity must be between 1 and {max}", max = Quantity::MAX)]
pub struct InvalidQuantity;

impl Quantity {
    pub const MAX: u32 = 100;

    pub fn parse(value: i64) -> Result<Self, InvalidQuantity> {
        match u32::try_from(value) {
            Ok(v) if (1..=Self::MAX).contains(&v) => Ok(Self(v)),
            _ => Err(InvalidQuantity),
        }
    }

    pub fn get(&self) -> u32 {
        self.0
    }
}

/// A plausible phone number: an optional leading `+`, 7 to 15 digits, and spaces, dashes
/// and parentheses as the customer likes to type them. Kept as typed, without the spaces
/// around it. The exact rule is [`patterns::PHONE`].
#[derive(Clone, PartialEq, Eq)]
pub struct Phone(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "phone must be 7 to 15 digits, optionally starting with + and grouped by spaces, dashes or parentheses"
)]
pub struct InvalidPhone;

impl Phone {
    pub fn parse(value: &str) -> Result<Self, InvalidPhone> {
        // Spaces may lead (before the `+`) and trail; other white space is refused, as the
        // published pattern says.
        let trimmed = value.trim_matches(' ');
        let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
        let mut digits = 0usize;
        for c in body.chars() {
            match c {
                '0'..='9' => digits += 1,
                ' ' | '-' | '(' | ')' => {}
                _ => return Err(InvalidPhone),
            }
        }
        if !(7..=15).contains(&digits) {
            return Err(InvalidPhone);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Personal data: never printed in full, even by `{:?}`.
impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phone(<redacted>)")
    }
}

/// Whether `text` holds a control character other than newline and tab (NUL, escape,
/// carriage return, …). No text a client sends may: PostgreSQL refuses NUL outright, and
/// the others only corrupt what the manager and the customer read.
///
/// "Control" is Unicode's general category Cc: U+0000–U+001F and U+007F–U+009F.
pub fn has_control_character(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
}

/// Whether `text` holds nothing but white space (Unicode's `White_Space`, what
/// [`str::trim`] removes).
pub fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

/// At most this many images per product.
pub const MAX_PRODUCT_IMAGES: usize = 10;
/// At most this many characters per image URL.
pub const MAX_IMAGE_URL_CHARS: usize = 2048;

/// Why a product's gallery was refused; the index names the image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidProductImages {
    #[error("a product has at most {max} images", max = MAX_PRODUCT_IMAGES)]
    TooMany,
    #[error("images[{0}] must be an absolute http or https URL")]
    NotAbsoluteHttp(usize),
    #[error("images[{0}] must be at most {max} characters", max = MAX_IMAGE_URL_CHARS)]
    TooLong(usize),
}

/// A product's gallery: 0 to [`MAX_PRODUCT_IMAGES`] URLs, each `http://` or `https://`
/// (any case) followed by a host, at most [`MAX_IMAGE_URL_CHARS`] characters, with no
/// white space or control characters (a browser would have to guess where it ends).
pub fn product_images(urls: Vec<String>) -> Result<Vec<String>, InvalidProductImages> {
    if urls.len() > MAX_PRODUCT_IMAGES {
        return Err(InvalidProductImages::TooMany);
    }
    for (index, url) in urls.iter().enumerate() {
        if url.chars().count() > MAX_IMAGE_URL_CHARS {
            return Err(InvalidProductImages::TooLong(index));
        }
        if !is_absolute_http_url(url) {
            return Err(InvalidProductImages::NotAbsoluteHttp(index));
        }
    }
    Ok(urls)
}

/// Whether `url` is `http://` or `https://` (any case), then a host, with no white space
/// or control characters: a URL a browser can open as is. The one rule for every URL the
/// shop publishes (product images, `PUBLIC_BASE_URL`, `MINI_APP_URL`).
pub fn is_absolute_http_url(url: &str) -> bool {
    let rest = if has_scheme(url, "https://") {
        &url[8..]
    } else if has_scheme(url, "http://") {
        &url[7..]
    } else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let clean = !url.chars().any(|c| c.is_whitespace() || c.is_control());
    !host.is_empty() && !host.starts_with('@') && !host.starts_with(':') && clean
}

/// As [`is_absolute_http_url`], and `https://` only.
pub fn is_absolute_https_url(url: &str) -> bool {
    has_scheme(url, "https://") && is_absolute_http_url(url)
}

/// Whether `url` starts with `scheme`, compared without regard to ASCII case.
fn has_scheme(url: &str, scheme: &str) -> bool {
    url.get(..scheme.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
}

/// The rules of the text values a client sends, as ECMA-262 regular expressions for the
/// OpenAPI document, so that a client generated from it never sends what the server
/// refuses, and the server refuses everything it does not describe.
///
/// They are written in the common subset of ECMA-262, Python's `re` and Rust's `regex`
/// (`[0-9]` rather than `\d`, white space spelled out rather than `\s`, `\uXXXX` escapes),
/// with one difference left: Python's `$` also matches before a final newline, so a
/// Python validator accepts `"100\n"` where ECMA-262, Rust and the server do not. A
/// property test checks each pattern against the parser that enforces it.
pub mod patterns {
    /// No control character other than newline and tab (see [`super::has_control_character`]).
    pub const NO_CONTROL: &str = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$";

    /// [`NO_CONTROL`], and at least one character that is not white space.
    pub const NOT_BLANK_NO_CONTROL: &str = concat!(
        r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*",
        r"[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
        r"[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$",
    );

    /// [`super::Phone`]: spaces around, an optional `+`, then 7 to 15 digits among spaces,
    /// dashes and parentheses.
    pub const PHONE: &str = r"^ *\+?[ ()\-]*(?:[0-9][ ()\-]*){7,15}$";

    /// An amount of money in a query: whole roubles with up to two decimal places, at most
    /// ten digits before the point.
    pub const PRICE: &str = r"^[0-9]{1,10}(?:\.[0-9]{1,2})?$";

    /// [`crate::idempotency::IdempotencyKey`]: 1 to 255 visible ASCII characters.
    pub const IDEMPOTENCY_KEY: &str = r"^[!-~]{1,255}$";
}

/// Where the order goes: at most 500 characters, not blank, no control characters; kept
/// without the white space around it.
#[derive(Clone, PartialEq, Eq)]
pub struct DeliveryAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDeliveryAddress {
    #[error("delivery address must not be empty")]
    Empty,
    #[error("delivery address must be at most {max} characters", max = DeliveryAddress::MAX_CHARS)]
    TooLong,
    #[error("delivery address must not contain control characters (other than newline and tab)")]
    ControlCharacter,
}

impl DeliveryAddress {
    pub const MAX_CHARS: usize = 500;

    /// The limits hold for the text as sent (white space around it included), which is
    /// what the published schema can say.
    pub fn parse(value: &str) -> Result<Self, InvalidDeliveryAddress> {
        if value.chars().count() > Self::MAX_CHARS {
            return Err(InvalidDeliveryAddress::TooLong);
        }
        if has_control_character(value) {
            return Err(InvalidDeliveryAddress::ControlCharacter);
        }
        if is_blank(value) {
            return Err(InvalidDeliveryAddress::Empty);
        }
        Ok(Self(value.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Personal data: never printed in full, even by `{:?}`.
impl fmt::Debug for DeliveryAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeliveryAddress(<redacted>)")
    }
}

/// The customer's free-text note: at most 1000 characters. Blank means no comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidComment {
    #[error("comment must be at most {max} characters", max = Comment::MAX_CHARS)]
    TooLong,
    #[error("comment must not contain control characters (other than newline and tab)")]
    ControlCharacter,
}

impl InvalidComment {
    /// The stable code of the field error.
    pub fn code(&self) -> &'static str {
        match self {
            InvalidComment::TooLong => "too_long",
            InvalidComment::ControlCharacter => "control_character",
        }
    }
}

impl InvalidDeliveryAddress {
    /// The stable code of the field error.
    pub fn code(&self) -> &'static str {
        match self {
            InvalidDeliveryAddress::Empty | InvalidDeliveryAddress::TooLong => "invalid",
            InvalidDeliveryAddress::ControlCharacter => "control_character",
        }
    }
}

impl Comment {
    pub const MAX_CHARS: usize = 1000;

    /// `Ok(None)` for a blank comment. The limits hold for the text as sent.
    pub fn parse(value: &str) -> Result<Option<Self>, InvalidComment> {
        if value.chars().count() > Self::MAX_CHARS {
            return Err(InvalidComment::TooLong);
        }
        if has_control_character(value) {
            return Err(InvalidComment::ControlCharacter);
        }
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self(trimmed.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_accepts_one_to_one_hundred() {
        assert!(Quantity::parse(0).is_err());
        assert_eq!(Quantity::parse(1).unwrap().get(), 1);
        assert_eq!(Quantity::parse(100).unwrap().get(), 100);
        assert!(Quantity::parse(101).is_err());
        assert!(Quantity::parse(-5).is_err());
        assert!(Quantity::parse(i64::MAX).is_err());
    }

    #[test]
    fn phone_accepts_common_spellings() {
        for ok in [
            "+79001234567",
            "8 (900) 123-45-67",
            "1234567",
            " +7 900 123 45 67 ",
        ] {
            assert!(Phone::parse(ok).is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn phone_rejects_implausible_numbers() {
        for bad in [
            "",
            "123456",
            "1234567890123456",
            "+7900abc4567",
            "7+9001234567",
            "++79001234567",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn phone_and_address_are_redacted_in_debug_output() {
        let phone = Phone::parse("+79001234567").unwrap();
        let address = DeliveryAddress::parse("ул. Пушкина, д. 10").unwrap();
        assert!(!format!("{phone:?}").contains("900"));
        assert!(!format!("{address:?}").contains("Пушкина"));
    }

    #[test]
    fn address_is_trimmed_and_bounded_in_characters_not_bytes() {
        assert_eq!(
            DeliveryAddress::parse("  ул. Ленина 1 ").unwrap().as_str(),
            "ул. Ленина 1"
        );
        assert_eq!(
            DeliveryAddress::parse("   "),
            Err(InvalidDeliveryAddress::Empty)
        );
        // 500 Cyrillic letters are 1000 bytes but only 500 characters.
        assert!(DeliveryAddress::parse(&"ж".repeat(500)).is_ok());
        assert_eq!(
            DeliveryAddress::parse(&"ж".repeat(501)),
            Err(InvalidDeliveryAddress::TooLong)
        );
    }

    #[test]
    fn control_characters_other_than_newline_and_tab_are_refused() {
        for bad in [
            "ул.\0Ленина",
            "ул. Ленина\u{1b}[31m",
            "д. 1\r\nкв. 2",
            "\u{7f}x",
        ] {
            assert_eq!(
                DeliveryAddress::parse(bad),
                Err(InvalidDeliveryAddress::ControlCharacter),
                "{bad:?}"
            );
            assert_eq!(
                Comment::parse(bad),
                Err(InvalidComment::ControlCharacter),
                "{bad:?}"
            );
        }
        assert!(DeliveryAddress::parse("д. 1\nкв. 2\tподъезд 3").is_ok());
        assert!(Comment::parse("Домофон\nне работает").unwrap().is_some());
        assert!(Phone::parse("+7900\u{0}1234567").is_err());
    }

    #[test]
    fn blank_comment_is_no_comment() {
        assert_eq!(Comment::parse("  ").unwrap(), None);
        assert_eq!(
            Comment::parse("Домофон не работает")
                .unwrap()
                .unwrap()
                .as_str(),
            "Домофон не работает"
        );
        assert!(Comment::parse(&"x".repeat(1001)).is_err());
        assert!(Comment::parse(&"x".repeat(1000)).is_ok());
    }

    #[test]
    fn https_only_where_asked() {
        assert!(is_absolute_https_url("HTTPS://shop.example.com/app"));
        assert!(!is_absolute_https_url("http://shop.example.com/app"));
        assert!(is_absolute_http_url("http://shop.example.com/app"));
        for bad in ["https://", "https:// x", "шоп://x", "https:", ""] {
            assert!(!is_absolute_http_url(bad), "{bad}");
        }
    }

    #[test]
    fn product_images_are_zero_to_ten_absolute_http_urls() {
        let url = |s: &str| s.to_owned();
        assert_eq!(product_images(vec![]), Ok(vec![]));
        let ok = vec![
            url("https://cdn.example.com/p/1.jpg"),
            url("HTTP://127.0.0.1:8000/static/demo/pizza.svg"),
            url("https://example.com"),
        ];
        assert_eq!(product_images(ok.clone()), Ok(ok));
        assert_eq!(
            product_images(vec![url("https://e.com/x.jpg"); 11]),
            Err(InvalidProductImages::TooMany)
        );
        assert!(product_images(vec![url("https://e.com/x.jpg"); 10]).is_ok());
        for (bad, index) in [
            ("/static/x.svg", 0),
            ("ftp://e.com/x", 0),
            ("javascript:alert(1)", 0),
            ("https://", 0),
            ("https:///x.svg", 0),
            ("https://e.com/a b.jpg", 0),
            ("https://e.com/\u{0}", 0),
            ("data:image/png;base64,AAAA", 0),
        ] {
            assert_eq!(
                product_images(vec![url(bad)]),
                Err(InvalidProductImages::NotAbsoluteHttp(index)),
                "{bad}"
            );
        }
        let long = format!("https://e.com/{}", "a".repeat(MAX_IMAGE_URL_CHARS));
        assert_eq!(
            product_images(vec![url("https://e.com/1.jpg"), long]),
            Err(InvalidProductImages::TooLong(1))
        );
    }

    #[test]
    fn telegram_id_must_be_positive() {
        assert!(TelegramId::parse(0).is_err());
        assert!(TelegramId::parse(-1).is_err());
        assert_eq!(
            TelegramId::parse(7_000_000_000).unwrap().get(),
            7_000_000_000
        );
    }
}

/// The published patterns and the parsers agree on every string: what one accepts the
/// other accepts. Strings are drawn mostly from the characters the rules are about.
#[cfg(test)]
mod pattern_agreement {
    use super::*;
    use crate::idempotency::IdempotencyKey;
    use proptest::prelude::*;
    use regex::Regex;

    /// Digits, separators, white space of every kind, control characters, letters.
    fn tricky_text(max: usize) -> impl Strategy<Value = String> {
        let interesting = prop::sample::select(vec![
            '0', '1', '5', '9', '+', ' ', '-', '(', ')', '.', '\t', '\n', '\r', '\u{0}', '\u{b}',
            '\u{1c}', '\u{1f}', '\u{7f}', '\u{85}', '\u{9f}', '\u{a0}', '\u{1680}', '\u{2003}',
            '\u{2028}', '\u{202f}', '\u{3000}', '\u{feff}', '\u{200b}', 'a', 'ж', '٣', '~', '!',
            'é',
        ]);
        prop::collection::vec(prop_oneof![4 => interesting, 1 => any::<char>()], 0..max)
            .prop_map(|chars| chars.into_iter().collect())
    }

    fn pattern(source: &str) -> Regex {
        Regex::new(source).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn phone(text in tricky_text(24)) {
            prop_assert_eq!(pattern(patterns::PHONE).is_match(&text), Phone::parse(&text).is_ok(), "{:?}", text);
        }

        #[test]
        fn delivery_address(text in tricky_text(12)) {
            let schema = pattern(patterns::NOT_BLANK_NO_CONTROL).is_match(&text)
                && text.chars().count() <= DeliveryAddress::MAX_CHARS;
            prop_assert_eq!(schema, DeliveryAddress::parse(&text).is_ok(), "{:?}", text);
        }

        #[test]
        fn comment(text in tricky_text(12)) {
            let schema = pattern(patterns::NO_CONTROL).is_match(&text)
                && text.chars().count() <= Comment::MAX_CHARS;
            prop_assert_eq!(schema, Comment::parse(&text).is_ok(), "{:?}", text);
        }

        #[test]
        fn idempotency_key(text in tricky_text(12)) {
            prop_assert_eq!(
                pattern(patterns::IDEMPOTENCY_KEY).is_match(&text),
                IdempotencyKey::parse(&text).is_ok(),
                "{:?}", text
            );
        }

        #[test]
        fn price(text in tricky_text(14)) {
            prop_assert_eq!(
                pattern(patterns::PRICE).is_match(&text),
                crate::catalog::is_price_text(&text),
                "{:?}", text
            );
        }

        #[test]
        fn no_control_is_has_control_character_negated(text in tricky_text(12)) {
            prop_assert_eq!(pattern(patterns::NO_CONTROL).is_match(&text), !has_control_character(&text));
        }
    }

    #[test]
    fn limits_count_the_text_as_sent() {
        let padded = format!("{} x", " ".repeat(DeliveryAddress::MAX_CHARS));
        assert_eq!(
            DeliveryAddress::parse(&padded),
            Err(InvalidDeliveryAddress::TooLong)
        );
        assert_eq!(
            Comment::parse(&format!("{} x", " ".repeat(Comment::MAX_CHARS))),
            Err(InvalidComment::TooLong)
        );
        // A control character is refused even where trimming would have removed it.
        assert_eq!(
            DeliveryAddress::parse("ул. Ленина 1\r"),
            Err(InvalidDeliveryAddress::ControlCharacter)
        );
    }
}
