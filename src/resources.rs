//! The resources as the API returns them: an order, a refund, an account, a top-up.
//!
//! Handlers render them, and the event log stores them: an event carries the resource as
//! it was when its change committed (`application::events`), so the two can never differ.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::refills::Refill;
use crate::domain::account::{Account, AccountStatus, Role};
use crate::domain::alert::{Alert, AlertLevel, AlertMeasure, AlertScope, AlertWindow};
use crate::domain::ids::{
    AccountId, AlertId, OrderId, RefillId, RefundId, ServiceId, SubscriptionId, TopUpId,
};
use crate::domain::ledger::{TopUp, TopUpStatus};
use crate::domain::money::SignedMoney;
use crate::domain::order::{Order, OrderStatus};
use crate::domain::order_fields::OrderFields;
use crate::domain::refill::RefillStatus;
use crate::domain::refund::{PolicyNote, Refund, RefundReason, RefundSource, RefundStatus};
use crate::domain::service::ServiceType;
use crate::domain::subscription::{Subscription, SubscriptionStatus};

/// A money amount on the wire: a decimal string, at most 6 fractional digits.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(value_type = String, pattern = r"^-?[0-9]+(\.[0-9]{1,6})?$", example = "12.5")]
pub struct Amount(pub String);

impl Amount {
    /// A [`Money`](crate::domain::money::Money) or a [`SignedMoney`], as its decimal string.
    pub fn of(amount: impl Into<SignedMoney>) -> Amount {
        Amount(amount.into().to_string())
    }
}

/// Stored times are UTC; on the wire they are RFC 3339.
pub fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    at.and_utc()
}

/// An order placed through the panel API v2: `{"order": 23501}` (stored under an `add`'s
/// idempotency key and replayed as it is).
#[derive(Serialize)]
pub struct PanelOrderPlaced {
    pub order: OrderId,
}

#[derive(Serialize, ToSchema)]
pub struct OrderResponse {
    #[schema(value_type = i64)]
    pub id: OrderId,
    #[schema(value_type = i64)]
    pub service_id: ServiceId,
    pub link: String,
    pub quantity: i64,
    /// Drip-feed runs; null for ordinary orders.
    pub runs: Option<i64>,
    /// Minutes between drip-feed runs; null for ordinary orders.
    pub interval: Option<i64>,
    /// The service's type when the order was placed (drip-feed is `runs` and `interval`
    /// on a `default` order).
    pub service_type: ServiceType,
    /// The type's fields the order was placed with, as stored: lists as arrays of lines
    /// (trimmed, blank lines dropped), `@` and `#` stripped. Absent when the type has none.
    #[serde(flatten)]
    pub fields: OrderFields,
    pub charge: Amount,
    pub status: OrderStatus,
    /// The counter at the link when delivery started; null until known.
    pub start_count: Option<i64>,
    /// Units not delivered, over all runs of a drip-feed order: 0 once completed, the
    /// total (quantity × runs) once canceled; otherwise as last reported (negative for
    /// over-delivery), null until known.
    pub remains: Option<i64>,
    /// Total refunded to the balance so far.
    pub refunded: Amount,
    /// The most that could still be refunded.
    pub refundable: Amount,
    pub external_ref: Option<String>,
    /// The subscription this order serves a post of; absent for an ordinary order.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub subscription_id: Option<SubscriptionId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Order> for OrderResponse {
    fn from(order: Order) -> OrderResponse {
        OrderResponse {
            id: order.id,
            service_id: order.service_id,
            refundable: Amount::of(order.refundable()),
            remains: order.remains_known(),
            link: order.link,
            quantity: order.quantity,
            runs: order.runs,
            interval: order.interval,
            service_type: order.kind,
            fields: order.fields,
            charge: Amount::of(order.charge),
            status: order.status,
            start_count: order.start_count,
            refunded: Amount::of(order.refunded),
            external_ref: order.external_ref,
            subscription_id: order.subscription_id,
            created_at: utc(order.created_at),
            updated_at: utc(order.updated_at),
        }
    }
}

/// A subscription: for `username`, every new post gets a child order of `min` to `max`
/// units, for `posts` posts (and `old_posts`), `delay` minutes after the post, until
/// `expiry`. Its money: `held` when created, `captured` by its children, `released` when
/// it ended; `hold_left` is still held.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionResponse {
    /// From the same sequence as orders' ids: no order has it.
    #[schema(value_type = i64)]
    pub id: SubscriptionId,
    /// The account it holds money of.
    #[schema(value_type = i64)]
    pub account_id: AccountId,
    #[schema(value_type = i64)]
    pub service_id: ServiceId,
    pub username: String,
    pub min: i64,
    pub max: i64,
    pub posts: i64,
    pub old_posts: i64,
    /// Minutes after a post.
    pub delay: i64,
    /// The last date it runs before (`YYYY-MM-DD`; it expires as that date begins, UTC);
    /// null for none.
    pub expiry: Option<chrono::NaiveDate>,
    pub status: SubscriptionStatus,
    /// Posts served so far (child orders).
    pub posts_served: i64,
    /// The charge of one child of `max` units, the most a post can cost.
    pub post_charge: Amount,
    /// Taken from the available balance when it was created: (posts + old_posts) ×
    /// post_charge.
    pub held: Amount,
    /// Paid from the hold by its children.
    pub captured: Amount,
    /// Returned to the available balance when it ended.
    pub released: Amount,
    /// Still held.
    pub hold_left: Amount,
    /// Why it ended, when it has; while open, a cancel waiting for the provider's
    /// confirmation or the provider's words refusing it.
    pub status_reason: Option<String>,
    /// Its child orders' ids, oldest first (in a list of subscriptions: empty).
    #[schema(value_type = Vec<i64>)]
    pub orders: Vec<OrderId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl SubscriptionResponse {
    pub fn new(sub: &Subscription, orders: Vec<OrderId>) -> SubscriptionResponse {
        SubscriptionResponse {
            id: sub.id,
            account_id: sub.account_id,
            service_id: sub.service_id,
            username: sub.username.clone(),
            min: sub.min,
            max: sub.max,
            posts: sub.posts,
            old_posts: sub.old_posts,
            delay: sub.delay,
            expiry: sub.expiry_date(),
            status: sub.status,
            posts_served: sub.posts_served,
            post_charge: Amount::of(sub.post_charge),
            held: Amount::of(sub.hold),
            captured: Amount::of(sub.captured),
            released: Amount::of(sub.released),
            hold_left: Amount::of(sub.hold_left()),
            status_reason: sub.status_reason.clone(),
            orders,
            created_at: utc(sub.created_at),
            updated_at: utc(sub.updated_at),
            ended_at: sub.ended_at.map(utc),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RefundResponse {
    #[schema(value_type = i64)]
    pub id: RefundId,
    #[schema(value_type = i64)]
    pub account_id: AccountId,
    /// The order refunded; null for top-up refunds and chargebacks.
    #[schema(value_type = Option<i64>)]
    pub order_id: Option<OrderId>,
    /// The top-up refunded; null for order refunds.
    #[schema(value_type = Option<i64>)]
    pub top_up_id: Option<TopUpId>,
    /// Credited (or, for a top-up refund, returned to the payment method). For a dispute
    /// awaiting review: the amount asked.
    pub amount: Amount,
    pub reason: RefundReason,
    pub status: RefundStatus,
    pub source: RefundSource,
    pub note: Option<String>,
    pub decision_reason: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// For refund requests: the refund-abuse policy's decision and the numbers behind it.
    pub policy: Option<PolicyNote>,
}

impl From<Refund> for RefundResponse {
    fn from(refund: Refund) -> RefundResponse {
        RefundResponse {
            id: refund.id,
            account_id: refund.account_id,
            order_id: refund.order_id,
            top_up_id: refund.top_up_id,
            amount: Amount::of(refund.amount),
            reason: refund.reason,
            status: refund.status,
            source: refund.source,
            note: refund.note,
            decision_reason: refund.decision_reason,
            decided_at: refund.decided_at.map(utc),
            created_at: utc(refund.created_at),
            policy: refund.policy,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AccountResponse {
    #[schema(value_type = i64)]
    pub id: AccountId,
    pub name: String,
    pub role: Role,
    /// Available to spend; may be negative only after a chargeback.
    pub balance: Amount,
    /// Held for subscriptions: not spendable, released to `balance` when they end.
    pub held: Amount,
    #[schema(example = "USD")]
    pub currency: String,
    pub status: AccountStatus,
    pub created_at: DateTime<Utc>,
}

impl From<Account> for AccountResponse {
    fn from(account: Account) -> AccountResponse {
        AccountResponse {
            id: account.id,
            name: account.name,
            role: account.role,
            balance: Amount::of(account.balance),
            held: Amount::of(account.held),
            currency: account.currency,
            status: account.status,
            created_at: utc(account.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TopUpResponse {
    #[schema(value_type = i64)]
    pub id: TopUpId,
    #[schema(value_type = i64)]
    pub account_id: AccountId,
    pub amount: Amount,
    /// How much of the top-up went back to the payment method.
    pub refunded: Amount,
    #[schema(example = "stripe")]
    pub gateway: String,
    /// The payment's reference at the gateway; unique.
    pub gateway_ref: String,
    #[schema(value_type = TopUpStatus)]
    pub status: String,
    pub created_at: DateTime<Utc>,
}

impl From<TopUp> for TopUpResponse {
    fn from(top_up: TopUp) -> TopUpResponse {
        TopUpResponse {
            id: top_up.id,
            account_id: top_up.account_id,
            amount: Amount::of(top_up.amount),
            refunded: Amount::of(top_up.refunded),
            gateway: top_up.gateway,
            gateway_ref: top_up.gateway_ref,
            status: top_up.status,
            created_at: utc(top_up.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ChargebackResponse {
    pub refund: RefundResponse,
    pub top_up: TopUpResponse,
    /// The account, suspended until an operator reactivates it.
    pub account: AccountResponse,
}

/// A refund-rate alert: one episode of one service's or provider's rate in one window
/// above its threshold, from `raised_at` until `cleared_at`.
#[derive(Serialize, ToSchema)]
pub struct AlertResponse {
    #[schema(value_type = i64)]
    pub id: AlertId,
    pub scope: AlertScope,
    /// The service's or provider's id.
    pub subject_id: i64,
    pub window: AlertWindow,
    pub measure: AlertMeasure,
    /// The highest level reached; it never drops while the alert is active.
    pub level: AlertLevel,
    /// False once cleared.
    pub active: bool,
    /// The rate at the last change of the alert, a decimal fraction (`"0.25"` is 25 %).
    #[schema(value_type = String, pattern = r"^[0-9]+(\.[0-9]{1,6})?$", example = "0.25")]
    pub rate: String,
    /// The threshold that rate crossed (or, when cleared, fell below).
    #[schema(value_type = String, pattern = r"^[0-9]+(\.[0-9]{1,6})?$", example = "0.2")]
    pub threshold: String,
    /// Orders placed in the window, and how many of them were refunded.
    pub orders: i64,
    pub refunded_orders: i64,
    pub charged: Amount,
    pub refunded: Amount,
    pub raised_at: DateTime<Utc>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub cleared_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A rate kept in millionths, as a decimal fraction string.
pub fn ppm_rate(ppm: i64) -> String {
    rust_decimal::Decimal::new(ppm, 6).normalize().to_string()
}

impl From<Alert> for AlertResponse {
    fn from(alert: Alert) -> AlertResponse {
        AlertResponse {
            id: alert.id,
            scope: alert.scope,
            subject_id: alert.subject_id,
            window: alert.window,
            measure: alert.measure,
            level: alert.level,
            active: alert.active,
            rate: ppm_rate(alert.rate_ppm),
            threshold: ppm_rate(alert.threshold_ppm),
            orders: alert.orders,
            refunded_orders: alert.refunded_orders,
            charged: Amount::of(alert.charged),
            refunded: Amount::of(alert.refunded),
            raised_at: utc(alert.raised_at),
            escalated_at: alert.escalated_at.map(utc),
            cleared_at: alert.cleared_at.map(utc),
            updated_at: utc(alert.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RefillResponse {
    #[schema(value_type = i64)]
    pub id: RefillId,
    #[schema(value_type = i64)]
    pub order_id: OrderId,
    /// `pending`, `in_progress`, `completed`, `rejected` or `error`.
    pub status: RefillStatus,
    /// Why it was rejected or ended in error: the provider's or the operator's words.
    pub reason: Option<String>,
    /// True when the order's provider works it; false when an operator decides it.
    pub upstream: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Refill> for RefillResponse {
    fn from(refill: Refill) -> RefillResponse {
        RefillResponse {
            id: refill.id,
            order_id: refill.order_id,
            status: refill.status,
            reason: refill.note,
            upstream: refill.state.is_some(),
            created_at: utc(refill.created_at),
            updated_at: utc(refill.updated_at.unwrap_or(refill.created_at)),
        }
    }
}
