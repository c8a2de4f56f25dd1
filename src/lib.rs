//! reseller-api: a public reseller API for SMM panels.
//!
//! The folders are the architecture (`docs/ARCHITECTURE.md` has the whole picture and
//! where each kind of change goes):
//!
//! - `api/`: HTTP handlers, one file per resource, and `api::router`, the one list of
//!   endpoints that mounts the routes and builds the OpenAPI document.
//! - `http/`: plumbing shared by the handlers: process state, middleware, extractors,
//!   authentication, quotas, problem documents, spec assembly. It imports no handler.
//! - `application/`: one file per capability (placing orders, idempotency, disputes,
//!   settling refunds, …); it owns every transaction that guards an invariant.
//! - `domain/`: money, orders, refunds, policy: pure Rust, no actix, no diesel.
//! - `db/`: diesel queries over one connection type for SQLite and PostgreSQL.
//! - `providers/`: the upstream API v2 client, its reply dialects and the worker.
//! - `resources`: the resources as the API returns them (order, refund, account, top-up),
//!   rendered by the handlers and stored in the event log.
//! - `tooling/`: seed data and benchmarks, apart from the product.
//! - `log`: the log lines' writer, a buffer that one thread writes to stderr, so logging a
//!   request never waits on the write; it uses nothing of ours.
//! - `metrics`: the process-wide counters and histograms behind `/metrics`, and the
//!   Prometheus text format; `db` and every layer above it count into it, and it uses
//!   none of them.
//!
//! How a request flows: `api::build_app` wraps the routes in `http::middleware`; a handler
//! takes its `Caller` (or `Admin`) and typed body from `http::extract`, parses it into
//! `domain` values, and makes one `application` call through `AppState::db`, which runs it
//! on the blocking pool (a short read goes through `AppState::read`, inline on SQLite); there the application function opens the `db::write_tx` that
//! guards its invariant and composes `db` queries inside it (on SQLite, run by the
//! database's writer thread as one savepoint of a group commit, `db::writer`). Errors are `error::ApiError`
//! (or an application error that converts into it), rendered by `http::problem` as
//! problem+json. The provider worker, the CLI, the benchmarks and the tests call the same
//! application functions.

pub mod api;
pub mod application;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod jobs;
pub mod log;
pub mod metrics;
pub mod net;
pub mod providers;
pub mod resources;
pub mod secrets;
pub mod tooling;
pub mod webhooks;
