//! The provider worker: sends provider-backed orders upstream (`action=add`) after their
//! debit has committed, and polls open orders (`action=status`, `orders=` batches) to feed
//! outcomes into the one refund rule. It runs on its own thread, inside `serve` or as
//! `reseller-api worker`; leases in the database keep several workers off each other's
//! orders.
//!
//! A lease covers only work about to happen: one order, claimed right before its `add`
//! and renewed by `begin_send` for longer than the exchange can take, or one status batch
//! claimed for longer than its request. Every write of an attempt is fenced by the token
//! its claim took (`provider_orders::Fence`), so a worker that lost its claim changes
//! nothing, except that a clear acceptance is never thrown away: the provider's id is
//! adopted by the row if nobody else knows one (`provider_orders::adopt_acceptance`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;

use super::client::{call, unreadable_reply, Reply};
use super::dialect::{parse_add, parse_multi_status, AddReply, StatusItem};
use super::Wake;
use crate::application::refunds::{self, SettleError, Trigger};
use crate::application::retention::{sweep, Swept};
use crate::config::{RetentionConfig, WorkerConfig};
use crate::db::provider_orders::{self, AttemptOutcome, Fence, ProviderOrder};
use crate::db::{self, orders, providers, DbPool};
use crate::domain::order::{Order, OrderStatus};
use crate::domain::provider::{ForwardingState, Provider};
use crate::domain::refund::{reason_for, Change, RefundReason, RefundSource};
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
    work: impl Fn(&mut db::DbConnection) -> Result<AttemptOutcome, diesel::result::Error> + Sync,
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
    let kept = provider_orders::finish(conn, fence, outcome)?;
    if !kept {
        lost(fence);
    }
    Ok(kept)
}

/// Another worker, a cancel or an operator took the row since this attempt claimed it.
fn lost(fence: Fence) {
    tracing::info!(
        order = fence.order_id,
        token = fence.token,
        "the claim was lost before the attempt ended; its outcome is not written"
    );
}

/// A clear acceptance whose fenced finish lost: the provider has the order, so its id is
/// kept where it makes the order tracked, never dropped.
fn keep_acceptance(
    conn: &mut db::DbConnection,
    order_id: i64,
    remote: &str,
) -> Result<(), diesel::result::Error> {
    if db::write_tx(conn, |conn| {
        provider_orders::adopt_acceptance(conn, order_id, remote)
    })? {
        tracing::warn!(
            order = order_id,
            provider_order_id = remote,
            "a late acceptance was adopted: the order is tracked as sent"
        );
        return Ok(());
    }
    let known = provider_orders::find(conn, order_id)?.and_then(|row| row.provider_order_id);
    match known {
        Some(known) if known == remote => {}
        Some(known) => tracing::error!(
            order = order_id,
            provider_order_id = remote,
            known = %known,
            "the provider accepted this order twice; the second id is in the attempt log"
        ),
        None => {
            db::write_tx(conn, |conn| {
                provider_orders::note_late_acceptance(conn, order_id, remote)
            })?;
            tracing::error!(
                order = order_id,
                provider_order_id = remote,
                "the provider accepted an order that had already ended here; an operator decides"
            );
        }
    }
    Ok(())
}

/// A provider read once per pass: the sends of one pass look each provider up here.
pub(super) fn cached_provider(
    cache: &mut HashMap<i64, Option<Provider>>,
    conn: &mut db::DbConnection,
    id: i64,
) -> Result<Option<Provider>, diesel::result::Error> {
    if let Some(found) = cache.get(&id) {
        return Ok(found.clone());
    }
    let found = providers::find(conn, id)?;
    cache.insert(id, found.clone());
    Ok(found)
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
}

pub struct Worker {
    pub(super) pool: DbPool,
    pub(super) config: WorkerConfig,
    pub(super) owner: String,
    pub wake: Arc<Wake>,
    /// Set on shutdown: the pass finishes the exchange in flight and takes no new one.
    stop: Arc<AtomicBool>,
    /// Retention passes between forwarding passes, when this worker runs them.
    retention: Option<RetentionConfig>,
    /// Providers that answered a batch `refill_status` (`refills=`) with something other
    /// than a batch: asked one refill at a time from then on.
    pub(super) no_batch_refill_status: std::sync::Mutex<std::collections::HashSet<i64>>,
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
            retention: None,
            no_batch_refill_status: Default::default(),
        }
    }

    /// Also runs retention (`application::retention`) every `retention_interval_secs`.
    pub fn with_retention(mut self, retention: RetentionConfig) -> Worker {
        self.retention = Some(retention);
        self
    }

    fn sweep_if_due(&self, last: &mut Option<std::time::Instant>) {
        let Some(retention) = &self.retention else {
            return;
        };
        let every = Duration::from_secs(retention.retention_interval_secs);
        if last.is_some_and(|at| at.elapsed() < every) {
            return;
        }
        *last = Some(std::time::Instant::now());
        let swept = self
            .pool
            .get()
            .map_err(|e| e.to_string())
            .and_then(|mut conn| sweep(&mut conn, retention).map_err(|e| e.to_string()));
        match swept {
            Ok(swept) if swept != Swept::default() => tracing::info!(?swept, "retention pass"),
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "retention pass failed"),
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

    /// Runs passes until [`WorkerHandle::shutdown`]; sleeps between them unless woken. On
    /// the way out it gives back every lease it holds, so another process takes its orders
    /// over at once instead of after the lease expires.
    pub fn run(&self) {
        tracing::info!(owner = %self.owner, "provider worker started");
        let mut last_sweep = None;
        while !self.stopping() {
            self.sweep_if_due(&mut last_sweep);
            match self.run_once() {
                Ok(pass) if pass != Pass::default() => {
                    tracing::info!(?pass, "provider worker pass")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "provider worker pass failed"),
            }
            if !self.stopping() {
                self.wake
                    .wait(Duration::from_millis(self.config.worker_interval_ms));
            }
        }
        self.release_leases();
        tracing::info!(owner = %self.owner, "provider worker stopped; its leases are given back");
    }

    fn release_leases(&self) {
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
            }
            Err(e) => tracing::error!(error = %e, "could not release the worker's leases"),
        }
    }

    /// One pass: send what is due, then poll what is due.
    pub fn run_once(&self) -> Result<Pass, String> {
        let mut pass = Pass::default();
        let result = self
            .check_balances()
            .and_then(|()| self.sync_catalogs())
            .and_then(|()| self.forward_due(&mut pass))
            .and_then(|()| self.forward_cancels(&mut pass))
            .and_then(|()| self.forward_refills(&mut pass))
            .and_then(|()| self.sync_due(&mut pass))
            .and_then(|()| self.sync_refills(&mut pass));
        if let Err(error) = result {
            // A pass that failed midway (e.g. the database was busy) may hold leases on
            // orders it never finished: give them back so they are not stuck until expiry.
            self.release_leases();
            return Err(error.to_string());
        }
        Ok(pass)
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

    fn forward_due(&self, pass: &mut Pass) -> Result<(), diesel::result::Error> {
        let mut conn = self.connection()?;
        let mut cache: HashMap<i64, Option<Provider>> = HashMap::new();
        // Due when the pass began: an order retried at once is left for the next pass.
        let due_by = db::now();
        // One order per claim, taken right before its exchange: no lease ever covers orders
        // that wait their turn behind a slow send.
        for _ in 0..SENDS_PER_PASS {
            if self.stopping() {
                break;
            }
            let Some(job) = db::write_tx(&mut conn, |conn| {
                provider_orders::claim(
                    conn,
                    &self.owner,
                    &[ForwardingState::Queued, ForwardingState::Sending],
                    None,
                    1,
                    due_by,
                    self.lease(),
                )
            })?
            .pop() else {
                break;
            };
            let provider = cached_provider(&mut cache, &mut conn, job.provider_id)?;
            let order = orders::lock(&mut conn, job.order_id, None)?;
            let (Some(provider), Some(order)) = (provider, order) else {
                continue;
            };
            self.forward(&mut conn, &provider, &order, &job, pass)?;
        }
        Ok(())
    }

    fn forward(
        &self,
        conn: &mut db::DbConnection,
        provider: &Provider,
        order: &Order,
        job: &ProviderOrder,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        let fence = job.fence(&self.owner);
        if order.status.is_terminal() {
            // Refunded before it was sent (a cancel, a disabled service): never send it.
            return finish(conn, fence, AttemptOutcome::to(ForwardingState::Done)).map(drop);
        }
        // Disabled, or paused because its balance is below the operator's minimum: the
        // order waits queued, nothing lost.
        if !provider.enabled || provider.paused_because().is_some() {
            let later = Some(db::now() + chrono::Duration::seconds(self.config.sync_interval_secs));
            let outcome = AttemptOutcome {
                next_at: later,
                ..AttemptOutcome::to(ForwardingState::Queued)
            };
            return finish(conn, fence, outcome).map(drop);
        }
        if job.state == ForwardingState::Sending && !provider.idempotent_add {
            // An earlier attempt began a send and its lease, which outlasts any exchange,
            // ran out: that worker died mid-send. The provider may have the order, and it
            // cannot tell us. Resending could buy it twice; an operator decides (unless the
            // earlier worker still gets its clear answer, which it then records).
            let outcome = AttemptOutcome {
                error: Some(
                    "an earlier send was interrupted; check the provider before resending".into(),
                ),
                failed: true,
                ..AttemptOutcome::to(ForwardingState::Ambiguous)
            };
            return finish(conn, fence, outcome).map(drop);
        }
        if !db::write_tx(conn, |conn| {
            provider_orders::begin_send(conn, fence, self.exchange_lease(provider))
        })? {
            return Ok(());
        }
        let quantity = order.quantity.to_string();
        let runs = order.runs.map(|r| r.to_string());
        let interval = order.interval.map(|i| i.to_string());
        let mut fields = vec![
            ("action", "add"),
            ("service", job.provider_service_id.as_str()),
            ("link", order.link.as_str()),
            ("quantity", quantity.as_str()),
            ("idempotency_key", job.idempotency_key.as_str()),
        ];
        if let (Some(runs), Some(interval)) = (&runs, &interval) {
            fields.push(("runs", runs));
            fields.push(("interval", interval));
        }
        if let Some(comments) = &order.comments {
            fields.push(("comments", comments));
        }
        let reply = call(provider, &fields);
        let (outcome, http_status, body) = match &reply {
            Reply::Answered { status, body } => (parse_add(body), Some(*status), body.clone()),
            Reply::NotSent(e) => (
                AddReply::Rejected(format!("not sent: {e}")),
                None,
                e.clone(),
            ),
            Reply::Lost(e) => (AddReply::Unreadable, None, e.clone()),
        };
        let sent_for_sure = matches!(reply, Reply::NotSent(_));
        let label = match &outcome {
            AddReply::Accepted(_) => "accepted",
            AddReply::Rejected(_) => "rejected",
            AddReply::Unreadable => "unreadable",
        };
        metrics::PROVIDER_REQUESTS.inc(&[&provider.id.to_string(), "add", label]);
        db::write_tx(conn, |conn| {
            provider_orders::record_attempt(
                conn,
                provider.id,
                Some(order.id),
                "add",
                label,
                http_status,
                &body,
            )
        })?;
        match outcome {
            AddReply::Accepted(remote_id) => {
                pass.sent += 1;
                let next = db::now() + chrono::Duration::seconds(self.config.sync_interval_secs);
                let outcome = AttemptOutcome {
                    provider_order_id: Some(remote_id.clone()),
                    next_at: Some(next),
                    ..AttemptOutcome::to(ForwardingState::Sent)
                };
                if !finish(conn, fence, outcome)? {
                    keep_acceptance(conn, order.id, &remote_id)?;
                }
                Ok(())
            }
            AddReply::Rejected(error) => {
                pass.send_failures += 1;
                // The provider said no (or never heard us): nothing upstream, so a retry is safe.
                if job.failures + 1 >= self.config.forward_max_failures {
                    let note = if sent_for_sure {
                        error.clone()
                    } else {
                        format!("the provider refused the order: {error}")
                    };
                    // The cancel and its refund stand only with the attempt's own finish.
                    return finish_with(conn, fence, |conn| {
                        cancel_unsendable(conn, order.id, &note)?;
                        Ok(AttemptOutcome {
                            error: Some(error.clone()),
                            failed: true,
                            ..AttemptOutcome::to(ForwardingState::Failed)
                        })
                    })
                    .map(drop);
                }
                let outcome = AttemptOutcome {
                    error: Some(error),
                    failed: true,
                    next_at: Some(self.backoff(job.failures)),
                    ..AttemptOutcome::to(ForwardingState::Queued)
                };
                finish(conn, fence, outcome).map(drop)
            }
            AddReply::Unreadable => {
                pass.send_failures += 1;
                let error = unreadable_reply("add", http_status, &body);
                // It may have been taken. Only a provider that honours our idempotency key
                // can be asked again without risking a second order upstream.
                let state = if provider.idempotent_add
                    && job.failures + 1 < self.config.forward_max_failures
                {
                    ForwardingState::Queued
                } else {
                    ForwardingState::Ambiguous
                };
                let outcome = AttemptOutcome {
                    error: Some(error),
                    failed: true,
                    next_at: Some(self.backoff(job.failures)),
                    ..AttemptOutcome::to(state)
                };
                finish(conn, fence, outcome).map(drop)
            }
        }
    }

    fn sync_due(&self, pass: &mut Pass) -> Result<(), diesel::result::Error> {
        let mut conn = self.connection()?;
        for provider in providers::all(&mut conn)?.into_iter().filter(|p| p.enabled) {
            if self.stopping() {
                break;
            }
            let batch = provider.batch_size.clamp(1, 100);
            let jobs = db::write_tx(&mut conn, |conn| {
                provider_orders::claim(
                    conn,
                    &self.owner,
                    &[ForwardingState::Sent],
                    Some(provider.id),
                    batch,
                    db::now(),
                    self.exchange_lease(&provider),
                )
            })?;
            if jobs.is_empty() {
                continue;
            }
            self.sync_batch(&mut conn, &provider, jobs, pass)?;
        }
        Ok(())
    }

    fn sync_batch(
        &self,
        conn: &mut db::DbConnection,
        provider: &Provider,
        jobs: Vec<ProviderOrder>,
        pass: &mut Pass,
    ) -> Result<(), diesel::result::Error> {
        let owner = self.owner.as_str();
        let ids: Vec<&str> = jobs
            .iter()
            .filter_map(|j| j.provider_order_id.as_deref())
            .collect();
        let list = ids.join(",");
        let reply = call(provider, &[("action", "status"), ("orders", &list)]);
        let (items, http_status, body) = match &reply {
            Reply::Answered { status, body } => {
                (parse_multi_status(body), Some(*status), body.as_str())
            }
            Reply::NotSent(e) | Reply::Lost(e) => (None, None, e.as_str()),
        };
        let outcome = if items.is_some() {
            "read"
        } else {
            "unreadable"
        };
        metrics::PROVIDER_REQUESTS.inc(&[&provider.id.to_string(), "status", outcome]);
        db::write_tx(conn, |conn| {
            provider_orders::record_attempt(
                conn,
                provider.id,
                None,
                "status",
                outcome,
                http_status,
                body,
            )
        })?;
        let Some(items) = items else {
            // The whole reply is unusable: every order keeps its state and is asked again later.
            let error = unreadable_reply("status", http_status, body);
            tracing::warn!(provider = provider.id, %error, "provider status poll failed");
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
                        order = job.order_id,
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
        conn: &mut db::DbConnection,
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
                tracing::warn!(order = job.order_id, provider = provider.id, status = %word, "unknown provider status quarantined");
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
            }) => {
                let mut trigger = Trigger::new(
                    Change {
                        status: Some(*status),
                        remains: *remains,
                        approve: 0,
                    },
                    reason_for(*status),
                    RefundSource::Automatic,
                );
                trigger.start_count = start_count.filter(|c| *c >= 0);
                match refunds::settle_within(conn, job.order_id, trigger) {
                    Ok(settled) => {
                        *refunded = settled.refund.is_some();
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
                        tracing::warn!(order = job.order_id, %error, "provider status refused by the refund rule");
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

/// Cancels and refunds an order that could not be placed upstream; call inside the
/// transaction that finishes its attempt.
fn cancel_unsendable(
    conn: &mut db::DbConnection,
    order_id: i64,
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

/// The worker running on its own thread.
pub struct WorkerHandle {
    stop: Arc<AtomicBool>,
    wake: Arc<Wake>,
    thread: std::thread::JoinHandle<()>,
}

impl WorkerHandle {
    /// Lets the exchange in flight finish, gives back every lease, and waits for the thread.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify();
        if self.thread.join().is_err() {
            tracing::error!("the provider worker thread panicked");
        }
    }
}

/// Starts the worker, with retention passes, on its own thread.
pub fn spawn(
    pool: DbPool,
    config: WorkerConfig,
    retention: RetentionConfig,
    wake: Arc<Wake>,
) -> WorkerHandle {
    let worker = Worker::new(pool, config, wake.clone()).with_retention(retention);
    let stop = worker.stop.clone();
    #[expect(
        clippy::expect_used,
        reason = "at start: a process that cannot start a thread cannot serve"
    )]
    let thread = std::thread::Builder::new()
        .name("provider-worker".into())
        .spawn(move || worker.run())
        .expect("spawn the provider worker thread");
    WorkerHandle { stop, wake, thread }
}
