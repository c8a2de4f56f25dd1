//! Retention: what nobody needs after a while goes, in small batches, so no pass holds a
//! long lock. Money records (orders, ledger, refunds, top-ups) are never touched.

use chrono::Duration;

use crate::config::RetentionConfig;
use crate::db::{self, idempotency, provider_orders, DbConnection};

/// What one retention pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub idempotency_keys: usize,
    pub attempt_bodies: usize,
}

/// Deletes expired idempotency keys and clears provider reply bodies past their days, one
/// batch per statement (each its own transaction) until nothing is left.
pub fn sweep(conn: &mut DbConnection, config: &RetentionConfig) -> diesel::QueryResult<Swept> {
    let batch = config.retention_batch.max(1);
    let mut swept = Swept::default();
    let keys_before = db::now() - config.idempotency_ttl();
    loop {
        let n = db::write_tx(conn, |conn| {
            idempotency::delete_expired(conn, keys_before, batch)
        })?;
        swept.idempotency_keys += n;
        if n < batch as usize {
            break;
        }
    }
    let bodies_before = db::now() - Duration::days(config.attempt_body_days.max(1));
    loop {
        let n = db::write_tx(conn, |conn| {
            provider_orders::clear_attempt_bodies(conn, bodies_before, batch)
        })?;
        swept.attempt_bodies += n;
        if n < batch as usize {
            break;
        }
    }
    Ok(swept)
}
