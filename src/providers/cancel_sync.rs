//! The worker's cancel job: queued cancel requests sent to their provider in batches
//! (`action=cancel&orders=`), each request under its own lease with every write fenced by
//! its claim's token. A cancel is safe to send again (the provider cancels once or says
//! it cannot), so a send without a certain answer is retried with backoff, like an `add`
//! to a provider that deduplicates. An accepted cancel makes the order due for its next
//! status poll: the refund comes from that status, never from the cancel.

use super::client::{call, unreadable_reply, Reply};
use super::dialect::{parse_cancel_batch, CancelItem, CancelReply};
use super::worker::{record_exchange, truncate, Pass, Worker};
use crate::db::cancels::{self, CancelOutcome};
use crate::db::{self, provider_orders};
use crate::domain::cancel::CancelStatus;
use crate::domain::provider::{ForwardingState, Provider};

impl Worker {
    /// Sends `provider`'s due cancel requests, one batch per pass.
    pub(super) fn forward_cancels(
        &self,
        provider: &Provider,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        if !provider.enabled {
            return Ok(());
        }
        let mut conn = self.connection()?;
        let due_by = db::now();
        {
            let lease = self.exchange_lease(provider);
            let claimed = db::write_tx(&mut conn, |conn| {
                cancels::claim(
                    conn,
                    &self.owner,
                    provider.id,
                    provider.batch_size.clamp(1, 100),
                    due_by,
                    lease,
                )
            })?;
            let mut jobs = Vec::with_capacity(claimed.len());
            for job in claimed {
                if db::write_tx(&mut conn, |conn| {
                    cancels::begin_send(conn, job.fence(&self.owner), lease)
                })? {
                    jobs.push(job);
                }
            }
            if jobs.is_empty() {
                return Ok(());
            }
            let mut ids: Vec<&str> = jobs.iter().map(|j| j.provider_order_id.as_str()).collect();
            // Two requests for one order are asked once: dedup needs the duplicates adjacent.
            ids.sort_unstable();
            ids.dedup();
            let list = ids.join(",");
            let reply = call(provider, &[("action", "cancel"), ("orders", &list)]);
            let (read, http_status, body) = match &reply {
                Reply::Answered { status, body } => {
                    (parse_cancel_batch(body), Some(*status), body.clone())
                }
                Reply::NotSent(e) | Reply::Lost(e) => (None, None, e.clone()),
            };
            let label = match &read {
                Some(CancelReply::Items(_)) => "read",
                Some(CancelReply::RefusedAll(_)) => "rejected",
                Some(CancelReply::Failed(_)) => "failed",
                None => "unreadable",
            };
            record_exchange(
                &mut conn,
                provider,
                None,
                "cancel",
                label,
                http_status,
                &body,
            )?;
            for job in jobs {
                let fence = job.fence(&self.owner);
                let item = match &read {
                    Some(CancelReply::Items(items)) => items.get(&job.provider_order_id).cloned(),
                    Some(CancelReply::RefusedAll(words)) => {
                        Some(CancelItem::Refused(words.clone()))
                    }
                    Some(CancelReply::Failed(_)) | None => None,
                };
                let outcome = match item {
                    Some(CancelItem::Accepted) => {
                        pass.cancels_answered += 1;
                        CancelOutcome::to(ForwardingState::Done, CancelStatus::Accepted)
                    }
                    Some(CancelItem::Refused(words)) => {
                        pass.cancels_answered += 1;
                        CancelOutcome {
                            reason: Some(truncate(&words, 500).to_string()),
                            ..CancelOutcome::to(ForwardingState::Done, CancelStatus::Refused)
                        }
                    }
                    None => {
                        let (error, reason) = match &read {
                            Some(CancelReply::Items(_)) => (
                                "missing from the cancel reply".to_string(),
                                "the provider gave no certain answer",
                            ),
                            Some(CancelReply::Failed(words)) => (
                                format!(
                                    "the provider could not take the cancel: {}",
                                    truncate(words, 200)
                                ),
                                "the provider could not take the cancel request; ask again later",
                            ),
                            _ => (
                                unreadable_reply("cancel", http_status, &body),
                                "the provider gave no certain answer",
                            ),
                        };
                        if job.failures + 1 >= self.config.forward_max_failures {
                            CancelOutcome {
                                error: Some(error),
                                failed: true,
                                reason: Some(reason.into()),
                                ..CancelOutcome::to(ForwardingState::Failed, CancelStatus::Failed)
                            }
                        } else {
                            CancelOutcome {
                                error: Some(error),
                                failed: true,
                                next_at: Some(self.backoff(job.failures)),
                                ..CancelOutcome::to(ForwardingState::Queued, CancelStatus::Pending)
                            }
                        }
                    }
                };
                let accepted = outcome.status == CancelStatus::Accepted;
                // An accepted cancel makes the order due for its next status poll, in the
                // same transaction as the fenced finish.
                let kept = db::write_tx(&mut conn, |conn| {
                    let kept = cancels::finish(conn, fence, outcome.clone())?;
                    if kept && accepted {
                        provider_orders::poll_soon(conn, job.order_id)?;
                    }
                    Ok::<_, diesel::result::Error>(kept)
                })?;
                if !kept {
                    tracing::info!(
                        request = job.id,
                        "the cancel's claim was lost before the attempt ended; its outcome is not written"
                    );
                }
            }
        }
        Ok(())
    }
}
