//! The worker's jobs for provider-backed subscriptions, each under a lease per
//! subscription with every write fenced by its claim's token, as for orders:
//!
//! - **Sends** (`action=add` with the subscription's fields, no `link` or `quantity`),
//!   one claim each, after the create (and its hold) committed. The send discipline is the
//!   orders': marked `sending` before the request; a clear acceptance stores the provider's
//!   id and makes the subscription Active; a clear refusal ends it Error, its hold released
//!   in the same transaction; an unclear reply is not a refusal (asked again only where the
//!   provider deduplicates by our key, else left `ambiguous` for an operator).
//! - **Cancels** (`action=cancel&orders=`), a reseller's cancel forwarded: accepted ends it
//!   Canceled (the hold released then, not before); refused leaves it open with the
//!   provider's words; no certain answer is asked again.
//! - **Polls** (`action=status&orders=`, one batch per pass): each new child id in a
//!   subscription's `orders` becomes exactly one local child order (unique on the
//!   provider's order id in the database, and made under the claim of the subscription's
//!   row), then the status: Paused ⇄ Active, Completed/Expired/Canceled end it.
//!
//! A child is already accepted upstream: it gets a `sent` provider row under the provider's
//! id in the transaction that makes it, so the order status poll follows it like any
//! forwarded order and it is never sent with `add`.

use std::collections::HashMap;

use chrono::NaiveDateTime;

use super::client::{unreadable_reply, Reply};
use super::dialect::{
    error_topic, parse_subscription_statuses, AddReply, CancelItem, CancelReply, ErrorTopic,
    SubscriptionItem,
};
use super::exchange::{self, Claimed, Exchange};
use super::worker::{truncate, Pass, Worker};
use crate::application::subscriptions::{self as subs, SubscriptionError, UpstreamReport};
use crate::db::subscriptions::{
    self, ProviderSubscription, UpstreamFence, UpstreamOutcome, UpstreamWork,
};
use crate::db::{self, DbConnection};
use crate::domain::provider::{ForwardingState, Provider};
use crate::domain::subscription::{panel_date, Subscription, SubscriptionStatus, UpstreamCancel};

/// Subscriptions one pass sends at most, each under its own claim.
const SENDS_PER_PASS: usize = 50;
/// Cancels one pass forwards at most, each under its own claim.
const CANCELS_PER_PASS: usize = 50;

/// Why a fenced transaction was rolled back.
enum SyncError {
    /// The claim was lost: someone else has the row now.
    Lost,
    Failed(SubscriptionError),
}

impl From<diesel::result::Error> for SyncError {
    fn from(error: diesel::result::Error) -> SyncError {
        SyncError::Failed(error.into())
    }
}

impl From<SubscriptionError> for SyncError {
    fn from(error: SubscriptionError) -> SyncError {
        SyncError::Failed(error)
    }
}

impl db::TxError for SyncError {
    fn is_conflict(&self) -> bool {
        matches!(self, SyncError::Failed(error) if db::TxError::is_conflict(error))
    }

    fn from_write(error: db::writer::WriteError) -> SyncError {
        SyncError::Failed(SubscriptionError::from_write(error))
    }
}

/// Runs `work` and the fenced finish of the outcome it returns as one write transaction:
/// when the claim was lost, nothing `work` did (a child, a release) is kept. True when it
/// was kept. A refusal of the application's (not the database's) is recorded on the row
/// as a failed attempt, asked again after a backoff, the row left as `on_failure` says:
/// what the provider already told us (an acceptance's id) is kept there, never lost.
fn finish_with(
    worker: &Worker,
    conn: &mut DbConnection,
    job: &ProviderSubscription,
    on_failure: UpstreamOutcome,
    work: impl Fn(&mut db::WriteConn<'_>) -> Result<UpstreamOutcome, SyncError> + Sync,
) -> Result<bool, diesel::result::Error> {
    let fence = job.fence(&worker.owner);
    let result = db::write_tx(conn, |conn| {
        let outcome = work(conn)?;
        if subscriptions::finish_upstream(conn, fence, outcome)? {
            Ok(())
        } else {
            Err(SyncError::Lost)
        }
    });
    match result {
        Ok(()) => Ok(true),
        Err(SyncError::Lost) => {
            lost(fence);
            Ok(false)
        }
        Err(SyncError::Failed(error)) => {
            tracing::error!(
                subscription = job.subscription_id.get(),
                error = %error,
                "a provider-backed subscription's attempt could not be applied; asked again later"
            );
            let outcome = UpstreamOutcome {
                error: Some(truncate(&error.to_string(), 500).to_string()),
                failed: true,
                next_at: Some(worker.backoff(job.failures)),
                ..on_failure
            };
            finish(conn, fence, outcome)
        }
    }
}

/// Ends an attempt with its fenced finish alone; false (and logged) when the claim was lost.
fn finish(
    conn: &mut DbConnection,
    fence: UpstreamFence,
    outcome: UpstreamOutcome,
) -> Result<bool, diesel::result::Error> {
    let kept = db::write_tx(conn, |conn| {
        subscriptions::finish_upstream(conn, fence, outcome.clone())
    })?;
    if !kept {
        lost(fence);
    }
    Ok(kept)
}

fn lost(fence: UpstreamFence) {
    tracing::info!(
        subscription = fence.subscription_id.get(),
        token = fence.token,
        "the subscription's claim was lost before the attempt ended; its outcome is not written"
    );
}

impl Worker {
    fn subscription_sync_later(&self) -> NaiveDateTime {
        db::now() + chrono::Duration::seconds(self.config.sync_interval_secs)
    }
}

/// The fields of a subscription's `add`: the dialect's subscription fields, no `link` or
/// `quantity`; `old_posts` only when set, `expiry` as dd/mm/YYYY zero-padded.
fn add_request(sub: &Subscription, job: &ProviderSubscription) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("action", "add".to_string()),
        ("service", job.provider_service_id.clone()),
        ("username", sub.username.clone()),
        ("min", sub.min.to_string()),
        ("max", sub.max.to_string()),
        ("posts", sub.posts.to_string()),
    ];
    if sub.old_posts > 0 {
        fields.push(("old_posts", sub.old_posts.to_string()));
    }
    fields.push(("delay", sub.delay.to_string()));
    if let Some(expiry) = sub.expiry_date() {
        fields.push(("expiry", panel_date(expiry)));
    }
    fields.push(("idempotency_key", job.idempotency_key.clone()));
    fields
}

/// Provider-backed subscriptions' `add`, one claim each.
pub(super) struct SubscriptionSends<'w>(pub(super) &'w Worker);

impl Exchange for SubscriptionSends<'_> {
    const ACTION: &'static str = "add";
    type Work = (Subscription, ProviderSubscription);
    type Read = AddReply;

    fn per_pass(&self, _: &Provider) -> usize {
        SENDS_PER_PASS
    }

    fn claim(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        due_by: NaiveDateTime,
    ) -> Result<Claimed<Self::Work>, diesel::result::Error> {
        let worker = self.0;
        if db::alerts::pauses_forwarding(conn, provider.id)? {
            return Ok(Claimed::Empty);
        }
        let Some(job) = db::write_tx(conn, |conn| {
            subscriptions::claim_upstream(
                conn,
                &worker.owner,
                UpstreamWork::Send,
                provider.id,
                1,
                due_by,
                worker.lease(),
            )
        })?
        .pop() else {
            return Ok(Claimed::Empty);
        };
        let fence = job.fence(&worker.owner);
        let Some(sub) = subscriptions::find(conn, job.subscription_id)? else {
            return Ok(Claimed::Settled);
        };
        if sub.status.is_terminal() {
            // Ended before it was sent (an operator's end, a disabled service): never sent.
            finish(conn, fence, UpstreamOutcome::to(ForwardingState::Done))?;
            return Ok(Claimed::Settled);
        }
        if !provider.enabled || provider.paused_because().is_some() {
            let outcome = UpstreamOutcome {
                next_at: Some(worker.subscription_sync_later()),
                ..UpstreamOutcome::to(ForwardingState::Queued)
            };
            finish(conn, fence, outcome)?;
            return Ok(Claimed::Settled);
        }
        if job.state == ForwardingState::Sending && !provider.idempotent_add {
            // An earlier send was interrupted: the provider may have it and cannot tell
            // us; sending again could take it twice. An operator decides.
            let outcome = UpstreamOutcome {
                error: Some(
                    "an earlier send was interrupted; check the provider before resending".into(),
                ),
                failed: true,
                ..UpstreamOutcome::to(ForwardingState::Ambiguous)
            };
            finish(conn, fence, outcome)?;
            return Ok(Claimed::Settled);
        }
        if !db::write_tx(conn, |conn| {
            subscriptions::begin_upstream_send(conn, fence, worker.exchange_lease(provider))
        })? {
            return Ok(Claimed::Settled);
        }
        Ok(Claimed::Due((sub, job)))
    }

    fn request(&self, (sub, job): &Self::Work) -> Vec<(&'static str, String)> {
        add_request(sub, job)
    }

    fn read(&self, _: &Self::Work, reply: &Reply) -> (AddReply, &'static str) {
        exchange::read_add(reply)
    }

    fn finish(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        (sub, job): Self::Work,
        read: AddReply,
        reply: &Reply,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        let worker = self.0;
        let id = sub.id;
        match read {
            AddReply::Accepted(remote) => {
                pass.subscriptions_sent += 1;
                // Should applying it fail, the provider's id is kept and the row is
                // `sent`: polled (its status makes it Active), never sent again.
                let on_failure = UpstreamOutcome {
                    provider_subscription_id: Some(remote.clone()),
                    ..UpstreamOutcome::to(ForwardingState::Sent)
                };
                let kept = finish_with(worker, conn, &job, on_failure, |conn| {
                    subs::upstream_accepted(conn, id)?;
                    Ok(UpstreamOutcome {
                        provider_subscription_id: Some(remote.clone()),
                        ..UpstreamOutcome::to(ForwardingState::Sent)
                    })
                })?;
                if !kept {
                    // A clear acceptance is never thrown away: adopted if nobody knows an id.
                    let adopted = db::write_tx(conn, |conn| {
                        if subscriptions::adopt_upstream_acceptance(conn, id, &remote)? {
                            subs::upstream_accepted(conn, id)?;
                            Ok::<_, SubscriptionError>(true)
                        } else {
                            Ok(false)
                        }
                    });
                    match adopted {
                        Ok(true) => tracing::warn!(
                            subscription = id.get(),
                            "a late acceptance of a subscription was adopted"
                        ),
                        Ok(false) => tracing::error!(
                            subscription = id.get(),
                            provider_subscription_id = %remote,
                            "the provider accepted a subscription whose row moved on; an operator decides"
                        ),
                        Err(e) => {
                            tracing::error!(subscription = id.get(), error = %e, "could not adopt a late acceptance")
                        }
                    }
                }
            }
            AddReply::Rejected(words) => {
                pass.send_failures += 1;
                let never_sent = matches!(reply, Reply::NotSent(_));
                let transient = never_sent || error_topic(&words) == ErrorTopic::Transient;
                if transient && job.failures + 1 < worker.config.forward_max_failures {
                    // Nothing upstream: asking again is safe.
                    let outcome = UpstreamOutcome {
                        error: Some(truncate(&words, 500).to_string()),
                        failed: true,
                        next_at: Some(worker.backoff(job.failures)),
                        ..UpstreamOutcome::to(ForwardingState::Queued)
                    };
                    finish(conn, job.fence(&worker.owner), outcome)?;
                } else {
                    // Refused in clear words (or never reachable): Error, the hold released
                    // in the same transaction as the fenced finish.
                    // Should applying it fail, it is asked again: a refusal leaves nothing
                    // upstream, so that is safe.
                    finish_with(
                        worker,
                        conn,
                        &job,
                        UpstreamOutcome::to(ForwardingState::Queued),
                        |conn| {
                            subs::upstream_refused(conn, id, &words)?;
                            Ok(UpstreamOutcome {
                                error: Some(truncate(&words, 500).to_string()),
                                failed: true,
                                ..UpstreamOutcome::to(ForwardingState::Failed)
                            })
                        },
                    )?;
                }
            }
            AddReply::Unreadable => {
                pass.send_failures += 1;
                // No certain answer: the provider may have it. Not a refusal; only a
                // provider that deduplicates by our key is asked again.
                let error = unreadable_reply("add", reply.http_status(), reply.text());
                let state = if provider.idempotent_add
                    && job.failures + 1 < worker.config.forward_max_failures
                {
                    ForwardingState::Queued
                } else {
                    ForwardingState::Ambiguous
                };
                let outcome = UpstreamOutcome {
                    error: Some(error),
                    failed: true,
                    next_at: Some(worker.backoff(job.failures)),
                    ..UpstreamOutcome::to(state)
                };
                finish(conn, job.fence(&worker.owner), outcome)?;
            }
        }
        Ok(())
    }
}

/// Reseller cancels of provider-backed subscriptions, forwarded one claim each.
pub(super) struct SubscriptionCancels<'w>(pub(super) &'w Worker);

impl Exchange for SubscriptionCancels<'_> {
    const ACTION: &'static str = "cancel";
    type Work = ProviderSubscription;
    type Read = Option<CancelReply>;

    fn per_pass(&self, _: &Provider) -> usize {
        CANCELS_PER_PASS
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
        let job = db::write_tx(conn, |conn| {
            subscriptions::claim_upstream(
                conn,
                &worker.owner,
                UpstreamWork::Cancel,
                provider.id,
                1,
                due_by,
                worker.exchange_lease(provider),
            )
        })?
        .pop();
        Ok(match job {
            Some(job) if job.provider_subscription_id.is_some() => Claimed::Due(job),
            Some(job) => {
                // Sent without an id is not a state the code makes; it is not guessed at.
                let outcome = UpstreamOutcome {
                    error: Some("sent without the provider's id; an operator decides".into()),
                    failed: true,
                    ..UpstreamOutcome::to(ForwardingState::Ambiguous)
                };
                finish(conn, job.fence(&worker.owner), outcome)?;
                Claimed::Settled
            }
            None => Claimed::Empty,
        })
    }

    fn request(&self, job: &Self::Work) -> Vec<(&'static str, String)> {
        vec![
            ("action", "cancel".into()),
            (
                "orders",
                job.provider_subscription_id.clone().unwrap_or_default(),
            ),
        ]
    }

    fn read(&self, _: &Self::Work, reply: &Reply) -> (Self::Read, &'static str) {
        exchange::read_cancels(reply)
    }

    fn finish(
        &self,
        conn: &mut DbConnection,
        _: &Provider,
        job: Self::Work,
        read: Self::Read,
        reply: &Reply,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        let worker = self.0;
        let id = job.subscription_id;
        let remote = job.provider_subscription_id.clone().unwrap_or_default();
        let item = match &read {
            Some(CancelReply::Items(items)) => items.get(&remote).cloned(),
            Some(CancelReply::RefusedAll(words)) => Some(CancelItem::Refused(words.clone())),
            Some(CancelReply::Failed(_)) | None => None,
        };
        match item {
            Some(CancelItem::Accepted) => {
                pass.cancels_answered += 1;
                // Confirmed, but not ended here yet: the provider may have made children
                // since the last poll. The row stays `sent` and is polled now; that poll
                // books them (from the hold) and then ends it, releasing the rest.
                let outcome = UpstreamOutcome {
                    cancel: Some(Some(UpstreamCancel::Accepted)),
                    next_at: Some(db::now()),
                    ..UpstreamOutcome::to(ForwardingState::Sent)
                };
                finish(conn, job.fence(&worker.owner), outcome)?;
            }
            Some(CancelItem::Refused(words)) => {
                pass.cancels_answered += 1;
                let on_failure = UpstreamOutcome::to(ForwardingState::Sent);
                finish_with(worker, conn, &job, on_failure, |conn| {
                    subs::upstream_cancel_refused(conn, id, &words)?;
                    Ok(UpstreamOutcome {
                        // Kept on the row too, for an operator (a subscription that ended
                        // here shows no reason to the reseller).
                        error: Some(format!(
                            "the provider refused the cancel: {}",
                            truncate(&words, 300)
                        )),
                        cancel: Some(Some(UpstreamCancel::Refused)),
                        next_at: Some(worker.subscription_sync_later()),
                        ..UpstreamOutcome::to(ForwardingState::Sent)
                    })
                })?;
            }
            None => {
                // No certain answer: a cancel is safe to send again, so it stays requested.
                let error = match &read {
                    Some(CancelReply::Items(_)) => "missing from the cancel reply".to_string(),
                    Some(CancelReply::Failed(words)) => format!(
                        "the provider could not take the cancel: {}",
                        truncate(words, 200)
                    ),
                    _ => unreadable_reply("cancel", reply.http_status(), reply.text()),
                };
                let outcome = UpstreamOutcome {
                    error: Some(error),
                    failed: true,
                    next_at: Some(worker.backoff(job.failures)),
                    ..UpstreamOutcome::to(ForwardingState::Sent)
                };
                finish(conn, job.fence(&worker.owner), outcome)?;
            }
        }
        Ok(())
    }
}

/// Open provider-backed subscriptions' statuses and children, one batch per pass.
pub(super) struct SubscriptionPolls<'w>(pub(super) &'w Worker);

impl SubscriptionPolls<'_> {
    /// Applies one subscription's report and the fenced finish of its row in one
    /// transaction. The row is done only once the provider itself reports an end (or the
    /// subscription is gone): one that ended here first (a confirmed cancel, an operator's
    /// end, a disabled service) is still polled, so every child the provider makes is
    /// booked.
    fn apply(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        job: &ProviderSubscription,
        report: &UpstreamReport,
        quarantined: Option<&str>,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        let worker = self.0;
        let made = std::sync::atomic::AtomicUsize::new(0);
        let kept = finish_with(worker, conn, job, UpstreamOutcome::to(job.state), |conn| {
            let applied = subs::apply_upstream_report(conn, provider, job, report)?;
            made.store(applied.children.len(), std::sync::atomic::Ordering::Relaxed);
            let ended = applied.subscription.is_none()
                || report.status.is_some_and(SubscriptionStatus::is_terminal);
            // A child past the hold: the subscription is canceled upstream, whatever came
            // of an earlier cancel (a refused one is asked again: the children go on).
            let cancel = (applied.cancel_upstream
                && !ended
                && job.cancel != Some(UpstreamCancel::Requested))
            .then_some(Some(UpstreamCancel::Requested));
            let next_at = if cancel.is_some() {
                db::now()
            } else {
                worker.subscription_sync_later()
            };
            Ok(UpstreamOutcome {
                synced: true,
                cancel,
                quarantined_status: quarantined.map(str::to_string),
                next_at: Some(next_at),
                ..UpstreamOutcome::to(if ended {
                    ForwardingState::Done
                } else {
                    ForwardingState::Sent
                })
            })
        })?;
        if kept {
            pass.subscription_children += made.load(std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }
}

impl Exchange for SubscriptionPolls<'_> {
    const ACTION: &'static str = "status";
    type Work = Vec<ProviderSubscription>;
    type Read = Option<HashMap<String, SubscriptionItem>>;

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
        let jobs = db::write_tx(conn, |conn| {
            subscriptions::claim_upstream(
                conn,
                &worker.owner,
                UpstreamWork::Poll,
                provider.id,
                provider.batch_size.clamp(1, 100),
                due_by,
                worker.exchange_lease(provider),
            )
        })?;
        Ok(exchange::claimed(jobs))
    }

    fn request(&self, jobs: &Self::Work) -> Vec<(&'static str, String)> {
        let ids: Vec<&str> = jobs
            .iter()
            .filter_map(|j| j.provider_subscription_id.as_deref())
            .collect();
        vec![("action", "status".into()), ("orders", ids.join(","))]
    }

    fn read(&self, _: &Self::Work, reply: &Reply) -> (Self::Read, &'static str) {
        exchange::read_statuses(reply, parse_subscription_statuses)
    }

    fn finish(
        &self,
        conn: &mut DbConnection,
        provider: &Provider,
        jobs: Self::Work,
        items: Self::Read,
        reply: &Reply,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        let worker = self.0;
        for job in jobs {
            pass.subscriptions_polled += 1;
            let item = items.as_ref().map(|items| {
                job.provider_subscription_id
                    .as_deref()
                    .and_then(|id| items.get(id))
            });
            let failed = |error: String| UpstreamOutcome {
                error: Some(error),
                failed: true,
                next_at: Some(worker.backoff(job.failures)),
                ..UpstreamOutcome::to(ForwardingState::Sent)
            };
            let outcome = match item {
                None => failed(unreadable_reply(
                    "status",
                    reply.http_status(),
                    reply.text(),
                )),
                Some(None) => failed("missing from the status reply".into()),
                Some(Some(SubscriptionItem::Error(words))) => {
                    failed(truncate(words, 500).to_string())
                }
                Some(Some(SubscriptionItem::UnknownStatus { word, children })) => {
                    tracing::warn!(subscription = job.subscription_id.get(), provider = provider.id.get(), status = %word, "unknown subscription status quarantined");
                    // The status is quarantined; the children listed beside it are booked.
                    let report = UpstreamReport {
                        status: None,
                        children: children.clone(),
                    };
                    self.apply(conn, provider, &job, &report, Some(word), pass)?;
                    continue;
                }
                Some(Some(SubscriptionItem::Known { status, children })) => {
                    let report = UpstreamReport {
                        status: Some(*status),
                        children: children.clone(),
                    };
                    self.apply(conn, provider, &job, &report, None, pass)?;
                    continue;
                }
            };
            finish(conn, job.fence(&worker.owner), outcome)?;
        }
        Ok(())
    }
}
