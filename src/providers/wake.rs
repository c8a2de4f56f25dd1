//! Wakes the worker early, from any thread.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Wakes the worker early, e.g. right after an order to forward was placed.
#[derive(Default)]
pub struct Wake {
    pending: Mutex<bool>,
    signal: Condvar,
}

impl Wake {
    pub fn notify(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            *pending = true;
            self.signal.notify_all();
        }
    }

    pub(super) fn wait(&self, timeout: Duration) {
        let Ok(pending) = self.pending.lock() else {
            return;
        };
        if let Ok((mut pending, _)) = self.signal.wait_timeout_while(pending, timeout, |p| !*p) {
            *pending = false;
        }
    }
}
