//! Limit/offset pagination shared by every collection.

use crate::error::FieldError;

/// A validated window into a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    limit: u32,
    offset: u64,
}

impl Page {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 100;
    /// Offsets past this are refused: no client pages that far, and it keeps SQL values sane.
    pub const MAX_OFFSET: u64 = 1_000_000_000;

    /// Validates raw query values; missing ones take their defaults.
    pub fn parse(limit: Option<i64>, offset: Option<i64>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let limit = match limit {
            None => Self::DEFAULT_LIMIT,
            Some(l) if (1..=i64::from(Self::MAX_LIMIT)).contains(&l) => l as u32,
            Some(_) => {
                errors.push(FieldError::new(
                    "limit",
                    "out_of_range",
                    format!("limit must be between 1 and {}", Self::MAX_LIMIT),
                ));
                0
            }
        };
        let offset = match offset {
            None => 0,
            Some(o) if (0..=Self::MAX_OFFSET as i64).contains(&o) => o as u64,
            Some(_) => {
                errors.push(FieldError::new(
                    "offset",
                    "out_of_range",
                    format!("offset must be between 0 and {}", Self::MAX_OFFSET),
                ));
                0
            }
        };
        if errors.is_empty() {
            Ok(Self { limit, offset })
        } else {
            Err(errors)
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl Default for Page {
    fn default() -> Self {
        Self {
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

/// One page of a collection with the size of the whole collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paginated<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: Page,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_defaults_to_fifty_from_the_start() {
        let page = Page::parse(None, None).unwrap();
        assert_eq!((page.limit(), page.offset()), (50, 0));
    }

    #[test]
    fn page_rejects_limit_over_one_hundred_naming_the_field() {
        let errors = Page::parse(Some(101), Some(-1)).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "offset"]);
        assert!(Page::parse(Some(0), None).is_err());
        assert!(Page::parse(Some(100), Some(10)).is_ok());
    }
}
