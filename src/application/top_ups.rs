//! Top-ups and the money that leaves through them: refunds to the payment method, the
//! gateway's answer on those, and chargebacks.

use super::audit::{self, Target};
use super::events;
use crate::db::refunds::{self, NewRefund};
use crate::db::{self, accounts, is_unique_violation, ledger, top_ups, DbConnection};
use crate::domain::account::{Account, AccountStatus};
use crate::domain::audit::{Actor, AuditAction, AuditChange, AuditTarget};
use crate::domain::event::EventType;
use crate::domain::ids::{AccountId, RefundId, TopUpId};
use crate::domain::ledger::{LedgerKind, TopUp, TopUpStatus};
use crate::domain::money::{Money, SignedMoney};
use crate::domain::refund::{Refund, RefundReason, RefundSource, RefundStatus};
use crate::error::{ApiError, ErrorCode};
use crate::metrics;

/// Records a payment and credits it through the ledger in one transaction; a
/// `gateway_ref` is recorded at most once, even by concurrent calls.
pub fn record_top_up(
    conn: &mut DbConnection,
    by: &Actor,
    account_id: AccountId,
    amount: Money,
    gateway: &str,
    gateway_ref: &str,
) -> Result<TopUp, ApiError> {
    let duplicate = || ApiError::Refused {
        code: ErrorCode::DuplicateGatewayRef,
        detail: format!("a top-up with gateway_ref `{gateway_ref}` is already recorded"),
    };
    db::write_tx(conn, |conn| {
        accounts::find(conn, account_id)?.ok_or_else(|| ApiError::not_found("account"))?;
        if top_ups::find_by_gateway_ref(conn, gateway_ref)?.is_some() {
            return Err(duplicate());
        }
        // Two concurrent recordings of one payment: the unique index decides.
        let top_up =
            top_ups::insert(conn, account_id, amount, gateway, gateway_ref).map_err(|e| {
                if is_unique_violation(&e) {
                    duplicate()
                } else {
                    e.into()
                }
            })?;
        let refs = ledger::Refs {
            top_up_id: Some(top_up.id),
            ..Default::default()
        };
        let entry = ledger::post(
            conn,
            account_id,
            LedgerKind::TopUp,
            amount.signed(),
            refs,
            ledger::Overdraft::Refuse,
        )?;
        let balance_after = entry.map_or(SignedMoney::ZERO, |e| e.balance_after);
        events::top_up_succeeded(conn, &top_up, balance_after)?;
        let change = AuditChange::new(None, Some(audit::top_up(&top_up)));
        let target = Target::new(AuditTarget::TopUp, top_up.id.get(), Some(account_id));
        audit::record(conn, by, AuditAction::TopUpCreate, target, &change)?;
        Ok(top_up)
    })
}

/// A return of (part of) a top-up to its payment method, as an operator asks for it.
#[derive(Debug, Clone)]
pub struct TopUpRefund {
    pub amount: Money,
    pub reason: RefundReason,
    pub note: Option<String>,
}

/// Debits a top-up refund now, in one transaction under the top-up's lock, so a top-up
/// is never returned beyond its amount and the balance never below zero; the refund
/// stays pending until the gateway answers.
pub fn refund_top_up(
    conn: &mut DbConnection,
    by: &Actor,
    admin_id: AccountId,
    top_up_id: TopUpId,
    request: TopUpRefund,
) -> Result<Refund, ApiError> {
    let amount = request.amount;
    db::write_tx(conn, |conn| {
        let top_up =
            top_ups::lock(conn, top_up_id)?.ok_or_else(|| ApiError::not_found("top-up"))?;
        check_refundable(&top_up, amount)?;
        top_ups::add_refunded(conn, top_up.id, amount.signed(), None)?;
        let refund = refunds::insert(
            conn,
            &NewRefund {
                account_id: top_up.account_id,
                order_id: None,
                top_up_id: Some(top_up.id),
                amount,
                reason: request.reason,
                status: RefundStatus::Pending,
                source: RefundSource::Admin,
                note: request.note.clone(),
                decided_by: Some(admin_id),
            },
        )?;
        let refs = ledger::Refs {
            top_up_id: Some(top_up.id),
            refund_id: Some(refund.id),
            order_id: None,
        };
        ledger::post(
            conn,
            top_up.account_id,
            LedgerKind::TopUpRefund,
            -amount,
            refs,
            ledger::Overdraft::Refuse,
        )?
        .ok_or_else(|| ApiError::Refused {
            code: ErrorCode::InsufficientFunds,
            detail: "the account's balance no longer holds this amount".into(),
        })?;
        let after = top_ups::find(conn, top_up.id)?;
        let change = AuditChange::new(
            Some(audit::top_up(&top_up)),
            Some(serde_json::json!({
                "top_up": after.as_ref().map(audit::top_up),
                "refund": audit::refund(&refund),
            })),
        );
        let target = Target::new(AuditTarget::TopUp, top_up.id.get(), Some(top_up.account_id));
        audit::record(conn, by, AuditAction::TopUpRefund, target, &change)?;
        Ok(refund)
    })
}

fn check_refundable(top_up: &TopUp, amount: Money) -> Result<(), ApiError> {
    let left = top_up.amount.saturating_sub(top_up.refunded);
    if amount > left {
        return Err(ApiError::Invalid {
            code: ErrorCode::AmountExceedsRefundable,
            detail: format!("at most {left} of this top-up can still be returned"),
            param: Some("amount".into()),
        });
    }
    Ok(())
}

/// What the payment gateway said about a refund to the payment method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayAnswer {
    Succeeded,
    Failed,
}

/// Settles a pending payment-method refund with the gateway's answer, once, under the
/// top-up's and the refund's locks; a failure re-credits the balance in the same step.
pub fn finish_payment_refund(
    conn: &mut DbConnection,
    by: &Actor,
    admin_id: AccountId,
    refund_id: RefundId,
    answer: GatewayAnswer,
) -> Result<Refund, ApiError> {
    db::write_tx(conn, |conn| {
        let refund = refunds::lock_with_parent(conn, refund_id)?
            .ok_or_else(|| ApiError::not_found("refund"))?;
        let before = audit::refund(&refund);
        let target = Target::new(
            AuditTarget::Refund,
            refund_id.get(),
            Some(refund.account_id),
        );
        let top_up_id = match (refund.status, refund.top_up_id) {
            (RefundStatus::Pending, Some(top_up_id)) => top_up_id,
            _ => {
                return Err(ApiError::Refused {
                    code: ErrorCode::RefundNotPending,
                    detail: format!(
                        "only a pending payment refund can be settled; this one is {}",
                        refund.status
                    ),
                })
            }
        };
        if answer == GatewayAnswer::Succeeded {
            let refund = refunds::record_decision(
                conn,
                refund_id,
                RefundStatus::Succeeded,
                refund.amount,
                Some(admin_id),
                None,
            )?;
            count_top_up_refund(conn, &refund)?;
            let change = audit::changed(before.clone(), audit::refund(&refund));
            audit::record(conn, by, AuditAction::TopUpRefundSucceed, target, &change)?;
            let top_up = top_ups::find(conn, top_up_id)?;
            let balance = accounts::find(conn, refund.account_id)?.map(|a| a.balance);
            events::top_up_refund(
                conn,
                EventType::TopUpRefundSucceeded,
                &refund,
                top_up.as_ref(),
                balance,
            )?;
            return Ok(refund);
        }
        top_ups::add_refunded(conn, top_up_id, -refund.amount, None)?;
        let refs = ledger::Refs {
            top_up_id: Some(top_up_id),
            refund_id: Some(refund.id),
            order_id: None,
        };
        let entry = ledger::post(
            conn,
            refund.account_id,
            LedgerKind::TopUpRefund,
            refund.amount.signed(),
            refs,
            ledger::Overdraft::Refuse,
        )?;
        let refund = refunds::record_decision(
            conn,
            refund_id,
            RefundStatus::Failed,
            refund.amount,
            Some(admin_id),
            Some("the payment gateway refused the refund; the balance was re-credited"),
        )?;
        let change = audit::changed(before.clone(), audit::refund(&refund));
        audit::record(conn, by, AuditAction::TopUpRefundFail, target, &change)?;
        let top_up = top_ups::find(conn, top_up_id)?;
        events::top_up_refund(
            conn,
            EventType::TopUpRefundFailed,
            &refund,
            top_up.as_ref(),
            entry.map(|e| e.balance_after),
        )?;
        Ok(refund)
    })
}

/// Counts a payment-method refund the gateway confirmed, once its transaction commits.
fn count_top_up_refund(conn: &mut DbConnection, refund: &Refund) -> Result<(), ApiError> {
    let currency =
        accounts::find(conn, refund.account_id)?.map_or_else(String::new, |a| a.currency);
    metrics::top_up_refunded(refund.reason.as_str(), &currency, refund.amount.micros());
    Ok(())
}

/// A chargeback and what it did.
#[derive(Debug)]
pub struct Chargeback {
    pub refund: Refund,
    pub top_up: TopUp,
    /// Suspended until an operator reactivates it.
    pub account: Account,
}

/// Records a chargeback in one transaction: the only debit allowed to take a balance below
/// zero, never beyond what is left of the top-up, and it suspends the account.
pub fn charge_back(
    conn: &mut DbConnection,
    by: &Actor,
    admin_id: AccountId,
    top_up_id: TopUpId,
    amount: Option<Money>,
    note: Option<String>,
) -> Result<Chargeback, ApiError> {
    db::write_tx(conn, |conn| {
        let top_up =
            top_ups::lock(conn, top_up_id)?.ok_or_else(|| ApiError::not_found("top-up"))?;
        let audit_before = audit::top_up(&top_up);
        let left = top_up.amount.saturating_sub(top_up.refunded);
        let amount = amount.unwrap_or(left);
        if amount.is_zero() {
            return Err(ApiError::Refused {
                code: ErrorCode::NothingToChargeBack,
                detail: "this top-up was already returned in full".into(),
            });
        }
        check_refundable(&top_up, amount)?;
        let top_up = top_ups::add_refunded(
            conn,
            top_up.id,
            amount.signed(),
            Some(TopUpStatus::ChargedBack.as_str()),
        )?;
        let refund = refunds::insert(
            conn,
            &NewRefund {
                account_id: top_up.account_id,
                order_id: None,
                top_up_id: Some(top_up.id),
                amount,
                reason: RefundReason::Chargeback,
                status: RefundStatus::Succeeded,
                source: RefundSource::Admin,
                note: note.clone(),
                decided_by: Some(admin_id),
            },
        )?;
        let refs = ledger::Refs {
            top_up_id: Some(top_up.id),
            refund_id: Some(refund.id),
            order_id: None,
        };
        ledger::post(
            conn,
            top_up.account_id,
            LedgerKind::Chargeback,
            -amount,
            refs,
            ledger::Overdraft::Allow,
        )?;
        let before = accounts::find(conn, top_up.account_id)?.map(|a| a.status);
        let account = accounts::set_status(conn, top_up.account_id, AccountStatus::Suspended)?
            .ok_or_else(|| ApiError::not_found("account"))?;
        metrics::top_up_refunded(refund.reason.as_str(), &account.currency, amount.micros());
        events::chargeback(conn, &refund, &top_up, &account)?;
        if before != Some(AccountStatus::Suspended) {
            events::account(conn, EventType::AccountSuspended, &account)?;
        }
        let change = AuditChange::new(
            Some(audit_before),
            Some(serde_json::json!({
                "top_up": audit::top_up(&top_up),
                "refund": audit::refund(&refund),
                "account_status": account.status,
            })),
        );
        let target = Target::new(AuditTarget::TopUp, top_up.id.get(), Some(top_up.account_id));
        audit::record(conn, by, AuditAction::TopUpChargeback, target, &change)?;
        Ok(Chargeback {
            refund,
            top_up,
            account,
        })
    })
}
