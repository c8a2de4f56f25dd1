//! Cancel requests sent upstream, with leases so several worker processes never send the
//! same one at once, the discipline of [`super::lease`]: every claim takes the row's next
//! `lease_token` and every write of that attempt is conditional on it ([`CancelFence`]).

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::schema::cancel_requests;
use super::{lease, now, DbConnection, WriteConn};
use crate::domain::cancel::{CancelSource, CancelStatus};
use crate::domain::ids::{AccountId, CancelRequestId, OrderId, ProviderId};
use crate::domain::provider::ForwardingState;

#[derive(Debug, Clone, Queryable)]
pub struct CancelRequest {
    pub id: CancelRequestId,
    pub order_id: OrderId,
    pub account_id: AccountId,
    pub provider_id: ProviderId,
    pub provider_order_id: String,
    #[diesel(deserialize_as = String)]
    pub source: CancelSource,
    #[diesel(deserialize_as = String)]
    pub status: CancelStatus,
    /// `queued` to send, `sending`, `done` once answered, `failed` after every retry.
    #[diesel(deserialize_as = String)]
    pub state: ForwardingState,
    pub attempts: i64,
    pub failures: i64,
    pub next_at: NaiveDateTime,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub lease_token: i64,
    pub last_error: Option<String>,
    /// Why the provider refused, in its words.
    pub reason: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

lease::fence! {
    /// One claim of one cancel request; see [`lease`].
    CancelFence { request_id: CancelRequestId } for CancelRequest.id
}

/// What a new cancel request is for.
pub struct NewCancel<'a> {
    pub order_id: OrderId,
    pub account_id: AccountId,
    pub provider_id: ProviderId,
    pub provider_order_id: &'a str,
    pub source: CancelSource,
}

/// Queues a cancel for its provider; call in the transaction that decided it.
pub fn insert(conn: &mut WriteConn<'_>, new: &NewCancel) -> QueryResult<CancelRequest> {
    let conn: &mut DbConnection = conn;
    let at = now();
    diesel::insert_into(cancel_requests::table)
        .values((
            cancel_requests::order_id.eq(new.order_id),
            cancel_requests::account_id.eq(new.account_id),
            cancel_requests::provider_id.eq(new.provider_id),
            cancel_requests::provider_order_id.eq(new.provider_order_id),
            cancel_requests::source.eq(new.source.as_str()),
            cancel_requests::status.eq(CancelStatus::Pending.as_str()),
            cancel_requests::state.eq(ForwardingState::Queued.as_str()),
            cancel_requests::next_at.eq(at),
            cancel_requests::created_at.eq(at),
            cancel_requests::updated_at.eq(at),
        ))
        .returning(cancel_requests::all_columns)
        .get_result(conn)
}

/// The order's cancel request still waiting for the provider's answer, if any.
pub fn pending_for_order(
    conn: &mut DbConnection,
    order_id: OrderId,
) -> QueryResult<Option<CancelRequest>> {
    cancel_requests::table
        .filter(cancel_requests::order_id.eq(order_id))
        .filter(cancel_requests::status.eq(CancelStatus::Pending.as_str()))
        .order(cancel_requests::id.desc())
        .first(conn)
        .optional()
}

/// A page of an order's cancel requests in id order, strictly after `starting_after`.
pub fn page_for_order(
    conn: &mut DbConnection,
    order_id: OrderId,
    starting_after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<CancelRequest>> {
    cancel_requests::table
        .filter(cancel_requests::order_id.eq(order_id))
        .filter(cancel_requests::id.gt(starting_after.unwrap_or(0)))
        .order(cancel_requests::id.asc())
        .limit(limit)
        .load(conn)
}

/// Takes a lease on up to `limit` queued requests of one provider due by `due_by`, each
/// with the fencing token this claim gave it; see [`lease`].
pub fn claim(
    conn: &mut WriteConn<'_>,
    owner: &str,
    provider_id: ProviderId,
    limit: i64,
    due_by: NaiveDateTime,
    lease: Duration,
) -> QueryResult<Vec<CancelRequest>> {
    let conn: &mut DbConnection = conn;
    let states = [
        ForwardingState::Queued.as_str(),
        ForwardingState::Sending.as_str(),
    ];
    lease::claim!(
        conn, cancel_requests, id,
        owner: owner, limit: limit, lease: lease,
        work: |_at| cancel_requests::state
            .eq_any(states)
            .and(cancel_requests::next_at.le(due_by)),
        narrow: |due| due.filter(cancel_requests::provider_id.eq(provider_id)),
        load: |leased| leased.load(conn),
    )
}

/// Records that a send is about to happen and renews the lease for longer than the
/// exchange can take ([`lease::begin_send!`]). False when the claim was lost.
pub fn begin_send(
    conn: &mut WriteConn<'_>,
    fence: CancelFence,
    lease: Duration,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    lease::begin_send!(conn, cancel_requests, fence, lease)
}

/// What an attempt leaves on a request.
#[derive(Debug, Clone)]
pub struct CancelOutcome {
    pub state: ForwardingState,
    pub status: CancelStatus,
    pub next_at: Option<NaiveDateTime>,
    pub failed: bool,
    pub error: Option<String>,
    pub reason: Option<String>,
}

impl CancelOutcome {
    pub fn to(state: ForwardingState, status: CancelStatus) -> CancelOutcome {
        CancelOutcome {
            state,
            status,
            next_at: None,
            failed: false,
            error: None,
            reason: None,
        }
    }
}

/// Ends a leased attempt in one statement conditional on its fence, releasing the lease.
/// False, with nothing changed, when the claim was lost.
pub fn finish(
    conn: &mut WriteConn<'_>,
    fence: CancelFence,
    outcome: CancelOutcome,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let (keep, add) = if outcome.failed { (1i64, 1i64) } else { (0, 0) };
    let changed = diesel::update(lease::fenced!(cancel_requests, fence))
        .set((
            cancel_requests::state.eq(outcome.state.as_str()),
            cancel_requests::status.eq(outcome.status.as_str()),
            cancel_requests::next_at.eq(outcome.next_at.unwrap_or(at)),
            cancel_requests::last_error.eq(&outcome.error),
            cancel_requests::reason.eq(&outcome.reason),
            cancel_requests::failures.eq(cancel_requests::failures * keep + add),
            lease::released!(cancel_requests),
            cancel_requests::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Gives back every cancel lease a worker holds.
pub fn release_all(conn: &mut WriteConn<'_>, owner: &str) -> QueryResult<usize> {
    let conn: &mut DbConnection = conn;
    lease::release_all!(conn, cancel_requests, owner)
}
