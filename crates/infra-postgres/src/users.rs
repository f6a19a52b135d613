//! [`UserRepository`] over SQL.

use async_trait::async_trait;
use domain::auth::TelegramUser;
use domain::ports::UserRepository;
use domain::{RepositoryError, User};
use sea_orm::{ConnectionTrait, DatabaseBackend, FromQueryResult, Statement};
use time::OffsetDateTime;

use crate::entities::users;
use crate::error::{corrupt_row, repository_error};
use crate::store::{SqlStore, timestamp_value, user_from_row};

/// One statement does it all, so two first requests of one user racing each other cannot
/// both insert: the loser of the race waits on the unique index, then takes the update
/// branch and returns the winner's row.
///
/// The update branch always rewrites the names (a no-op when equal) and keeps
/// `updated_at` unless one of them changed. It returns a row in both branches, which a
/// `DO UPDATE ... WHERE <changed>` form would not: that one returns nothing for an
/// unchanged user and would need a second statement to read it.
///
/// `{distinct}` is `IS DISTINCT FROM` on PostgreSQL and its SQLite spelling `IS NOT`
/// (both treat two NULLs as equal). Parameters: telegram id, username, first name,
/// last name, now, language code.
const UPSERT_SQL: &str = r#"
INSERT INTO "users" ("telegram_id", "username", "first_name", "last_name", "language_code", "created_at", "updated_at")
VALUES ($1, $2, $3, $4, $6, $5, $5)
ON CONFLICT ("telegram_id") DO UPDATE SET
    "username" = "excluded"."username",
    "first_name" = "excluded"."first_name",
    "last_name" = "excluded"."last_name",
    "language_code" = "excluded"."language_code",
    "updated_at" = CASE
        WHEN "users"."username" {distinct} "excluded"."username"
          OR "users"."first_name" {distinct} "excluded"."first_name"
          OR "users"."last_name" {distinct} "excluded"."last_name"
          OR "users"."language_code" {distinct} "excluded"."language_code"
        THEN "excluded"."updated_at"
        ELSE "users"."updated_at"
    END
RETURNING "id", "telegram_id", "username", "first_name", "last_name", "language_code", "created_at", "updated_at"
"#;

fn upsert_sql(backend: DatabaseBackend) -> String {
    let distinct = match backend {
        DatabaseBackend::Sqlite => "IS NOT",
        _ => "IS DISTINCT FROM",
    };
    UPSERT_SQL.replace("{distinct}", distinct)
}

#[async_trait]
impl UserRepository for SqlStore {
    async fn upsert(
        &self,
        profile: &TelegramUser,
        now: OffsetDateTime,
    ) -> Result<User, RepositoryError> {
        let backend = self.backend();
        let statement = Statement::from_sql_and_values(
            backend,
            upsert_sql(backend),
            [
                profile.id.get().into(),
                profile.username.clone().into(),
                profile.first_name.clone().into(),
                profile.last_name.clone().into(),
                timestamp_value(backend, now),
                profile.language_code.clone().into(),
            ],
        );
        let row = self
            .db
            .query_one_raw(statement)
            .await
            .map_err(|err| repository_error(err, "failed to upsert user"))?
            .ok_or_else(|| corrupt_row("the user upsert returned no row".to_owned()))?;
        let user = users::Model::from_query_result(&row, "")
            .map_err(|err| repository_error(err, "failed to read the upserted user"))?;
        user_from_row(user)
    }
}
