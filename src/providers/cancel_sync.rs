//! The worker's cancel job: queued cancel requests sent to their provider in batches
//! (`action=cancel&orders=`), each request under its own lease with every write fenced by
//! its claim's token. A cancel is safe to send again (the provider cancels once or says
//! it cannot), so a send without a certain answer is retried with backoff, like an `add`
//! to a provider that deduplicates. An accepted cancel makes the order due for its next
//! status poll: the refund comes from that status, never from the cancel.

use chrono::NaiveDateTime;

use super::client::{unreadable_reply, Reply};
use super::dialect::{CancelItem, CancelReply};
use super::exchange::{self, Claimed, Exchange};
use super::worker::{truncate, Pass, Worker};
use crate::db::cancels::{self, CancelOutcome, CancelRequest};
use crate::db::{self, provider_orders, DbConnection};
use crate::domain::cancel::CancelStatus;
use crate::domain::provider::{ForwardingState, Provider};

/// A provider's due cancel requests, one batch per pass.
pub(super) struct Cancels<'w>(pub(super) &'w Worker);

impl Exchange for Cancels<'_> {
    const ACTION: &'static str = "cancel";
    type Work = Vec<CancelRequest>;
    type Read = Option<CancelReply>;

    fn per_pass(&self, _: &Provider) -> usize {
        1
    }

    fn claim(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        due_by: NaiveDateTime,
    ) -> Result<Claimed<Self::Work>, diesel::result::Error> {
        if !provider.enabled {
            return Ok(Claimed::Empty);
        }
        let worker = self.0;
        let lease = worker.exchange_lease(provider);
        let claimed = db::write_tx(conn, |conn| {
            cancels::claim(
                conn,
                &worker.owner,
                provider.id,
                provider.batch_size.clamp(1, 100),
                due_by,
                lease,
            )
        })?;
        let mut jobs = Vec::with_capacity(claimed.len());
        for job in claimed {
            if db::write_tx(conn, |conn| {
                cancels::begin_send(conn, job.fence(&worker.owner), lease)
            })? {
                jobs.push(job);
            }
        }
        Ok(exchange::claimed(jobs))
    }

    fn request(&self, jobs: &Self::Work) -> Vec<(&'static str, String)> {
        let mut ids: Vec<&str> = jobs.iter().map(|j| j.provider_order_id.as_str()).collect();
        // Two requests for one order are asked once: dedup needs the duplicates adjacent.
        ids.sort_unstable();
        ids.dedup();
        vec![("action", "cancel".into()), ("orders", ids.join(","))]
    }

    fn read(&self, _: &Self::Work, reply: &Reply) -> (Self::Read, &'static str) {
        exchange::read_cancels(reply)
    }

    fn finish(
        &self,
        conn: &mut DbConnection,
        _: &Provider,
        jobs: Self::Work,
        read: Self::Read,
        reply: &Reply,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        let worker = self.0;
        for job in jobs {
            let fence = job.fence(&worker.owner);
            let item = match &read {
                Some(CancelReply::Items(items)) => items.get(&job.provider_order_id).cloned(),
                Some(CancelReply::RefusedAll(words)) => Some(CancelItem::Refused(words.clone())),
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
                            unreadable_reply("cancel", reply.http_status(), reply.text()),
                            "the provider gave no certain answer",
                        ),
                    };
                    if job.failures + 1 >= worker.config.forward_max_failures {
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
                            next_at: Some(worker.backoff(job.failures)),
                            ..CancelOutcome::to(ForwardingState::Queued, CancelStatus::Pending)
                        }
                    }
                }
            };
            let accepted = outcome.status == CancelStatus::Accepted;
            // An accepted cancel makes the order due for its next status poll, in the
            // same transaction as the fenced finish.
            let kept = db::write_tx(conn, |conn| {
                let kept = cancels::finish(conn, fence, outcome.clone())?;
                if kept && accepted {
                    provider_orders::poll_soon(conn, job.order_id)?;
                }
                Ok::<_, diesel::result::Error>(kept)
            })?;
            if !kept {
                tracing::info!(
                    request = job.id.get(),
                    "the cancel's claim was lost before the attempt ended; its outcome is not written"
                );
            }
        }
        Ok(())
    }
}
