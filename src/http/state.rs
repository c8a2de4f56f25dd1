//! What every handler can reach: [`AppState`], built once per process by [`state`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use actix_web::web;

use crate::config::Config;
use crate::db::{DbConnection, DbPool};
use crate::domain::policy::Policy;
use crate::error::ApiError;
use crate::http::auth::TokenKeys;
use crate::http::limits::Limits;
use crate::providers::Wake;

/// What every handler can reach: the pool, the configuration, the token keys.
pub struct AppState {
    pub pool: DbPool,
    pub config: Config,
    pub tokens: TokenKeys,
    pub metrics: Metrics,
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
        let _slot = self.db_slots.acquire().await.map_err(ApiError::internal)?;
        let pool = self.pool.clone();
        web::block(move || {
            let mut conn = pool
                .get()
                .map_err(|e| ApiError::Unavailable(format!("database busy: {e}")))?;
            work(&mut conn)
        })
        .await
        .map_err(ApiError::internal)?
    }
}

/// Request counters for `/metrics`, by status code.
#[derive(Default)]
pub struct Metrics {
    by_status: Mutex<BTreeMap<u16, u64>>,
    duration_micros: Mutex<u128>,
}

impl Metrics {
    pub fn record(&self, status: u16, micros: u128) {
        if let Ok(mut counts) = self.by_status.lock() {
            *counts.entry(status).or_default() += 1;
        }
        if let Ok(mut total) = self.duration_micros.lock() {
            *total += micros;
        }
    }

    /// The Prometheus text exposition of the counters.
    pub fn render(&self) -> String {
        let counts = self.by_status.lock().map(|c| c.clone()).unwrap_or_default();
        let total: u64 = counts.values().sum();
        let micros = self.duration_micros.lock().map(|d| *d).unwrap_or(0);
        let mut out = String::from(
            "# HELP http_requests_total HTTP requests served, by status.\n# TYPE http_requests_total counter\n",
        );
        for (status, count) in counts {
            out.push_str(&format!(
                "http_requests_total{{status=\"{status}\"}} {count}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP http_request_duration_seconds Time spent serving requests.\n# TYPE http_request_duration_seconds summary\nhttp_request_duration_seconds_sum {}\nhttp_request_duration_seconds_count {total}\n",
            micros as f64 / 1e6
        ));
        out
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
        metrics: Metrics::default(),
        policy,
        wake: Arc::new(Wake::default()),
    })))
}
