//! Errors shared by several use cases.

/// A storage failure, as the repository adapters report it.
///
/// Adapters map their driver's errors into this type at the seam, so no driver type ever
/// appears in a domain signature.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// The storage could not be reached in time (connection refused, pool exhausted,
    /// statement timeout). Retrying later may succeed.
    #[error("the database is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The database refused a value as data (on PostgreSQL, SQLSTATE class 22: a NUL in
    /// text, a number out of range). Input validation should refuse such a value first;
    /// this is the backstop, and it is the client's input, not a server fault.
    #[error("the database refused a value")]
    InvalidData(#[source] anyhow::Error),
    /// Anything else: a bug, a broken invariant, an unexpected driver error.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// One field of a request that failed validation.
///
/// `field` is a path into the request body as the client sent it, such as `phone` or
/// `items[2].quantity`; `code` is stable and machine-readable; `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}
