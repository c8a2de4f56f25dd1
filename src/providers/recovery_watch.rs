//! The worker's recovery watch: orders we refunded because the provider reported Partial
//! or Canceled are asked about again (`action=status&orders=`, those orders only, at most
//! one batch per provider every `--recovery-poll-secs`) until the provider's `charge` fell
//! by the matching share of the expected cost (recovered) or `--recovery-window-secs`
//! passed (unrecovered). Separate from the status sync, which stops at a final status.

use std::collections::HashMap;

use chrono::NaiveDateTime;

use super::client::Reply;
use super::dialect::{parse_multi_status, StatusItem};
use super::exchange::{self, Claimed, Exchange};
use super::worker::{Pass, Worker};
use crate::application::costs::{self, StatusMoney};
use crate::db::{self, DbConnection};
use crate::domain::provider::Provider;

/// Watched orders of one provider, one batch per pass.
pub(super) struct RecoveryWatch<'w>(pub(super) &'w Worker);

impl Exchange for RecoveryWatch<'_> {
    const ACTION: &'static str = "status";
    type Work = Vec<db::costs::Watched>;
    type Read = Option<HashMap<String, StatusItem>>;

    fn per_pass(&self, _: &Provider) -> usize {
        1
    }

    fn claim(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        _: NaiveDateTime,
    ) -> Result<Claimed<Self::Work>, diesel::result::Error> {
        if !provider.enabled {
            return Ok(Claimed::Empty);
        }
        let due_before = db::now() - chrono::Duration::seconds(self.0.config.recovery_poll_secs);
        let watched = db::write_tx(conn, |conn| {
            db::costs::claim_watched(
                conn,
                provider.id,
                due_before,
                provider.batch_size.clamp(1, 100),
            )
        })?;
        if watched.is_empty() {
            return Ok(Claimed::Empty);
        }
        if watched.iter().all(|w| w.provider_order_id.is_none()) {
            // Nothing to ask: only the window can decide.
            db::write_tx(conn, |conn| {
                for w in &watched {
                    costs::record_watch(conn, provider, w.order_id, w.charge, None)?;
                }
                Ok::<_, diesel::result::Error>(())
            })?;
            return Ok(Claimed::Settled);
        }
        Ok(Claimed::Due(watched))
    }

    fn request(&self, watched: &Self::Work) -> Vec<(&'static str, String)> {
        let ids: Vec<&str> = watched
            .iter()
            .filter_map(|w| w.provider_order_id.as_deref())
            .collect();
        vec![("action", "status".into()), ("orders", ids.join(","))]
    }

    fn read(&self, _: &Self::Work, reply: &Reply) -> (Self::Read, &'static str) {
        let (items, _) = exchange::read_statuses(reply, parse_multi_status);
        let label = if items.is_some() {
            "recovery_read"
        } else {
            "recovery_unreadable"
        };
        (items, label)
    }

    fn finish(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        watched: Self::Work,
        items: Self::Read,
        _: &Reply,
        _: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        db::write_tx(conn, |conn| {
            for w in &watched {
                let reported = w
                    .provider_order_id
                    .as_deref()
                    .and_then(|id| items.as_ref()?.get(id))
                    .and_then(|item| match item {
                        StatusItem::Known {
                            charge, currency, ..
                        } => Some(StatusMoney {
                            charge: *charge,
                            currency: currency.clone(),
                            refunded: None,
                        }),
                        _ => None,
                    });
                costs::record_watch(conn, provider, w.order_id, w.charge, reported.as_ref())?;
            }
            Ok::<_, diesel::result::Error>(())
        })
    }
}
