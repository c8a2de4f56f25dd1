//! How the worker's jobs are run: each on its own schedule, none able to hold up another.
//!
//! - **Provider jobs** ([`JOBS`]) talk to one provider: its balance, its catalog, the sends
//!   and status polls of its orders, its refills and cancels. Every provider has a lane (a
//!   thread, [`supervise`]) that runs each of these jobs for it in turn, so a provider that
//!   hangs for its whole timeout holds only its own lane: the others send and poll on
//!   time. Lanes are bounded ([`lane_count`]); past that, providers share them by id.
//! - **Periodic jobs** ([`crate::jobs::Periodic`]: retention, webhook deliveries, alerts) run each on a
//!   thread of their own ([`crate::jobs::spawn_periodic`]).
//! - **Isolation.** A job's error is logged (or, in [`every_job`], reported) and the other
//!   jobs still run; the failing job gives back the leases of its lane, since it may have
//!   stopped between a claim and its finish.
//! - **Shutdown.** Every loop checks the shared stop flag between exchanges: an exchange in
//!   flight finishes and is recorded, then the lane gives back every lease it holds.
//!
//! Leases (`db::lease`) keep several processes, and the lanes of one process, off each
//! other's rows; each lane claims under its own owner name, so one lane giving back its
//! leases never frees a row another lane is sending.
//!
//! A new queue of provider work is a type implementing [`exchange::Exchange`] (claim, send,
//! record, finish are written once, in [`exchange::run`]) and one line in [`JOBS`]; a new
//! job that is not about one provider implements [`crate::jobs::Periodic`] and is spawned beside the
//! others (`providers::worker::spawn`, `webhooks::worker::spawn`).

use std::collections::HashMap;
use std::thread::JoinHandle;

use super::balance_sync::BalanceRead;
use super::cancel_sync::Cancels;
use super::exchange;
use super::recovery_watch::RecoveryWatch;
use super::refill_sync::{RefillSends, RefillStatuses};
use super::subscription_sync::{SubscriptionCancels, SubscriptionPolls, SubscriptionSends};
use super::worker::{OrderSends, OrderStatuses, Pass, Worker};
use crate::db::providers;
use crate::domain::ids::ProviderId;
use crate::domain::provider::Provider;
use crate::jobs::Wake;

/// Lane threads one process runs at most; past it, providers share lanes by id.
pub const MAX_LANES: i64 = 64;

/// The lanes of a worker whose pool holds `pool_size` connections: at most half of it. A
/// lane gives its pooled connection back while it waits on its provider
/// ([`exchange::run`]), but holds one for each claim and finish, and the pool is shared
/// with the API's requests: lanes that all write at once still leave half of it to the API.
pub fn lane_count(pool_size: u32) -> i64 {
    (i64::from(pool_size) / 2).clamp(1, MAX_LANES)
}

/// One kind of work the worker does with one provider, run on that provider's lane: its
/// name in logs and in the errors of a pass, and one pass of it over what is due for the
/// provider (read just before, so a balance read by an earlier job of the pass counts).
/// Every queue of claimed work is an [`exchange::Exchange`] run by [`exchange::run`].
type Job = (
    &'static str,
    fn(&Worker, &Provider, &mut Pass) -> Result<(), diesel::result::Error>,
);

/// Every provider job, in the order a pass runs them, each over every provider of the lane
/// before the next: balances first (a pause applies to the sends of the same pass), sends
/// before polls (an order sent is polled in the same pass).
const JOBS: &[Job] = &[
    ("balance read", |w, p, pass| {
        exchange::run(&BalanceRead(w), w, p, pass)
    }),
    ("catalog sync", |w, p, _| w.sync_catalog(p)),
    ("order sends", |w, p, pass| {
        exchange::run(&OrderSends(w), w, p, pass)
    }),
    ("cancel sends", |w, p, pass| {
        exchange::run(&Cancels(w), w, p, pass)
    }),
    ("refill sends", |w, p, pass| {
        exchange::run(&RefillSends(w), w, p, pass)
    }),
    ("subscription sends", |w, p, pass| {
        exchange::run(&SubscriptionSends(w), w, p, pass)
    }),
    ("subscription cancels", |w, p, pass| {
        exchange::run(&SubscriptionCancels(w), w, p, pass)
    }),
    // Before the orders' poll: a child made here is polled in the same pass.
    ("subscription status sync", |w, p, pass| {
        exchange::run(&SubscriptionPolls(w), w, p, pass)
    }),
    ("order status sync", |w, p, pass| {
        exchange::run(&OrderStatuses(w), w, p, pass)
    }),
    ("refill status sync", |w, p, pass| {
        exchange::run(&RefillStatuses::new(w), w, p, pass)
    }),
    ("recovery watch", |w, p, pass| {
        exchange::run(&RecoveryWatch(w), w, p, pass)
    }),
];

/// One pass of every provider job over every provider in `ids`. A job that fails is
/// reported in the returned errors and the others still run.
pub(super) fn every_job(worker: &Worker, ids: &[ProviderId], pass: &mut Pass) -> Vec<String> {
    let mut errors = Vec::new();
    for (name, job) in JOBS {
        for &id in ids {
            if worker.stopping() {
                return errors;
            }
            let result = worker
                .connection()
                .and_then(|mut conn| providers::find(&mut conn, id))
                .and_then(|found| match found {
                    Some(provider) => job(worker, &provider, pass),
                    None => Ok(()),
                });
            if let Err(error) = result {
                // It may have stopped between a claim and its finish: give the rows back now
                // rather than when their leases run out.
                worker.release_leases();
                errors.push(format!("{name} for provider {id}: {error}"));
            }
        }
    }
    errors
}

/// The lane a provider's jobs run on.
fn lane_of(provider_id: ProviderId, lanes: i64) -> i64 {
    provider_id.get().rem_euclid(lanes)
}

/// Runs on the provider worker's thread until stopped: starts a lane for each provider
/// as it appears (looking once per [`Worker::interval`]), then waits for every lane to
/// finish its exchange and give back its leases. It waits on `shutdown`, not on the
/// orders' wake: every order placed notifies that one, and listing the providers once per
/// order cost the server ~7% of its CPU at 64 connections for no new lane. A provider
/// added gets its lane within one interval.
pub(super) fn supervise(worker: &Worker, shutdown: &Wake) {
    let lanes_count = lane_count(worker.pool.max_size());
    let mut lanes: HashMap<i64, JoinHandle<()>> = HashMap::new();
    let mut seen = shutdown.seen();
    while !worker.stopping() {
        match worker
            .connection()
            .and_then(|mut conn| providers::all(&mut conn))
        {
            Ok(all) => {
                for lane in all.iter().map(|p| lane_of(p.id, lanes_count)) {
                    if lanes.contains_key(&lane) {
                        continue;
                    }
                    let lane_worker = worker.for_lane(lane);
                    // A thread that cannot start now (the process is at its limit) is
                    // tried again on the next round; its providers' rows wait, leased
                    // by no one.
                    match std::thread::Builder::new()
                        .name(format!("provider-lane-{lane}"))
                        .spawn(move || run_lane(&lane_worker, lane))
                    {
                        Ok(thread) => {
                            lanes.insert(lane, thread);
                        }
                        Err(error) => {
                            tracing::error!(lane, %error, "could not start a provider lane")
                        }
                    }
                }
            }
            Err(error) => tracing::error!(%error, "could not list providers for their lanes"),
        }
        if !worker.stopping() {
            shutdown.wait(&mut seen, worker.interval());
        }
    }
    for (lane, thread) in lanes {
        if thread.join().is_err() {
            tracing::error!(lane, "a provider lane thread panicked");
        }
    }
}

fn run_lane(worker: &Worker, lane: i64) {
    let lanes_count = lane_count(worker.pool.max_size());
    let mut seen = worker.wake.seen();
    while !worker.stopping() {
        let ids: Result<Vec<ProviderId>, _> = worker
            .connection()
            .and_then(|mut conn| providers::all(&mut conn))
            .map(|all| {
                all.iter()
                    .map(|p| p.id)
                    .filter(|id| lane_of(*id, lanes_count) == lane)
                    .collect()
            });
        match ids {
            Ok(ids) => {
                let mut pass = Pass::default();
                let errors = every_job(worker, &ids, &mut pass);
                if pass != Pass::default() {
                    tracing::info!(?pass, ?ids, "provider worker pass");
                }
                for error in errors {
                    tracing::error!(%error, ?ids, "provider worker job failed");
                }
            }
            Err(error) => tracing::error!(%error, lane, "could not read the lane's providers"),
        }
        if !worker.stopping() {
            worker.wake.wait(&mut seen, worker.interval());
        }
    }
    worker.release_leases();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_take_at_most_half_the_pool() {
        assert_eq!(lane_count(10), 5);
        assert_eq!(lane_count(3), 1);
        assert_eq!(lane_count(1), 1);
        assert_eq!(lane_count(1000), MAX_LANES);
        // Providers 1 and 2 never share a lane while there are two lanes or more.
        assert_ne!(
            lane_of(ProviderId(1), lane_count(4)),
            lane_of(ProviderId(2), lane_count(4))
        );
    }
}
