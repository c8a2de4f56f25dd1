//! Wakes the worker's threads early, from any thread.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

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
    pub(super) fn seen(&self) -> u64 {
        self.notified.lock().map_or(0, |n| *n)
    }

    /// Waits up to `timeout`, or less if a notify came since `seen`, which it then updates.
    pub(super) fn wait(&self, seen: &mut u64, timeout: Duration) {
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
