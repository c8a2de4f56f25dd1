//! Persistence: one connection type over SQLite and PostgreSQL, migrations, queries.
//!
//! Queries take `&mut DbConnection` so they compose inside one transaction; the caller
//! that owns an invariant opens the transaction with [`write_tx`].

pub mod accounts;
pub mod api_keys;
pub mod backend;
pub mod backup;
pub mod gauges;
pub mod idempotency;
pub mod jwt_keys;
pub mod ledger;
pub mod orders;
pub mod policy;
pub mod provider_orders;
pub mod providers;
pub mod refills;
pub mod refunds;
pub mod reports;
pub mod schema;
pub mod services;
pub mod top_ups;
pub mod verify;

use std::path::Path;
use std::time::Duration;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// Serializes migrations of several processes starting against one PostgreSQL.
const MIGRATION_LOCK: i64 = 0x7265_7365_6c6c;

/// PostgreSQL first: `SqliteConnection` accepts any string as a path.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

pub type DbPool = Pool<ConnectionManager<DbConnection>>;

/// Where the data lives, parsed from `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Postgres(String),
    Sqlite(String),
}

impl Backend {
    pub fn from_url(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(url.to_string())
        } else {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            Backend::Sqlite(path.to_string())
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("migrations failed: {0}")]
    Migrate(String),
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("cannot create the database folder: {0}")]
    Io(#[from] std::io::Error),
}

/// Applies pending migrations for the backend behind `url`.
pub fn migrate(url: &str) -> Result<(), SetupError> {
    match Backend::from_url(url) {
        Backend::Postgres(url) => {
            let mut conn = PgConnection::establish(&url)?;
            conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let result = conn
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(drop)
                .map_err(|e| SetupError::Migrate(e.to_string()));
            conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
            result
        }
        Backend::Sqlite(path) => {
            if let Some(parent) = Path::new(&path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent)?;
                }
            }
            let mut conn = SqliteConnection::establish(&path)?;
            // WAL is a property of the database file: set it once here, not per pooled
            // connection, where concurrent switches race into "database is locked".
            conn.batch_execute("PRAGMA busy_timeout = 30000; PRAGMA journal_mode = WAL;")?;
            conn.run_pending_migrations(SQLITE_MIGRATIONS)
                .map(drop)
                .map_err(|e| SetupError::Migrate(e.to_string()))
        }
    }
}

/// Whether an acknowledged commit must survive a power failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// It must: SQLite `synchronous = FULL` (NORMAL would survive only a process crash),
    /// PostgreSQL's own default. The only setting the server runs with.
    Full,
    /// It need not, because the database is thrown away after use (tests): SQLite
    /// `synchronous = OFF`, PostgreSQL `synchronous_commit = off`. Neither risks
    /// corruption; a crash may lose the latest commits.
    Relaxed,
}

#[derive(Debug)]
struct SessionSettings(Durability);

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        let settings = match (conn, self.0) {
            (DbConnection::Sqlite(conn), Durability::Full) => conn.batch_execute(
                "PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
            ),
            (DbConnection::Sqlite(conn), Durability::Relaxed) => conn.batch_execute(
                "PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; PRAGMA synchronous = OFF;",
            ),
            (DbConnection::Pg(_), Durability::Full) => Ok(()),
            (DbConnection::Pg(conn), Durability::Relaxed) => {
                conn.batch_execute("SET synchronous_commit = off")
            }
        };
        settings.map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Builds the pool. Run [`migrate`] first: it also creates the SQLite file.
pub fn connect(url: &str, size: u32) -> Result<DbPool, SetupError> {
    connect_with(url, size, Durability::Full)
}

/// [`connect`], with a choice of durability for databases that are thrown away.
pub fn connect_with(url: &str, size: u32, durability: Durability) -> Result<DbPool, SetupError> {
    let target = match Backend::from_url(url) {
        Backend::Postgres(url) => url,
        Backend::Sqlite(path) => path,
    };
    let pool = Pool::builder()
        .max_size(size.max(1))
        .connection_timeout(Duration::from_secs(10))
        .connection_customizer(Box::new(SessionSettings(durability)))
        .build(ConnectionManager::<DbConnection>::new(target))?;
    Ok(pool)
}

/// Runs `f` in a write transaction: `BEGIN IMMEDIATE` on SQLite, so the write lock is
/// taken up front and a read-then-write never fails on lock upgrade; an ordinary
/// transaction on PostgreSQL, where writers rely on conditional updates and row locks.
/// Nested [`Connection::transaction`] calls inside `f` become savepoints. What `f`
/// records with `metrics::on_commit` is counted only once it has committed.
pub fn write_tx<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    crate::metrics::in_transaction(|| write_tx_uncounted(conn, f))
}

fn write_tx_uncounted<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let DbConnection::Sqlite(inner) = conn else {
        return conn.transaction(f);
    };
    diesel::connection::AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok(value) => {
            match <DbConnection as TransactionManager<DbConnection>>::commit_transaction(conn) {
                Ok(()) => Ok(value),
                Err(error) => {
                    // A failed COMMIT leaves the transaction open; close it before reporting.
                    let _ =
                        <DbConnection as TransactionManager<DbConnection>>::rollback_transaction(
                            conn,
                        );
                    Err(error.into())
                }
            }
        }
        Err(error) => {
            <DbConnection as TransactionManager<DbConnection>>::rollback_transaction(conn)?;
            Err(error)
        }
    }
}

/// The current UTC time at the microsecond precision both backends store.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// True when `error` is a unique-constraint violation.
pub fn is_unique_violation(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}
