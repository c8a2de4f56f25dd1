//! What every background job stands on, whatever it works on: [`Wake`] to wake threads
//! early, and [`Periodic`] jobs, each on a thread of its own, so one job's error or slowness
//! never stops or delays another. The provider worker's per-provider lanes
//! (`providers::jobs`) and the webhook worker's jobs are built on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Wakes the worker early, e.g. right after an order to forward was placed. Every thread
/// waiting wakes: a counter, not a flag one waiter would clear for all the others.
#[derive(Default)]
pub struct Wake {
    notified: Mutex<u64>,
    signal: Condvar,
}

impl Wake {
    pub fn notify(&self) {
        if let Ok(mut notified) = self.notified.lock() {
            *notified = notified.wrapping_add(1);
            self.signal.notify_all();
        }
    }

    /// What a waiter has seen so far: a wait returns early once a notify comes after it.
    pub fn seen(&self) -> u64 {
        self.notified.lock().map_or(0, |n| *n)
    }

    /// Waits up to `timeout`, or less if a notify came since `seen`, which it then updates.
    pub fn wait(&self, seen: &mut u64, timeout: Duration) {
        let Ok(notified) = self.notified.lock() else {
            return;
        };
        if let Ok((notified, _)) = self
            .signal
            .wait_timeout_while(notified, timeout, |n| *n == *seen)
        {
            *seen = *notified;
        }
    }
}

/// A job that is not about one provider, run on its own thread every [`Periodic::every`].
pub trait Periodic: Send + 'static {
    /// Its name in logs, and its thread's.
    const NAME: &'static str;

    /// The wait between passes (a wake ends it early).
    fn every(&self) -> Duration;

    /// One pass; what it did, for the log, when it did something.
    fn pass(&mut self) -> Result<Option<String>, String>;

    /// On the way out: give back what the job holds.
    fn stopped(&mut self) {}
}

/// Runs `job` on its own thread until `stop` is set; `wake` must be notified with it.
#[expect(
    clippy::expect_used,
    reason = "at start: a process that cannot start a thread cannot serve"
)]
pub fn spawn_periodic<J: Periodic>(
    mut job: J,
    stop: Arc<AtomicBool>,
    wake: Arc<Wake>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(J::NAME.replace(' ', "-"))
        .spawn(move || {
            let mut seen = wake.seen();
            while !stop.load(Ordering::Relaxed) {
                match job.pass() {
                    Ok(Some(done)) => tracing::info!(job = J::NAME, %done, "worker job pass"),
                    Ok(None) => {}
                    Err(error) => tracing::error!(job = J::NAME, %error, "worker job failed"),
                }
                // A wake only cuts the wait short for shutdown: the job keeps its period.
                let every = job.every();
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < every {
                    wake.wait(&mut seen, every.saturating_sub(started.elapsed()));
                }
            }
            job.stopped();
        })
        .expect("spawn a worker job thread")
}

/// What a [`Queue`]'s claim found.
pub enum Claimed<W> {
    /// Work to send; the claim holds its leases.
    Due(W),
    /// Claimed and finished without an exchange (nothing may be sent now); the pass goes on.
    Settled,
    /// Nothing is due: the queue's pass ends.
    Empty,
}

/// A queue of work the worker claims in the database and sends outside it: provider
/// orders, statuses, cancels, refills and balances (`providers::exchange`), webhook
/// deliveries (`webhooks::worker`). [`drain`] runs the one discipline they all follow.
pub trait Queue {
    /// What one exchange carries: a claimed row or a batch of them, with their fences.
    type Work;
    /// What came back.
    type Answer;
    type Error;

    /// Exchanges one pass makes at most.
    fn per_pass(&self) -> usize;

    /// Claims the next due work under a lease and makes it ready to send, each write in a
    /// write transaction of its own.
    fn claim(&mut self) -> Result<Claimed<Self::Work>, Self::Error>;

    /// Sends the work: outside any transaction, holding no pooled connection.
    fn send(&mut self, work: &Self::Work) -> Self::Answer;

    /// Records the exchange and ends each claimed item with what came back, fenced by
    /// its claim's token, so a worker that lost its claim changes nothing.
    fn finish(&mut self, work: Self::Work, answer: Self::Answer) -> Result<(), Self::Error>;
}

/// One pass of `queue`: claim → send → finish, until nothing is due, the pass's bound is
/// reached or `stop` is set (an exchange in flight is still finished). Returns the
/// exchanges made.
pub fn drain<Q: Queue>(queue: &mut Q, stop: &AtomicBool) -> Result<usize, Q::Error> {
    let mut exchanges = 0;
    for _ in 0..queue.per_pass() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let work = match queue.claim()? {
            Claimed::Due(work) => work,
            Claimed::Settled => continue,
            Claimed::Empty => break,
        };
        let answer = queue.send(&work);
        queue.finish(work, answer)?;
        exchanges += 1;
    }
    Ok(exchanges)
}
