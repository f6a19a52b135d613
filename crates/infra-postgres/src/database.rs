//! Opening and closing the connection pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use domain::RepositoryError;
use domain::catalog_admin::CatalogChange;
use domain::ports::{PoolStats, StorageProbe};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

use crate::error::repository_error;
use crate::orders::Placements;
use crate::store::SqlStore;

/// How the pool behaves. Each field has a sensible [`Default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most connections the pool opens at once.
    pub max_connections: u32,
    /// Connections kept open even when idle.
    pub min_connections: u32,
    /// How long a query waits for a free connection (or for a new one to open) before the
    /// repository reports [`RepositoryError::Unavailable`].
    pub acquire_timeout: Duration,
    /// Idle connections above `min_connections` are closed after this long.
    pub idle_timeout: Option<Duration>,
    /// PostgreSQL only: the server cancels statements running longer than this, which the
    /// repositories report as [`RepositoryError::Unavailable`].
    pub statement_timeout: Option<Duration>,
    /// SQLite only: how long a writer waits for another writer's lock.
    pub sqlite_busy_timeout: Duration,
    /// Open no connection until the first query, so that a service can start while its
    /// database is still coming up. Off by default, so that a wrong URL fails at startup.
    pub connect_lazily: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(600)),
            statement_timeout: None,
            sqlite_busy_timeout: Duration::from_secs(5),
            connect_lazily: false,
        }
    }
}

/// A connection pool to PostgreSQL (`postgres://...`) or SQLite (`sqlite://...`).
///
/// Cheap to clone, but usually owned by `main`, which hands [`Database::store`] to the
/// services and calls [`Database::close`] on shutdown.
#[derive(Debug, Clone)]
pub struct Database {
    connection: DatabaseConnection,
    /// PostgreSQL only: the pool text searches use (see [`search_connections`]).
    search: Option<SearchPool>,
    max_connections: u32,
    /// Shared by every store over this pool, as the pool is.
    placements: Arc<Placements>,
    /// SQLite only: the cancellations this process commits (from the API, a manager's
    /// button, an unpaid order's expiry), for [`crate::follow_catalog_changes`]; PostgreSQL
    /// announces them with `NOTIFY` instead.
    local_changes: Option<broadcast::Sender<CatalogChange>>,
}

/// How many catalog changes a slow follower may fall behind before it is told
/// "everything changed" instead.
const LOCAL_CHANGES_BUFFER: usize = 256;

/// The pool text searches run on, and its gate: searches wait for one of as many permits
/// as it has connections, in a FIFO queue, before they ask the pool. Measured with 64
/// searches at once on 5 connections, waiting in the pool itself cost a quarter of the
/// throughput (1 459 against 1 950 searches a second behind the gate, bench/README.md).
#[derive(Debug, Clone)]
pub(crate) struct SearchPool {
    pub(crate) connection: DatabaseConnection,
    gate: Arc<Semaphore>,
    acquire_timeout: Duration,
}

impl SearchPool {
    /// Waits for a turn (at most the pool's acquire timeout); hold the permit while the
    /// statement runs.
    pub(crate) async fn turn(&self) -> Result<OwnedSemaphorePermit, RepositoryError> {
        match tokio::time::timeout(self.acquire_timeout, Arc::clone(&self.gate).acquire_owned())
            .await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(RepositoryError::Unavailable(anyhow::anyhow!(
                "the search pool is closed"
            ))),
            Err(_) => Err(RepositoryError::Unavailable(anyhow::anyhow!(
                "no search connection was free in time"
            ))),
        }
    }
}

/// How many connections the PostgreSQL search pool opens at most, beside the main pool: a
/// quarter of `max_connections`, at least 2.
///
/// Text searches (`GET /products?q=`) run on connections of their own whose statements
/// are planned once per connection (`plan_cache_mode = force_generic_plan`): a search's
/// plan does not depend on its words (the word and trigram indexes find the candidates
/// whatever they are), and planning it anew for every request cost a fifth of its time.
/// Every other statement keeps PostgreSQL's default, which plans with the values when
/// they matter (an order list filtered on a rare status, say).
pub fn search_connections(max_connections: u32) -> u32 {
    (max_connections / 4).max(2)
}

/// The connections a PostgreSQL pool keeps beyond `max_connections` for the ones that
/// hold a role or listen: the catalog listener and the Telegram poller's lease, for the
/// process's life, and the payment expiry's lease, for each round (whose own queries then
/// need a connection besides it).
pub const LONG_HELD_CONNECTIONS: u32 = 3;

impl Database {
    /// Opens a pool to `url`.
    ///
    /// For SQLite the file is created if missing (unless the URL sets its own `mode=`),
    /// and every connection uses WAL journaling (readers never block the writer), a busy
    /// timeout (writers queue instead of failing at once) and `foreign_keys = ON`, because
    /// SQLite does not enforce foreign keys unless asked to.
    ///
    /// # Errors
    /// If the URL is malformed or, unless [`PoolOptions::connect_lazily`] is set, the
    /// database cannot be reached.
    pub async fn connect(url: &str, options: PoolOptions) -> anyhow::Result<Self> {
        let sqlite = is_sqlite_url(url);
        let url = if sqlite {
            sqlite_url_creating_missing_file(url)
        } else {
            url.to_owned()
        };

        // On PostgreSQL three connections are held besides those that serve requests: the
        // catalog listener's (`notify`) and, while this instance polls Telegram, the
        // poller's lease (`roles`), for the process's life; the payment expiry's lease
        // during each round. The pool has room for them on top of `max_connections`, so
        // that they never starve the requests (nor the expiry its own queries).
        let max_connections = if sqlite {
            options.max_connections
        } else {
            options
                .max_connections
                .saturating_add(LONG_HELD_CONNECTIONS)
        };
        let mut connect = ConnectOptions::new(url);
        connect
            .max_connections(max_connections)
            .min_connections(options.min_connections)
            .acquire_timeout(options.acquire_timeout)
            .idle_timeout(options.idle_timeout)
            .connect_lazy(options.connect_lazily)
            // A ping on every acquire costs a round trip per query; pinging only connections
            // that sat idle keeps the protection against ones a database restart broke,
            // without taxing a busy server.
            .test_before_acquire_if_idle_for(Duration::from_secs(30))
            // Statements are traced by SeaORM's own spans; sqlx's per-statement log lines
            // would print every query at INFO.
            .sqlx_logging(false);
        if sqlite {
            let busy_timeout = options.sqlite_busy_timeout;
            connect.map_sqlx_sqlite_opts(move |sqlite| {
                sqlite
                    .journal_mode(SqliteJournalMode::Wal)
                    // NORMAL is durable across application crashes in WAL mode; only an
                    // OS crash may lose the last transactions.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(busy_timeout)
                    .foreign_keys(true)
            });
        } else if let Some(timeout) = options.statement_timeout {
            connect.statement_timeout(timeout);
        }

        let search_url = connect.get_url().to_owned();
        let connection = sea_orm::Database::connect(connect)
            .await
            .context("failed to connect to the database")?;
        let search = if sqlite {
            None
        } else {
            let mut search = ConnectOptions::new(search_url);
            search
                .max_connections(search_connections(options.max_connections))
                .min_connections(0)
                .acquire_timeout(options.acquire_timeout)
                .idle_timeout(options.idle_timeout)
                // It opens its connections as searches come: the main pool has already
                // proved the URL.
                .connect_lazy(true)
                .test_before_acquire_if_idle_for(Duration::from_secs(30))
                .sqlx_logging(false)
                .map_sqlx_postgres_opts(|postgres| {
                    postgres.options([("plan_cache_mode", "force_generic_plan")])
                });
            if let Some(timeout) = options.statement_timeout {
                search.statement_timeout(timeout);
            }
            Some(SearchPool {
                connection: sea_orm::Database::connect(search)
                    .await
                    .context("failed to open the search pool")?,
                gate: Arc::new(Semaphore::new(
                    usize::try_from(search_connections(options.max_connections)).unwrap_or(2),
                )),
                acquire_timeout: options.acquire_timeout,
            })
        };

        Ok(Self {
            connection,
            search,
            max_connections: options.max_connections,
            placements: Arc::default(),
            local_changes: sqlite.then(|| broadcast::channel(LOCAL_CHANGES_BUFFER).0),
        })
    }

    /// The pool text searches run on (PostgreSQL; `None` on SQLite), for checking its
    /// settings.
    pub fn search_connection(&self) -> Option<&DatabaseConnection> {
        self.search.as_ref().map(|search| &search.connection)
    }

    /// The underlying SeaORM connection, for running `migration::Migrator` against.
    /// Everything else goes through the repository ports of [`Database::store`].
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    /// The repositories over this pool.
    pub fn store(&self) -> SqlStore {
        SqlStore {
            db: self.connection.clone(),
            search: self.search.clone(),
            placements: Arc::clone(&self.placements),
            local_changes: self.local_changes.clone(),
        }
    }

    /// SQLite only: the cancellations this process commits, as they commit.
    pub(crate) fn local_catalog_changes(&self) -> Option<broadcast::Receiver<CatalogChange>> {
        self.local_changes
            .as_ref()
            .map(broadcast::Sender::subscribe)
    }

    /// Whether this is a SQLite database (rather than PostgreSQL).
    pub fn is_sqlite(&self) -> bool {
        self.connection.get_database_backend() == DatabaseBackend::Sqlite
    }

    /// Checks that a connection can be obtained and used, for readiness probes.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the database cannot be reached in time.
    pub async fn ping(&self) -> Result<(), RepositoryError> {
        self.connection
            .ping()
            .await
            .map_err(|err| repository_error(err, "failed to ping the database"))
    }

    /// Writes a consistent copy of this SQLite database to a new file at `path`, while the
    /// database stays in use: SQLite's `VACUUM INTO` reads one snapshot (in WAL mode,
    /// writers go on meanwhile) and writes it out compacted, including what is still only
    /// in the write-ahead log, which a plain copy of the file would miss.
    ///
    /// # Errors
    /// - [`BackupError::NotSqlite`] on PostgreSQL, which `pg_dump` backs up.
    /// - [`BackupError::Exists`] if `path` exists: a backup never overwrites a file.
    /// - [`BackupError::Failed`] if SQLite cannot write the copy.
    pub async fn backup_sqlite_into(&self, path: &Path) -> Result<(), BackupError> {
        if !self.is_sqlite() {
            return Err(BackupError::NotSqlite);
        }
        if path.exists() {
            return Err(BackupError::Exists(path.to_owned()));
        }
        let target = path
            .to_str()
            .ok_or_else(|| BackupError::Failed(anyhow::anyhow!("the path is not valid UTF-8")))?;
        self.connection
            .execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                "VACUUM INTO ?",
                [target.into()],
            ))
            .await
            .map_err(|err| BackupError::Failed(anyhow::Error::new(err)))?;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to be returned.
    ///
    /// # Errors
    /// If closing a connection fails.
    pub async fn close(self) -> anyhow::Result<()> {
        if let Some(search) = self.search {
            search
                .connection
                .close()
                .await
                .context("failed to close the search pool")?;
        }
        self.connection
            .close()
            .await
            .context("failed to close the database pool")
    }
}

/// Why [`Database::backup_sqlite_into`] wrote no backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the database is PostgreSQL: back it up with pg_dump")]
    NotSqlite,
    #[error("{} already exists: a backup never overwrites a file", .0.display())]
    Exists(PathBuf),
    #[error("SQLite could not write the backup")]
    Failed(#[source] anyhow::Error),
}

#[async_trait::async_trait]
impl StorageProbe for Database {
    async fn ping(&self) -> Result<(), RepositoryError> {
        Database::ping(self).await
    }

    fn pool_stats(&self) -> PoolStats {
        // SeaORM panics when asked for the other backend's pool, so ask for the right one.
        let (size, idle) = match self.connection.get_database_backend() {
            DatabaseBackend::Postgres => {
                let pool = self.connection.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            DatabaseBackend::Sqlite => {
                let pool = self.connection.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => (0, 0),
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX);
        PoolStats {
            in_use: size.saturating_sub(idle),
            idle,
            max: self.max_connections,
        }
    }
}

fn is_sqlite_url(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Adds `mode=rwc` (read, write, create) unless the URL already says how to open the
/// file, or names no file (`sqlite::memory:`).
fn sqlite_url_creating_missing_file(url: &str) -> String {
    let has_mode = url
        .split_once('?')
        .is_some_and(|(_, query)| query.split('&').any(|pair| pair.starts_with("mode=")));
    if has_mode || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_search_waits_its_turn_at_most_the_acquire_timeout() {
        let search = SearchPool {
            connection: DatabaseConnection::default(),
            gate: Arc::new(Semaphore::new(1)),
            acquire_timeout: Duration::from_millis(20),
        };
        let first = search.turn().await.unwrap();
        let error = search.turn().await.unwrap_err();
        assert!(matches!(error, RepositoryError::Unavailable(_)), "{error}");
        drop(first);
        assert!(search.turn().await.is_ok(), "the turn came back");
    }

    /// A URL that cannot be parsed is the database's URL at fault, whichever pool would
    /// have read it first.
    #[tokio::test]
    async fn an_unparsable_postgres_url_names_the_database() {
        let error = Database::connect("postgres://postgres@/shop", PoolOptions::default())
            .await
            .unwrap_err();
        let chain = format!("{error:#}");
        assert!(
            chain.starts_with("failed to connect to the database"),
            "{chain}"
        );
    }

    #[test]
    fn sqlite_urls_create_missing_files_unless_told_otherwise() {
        assert_eq!(
            sqlite_url_creating_missing_file("sqlite:///var/botshop.db"),
            "sqlite:///var/botshop.db?mode=rwc"
        );
        assert_eq!(
            sqlite_url_creating_missing_file("sqlite://shop.db?cache=shared"),
            "sqlite://shop.db?cache=shared&mode=rwc"
        );
        assert_eq!(
            sqlite_url_creating_missing_file("sqlite://shop.db?mode=ro"),
            "sqlite://shop.db?mode=ro"
        );
        assert_eq!(
            sqlite_url_creating_missing_file("sqlite::memory:"),
            "sqlite::memory:"
        );
    }
}
