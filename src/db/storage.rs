//! Running out of disk: how a write the database refused for lack of space is recognised
//! (SQLite's `SQLITE_FULL`, PostgreSQL's `53100 disk_full` and the "No space left on
//! device" its file writes report), when it last happened (so `/readyz` reports not ready
//! while writes fail, and ready again by itself once they stop failing), and how much space
//! is left on the SQLite file's filesystem (for `/metrics`, so an operator can alert before
//! it fills).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long after the last write refused for lack of space the service reports not ready.
/// Under load the refusals keep it not ready; once traffic stops (a balancer took the
/// process out) it reports ready again after this, and the next writes say whether space
/// came back.
pub const FULL_HOLD: Duration = Duration::from_secs(5);

/// Milliseconds since the epoch of the last write refused for lack of space; 0: never.
static LAST_FULL_MS: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether the database refused a statement for lack of space. Neither backend gives
/// diesel a code for it, so the message is read: SQLite's text for `SQLITE_FULL`, and
/// PostgreSQL's `could not extend file …: No space left on device` (53100) or a failed write
/// of its own files for the same reason.
pub fn is_storage_full(error: &diesel::result::Error) -> bool {
    let diesel::result::Error::DatabaseError(_, info) = error else {
        return false;
    };
    let message = info.message();
    message.contains("database or disk is full")
        || message.contains("No space left on device")
        || message.contains("could not extend file")
}

/// Records a write refused for lack of space (counted in `/metrics`).
pub fn record_full() {
    LAST_FULL_MS.store(now_ms(), Ordering::Relaxed);
    crate::metrics::STORAGE_FULL.inc(&[]);
}

/// Whether a write was refused for lack of space within [`FULL_HOLD`].
pub fn recently_full() -> bool {
    let last = LAST_FULL_MS.load(Ordering::Relaxed);
    last != 0 && now_ms().saturating_sub(last) < FULL_HOLD.as_millis() as u64
}

/// Bytes free to an unprivileged writer on the filesystem holding `path` (the SQLite file).
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}
