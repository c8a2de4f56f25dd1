//! The webhook worker: deliveries (dispatch, then deliver) and alerts, each a periodic job
//! on its own thread (`jobs::Periodic`).
//!
//! 1. **Dispatch**: in one write transaction, takes the oldest events no delivery was
//!    queued for (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so two processes never take the
//!    same), queues one delivery per enabled endpoint that subscribes to the type and may
//!    see the event, and marks them dispatched. An event is therefore queued exactly once
//!    per endpoint, whatever crashes in between (the transaction is all or nothing).
//! 2. **Deliver**: `--webhook-senders` senders, each a periodic job on its own thread,
//!    claim one due delivery at a time under a lease (a fencing token per claim): the
//!    oldest due of an endpoint with nothing in flight, whose circuit breaker is not open,
//!    of an account under `--webhook-sends-per-account` in flight (`store::claim_next`).
//!    Each sends outside any transaction, then records the attempt, the delivery's next
//!    state, the endpoint's health and its breaker under the fence. So a slow endpoint
//!    holds one sender and delays only its own deliveries; no sender waits for another.
//!    A worker that lost its claim writes nothing. A crash between the send and the record
//!    leaves the delivery leased until the lease expires; it is then sent again: one
//!    duplicate at most, with the same `webhook-id`, which receivers dedupe on.
//!    **Breaker**: `--webhook-breaker-failures` failures in a row open an endpoint's
//!    breaker for `--webhook-breaker-open-secs` (doubling per failed probe, up to an
//!    hour); its deliveries stay pending, unclaimed, until then; the first claim after is
//!    the single probe (one in flight per endpoint), and a success closes it.
//! 3. **Alerts**: every `--alert-interval-secs`, the process that takes the `alerts` job
//!    lease evaluates the refund-rate alerts (`application::alerts`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDateTime;
use rand::Rng;

use super::send::{self, Answer};
use super::sign::signature_header;
use crate::application::alerts;
use crate::application::webhooks::may_receive;
use crate::config::{AlertConfig, WebhookConfig};
use crate::db::webhooks::{self as store, BreakerMove, Delivery, DeliveryFence, NewAttempt};
use crate::db::{self, DbConnection, DbPool, WriteConn};
use crate::domain::account::Role;
use crate::domain::event::{DeliveryState, Endpoint, EndpointStatus, Event};
use crate::domain::ids::EventId;
use crate::jobs::{drain, spawn_periodic, Claimed, Periodic, Queue, Wake};
use crate::metrics;

/// Events one dispatch transaction takes at most.
const DISPATCH_BATCH: i64 = 200;
/// The longest a circuit breaker stays open (its open time doubles with each failed probe).
const MAX_BREAKER_OPEN_SECS: u64 = 3_600;
/// Longest `Retry-After` honoured; a longer one waits this long.
const MAX_RETRY_AFTER_SECS: u64 = 86_400;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WebhookPass {
    pub dispatched: usize,
    pub queued: usize,
    pub delivered: usize,
    pub failed_attempts: usize,
    pub alert_transitions: usize,
}

pub struct WebhookWorker {
    pool: DbPool,
    config: WebhookConfig,
    alerts: AlertConfig,
    owner: String,
    stop: Arc<AtomicBool>,
    /// Held while a sender claims or records, with its pooled connection: this process's
    /// senders never claim two deliveries of one endpoint at once (the claim looks at what
    /// is in flight; see `store::claim_next`), and together they hold one connection at a
    /// time, never one each while their sends are in flight or while they wait.
    db_turn: Mutex<()>,
}

impl WebhookWorker {
    pub fn new(pool: DbPool, config: WebhookConfig, alerts: AlertConfig) -> WebhookWorker {
        WebhookWorker {
            pool,
            config,
            alerts,
            owner: format!(
                "webhooks-{}-{}",
                std::process::id(),
                crate::domain::api_key::random_token(8)
            ),
            stop: Arc::default(),
            db_turn: Mutex::new(()),
        }
    }

    fn conn(&self) -> Result<db::PooledConnection, JobError> {
        Ok(self.pool.get()?)
    }

    /// One pass of every webhook job, in order, on this thread (the spawned worker runs
    /// deliveries and alerts each on its own): alerts when due, then dispatch (alerts just
    /// raised are events too) and deliver what is due. A job that fails does not stop the
    /// others: the pass runs them all, then reports every error.
    pub fn run_once(&self) -> Result<WebhookPass, String> {
        let mut pass = WebhookPass::default();
        let mut errors = Vec::new();
        let alerts = Alerts {
            pool: self.pool.clone(),
            config: self.alerts.clone(),
            owner: self.owner.clone(),
            every: self.every(),
        };
        match alerts.evaluate() {
            Ok(moved) => pass.alert_transitions += moved,
            Err(error) => errors.push(format!("alerts: {error}")),
        }
        if let Err(error) = self.deliveries(&mut pass) {
            errors.push(format!("webhook deliveries: {error}"));
        }
        if errors.is_empty() {
            Ok(pass)
        } else {
            Err(errors.join("; "))
        }
    }

    /// Queues what was committed since, then delivers what is due.
    fn deliveries(&self, pass: &mut WebhookPass) -> Result<(), JobError> {
        let mut conn = self.conn()?;
        self.dispatch(&mut conn, pass)?;
        drop(conn);
        self.deliver_due(pass)
    }

    /// The lease owner of sender `n`: each sender has its own, so one that fails gives
    /// back only its own leases.
    fn sender_owner(&self, n: u64) -> String {
        format!("{}-s{n}", self.owner)
    }

    fn release_leases(&self, owner: &str) {
        if let Ok(mut conn) = self.conn() {
            if let Err(error) = db::write_tx(&mut conn, |conn| store::release_all(conn, owner)) {
                tracing::error!(%error, "could not release the webhook worker's leases");
            }
        }
    }

    fn dispatch(
        &self,
        conn: &mut DbConnection,
        pass: &mut WebhookPass,
    ) -> Result<(), diesel::result::Error> {
        loop {
            let (events, queued) = db::write_tx(conn, |conn| {
                let events = db::events::undispatched(conn, DISPATCH_BATCH)?;
                if events.is_empty() {
                    return Ok((0, 0));
                }
                let enabled = store::enabled(conn)?;
                let endpoints = owners(conn, enabled)?;
                let mut queued = 0;
                for event in &events {
                    for (role, endpoint) in &endpoints {
                        if matches(*role, endpoint, event) {
                            store::queue(conn, event.id, endpoint.id, false)?;
                            queued += 1;
                        }
                    }
                }
                let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
                db::events::mark_dispatched(conn, &ids)?;
                Ok::<_, diesel::result::Error>((events.len(), queued))
            })?;
            pass.dispatched += events;
            pass.queued += queued;
            if events < DISPATCH_BATCH as usize {
                return Ok(());
            }
        }
    }

    /// The wait between passes of each job.
    fn every(&self) -> Duration {
        Duration::from_millis(self.config.webhook_interval_ms)
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.config.webhook_timeout_secs as i64 + 30)
    }

    /// Delivers what is due until nothing more may be sent now: `--webhook-senders`
    /// senders on threads of their own, each draining [`Deliveries`] one delivery at a
    /// time (as the spawned worker's [`Sender`]s do, here until each finds nothing).
    fn deliver_due(&self, pass: &mut WebhookPass) -> Result<(), JobError> {
        let counted = Mutex::new(WebhookPass::default());
        let errors: Vec<JobError> = std::thread::scope(|scope| {
            let senders: Vec<_> = (0..self.config.webhook_senders)
                .map(|n| {
                    let (owner, counted) = (self.sender_owner(n), &counted);
                    scope.spawn(move || {
                        let mut deliveries = Deliveries {
                            worker: self,
                            owner: &owner,
                            pass: counted,
                        };
                        drain(&mut deliveries, &self.stop)
                            .inspect_err(|_| self.release_leases(&owner))
                    })
                })
                .collect();
            senders
                .into_iter()
                .filter_map(|sender| sender.join().ok()?.err())
                .collect()
        });
        let counted = counted.into_inner().unwrap_or_else(|e| e.into_inner());
        pass.delivered += counted.delivered;
        pass.failed_attempts += counted.failed_attempts;
        match errors.into_iter().next() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// How long an endpoint's breaker stays open after opening `opened` times in a row
    /// before: `--webhook-breaker-open-secs`, doubled each time, up to an hour.
    fn breaker_open_for(&self, opened: i64) -> chrono::Duration {
        let base = self.config.webhook_breaker_open_secs;
        let secs = base
            .saturating_mul(1u64 << opened.clamp(0, 16))
            .min(MAX_BREAKER_OPEN_SECS.max(base));
        chrono::Duration::seconds(secs as i64)
    }

    fn send(&self, event: &Event, endpoint: &Endpoint) -> Answer {
        let body = serde_json::json!({
            "type": event.event_type,
            "timestamp": event.created_at.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "data": event.data,
        })
        .to_string();
        let id = event.id.to_string();
        let now = chrono::Utc::now();
        let timestamp = now.timestamp();
        let signature = signature_header(
            &endpoint.signing_secrets(now.naive_utc()),
            &id,
            timestamp,
            &body,
        );
        let timestamp = timestamp.to_string();
        let headers = [
            ("webhook-id", id.as_str()),
            ("webhook-timestamp", timestamp.as_str()),
            ("webhook-signature", signature.as_str()),
        ];
        send::post(
            &endpoint.url,
            &headers,
            &body,
            Duration::from_secs(self.config.webhook_timeout_secs),
            self.config.webhook_allow_private,
        )
    }

    /// The attempt's record, the delivery's next state and the endpoint's health, fenced by
    /// the claim; call inside the batch's write transaction.
    fn record(
        &self,
        conn: &mut WriteConn<'_>,
        fence: DeliveryFence,
        delivery: &Delivery,
        endpoint: &Endpoint,
        answer: &Answer,
    ) -> Result<(), diesel::result::Error> {
        let attempts = delivery.attempts + 1;
        let success = answer.status.is_some_and(|s| (200..300).contains(&s));
        let gone = answer.status == Some(410);
        let schedule = &self.config.webhook_retry_schedule;
        let (state, next_at) = if success {
            (DeliveryState::Succeeded, db::now())
        } else if gone || attempts as usize >= schedule.len() {
            (DeliveryState::Failed, db::now())
        } else {
            (
                DeliveryState::Pending,
                self.next_attempt(schedule[attempts as usize], answer),
            )
        };
        let error = answer.error.clone().or_else(|| {
            answer
                .status
                .filter(|_| !success)
                .map(|s| format!("the endpoint answered {s}"))
        });
        let disable_after = chrono::Duration::days(self.config.webhook_disable_after_days);
        if !store::finish(conn, fence, state, attempts, next_at)? {
            tracing::info!(
                delivery = delivery.id.get(),
                "the delivery's claim was lost before its attempt was recorded"
            );
            return Ok(());
        }
        store::record_attempt(
            conn,
            &NewAttempt {
                delivery_id: delivery.id,
                event_id: delivery.event_id,
                endpoint_id: delivery.endpoint_id,
                attempt: attempts,
                status_code: answer.status,
                duration_ms: answer.duration.as_millis() as i64,
                response_body: answer.body.as_deref(),
                error: error.as_deref(),
            },
        )?;
        let failing_since = store::note_result(conn, endpoint.id, success)?;
        let threshold = self.config.webhook_breaker_failures;
        match store::note_breaker(conn, endpoint.id, success, threshold, |opened| {
            self.breaker_open_for(opened)
        })? {
            BreakerMove::Opened(until) => {
                tracing::warn!(
                    endpoint = endpoint.id.get(),
                    %until,
                    "webhook endpoint parked: its circuit breaker opened"
                );
                metrics::on_commit(|| metrics::WEBHOOK_BREAKER_OPENED.inc(&[]));
            }
            BreakerMove::Recovered => {
                tracing::info!(
                    endpoint = endpoint.id.get(),
                    "webhook endpoint recovered: its circuit breaker closed"
                );
            }
            BreakerMove::Closed => {}
        }
        if gone {
            store::disable(conn, endpoint.id, "the endpoint answered 410 Gone")?;
        } else if failing_since.is_some_and(|since| db::now() - since >= disable_after) {
            store::disable(
                conn,
                endpoint.id,
                &format!(
                    "every delivery failed for {} days",
                    self.config.webhook_disable_after_days
                ),
            )?;
        }
        Ok(())
    }

    /// When the next attempt is due: the receiver's `Retry-After` on 429 and 503, else the
    /// schedule's wait with ±10 % jitter.
    fn next_attempt(&self, wait_secs: u64, answer: &Answer) -> NaiveDateTime {
        let honoured = matches!(answer.status, Some(429 | 503))
            .then_some(answer.retry_after_secs)
            .flatten();
        let millis = match honoured {
            Some(secs) => secs.min(MAX_RETRY_AFTER_SECS) * 1000,
            None if wait_secs == 0 => 0,
            None => {
                let base = wait_secs * 1000;
                let spread = base / 10;
                rand::rng().random_range(base - spread..=base + spread)
            }
        };
        db::now() + chrono::Duration::milliseconds(millis as i64)
    }
}

/// Dispatch as a periodic job: queues the committed events for their endpoints.
struct Dispatch(Arc<WebhookWorker>);

impl Periodic for Dispatch {
    const NAME: &'static str = "webhook dispatch";

    fn every(&self) -> Duration {
        self.0.every()
    }

    fn pass(&mut self) -> Result<Option<String>, String> {
        let mut pass = WebhookPass::default();
        let mut conn = self.0.conn().map_err(|e| e.to_string())?;
        self.0
            .dispatch(&mut conn, &mut pass)
            .map_err(|e| e.to_string())?;
        Ok((pass != WebhookPass::default()).then(|| format!("{pass:?}")))
    }

    fn stopped(&mut self) {
        tracing::info!(owner = %self.0.owner, "webhook worker stopped");
    }
}

/// One sender: a periodic job that drains [`Deliveries`], one delivery at a time, under a
/// lease owner of its own. A delivery that hangs holds this sender only; the others go on
/// with other endpoints.
struct Sender {
    worker: Arc<WebhookWorker>,
    owner: String,
}

impl Periodic for Sender {
    const NAME: &'static str = "webhook sender";

    fn every(&self) -> Duration {
        self.worker.every()
    }

    fn pass(&mut self) -> Result<Option<String>, String> {
        let counted = Mutex::new(WebhookPass::default());
        let mut deliveries = Deliveries {
            worker: &self.worker,
            owner: &self.owner,
            pass: &counted,
        };
        drain(&mut deliveries, &self.worker.stop)
            .inspect_err(|_| self.worker.release_leases(&self.owner))
            .map_err(|e| e.to_string())?;
        let pass = counted.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok((pass != WebhookPass::default()).then(|| format!("{pass:?}")))
    }

    fn stopped(&mut self) {
        self.worker.release_leases(&self.owner);
    }
}

/// Why a webhook job's pass failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no database connection: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    /// The alert thresholds' flags disagree (a message for the operator, as it is).
    #[error("alert thresholds: {0}")]
    Thresholds(String),
}

/// The refund-rate alerts (`application::alerts`): every `--alert-interval-secs`, the
/// process that takes the `alerts` turn evaluates them. Their events are delivered by the
/// next deliveries pass.
struct Alerts {
    pool: DbPool,
    config: AlertConfig,
    owner: String,
    /// How often it looks whether its turn has come: the deliveries' interval.
    every: Duration,
}

impl Alerts {
    /// How many alerts moved; none when another process has this interval's turn.
    fn evaluate(&self) -> Result<usize, JobError> {
        let thresholds = self.config.thresholds().map_err(JobError::Thresholds)?;
        let mut conn = self.pool.get()?;
        let every = chrono::Duration::seconds(self.config.alert_interval_secs as i64);
        if !alerts::take_turn(&mut conn, &self.owner, every)? {
            return Ok(0);
        }
        let unrecovered = self
            .config
            .unrecovered_thresholds()
            .map_err(JobError::Thresholds)?;
        Ok(alerts::evaluate(
            &mut conn,
            &thresholds,
            self.config.alert_pause_orders,
            &alerts::Recovery {
                thresholds: unrecovered,
                pause_forwarding: self.config.alert_pause_forwarding,
            },
        )?)
    }
}

impl Periodic for Alerts {
    const NAME: &'static str = "alerts";

    fn every(&self) -> Duration {
        self.every
    }

    fn pass(&mut self) -> Result<Option<String>, String> {
        let moved = self.evaluate().map_err(|e| e.to_string())?;
        Ok((moved > 0).then(|| format!("{moved} alerts moved")))
    }
}

/// Each enabled endpoint with its owner's role (an operator's endpoint sees every event).
fn owners(
    conn: &mut DbConnection,
    endpoints: Vec<Endpoint>,
) -> Result<Vec<(Role, Endpoint)>, diesel::result::Error> {
    let mut out = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        if let Some(account) = db::accounts::find(conn, endpoint.account_id)? {
            out.push((account.role, endpoint));
        }
    }
    Ok(out)
}

/// Whether the dispatcher queues `event` for `endpoint`: subscribed, allowed to see it,
/// and registered before the event happened.
fn matches(role: Role, endpoint: &Endpoint, event: &Event) -> bool {
    endpoint.wants(event.event_type)
        && may_receive(role, endpoint, event)
        && endpoint.created_at <= event.created_at
        && (role == Role::Admin || !event.event_type.is_operator_only())
}

/// The webhook worker: deliveries and alerts, each on its own thread.
pub struct WebhookHandle {
    stop: Arc<AtomicBool>,
    wake: Arc<Wake>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl WebhookHandle {
    /// Finishes the attempts in flight, gives back its leases, and waits for the threads.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify();
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a webhook worker thread panicked");
            }
        }
    }
}

pub fn spawn(pool: DbPool, config: WebhookConfig, alerts: AlertConfig) -> WebhookHandle {
    let worker = Arc::new(WebhookWorker::new(pool, config, alerts));
    let stop = worker.stop.clone();
    let wake = Arc::new(Wake::default());
    let alerts = Alerts {
        pool: worker.pool.clone(),
        config: worker.alerts.clone(),
        owner: worker.owner.clone(),
        every: worker.every(),
    };
    tracing::info!(owner = %worker.owner, "webhook worker started");
    let mut threads = vec![
        spawn_periodic(Dispatch(worker.clone()), stop.clone(), wake.clone()),
        spawn_periodic(alerts, stop.clone(), wake.clone()),
    ];
    for n in 0..worker.config.webhook_senders {
        let sender = Sender {
            worker: worker.clone(),
            owner: worker.sender_owner(n),
        };
        threads.push(spawn_periodic(sender, stop.clone(), wake.clone()));
    }
    WebhookHandle {
        stop,
        wake,
        threads,
    }
}

/// Due deliveries as a [`Queue`], one at a time: the next due delivery of an endpoint with
/// nothing in flight, whose breaker is not open and whose account is under its share of
/// senders (`store::claim_next`), claimed (with what it sends) in one transaction, sent
/// outside any transaction, and its attempt recorded in one fenced transaction. Several
/// senders drain it at once, so deliveries of different endpoints never wait on each other.
struct Deliveries<'a> {
    worker: &'a WebhookWorker,
    /// This sender's lease owner.
    owner: &'a str,
    pass: &'a Mutex<WebhookPass>,
}

type Claim = (Delivery, Option<Event>, Option<Endpoint>);

impl Queue for Deliveries<'_> {
    type Work = Claim;
    /// The answer; none when the event or endpoint is gone or disabled.
    type Answer = Option<Answer>;
    type Error = JobError;

    fn per_pass(&self) -> usize {
        // Until nothing is due: each claim is one delivery, and the pass stops with the worker.
        usize::MAX
    }

    fn claim(&mut self) -> Result<Claimed<Self::Work>, JobError> {
        let worker = self.worker;
        let _turn = worker.db_turn.lock().unwrap_or_else(|e| e.into_inner());
        let mut conn = worker.conn()?;
        // A read first, so idle senders do not queue empty write transactions.
        if !store::any_due(&mut conn, db::now())? {
            return Ok(Claimed::Empty);
        }
        let per_account = worker.config.webhook_sends_per_account as i64;
        let claimed = db::write_tx(&mut conn, |conn| {
            let Some(delivery) = store::claim_next(conn, self.owner, per_account, worker.lease())?
            else {
                return Ok(None);
            };
            let event = db::events::find(conn, delivery.event_id, None)?;
            let endpoint = store::find(conn, delivery.endpoint_id, None)?;
            Ok::<_, diesel::result::Error>(Some((delivery, event, endpoint)))
        })?;
        Ok(match claimed {
            Some(claim) => Claimed::Due(claim),
            None => Claimed::Empty,
        })
    }

    fn send(&mut self, (_, event, endpoint): &Self::Work) -> Self::Answer {
        match (event, endpoint) {
            (Some(event), Some(endpoint)) if endpoint.status == EndpointStatus::Enabled => {
                Some(self.worker.send(event, endpoint))
            }
            _ => None,
        }
    }

    fn finish(&mut self, claimed: Self::Work, answer: Self::Answer) -> Result<(), JobError> {
        let worker = self.worker;
        let (delivery, _, endpoint) = &claimed;
        let turn = worker.db_turn.lock().unwrap_or_else(|e| e.into_inner());
        let mut conn = worker.conn()?;
        db::write_tx(&mut conn, |conn| {
            let fence = delivery.fence(self.owner);
            match (endpoint, &answer) {
                (Some(endpoint), Some(answer)) => {
                    worker.record(conn, fence, delivery, endpoint, answer)?
                }
                // The event or endpoint is gone, or the endpoint was disabled.
                _ => {
                    store::finish(
                        conn,
                        fence,
                        DeliveryState::Failed,
                        delivery.attempts,
                        db::now(),
                    )?;
                }
            }
            Ok::<_, diesel::result::Error>(())
        })?;
        drop((conn, turn));
        if let Some(answer) = &answer {
            let mut pass = self.pass.lock().unwrap_or_else(|e| e.into_inner());
            let outcome = if answer.status.is_some_and(|s| (200..300).contains(&s)) {
                pass.delivered += 1;
                "delivered"
            } else {
                pass.failed_attempts += 1;
                if answer.timed_out {
                    "timeout"
                } else {
                    "failed"
                }
            };
            metrics::WEBHOOK_ATTEMPTS.inc(&[outcome]);
        }
        Ok(())
    }
}
