//! What every handler can reach: [`AppState`], built once per process by [`state`].

use std::sync::Arc;
use std::time::Instant;

use actix_web::web;

use crate::config::Config;
use crate::db::{DbConnection, DbPool};
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
}

/// Shared state for a server process; fails on an inconsistent configuration.
pub fn state(
    pool: DbPool,
    config: Config,
    tokens: TokenKeys,
) -> Result<web::Data<AppState>, String> {
    let policy = config.policy.policy()?;
    Ok(web::Data::from(Arc::new(AppState {
        db_slots: tokio::sync::Semaphore::new(pool.max_size() as usize),
        pool,
        limits: Limits::new(&config.limits),
        config,
        tokens,
        policy,
        wake: Arc::new(Wake::default()),
    })))
}
