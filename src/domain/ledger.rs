use chrono::NaiveDateTime;

use super::money::{Money, SignedMoney};
use super::string_enum;
use crate::domain::ids::{AccountId, OrderId, RefundId, SubscriptionId, TopUpId};

string_enum! {
    /// Why a balance changed. Every change is exactly one ledger entry.
    LedgerKind {
        TopUp => "top_up",
        OrderCharge => "order_charge",
        Refund => "refund",
        TopUpRefund => "top_up_refund",
        Chargeback => "chargeback",
        Adjustment => "adjustment",
        SubscriptionHold => "subscription_hold",
        SubscriptionRelease => "subscription_release",
    }
}

#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub id: i64,
    pub account_id: AccountId,
    pub kind: LedgerKind,
    /// The change: negative for a debit.
    pub amount: SignedMoney,
    pub balance_after: SignedMoney,
    pub order_id: Option<OrderId>,
    pub refund_id: Option<RefundId>,
    pub top_up_id: Option<TopUpId>,
    pub created_at: NaiveDateTime,
    /// The change of the held balance (money held for subscriptions): a hold puts money
    /// there from the available balance, a child order's charge is paid from it, a
    /// release returns it. Zero for an entry that moves only the available balance.
    pub held_amount: SignedMoney,
    /// The held balance after this entry, for an entry that moves it (zero otherwise).
    pub held_after: SignedMoney,
    /// The subscription a hold or a release is for.
    pub subscription_id: Option<SubscriptionId>,
}

string_enum! {
    /// Where a top-up stands: `charged_back` once a chargeback was recorded against it.
    TopUpStatus { Succeeded => "succeeded", ChargedBack => "charged_back" }
}

#[derive(Debug, Clone)]
pub struct TopUp {
    pub id: TopUpId,
    pub account_id: AccountId,
    pub amount: Money,
    pub refunded: Money,
    pub gateway: String,
    pub gateway_ref: String,
    pub status: String,
    pub created_at: NaiveDateTime,
}
