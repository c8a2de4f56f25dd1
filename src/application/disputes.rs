//! Disputes: a reseller's refund request, the refund-abuse policy's verdict on it, and an
//! operator's approval or rejection.

use super::audit::{self, Target};
use super::events;
use super::idempotency::{
    self, release_on_error, Answer, Claimed, IdempotencyError, IdempotencyKey, Replay,
};
use super::refunds::{settle_within, Settled, Trigger};
use crate::db::refunds::{self, NewRefund};
use crate::db::{self, accounts, orders, policy, DbConnection};
use crate::domain::audit::{Actor, AuditAction, AuditTarget};
use crate::domain::event::EventType;
use crate::domain::ids::{AccountId, OrderId, RefundId};
use crate::domain::money::Money;
use crate::domain::order::OrderStatus;
use crate::domain::policy::{assess, Decision, Policy, PolicyOutcome};
use crate::domain::refund::{Change, DisputeReason, Refund, RefundSource, RefundStatus};
use crate::error::{ApiError, ErrorCode};
use crate::resources::RefundResponse;

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

/// What [`create_dispute`] did: a refund approved and credited at once, one left for an
/// operator, or the answer stored under the key by the first request with it.
#[derive(Debug)]
pub enum Disputed {
    Approved(Refund),
    InReview(Refund),
    Replayed(Replay),
}

/// Why a dispute was not filed. REST words these in `api::refunds`.
#[derive(Debug, thiserror::Error)]
pub enum DisputeError {
    #[error("order not found")]
    OrderNotFound,
    #[error("a canceled order is already refunded in full")]
    OrderCanceled,
    #[error("this order has already been refunded in full")]
    NothingToRefund,
    #[error("this order already has a refund request under review")]
    DisputePending,
    #[error("at most {refundable} of this order can still be refunded")]
    AmountExceedsRefundable { refundable: Money },
    /// The refund-abuse policy refused it; the refusal is on record (the policy counts it).
    #[error("the refund policy refused this request (rule `{}`); try again later", .0.rule)]
    PolicyRefused(Decision),
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    /// The database, its writer or the settlement failed (as the service answers it).
    #[error(transparent)]
    Failed(#[from] ApiError),
}

impl From<diesel::result::Error> for DisputeError {
    fn from(error: diesel::result::Error) -> DisputeError {
        DisputeError::Failed(error.into())
    }
}

impl db::TxError for DisputeError {
    fn is_conflict(&self) -> bool {
        matches!(self, DisputeError::Failed(error) if db::TxError::is_conflict(error))
    }

    fn from_write(error: db::writer::WriteError) -> DisputeError {
        DisputeError::Failed(error.into())
    }
}

/// Files a dispute at most once per key, in one transaction that locks the order and the
/// account (so one account's requests are judged one at a time in every process), records
/// the policy's decision and, for an automatic approval, settles it. A refusal commits
/// (the policy counts it) and is answered as [`DisputeError::PolicyRefused`]. The key is
/// claimed in a transaction of its own and given back if the dispute is not filed.
pub fn create_dispute(
    conn: &mut DbConnection,
    rules: &Policy,
    account_id: AccountId,
    order_id: OrderId,
    dispute: Dispute,
    key: Option<IdempotencyKey>,
) -> Result<Disputed, DisputeError> {
    let scope = format!("create_dispute:{order_id}");
    // Claimed in a transaction of its own: the dispute's work spans several.
    let claimed = db::write_tx(conn, |conn| {
        idempotency::claim::<DisputeError>(conn, account_id, &scope, key.as_ref())
    })?;
    let claim = match claimed {
        Claimed::Replay(replay) => return Ok(Disputed::Replayed(replay)),
        Claimed::Proceed(claim) => claim,
    };
    let filed = db::write_tx(conn, |conn| {
        let (answer, refund) = match file(conn, rules, account_id, order_id, dispute.clone())? {
            Filed::Refused(decision) => return Ok(Err(decision)),
            Filed::Approved(refund) => (Answer::DisputeApproved, refund),
            Filed::Pending(refund) => (Answer::DisputeInReview, refund),
        };
        if let Some(claim) = claim {
            let body = serde_json::to_string(&RefundResponse::from(refund.clone()))
                .map_err(|e| DisputeError::Failed(ApiError::internal(e)))?;
            claim.store::<DisputeError>(conn, answer, &body)?;
        }
        Ok(Ok(match answer {
            Answer::DisputeApproved => Disputed::Approved(refund),
            _ => Disputed::InReview(refund),
        }))
    });
    // A refusal is committed on record before it becomes the error.
    let filed = filed.and_then(|filed| filed.map_err(DisputeError::PolicyRefused));
    release_on_error(conn, claim, filed)
}

/// The body of [`create_dispute`]'s transaction.
fn file(
    conn: &mut db::WriteConn<'_>,
    rules: &Policy,
    account_id: AccountId,
    order_id: OrderId,
    dispute: Dispute,
) -> Result<Filed, DisputeError> {
    let order =
        orders::lock(conn, order_id, Some(account_id))?.ok_or(DisputeError::OrderNotFound)?;
    if order.status == OrderStatus::Canceled {
        return Err(DisputeError::OrderCanceled);
    }
    let refundable = order.refundable();
    if refundable.is_zero() {
        return Err(DisputeError::NothingToRefund);
    }
    if refunds::pending_dispute(conn, order_id)?.is_some() {
        return Err(DisputeError::DisputePending);
    }
    let amount = dispute.amount.unwrap_or(refundable);
    if amount > refundable {
        return Err(DisputeError::AmountExceedsRefundable { refundable });
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
            amount,
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
        settle_within(conn, order_id, trigger).map_err(ApiError::from)?;
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
    by: &Actor,
    admin_id: AccountId,
    refund_id: RefundId,
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
        let refundable = order.refundable();
        let amount = amount.unwrap_or(refund.amount.min(refundable));
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
        let before = audit::refund(&refund);
        let settled = settle_within(conn, order_id, trigger)?;
        let after = refunds::find(conn, refund.id, None)?;
        let change = audit::changed(
            before,
            after
                .as_ref()
                .map_or(serde_json::Value::Null, audit::refund),
        );
        let target = Target::new(
            AuditTarget::Refund,
            refund.id.get(),
            Some(refund.account_id),
        );
        audit::record(conn, by, AuditAction::RefundApprove, target, &change)?;
        Ok(settled)
    })
}

/// An operator's rejection of a pending dispute, decided under the same locks as an
/// approval so the two can never both win. No money moves.
pub fn reject_dispute(
    conn: &mut DbConnection,
    by: &Actor,
    admin_id: AccountId,
    refund_id: RefundId,
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
            refund.amount,
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
        let change = audit::changed(audit::refund(&refund), audit::refund(&rejected));
        let target = Target::new(
            AuditTarget::Refund,
            refund.id.get(),
            Some(refund.account_id),
        );
        audit::record(conn, by, AuditAction::RefundReject, target, &change)?;
        Ok(rejected)
    })
}
