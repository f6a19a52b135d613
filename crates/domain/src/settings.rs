//! What every crate's settings report when a value is unusable.
//!
//! Each crate that reads configuration owns a settings type whose field names are the
//! configuration keys (`database_max_connections` is `DATABASE_MAX_CONNECTIONS`), with its
//! defaults and a `validate()` returning this error. The server only gathers them.

/// A configuration value that cannot be used, naming its key as the environment spells it:
/// `DATABASE_MAX_CONNECTIONS must be at least 1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} {rule}")]
pub struct InvalidSetting {
    /// The key, upper case, e.g. `OUTBOX_MAX_ATTEMPTS`.
    pub key: &'static str,
    /// What the value must be, e.g. `must be at least 1`. Never the value of a secret.
    pub rule: String,
}

impl InvalidSetting {
    pub fn new(key: &'static str, rule: impl Into<String>) -> Self {
        Self {
            key,
            rule: rule.into(),
        }
    }
}

/// `Ok` when `value` lies in `range`, else `KEY must be between LOW and HIGH`.
pub fn check_range(
    key: &'static str,
    value: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<(), InvalidSetting> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(InvalidSetting::new(
            key,
            format!("must be between {} and {}", range.start(), range.end()),
        ))
    }
}
