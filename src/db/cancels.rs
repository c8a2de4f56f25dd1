//! Cancel requests sent upstream, with leases so several worker processes never send the
//! same one at once: every claim takes the row's next `lease_token` and every write of
//! that attempt is conditional on it ([`CancelFence`]), as for `provider_orders`.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::schema::cancel_requests;
use super::{now, DbConnection};
use crate::domain::cancel::{CancelSource, CancelStatus};
use crate::domain::provider::ForwardingState;

#[derive(Debug, Clone, Queryable)]
pub struct CancelRequest {
    pub id: i64,
    pub order_id: i64,
    pub account_id: i64,
    pub provider_id: i64,
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

impl CancelRequest {
    pub fn fence<'a>(&self, owner: &'a str) -> CancelFence<'a> {
        CancelFence {
            request_id: self.id,
            owner,
            token: self.lease_token,
        }
    }
}

/// One claim of one cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelFence<'a> {
    pub request_id: i64,
    pub owner: &'a str,
    pub token: i64,
}

/// What a new cancel request is for.
pub struct NewCancel<'a> {
    pub order_id: i64,
    pub account_id: i64,
    pub provider_id: i64,
    pub provider_order_id: &'a str,
    pub source: CancelSource,
}

/// Queues a cancel for its provider; call in the transaction that decided it.
pub fn insert(conn: &mut DbConnection, new: &NewCancel) -> QueryResult<CancelRequest> {
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
    order_id: i64,
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
    order_id: i64,
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
/// with the fencing token this claim gave it; as `provider_orders::claim`.
pub fn claim(
    conn: &mut DbConnection,
    owner: &str,
    provider_id: i64,
    limit: i64,
    due_by: NaiveDateTime,
    lease: Duration,
) -> QueryResult<Vec<CancelRequest>> {
    let states = [
        ForwardingState::Queued.as_str(),
        ForwardingState::Sending.as_str(),
    ];
    for _ in 0..4 {
        let at = now();
        let free = cancel_requests::lease_until
            .is_null()
            .or(cancel_requests::lease_until.lt(at));
        let ids: Vec<i64> = cancel_requests::table
            .filter(cancel_requests::state.eq_any(states))
            .filter(cancel_requests::provider_id.eq(provider_id))
            .filter(cancel_requests::next_at.le(due_by))
            .filter(free)
            .select(cancel_requests::id)
            .order(cancel_requests::next_at)
            .limit(limit)
            .load(conn)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let until = at + lease;
        let taken = diesel::update(
            cancel_requests::table
                .filter(cancel_requests::id.eq_any(&ids))
                .filter(cancel_requests::state.eq_any(states))
                .filter(cancel_requests::next_at.le(due_by))
                .filter(
                    cancel_requests::lease_until
                        .is_null()
                        .or(cancel_requests::lease_until.lt(at)),
                ),
        )
        .set((
            cancel_requests::lease_owner.eq(owner),
            cancel_requests::lease_until.eq(until),
            cancel_requests::lease_token.eq(cancel_requests::lease_token + 1),
        ))
        .execute(conn)?;
        if taken == 0 {
            continue;
        }
        return cancel_requests::table
            .filter(cancel_requests::id.eq_any(&ids))
            .filter(cancel_requests::lease_owner.eq(owner))
            .filter(cancel_requests::lease_until.eq(until))
            .order(cancel_requests::next_at)
            .load(conn);
    }
    Ok(Vec::new())
}

macro_rules! fenced {
    ($fence:expr) => {
        cancel_requests::table
            .find($fence.request_id)
            .filter(cancel_requests::lease_owner.eq($fence.owner))
            .filter(cancel_requests::lease_token.eq($fence.token))
    };
}

/// Records that a send is about to happen and renews the lease for longer than the
/// exchange can take. False when the claim was lost.
pub fn begin_send(
    conn: &mut DbConnection,
    fence: CancelFence,
    lease: Duration,
) -> QueryResult<bool> {
    let at = now();
    let changed = diesel::update(fenced!(fence))
        .set((
            cancel_requests::state.eq(ForwardingState::Sending.as_str()),
            cancel_requests::attempts.eq(cancel_requests::attempts + 1),
            cancel_requests::lease_until.eq(at + lease),
            cancel_requests::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(changed == 1)
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
    conn: &mut DbConnection,
    fence: CancelFence,
    outcome: CancelOutcome,
) -> QueryResult<bool> {
    let at = now();
    let (keep, add) = if outcome.failed { (1i64, 1i64) } else { (0, 0) };
    let changed = diesel::update(fenced!(fence))
        .set((
            cancel_requests::state.eq(outcome.state.as_str()),
            cancel_requests::status.eq(outcome.status.as_str()),
            cancel_requests::next_at.eq(outcome.next_at.unwrap_or(at)),
            cancel_requests::last_error.eq(&outcome.error),
            cancel_requests::reason.eq(&outcome.reason),
            cancel_requests::failures.eq(cancel_requests::failures * keep + add),
            cancel_requests::lease_owner.eq(None::<String>),
            cancel_requests::lease_until.eq(None::<NaiveDateTime>),
            cancel_requests::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Gives back every cancel lease a worker holds.
pub fn release_all(conn: &mut DbConnection, owner: &str) -> QueryResult<usize> {
    diesel::update(cancel_requests::table.filter(cancel_requests::lease_owner.eq(owner)))
        .set((
            cancel_requests::lease_owner.eq(None::<String>),
            cancel_requests::lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
}
