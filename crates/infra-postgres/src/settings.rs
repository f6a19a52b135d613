//! The database configuration keys this adapter owns.

use std::time::Duration;

use domain::settings::{InvalidSetting, check_range};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::database::PoolOptions;

/// The database configuration keys; each field name is its key, lower case
/// (`database_max_connections` is `DATABASE_MAX_CONNECTIONS`). Unset keys take
/// [`Default`]; [`DatabaseSettings::validate`] checks the rest.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// `postgres://…`, `postgresql://…` or `sqlite:…`; unset or blank: the embedded SQLite
    /// file at `sqlite_path`. A secret: it may carry a password.
    pub database_url: Option<SecretString>,
    /// The embedded SQLite file, used when `database_url` is unset.
    pub sqlite_path: String,
    /// Apply pending migrations at start-up.
    pub run_migrations: bool,
    /// The most pooled connections (at least 1).
    pub database_max_connections: u32,
    /// How long a query waits for a pooled connection, in milliseconds (100–600000).
    pub database_acquire_timeout_ms: u32,
    /// PostgreSQL cancels statements running longer than this, in milliseconds
    /// (100–600000).
    pub database_statement_timeout_ms: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            database_url: None,
            sqlite_path: "botshop.db".to_owned(),
            run_migrations: true,
            database_max_connections: 20,
            database_acquire_timeout_ms: 5_000,
            database_statement_timeout_ms: 5_000,
        }
    }
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum DatabaseTarget {
    /// Production: `DATABASE_URL=postgres://...`.
    Url(SecretString),
    /// The embedded default when `DATABASE_URL` is unset: a SQLite file.
    EmbeddedSqlite(String),
}

impl DatabaseTarget {
    /// The connection URL, for [`crate::Database::connect`]. For SQLite, the file is created
    /// if missing. It may carry a password: never log it.
    pub fn url(&self) -> String {
        match self {
            DatabaseTarget::Url(url) => url.expose_secret().to_owned(),
            DatabaseTarget::EmbeddedSqlite(path) => format!("sqlite://{path}?mode=rwc"),
        }
    }

    pub fn is_embedded(&self) -> bool {
        matches!(self, DatabaseTarget::EmbeddedSqlite(_))
    }
}

impl DatabaseSettings {
    /// Checks every value, naming the key of the first bad one.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if let DatabaseTarget::Url(url) = self.target() {
            let lower = url.expose_secret().to_ascii_lowercase();
            if !(lower.starts_with("postgres://")
                || lower.starts_with("postgresql://")
                || lower.starts_with("sqlite:"))
            {
                return Err(InvalidSetting::new(
                    "DATABASE_URL",
                    "must start with postgres://, postgresql:// or sqlite:",
                ));
            }
        }
        if self.database_max_connections == 0 {
            return Err(InvalidSetting::new(
                "DATABASE_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        check_range(
            "DATABASE_ACQUIRE_TIMEOUT_MS",
            self.database_acquire_timeout_ms,
            100..=600_000,
        )?;
        check_range(
            "DATABASE_STATEMENT_TIMEOUT_MS",
            self.database_statement_timeout_ms,
            100..=600_000,
        )
    }

    /// `database_url` when set and not blank, else the embedded SQLite file.
    pub fn target(&self) -> DatabaseTarget {
        match &self.database_url {
            Some(url) if !url.expose_secret().trim().is_empty() => DatabaseTarget::Url(url.clone()),
            _ => DatabaseTarget::EmbeddedSqlite(self.sqlite_path.clone()),
        }
    }

    /// Points the settings at `target` (tests and tools that build settings in code).
    pub fn set_target(&mut self, target: DatabaseTarget) {
        match target {
            DatabaseTarget::Url(url) => self.database_url = Some(url),
            DatabaseTarget::EmbeddedSqlite(path) => {
                self.database_url = None;
                self.sqlite_path = path;
            }
        }
    }

    /// How long a query waits for a pooled connection.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.database_acquire_timeout_ms))
    }

    /// How long a PostgreSQL statement may run.
    pub fn statement_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.database_statement_timeout_ms))
    }

    /// The pool these settings describe.
    pub fn pool_options(&self) -> PoolOptions {
        PoolOptions {
            max_connections: self.database_max_connections,
            acquire_timeout: self.acquire_timeout(),
            statement_timeout: Some(self.statement_timeout()),
            ..PoolOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> Result<DatabaseSettings, String> {
        let settings: DatabaseSettings = serde_json::from_str(json).map_err(|e| e.to_string())?;
        settings.validate().map_err(|e| e.to_string())?;
        Ok(settings)
    }

    #[test]
    fn unset_or_blank_url_means_the_embedded_file() {
        let s = settings("{}").unwrap();
        assert!(matches!(s.target(), DatabaseTarget::EmbeddedSqlite(p) if p == "botshop.db"));
        let blank = settings(r#"{"database_url": " ", "sqlite_path": "x.db"}"#).unwrap();
        assert_eq!(blank.target().url(), "sqlite://x.db?mode=rwc");
        assert_eq!(s.pool_options().max_connections, 20);
        assert_eq!(s.statement_timeout(), Duration::from_secs(5));
    }

    #[test]
    fn bad_values_name_their_key_and_never_the_url() {
        for (json, key) in [
            (
                r#"{"database_url": "mysql://u:hunter2@h/db"}"#,
                "DATABASE_URL",
            ),
            (
                r#"{"database_max_connections": 0}"#,
                "DATABASE_MAX_CONNECTIONS",
            ),
            (
                r#"{"database_acquire_timeout_ms": 99}"#,
                "DATABASE_ACQUIRE_TIMEOUT_MS",
            ),
            (
                r#"{"database_statement_timeout_ms": 600001}"#,
                "DATABASE_STATEMENT_TIMEOUT_MS",
            ),
        ] {
            let error = settings(json).unwrap_err();
            assert!(
                error.contains(key) && !error.contains("hunter2"),
                "{json}: {error}"
            );
        }
        let printed = format!(
            "{:?}",
            settings(r#"{"database_url": "postgres://u:hunter2@h/db"}"#).unwrap()
        );
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}
