//! Integration tests: real HTTP against the real app and a fresh database per test.
//! Run on SQLite by default; set `TEST_DATABASE_URL=postgres://…` to run on PostgreSQL.

mod helpers;

mod api_v2;
mod architecture;
mod auth;
mod bad_input;
mod conflicts;
mod consistency;
mod console;
mod cors;
mod decoding;
mod limits;
mod metrics;
mod orders;
mod processes;
mod providers;
mod refunds;
mod reports;
mod schema;
mod spec;
mod spec_for_generators;
mod top_ups;
