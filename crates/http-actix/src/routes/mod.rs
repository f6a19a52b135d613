pub mod catalog;
pub mod orders;
pub mod users;

use domain::Page;

use crate::dto::ListQuery;
use crate::error::ApiError;
use crate::extract::int_param;

/// The `limit`/`offset` window of a collection request.
pub(crate) fn page(query: &ListQuery) -> Result<Page, ApiError> {
    let limit = int_param("limit", query.limit.as_deref())?;
    let offset = int_param("offset", query.offset.as_deref())?;
    Page::parse(limit, offset).map_err(ApiError::Validation)
}

/// A positive integer id from the path, named when it is not one.
pub(crate) fn path_id(raw: &str) -> Result<i64, ApiError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::validation(
            "id",
            "invalid_id",
            "id must be a positive integer",
        )),
    }
}
