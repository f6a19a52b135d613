//! Turns SeaORM's errors into the domain's [`RepositoryError`] at the seam.

use domain::RepositoryError;
use sea_orm::sqlx::error::DatabaseError;
use sea_orm::sqlx::postgres::PgDatabaseError;
use sea_orm::sqlx::sqlite::SqliteError;
use sea_orm::{DbErr, RuntimeErr};

/// Maps a driver error: trouble reaching the database becomes
/// [`RepositoryError::Unavailable`], anything else [`RepositoryError::Unknown`]; both keep
/// the driver error as their source, under `context` ("failed to ...").
pub(crate) fn repository_error(
    err: DbErr,
    context: impl std::fmt::Display + Send + Sync + 'static,
) -> RepositoryError {
    let unavailable = is_unavailable(&err);
    let invalid_data = is_data_exception(&err);
    let err = anyhow::Error::new(err).context(context);
    if unavailable {
        RepositoryError::Unavailable(err)
    } else if invalid_data {
        RepositoryError::InvalidData(err)
    } else {
        RepositoryError::Unknown(err)
    }
}

/// A fault in the data itself (a row the domain refuses), which is never worth retrying.
pub(crate) fn corrupt_row(context: String) -> RepositoryError {
    RepositoryError::Unknown(anyhow::anyhow!(context))
}

/// Whether `err` is PostgreSQL giving up on a transaction because of a concurrent one: a
/// deadlock (40P01) or a serialization failure (40001). The transaction was rolled back as
/// a whole and the same work can simply run again.
pub(crate) fn is_transaction_conflict(err: &RepositoryError) -> bool {
    let source = match err {
        RepositoryError::Unavailable(source)
        | RepositoryError::InvalidData(source)
        | RepositoryError::Unknown(source) => source,
    };
    source
        .downcast_ref::<DbErr>()
        .and_then(postgres_code)
        .is_some_and(|code| matches!(code, "40P01" | "40001"))
}

/// The SQLSTATE of a PostgreSQL error a statement answered with, if that is what `err` is.
fn postgres_code(err: &DbErr) -> Option<&str> {
    let (DbErr::Exec(RuntimeErr::SqlxError(err)) | DbErr::Query(RuntimeErr::SqlxError(err))) = err
    else {
        return None;
    };
    let sea_orm::sqlx::Error::Database(err) = &**err else {
        return None;
    };
    err.try_downcast_ref::<PgDatabaseError>()
        .map(PgDatabaseError::code)
}

fn is_unavailable(err: &DbErr) -> bool {
    match err {
        // Opening a connection or waiting for a pooled one failed or timed out.
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(err)) | DbErr::Query(RuntimeErr::SqlxError(err)) => {
            sqlx_error_is_unavailable(err)
        }
        _ => false,
    }
}

/// PostgreSQL's data exceptions (SQLSTATE class 22): a value the statement was given
/// cannot be stored or compared, such as a NUL character in text.
fn is_data_exception(err: &DbErr) -> bool {
    postgres_code(err).is_some_and(|code| code.starts_with("22"))
}

fn sqlx_error_is_unavailable(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match err {
        Error::Io(_)
        | Error::Tls(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed => true,
        Error::Database(err) => database_error_is_unavailable(err.as_ref()),
        _ => false,
    }
}

fn database_error_is_unavailable(err: &dyn DatabaseError) -> bool {
    if let Some(err) = err.try_downcast_ref::<PgDatabaseError>() {
        let code = err.code();
        // Class 08: connection exception; class 53: insufficient resources (such as too
        // many connections); 57014: statement timeout; 57P01-57P03: the server is
        // shutting down or starting up.
        return code.starts_with("08")
            || code.starts_with("53")
            || matches!(code, "57014" | "57P01" | "57P02" | "57P03");
    }
    if let Some(err) = err.try_downcast_ref::<SqliteError>() {
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), in any extended form: another writer
        // held the database past the busy timeout.
        let primary = err
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff);
        return matches!(primary, Some(5 | 6));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ConnAcquireErr;

    #[test]
    fn pool_timeout_is_unavailable_and_keeps_its_context() {
        let err = repository_error(
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            "failed to list categories",
        );
        match err {
            RepositoryError::Unavailable(source) => {
                assert_eq!(source.to_string(), "failed to list categories")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn other_errors_are_unknown() {
        let err = repository_error(DbErr::RecordNotInserted, "failed to place order");
        assert!(matches!(err, RepositoryError::Unknown(_)));
    }
}
