//! The worker's refill jobs: sending queued refills upstream (`action=refill&order=`) and
//! following sent ones (`action=refill_status`, `refills=` batches where the provider
//! answers them, one refill per claim otherwise), each under a lease per refill with every
//! write fenced by its claim's token, as for orders.
//!
//! Unlike `add`, a refill that may or may not have reached the provider is sent again:
//! a second refill request for one order costs nothing (providers refuse or merge it),
//! while an unsent one leaves the reseller's order unrefilled.

use std::collections::HashMap;

use super::client::{call, unreadable_reply, Reply};
use super::dialect::{
    error_topic, parse_refill, parse_refill_status_batch, parse_refill_status_one, AddReply,
    ErrorTopic, RefillItem,
};
use super::worker::{record_exchange, truncate, Pass, Worker};
use crate::application::events;
use crate::db::refills::{self, Refill, RefillOutcome};
use crate::db::{self, DbConnection};
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
            refill = fence.refill_id,
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

    /// Sends `provider`'s due refills, one claim each.
    pub(super) fn forward_refills(
        &self,
        provider: &Provider,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        let mut conn = self.connection()?;
        let due_by = db::now();
        for _ in 0..REFILL_SENDS_PER_PASS {
            if self.stopping() {
                break;
            }
            let Some(job) = db::write_tx(&mut conn, |conn| {
                refills::claim(
                    conn,
                    &self.owner,
                    &[ForwardingState::Queued, ForwardingState::Sending],
                    Some(provider.id),
                    1,
                    due_by,
                    self.lease(),
                )
            })?
            .pop() else {
                break;
            };
            self.send_refill(&mut conn, Some(provider), &job, pass)?;
        }
        Ok(())
    }

    fn send_refill(
        &self,
        conn: &mut DbConnection,
        provider: Option<&Provider>,
        job: &Refill,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        let fence = job.fence(&self.owner);
        let (Some(provider), Some(remote_order)) = (provider, job.provider_order_id.as_deref())
        else {
            let outcome = RefillOutcome {
                note: Some("the order's provider is gone; the refill cannot be sent".into()),
                ..RefillOutcome::to(ForwardingState::Failed, RefillStatus::Errored)
            };
            return finish(conn, fence, outcome).map(drop);
        };
        if !provider.enabled {
            let outcome = RefillOutcome {
                next_at: Some(self.sync_later()),
                ..RefillOutcome::to(ForwardingState::Queued, job.status)
            };
            return finish(conn, fence, outcome).map(drop);
        }
        if !db::write_tx(conn, |conn| {
            refills::begin_send(conn, fence, self.exchange_lease(provider))
        })? {
            return Ok(());
        }
        let reply = call(provider, &[("action", "refill"), ("order", remote_order)]);
        let (read, http_status, body) = match &reply {
            Reply::Answered { status, body } => (parse_refill(body), Some(*status), body.clone()),
            Reply::NotSent(e) => (AddReply::Unreadable, None, format!("not sent: {e}")),
            Reply::Lost(e) => (AddReply::Unreadable, None, e.clone()),
        };
        let label = match &read {
            AddReply::Accepted(_) => "accepted",
            AddReply::Rejected(words) if error_topic(words) == ErrorTopic::Transient => "failed",
            AddReply::Rejected(_) => "rejected",
            AddReply::Unreadable => "unreadable",
        };
        record_exchange(
            conn,
            provider,
            Some(job.order_id),
            "refill",
            label,
            http_status,
            &body,
        )?;
        match read {
            AddReply::Accepted(remote) => {
                pass.refills_sent += 1;
                let outcome = RefillOutcome {
                    provider_refill_id: Some(remote.clone()),
                    next_at: Some(self.sync_later()),
                    ..RefillOutcome::to(ForwardingState::Sent, job.status)
                };
                if !finish(conn, fence, outcome)?
                    && db::write_tx(conn, |conn| {
                        refills::adopt_acceptance(conn, job.id, &remote)
                    })?
                {
                    tracing::warn!(refill = job.id, "a late refill acceptance was adopted");
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
                    _ => unreadable_reply("refill", http_status, &body),
                };
                let outcome = if job.failures + 1 >= self.config.forward_max_failures {
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
                        next_at: Some(self.backoff(job.failures)),
                        ..RefillOutcome::to(ForwardingState::Queued, job.status)
                    }
                };
                finish(conn, fence, outcome)?;
            }
        }
        Ok(())
    }

    /// Follows `provider`'s sent refills.
    pub(super) fn sync_refills(
        &self,
        provider: &Provider,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        if !provider.enabled {
            return Ok(());
        }
        let mut conn = self.connection()?;
        // Due when the pass began: a refill asked just now waits for the next pass.
        let due_by = db::now();
        {
            let batch = provider.batch_size.clamp(1, 100);
            let mut one_by_one = batch == 1
                || self
                    .no_batch_refill_status
                    .lock()
                    .is_ok_and(|set| set.contains(&provider.id));
            if !one_by_one {
                one_by_one = !self.sync_refill_batch(&mut conn, provider, batch, due_by, pass)?;
            }
            if one_by_one {
                // One claim per exchange, so no lease waits behind another refill's request.
                for _ in 0..batch {
                    let jobs = self.claim_sent(&mut conn, provider, 1, due_by)?;
                    let Some(job) = jobs.first() else { break };
                    let remote = job.provider_refill_id.clone().unwrap_or_default();
                    let reply = call(
                        provider,
                        &[("action", "refill_status"), ("refill", remote.as_str())],
                    );
                    let (items, http_status, body) = match &reply {
                        Reply::Answered { status, body } => (
                            parse_refill_status_one(body)
                                .map(|item| HashMap::from([(remote.clone(), item)])),
                            Some(*status),
                            body.clone(),
                        ),
                        Reply::NotSent(e) | Reply::Lost(e) => (None, None, e.clone()),
                    };
                    self.apply_refill_statuses(
                        &mut conn,
                        provider,
                        jobs,
                        items,
                        http_status,
                        &body,
                        pass,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Asks one batch of sent refills with `refills=`. False when the provider answered,
    /// but not as a batch: the claimed refills are given back untouched and the provider
    /// is asked one refill at a time from then on.
    fn sync_refill_batch(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        batch: i64,
        due_by: chrono::NaiveDateTime,
        pass: &mut Pass,
    ) -> Result<bool, diesel::result::Error> {
        let jobs = self.claim_sent(conn, provider, batch, due_by)?;
        if jobs.is_empty() {
            return Ok(true);
        }
        let list = jobs
            .iter()
            .filter_map(|j| j.provider_refill_id.as_deref())
            .collect::<Vec<_>>()
            .join(",");
        let reply = call(provider, &[("action", "refill_status"), ("refills", &list)]);
        let (items, http_status, body) = match &reply {
            Reply::Answered { status, body } => {
                let items = parse_refill_status_batch(body);
                if items.is_none() && parse_refill_status_one(body).is_some() {
                    if let Ok(mut set) = self.no_batch_refill_status.lock() {
                        set.insert(provider.id);
                    }
                    for job in &jobs {
                        finish(
                            conn,
                            job.fence(&self.owner),
                            RefillOutcome::to(ForwardingState::Sent, job.status),
                        )?;
                    }
                    return Ok(false);
                }
                (items, Some(*status), body.clone())
            }
            Reply::NotSent(e) | Reply::Lost(e) => (None, None, e.clone()),
        };
        self.apply_refill_statuses(conn, provider, jobs, items, http_status, &body, pass)?;
        Ok(true)
    }

    fn claim_sent(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        limit: i64,
        due_by: chrono::NaiveDateTime,
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
    #[expect(clippy::too_many_arguments)]
    fn apply_refill_statuses(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        jobs: Vec<Refill>,
        items: Option<HashMap<String, RefillItem>>,
        http_status: Option<u16>,
        body: &str,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        let label = if items.is_some() {
            "read"
        } else {
            "unreadable"
        };
        record_exchange(
            conn,
            provider,
            None,
            "refill_status",
            label,
            http_status,
            body,
        )?;
        let give_up_before = db::now() - chrono::Duration::hours(self.config.give_up_hours);
        for job in jobs {
            pass.refills_polled += 1;
            let fence = job.fence(&self.owner);
            let Some(items) = &items else {
                let outcome = RefillOutcome {
                    error: Some(unreadable_reply("refill status", http_status, body)),
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
                    tracing::warn!(refill = job.id, provider = provider.id, status = %word, "unknown refill status quarantined");
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
