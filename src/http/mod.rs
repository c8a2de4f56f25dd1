//! HTTP plumbing shared by every handler: the process state, middleware, extractors,
//! authentication, quotas, error rendering and spec assembly. Nothing here imports a
//! handler; `api::router` puts handlers and plumbing together.

pub mod auth;
pub mod cors;
pub mod extract;
pub mod idempotency;
pub mod input;
pub mod limits;
pub mod middleware;
pub mod openapi;
pub mod problem;
pub mod state;
pub mod token_cache;
pub mod wire;
