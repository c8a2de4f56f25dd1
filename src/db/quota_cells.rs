//! The account quota's GCRA cells (PostgreSQL): one row per account holding its
//! theoretical arrival time (`tat_us`, microseconds since the epoch on the database's
//! clock), which every process serving the account leases requests from
//! (`http::limits::SharedQuota`). SQLite has the table too, for one schema, but keeps its
//! single process's quota in memory and never calls this.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::WriteConn;
use crate::domain::ids::AccountId;

/// What a lease got from the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Requests granted now (0 to the number asked for).
    pub granted: u32,
    /// Requests the cell can still grant right after this one.
    pub remaining: u32,
    /// Until the cell can grant one more request.
    pub wait: Duration,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    granted: i64,
    #[diesel(sql_type = BigInt)]
    tat_us: i64,
    #[diesel(sql_type = BigInt)]
    now_us: i64,
}

/// The database's clock in microseconds: the transaction's start, the same at every use
/// in the statement (a transaction that waited for the row lock sees an earlier time,
/// which grants less, never more).
const NOW_US: &str = "(EXTRACT(EPOCH FROM now()) * 1000000)::BIGINT";

/// Takes up to `want` requests from the account's cell, for a quota of `quota` requests
/// per `window`, in one statement: the row is created on first use, else locked and
/// moved on by what it grants (GCRA: each request moves the theoretical arrival time on
/// by `window / quota`; the cell grants while that time stays within one window of now).
/// PostgreSQL only.
///
/// The statement also makes its transaction's commit asynchronous (`synchronous_commit`
/// off for this transaction only): the commit does not wait for the WAL flush, which cost
/// a lease 3.7 ms of its 4 (a disk sync) for no money. A database crash may forget the
/// last leases of its final fraction of a second: those accounts get that many requests
/// again, once. Every other transaction keeps its durable commit.
pub fn lease(
    conn: &mut WriteConn<'_>,
    account_id: AccountId,
    want: u32,
    quota: u32,
    window: Duration,
) -> QueryResult<Grant> {
    let quota = i64::from(quota.max(1));
    let want = i64::from(want).clamp(0, quota);
    let window_us = i64::try_from(window.as_micros()).unwrap_or(i64::MAX / 4);
    let per_us = (window_us / quota).max(1);
    // Requests the cell can grant now, from its current arrival time.
    let available =
        format!("LEAST($5, GREATEST(0, ($3 - (GREATEST(c.tat_us, {NOW_US}) - {NOW_US})) / $4))");
    let sql = format!(
        "INSERT INTO account_quota_cells AS c (account_id, tat_us, granted) \
         SELECT $1, {NOW_US} + $2 * $4, $2 \
         FROM (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush_wait \
         ON CONFLICT (account_id) DO UPDATE SET \
           granted = LEAST($2, {available}), \
           tat_us = GREATEST(c.tat_us, {NOW_US}) + LEAST($2, {available}) * $4 \
         RETURNING c.granted, c.tat_us, {NOW_US} AS now_us"
    );
    let conn: &mut super::DbConnection = conn;
    let row: Row = diesel::sql_query(sql)
        .bind::<BigInt, _>(account_id.get())
        .bind::<BigInt, _>(want)
        .bind::<BigInt, _>(window_us)
        .bind::<BigInt, _>(per_us)
        .bind::<BigInt, _>(quota)
        .get_result(conn)?;
    let used_us = (row.tat_us - row.now_us).max(0);
    let remaining = ((window_us - used_us) / per_us).clamp(0, quota);
    // One more request fits once the arrival time is within a window less one step.
    let wait_us = (used_us - (window_us - per_us)).max(0);
    Ok(Grant {
        granted: u32::try_from(row.granted.max(0)).unwrap_or(0),
        remaining: u32::try_from(remaining).unwrap_or(0),
        wait: Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)),
    })
}
