//! What every handler can reach: [`AppState`], built once per process by [`state`].

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use actix_web::web;

use crate::config::Config;
use crate::db::{self, Backend, DbConnection, DbPool};
use crate::domain::policy::Policy;
use crate::error::ApiError;
use crate::http::auth::TokenKeys;
use crate::http::limits::Limits;
use crate::metrics;
use crate::providers::Wake;

/// What every handler can reach: the pool, the configuration, the token keys. (The
/// counters for `/metrics` are process-wide, in `crate::metrics`: the worker bumps them too.)
pub struct AppState {
    pub pool: DbPool,
    pub config: Config,
    pub tokens: TokenKeys,
    pub limits: Limits,
    pub policy: Policy,
    /// Wakes the provider worker when there is an order to send.
    pub wake: Arc<Wake>,
    /// One permit per pooled connection: requests beyond the pool wait here, as futures,
    /// instead of as blocking threads parked on the pool (a context switch each).
    db_slots: tokio::sync::Semaphore,
    /// SQLite: whether short reads run inline, on [`AppState::read`]'s worker connections.
    inline_reads: bool,
    /// SQLite: one read-only connection per thread that called [`AppState::read`] (the
    /// actix workers), opened on first use (`db::reader`).
    readers: thread_local::ThreadLocal<RefCell<DbConnection>>,
}

impl AppState {
    /// Runs blocking database work on the blocking pool, never on an actix worker thread.
    pub async fn db<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let waiting = Instant::now();
        let _slot = self.db_slots.acquire().await.map_err(ApiError::internal)?;
        let pool = self.pool.clone();
        web::block(move || {
            let conn = pool.get();
            metrics::DB_POOL_WAIT.observe(&[], waiting.elapsed());
            let mut conn = conn.map_err(|e| {
                metrics::DB_POOL_TIMEOUTS.inc(&[]);
                ApiError::Unavailable(format!("database busy: {e}"))
            })?;
            work(&mut conn)
        })
        .await
        .map_err(ApiError::internal)?
    }

    /// Runs a short read: a query or two by key, a few rows. On SQLite it runs right here,
    /// on this worker thread's own read-only connection, with no hand-off to the blocking
    /// pool (a WAL read does not wait for the writer; see `db::reader`). On PostgreSQL,
    /// whose reads are network round trips, it is [`AppState::db`]. `work` must only read:
    /// on SQLite a write through it fails (`query_only`). Anything longer (a page of a
    /// list, a report) belongs on [`AppState::db`], where it does not hold up the worker.
    pub async fn read<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        if self.inline_reads {
            let reader = self.readers.get_or_try(|| {
                db::reader::open(self.config.database_url.expose_secret())?
                    .map(RefCell::new)
                    .ok_or(diesel::result::Error::NotFound)
            });
            match reader {
                // Not borrowed already: `work` cannot reach the state, so this holds unless
                // a future is polled inside another's read, which nothing here does.
                Ok(reader) => {
                    if let Ok(mut conn) = reader.try_borrow_mut() {
                        // A panic stays this request's 500, as on the blocking pool,
                        // instead of taking the worker and its connections down.
                        let run = std::panic::AssertUnwindSafe(|| work(&mut conn));
                        return std::panic::catch_unwind(run)
                            .unwrap_or_else(|_| Err(ApiError::internal("a read panicked")));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot open a reader; reading on the pool"),
            }
        }
        self.db(work).await
    }
}

/// Shared state for a server process; fails on an inconsistent configuration.
pub fn state(
    pool: DbPool,
    config: Config,
    tokens: TokenKeys,
) -> Result<web::Data<AppState>, String> {
    let policy = config.policy.policy()?;
    let postgres = matches!(
        Backend::from_url(config.database_url.expose_secret()),
        Backend::Postgres(_)
    );
    Ok(web::Data::from(Arc::new(AppState {
        db_slots: tokio::sync::Semaphore::new(pool.max_size() as usize),
        inline_reads: matches!(
            Backend::from_url(config.database_url.expose_secret()),
            Backend::Sqlite(_)
        ),
        readers: thread_local::ThreadLocal::new(),
        pool,
        limits: Limits::new(&config.limits, postgres),
        config,
        tokens,
        policy,
        wake: Arc::new(Wake::default()),
    })))
}
