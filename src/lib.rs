//! reseller-api: a public reseller API for SMM panels.
//!
//! How a request flows: `app::build_app` mounts `api::routes`; a handler takes its
//! `Caller` (or `Admin`) and typed body, parses it into `domain` values, and runs its
//! database work through `AppState::db` on the blocking pool, where `db` queries compose
//! inside one `db::write_tx`. Errors are `error::ApiError`, rendered as problem+json.

pub mod api;
pub mod app;
pub mod auth;
pub mod bench;
pub mod bench_load;
pub mod config;
pub mod cors;
pub mod db;
pub mod domain;
pub mod error;
pub mod limits;
pub mod seed;
pub mod worker;
