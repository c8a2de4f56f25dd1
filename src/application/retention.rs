//! Retention: what nobody needs after a while goes, in small batches, so no pass holds a
//! long lock. Money records (orders, ledger, refunds, top-ups) are never touched; events go
//! after `--event-retention-days` (at least 30), with their webhook deliveries; audit-log
//! entries after `--audit-retention-days` (at least 365).

use chrono::Duration;

use crate::config::RetentionConfig;
use crate::db::{self, audit, events, idempotency, provider_orders, DbConnection, WriteConn};

/// What one retention pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub idempotency_keys: usize,
    pub attempt_bodies: usize,
    pub events: usize,
    pub audit_entries: usize,
}

/// Deletes expired idempotency keys and clears provider reply bodies past their days, one
/// batch per statement (each its own transaction) until nothing is left.
pub fn sweep(conn: &mut DbConnection, config: &RetentionConfig) -> diesel::QueryResult<Swept> {
    let batch = config.retention_batch;
    let keys_before = db::now() - config.idempotency_ttl();
    let bodies_before = db::now() - Duration::days(config.attempt_body_days);
    let events_before = db::now() - Duration::days(config.event_retention_days);
    let audit_before = db::now() - Duration::days(config.audit_retention_days);
    Ok(Swept {
        idempotency_keys: in_batches(conn, batch, |conn| {
            idempotency::delete_expired(conn, keys_before, batch)
        })?,
        attempt_bodies: in_batches(conn, batch, |conn| {
            provider_orders::clear_attempt_bodies(conn, bodies_before, batch)
        })?,
        events: in_batches(conn, batch, |conn| {
            events::delete_older(conn, events_before, batch)
        })?,
        audit_entries: in_batches(conn, batch, |conn| {
            audit::delete_older(conn, audit_before, batch)
        })?,
    })
}

/// Runs `step` (which handles up to `batch` rows) in its own transaction until a step
/// handles fewer; returns the rows handled in all.
fn in_batches(
    conn: &mut DbConnection,
    batch: i64,
    step: impl Fn(&mut WriteConn<'_>) -> diesel::QueryResult<usize> + Sync,
) -> diesel::QueryResult<usize> {
    let mut total = 0;
    loop {
        let n = db::write_tx(conn, &step)?;
        total += n;
        if n < batch as usize {
            return Ok(total);
        }
    }
}
