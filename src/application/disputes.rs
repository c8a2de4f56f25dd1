//! Disputes: a reseller's refund request, the refund-abuse policy's verdict on it, and an
//! operator's approval or rejection.

use super::events;
use super::idempotency::{store_response, with_idempotency, Stored};
use super::refunds::{settle_within, Settled, Trigger};
use crate::db::refunds::{self, NewRefund};
use crate::db::{self, accounts, orders, policy, DbConnection};
use crate::domain::event::EventType;
use crate::domain::money::Money;
use crate::domain::order::OrderStatus;
use crate::domain::policy::{assess, Decision, Policy, PolicyOutcome};
use crate::domain::refund::{Change, DisputeReason, Refund, RefundSource, RefundStatus};
use crate::error::{ApiError, ErrorCode};

/// A reseller's refund request on one order, its fields already checked.
#[derive(Debug, Clone)]
pub struct Dispute {
    pub reason: DisputeReason,
    /// The order's whole refundable remainder when `None`.
    pub amount: Option<Money>,
    pub note: Option<String>,
}

/// What the policy made of a dispute: refused (and kept on record), approved and credited
/// at once, or waiting for an operator.
enum Filed {
    Refused(Decision),
    Approved(Refund),
    Pending(Refund),
}

/// Files a dispute at most once per key, in one transaction that locks the order and the
/// account (so one account's requests are judged one at a time in every process), records
/// the policy's decision and, for an automatic approval, settles it. A refusal commits
/// (the policy counts it) and is answered as [`ApiError::PolicyRefused`].
pub fn create_dispute(
    conn: &mut DbConnection,
    rules: &Policy,
    account_id: i64,
    order_id: i64,
    dispute: Dispute,
    key: Option<super::idempotency::IdempotencyKey>,
    render: impl Fn(Refund) -> Result<String, ApiError> + Sync,
) -> Result<Stored, ApiError> {
    let scope = format!("create_dispute:{order_id}");
    with_idempotency(conn, account_id, &scope, key, |conn, claim| {
        let answer = db::write_tx(conn, |conn| {
            let (status, refund) = match file(conn, rules, account_id, order_id, dispute.clone())? {
                Filed::Refused(decision) => return Ok(Answer::Refused(decision)),
                Filed::Approved(refund) => (201, refund),
                Filed::Pending(refund) => (202, refund),
            };
            let body = render(refund)?;
            if let Some(claim) = claim {
                store_response(conn, claim, status, &body)?;
            }
            Ok::<_, ApiError>(Answer::Stored(Stored {
                status,
                body,
                replayed: false,
            }))
        })?;
        match answer {
            Answer::Stored(stored) => Ok(stored),
            Answer::Refused(decision) => Err(policy_refused(decision)),
        }
    })
}

/// What [`create_dispute`]'s transaction commits to: a stored reply, or a refusal that
/// becomes an error only after it is on record.
enum Answer {
    Stored(Stored),
    Refused(Decision),
}

fn policy_refused(decision: Decision) -> ApiError {
    ApiError::PolicyRefused {
        detail: format!(
            "the refund policy refused this request (rule `{}`); try again later",
            decision.rule
        ),
        rule: decision.rule.to_string(),
        numbers: decision.detail,
        retry_after_secs: decision.retry_after_secs.unwrap_or(3600).max(1) as u64,
    }
}

/// The body of [`create_dispute`]'s transaction.
fn file(
    conn: &mut db::WriteConn<'_>,
    rules: &Policy,
    account_id: i64,
    order_id: i64,
    dispute: Dispute,
) -> Result<Filed, ApiError> {
    let order = orders::lock(conn, order_id, Some(account_id))?
        .ok_or_else(|| ApiError::not_found("order"))?;
    if order.status == OrderStatus::Canceled {
        return Err(ApiError::Refused {
            code: ErrorCode::OrderCanceled,
            detail: "a canceled order is already refunded in full".into(),
        });
    }
    let refundable = order.refundable().micros();
    if refundable == 0 {
        return Err(ApiError::Refused {
            code: ErrorCode::NothingToRefund,
            detail: "this order has already been refunded in full".into(),
        });
    }
    if refunds::pending_dispute(conn, order_id)?.is_some() {
        return Err(ApiError::Refused {
            code: ErrorCode::DisputePending,
            detail: "this order already has a refund request under review".into(),
        });
    }
    let amount = dispute.amount.map_or(refundable, |a| a.micros());
    if amount > refundable {
        return Err(ApiError::Invalid {
            code: ErrorCode::AmountExceedsRefundable,
            detail: format!(
                "at most {} of this order can still be refunded",
                order.refundable()
            ),
            param: Some("amount".into()),
        });
    }
    // One account's requests are decided one at a time, in every process.
    let account =
        accounts::lock(conn, account_id)?.ok_or_else(|| ApiError::not_found("account"))?;
    let now = db::now();
    let standing = policy::standing(conn, &account, now)?;
    let decision = assess(rules, &standing, amount, now);
    if decision.outcome == PolicyOutcome::Refuse {
        policy::record_refusal(conn, account_id, order_id, &decision, now)?;
        return Ok(Filed::Refused(decision));
    }
    let refund = refunds::insert(
        conn,
        &NewRefund {
            account_id,
            order_id: Some(order_id),
            top_up_id: None,
            amount_micros: amount,
            reason: dispute.reason.refund_reason(),
            status: RefundStatus::PendingReview,
            source: RefundSource::Reseller,
            note: dispute.note,
            decided_by: None,
        },
    )?;
    refunds::record_policy(conn, refund.id, &decision)?;
    let approved = decision.outcome == PolicyOutcome::AutoApprove;
    if !approved {
        let refund =
            refunds::find(conn, refund.id, None)?.ok_or_else(|| ApiError::not_found("refund"))?;
        events::refund(
            conn,
            EventType::RefundPendingReview,
            &refund,
            Some(&order),
            None,
        )?;
    }
    if approved {
        let mut trigger = Trigger::new(
            Change {
                approve: amount,
                ..Change::default()
            },
            refund.reason,
            RefundSource::Reseller,
        );
        trigger.dispute_id = Some(refund.id);
        trigger.note = Some(format!("approved automatically ({})", decision.rule));
        settle_within(conn, order_id, trigger)?;
    }
    let refund =
        refunds::find(conn, refund.id, None)?.ok_or_else(|| ApiError::not_found("refund"))?;
    Ok(if approved {
        Filed::Approved(refund)
    } else {
        Filed::Pending(refund)
    })
}

fn already_decided(refund: &Refund) -> ApiError {
    ApiError::Refused {
        code: ErrorCode::RefundAlreadyDecided,
        detail: format!("this refund is already {}", refund.status),
    }
}

/// An operator's approval of a pending dispute, settled under the refund rule in the
/// transaction that locks the order before the refund (so racing decisions cannot
/// deadlock or credit twice). `amount` defaults to what was asked, capped at what is
/// still refundable.
pub fn approve_dispute(
    conn: &mut DbConnection,
    admin_id: i64,
    refund_id: i64,
    amount: Option<Money>,
    reason: Option<String>,
) -> Result<Settled, ApiError> {
    db::write_tx(conn, |conn| {
        let refund = refunds::lock_with_parent(conn, refund_id)?
            .ok_or_else(|| ApiError::not_found("refund"))?;
        if refund.status != RefundStatus::PendingReview {
            return Err(already_decided(&refund));
        }
        let order_id = refund.order_id.ok_or_else(|| already_decided(&refund))?;
        let order =
            orders::lock(conn, order_id, None)?.ok_or_else(|| ApiError::not_found("order"))?;
        let refundable = order.refundable().micros();
        let amount = amount.map_or(refund.amount_micros.min(refundable), |a| a.micros());
        let mut trigger = Trigger::new(
            Change {
                approve: amount,
                ..Change::default()
            },
            refund.reason,
            RefundSource::Reseller,
        );
        trigger.dispute_id = Some(refund.id);
        trigger.decided_by = Some(admin_id);
        trigger.note = reason.clone();
        Ok(settle_within(conn, order_id, trigger)?)
    })
}

/// An operator's rejection of a pending dispute, decided under the same locks as an
/// approval so the two can never both win. No money moves.
pub fn reject_dispute(
    conn: &mut DbConnection,
    admin_id: i64,
    refund_id: i64,
    reason: &str,
) -> Result<Refund, ApiError> {
    db::write_tx(conn, |conn| {
        let refund = refunds::lock_with_parent(conn, refund_id)?
            .ok_or_else(|| ApiError::not_found("refund"))?;
        if refund.status != RefundStatus::PendingReview {
            return Err(already_decided(&refund));
        }
        let rejected = refunds::record_decision(
            conn,
            refund_id,
            RefundStatus::Rejected,
            refund.amount_micros,
            Some(admin_id),
            Some(reason),
        )?;
        let order = match rejected.order_id {
            Some(order_id) => orders::lock(conn, order_id, None)?,
            None => None,
        };
        events::refund(
            conn,
            EventType::RefundRejected,
            &rejected,
            order.as_ref(),
            None,
        )?;
        Ok(rejected)
    })
}
