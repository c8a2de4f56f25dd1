//! Where each provider-backed order stands upstream, with leases so several worker
//! processes never send or poll the same order at once.
//!
//! The queue follows the discipline of [`super::lease`]: every claim takes the row's next
//! `lease_token`, and every write of that attempt is one statement conditional on it
//! ([`Fence`]).

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::backend::{coalesce_text, coalesce_timestamp};
use super::schema::{provider_attempts, provider_orders};
use super::{lease, now, DbConnection, WriteConn};
use crate::domain::ids::{OrderId, ProviderId};
use crate::domain::provider::ForwardingState;

#[derive(Debug, Clone, Queryable)]
pub struct ProviderOrder {
    pub order_id: OrderId,
    pub provider_id: ProviderId,
    pub provider_service_id: String,
    /// Decoded from its stored word; an unknown word fails the query, never defaults.
    #[diesel(deserialize_as = String)]
    pub state: ForwardingState,
    pub provider_order_id: Option<String>,
    pub idempotency_key: String,
    pub attempts: i64,
    pub failures: i64,
    pub next_at: NaiveDateTime,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub quarantined_status: Option<String>,
    pub last_synced_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Taken anew by every claim; see [`Fence`].
    pub lease_token: i64,
}

lease::fence! {
    /// One claim of one provider order; see [`lease`].
    Fence { order_id: OrderId } for ProviderOrder.order_id
}

/// Queues an order for sending; call in the transaction that creates the order.
pub fn enqueue(
    conn: &mut WriteConn<'_>,
    order_id: OrderId,
    provider_id: ProviderId,
    provider_service_id: &str,
    idempotency_key: &str,
) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    let at = now();
    diesel::insert_into(provider_orders::table)
        .values((
            provider_orders::order_id.eq(order_id),
            provider_orders::provider_id.eq(provider_id),
            provider_orders::provider_service_id.eq(provider_service_id),
            provider_orders::state.eq(ForwardingState::Queued.as_str()),
            provider_orders::idempotency_key.eq(idempotency_key),
            provider_orders::next_at.eq(at),
            provider_orders::created_at.eq(at),
            provider_orders::updated_at.eq(at),
        ))
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut DbConnection, order_id: OrderId) -> QueryResult<Option<ProviderOrder>> {
    provider_orders::table.find(order_id).first(conn).optional()
}

/// Takes a lease on up to `limit` rows in `states` (optionally of one provider) due by
/// `due_by` and returns them, each with the fencing token this claim gave it; see
/// [`lease`].
pub fn claim(
    conn: &mut WriteConn<'_>,
    owner: &str,
    states: &[ForwardingState],
    provider_id: Option<ProviderId>,
    limit: i64,
    due_by: NaiveDateTime,
    lease: Duration,
) -> QueryResult<Vec<ProviderOrder>> {
    let conn: &mut DbConnection = conn;
    let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    lease::claim!(
        conn, provider_orders, order_id,
        owner: owner, limit: limit, lease: lease,
        work: |_at| provider_orders::state
            .eq_any(&states)
            .and(provider_orders::next_at.le(due_by)),
        narrow: |due| match provider_id {
            Some(provider_id) => due.filter(provider_orders::provider_id.eq(provider_id)),
            None => due,
        },
        load: |leased| leased.load(conn),
    )
}

/// Records that a send is about to happen, before it happens, and renews the lease for
/// longer than the exchange can take ([`lease::begin_send!`]). False when the claim was
/// lost or the row is no longer queued (e.g. the order was canceled).
pub fn begin_send(conn: &mut WriteConn<'_>, fence: Fence, lease: Duration) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    lease::begin_send!(conn, provider_orders, fence, lease)
}

/// Takes a still-queued order out of the send queue (a reseller's cancel). False once a
/// send has begun. A worker holding the row loses its claim: none of its writes apply.
pub fn withdraw(conn: &mut WriteConn<'_>, order_id: OrderId) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let changed = diesel::update(
        provider_orders::table
            .find(order_id)
            .filter(provider_orders::state.eq(ForwardingState::Queued.as_str())),
    )
    .set((
        provider_orders::state.eq(ForwardingState::Done.as_str()),
        provider_orders::lease_token.eq(provider_orders::lease_token + 1),
        provider_orders::updated_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// An order that reached a final state leaves the status poll: its `sent` row becomes
/// `done`, whoever settled it (the provider's reply, an operator's outcome, an approved
/// dispute). The lease token is left as it is, so a worker polling the row meanwhile still
/// finishes its attempt, and that attempt reads the final order and writes `done` too.
/// False when the order has no row that is polled.
pub fn stop_polling(conn: &mut WriteConn<'_>, order_id: OrderId) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let changed = diesel::update(
        provider_orders::table
            .find(order_id)
            .filter(provider_orders::state.eq(ForwardingState::Sent.as_str())),
    )
    .set((
        provider_orders::state.eq(ForwardingState::Done.as_str()),
        provider_orders::updated_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// What an attempt leaves behind.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub state: ForwardingState,
    pub provider_order_id: Option<String>,
    pub next_at: Option<NaiveDateTime>,
    pub failed: bool,
    pub error: Option<String>,
    pub quarantined_status: Option<String>,
    pub synced: bool,
}

impl AttemptOutcome {
    /// An attempt that leaves the order in `state`, with nothing else to record.
    pub fn to(state: ForwardingState) -> AttemptOutcome {
        AttemptOutcome {
            state,
            provider_order_id: None,
            next_at: None,
            failed: false,
            error: None,
            quarantined_status: None,
            synced: false,
        }
    }
}

/// Ends a leased attempt in one statement conditional on its fence: new state, the
/// provider's id (if the attempt learned it), errors, the failure count, when to look
/// again; releases the lease. False, with nothing changed, when the claim was lost.
pub fn finish(
    conn: &mut WriteConn<'_>,
    fence: Fence,
    outcome: AttemptOutcome,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let at = now();
    // failures + 1 after a failure, 0 after a success, in the same statement.
    let (keep, add) = if outcome.failed { (1i64, 1i64) } else { (0, 0) };
    let changed = diesel::update(lease::fenced!(provider_orders, fence))
        .set((
            provider_orders::state.eq(outcome.state.as_str()),
            provider_orders::provider_order_id.eq(coalesce_text(
                outcome.provider_order_id,
                provider_orders::provider_order_id,
            )),
            provider_orders::next_at.eq(outcome.next_at.unwrap_or(at)),
            provider_orders::last_error.eq(&outcome.error),
            provider_orders::quarantined_status.eq(&outcome.quarantined_status),
            provider_orders::failures.eq(provider_orders::failures * keep + add),
            provider_orders::last_synced_at.eq(coalesce_timestamp(
                outcome.synced.then_some(at),
                provider_orders::last_synced_at,
            )),
            lease::released!(provider_orders),
            provider_orders::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

/// A clear acceptance whose attempt lost its claim (it outlived its lease and another
/// worker took the row, perhaps marking it `ambiguous`): the provider has the order under
/// `remote`, so a row that knows no provider id yet and is not finished becomes `sent` with
/// it and is polled. Any attempt still holding the row loses its claim. False when the row
/// already has an id or has ended (`failed`, `done`, `given_up`).
pub fn adopt_acceptance(
    conn: &mut WriteConn<'_>,
    order_id: OrderId,
    remote: &str,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let changed = diesel::update(
        provider_orders::table
            .find(order_id)
            .filter(provider_orders::provider_order_id.is_null())
            .filter(provider_orders::state.eq_any([
                ForwardingState::Queued.as_str(),
                ForwardingState::Sending.as_str(),
                ForwardingState::Ambiguous.as_str(),
            ])),
    )
    .set((
        provider_orders::state.eq(ForwardingState::Sent.as_str()),
        provider_orders::provider_order_id.eq(remote),
        provider_orders::next_at.eq(at),
        provider_orders::failures.eq(0),
        provider_orders::last_error.eq(None::<String>),
        lease::revoked!(provider_orders),
        provider_orders::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// An acceptance that came too late to adopt (the row ended meanwhile, e.g. `failed` and
/// refunded): noted on the row for the operator, who can attach the id with reconcile.
/// Only where the row knows no provider id; its state is left alone.
pub fn note_late_acceptance(
    conn: &mut WriteConn<'_>,
    order_id: OrderId,
    remote: &str,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let changed = diesel::update(
        provider_orders::table
            .find(order_id)
            .filter(provider_orders::provider_order_id.is_null()),
    )
    .set((
        provider_orders::last_error.eq(format!(
            "the provider accepted this order as {remote} after the attempt lost its lease; \
             reconcile with that id if it still stands"
        )),
        provider_orders::updated_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Keeps one exchange with a provider on record; the reply is truncated to 2 KiB.
pub fn record_attempt(
    conn: &mut WriteConn<'_>,
    provider_id: ProviderId,
    order_id: Option<OrderId>,
    action: &str,
    outcome: &str,
    http_status: Option<u16>,
    body: &str,
) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    let mut end = body.len().min(2048);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    diesel::insert_into(provider_attempts::table)
        .values((
            provider_attempts::provider_id.eq(provider_id),
            provider_attempts::order_id.eq(order_id),
            provider_attempts::action.eq(action),
            provider_attempts::outcome.eq(outcome),
            provider_attempts::http_status.eq(http_status.map(i32::from)),
            provider_attempts::body.eq(&body[..end]),
            provider_attempts::created_at.eq(now()),
        ))
        .execute(conn)
        .map(drop)
}

/// An operator's reconciliation of an order whose send was ambiguous: either the
/// provider has it (attach its id and start polling) or it does not (queue a resend).
pub fn reconcile(
    conn: &mut WriteConn<'_>,
    order_id: OrderId,
    provider_order_id: Option<&str>,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let target = provider_orders::table
        .find(order_id)
        .filter(provider_orders::state.eq_any([
            ForwardingState::Ambiguous.as_str(),
            ForwardingState::Failed.as_str(),
        ]));
    let changed = match provider_order_id {
        Some(remote) => diesel::update(target)
            .set((
                provider_orders::state.eq(ForwardingState::Sent.as_str()),
                provider_orders::provider_order_id.eq(remote),
                provider_orders::next_at.eq(at),
                provider_orders::failures.eq(0),
                provider_orders::lease_token.eq(provider_orders::lease_token + 1),
                provider_orders::updated_at.eq(at),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                provider_orders::state.eq(ForwardingState::Queued.as_str()),
                provider_orders::next_at.eq(at),
                provider_orders::failures.eq(0),
                provider_orders::lease_token.eq(provider_orders::lease_token + 1),
                provider_orders::updated_at.eq(at),
            ))
            .execute(conn)?,
    };
    Ok(changed == 1)
}

/// Gives back every lease a worker holds, after a pass that failed midway, so its orders
/// are picked up again at once instead of when the leases run out.
pub fn release_all(conn: &mut WriteConn<'_>, owner: &str) -> QueryResult<usize> {
    let conn: &mut DbConnection = conn;
    lease::release_all!(conn, provider_orders, owner)
}

/// Clears the raw reply bodies of up to `limit` attempts made before `cutoff`, oldest
/// first; the attempt itself (action, outcome, status, time) stays as the audit trail.
pub fn clear_attempt_bodies(
    conn: &mut WriteConn<'_>,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    let conn: &mut DbConnection = conn;
    let ids: Vec<i64> = provider_attempts::table
        .filter(provider_attempts::created_at.lt(cutoff))
        .filter(provider_attempts::body.is_not_null())
        .order(provider_attempts::created_at.asc())
        .select(provider_attempts::id)
        .limit(limit)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(provider_attempts::table.filter(provider_attempts::id.eq_any(&ids)))
        .set(provider_attempts::body.eq(None::<String>))
        .execute(conn)
}

/// Makes a sent order due for its next status poll now (the provider accepted a cancel:
/// its refund comes from that status). Leaves a row under lease alone.
pub fn poll_soon(conn: &mut WriteConn<'_>, order_id: OrderId) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let changed = diesel::update(
        provider_orders::table
            .find(order_id)
            .filter(provider_orders::state.eq(ForwardingState::Sent.as_str())),
    )
    .set(provider_orders::next_at.eq(now()))
    .execute(conn)?;
    Ok(changed == 1)
}

/// One exchange with a provider, as kept in `provider_attempts`.
#[derive(Debug, Clone, Queryable)]
pub struct Attempt {
    pub id: i64,
    pub provider_id: ProviderId,
    pub order_id: Option<OrderId>,
    pub action: String,
    pub outcome: String,
    pub http_status: Option<i32>,
    /// The raw reply, truncated; cleared after the retention period.
    pub body: Option<String>,
    pub created_at: NaiveDateTime,
}

/// An order's latest exchanges with its provider, newest first.
pub fn attempts_for(
    conn: &mut DbConnection,
    order_id: OrderId,
    limit: i64,
) -> QueryResult<Vec<Attempt>> {
    provider_attempts::table
        .filter(provider_attempts::order_id.eq(order_id))
        .order(provider_attempts::id.desc())
        .limit(limit)
        .load(conn)
}

/// Provider-backed orders in one forwarding state, oldest first, after `after_order_id`.
pub fn in_state(
    conn: &mut DbConnection,
    state: ForwardingState,
    provider_id: Option<ProviderId>,
    after_order_id: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<ProviderOrder>> {
    let mut query = provider_orders::table
        .filter(provider_orders::state.eq(state.as_str()))
        .filter(provider_orders::order_id.gt(after_order_id.unwrap_or(0)))
        .order(provider_orders::order_id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(provider_id) = provider_id {
        query = query.filter(provider_orders::provider_id.eq(provider_id));
    }
    query.load(conn)
}
