//! Upstream providers: the API v2 client, the reading of their replies (`dialect`), and the
//! worker that forwards orders and syncs their status under leases in the database.

mod balance_sync;
mod cancel_sync;
pub mod catalog;
pub mod client;
pub mod dialect;
mod exchange;
pub mod jobs;
mod recovery_watch;
mod refill_sync;
mod subscription_sync;
pub mod worker;

pub use crate::jobs::Wake;
