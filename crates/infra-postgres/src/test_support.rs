//! A fresh, migrated database per test (feature `test-support`).
//!
//! ```no_run
//! use infra_postgres::test_support::TestDatabase;
//!
//! # async fn example() {
//! // PostgreSQL: `None` (with a note on stderr) when neither TEST_DATABASE_URL nor a
//! // Docker engine is available, so the test returns early instead of failing; with
//! // BOTSHOP_REQUIRE_POSTGRES=1 it panics instead.
//! let Some(db) = TestDatabase::postgres().await else { return };
//! let store = db.store();
//! // ... exercise `store`, or hand `db.url()` to the server under test ...
//! db.cleanup().await;
//!
//! // SQLite: always available.
//! let db = TestDatabase::sqlite().await;
//! db.cleanup().await;
//! # }
//! ```
//!
//! PostgreSQL databases come from `TEST_DATABASE_URL` (a maintenance URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`) or, failing that, from one container
//! per process started with testcontainers. Each test gets its own database, created with
//! `CREATE DATABASE ... TEMPLATE botshop_template_<hash>`: the template is migrated once
//! (per set of migration names) and copying it takes milliseconds. The template is built
//! under a PostgreSQL advisory lock, so that test processes starting together (nextest
//! runs one per test) build it once; it refuses connections, because PostgreSQL cannot
//! copy a template someone is connected to. If a migration is edited without being
//! renamed, drop the stale template by hand:
//! `ALTER DATABASE botshop_template_<hash> IS_TEMPLATE false; DROP DATABASE ...`.
//!
//! Where no PostgreSQL is available, the PostgreSQL half of a suite is skipped with a note
//! on stderr. CI sets [`REQUIRE_POSTGRES`] (`BOTSHOP_REQUIRE_POSTGRES=1`) so that a
//! missing or unreachable PostgreSQL fails the run instead of passing it silently.
//!
//! The container is the only thing shared between tests, through a `static`: it is
//! started once per process (per test binary), by whichever test needs it first, and
//! every test creates its own database in it, as with `TEST_DATABASE_URL`. Pools are never
//! shared: every `#[tokio::test]` has its own runtime, and a pool created on one runtime
//! breaks on another. Rust never drops a `static`, and testcontainers removes a container
//! only when its handle is dropped, so the container outlives the process: it is labelled
//! [`CONTAINER_LABEL`], and `docker rm -f $(docker ps -aq --filter label=botshop.test-support)`
//! clears those left behind. Setting `TEST_DATABASE_URL` avoids containers altogether.
//!
//! Call [`TestDatabase::cleanup`] at the end of a test. A test that panics before that
//! still drops its database, from `Drop`, on a helper thread with its own runtime.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::postgres::PgConnection;
use sea_orm::sqlx::{self, AssertSqlSafe, Connection as _, Executor as _};
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::testcontainers::runners::AsyncRunner as _;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt as _};
use tokio::sync::OnceCell;

use crate::{Database, PoolOptions, SqlStore};

/// The environment variable naming the PostgreSQL server for tests.
pub const TEST_DATABASE_URL: &str = "TEST_DATABASE_URL";

/// The environment variable that turns a missing PostgreSQL from a skip into a failure:
/// when it is set (to anything but `0` or the empty string), [`TestDatabase::postgres`]
/// panics instead of returning `None`. CI sets it.
pub const REQUIRE_POSTGRES: &str = "BOTSHOP_REQUIRE_POSTGRES";

/// The label (key) of the PostgreSQL containers started by this module; its value is the
/// test process's id.
pub const CONTAINER_LABEL: &str = "botshop.test-support";

const NO_POSTGRES: &str = "PostgreSQL tests need TEST_DATABASE_URL or a Docker engine, and \
                           neither is available";

/// A migrated database that exists for one test.
pub struct TestDatabase {
    database: Option<Database>,
    url: String,
    resource: Option<Resource>,
}

enum Resource {
    Postgres {
        maintenance_url: String,
        name: String,
    },
    Sqlite {
        path: PathBuf,
    },
}

impl fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDatabase")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl TestDatabase {
    /// A fresh PostgreSQL database with the schema applied, in the server named by
    /// `TEST_DATABASE_URL` or, without it, in this process's container (started on first
    /// use). `None` (after telling stderr why) when neither TEST_DATABASE_URL nor a Docker
    /// engine is available.
    ///
    /// # Panics
    /// - When PostgreSQL is configured but the database cannot be prepared (the server is
    ///   unreachable, the container does not start, a migration fails).
    /// - When no PostgreSQL is available and [`REQUIRE_POSTGRES`] is set.
    pub async fn postgres() -> Option<Self> {
        let maintenance_url = match std::env::var(TEST_DATABASE_URL) {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                if !docker_engine_configured() {
                    if postgres_required() {
                        panic!("{REQUIRE_POSTGRES} is set, but {NO_POSTGRES}");
                    }
                    eprintln!("skipped: {NO_POSTGRES}");
                    return None;
                }
                or_panic(shared_container_url().await)
            }
        };
        Some(or_panic(Self::create_postgres(maintenance_url).await))
    }

    /// A fresh SQLite database file under the temporary directory, with the schema
    /// applied.
    ///
    /// # Panics
    /// When the file cannot be created or migrated.
    pub async fn sqlite() -> Self {
        or_panic(Self::create_sqlite().await)
    }

    /// The database's URL, for configuring a server under test.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The open pool to the database.
    pub fn database(&self) -> &Database {
        match &self.database {
            Some(database) => database,
            // Only `cleanup` takes the database, and it consumes `self`.
            None => unreachable!("the test database is already cleaned up"),
        }
    }

    /// The repositories over [`TestDatabase::database`].
    pub fn store(&self) -> SqlStore {
        self.database().store()
    }

    /// Whether this is the SQLite flavour.
    pub fn is_sqlite(&self) -> bool {
        matches!(self.resource, Some(Resource::Sqlite { .. }))
    }

    /// Runs raw SQL (for arranging a test: deactivating a product, changing a price),
    /// returning the number of rows affected.
    ///
    /// # Errors
    /// The database's error, as is, so tests can assert on constraint violations.
    pub async fn execute(&self, sql: &str) -> anyhow::Result<u64> {
        let result = self
            .database()
            .connection()
            .execute_unprepared(sql)
            .await
            .with_context(|| format!("failed to execute {sql:?}"))?;
        Ok(result.rows_affected())
    }

    /// Runs a query returning one integer (`SELECT COUNT(*) ...`).
    ///
    /// # Errors
    /// If the query fails or returns no integer.
    pub async fn query_i64(&self, sql: &str) -> anyhow::Result<i64> {
        let connection = self.database().connection();
        let row = connection
            .query_one_raw(Statement::from_string(
                connection.get_database_backend(),
                sql,
            ))
            .await
            .with_context(|| format!("failed to query {sql:?}"))?
            .with_context(|| format!("{sql:?} returned no row"))?;
        row.try_get_by_index::<i64>(0)
            .with_context(|| format!("{sql:?} did not return an integer"))
    }

    /// Opens a transaction that runs `sql` (e.g. `SELECT id FROM products WHERE id = 1 FOR
    /// UPDATE`) and stays open, holding whatever locks it took, until [`HeldTransaction::release`].
    /// Lets a test keep requests waiting inside the server for as long as it needs.
    ///
    /// # Errors
    /// If the transaction cannot begin or the statement fails.
    pub async fn hold(&self, sql: &str) -> anyhow::Result<HeldTransaction> {
        let transaction = self
            .database()
            .connection()
            .begin()
            .await
            .context("failed to begin the held transaction")?;
        transaction
            .execute_unprepared(sql)
            .await
            .with_context(|| format!("failed to execute {sql:?}"))?;
        Ok(HeldTransaction { transaction })
    }

    /// Waits until at least `sessions` sessions of this database are waiting for a lock
    /// (PostgreSQL only): a request has reached a lock a [`TestDatabase::hold`] keeps, say.
    /// Polls `pg_stat_activity` every 10 ms, the only way to observe another session's lock
    /// wait; the loop ends on the condition, not on a timing assumption.
    ///
    /// # Errors
    /// If fewer sessions are waiting after 30 seconds, or the query fails.
    pub async fn wait_for_lock_waiters(&self, sessions: i64) -> anyhow::Result<()> {
        const WAITING: &str = "SELECT COUNT(*) FROM pg_stat_activity \
                               WHERE datname = current_database() AND wait_event_type = 'Lock'";
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let waiting = self.query_i64(WAITING).await?;
            if waiting >= sessions {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "{waiting} of the {sessions} expected sessions were waiting for a lock after 30 s"
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Closes the pool and removes the database.
    pub async fn cleanup(mut self) {
        if let Some(database) = self.database.take()
            && let Err(err) = database.close().await
        {
            eprintln!("warning: {err:#}");
        }
        if let Some(resource) = self.resource.take()
            && let Err(err) = resource.remove().await
        {
            eprintln!("warning: failed to remove a test database: {err:#}");
        }
    }

    async fn create_postgres(maintenance_url: String) -> anyhow::Result<Self> {
        let template = ensure_template(&maintenance_url).await?;
        let name = unique_name("botshop_test");
        let mut maintenance = PgConnection::connect(&maintenance_url)
            .await
            .context("failed to connect to the maintenance database")?;
        maintenance
            .execute(AssertSqlSafe(format!(
                r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#
            )))
            .await
            .with_context(|| format!("failed to create database {name} from {template}"))?;
        maintenance.close().await.ok();

        // From here on, dropping `test_database` removes the database even on error.
        let url = url_with_database(&maintenance_url, &name);
        let mut test_database = Self {
            database: None,
            url: url.clone(),
            resource: Some(Resource::Postgres {
                maintenance_url,
                name,
            }),
        };
        test_database.database = Some(Database::connect(&url, test_pool_options()).await?);
        Ok(test_database)
    }

    async fn create_sqlite() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("{}.sqlite3", unique_name("botshop-test")));
        let url = format!("sqlite://{}", path.display());
        let mut test_database = Self {
            database: None,
            url: url.clone(),
            resource: Some(Resource::Sqlite { path }),
        };
        let database = Database::connect(&url, test_pool_options()).await?;
        Migrator::up(database.connection(), None)
            .await
            .context("failed to migrate the SQLite test database")?;
        test_database.database = Some(database);
        Ok(test_database)
    }
}

/// The statement `CatalogRepository::list_products` sends to PostgreSQL for `filter` and
/// `page`: its SQL, with `$n` placeholders, and its values as SQL literals, in order. For
/// tests that look at the plan (`EXPLAIN`, or `PREPARE` and `EXPLAIN EXECUTE` for the
/// generic plan).
pub fn product_page_postgres(
    filter: &domain::catalog::ProductFilter,
    page: domain::Page,
) -> (String, Vec<String>) {
    use sea_orm::QueryTrait as _;
    use sea_orm::sea_query::{PostgresQueryBuilder, QueryBuilder as _};

    let statement = crate::catalog::product_page(filter, page, sea_orm::DatabaseBackend::Postgres)
        .build(sea_orm::DatabaseBackend::Postgres);
    let literals = statement
        .values
        .iter()
        .flat_map(|values| values.0.iter())
        .map(|value| PostgresQueryBuilder.value_to_string(value))
        .collect();
    (statement.sql, literals)
}

/// The relay's claim as PostgreSQL runs it: `$1` the lease in microseconds, `$2`
/// the limit. For tests that look at its plan.
pub fn claim_sql_postgres() -> String {
    crate::outbox::claim_sql(sea_orm::DatabaseBackend::Postgres)
}

impl Drop for TestDatabase {
    /// The fallback for a test that did not reach [`TestDatabase::cleanup`] (it panicked,
    /// most likely). `Drop` cannot await, and blocking the test's own runtime would
    /// deadlock a current-thread runtime, so the removal runs on a helper thread with a
    /// runtime of its own, and is waited for so that the process does not exit first.
    fn drop(&mut self) {
        let Some(resource) = self.resource.take() else {
            return;
        };
        // The pool belongs to the test's runtime; dropping it just lets its connections
        // go. `DROP DATABASE ... WITH (FORCE)` ends any that are still open.
        drop(self.database.take());
        let helper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => {
                    if let Err(err) = runtime.block_on(resource.remove()) {
                        eprintln!("warning: failed to remove a test database: {err:#}");
                    }
                }
                Err(err) => eprintln!("warning: no runtime to remove a test database: {err}"),
            }
        });
        if helper.join().is_err() {
            eprintln!("warning: removing a test database panicked");
        }
    }
}

impl Resource {
    async fn remove(self) -> anyhow::Result<()> {
        match self {
            Resource::Postgres {
                maintenance_url,
                name,
            } => {
                let mut maintenance = PgConnection::connect(&maintenance_url)
                    .await
                    .context("failed to connect to the maintenance database")?;
                maintenance
                    .execute(AssertSqlSafe(format!(
                        r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                    )))
                    .await
                    .with_context(|| format!("failed to drop database {name}"))?;
                maintenance.close().await.ok();
                Ok(())
            }
            Resource::Sqlite { path } => remove_sqlite_files(&path),
        }
    }
}

fn test_pool_options() -> PoolOptions {
    PoolOptions {
        max_connections: 5,
        // Generous: test processes share a small machine.
        acquire_timeout: Duration::from_secs(30),
        sqlite_busy_timeout: Duration::from_secs(30),
        ..PoolOptions::default()
    }
}

/// Makes sure the migrated template exists and returns its name.
async fn ensure_template(maintenance_url: &str) -> anyhow::Result<String> {
    let fingerprint = migrations_fingerprint();
    let template = format!("botshop_template_{fingerprint:016x}");
    let mut maintenance = PgConnection::connect(maintenance_url)
        .await
        .context("failed to connect to the maintenance database")?;

    // The template only ever appears complete (it is renamed into place), so seeing it
    // is enough; otherwise, build it under the lock, looking again once holding it.
    if !database_exists(&mut maintenance, &template).await? {
        // Session-level lock on this one connection; a crashed holder releases it.
        let lock_key = i64::from_ne_bytes(fingerprint.to_ne_bytes());
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(lock_key)
            .execute(&mut maintenance)
            .await
            .context("failed to take the template lock")?;
        let built = build_template(&mut maintenance, maintenance_url, &template).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(lock_key)
            .execute(&mut maintenance)
            .await
            .context("failed to release the template lock");
        built?;
        unlocked?;
    }
    maintenance.close().await.ok();
    Ok(template)
}

/// Builds the template under the lock: migrate a scratch database, then rename it.
async fn build_template(
    maintenance: &mut PgConnection,
    maintenance_url: &str,
    template: &str,
) -> anyhow::Result<()> {
    if database_exists(maintenance, template).await? {
        return Ok(());
    }
    // A leftover from a run that died half-way is dropped and rebuilt.
    let scratch = format!("{template}_build");
    maintenance
        .execute(AssertSqlSafe(format!(
            r#"DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)"#
        )))
        .await
        .context("failed to drop a stale template build")?;
    maintenance
        .execute(AssertSqlSafe(format!(r#"CREATE DATABASE "{scratch}""#)))
        .await
        .context("failed to create the template database")?;

    let database = Database::connect(
        &url_with_database(maintenance_url, &scratch),
        PoolOptions {
            max_connections: 1,
            ..test_pool_options()
        },
    )
    .await?;
    let migrated = Migrator::up(database.connection(), None)
        .await
        .context("failed to migrate the template database");
    // Closed before the rename either way: no connection may remain on a template.
    database.close().await?;
    migrated?;

    maintenance
        .execute(AssertSqlSafe(format!(
            r#"ALTER DATABASE "{scratch}" RENAME TO "{template}""#
        )))
        .await
        .context("failed to rename the template database")?;
    maintenance
        .execute(AssertSqlSafe(format!(
            r#"ALTER DATABASE "{template}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"#
        )))
        .await
        .context("failed to mark the template database")?;
    Ok(())
}

async fn database_exists(maintenance: &mut PgConnection, name: &str) -> anyhow::Result<bool> {
    sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(maintenance)
        .await
        .context("failed to look up a database")
}

/// FNV-1a of the migration names: stable across builds and Rust versions (unlike std's
/// hasher), so every test process agrees on the template's name.
fn migrations_fingerprint() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for migration in Migrator::migrations() {
        for byte in migration.name().bytes().chain(std::iter::once(b'\n')) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// A name no other test database has: the process id, a per-process counter and the
/// clock (in case a process id is reused while an old database lingers).
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let sequence = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}_{}_{sequence}_{nanos:08x}", std::process::id())
}

/// `url` with its database (the path) replaced by `database`, keeping any query string.
fn url_with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

fn docker_engine_configured() -> bool {
    if std::env::var_os("DOCKER_HOST").is_some() {
        return true;
    }
    let mut sockets = vec![PathBuf::from("/var/run/docker.sock")];
    if let Some(home) = std::env::var_os("HOME") {
        sockets.push(Path::new(&home).join(".docker/run/docker.sock"));
    }
    if let Some(runtime_dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        sockets.push(Path::new(&runtime_dir).join("docker.sock"));
    }
    sockets.iter().any(|socket| socket.exists())
}

/// Whether [`REQUIRE_POSTGRES`] is set.
fn postgres_required() -> bool {
    std::env::var(REQUIRE_POSTGRES).is_ok_and(|value| !matches!(value.trim(), "" | "0"))
}

/// This process's PostgreSQL container, once started.
#[derive(Debug)]
struct SharedContainer {
    /// The maintenance URL (the `postgres` database) of the server in the container.
    url: String,
    /// Held for the life of the process, never dropped (see the module docs).
    _container: ContainerAsync<Postgres>,
}

/// The container, or why it could not start. A failure is kept too: every later test
/// fails at once with the same reason instead of trying to start another container.
static CONTAINER: OnceCell<Result<SharedContainer, String>> = OnceCell::const_new();

/// The maintenance URL of this process's container, starting it on first use. Tests that
/// ask at the same time wait for the one start.
async fn shared_container_url() -> anyhow::Result<String> {
    let started = CONTAINER
        .get_or_init(|| async {
            start_container()
                .await
                .map(|(url, container)| SharedContainer {
                    url,
                    _container: container,
                })
                .map_err(|err| format!("{err:#}"))
        })
        .await;
    match started {
        Ok(shared) => Ok(shared.url.clone()),
        Err(reason) => Err(anyhow::anyhow!("{reason}")),
    }
}

async fn start_container() -> anyhow::Result<(String, ContainerAsync<Postgres>)> {
    // PostgreSQL 13+ for `DROP DATABASE ... WITH (FORCE)`; the module defaults to 11.
    let container = Postgres::default()
        .with_tag("16-alpine")
        .with_label(CONTAINER_LABEL, std::process::id().to_string())
        .start()
        .await
        .context(
            "failed to start a PostgreSQL container (is the Docker engine running? \
             or set TEST_DATABASE_URL)",
        )?;
    let host = container
        .get_host()
        .await
        .context("failed to get the container's host")?;
    let port = container
        .get_host_port_ipv4(5432)
        .await
        .context("failed to get the container's port")?;
    Ok((
        format!("postgres://postgres:postgres@{host}:{port}/postgres"),
        container,
    ))
}

fn remove_sqlite_files(path: &Path) -> anyhow::Result<()> {
    let mut first_error = None;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                first_error.get_or_insert(
                    anyhow::Error::new(err).context(format!("failed to remove {file:?}")),
                );
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn or_panic<T>(result: anyhow::Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("failed to prepare a test database: {err:#}"),
    }
}

/// A transaction kept open by [`TestDatabase::hold`]; committing it releases its locks.
pub struct HeldTransaction {
    transaction: sea_orm::DatabaseTransaction,
}

impl fmt::Debug for HeldTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldTransaction").finish_non_exhaustive()
    }
}

impl HeldTransaction {
    /// Runs more SQL in the held transaction (taking more locks, for instance), returning
    /// the number of rows affected.
    ///
    /// # Errors
    /// The database's error, as is (a deadlock, say).
    pub async fn execute(&self, sql: &str) -> anyhow::Result<u64> {
        let result = self
            .transaction
            .execute_unprepared(sql)
            .await
            .with_context(|| format!("failed to execute {sql:?}"))?;
        Ok(result.rows_affected())
    }

    /// Commits, releasing the locks.
    ///
    /// # Errors
    /// If the commit fails.
    pub async fn release(self) -> anyhow::Result<()> {
        self.transaction
            .commit()
            .await
            .context("failed to commit the held transaction")
    }
}

/// Appends `events` in one committed transaction through
/// [`crate::append_outbox_event`], as a change that notifies someone would: for tests
/// that drive a whole server and need events it has no route for yet.
///
/// # Errors
/// When the transaction or an append fails.
pub async fn append_outbox_events(
    database: &Database,
    events: &[domain::outbox::OutboxEvent],
) -> anyhow::Result<Vec<domain::outbox::EventId>> {
    let transaction = database
        .connection()
        .begin()
        .await
        .context("failed to begin")?;
    let mut ids = Vec::with_capacity(events.len());
    for event in events {
        ids.push(crate::append_outbox_event(&transaction, event).await?);
    }
    transaction.commit().await.context("failed to commit")?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_with_database_replaces_only_the_path() {
        assert_eq!(
            url_with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            url_with_database("postgres://u:p@db/postgres?sslmode=disable", "t1"),
            "postgres://u:p@db/t1?sslmode=disable"
        );
        assert_eq!(
            url_with_database("postgres://u@db:5432", "t1"),
            "postgres://u@db:5432/t1"
        );
    }
}
