//! HTTP handlers, one file per resource: extract, authorize, parse into domain types,
//! make one application call, render. `router` lists every endpoint once.

pub mod accounts;
pub mod admin_orders;
pub mod api_keys;
pub mod api_v2;
pub mod api_v2_input;
pub mod dashboard;
pub mod ledger;
pub mod ops;
pub mod orders;
pub mod provider_health;
pub mod providers;
pub mod refund_standing;
pub mod refunds;
pub mod reports;
pub mod review;
pub mod router;
pub mod services;
pub mod tokens;
pub mod top_ups;

pub use router::{api_doc, build_app, routes};
