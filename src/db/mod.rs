//! Persistence: one connection type over SQLite and PostgreSQL, migrations, queries.
//!
//! Reads take `&mut DbConnection`; every query that changes a row takes
//! `&mut` [`WriteConn`], which only [`write_tx`] hands out, so a write cannot run outside a
//! write transaction (nor, on SQLite, outside the group-commit writer). The caller that
//! owns an invariant opens the transaction with [`write_tx`]; helpers compose inside it.
//!
//! **One row by its key**: a query that reads one row by a primary or unique key uses
//! `get_result`, not `first`. `first` adds `LIMIT ?`, and SQLite (3.53) looks at that bound
//! value when it plans the statement, so every new binding expires the prepared statement
//! and the next step parses and plans the SQL again: diesel's statement cache then saves
//! nothing. (Measured with callgrind on `GET /v1/orders/{id}`: one `sqlite3Reprepare` per
//! request, 16 % of the server's instructions.) Without the `LIMIT` the statement stays
//! prepared. `first` stays right where the query may match several rows.

pub mod accounts;
pub mod alerts;
pub mod amounts;
pub mod api_keys;
pub mod audit;
pub mod backend;
pub mod backup;
pub mod bulk;
pub mod cancels;
pub mod costs;
pub mod events;
pub mod gauges;
pub mod idempotency;
pub mod ids;
pub mod jobs;
pub mod jwt_keys;
pub mod lease;
pub mod ledger;
pub mod orders;
pub mod policy;
pub mod provider_orders;
pub mod providers;
pub mod quota_cells;
pub mod reader;
pub mod refills;
pub mod refunds;
pub mod reports;
pub mod revocations;
pub mod rollups;
pub mod schema;
pub mod sealed;
pub mod services;
pub mod storage;
pub mod subscriptions;
pub mod top_ups;
pub mod verify;
pub mod webhooks;
pub mod writer;

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

/// The columns of the row type `R`, one per field and named by it (`#[derive(Selectable)]`):
/// a query that selects them loads `R` with each field bound to the column of its name,
/// never by the table's column order (three `i64` money columns of an order would
/// otherwise swap silently if a migration reordered them). The selection is a plain tuple
/// of columns, the same on both backends, so a query keeps its static statement type and
/// still runs on either backend's own connection (`backend::get_result_native`).
pub fn columns<R: Selectable<diesel::sqlite::Sqlite>>() -> R::SelectExpression {
    R::construct_selection()
}

/// PostgreSQL first: `SqliteConnection` accepts any string as a path.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

pub type DbPool = Pool<ConnectionManager<DbConnection>>;

/// A connection checked out of a [`DbPool`].
pub type PooledConnection = diesel::r2d2::PooledConnection<ConnectionManager<DbConnection>>;

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
    #[error("cannot start the SQLite writer's threads: {0}")]
    Thread(std::io::Error),
}

/// Applies pending migrations for the backend behind `url`.
pub fn migrate(url: &str) -> Result<(), SetupError> {
    migrate_through(url, None)
}

/// Applies pending migrations up to and including the one whose version starts with
/// `last` (all of them with `None`): upgrade tests build a database as an earlier version
/// left it, then migrate the rest.
pub fn migrate_through(url: &str, last: Option<&str>) -> Result<(), SetupError> {
    fn run<C: MigrationHarness<B>, B: diesel::backend::Backend>(
        conn: &mut C,
        source: EmbeddedMigrations,
        last: Option<&str>,
    ) -> Result<(), SetupError> {
        let Some(last) = last else {
            return conn
                .run_pending_migrations(source)
                .map(drop)
                .map_err(|e| SetupError::Migrate(e.to_string()));
        };
        let pending = conn
            .pending_migrations(source)
            .map_err(|e| SetupError::Migrate(e.to_string()))?;
        for next in pending {
            let version = next.name().version().to_string();
            conn.run_migration(next.as_ref())
                .map_err(|e| SetupError::Migrate(e.to_string()))?;
            if version.replace('-', "").starts_with(&last.replace('-', "")) {
                break;
            }
        }
        Ok(())
    }
    match Backend::from_url(url) {
        Backend::Postgres(url) => {
            let mut conn = PgConnection::establish(&url)?;
            conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let result = run(&mut conn, POSTGRES_MIGRATIONS, last);
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
            // SQLite changes a table's constraints only by rebuilding it, which a parent
            // table cannot survive with foreign keys enforced (its DROP deletes the children's
            // parents): migrations run without them, as SQLite's own procedure says, and
            // every reference is checked once they have run.
            conn.batch_execute("PRAGMA foreign_keys = OFF;")?;
            run(&mut conn, SQLITE_MIGRATIONS, last)?;
            let broken: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "(SELECT COUNT(*) FROM pragma_foreign_key_check)",
            ))
            .get_result(&mut conn)?;
            if broken > 0 {
                return Err(SetupError::Migrate(format!(
                    "{broken} rows refer to rows that do not exist after the migrations"
                )));
            }
            Ok(())
        }
    }
}

/// Reverts every applied migration from `version` (a migration's directory prefix, as
/// `2026-12-07-001100`) to the newest, newest first: the rollback tests take a database back
/// to what the release before that migration reads, then migrate again, and naming the
/// migration (not a count) keeps them true as later migrations are added. PostgreSQL under
/// the migration lock; SQLite with foreign keys off and every reference checked after, as
/// [`migrate_through`] runs them.
pub fn revert_through(url: &str, version: &str) -> Result<(), SetupError> {
    let first: String = version.chars().filter(char::is_ascii_digit).collect();
    fn run<C: MigrationHarness<B>, B: diesel::backend::Backend>(
        conn: &mut C,
        source: fn() -> EmbeddedMigrations,
        first: &str,
    ) -> Result<(), SetupError> {
        loop {
            let applied = conn
                .applied_migrations()
                .map_err(|e| SetupError::Migrate(e.to_string()))?;
            let newest = applied.iter().map(|v| v.to_string()).max();
            match newest {
                // Versions are fixed-width digit strings, so text order is time order.
                Some(newest) if newest.as_str() >= first => {
                    conn.revert_last_migration(source())
                        .map_err(|e| SetupError::Migrate(e.to_string()))?;
                }
                _ => return Ok(()),
            }
        }
    }
    if first.is_empty() {
        return Err(SetupError::Migrate(format!(
            "{version:?} does not name a migration"
        )));
    }
    match Backend::from_url(url) {
        Backend::Postgres(url) => {
            let mut conn = PgConnection::establish(&url)?;
            conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let result = run(&mut conn, || POSTGRES_MIGRATIONS, &first);
            conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
            result
        }
        Backend::Sqlite(path) => {
            let mut conn = SqliteConnection::establish(&path)?;
            conn.batch_execute("PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = OFF;")?;
            run(&mut conn, || SQLITE_MIGRATIONS, &first)?;
            let broken: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "(SELECT COUNT(*) FROM pragma_foreign_key_check)",
            ))
            .get_result(&mut conn)?;
            if broken > 0 {
                return Err(SetupError::Migrate(format!(
                    "{broken} rows refer to rows that do not exist after reverting"
                )));
            }
            Ok(())
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
struct SessionSettings {
    durability: Durability,
    /// The SQLite file's writer, kept alive as long as the pool (see [`writer`]).
    _writer: Option<std::sync::Arc<writer::Writer>>,
}

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        let settings = match (conn, self.durability) {
            (DbConnection::Sqlite(conn), durability) => {
                conn.batch_execute(writer::sqlite_settings(durability))
            }
            (DbConnection::Pg(_), Durability::Full) => Ok(()),
            (DbConnection::Pg(conn), Durability::Relaxed) => {
                conn.batch_execute("SET synchronous_commit = off")
            }
        };
        settings.map_err(diesel::r2d2::Error::QueryError)
    }
}

/// How a pool is built.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Pooled connections.
    pub size: u32,
    pub durability: Durability,
    /// SQLite: write transactions that may wait for the writer beyond the batch it is
    /// running; one more is refused with 503 (`--write-queue`).
    pub write_queue: usize,
}

/// The write queue of pools built by [`connect`] and [`connect_with`], which the server
/// does not use (it passes `--write-queue` to [`connect_options`]): commands and tools.
pub const TOOL_WRITE_QUEUE: usize = 1024;

/// Builds the pool. Run [`migrate`] first: it also creates the SQLite file.
pub fn connect(url: &str, size: u32) -> Result<DbPool, SetupError> {
    connect_with(url, size, Durability::Full)
}

/// [`connect`], with a choice of durability for databases that are thrown away.
pub fn connect_with(url: &str, size: u32, durability: Durability) -> Result<DbPool, SetupError> {
    connect_options(
        url,
        PoolOptions {
            size,
            durability,
            write_queue: TOOL_WRITE_QUEUE,
        },
    )
}

/// Builds the pool and, on SQLite, starts (or joins) the file's writer: every
/// [`write_tx`] on a connection of this file then runs on it.
pub fn connect_options(url: &str, options: PoolOptions) -> Result<DbPool, SetupError> {
    let (target, writer) = match Backend::from_url(url) {
        Backend::Postgres(url) => (url, None),
        Backend::Sqlite(path) => {
            let writer = writer::start(&path, options.durability, options.write_queue)?;
            (path, Some(writer))
        }
    };
    let pool = Pool::builder()
        .max_size(options.size.max(1))
        .connection_timeout(Duration::from_secs(10))
        // r2d2's `SELECT 1` on every checkout stays (on PostgreSQL a third of a read's
        // time): without it a connection the server dropped is not always noticed. diesel
        // marks it broken when a statement's result shows the connection gone, but not
        // when the statement cannot be sent at all, and such a connection went back to
        // the pool to fail again (`tests/api/pool.rs` caught it under load).
        .connection_customizer(Box::new(SessionSettings {
            durability: options.durability,
            _writer: writer,
        }))
        .build(ConnectionManager::<DbConnection>::new(target))?;
    Ok(pool)
}

/// The connection of a write transaction: the only way to call a `db` function that
/// changes a row (INSERT, UPDATE, DELETE, upserts, lease claims and releases, claims of
/// idempotency keys). Only [`write_tx`] makes one (its field is private to `db`), and
/// hands it to its closure as `&mut WriteConn`; so code holding a pooled connection, a
/// reader (`reader::open`) or `AppState::read`'s connection cannot write through it, and
/// on SQLite every write runs on the file's group-commit writer ([`writer`]).
///
/// It derefs to [`DbConnection`], so reads inside the transaction take it unchanged
/// (`&mut WriteConn` coerces to `&mut DbConnection`); a write helper reborrows the inner
/// connection (`let conn: &mut DbConnection = conn;`) for diesel's generic calls.
///
/// Writes outside it, each inside `src/db/` (`tests/api/architecture.rs` fails on diesel's
/// write DSL or raw SQL anywhere else): [`migrate`] and its advisory lock; the session
/// settings of a connection (`PRAGMA`s and `SET` in [`SessionSettings`], [`reader::open`],
/// [`writer`]'s own connections); the writer's `BEGIN IMMEDIATE`, savepoints and `COMMIT`
/// and its checkpoints; [`backup`]'s `VACUUM INTO`; [`bulk::analyze`], the statistics
/// after a bulk load (PostgreSQL's `VACUUM` cannot run inside a transaction).
///
/// A write helper cannot be called with a plain connection:
///
/// ```compile_fail,E0308
/// use reseller_api::db::{self, DbConnection};
/// fn bump_outside(conn: &mut DbConnection) {
///     let _ = db::revocations::bump(conn); // expected `&mut WriteConn<'_>`
/// }
/// ```
///
/// nor can one be made outside `db`:
///
/// ```compile_fail,E0423
/// use reseller_api::db::{DbConnection, WriteConn};
/// fn forge(conn: &mut DbConnection) -> WriteConn<'_> {
///     WriteConn(conn) // cannot initialize a tuple struct which contains private fields
/// }
/// ```
///
/// while inside [`write_tx`] both the write and the reads work (this example compiles, so
/// the two above fail for the reason they show: stable rustdoc does not check the codes):
///
/// ```no_run
/// use reseller_api::db::{self, DbConnection, WriteConn};
/// fn bump(conn: &mut DbConnection) -> diesel::QueryResult<i64> {
///     db::write_tx(conn, |conn: &mut WriteConn| {
///         db::revocations::bump(conn)?;
///         db::revocations::generation(conn)
///     })
/// }
/// ```
pub struct WriteConn<'a>(&'a mut DbConnection);

impl std::ops::Deref for WriteConn<'_> {
    type Target = DbConnection;

    fn deref(&self) -> &DbConnection {
        self.0
    }
}

impl std::ops::DerefMut for WriteConn<'_> {
    fn deref_mut(&mut self) -> &mut DbConnection {
        self.0
    }
}

/// How many times [`write_tx`] runs a transaction that keeps conflicting before it gives up.
const CONFLICT_ATTEMPTS: u32 = 5;

/// An error a write transaction can end with: a database error, or an error that may
/// carry one, which tells whether it is a conflict with a concurrent transaction.
pub trait TxError: From<diesel::result::Error> {
    /// True when the database refused the transaction because of a concurrent one
    /// ([`is_conflict`]): nothing of it committed, and running it again may succeed.
    fn is_conflict(&self) -> bool;

    /// The SQLite writer did not run the transaction, or did not keep it. By default the
    /// refusal is carried inside a diesel error ([`writer::WriteError::into_diesel`]),
    /// for error types that hold nothing else; an error type that reaches a client maps it
    /// itself (`ApiError`: 503 for a full queue or a stopped writer).
    fn from_write(error: writer::WriteError) -> Self {
        Self::from(error.into_diesel())
    }
}

impl TxError for diesel::result::Error {
    fn is_conflict(&self) -> bool {
        is_conflict(self)
    }
}

/// True when PostgreSQL refused a statement or a commit because of a concurrent
/// transaction: a serialization failure (SQLSTATE 40001) or a deadlock (40P01), whose
/// victim is rolled back whole. Diesel 2.3 names 40001 but gives 40P01 no kind of its own
/// and keeps the SQLSTATE to itself, so a deadlock is known by PostgreSQL's message (in
/// English unless the server's `lc_messages` says otherwise).
///
/// SQLite's "database is locked" is not one: a writer takes the lock up front
/// (`BEGIN IMMEDIATE`) and waits up to `busy_timeout` (30 s) for it, so there is no lock
/// upgrade to fail, and a lock still held after 30 s is not something to retry at once.
pub fn is_conflict(error: &diesel::result::Error) -> bool {
    use diesel::result::DatabaseErrorKind;
    match error {
        diesel::result::Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        diesel::result::Error::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            info.message() == "deadlock detected"
        }
        _ => false,
    }
}

/// True when `error` says the connection itself is gone (PostgreSQL closed it, or a
/// command could not be sent) rather than that a statement failed: the request is
/// answered 503 `unavailable`, not 500.
pub fn is_lost_connection(error: &diesel::result::Error) -> bool {
    use diesel::result::DatabaseErrorKind;
    matches!(
        error,
        diesel::result::Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _
        )
    )
}

/// Runs `f` in a write transaction, handing it the transaction's [`WriteConn`] (the only
/// way to one, so the only way to write). On SQLite it is handed to the file's writer
/// ([`writer`]), which runs it in a savepoint of a batch under one `BEGIN IMMEDIATE` and
/// one commit, and this returns once that commit is on disk (or `f` failed and its
/// savepoint was rolled back, taking nothing else with it); a full write queue is refused
/// at once ([`writer::WriteError::QueueFull`], mapped by [`TxError::from_write`]). Without a writer (a connection not from a pool of
/// ours) it runs here under its own `BEGIN IMMEDIATE`. On PostgreSQL it is an ordinary
/// transaction on `conn`, where writers rely on conditional updates and row locks.
/// Nested [`Connection::transaction`] calls inside `f` become savepoints. What `f`
/// records with `metrics::on_commit` is counted only once it has committed.
///
/// When the database rolls the transaction back for a conflict with a concurrent one
/// (a deadlock or a serialization failure, [`is_conflict`]), the whole transaction runs
/// again, after a short random pause that grows (5–10 ms, up to 5–50 ms), at most
/// [`CONFLICT_ATTEMPTS`] times in all: callers never see a conflict that a second try
/// resolves. That is why `f` is `Fn`: it must be able to run again from the start, and
/// whatever it does outside the database is done once per attempt. Only a transaction
/// that ended (nothing of it committed) is run again; called inside a transaction of the
/// caller's, `f` runs once, as a savepoint, and a conflict is the caller's to handle.
///
/// `f` may run on the writer's thread, hence `Sync` (and `Send` results); it borrows
/// freely, since this does not return before the writer is done with it.
pub fn write_tx<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: Fn(&mut WriteConn<'_>) -> Result<T, E> + Sync,
    T: Send,
    E: TxError + Send,
{
    let f = |conn: &mut DbConnection| f(&mut WriteConn(conn));
    if !outside_transaction(conn) {
        return write_tx_once(conn, &f);
    }
    let writer = writer::of(conn)?;
    let mut attempt = 1;
    loop {
        let result = match &writer {
            Some(writer) => writer.run(&f).unwrap_or_else(|e| Err(E::from_write(e))),
            None => write_tx_once(conn, &f),
        };
        match result {
            Err(error)
                if attempt < CONFLICT_ATTEMPTS
                    && error.is_conflict()
                    && outside_transaction(conn) =>
            {
                tracing::info!(
                    attempt,
                    "a write transaction conflicted with a concurrent one; it was rolled back and runs again"
                );
                std::thread::sleep(conflict_pause(attempt));
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// The pause before attempt `attempt + 1`: random, so the two sides of a deadlock do not
/// meet again in step, and growing, so a hot row gets room.
fn conflict_pause(attempt: u32) -> Duration {
    let ceiling = (10u64 << (attempt - 1).min(3)).min(50);
    Duration::from_millis(rand::random_range(5..=ceiling))
}

/// True when `conn` is in no transaction (and its transaction state is sound).
fn outside_transaction(conn: &mut DbConnection) -> bool {
    matches!(
        <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn)
            .transaction_depth(),
        Ok(None)
    )
}

fn write_tx_once<T, E, F>(conn: &mut DbConnection, f: &F) -> Result<T, E>
where
    F: Fn(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    crate::metrics::in_transaction(|| write_tx_uncounted(conn, f))
}

fn write_tx_uncounted<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    if !outside_transaction(conn) {
        // Nested: a savepoint of the transaction `conn` is in.
        return conn.transaction(f);
    }
    let DbConnection::Sqlite(inner) = conn else {
        return conn.transaction(f);
    };
    diesel::connection::AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
    let result = f(conn);
    finish_tx(conn, result)
}

/// Runs `f` in a read-only transaction that sees one consistent snapshot of the whole
/// database, however many queries it makes: `REPEATABLE READ READ ONLY` on PostgreSQL; on
/// SQLite a deferred `BEGIN` (never `IMMEDIATE`, so writers carry on), whose first read
/// fixes the snapshot in WAL mode. Writes committed meanwhile are not seen.
pub fn snapshot_tx<T, F>(conn: &mut DbConnection, f: F) -> QueryResult<T>
where
    F: FnOnce(&mut DbConnection) -> QueryResult<T>,
{
    type Manager = diesel::connection::AnsiTransactionManager;
    match conn {
        DbConnection::Pg(inner) => Manager::begin_transaction_sql(
            inner,
            "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY",
        )?,
        DbConnection::Sqlite(inner) => Manager::begin_transaction_sql(inner, "BEGIN DEFERRED")?,
    }
    let result = f(conn);
    finish_tx(conn, result)
}

/// [`snapshot_tx`] when `conn` is in no transaction; inside one, `f` reads in it as it is.
pub fn consistent_read<T, F>(conn: &mut DbConnection, f: F) -> QueryResult<T>
where
    F: FnOnce(&mut DbConnection) -> QueryResult<T>,
{
    if outside_transaction(conn) {
        snapshot_tx(conn, f)
    } else {
        f(conn)
    }
}

/// Commits the transaction `conn` is in when `result` is `Ok`, else rolls it back.
fn finish_tx<T, E>(conn: &mut DbConnection, result: Result<T, E>) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    match result {
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

/// Asks the database to answer a trivial statement (`SELECT 1`): the readiness check.
pub fn ping(conn: &mut DbConnection) -> QueryResult<()> {
    conn.batch_execute("SELECT 1")
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
