//! The one refund rule. What an order is owed is a function of its state, not of who
//! asks; every trigger (provider outcome, operator outcome, disabled service, reseller
//! cancel, approved dispute) plans its change here and credits only the difference
//! between what is owed and what was already refunded.

use chrono::NaiveDateTime;

use super::money::Money;
pub use super::order::OrderBook;
use super::order::OrderStatus;
use super::string_enum;
use crate::domain::ids::{AccountId, OrderId, RefundId, TopUpId};

string_enum! {
    /// Why money went back. Disputes keep the reason the reseller gave.
    RefundReason {
        ProviderCanceled => "provider_canceled",
        PartialDelivery => "partial_delivery",
        ServiceDisabled => "service_disabled",
        CanceledByReseller => "canceled_by_reseller",
        DuplicateTopUp => "duplicate_top_up",
        Chargeback => "chargeback",
        Manual => "manual",
        NotDelivered => "not_delivered",
        PartiallyDelivered => "partially_delivered",
        Dropped => "dropped",
        DuplicateOrder => "duplicate_order",
        Other => "other",
    }
}

string_enum! {
    /// The reasons a reseller may give when disputing an order.
    DisputeReason {
        NotDelivered => "not_delivered",
        PartiallyDelivered => "partially_delivered",
        Dropped => "dropped",
        DuplicateOrder => "duplicate_order",
        Other => "other",
    }
}

impl DisputeReason {
    pub fn refund_reason(self) -> RefundReason {
        match self {
            DisputeReason::NotDelivered => RefundReason::NotDelivered,
            DisputeReason::PartiallyDelivered => RefundReason::PartiallyDelivered,
            DisputeReason::Dropped => RefundReason::Dropped,
            DisputeReason::DuplicateOrder => RefundReason::DuplicateOrder,
            DisputeReason::Other => RefundReason::Other,
        }
    }
}

string_enum! {
    /// Where a refund stands. Payment-method refunds of top-ups go pending → succeeded | failed.
    RefundStatus {
        PendingReview => "pending_review",
        Pending => "pending",
        Succeeded => "succeeded",
        Rejected => "rejected",
        Failed => "failed",
        Canceled => "canceled",
    }
}

string_enum! {
    /// Who started a refund.
    RefundSource { Automatic => "automatic", Reseller => "reseller", Admin => "admin" }
}

#[derive(Debug, Clone)]
pub struct Refund {
    pub id: RefundId,
    pub account_id: AccountId,
    pub order_id: Option<OrderId>,
    pub top_up_id: Option<TopUpId>,
    pub amount: Money,
    pub reason: RefundReason,
    pub status: RefundStatus,
    pub source: RefundSource,
    pub note: Option<String>,
    pub decision_reason: Option<String>,
    pub decided_by: Option<AccountId>,
    pub decided_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    /// The refund-abuse policy's decision, for refund requests.
    pub policy: Option<PolicyNote>,
}

/// Which policy rule decided a refund request, and the numbers it saw.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct PolicyNote {
    #[schema(value_type = crate::domain::policy::PolicyOutcome)]
    pub outcome: String,
    #[schema(example = "refund_rate_escalate")]
    pub rule: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// The share of the charge owed for undelivered units.
pub fn delivery_owed(book: &OrderBook) -> Money {
    match book.status {
        // floor(charge × undelivered / units), remains clamped to the order.
        OrderStatus::Canceled => book.charge,
        // A flat-price order's remains are in the provider's units, which its price does
        // not count: what it is owed is an operator's decision (a review), not a share.
        OrderStatus::Partial if book.flat => Money::ZERO,
        OrderStatus::Partial => book.charge.share(book.remains.unwrap_or(0), book.units),
        _ => Money::ZERO,
    }
}

/// Everything the order is owed: delivery plus approved disputes, never beyond the charge.
pub fn owed(book: &OrderBook) -> Money {
    book.charge
        .min(delivery_owed(book).saturating_add(book.approved_disputes))
}

/// A change a trigger wants to make to an order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    pub status: Option<OrderStatus>,
    pub remains: Option<i64>,
    /// Dispute amount approved by this change.
    pub approve: Money,
}

/// Why a change was refused; nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A canceled order is final.
    Final { status: OrderStatus },
    /// Terminal orders do not go back to pending or in progress.
    Backwards { from: OrderStatus, to: OrderStatus },
    /// Partial needs `remains`.
    RemainsRequired,
    /// The change would owe less than was already refunded; refunds are never taken back.
    WouldTakeBack { owed: Money, refunded: Money },
    /// The approval is larger than what is left to refund.
    TooMuch { refundable: Money },
}

/// The order after a change, and what to credit now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub book: OrderBook,
    pub refund_now: Money,
}

/// Applies a change to an order under the one rule.
pub fn plan(current: &OrderBook, change: Change) -> Result<Plan, Refusal> {
    let to = change.status.unwrap_or(current.status);
    if current.status == OrderStatus::Canceled && to != OrderStatus::Canceled {
        return Err(Refusal::Final {
            status: current.status,
        });
    }
    if current.status.is_terminal() && !to.is_terminal() {
        return Err(Refusal::Backwards {
            from: current.status,
            to,
        });
    }
    let remains = change.remains.or(current.remains);
    if to == OrderStatus::Partial && remains.is_none() {
        return Err(Refusal::RemainsRequired);
    }
    let refundable = current.charge.saturating_sub(current.refunded);
    if change.approve > refundable {
        return Err(Refusal::TooMuch { refundable });
    }
    let book = OrderBook {
        status: to,
        remains,
        approved_disputes: current.approved_disputes.saturating_add(change.approve),
        ..*current
    };
    let owed = owed(&book);
    let Some(refund_now) = owed.checked_sub(current.refunded) else {
        return Err(Refusal::WouldTakeBack {
            owed,
            refunded: current.refunded,
        });
    };
    Ok(Plan {
        // What is refunded becomes what is owed.
        book: OrderBook {
            refunded: owed,
            ..book
        },
        refund_now,
    })
}

/// The reason an automatic refund carries for the status that caused it.
pub fn reason_for(status: OrderStatus) -> RefundReason {
    match status {
        OrderStatus::Partial => RefundReason::PartialDelivery,
        _ => RefundReason::ProviderCanceled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(micros: i64) -> Money {
        Money::try_from_micros(micros).unwrap()
    }

    fn book(status: OrderStatus, remains: Option<i64>) -> OrderBook {
        OrderBook {
            charge: m(1_000_000),
            units: 3,
            status,
            remains,
            approved_disputes: Money::ZERO,
            refunded: Money::ZERO,
            flat: false,
        }
    }

    fn to(status: OrderStatus, remains: Option<i64>) -> Change {
        Change {
            status: Some(status),
            remains,
            approve: Money::ZERO,
        }
    }

    #[test]
    fn partial_refunds_the_undelivered_share_floored() {
        let plan = plan(
            &book(OrderStatus::InProgress, None),
            to(OrderStatus::Partial, Some(1)),
        )
        .unwrap();
        // 1_000_000 × 1 / 3 = 333_333.33 → 333_333
        assert_eq!(plan.refund_now.micros(), 333_333);
        assert_eq!(plan.book.refunded.micros(), 333_333);
    }

    #[test]
    fn a_flat_partial_is_not_shared_out_but_a_cancel_is_whole() {
        let flat = OrderBook {
            flat: true,
            units: 1,
            ..book(OrderStatus::InProgress, None)
        };
        let partial = plan(&flat, to(OrderStatus::Partial, Some(500))).unwrap();
        assert_eq!(partial.refund_now, Money::ZERO);
        let canceled = plan(&flat, to(OrderStatus::Canceled, None)).unwrap();
        assert_eq!(canceled.refund_now.micros(), 1_000_000);
    }

    #[test]
    fn remains_are_clamped_to_the_order() {
        let over = plan(
            &book(OrderStatus::InProgress, None),
            to(OrderStatus::Partial, Some(-5)),
        )
        .unwrap();
        assert_eq!(over.refund_now.micros(), 0);
        let beyond = plan(
            &book(OrderStatus::InProgress, None),
            to(OrderStatus::Partial, Some(99)),
        )
        .unwrap();
        assert_eq!(beyond.refund_now.micros(), 1_000_000);
    }

    #[test]
    fn partial_then_canceled_refunds_exactly_the_rest() {
        let first = plan(
            &book(OrderStatus::InProgress, None),
            to(OrderStatus::Partial, Some(1)),
        )
        .unwrap();
        let second = plan(&first.book, to(OrderStatus::Canceled, None)).unwrap();
        assert_eq!(
            first.refund_now.micros() + second.refund_now.micros(),
            1_000_000
        );
        assert_eq!(
            plan(&second.book, to(OrderStatus::Canceled, None))
                .unwrap()
                .refund_now
                .micros(),
            0
        );
    }

    #[test]
    fn a_repeated_outcome_refunds_nothing_more() {
        let first = plan(
            &book(OrderStatus::InProgress, None),
            to(OrderStatus::Partial, Some(2)),
        )
        .unwrap();
        let again = plan(&first.book, to(OrderStatus::Partial, Some(2))).unwrap();
        assert_eq!(again.refund_now.micros(), 0);
    }

    #[test]
    fn refunds_are_never_taken_back() {
        let first = plan(
            &book(OrderStatus::InProgress, None),
            to(OrderStatus::Partial, Some(2)),
        )
        .unwrap();
        assert!(matches!(
            plan(&first.book, to(OrderStatus::Completed, None)),
            Err(Refusal::WouldTakeBack { .. })
        ));
        assert!(matches!(
            plan(&first.book, to(OrderStatus::InProgress, None)),
            Err(Refusal::Backwards { .. })
        ));
        let canceled = plan(&first.book, to(OrderStatus::Canceled, None)).unwrap();
        assert!(matches!(
            plan(&canceled.book, to(OrderStatus::Partial, Some(1))),
            Err(Refusal::Final { .. })
        ));
    }

    #[test]
    fn approved_disputes_add_to_delivery_but_never_beyond_the_charge() {
        let approved = plan(
            &book(OrderStatus::Completed, None),
            Change {
                approve: m(400_000),
                ..Change::default()
            },
        )
        .unwrap();
        assert_eq!(approved.refund_now.micros(), 400_000);
        let canceled = plan(&approved.book, to(OrderStatus::Canceled, None)).unwrap();
        assert_eq!(canceled.refund_now.micros(), 600_000);
        assert_eq!(canceled.book.refunded.micros(), 1_000_000);
        assert!(matches!(
            plan(
                &canceled.book,
                Change {
                    approve: m(1),
                    ..Change::default()
                }
            ),
            Err(Refusal::TooMuch {
                refundable: Money::ZERO
            })
        ));
    }
}
