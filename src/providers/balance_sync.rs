//! The worker's balance job: the balance of each provider with a `min_balance` read
//! (`action=balance`) every `--balance-interval-secs` seconds; a provider without a threshold
//! is not asked (nothing depends on its balance). The read is claimed in the database first (one
//! conditional update of `balance_checked_at`), so of several workers one asks per
//! interval. Forwarding reads the stored balance: below the provider's `min_balance` it
//! pauses (orders wait queued) and resumes with the first reading above it.

use chrono::NaiveDateTime;

use super::client::{unreadable_reply, Reply};
use super::dialect::parse_balance;
use super::exchange::{Claimed, Exchange};
use super::worker::{truncate, Pass, Worker};
use crate::db::{self, providers, DbConnection};
use crate::domain::money::SignedMoney;
use crate::domain::provider::Provider;

/// Reads a provider's balance when it has a threshold and its interval is due.
pub(super) struct BalanceRead<'w>(pub(super) &'w Worker);

impl Exchange for BalanceRead<'_> {
    const ACTION: &'static str = "balance";
    type Work = ();
    /// The balance and its currency, or why there is none.
    type Read = Result<(SignedMoney, Option<String>), String>;

    fn per_pass(&self, _: &Provider) -> usize {
        1
    }

    fn claim(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        _: NaiveDateTime,
    ) -> Result<Claimed<()>, diesel::result::Error> {
        if !provider.enabled || provider.min_balance.is_none() {
            return Ok(Claimed::Empty);
        }
        let due_before = db::now() - chrono::Duration::seconds(self.0.config.balance_interval_secs);
        let claimed = db::write_tx(conn, |conn| {
            providers::claim_balance_check(conn, provider.id, due_before)
        })?;
        Ok(if claimed {
            Claimed::Due(())
        } else {
            Claimed::Empty
        })
    }

    fn request(&self, _: &()) -> Vec<(&'static str, String)> {
        vec![("action", "balance".into())]
    }

    fn read(&self, _: &(), reply: &Reply) -> (Self::Read, &'static str) {
        let read = match reply {
            Reply::Answered { status, body } => {
                parse_balance(body).ok_or_else(|| unreadable_reply("balance", Some(*status), body))
            }
            Reply::NotSent(e) | Reply::Lost(e) => {
                Err(format!("no balance reply: {}", truncate(e, 200)))
            }
        };
        let label = if read.is_ok() { "read" } else { "unreadable" };
        (read, label)
    }

    fn finish(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        _: (),
        read: Self::Read,
        _: &Reply,
        _: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        if let Err(error) = &read {
            tracing::warn!(provider = provider.id.get(), %error, "provider balance read failed");
        }
        db::write_tx(conn, |conn| {
            providers::record_balance(conn, provider.id, read.clone())
        })
    }
}
