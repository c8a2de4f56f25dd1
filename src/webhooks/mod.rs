//! Webhook delivery per Standard Webhooks 1.0: signing, a guarded HTTP client, and the
//! worker that queues each committed event for every endpoint it matches and delivers it
//! under leases in the database, retrying on the configured schedule. The worker also
//! runs the refund-rate alert evaluation (`application::alerts`) at its interval.

pub mod send;
pub mod sign;
pub mod worker;
