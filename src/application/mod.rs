//! The application layer: one file per capability, each owning the transactions that guard
//! its invariants. Handlers, the worker, the CLI, the benchmarks and the tests call these,
//! never each other.

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod cancels;
pub mod catalog;
pub mod costs;
pub mod disputes;
pub mod events;
pub mod idempotency;
pub mod master_key;
pub mod order_batches;
pub mod orders;
pub mod providers;
pub mod refills;
pub mod refunds;
pub mod retention;
pub mod rollups;
pub mod services;
pub mod signing_keys;
pub mod subscriptions;
pub mod top_ups;
pub mod webhooks;

use crate::db::{self, TxError};
use crate::error::ApiError;

/// A write transaction that failed with a database error refused for a conflict with a
/// concurrent transaction runs again (`db::write_tx`); every other error is final.
impl TxError for ApiError {
    fn is_conflict(&self) -> bool {
        matches!(self, ApiError::Database(error) if db::is_conflict(error))
    }

    fn from_write(error: db::writer::WriteError) -> ApiError {
        error.into()
    }
}
