//! The provider worker: sends provider-backed orders upstream (`action=add`) after their
//! debit has committed, and polls open orders (`action=status`, `orders=` batches) to feed
//! outcomes into the one refund rule. It runs inside `serve` or as `reseller-api worker`,
//! each provider's jobs on that provider's lane (`providers::jobs`); leases in the database
//! keep several workers, and lanes, off each other's orders.
//!
//! A lease covers only work about to happen: one order, claimed right before its `add`
//! and renewed by `begin_send` for longer than the exchange can take, or one status batch
//! claimed for longer than its request. Every write of an attempt is fenced by the token
//! its claim took (`provider_orders::Fence`), so a worker that lost its claim changes
//! nothing, except that a clear acceptance is never thrown away: the provider's id is
//! adopted by the row if nobody else knows one (`provider_orders::adopt_acceptance`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use super::client::{unreadable_reply, Reply};
use super::dialect::{parse_multi_status, AddReply, StatusItem};
use super::exchange::{self, Claimed, Exchange};
use super::{jobs, Wake};
use crate::application::costs;
use crate::application::refunds::{self, SettleError, Trigger};
use crate::application::retention::{sweep, Swept};
use crate::config::{RetentionConfig, WorkerConfig};
use crate::db::provider_orders::{self, AttemptOutcome, Fence, ProviderOrder};
use crate::db::{self, orders, providers, DbPool};
use crate::domain::ids::{OrderId, ProviderId};
use crate::domain::money::Money;
use crate::domain::order::{Order, OrderStatus};
use crate::domain::provider::{ForwardingState, Provider};
use crate::domain::refund::{reason_for, Change, RefundReason, RefundSource};
use crate::domain::service::QuantityRule;
use crate::metrics;

/// Orders one pass sends at most before it polls, each under its own claim.
const SENDS_PER_PASS: usize = 50;

/// How much longer than a provider's timeout a lease lasts: the database writes around the
/// exchange, and clocks that differ a little between hosts.
const LEASE_MARGIN_SECS: i64 = 30;

/// Why a fenced transaction was rolled back.
enum Fenced {
    /// The claim was lost: someone else has the row now.
    Lost,
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for Fenced {
    fn from(error: diesel::result::Error) -> Fenced {
        Fenced::Db(error)
    }
}

impl db::TxError for Fenced {
    fn is_conflict(&self) -> bool {
        matches!(self, Fenced::Db(error) if db::is_conflict(error))
    }
}

/// Runs `work` and the fenced finish of the outcome it returns as one write transaction:
/// when the claim was lost, nothing `work` did (a refund, a cancel) is kept. True when
/// it was kept.
fn finish_with(
    conn: &mut db::DbConnection,
    fence: Fence,
    work: impl Fn(&mut db::WriteConn<'_>) -> Result<AttemptOutcome, diesel::result::Error> + Sync,
) -> Result<bool, diesel::result::Error> {
    let result = db::write_tx(conn, |conn| {
        let outcome = work(conn)?;
        if provider_orders::finish(conn, fence, outcome)? {
            Ok(())
        } else {
            Err(Fenced::Lost)
        }
    });
    match result {
        Ok(()) => Ok(true),
        Err(Fenced::Lost) => {
            lost(fence);
            Ok(false)
        }
        Err(Fenced::Db(error)) => Err(error),
    }
}

/// Ends an attempt with its fenced finish; false (and logged) when the claim was lost.
fn finish(
    conn: &mut db::DbConnection,
    fence: Fence,
    outcome: AttemptOutcome,
) -> Result<bool, diesel::result::Error> {
    // Through the writer like every other write: on SQLite a write of its own would
    // compete with the group-commit writer for the file lock.
    let kept = db::write_tx(conn, |conn| {
        provider_orders::finish(conn, fence, outcome.clone())
    })?;
    if !kept {
        lost(fence);
    }
    Ok(kept)
}

/// Another worker, a cancel or an operator took the row since this attempt claimed it.
fn lost(fence: Fence) {
    tracing::info!(
        order = fence.order_id.get(),
        token = fence.token,
        "the claim was lost before the attempt ended; its outcome is not written"
    );
}

/// A clear acceptance whose fenced finish lost: the provider has the order, so its id is
/// kept where it makes the order tracked, never dropped.
fn keep_acceptance(
    conn: &mut db::DbConnection,
    provider: &Provider,
    order: &Order,
    remote: &str,
) -> Result<(), diesel::result::Error> {
    let order_id = order.id;
    // Adopted with its expected cost, as an acceptance kept under the claim is.
    if db::write_tx(conn, |conn| {
        let adopted = provider_orders::adopt_acceptance(conn, order_id, remote)?;
        if adopted {
            costs::record_send(conn, provider, order)?;
        }
        Ok::<_, diesel::result::Error>(adopted)
    })? {
        tracing::warn!(
            order = order_id.get(),
            provider_order_id = remote,
            "a late acceptance was adopted: the order is tracked as sent"
        );
        return Ok(());
    }
    let known = provider_orders::find(conn, order_id)?.and_then(|row| row.provider_order_id);
    match known {
        Some(known) if known == remote => {}
        Some(known) => tracing::error!(
            order = order_id.get(),
            provider_order_id = remote,
            known = %known,
            "the provider accepted this order twice; the second id is in the attempt log"
        ),
        None => {
            db::write_tx(conn, |conn| {
                provider_orders::note_late_acceptance(conn, order_id, remote)
            })?;
            tracing::error!(
                order = order_id.get(),
                provider_order_id = remote,
                "the provider accepted an order that had already ended here; an operator decides"
            );
        }
    }
    Ok(())
}

/// What one pass of the worker did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub sent: usize,
    pub send_failures: usize,
    pub polled: usize,
    pub refunds: usize,
    /// Cancel requests the provider answered (`action=cancel`), accepted or refused.
    pub cancels_answered: usize,
    /// Refills the provider took (`action=refill`).
    pub refills_sent: usize,
    /// Refills whose status was asked (`action=refill_status`).
    pub refills_polled: usize,
    /// Subscriptions the provider took (`action=add` of a subscription).
    pub subscriptions_sent: usize,
    /// Subscriptions whose status was asked.
    pub subscriptions_polled: usize,
    /// Child orders made from the children providers reported.
    pub subscription_children: usize,
}

pub struct Worker {
    pub(super) pool: DbPool,
    pub(super) config: WorkerConfig,
    /// The lease owner of its claims: one per lane, so a lane giving back its leases never
    /// frees a row another lane of this process is sending.
    pub(super) owner: String,
    pub wake: Arc<Wake>,
    /// Set on shutdown: every job finishes the exchange in flight and takes no new one.
    stop: Arc<AtomicBool>,
    /// Providers that answered a batch `refill_status` (`refills=`) with something other
    /// than a batch: asked one refill at a time from then on.
    pub(super) no_batch_refill_status: std::sync::Mutex<std::collections::HashSet<ProviderId>>,
}

impl Worker {
    pub fn new(pool: DbPool, config: WorkerConfig, wake: Arc<Wake>) -> Worker {
        let mut bytes = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        Worker {
            pool,
            config,
            owner: format!("worker-{}-{}", std::process::id(), hex::encode(bytes)),
            wake,
            stop: Arc::default(),
            no_batch_refill_status: Default::default(),
        }
    }

    /// The worker of one lane: the same database, settings and stop flag, its own owner.
    pub(super) fn for_lane(&self, lane: i64) -> Worker {
        Worker {
            pool: self.pool.clone(),
            config: self.config.clone(),
            owner: format!("{}-lane-{lane}", self.owner),
            wake: self.wake.clone(),
            stop: self.stop.clone(),
            no_batch_refill_status: Default::default(),
        }
    }

    /// A pooled connection, its checkout failure as a database error of the pass.
    pub(super) fn connection(&self) -> Result<db::PooledConnection, diesel::result::Error> {
        self.pool
            .get()
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.into()))
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The shared stop flag, for loops that check it themselves (`jobs::drain`).
    pub(super) fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    /// The wait between two passes of a lane, unless woken.
    pub(super) fn interval(&self) -> Duration {
        Duration::from_millis(self.config.worker_interval_ms)
    }

    /// Gives back every lease this worker (this lane) holds.
    pub(super) fn release_leases(&self) {
        match self.pool.get() {
            Ok(mut conn) => {
                if let Err(e) = db::write_tx(&mut conn, |conn| {
                    provider_orders::release_all(conn, &self.owner)
                }) {
                    tracing::error!(error = %e, "could not release the worker's leases");
                }
                if let Err(e) = db::write_tx(&mut conn, |conn| {
                    db::cancels::release_all(conn, &self.owner)
                }) {
                    tracing::error!(error = %e, "could not release the worker's cancel leases");
                }
                if let Err(e) = db::write_tx(&mut conn, |conn| {
                    db::refills::release_all(conn, &self.owner)
                }) {
                    tracing::error!(error = %e, "could not release the worker's refill leases");
                }
                if let Err(e) = db::write_tx(&mut conn, |conn| {
                    db::subscriptions::release_upstream(conn, &self.owner)
                }) {
                    tracing::error!(error = %e, "could not release the worker's subscription leases");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not release the worker's leases"),
        }
    }

    /// One pass of every provider job over every provider, in order, on this thread (the
    /// spawned worker runs them on lanes instead). A job that fails does not stop the
    /// others: the pass runs them all, then reports every error.
    pub fn run_once(&self) -> Result<Pass, String> {
        let mut pass = Pass::default();
        let ids: Vec<ProviderId> = self
            .connection()
            .and_then(|mut conn| providers::all(&mut conn))
            .map_err(|e| e.to_string())?
            .iter()
            .map(|p| p.id)
            .collect();
        let errors = jobs::every_job(self, &ids, &mut pass);
        if errors.is_empty() {
            Ok(pass)
        } else {
            Err(errors.join("; "))
        }
    }

    pub(super) fn lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.config.lease_secs)
    }

    /// The lease for one exchange with `provider`: `--lease-secs`, but never shorter than
    /// the provider's timeout plus a margin, so it cannot run out while a request is in
    /// flight and another worker take the order over (and find it "interrupted").
    pub(super) fn exchange_lease(&self, provider: &Provider) -> chrono::Duration {
        let timeout_secs = (provider.timeout_ms.max(1) + 999) / 1000;
        self.lease()
            .max(chrono::Duration::seconds(timeout_secs + LEASE_MARGIN_SECS))
    }

    pub(super) fn backoff(&self, failures: i64) -> NaiveDateTime {
        let secs = 5i64
            .saturating_mul(1i64 << failures.clamp(0, 20))
            .min(self.config.max_backoff_secs);
        db::now() + chrono::Duration::seconds(secs)
    }

    /// The outcome of an `add` the provider refused, or that never reached it.
    fn refused(
        &self,
        conn: &mut db::DbConnection,
        order: &Order,
        job: &ProviderOrder,
        error: String,
        never_sent: bool,
    ) -> Result<(), diesel::result::Error> {
        let fence = job.fence(&self.owner);
        if job.failures + 1 < self.config.forward_max_failures {
            return finish(conn, fence, self.retry_later(job, error)).map(drop);
        }
        let note = if never_sent {
            error.clone()
        } else {
            format!("the provider refused the order: {error}")
        };
        // The cancel and its refund stand only with the attempt's own finish.
        finish_with(conn, fence, |conn| {
            cancel_unsendable(conn, order.id, &note)?;
            Ok(AttemptOutcome {
                error: Some(error.clone()),
                failed: true,
                ..AttemptOutcome::to(ForwardingState::Failed)
            })
        })
        .map(drop)
    }

    /// The outcome of a claimed order that must not be sent now, if so.
    fn without_send(
        &self,
        provider: &Provider,
        order: &Order,
        job: &ProviderOrder,
    ) -> Option<AttemptOutcome> {
        if order.status.is_terminal() {
            // Refunded before it was sent (a cancel, a disabled service): never send it.
            return Some(AttemptOutcome::to(ForwardingState::Done));
        }
        // Disabled, or paused because its balance is below the operator's minimum: the
        // order waits queued, nothing lost.
        if !provider.enabled || provider.paused_because().is_some() {
            let later = db::now() + chrono::Duration::seconds(self.config.sync_interval_secs);
            return Some(AttemptOutcome {
                next_at: Some(later),
                ..AttemptOutcome::to(ForwardingState::Queued)
            });
        }
        if job.state == ForwardingState::Sending && !provider.idempotent_add {
            // An earlier attempt began a send and its lease, which outlasts any exchange,
            // ran out: that worker died mid-send. The provider may have the order, and it
            // cannot tell us. Resending could buy it twice; an operator decides (unless the
            // earlier worker still gets its clear answer, which it then records).
            return Some(AttemptOutcome {
                error: Some(
                    "an earlier send was interrupted; check the provider before resending".into(),
                ),
                failed: true,
                ..AttemptOutcome::to(ForwardingState::Ambiguous)
            });
        }
        None
    }

    /// The provider took the order: it is tracked by the provider's id from now on.
    fn accepted(&self, remote_id: String) -> AttemptOutcome {
        let next = db::now() + chrono::Duration::seconds(self.config.sync_interval_secs);
        AttemptOutcome {
            provider_order_id: Some(remote_id),
            next_at: Some(next),
            ..AttemptOutcome::to(ForwardingState::Sent)
        }
    }

    /// The provider said no (or never heard us): nothing upstream, so a retry is safe.
    fn retry_later(&self, job: &ProviderOrder, error: String) -> AttemptOutcome {
        AttemptOutcome {
            error: Some(error),
            failed: true,
            next_at: Some(self.backoff(job.failures)),
            ..AttemptOutcome::to(ForwardingState::Queued)
        }
    }

    /// No certain answer: the order may have been taken. Only a provider that honours our
    /// idempotency key can be asked again without risking a second order upstream.
    fn maybe_sent(
        &self,
        provider: &Provider,
        job: &ProviderOrder,
        error: String,
    ) -> AttemptOutcome {
        let state =
            if provider.idempotent_add && job.failures + 1 < self.config.forward_max_failures {
                ForwardingState::Queued
            } else {
                ForwardingState::Ambiguous
            };
        AttemptOutcome {
            error: Some(error),
            failed: true,
            next_at: Some(self.backoff(job.failures)),
            ..AttemptOutcome::to(state)
        }
    }

    /// Finishes each order of a status batch with what the reply said of it: settled
    /// (refunded when the rule says so) in the transaction of its fenced finish.
    fn apply_statuses(
        &self,
        conn: &mut db::DbConnection,
        provider: &Provider,
        jobs: Vec<ProviderOrder>,
        items: Option<std::collections::HashMap<String, StatusItem>>,
        reply: &Reply,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        let owner = self.owner.as_str();
        let Some(items) = items else {
            // The whole reply is unusable: every order keeps its state and is asked again later.
            let error = unreadable_reply("status", reply.http_status(), reply.text());
            tracing::warn!(provider = provider.id.get(), %error, "provider status poll failed");
            for job in &jobs {
                let outcome = AttemptOutcome {
                    error: Some(error.clone()),
                    failed: true,
                    next_at: Some(self.backoff(job.failures)),
                    ..AttemptOutcome::to(ForwardingState::Sent)
                };
                finish(conn, job.fence(owner), outcome)?;
            }
            return Ok(());
        };
        let give_up_before = db::now() - chrono::Duration::hours(self.config.give_up_hours);
        for job in jobs {
            pass.polled += 1;
            let item = job
                .provider_order_id
                .as_deref()
                .and_then(|id| items.get(id));
            // Set by the attempt of the transaction that ran last (a conflict runs it again;
            // on SQLite it runs on the writer thread, hence atomic).
            let refunded = std::sync::atomic::AtomicBool::new(false);
            // A refund this reply causes is kept only with the fenced finish of this claim:
            // a reply that comes back after another worker took the order changes nothing.
            let kept = finish_with(conn, job.fence(owner), |conn| {
                let mut refunds = false;
                let settle = self.status_outcome(conn, provider, &job, item, &mut refunds)?;
                refunded.store(refunds, std::sync::atomic::Ordering::Relaxed);
                let stuck =
                    settle.state == ForwardingState::Sent && job.created_at < give_up_before;
                Ok(if stuck {
                    tracing::warn!(
                        order = job.order_id.get(),
                        "no final status within the give-up horizon; polling stops"
                    );
                    AttemptOutcome {
                        state: ForwardingState::GivenUp,
                        error: Some("no final status within the give-up horizon".into()),
                        ..settle
                    }
                } else {
                    settle
                })
            })?;
            if kept && refunded.load(std::sync::atomic::Ordering::Relaxed) {
                pass.refunds += 1;
            }
        }
        Ok(())
    }

    /// What one item of a status reply does to its order (settled here, inside the
    /// caller's transaction) and leaves on its row.
    fn status_outcome(
        &self,
        conn: &mut db::WriteConn<'_>,
        provider: &Provider,
        job: &ProviderOrder,
        item: Option<&StatusItem>,
        refunded: &mut bool,
    ) -> Result<AttemptOutcome, diesel::result::Error> {
        let next = db::now() + chrono::Duration::seconds(self.config.sync_interval_secs);
        let outcome = match item {
            None => AttemptOutcome {
                error: Some("missing from the status reply".into()),
                failed: true,
                next_at: Some(self.backoff(job.failures)),
                ..AttemptOutcome::to(ForwardingState::Sent)
            },
            Some(StatusItem::Error(error)) => AttemptOutcome {
                error: Some(error.clone()),
                failed: true,
                next_at: Some(self.backoff(job.failures)),
                ..AttemptOutcome::to(ForwardingState::Sent)
            },
            Some(StatusItem::UnknownStatus(word)) => {
                tracing::warn!(order = job.order_id.get(), provider = provider.id.get(), status = %word, "unknown provider status quarantined");
                AttemptOutcome {
                    quarantined_status: Some(word.clone()),
                    next_at: Some(next),
                    synced: true,
                    ..AttemptOutcome::to(ForwardingState::Sent)
                }
            }
            Some(StatusItem::Known {
                status,
                remains,
                start_count,
                charge,
                currency,
            }) => {
                // A subscription's child is booked at `max` (the provider gives no
                // quantity, or its own, not ours): at a final status carrying a charge,
                // what it delivered is read from that charge against its charge for
                // `max`. A Completed child billed under `max` is a Partial of ours.
                let (status, remains) = match status {
                    OrderStatus::Completed | OrderStatus::Partial => {
                        match child_remains(conn, provider, job, *charge, currency.as_deref())? {
                            Some(Some(0)) if *status == OrderStatus::Completed => {
                                (*status, *remains)
                            }
                            Some(Some(undelivered)) => (OrderStatus::Partial, Some(undelivered)),
                            Some(None) if *status == OrderStatus::Partial && remains.is_none() => {
                                // Nothing can settle it: the rule would refuse it at every
                                // poll until the worker gave up. An operator decides.
                                crate::application::subscriptions::unsettled_child_to_review(
                                    conn,
                                    job.order_id,
                                )?;
                                return Ok(AttemptOutcome {
                                    error: Some(
                                        "Partial child whose charge cannot tell the undelivered share: on the review queue".into(),
                                    ),
                                    synced: true,
                                    ..AttemptOutcome::to(ForwardingState::Done)
                                });
                            }
                            Some(None) | None => (*status, *remains),
                        }
                    }
                    _ => (*status, *remains),
                };
                let status = &status;
                let mut trigger = Trigger::new(
                    Change {
                        status: Some(*status),
                        remains,
                        approve: Money::ZERO,
                    },
                    reason_for(*status),
                    RefundSource::Automatic,
                );
                trigger.start_count = start_count.filter(|c| *c >= 0);
                match refunds::settle_within(conn, job.order_id, trigger) {
                    Ok(settled) => {
                        *refunded = settled.refund.is_some();
                        let money = costs::StatusMoney {
                            charge: *charge,
                            currency: currency.clone(),
                            refunded: settled.refund.as_ref().map(|r| r.amount),
                        };
                        let watch = chrono::Duration::seconds(self.config.recovery_window_secs);
                        costs::record_status(conn, provider, &settled.order, &money, watch)?;
                        let state = if settled.order.status.is_terminal() {
                            ForwardingState::Done
                        } else {
                            ForwardingState::Sent
                        };
                        AttemptOutcome {
                            next_at: Some(next),
                            synced: true,
                            ..AttemptOutcome::to(state)
                        }
                    }
                    Err(SettleError::Db(e)) => return Err(e),
                    Err(SettleError::NotFound) => AttemptOutcome {
                        error: Some("order not found".into()),
                        ..AttemptOutcome::to(ForwardingState::Done)
                    },
                    Err(SettleError::Refused(refusal)) => {
                        let error =
                            format!("provider reported {status}, which cannot apply: {refusal:?}");
                        tracing::warn!(order = job.order_id.get(), %error, "provider status refused by the refund rule");
                        let done = orders::lock(conn, job.order_id, None)?
                            .is_none_or(|o| o.status.is_terminal());
                        let state = if done {
                            ForwardingState::Done
                        } else {
                            ForwardingState::Sent
                        };
                        AttemptOutcome {
                            error: Some(error),
                            next_at: Some(next),
                            synced: true,
                            ..AttemptOutcome::to(state)
                        }
                    }
                }
            }
        };
        Ok(outcome)
    }
}

/// The undelivered units of a subscription's child that ended (Completed or Partial): what
/// the provider's final `charge` leaves unbilled of its charge for the child's units (the
/// expected cost recorded when the child was made, its rate × `max`)
/// ([`crate::domain::subscription::undelivered_units`]; exact when the charge ÷ the rate is
/// a whole number of units, else rounded down). The provider's own `remains` are not used
/// for a child: they count against its quantity, not our `max`. `None` for any other
/// order (`None`), or `Some(None)` when it cannot be told (no charge, another currency, no
/// expected cost, a charge above it): the provider's words are then taken as given.
fn child_remains(
    conn: &mut db::DbConnection,
    provider: &Provider,
    job: &ProviderOrder,
    charge: Option<Money>,
    currency: Option<&str>,
) -> Result<Option<Option<i64>>, diesel::result::Error> {
    let Some(order) = orders::find(conn, job.order_id)?.filter(|o| o.subscription_id.is_some())
    else {
        return Ok(None);
    };
    let (Some(charge), true) = (charge, currency.is_none_or(|c| c == provider.currency)) else {
        return Ok(Some(None));
    };
    let full = db::costs::find(conn, order.id)?
        .filter(|cost| cost.currency == provider.currency)
        .and_then(|cost| cost.expected_cost_provider);
    Ok(Some(full.and_then(|full| {
        crate::domain::subscription::undelivered_units(order.quantity, full, charge)
    })))
}

/// The fields of an order's `add`: exactly its type's. No `quantity` where the type
/// derives it (the provider counts the lines itself) or sells one package.
fn add_request(order: &Order, job: &ProviderOrder) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("action", "add".to_string()),
        ("service", job.provider_service_id.clone()),
        ("link", order.link.clone()),
    ];
    if order.kind.quantity_rule() == QuantityRule::PerThousand {
        fields.push(("quantity", order.quantity.to_string()));
    }
    fields.push(("idempotency_key", job.idempotency_key.clone()));
    if let (Some(runs), Some(interval)) = (order.runs, order.interval) {
        fields.push(("runs", runs.to_string()));
        fields.push(("interval", interval.to_string()));
    }
    for (field, value) in order.fields.present() {
        fields.push((field.as_str(), value.panel_text()));
    }
    fields
}

/// Orders sent upstream (`action=add`), one claim each: an order that must not be sent now
/// is settled without an exchange, the others are marked sending (`begin_send`) before the
/// request, and the reply is finished under the claim.
pub(super) struct OrderSends<'w>(pub(super) &'w Worker);

impl Exchange for OrderSends<'_> {
    const ACTION: &'static str = "add";
    type Work = (Order, ProviderOrder);
    type Read = AddReply;

    fn per_pass(&self, _: &Provider) -> usize {
        SENDS_PER_PASS
    }

    fn claim(
        &self,
        conn: &mut db::DbConnection,
        provider: &Provider,
        due_by: NaiveDateTime,
    ) -> Result<Claimed<Self::Work>, diesel::result::Error> {
        let worker = self.0;
        // A critical `unrecovered` alert with --alert-pause-forwarding: orders wait queued.
        if db::alerts::pauses_forwarding(conn, provider.id)? {
            return Ok(Claimed::Empty);
        }
        // One order per claim, taken right before its exchange: no lease ever covers orders
        // that wait their turn behind a slow send.
        let Some(job) = db::write_tx(conn, |conn| {
            provider_orders::claim(
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
        let Some(order) = orders::lock(conn, job.order_id, None)? else {
            return Ok(Claimed::Settled);
        };
        let fence = job.fence(&worker.owner);
        if let Some(outcome) = worker.without_send(provider, &order, &job) {
            finish(conn, fence, outcome)?;
            return Ok(Claimed::Settled);
        }
        if !db::write_tx(conn, |conn| {
            provider_orders::begin_send(conn, fence, worker.exchange_lease(provider))
        })? {
            return Ok(Claimed::Settled);
        }
        Ok(Claimed::Due((order, job)))
    }

    fn request(&self, (order, job): &Self::Work) -> Vec<(&'static str, String)> {
        add_request(order, job)
    }

    fn read(&self, _: &Self::Work, reply: &Reply) -> (AddReply, &'static str) {
        exchange::read_add(reply)
    }

    fn order_of(&self, (order, _): &Self::Work) -> Option<OrderId> {
        Some(order.id)
    }

    fn finish(
        &self,
        conn: &mut db::DbConnection,
        provider: &Provider,
        (order, job): Self::Work,
        read: AddReply,
        reply: &Reply,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        let worker = self.0;
        let fence = job.fence(&worker.owner);
        match read {
            AddReply::Accepted(remote_id) => {
                pass.sent += 1;
                // The expected cost is kept with the acceptance, under the same claim.
                let kept = finish_with(conn, fence, |conn| {
                    costs::record_send(conn, provider, &order)?;
                    Ok(worker.accepted(remote_id.clone()))
                })?;
                if !kept {
                    keep_acceptance(conn, provider, &order, &remote_id)?;
                }
                Ok(())
            }
            AddReply::Rejected(error) => {
                pass.send_failures += 1;
                // Certainly never reached the provider (refused connection, bad address):
                // a refusal of ours, not the provider's.
                let never_sent = matches!(reply, Reply::NotSent(_));
                worker.refused(conn, &order, &job, error, never_sent)
            }
            AddReply::Unreadable => {
                pass.send_failures += 1;
                let error = unreadable_reply("add", reply.http_status(), reply.text());
                finish(conn, fence, worker.maybe_sent(provider, &job, error)).map(drop)
            }
        }
    }
}

/// Open orders' statuses (`action=status&orders=`), one batch per pass.
pub(super) struct OrderStatuses<'w>(pub(super) &'w Worker);

impl Exchange for OrderStatuses<'_> {
    const ACTION: &'static str = "status";
    type Work = Vec<ProviderOrder>;
    type Read = Option<std::collections::HashMap<String, StatusItem>>;

    fn per_pass(&self, _: &Provider) -> usize {
        1
    }

    fn claim(
        &self,
        conn: &mut db::DbConnection,
        provider: &Provider,
        due_by: NaiveDateTime,
    ) -> Result<Claimed<Self::Work>, diesel::result::Error> {
        if !provider.enabled {
            return Ok(Claimed::Empty);
        }
        let worker = self.0;
        let jobs = db::write_tx(conn, |conn| {
            provider_orders::claim(
                conn,
                &worker.owner,
                &[ForwardingState::Sent],
                Some(provider.id),
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
            .filter_map(|j| j.provider_order_id.as_deref())
            .collect();
        vec![("action", "status".into()), ("orders", ids.join(","))]
    }

    fn read(&self, _: &Self::Work, reply: &Reply) -> (Self::Read, &'static str) {
        exchange::read_statuses(reply, parse_multi_status)
    }

    fn finish(
        &self,
        conn: &mut db::DbConnection,
        provider: &Provider,
        jobs: Self::Work,
        items: Self::Read,
        reply: &Reply,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        self.0
            .apply_statuses(conn, provider, jobs, items, reply, pass)
    }
}

/// Counts one exchange with `provider` for `/metrics` and keeps it in the attempt log, in
/// its own transaction: the same for every job that talks to a provider.
pub(super) fn record_exchange(
    conn: &mut db::DbConnection,
    provider: &Provider,
    order_id: Option<OrderId>,
    action: &str,
    label: &str,
    http_status: Option<u16>,
    body: &str,
) -> Result<(), diesel::result::Error> {
    metrics::PROVIDER_REQUESTS.inc(&[&provider.id.to_string(), action, label]);
    db::write_tx(conn, |conn| {
        provider_orders::record_attempt(
            conn,
            provider.id,
            order_id,
            action,
            label,
            http_status,
            body,
        )
    })
}

/// Cancels and refunds an order that could not be placed upstream; call inside the
/// transaction that finishes its attempt.
fn cancel_unsendable(
    conn: &mut db::WriteConn<'_>,
    order_id: OrderId,
    note: &str,
) -> Result<(), diesel::result::Error> {
    let mut trigger = Trigger::new(
        Change {
            status: Some(OrderStatus::Canceled),
            ..Change::default()
        },
        RefundReason::ProviderCanceled,
        RefundSource::Automatic,
    );
    trigger.note = Some(format!(
        "could not place the order upstream: {}",
        truncate(note, 300)
    ));
    match refunds::settle_within(conn, order_id, trigger) {
        Ok(_) | Err(SettleError::Refused(_)) | Err(SettleError::NotFound) => Ok(()),
        Err(SettleError::Db(e)) => Err(e),
    }
}

pub(super) fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The provider worker: its lanes and its periodic jobs, each on its own thread.
pub struct WorkerHandle {
    stop: Arc<AtomicBool>,
    wake: Arc<Wake>,
    /// The periodic jobs' and the lanes' supervisor's own wake, for shutdown only: the
    /// orders' wake (every order placed notifies it) would wake each of their threads once
    /// per order, for nothing.
    periodic: Arc<Wake>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl WorkerHandle {
    /// Lets the exchanges in flight finish, gives back every lease, and waits for the
    /// threads.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify();
        self.periodic.notify();
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a provider worker thread panicked");
            }
        }
    }
}

/// The retention sweep (`application::retention`), every `retention_interval_secs`.
struct Retention {
    pool: DbPool,
    config: RetentionConfig,
}

impl crate::jobs::Periodic for Retention {
    const NAME: &'static str = "retention";

    fn every(&self) -> Duration {
        Duration::from_secs(self.config.retention_interval_secs)
    }

    fn pass(&mut self) -> Result<Option<String>, String> {
        let mut conn = self.pool.get().map_err(|e| e.to_string())?;
        let swept = sweep(&mut conn, &self.config).map_err(|e| e.to_string())?;
        Ok((swept != Swept::default()).then(|| format!("{swept:?}")))
    }
}

/// The report rollups' fold (`application::rollups`), every second; the quarter still
/// open only once a minute ([`crate::application::rollups::OPEN_QUARTER_EVERY`]). First
/// the report zones: on the first pass those not listed are dropped; until the listed
/// ones are kept and filled, a week of one's history per pass; then once a minute a look
/// that they still are (a zone dropped by another process's start is listed again).
struct Rollups {
    pool: DbPool,
    owner: String,
    /// When this process last folded the open quarter too.
    open_folded: Option<Instant>,
    /// The report zones' phases (`WorkerConfig::report_phases`).
    zones: Vec<i64>,
    /// When this process last found those zones all kept and filled (`None`: not yet).
    zones_kept: Option<Instant>,
    /// Whether the zones not listed were dropped (once, on the first pass that could).
    others_dropped: bool,
}

impl crate::jobs::Periodic for Rollups {
    const NAME: &'static str = "rollups";

    fn every(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn pass(&mut self) -> Result<Option<String>, String> {
        use crate::application::rollups::{fold, OPEN_QUARTER_EVERY};
        let mut conn = self.pool.get().map_err(|e| e.to_string())?;
        if self
            .zones_kept
            .is_none_or(|at| at.elapsed() >= OPEN_QUARTER_EVERY)
        {
            // A failure here leaves the zones for the next pass; the fold goes on.
            match crate::application::rollups::keep_zones(
                &mut conn,
                &self.owner,
                &self.zones,
                !self.others_dropped,
            ) {
                Ok(Some(filled)) => {
                    self.others_dropped = true;
                    self.zones_kept = filled.then(Instant::now);
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "report zones not kept this pass"),
            }
        }
        let all = self
            .open_folded
            .is_none_or(|at| at.elapsed() >= OPEN_QUARTER_EVERY);
        let below = (!all).then(|| crate::db::rollups::bucket_of(crate::db::now()));
        let folded = fold(&mut conn, &self.owner, 16, below).map_err(|e| e.to_string())?;
        if all {
            self.open_folded = Some(Instant::now());
        }
        Ok((folded.changes > 0).then(|| format!("{folded:?}")))
    }
}

/// Subscriptions without a provider end on schedule (`application::subscriptions::end_due`):
/// expired as their expiry date begins, completed once every post is served.
struct SubscriptionSchedule {
    pool: DbPool,
}

impl crate::jobs::Periodic for SubscriptionSchedule {
    const NAME: &'static str = "subscription schedule";

    fn every(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn pass(&mut self) -> Result<Option<String>, String> {
        let mut conn = self.pool.get().map_err(|e| e.to_string())?;
        let ended = crate::application::subscriptions::end_due(&mut conn, 500)
            .map_err(|e| e.to_string())?;
        Ok((ended > 0).then(|| format!("{ended} subscriptions ended")))
    }
}

/// Starts the worker: a lane per provider (`jobs::supervise`), the retention job, the
/// report rollups' fold and the subscriptions' schedule.
pub fn spawn(
    pool: DbPool,
    config: WorkerConfig,
    retention: RetentionConfig,
    wake: Arc<Wake>,
) -> WorkerHandle {
    let zones = config.report_phases();
    let worker = Worker::new(pool.clone(), config, wake.clone());
    let stop = worker.stop.clone();
    let periodic = Arc::new(Wake::default());
    let supervisor_wake = periodic.clone();
    let (rollups_pool, rollups_owner) = (pool.clone(), worker.owner.clone());
    let schedule = crate::jobs::spawn_periodic(
        SubscriptionSchedule { pool: pool.clone() },
        stop.clone(),
        periodic.clone(),
    );
    let retention = crate::jobs::spawn_periodic(
        Retention {
            pool,
            config: retention,
        },
        stop.clone(),
        periodic.clone(),
    );
    #[expect(
        clippy::expect_used,
        reason = "at start: a process that cannot start a thread cannot serve"
    )]
    let lanes = std::thread::Builder::new()
        .name("provider-worker".into())
        .spawn(move || {
            tracing::info!(owner = %worker.owner, "provider worker started");
            jobs::supervise(&worker, &supervisor_wake);
            tracing::info!(owner = %worker.owner, "provider worker stopped; its leases are given back");
        })
        .expect("spawn the provider worker thread");
    let rollups = crate::jobs::spawn_periodic(
        Rollups {
            pool: rollups_pool,
            owner: rollups_owner,
            open_folded: None,
            zones,
            zones_kept: None,
            others_dropped: false,
        },
        stop.clone(),
        periodic.clone(),
    );
    WorkerHandle {
        stop,
        wake,
        periodic,
        threads: vec![lanes, retention, rollups, schedule],
    }
}
