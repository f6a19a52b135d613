//! Limit/offset pagination shared by every collection.

use crate::error::FieldError;

/// A validated window into a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    limit: u32,
    offset: u64,
}

impl Page {
    /// A seed client asks for a category without `limit` and expects it whole: 100 covers
    /// a real category's products in one answer.
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 500;
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

impl<T> Paginated<T> {
    /// The window after this one, while matches remain beyond it (and within
    /// [`Page::MAX_OFFSET`]).
    pub fn next_page(&self) -> Option<Page> {
        next_page(self.page, self.total)
    }

    /// The window before this one, unless this is the first (an offset that does not fall
    /// on a multiple of the limit gets a shorter first window, never a negative offset).
    pub fn prev_page(&self) -> Option<Page> {
        prev_page(self.page)
    }
}

/// See [`Paginated::next_page`]; for an answer that keeps only `page` and `total`.
pub fn next_page(page: Page, total: u64) -> Option<Page> {
    let offset = page.offset.checked_add(u64::from(page.limit))?;
    (offset < total && offset <= Page::MAX_OFFSET).then_some(Page {
        limit: page.limit,
        offset,
    })
}

/// See [`Paginated::prev_page`].
pub fn prev_page(page: Page) -> Option<Page> {
    (page.offset > 0).then(|| {
        let offset = page.offset.saturating_sub(u64::from(page.limit));
        // A window that would overlap this one is cut at this one's start.
        let limit = u32::try_from(page.offset - offset).unwrap_or(page.limit);
        Page { limit, offset }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(limit: i64, offset: i64) -> Page {
        Page::parse(Some(limit), Some(offset)).unwrap()
    }

    #[test]
    fn neighbours_exist_only_where_there_are_matches() {
        assert_eq!(next_page(page(10, 0), 25), Some(page(10, 10)));
        assert_eq!(next_page(page(10, 10), 25), Some(page(10, 20)));
        assert_eq!(next_page(page(10, 20), 25), None);
        assert_eq!(next_page(page(10, 0), 10), None);
        assert_eq!(next_page(page(10, 0), 0), None);
        assert_eq!(prev_page(page(10, 0)), None);
        assert_eq!(prev_page(page(10, 20)), Some(page(10, 10)));
        // Off the grid: the previous window stops where this one starts.
        assert_eq!(prev_page(page(10, 5)), Some(page(5, 0)));
        // Past the end: the previous window still leads back.
        assert_eq!(prev_page(page(10, 100)), Some(page(10, 90)));
        assert_eq!(next_page(page(500, 999_999_900), u64::MAX), None);
    }

    #[test]
    fn page_defaults_to_one_hundred_from_the_start() {
        let page = Page::parse(None, None).unwrap();
        assert_eq!((page.limit(), page.offset()), (100, 0));
    }

    #[test]
    fn page_rejects_limit_over_five_hundred_naming_the_field() {
        let errors = Page::parse(Some(501), Some(-1)).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "offset"]);
        assert!(Page::parse(Some(0), None).is_err());
        assert!(Page::parse(Some(500), Some(10)).is_ok());
    }
}
