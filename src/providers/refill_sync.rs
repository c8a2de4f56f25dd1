//! The worker's refill jobs: sending queued refills upstream (`action=refill&order=`) and
//! following sent ones (`action=refill_status`, `refills=` batches where the provider
//! answers them, one refill per claim otherwise), each under a lease per refill with every
//! write fenced by its claim's token, as for orders.
//!
//! Unlike `add`, a refill that may or may not have reached the provider is sent again:
//! a second refill request for one order costs nothing (providers refuse or merge it),
//! while an unsent one leaves the reseller's order unrefilled.

use std::collections::HashMap;

use std::cell::Cell;

use chrono::NaiveDateTime;

use super::client::{unreadable_reply, Reply};
use super::dialect::{
    error_topic, parse_refill, parse_refill_status_batch, parse_refill_status_one, AddReply,
    ErrorTopic, RefillItem,
};
use super::exchange::{Claimed, Exchange};
use super::worker::{truncate, Pass, Worker};
use crate::application::events;
use crate::db::refills::{self, Refill, RefillOutcome};
use crate::db::{self, DbConnection};
use crate::domain::ids::OrderId;
use crate::domain::provider::{ForwardingState, Provider};
use crate::domain::refill::RefillStatus;

/// Refills one pass sends at most, each under its own claim.
const REFILL_SENDS_PER_PASS: usize = 50;

/// Ends an attempt with its fenced finish; false (and logged) when the claim was lost.
fn finish(
    conn: &mut DbConnection,
    fence: refills::RefillFence,
    outcome: RefillOutcome,
) -> Result<bool, diesel::result::Error> {
    // The status the attempt leaves, with its `refill.status_changed` event, in one
    // transaction.
    let kept = db::write_tx(conn, |conn| {
        let before = refills::find(conn, fence.refill_id)?;
        if !refills::finish(conn, fence, outcome.clone())? {
            return Ok(false);
        }
        if let (Some(before), Some(after)) = (before, refills::find(conn, fence.refill_id)?) {
            events::refill_status_changed(conn, before.status, &after)?;
        }
        Ok::<_, diesel::result::Error>(true)
    })?;
    if !kept {
        tracing::info!(
            refill = fence.refill_id.get(),
            token = fence.token,
            "the refill's claim was lost before the attempt ended; its outcome is not written"
        );
    }
    Ok(kept)
}

impl Worker {
    fn sync_later(&self) -> chrono::NaiveDateTime {
        db::now() + chrono::Duration::seconds(self.config.sync_interval_secs)
    }

    fn claim_sent(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        limit: i64,
        due_by: NaiveDateTime,
    ) -> Result<Vec<Refill>, diesel::result::Error> {
        db::write_tx(conn, |conn| {
            refills::claim(
                conn,
                &self.owner,
                &[ForwardingState::Sent],
                Some(provider.id),
                limit,
                due_by,
                self.exchange_lease(provider),
            )
        })
    }

    /// Writes what a `refill_status` reply says of each claimed refill, each in its own
    /// fenced statement.
    fn apply_refill_statuses(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        jobs: Vec<Refill>,
        items: Option<HashMap<String, RefillItem>>,
        reply: &Reply,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        let give_up_before = db::now() - chrono::Duration::hours(self.config.give_up_hours);
        for job in jobs {
            pass.refills_polled += 1;
            let fence = job.fence(&self.owner);
            let Some(items) = &items else {
                let outcome = RefillOutcome {
                    error: Some(unreadable_reply(
                        "refill status",
                        reply.http_status(),
                        reply.text(),
                    )),
                    failed: true,
                    next_at: Some(self.backoff(job.failures)),
                    ..RefillOutcome::to(ForwardingState::Sent, job.status)
                };
                finish(conn, fence, outcome)?;
                continue;
            };
            let item = job
                .provider_refill_id
                .as_deref()
                .and_then(|id| items.get(id));
            let mut outcome = match item {
                Some(RefillItem::Known(status)) if status.is_final() => RefillOutcome {
                    synced: true,
                    note: match status {
                        RefillStatus::Rejected => Some("the provider rejected the refill".into()),
                        RefillStatus::Errored => Some("the provider reported an error".into()),
                        _ => None,
                    },
                    ..RefillOutcome::to(ForwardingState::Done, *status)
                },
                Some(RefillItem::Known(status)) => RefillOutcome {
                    synced: true,
                    next_at: Some(self.sync_later()),
                    ..RefillOutcome::to(ForwardingState::Sent, *status)
                },
                Some(RefillItem::UnknownStatus(word)) => {
                    tracing::warn!(refill = job.id.get(), provider = provider.id.get(), status = %word, "unknown refill status quarantined");
                    RefillOutcome {
                        quarantined_status: Some(word.clone()),
                        synced: true,
                        next_at: Some(self.sync_later()),
                        ..RefillOutcome::to(ForwardingState::Sent, job.status)
                    }
                }
                Some(RefillItem::Error(error)) => RefillOutcome {
                    error: Some(error.clone()),
                    failed: true,
                    next_at: Some(self.backoff(job.failures)),
                    ..RefillOutcome::to(ForwardingState::Sent, job.status)
                },
                None => RefillOutcome {
                    error: Some("missing from the refill status reply".into()),
                    failed: true,
                    next_at: Some(self.backoff(job.failures)),
                    ..RefillOutcome::to(ForwardingState::Sent, job.status)
                },
            };
            if outcome.state == ForwardingState::Sent && job.created_at < give_up_before {
                outcome = RefillOutcome {
                    note: Some(
                        "no final refill status from the provider within the give-up horizon"
                            .into(),
                    ),
                    ..RefillOutcome::to(ForwardingState::GivenUp, RefillStatus::Errored)
                };
            }
            finish(conn, fence, outcome)?;
        }
        Ok(())
    }
}

/// Refills sent upstream (`action=refill&order=`), one claim each.
pub(super) struct RefillSends<'w>(pub(super) &'w Worker);

impl Exchange for RefillSends<'_> {
    const ACTION: &'static str = "refill";
    type Work = Refill;
    type Read = AddReply;

    fn per_pass(&self, _: &Provider) -> usize {
        REFILL_SENDS_PER_PASS
    }

    fn claim(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        due_by: NaiveDateTime,
    ) -> Result<Claimed<Refill>, diesel::result::Error> {
        let worker = self.0;
        let Some(job) = db::write_tx(conn, |conn| {
            refills::claim(
                conn,
                &worker.owner,
                &[ForwardingState::Queued, ForwardingState::Sending],
                Some(provider.id),
                1,
                due_by,
                worker.lease(),
            )
        })?
        .pop() else {
            return Ok(Claimed::Empty);
        };
        let fence = job.fence(&worker.owner);
        if job.provider_order_id.is_none() {
            let outcome = RefillOutcome {
                note: Some("the order's provider is gone; the refill cannot be sent".into()),
                ..RefillOutcome::to(ForwardingState::Failed, RefillStatus::Errored)
            };
            finish(conn, fence, outcome)?;
            return Ok(Claimed::Settled);
        }
        if !provider.enabled {
            let outcome = RefillOutcome {
                next_at: Some(worker.sync_later()),
                ..RefillOutcome::to(ForwardingState::Queued, job.status)
            };
            finish(conn, fence, outcome)?;
            return Ok(Claimed::Settled);
        }
        if !db::write_tx(conn, |conn| {
            refills::begin_send(conn, fence, worker.exchange_lease(provider))
        })? {
            return Ok(Claimed::Settled);
        }
        Ok(Claimed::Due(job))
    }

    fn request(&self, job: &Refill) -> Vec<(&'static str, String)> {
        vec![
            ("action", "refill".into()),
            ("order", job.provider_order_id.clone().unwrap_or_default()),
        ]
    }

    fn read(&self, _: &Refill, reply: &Reply) -> (AddReply, &'static str) {
        let read = match reply {
            Reply::Answered { body, .. } => parse_refill(body),
            Reply::NotSent(_) | Reply::Lost(_) => AddReply::Unreadable,
        };
        let label = match &read {
            AddReply::Accepted(_) => "accepted",
            AddReply::Rejected(words) if error_topic(words) == ErrorTopic::Transient => "failed",
            AddReply::Rejected(_) => "rejected",
            AddReply::Unreadable => "unreadable",
        };
        (read, label)
    }

    /// A refill that never left says so, in the attempt log and in its error.
    fn logged<'r>(&self, reply: &'r Reply) -> std::borrow::Cow<'r, str> {
        match reply {
            Reply::NotSent(e) => std::borrow::Cow::Owned(format!("not sent: {e}")),
            _ => std::borrow::Cow::Borrowed(reply.text()),
        }
    }

    fn order_of(&self, job: &Refill) -> Option<OrderId> {
        Some(job.order_id)
    }

    fn finish(
        &self,
        conn: &mut DbConnection,
        _: &Provider,
        job: Refill,
        read: AddReply,
        reply: &Reply,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        let worker = self.0;
        let fence = job.fence(&worker.owner);
        match read {
            AddReply::Accepted(remote) => {
                pass.refills_sent += 1;
                let outcome = RefillOutcome {
                    provider_refill_id: Some(remote.clone()),
                    next_at: Some(worker.sync_later()),
                    ..RefillOutcome::to(ForwardingState::Sent, job.status)
                };
                if !finish(conn, fence, outcome)?
                    && db::write_tx(conn, |conn| {
                        refills::adopt_acceptance(conn, job.id, &remote)
                    })?
                {
                    tracing::warn!(
                        refill = job.id.get(),
                        "a late refill acceptance was adopted"
                    );
                }
            }
            // The provider said no in words about the order: final, and the reseller sees
            // its words.
            AddReply::Rejected(error) if error_topic(&error) == ErrorTopic::Request => {
                let outcome = RefillOutcome {
                    note: Some(format!(
                        "the provider refused the refill: {}",
                        truncate(&error, 300)
                    )),
                    error: Some(error),
                    ..RefillOutcome::to(ForwardingState::Done, RefillStatus::Rejected)
                };
                finish(conn, fence, outcome)?;
            }
            // Words about our account or the provider's state, or no certain answer: asked
            // again later, like a network failure.
            AddReply::Rejected(_) | AddReply::Unreadable => {
                let error = match &read {
                    AddReply::Rejected(words) => format!(
                        "the provider could not take the refill: {}",
                        truncate(words, 200)
                    ),
                    _ => unreadable_reply("refill", reply.http_status(), &self.logged(reply)),
                };
                let outcome = if job.failures + 1 >= worker.config.forward_max_failures {
                    RefillOutcome {
                        error: Some(error),
                        failed: true,
                        note: Some("the provider gave no certain answer to the refill".into()),
                        ..RefillOutcome::to(ForwardingState::Failed, RefillStatus::Errored)
                    }
                } else {
                    RefillOutcome {
                        error: Some(error),
                        failed: true,
                        next_at: Some(worker.backoff(job.failures)),
                        ..RefillOutcome::to(ForwardingState::Queued, job.status)
                    }
                };
                finish(conn, fence, outcome)?;
            }
        }
        Ok(())
    }
}

/// Sent refills' statuses: a `refills=` batch per pass where the provider answers batches,
/// else one refill per exchange (one claim each, so no lease waits behind another
/// refill's request). A batch answered as a single refill is given back untouched and the
/// provider is asked one refill at a time from then on.
pub(super) struct RefillStatuses<'w> {
    worker: &'w Worker,
    /// Set once this pass asked its batch.
    batch_asked: Cell<bool>,
}

impl<'w> RefillStatuses<'w> {
    pub(super) fn new(worker: &'w Worker) -> RefillStatuses<'w> {
        RefillStatuses {
            worker,
            batch_asked: Cell::new(false),
        }
    }

    fn one_by_one(&self, provider: &Provider) -> bool {
        provider.batch_size <= 1
            || self
                .worker
                .no_batch_refill_status
                .lock()
                .is_ok_and(|set| set.contains(&provider.id))
    }
}

/// What a `refill_status` reply said.
pub(super) enum RefillStatusRead {
    /// Each refill's item, by the provider's refill id; `None` when unreadable.
    Items(Option<HashMap<String, RefillItem>>),
    /// A batch answered as one refill: the provider takes no batches.
    NotABatch,
}

impl Exchange for RefillStatuses<'_> {
    const ACTION: &'static str = "refill_status";
    /// The claimed refills, and whether they are asked as a batch.
    type Work = (Vec<Refill>, bool);
    type Read = RefillStatusRead;

    fn per_pass(&self, provider: &Provider) -> usize {
        let batch = usize::try_from(provider.batch_size.clamp(1, 100)).unwrap_or(1);
        // A batch, and if it turns out the provider takes none, one refill at a time.
        if self.one_by_one(provider) {
            batch
        } else {
            batch + 1
        }
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
        let as_batch = !self.one_by_one(provider);
        if as_batch && self.batch_asked.replace(true) {
            return Ok(Claimed::Empty);
        }
        let limit = if as_batch {
            provider.batch_size.clamp(1, 100)
        } else {
            1
        };
        let jobs = self.worker.claim_sent(conn, provider, limit, due_by)?;
        Ok(if jobs.is_empty() {
            Claimed::Empty
        } else {
            Claimed::Due((jobs, as_batch))
        })
    }

    fn request(&self, (jobs, as_batch): &Self::Work) -> Vec<(&'static str, String)> {
        let ids: Vec<&str> = jobs
            .iter()
            .filter_map(|j| j.provider_refill_id.as_deref())
            .collect();
        let name = if *as_batch { "refills" } else { "refill" };
        vec![("action", "refill_status".into()), (name, ids.join(","))]
    }

    fn read(&self, (jobs, as_batch): &Self::Work, reply: &Reply) -> (Self::Read, &'static str) {
        let Reply::Answered { body, .. } = reply else {
            return (RefillStatusRead::Items(None), "unreadable");
        };
        let items = if *as_batch {
            let items = parse_refill_status_batch(body);
            if items.is_none() && parse_refill_status_one(body).is_some() {
                return (RefillStatusRead::NotABatch, "unbatched");
            }
            items
        } else {
            let remote = jobs
                .first()
                .and_then(|j| j.provider_refill_id.clone())
                .unwrap_or_default();
            parse_refill_status_one(body).map(|item| HashMap::from([(remote, item)]))
        };
        let label = if items.is_some() {
            "read"
        } else {
            "unreadable"
        };
        (RefillStatusRead::Items(items), label)
    }

    fn finish(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        (jobs, _): Self::Work,
        read: Self::Read,
        reply: &Reply,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        let worker = self.worker;
        match read {
            RefillStatusRead::Items(items) => {
                worker.apply_refill_statuses(conn, provider, jobs, items, reply, pass)
            }
            RefillStatusRead::NotABatch => {
                if let Ok(mut set) = worker.no_batch_refill_status.lock() {
                    set.insert(provider.id);
                }
                for job in &jobs {
                    finish(
                        conn,
                        job.fence(&worker.owner),
                        RefillOutcome::to(ForwardingState::Sent, job.status),
                    )?;
                }
                Ok(())
            }
        }
    }
}
