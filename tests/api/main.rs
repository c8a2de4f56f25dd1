//! Integration tests: real HTTP against the real app and a fresh database per test.
//! Run on SQLite by default; set `TEST_DATABASE_URL=postgres://…` to run on PostgreSQL.

// clippy.toml's allow-*-in-tests covers `#[test]` functions only, not the helpers and
// stand-ins they call; all of this crate is test code, where a failed unwrap is a failed
// test with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect fails the test that reached it"
)]

mod helpers;

mod api_v2;
mod architecture;
mod audit;
mod auth;
mod bad_input;
mod cancels;
mod conflicts;
mod consistency;
mod console;
mod cors;
mod decoding;
mod group_commit;
mod hardening;
mod limits;
mod metrics;
mod order_batches;
mod orders;
mod pool;
mod processes;
mod provider_balance;
mod provider_money;
mod providers;
mod reads;
mod refills;
mod refunds;
mod reports;
mod rollups;
mod round_trips;
mod schema;
mod secrets;
mod service_sync;
mod service_types;
mod smartpanel;
mod spec;
mod spec_for_generators;
mod storage;
mod subscription_upstream;
mod subscriptions;
mod top_ups;
mod webhook_isolation;
mod webhooks;
