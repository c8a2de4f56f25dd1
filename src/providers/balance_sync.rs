//! The worker's balance job: the balance of each provider with a `min_balance` read
//! (`action=balance`) every `--balance-interval-secs` seconds; a provider without a threshold
//! is not asked (nothing depends on its balance). The read is claimed in the database first (one
//! conditional update of `balance_checked_at`), so of several workers one asks per
//! interval. Forwarding reads the stored balance: below the provider's `min_balance` it
//! pauses (orders wait queued) and resumes with the first reading above it.

use super::client::{call, unreadable_reply, Reply};
use super::dialect::parse_balance;
use super::worker::{truncate, Worker};
use crate::db::{self, provider_orders, providers};
use crate::domain::provider::Provider;
use crate::metrics;

impl Worker {
    /// Reads `provider`'s balance when it has a threshold and its interval is due.
    pub(super) fn check_balance(&self, provider: &Provider) -> Result<(), diesel::result::Error> {
        if !provider.enabled || provider.min_balance_micros.is_none() {
            return Ok(());
        }
        let mut conn = self.connection()?;
        let due_before = db::now() - chrono::Duration::seconds(self.config.balance_interval_secs);
        if !db::write_tx(&mut conn, |conn| {
            providers::claim_balance_check(conn, provider.id, due_before)
        })? {
            return Ok(());
        }
        let reply = call(provider, &[("action", "balance")]);
        let (read, http_status, body) = match &reply {
            Reply::Answered { status, body } => (
                parse_balance(body).ok_or_else(|| unreadable_reply("balance", Some(*status), body)),
                Some(*status),
                body.clone(),
            ),
            Reply::NotSent(e) | Reply::Lost(e) => (
                Err(format!("no balance reply: {}", truncate(e, 200))),
                None,
                e.clone(),
            ),
        };
        let label = if read.is_ok() { "read" } else { "unreadable" };
        metrics::PROVIDER_REQUESTS.inc(&[&provider.id.to_string(), "balance", label]);
        if let Err(error) = &read {
            tracing::warn!(provider = provider.id, %error, "provider balance read failed");
        }
        db::write_tx(&mut conn, |conn| {
            provider_orders::record_attempt(
                conn,
                provider.id,
                None,
                "balance",
                label,
                http_status,
                &body,
            )?;
            providers::record_balance(conn, provider.id, read.clone())
        })
    }
}
