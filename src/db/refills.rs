//! Refill requests on delivered orders, and where each stands upstream.
//!
//! A refill of a provider-backed order carries a forwarding `state` and is worked by the
//! provider worker under a lease per refill, the discipline of [`super::lease`]: every
//! claim takes the row's next `lease_token`, and every write of that attempt is one
//! statement conditional on it ([`RefillFence`]). A refill with no `state` is
//! decided by an operator.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::backend::{coalesce_text, coalesce_timestamp};
use super::schema::refills;
use super::{lease, now, DbConnection, WriteConn};
use crate::domain::ids::{AccountId, OrderId, ProviderId, RefillId};
use crate::domain::provider::ForwardingState;
use crate::domain::refill::RefillStatus;

type RefillRow = (
    (RefillId, OrderId, AccountId, String, NaiveDateTime),
    (
        Option<ProviderId>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    (i64, i64, Option<NaiveDateTime>),
    (Option<String>, Option<NaiveDateTime>, i64),
    (Option<String>, Option<String>, Option<NaiveDateTime>),
    (Option<String>, Option<AccountId>, Option<NaiveDateTime>),
);

/// Every column, grouped as [`RefillRow`].
macro_rules! columns {
    () => {
        (
            (
                refills::id,
                refills::order_id,
                refills::account_id,
                refills::status,
                refills::created_at,
            ),
            (
                refills::provider_id,
                refills::provider_order_id,
                refills::provider_refill_id,
                refills::state,
            ),
            (refills::attempts, refills::failures, refills::next_at),
            (
                refills::lease_owner,
                refills::lease_until,
                refills::lease_token,
            ),
            (
                refills::last_error,
                refills::quarantined_status,
                refills::last_synced_at,
            ),
            (refills::note, refills::decided_by, refills::updated_at),
        )
    };
}

/// One refill with where it stands upstream.
#[derive(Debug, Clone)]
pub struct Refill {
    pub id: RefillId,
    pub order_id: OrderId,
    pub account_id: AccountId,
    pub status: RefillStatus,
    pub created_at: NaiveDateTime,
    /// The provider it goes to; `None` when an operator decides it.
    pub provider_id: Option<ProviderId>,
    /// The provider's id of the order refilled.
    pub provider_order_id: Option<String>,
    /// The provider's id of the refill, once it took it.
    pub provider_refill_id: Option<String>,
    /// Where it stands upstream; `None` when an operator decides it.
    pub state: Option<ForwardingState>,
    pub attempts: i64,
    pub failures: i64,
    pub next_at: Option<NaiveDateTime>,
    pub lease_token: i64,
    pub last_error: Option<String>,
    /// A status word the provider sent that we do not know, kept verbatim.
    pub quarantined_status: Option<String>,
    pub last_synced_at: Option<NaiveDateTime>,
    /// Why it was rejected or ended in error (the provider's or the operator's words).
    pub note: Option<String>,
    pub decided_by: Option<AccountId>,
    pub updated_at: Option<NaiveDateTime>,
}

lease::fence! {
    /// One claim of one refill; see [`lease`].
    RefillFence { refill_id: RefillId } for Refill.id
}

/// A stored word that is not one of ours fails the query, never defaults.
fn decode(row: RefillRow) -> QueryResult<Refill> {
    let (
        (id, order_id, account_id, status, created_at),
        (provider_id, provider_order_id, provider_refill_id, state),
        (attempts, failures, next_at),
        (_, _, lease_token),
        (last_error, quarantined_status, last_synced_at),
        (note, decided_by, updated_at),
    ) = row;
    let bad = |e: crate::domain::UnknownName| diesel::result::Error::DeserializationError(e.into());
    Ok(Refill {
        id,
        order_id,
        account_id,
        status: RefillStatus::try_from(status).map_err(bad)?,
        created_at,
        provider_id,
        provider_order_id,
        provider_refill_id,
        state: state
            .map(ForwardingState::try_from)
            .transpose()
            .map_err(bad)?,
        attempts,
        failures,
        next_at,
        lease_token,
        last_error,
        quarantined_status,
        last_synced_at,
        note,
        decided_by,
        updated_at,
    })
}

fn decode_all(rows: Vec<RefillRow>) -> QueryResult<Vec<Refill>> {
    rows.into_iter().map(decode).collect()
}

/// Where a new refill goes: to a provider under its id of the order, or to an operator.
pub struct Upstream<'a> {
    pub provider_id: ProviderId,
    pub provider_order_id: &'a str,
}

/// Records a pending refill of an order, queued for its provider when it has one; call
/// inside the transaction that checked its eligibility.
pub fn insert(
    conn: &mut WriteConn<'_>,
    order_id: OrderId,
    account_id: AccountId,
    upstream: Option<Upstream>,
) -> QueryResult<Refill> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let row = diesel::insert_into(refills::table)
        .values((
            refills::order_id.eq(order_id),
            refills::account_id.eq(account_id),
            refills::status.eq(RefillStatus::Pending.as_str()),
            refills::created_at.eq(at),
            refills::updated_at.eq(at),
            refills::provider_id.eq(upstream.as_ref().map(|u| u.provider_id)),
            refills::provider_order_id.eq(upstream.as_ref().map(|u| u.provider_order_id)),
            refills::state.eq(upstream.as_ref().map(|_| ForwardingState::Queued.as_str())),
            refills::next_at.eq(upstream.as_ref().map(|_| at)),
        ))
        .returning(columns!())
        .get_result(conn)?;
    decode(row)
}

pub fn find(conn: &mut DbConnection, id: RefillId) -> QueryResult<Option<Refill>> {
    refills::table
        .find(id)
        .select(columns!())
        .first(conn)
        .optional()?
        .map(decode)
        .transpose()
}

/// One of the account's refills.
pub fn find_owned(
    conn: &mut DbConnection,
    id: RefillId,
    account_id: AccountId,
) -> QueryResult<Option<Refill>> {
    Ok(find(conn, id)?.filter(|r| r.account_id == account_id))
}

/// When the latest refill of an order was asked for.
pub fn latest_for_order(
    conn: &mut DbConnection,
    order_id: OrderId,
) -> QueryResult<Option<NaiveDateTime>> {
    refills::table
        .filter(refills::order_id.eq(order_id))
        .select(diesel::dsl::max(refills::created_at))
        .first(conn)
}

/// A page of an order's refills in id order, strictly after `starting_after`.
pub fn page_for_order(
    conn: &mut DbConnection,
    order_id: OrderId,
    starting_after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Refill>> {
    let rows = refills::table
        .filter(refills::order_id.eq(order_id))
        .filter(refills::id.gt(starting_after.unwrap_or(0)))
        .order(refills::id.asc())
        .limit(limit)
        .select(columns!())
        .load(conn)?;
    decode_all(rows)
}

/// An operator's decision on a refill no provider works: only while it is open.
/// False when it is worked upstream, already final, or missing.
pub fn decide(
    conn: &mut WriteConn<'_>,
    id: RefillId,
    status: RefillStatus,
    admin_id: AccountId,
    note: Option<&str>,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let changed = diesel::update(
        refills::table
            .find(id)
            .filter(refills::state.is_null())
            .filter(refills::status.eq_any([
                RefillStatus::Pending.as_str(),
                RefillStatus::InProgress.as_str(),
            ])),
    )
    .set((
        refills::status.eq(status.as_str()),
        refills::decided_by.eq(admin_id),
        refills::note.eq(note),
        refills::updated_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Takes a lease on up to `limit` refills in `states` (optionally of one provider) due by
/// `due_by`, each with the fencing token this claim gave it; see [`lease`].
pub fn claim(
    conn: &mut WriteConn<'_>,
    owner: &str,
    states: &[ForwardingState],
    provider_id: Option<ProviderId>,
    limit: i64,
    due_by: NaiveDateTime,
    lease: Duration,
) -> QueryResult<Vec<Refill>> {
    let conn: &mut DbConnection = conn;
    let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    lease::claim!(
        conn, refills, id,
        owner: owner, limit: limit, lease: lease,
        work: |_at| refills::state.eq_any(&states).and(refills::next_at.le(due_by)),
        narrow: |due| match provider_id {
            Some(provider_id) => due.filter(refills::provider_id.eq(provider_id)),
            None => due,
        },
        load: |leased| decode_all(leased.select(columns!()).load(conn)?),
    )
}

/// Records that a send is about to happen and renews the lease for longer than the
/// exchange can take ([`lease::begin_send!`]). False when the claim was lost.
pub fn begin_send(
    conn: &mut WriteConn<'_>,
    fence: RefillFence,
    lease: Duration,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    lease::begin_send!(conn, refills, fence, lease)
}

/// What an attempt on a refill leaves behind.
#[derive(Debug, Clone)]
pub struct RefillOutcome {
    pub state: ForwardingState,
    /// The status it leaves (the claimed one when the attempt learned nothing new).
    pub status: RefillStatus,
    pub provider_refill_id: Option<String>,
    pub next_at: Option<NaiveDateTime>,
    pub failed: bool,
    pub error: Option<String>,
    /// Why it ended rejected or in error, for the reseller.
    pub note: Option<String>,
    pub quarantined_status: Option<String>,
    pub synced: bool,
}

impl RefillOutcome {
    /// An attempt that leaves the refill in `state` and `status`, with nothing else.
    pub fn to(state: ForwardingState, status: RefillStatus) -> RefillOutcome {
        RefillOutcome {
            state,
            status,
            provider_refill_id: None,
            next_at: None,
            failed: false,
            error: None,
            note: None,
            quarantined_status: None,
            synced: false,
        }
    }
}

/// Ends a leased attempt in one statement conditional on its fence, releasing the lease.
/// False, with nothing changed, when the claim was lost.
pub fn finish(
    conn: &mut WriteConn<'_>,
    fence: RefillFence,
    outcome: RefillOutcome,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let (keep, add) = if outcome.failed { (1i64, 1i64) } else { (0, 0) };
    let changed = diesel::update(lease::fenced!(refills, fence))
        .set((
            refills::state.eq(outcome.state.as_str()),
            refills::status.eq(outcome.status.as_str()),
            refills::provider_refill_id.eq(coalesce_text(
                outcome.provider_refill_id,
                refills::provider_refill_id,
            )),
            refills::note.eq(coalesce_text(outcome.note, refills::note)),
            refills::next_at.eq(outcome.next_at.unwrap_or(at)),
            refills::last_error.eq(&outcome.error),
            refills::quarantined_status.eq(&outcome.quarantined_status),
            refills::failures.eq(refills::failures * keep + add),
            refills::last_synced_at.eq(coalesce_timestamp(
                outcome.synced.then_some(at),
                refills::last_synced_at,
            )),
            lease::released!(refills),
            refills::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Gives back every refill lease a worker holds.
pub fn release_all(conn: &mut WriteConn<'_>, owner: &str) -> QueryResult<usize> {
    let conn: &mut DbConnection = conn;
    lease::release_all!(conn, refills, owner)
}

/// A clear acceptance whose attempt lost its claim: the provider has the refill under
/// `remote`, so a refill that knows no provider id yet and is still being sent becomes
/// `sent` with it and is followed. Any attempt still holding it loses its claim.
pub fn adopt_acceptance(
    conn: &mut WriteConn<'_>,
    refill_id: RefillId,
    remote: &str,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let changed = diesel::update(
        refills::table
            .find(refill_id)
            .filter(refills::provider_refill_id.is_null())
            .filter(refills::state.eq_any([
                ForwardingState::Queued.as_str(),
                ForwardingState::Sending.as_str(),
            ])),
    )
    .set((
        refills::state.eq(ForwardingState::Sent.as_str()),
        refills::provider_refill_id.eq(remote),
        refills::next_at.eq(at),
        refills::failures.eq(0),
        refills::last_error.eq(None::<String>),
        lease::revoked!(refills),
        refills::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}
