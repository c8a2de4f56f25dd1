//! Refund records: inserts, decisions, locks and lists. `application::refunds::settle`
//! composes them under the one refund rule.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::backend::lock_row;
use super::columns;
use super::schema::refunds;
use super::{now, orders, DbConnection, WriteConn};
use crate::domain::ids::{AccountId, OrderId, RefundId, TopUpId};
use crate::domain::money::Money;
use crate::domain::policy::Decision;
use crate::domain::refund::{PolicyNote, Refund, RefundReason, RefundSource, RefundStatus};

/// Named columns: each field binds the column of its name (`super::columns`).
#[derive(Queryable, Selectable)]
#[diesel(table_name = refunds, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct RefundRow {
    id: RefundId,
    account_id: AccountId,
    order_id: Option<OrderId>,
    top_up_id: Option<TopUpId>,
    amount_micros: Money,
    #[diesel(deserialize_as = String)]
    reason: RefundReason,
    #[diesel(deserialize_as = String)]
    status: RefundStatus,
    #[diesel(deserialize_as = String)]
    source: RefundSource,
    note: Option<String>,
    decision_reason: Option<String>,
    decided_by: Option<AccountId>,
    decided_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    policy_outcome: Option<String>,
    policy_rule: Option<String>,
    policy_detail: Option<String>,
}

impl From<RefundRow> for Refund {
    fn from(row: RefundRow) -> Refund {
        Refund {
            id: row.id,
            account_id: row.account_id,
            order_id: row.order_id,
            top_up_id: row.top_up_id,
            amount: row.amount_micros,
            reason: row.reason,
            status: row.status,
            source: row.source,
            note: row.note,
            decision_reason: row.decision_reason,
            decided_by: row.decided_by,
            decided_at: row.decided_at,
            created_at: row.created_at,
            policy: match (row.policy_outcome, row.policy_rule) {
                (Some(outcome), Some(rule)) => Some(PolicyNote {
                    outcome,
                    rule,
                    detail: row
                        .policy_detail
                        .and_then(|d| serde_json::from_str(&d).ok())
                        .unwrap_or_default(),
                }),
                _ => None,
            },
        }
    }
}

/// Records the refund-abuse policy's decision on a refund request.
pub fn record_policy(
    conn: &mut WriteConn<'_>,
    id: RefundId,
    decision: &Decision,
) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    diesel::update(refunds::table.find(id))
        .set((
            refunds::policy_outcome.eq(decision.outcome.as_str()),
            refunds::policy_rule.eq(decision.rule),
            refunds::policy_detail.eq(decision.detail.to_string()),
        ))
        .execute(conn)
        .map(drop)
}

/// A refund about to be recorded.
#[derive(Debug, Clone)]
pub struct NewRefund {
    pub account_id: AccountId,
    pub order_id: Option<OrderId>,
    pub top_up_id: Option<TopUpId>,
    pub amount: Money,
    pub reason: RefundReason,
    pub status: RefundStatus,
    pub source: RefundSource,
    pub note: Option<String>,
    /// Who decided, for refunds decided as they are made.
    pub decided_by: Option<AccountId>,
}

pub fn insert(conn: &mut WriteConn<'_>, new: &NewRefund) -> QueryResult<Refund> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let decided_at = (new.status != RefundStatus::PendingReview).then_some(at);
    diesel::insert_into(refunds::table)
        .values((
            refunds::account_id.eq(new.account_id),
            refunds::order_id.eq(new.order_id),
            refunds::top_up_id.eq(new.top_up_id),
            refunds::amount_micros.eq(new.amount.micros()),
            refunds::reason.eq(new.reason.as_str()),
            refunds::status.eq(new.status.as_str()),
            refunds::source.eq(new.source.as_str()),
            refunds::note.eq(&new.note),
            refunds::decided_by.eq(new.decided_by),
            refunds::decided_at.eq(decided_at),
            refunds::created_at.eq(at),
            refunds::updated_at.eq(at),
        ))
        .returning(columns::<RefundRow>())
        .get_result::<RefundRow>(conn)
        .map(Refund::from)
}

/// Locks a refund for a decision. Its order (or top-up) is locked first: every writer
/// takes the parent row before the refund row, so decisions, outcomes and gateway
/// answers racing on one order can never deadlock.
pub fn lock_with_parent(conn: &mut DbConnection, id: RefundId) -> QueryResult<Option<Refund>> {
    let Some(refund) = find(conn, id, None)? else {
        return Ok(None);
    };
    if let Some(order_id) = refund.order_id {
        orders::lock(conn, order_id, None)?;
    }
    if let Some(top_up_id) = refund.top_up_id {
        super::top_ups::lock(conn, top_up_id)?;
    }
    lock(conn, id)
}

/// Reads a refund and locks its row until the transaction ends.
fn lock(conn: &mut DbConnection, id: RefundId) -> QueryResult<Option<Refund>> {
    lock_row(
        conn,
        refunds::table.find(id).select(columns::<RefundRow>()),
        QueryDsl::for_update,
    )
    .map(|row: Option<RefundRow>| row.map(Refund::from))
}

pub fn find(
    conn: &mut DbConnection,
    id: RefundId,
    owner: Option<AccountId>,
) -> QueryResult<Option<Refund>> {
    let mut query = refunds::table.filter(refunds::id.eq(id)).into_boxed();
    if let Some(owner) = owner {
        query = query.filter(refunds::account_id.eq(owner));
    }
    query
        .select(columns::<RefundRow>())
        .first::<RefundRow>(conn)
        .optional()
        .map(|row| row.map(Refund::from))
}

/// A decision on a refund: its new status, amount and who decided why.
pub fn record_decision(
    conn: &mut WriteConn<'_>,
    id: RefundId,
    status: RefundStatus,
    amount: Money,
    decided_by: Option<AccountId>,
    decision_reason: Option<&str>,
) -> QueryResult<Refund> {
    let conn: &mut DbConnection = conn;
    let at = now();
    diesel::update(refunds::table.find(id))
        .set((
            refunds::status.eq(status.as_str()),
            refunds::amount_micros.eq(amount.micros()),
            refunds::decided_by.eq(decided_by),
            refunds::decision_reason.eq(decision_reason),
            refunds::decided_at.eq(at),
            refunds::updated_at.eq(at),
        ))
        .returning(columns::<RefundRow>())
        .get_result::<RefundRow>(conn)
        .map(Refund::from)
}

/// The order's dispute awaiting review, if any.
pub fn pending_dispute(conn: &mut DbConnection, order_id: OrderId) -> QueryResult<Option<Refund>> {
    refunds::table
        .filter(refunds::order_id.eq(order_id))
        .filter(refunds::status.eq(RefundStatus::PendingReview.as_str()))
        .select(columns::<RefundRow>())
        .first::<RefundRow>(conn)
        .optional()
        .map(|row| row.map(Refund::from))
}

/// Filters of refund lists; every one optional.
#[derive(Debug, Clone, Default)]
pub struct RefundFilter {
    pub account_id: Option<AccountId>,
    pub order_id: Option<OrderId>,
    pub status: Option<RefundStatus>,
    pub reason: Option<RefundReason>,
    pub created_from: Option<NaiveDateTime>,
    pub created_to: Option<NaiveDateTime>,
}

/// One page of refunds, newest first, strictly older than `starting_after`.
pub fn page(
    conn: &mut DbConnection,
    filter: &RefundFilter,
    starting_after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Refund>> {
    let mut query = refunds::table
        .order(refunds::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(cursor) = starting_after {
        query = query.filter(refunds::id.lt(cursor));
    }
    if let Some(account_id) = filter.account_id {
        query = query.filter(refunds::account_id.eq(account_id));
    }
    if let Some(order_id) = filter.order_id {
        query = query.filter(refunds::order_id.eq(order_id));
    }
    if let Some(status) = filter.status {
        query = query.filter(refunds::status.eq(status.as_str()));
    }
    if let Some(reason) = filter.reason {
        query = query.filter(refunds::reason.eq(reason.as_str()));
    }
    if let Some(from) = filter.created_from {
        query = query.filter(refunds::created_at.ge(from));
    }
    if let Some(to) = filter.created_to {
        query = query.filter(refunds::created_at.lt(to));
    }
    query
        .select(columns::<RefundRow>())
        .load::<RefundRow>(conn)
        .map(|rows| rows.into_iter().map(Refund::from).collect())
}

/// Every refund in id order after `after_id`, for `verify`.
pub fn scan(conn: &mut DbConnection, after_id: i64, limit: i64) -> QueryResult<Vec<Refund>> {
    refunds::table
        .filter(refunds::id.gt(after_id))
        .order(refunds::id.asc())
        .limit(limit)
        .select(columns::<RefundRow>())
        .load::<RefundRow>(conn)
        .map(|rows| rows.into_iter().map(Refund::from).collect())
}

/// The review queue, oldest first: refund requests awaiting review with an id above
/// `starting_after`.
pub fn review_queue(
    conn: &mut DbConnection,
    starting_after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Refund>> {
    refunds::table
        .filter(refunds::status.eq(RefundStatus::PendingReview.as_str()))
        .filter(refunds::id.gt(starting_after.unwrap_or(0)))
        .order(refunds::id.asc())
        .limit(limit)
        .select(columns::<RefundRow>())
        .load::<RefundRow>(conn)
        .map(|rows| rows.into_iter().map(Refund::from).collect())
}

/// An account's latest refund requests (disputes it filed), newest first.
pub fn recent_requests(
    conn: &mut DbConnection,
    account_id: AccountId,
    limit: i64,
) -> QueryResult<Vec<Refund>> {
    refunds::table
        .filter(refunds::account_id.eq(account_id))
        .filter(refunds::source.eq(RefundSource::Reseller.as_str()))
        .order(refunds::id.desc())
        .limit(limit)
        .select(columns::<RefundRow>())
        .load::<RefundRow>(conn)
        .map(|rows| rows.into_iter().map(Refund::from).collect())
}

/// Every refund of one order, oldest first.
pub fn for_order(conn: &mut DbConnection, order_id: OrderId) -> QueryResult<Vec<Refund>> {
    refunds::table
        .filter(refunds::order_id.eq(order_id))
        .order(refunds::id.asc())
        .select(columns::<RefundRow>())
        .load::<RefundRow>(conn)
        .map(|rows| rows.into_iter().map(Refund::from).collect())
}
