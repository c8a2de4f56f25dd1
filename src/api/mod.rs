//! HTTP handlers, one file per resource: extract, authorize, parse into domain types,
//! make one application call, render. `router` lists every endpoint once.

pub mod accounts;
pub mod admin_orders;
pub mod alerts;
pub mod api_keys;
pub mod api_v2;
pub mod api_v2_input;
pub mod audit;
pub mod cancels;
pub mod dashboard;
pub mod events;
pub mod ledger;
pub mod ops;
pub mod order_batches;
pub mod orders;
pub mod provider_health;
pub mod provider_money;
pub mod providers;
pub mod refills;
pub mod refund_standing;
pub mod refunds;
pub mod reports;
pub mod review;
pub mod router;
pub mod services;
pub mod subscriptions;
pub mod tokens;
pub mod top_ups;
pub mod webhooks;

pub use router::{api_doc, build_app, routes};
