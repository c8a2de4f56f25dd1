//! Settling refunds: the one place any trigger applies the refund rule to an order, and
//! what the rule refused, as the errors callers see.

use super::events;
use crate::db::refunds::{self, NewRefund};
use crate::db::{self, accounts, ledger, orders, provider_orders, DbConnection, WriteConn};
use crate::domain::event::EventType;
use crate::domain::ids::{AccountId, OrderId, RefundId};
use crate::domain::ledger::LedgerKind;
use crate::domain::money::Money;
use crate::domain::order::{Order, OrderStatus};
use crate::domain::refund::{
    self, Change, Refund, RefundReason, RefundSource, RefundStatus, Refusal,
};
use crate::error::{ApiError, ErrorCode};
use crate::metrics;

/// What started a settlement and how its refund is to be recorded.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub change: Change,
    pub start_count: Option<i64>,
    pub reason: RefundReason,
    pub source: RefundSource,
    pub decided_by: Option<AccountId>,
    pub note: Option<String>,
    /// The pending dispute this trigger approves; it becomes the refund record.
    pub dispute_id: Option<RefundId>,
    /// Skip orders that are no longer in flight instead of changing them.
    pub only_if_open: bool,
    /// Only this account's order (a reseller acting on its own).
    pub owner: Option<AccountId>,
}

impl Trigger {
    pub fn new(change: Change, reason: RefundReason, source: RefundSource) -> Trigger {
        Trigger {
            change,
            start_count: None,
            reason,
            source,
            decided_by: None,
            note: None,
            dispute_id: None,
            only_if_open: false,
            owner: None,
        }
    }
}

#[derive(Debug)]
pub struct Settled {
    pub order: Order,
    /// The refund credited by this settlement, if any money moved.
    pub refund: Option<Refund>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("order not found")]
    NotFound,
    #[error("refused: {0:?}")]
    Refused(Refusal),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

impl db::TxError for SettleError {
    fn is_conflict(&self) -> bool {
        matches!(self, SettleError::Db(error) if db::is_conflict(error))
    }
}

/// Applies a trigger to an order under the one refund rule, in its own write transaction:
/// repeated, concurrent and out-of-order triggers can never refund more than is owed.
pub fn settle(
    conn: &mut DbConnection,
    order_id: OrderId,
    trigger: Trigger,
) -> Result<Settled, SettleError> {
    db::write_tx(conn, |conn| settle_within(conn, order_id, trigger.clone()))
}

/// The body of [`settle`], for callers whose own transaction settles as one step among
/// others: locks the order, plans the change, stores the order's new state and credits
/// exactly `owed − refunded`, with one refund record and one ledger entry. Call inside a
/// write transaction.
pub(crate) fn settle_within(
    conn: &mut WriteConn<'_>,
    order_id: OrderId,
    trigger: Trigger,
) -> Result<Settled, SettleError> {
    let order = orders::lock(conn, order_id, trigger.owner)?.ok_or(SettleError::NotFound)?;
    if trigger.only_if_open && order.status.is_terminal() {
        return Ok(Settled {
            order,
            refund: None,
        });
    }
    let plan = refund::plan(&order.book(), trigger.change).map_err(SettleError::Refused)?;
    let start_count = trigger.start_count.or(order.start_count);
    let from = order.status;
    let order = orders::store_book(conn, order.id, &plan.book, start_count)?;
    events::order_status_changed(conn, from, &order)?;
    if order.status.is_terminal() {
        provider_orders::stop_polling(conn, order.id)?;
    }
    if order.book().flat && order.status == OrderStatus::Partial && from != OrderStatus::Partial {
        review_flat_partial(conn, &order)?;
    }

    let refund = if let Some(dispute_id) = trigger.dispute_id {
        Some(refunds::record_decision(
            conn,
            dispute_id,
            RefundStatus::Succeeded,
            plan.refund_now,
            trigger.decided_by,
            trigger.note.as_deref(),
        )?)
    } else if !plan.refund_now.is_zero() {
        Some(refunds::insert(
            conn,
            &NewRefund {
                account_id: order.account_id,
                order_id: Some(order.id),
                top_up_id: None,
                amount: plan.refund_now,
                reason: trigger.reason,
                status: RefundStatus::Succeeded,
                source: trigger.source,
                note: trigger.note.clone(),
                decided_by: trigger.decided_by,
            },
        )?)
    } else {
        None
    };
    if let Some(refund) = &refund {
        let refs = ledger::Refs {
            order_id: Some(order.id),
            refund_id: Some(refund.id),
            top_up_id: None,
        };
        let entry = ledger::post(
            conn,
            order.account_id,
            LedgerKind::Refund,
            plan.refund_now.signed(),
            refs,
            ledger::Overdraft::Refuse,
        )?;
        count_refund(conn, order.account_id, refund.reason, plan.refund_now)?;
        let balance_after = entry.map(|e| e.balance_after);
        if trigger.dispute_id.is_some() {
            events::refund(
                conn,
                EventType::RefundApproved,
                refund,
                Some(&order),
                balance_after,
            )?;
        }
        if !plan.refund_now.is_zero() {
            events::refund(
                conn,
                EventType::RefundSucceeded,
                refund,
                Some(&order),
                balance_after,
            )?;
        }
    }
    if plan.book.refunded == plan.book.charge {
        // Nothing is left to dispute: close any review still open on this order.
        if let Some(dispute) = refunds::pending_dispute(conn, order.id)? {
            refunds::record_decision(
                conn,
                dispute.id,
                RefundStatus::Canceled,
                dispute.amount,
                None,
                Some("the order was refunded in full"),
            )?;
        }
    }
    Ok(Settled { order, refund })
}

/// A flat-price order (one package) reported Partial: the provider's remains are in units
/// its price does not count, so the refund rule owes nothing by itself and the order goes
/// to the operators' review queue, asking its whole refundable amount, for a person to
/// decide (approve all or part, or reject). Not a reseller's dispute: the refund-abuse
/// policy does not count it.
fn review_flat_partial(conn: &mut WriteConn<'_>, order: &Order) -> Result<(), SettleError> {
    let amount = order.refundable();
    if amount.is_zero() || refunds::pending_dispute(conn, order.id)?.is_some() {
        return Ok(());
    }
    let remains = order
        .remains
        .map_or_else(|| "an unknown number of".to_string(), |r| r.to_string());
    let refund = refunds::insert(
        conn,
        &NewRefund {
            account_id: order.account_id,
            order_id: Some(order.id),
            top_up_id: None,
            amount,
            reason: RefundReason::PartialDelivery,
            status: RefundStatus::PendingReview,
            source: RefundSource::Automatic,
            note: Some(format!(
                "a flat-price {} order delivered in part: the provider reports {remains} \
                 units remaining, which the package price does not count; decide what is owed",
                order.kind
            )),
            decided_by: None,
        },
    )?;
    events::refund(
        conn,
        EventType::RefundPendingReview,
        &refund,
        Some(order),
        None,
    )?;
    Ok(())
}

/// Counts a refund for `/metrics` once the transaction crediting it commits, whatever the
/// trigger; the amount is labelled with the account's currency.
fn count_refund(
    conn: &mut DbConnection,
    account_id: AccountId,
    reason: RefundReason,
    amount: Money,
) -> Result<(), diesel::result::Error> {
    let currency = accounts::find(conn, account_id)?.map_or_else(String::new, |a| a.currency);
    metrics::refund_credited(reason.as_str(), &currency, amount.micros());
    Ok(())
}

impl From<SettleError> for ApiError {
    fn from(error: SettleError) -> ApiError {
        match error {
            SettleError::NotFound => ApiError::not_found("order"),
            SettleError::Db(e) => e.into(),
            SettleError::Refused(Refusal::Final { status }) => ApiError::Refused {
                code: ErrorCode::OrderFinal,
                detail: format!("the order is {status}; its outcome can no longer change"),
            },
            SettleError::Refused(Refusal::Backwards { from, to }) => ApiError::Refused {
                code: ErrorCode::InvalidTransition,
                detail: format!("a {from} order cannot go back to {to}"),
            },
            SettleError::Refused(Refusal::RemainsRequired) => {
                ApiError::invalid("remains", "a partial outcome needs `remains`")
            }
            SettleError::Refused(Refusal::WouldTakeBack { owed, refunded }) => ApiError::Refused {
                code: ErrorCode::RefundWouldBeTakenBack,
                detail: format!(
                    "this outcome owes {owed} but {refunded} was already refunded; refunds are never taken back"
                ),
            },
            SettleError::Refused(Refusal::TooMuch { refundable }) => ApiError::Invalid {
                code: ErrorCode::AmountExceedsRefundable,
                detail: format!("at most {refundable} can still be refunded"),
                param: Some("amount".into()),
            },
        }
    }
}
