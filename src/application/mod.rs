//! The application layer: one file per capability, each owning the transactions that guard
//! its invariants. Handlers, the worker, the CLI, the benchmarks and the tests call these,
//! never each other.

pub mod accounts;
pub mod disputes;
pub mod idempotency;
pub mod orders;
pub mod providers;
pub mod refills;
pub mod refunds;
pub mod retention;
pub mod services;
pub mod signing_keys;
pub mod top_ups;
