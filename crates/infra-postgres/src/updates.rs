//! [`UpdateLog`] over SQL: one row per Telegram `update_id`; the primary key makes
//! "first seen" atomic across concurrent requests and instances.

use async_trait::async_trait;
use domain::RepositoryError;
use domain::ports::UpdateLog;
use sea_orm::{ConnectionTrait, Statement};
use time::OffsetDateTime;

use crate::error::repository_error;
use crate::store::{SqlStore, database_now_plus, offset_value, timestamp_value};

#[async_trait]
impl UpdateLog for SqlStore {
    async fn first_seen(
        &self,
        update_id: i64,
        at: OffsetDateTime,
    ) -> Result<bool, RepositoryError> {
        let backend = self.backend();
        let statement = Statement::from_sql_and_values(
            backend,
            r#"INSERT INTO "telegram_updates" ("update_id", "received_at") VALUES ($1, $2)
               ON CONFLICT ("update_id") DO NOTHING"#,
            [update_id.into(), timestamp_value(backend, at)],
        );
        let result = self
            .db
            .execute_raw(statement)
            .await
            .map_err(|err| repository_error(err, "failed to record a Telegram update"))?;
        Ok(result.rows_affected() == 1)
    }

    async fn forget_older_than(&self, age: std::time::Duration) -> Result<u64, RepositoryError> {
        let backend = self.backend();
        let statement = Statement::from_sql_and_values(
            backend,
            format!(
                r#"DELETE FROM "telegram_updates" WHERE "received_at" < {}"#,
                database_now_plus(backend, "$1")
            ),
            [offset_value(backend, age, true)],
        );
        let result = self
            .db
            .execute_raw(statement)
            .await
            .map_err(|err| repository_error(err, "failed to forget old Telegram updates"))?;
        Ok(result.rows_affected())
    }
}
