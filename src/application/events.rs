//! The event log as a transactional outbox: each function here appends one event and is
//! called inside the write transaction of the change it describes, so an event exists if
//! and only if its change committed (a rolled-back transaction, a conflict retried, a
//! kill -9 before commit: no event). Each event's `data` carries the resources as the
//! API returns them (`resources`), as they were when the change committed.
//!
//! The webhook worker (`webhooks::worker`) later queues one delivery per matching
//! endpoint and sends them; nothing here talks to the network.

use serde_json::{json, Value};

use crate::db::refills::Refill;
use crate::db::{self, WriteConn};
use crate::domain::account::Account;
use crate::domain::alert::Alert;
use crate::domain::event::{Event, EventType};
use crate::domain::ids::{AccountId, EndpointId, ProviderId};
use crate::domain::ledger::TopUp;
use crate::domain::money::{Money, SignedMoney};
use crate::domain::order::{Order, OrderStatus};
use crate::domain::refill::RefillStatus;
use crate::domain::refund::Refund;
use crate::domain::subscription::{Subscription, SubscriptionStatus};
use crate::resources::{
    AccountResponse, AlertResponse, Amount, OrderResponse, RefillResponse, RefundResponse,
    SubscriptionResponse, TopUpResponse,
};

type Result<T> = std::result::Result<T, diesel::result::Error>;

fn record(
    conn: &mut WriteConn<'_>,
    event_type: EventType,
    account_id: Option<AccountId>,
    data: Value,
) -> Result<Event> {
    db::events::insert(conn, event_type, account_id, data)
}

/// `subscription.created`: `{"subscription", "held"}` (the amount taken from the available
/// balance into the held one).
pub fn subscription_created(conn: &mut WriteConn<'_>, sub: &Subscription) -> Result<()> {
    let data = json!({
        "subscription": SubscriptionResponse::new(sub, Vec::new()),
        "held": Amount::of(sub.hold),
    });
    record(
        conn,
        EventType::SubscriptionCreated,
        Some(sub.account_id),
        data,
    )
    .map(drop)
}

/// `subscription.child_created`: `{"subscription", "order", "captured"}` (the part of the
/// child's charge paid from the hold; the rest, if any, from the available balance).
pub fn subscription_child_created(
    conn: &mut WriteConn<'_>,
    sub: &Subscription,
    order: &Order,
    captured: Money,
) -> Result<()> {
    let data = json!({
        "subscription": SubscriptionResponse::new(sub, Vec::new()),
        "order": order_json(order),
        "captured": Amount::of(captured),
    });
    record(
        conn,
        EventType::SubscriptionChildCreated,
        Some(sub.account_id),
        data,
    )
    .map(drop)
}

/// `subscription.status_changed`: `{"subscription", "from", "to", "released"}` (returned
/// to the available balance by this change).
pub fn subscription_status_changed(
    conn: &mut WriteConn<'_>,
    from: SubscriptionStatus,
    sub: &Subscription,
    released: Money,
) -> Result<()> {
    if from == sub.status {
        return Ok(());
    }
    let data = json!({
        "subscription": SubscriptionResponse::new(sub, Vec::new()),
        "from": from,
        "to": sub.status,
        "released": Amount::of(released),
    });
    record(
        conn,
        EventType::SubscriptionStatusChanged,
        Some(sub.account_id),
        data,
    )
    .map(drop)
}

fn order_json(order: &Order) -> Value {
    json!(OrderResponse::from(order.clone()))
}

/// `order.created`: `{"order"}`.
pub fn order_created(conn: &mut WriteConn<'_>, order: &Order) -> Result<()> {
    let data = json!({ "order": order_json(order) });
    record(conn, EventType::OrderCreated, Some(order.account_id), data).map(drop)
}

/// `order.status_changed`: `{"order", "from", "to", "remains"}`, when the status moved.
pub fn order_status_changed(
    conn: &mut WriteConn<'_>,
    from: OrderStatus,
    order: &Order,
) -> Result<()> {
    if from == order.status {
        return Ok(());
    }
    let data = json!({
        "order": order_json(order),
        "from": from,
        "to": order.status,
        "remains": order.remains,
    });
    record(
        conn,
        EventType::OrderStatusChanged,
        Some(order.account_id),
        data,
    )
    .map(drop)
}

/// `refund.*` and `top_up_refund.*`: `{"refund", "order", "balance_after"}` (the order
/// and balance null where the event has none).
pub fn refund(
    conn: &mut WriteConn<'_>,
    event_type: EventType,
    refund: &Refund,
    order: Option<&Order>,
    balance_after: Option<SignedMoney>,
) -> Result<()> {
    let data = json!({
        "refund": RefundResponse::from(refund.clone()),
        "order": order.map(order_json),
        "balance_after": balance_after.map(Amount::of),
    });
    record(conn, event_type, Some(refund.account_id), data).map(drop)
}

/// `top_up.succeeded`: `{"top_up", "balance_after"}`.
pub fn top_up_succeeded(
    conn: &mut WriteConn<'_>,
    top_up: &TopUp,
    balance_after: SignedMoney,
) -> Result<()> {
    let data = json!({
        "top_up": TopUpResponse::from(top_up.clone()),
        "balance_after": Amount::of(balance_after),
    });
    record(
        conn,
        EventType::TopUpSucceeded,
        Some(top_up.account_id),
        data,
    )
    .map(drop)
}

/// `top_up_refund.succeeded` / `.failed`: `{"refund", "top_up", "balance_after"}`.
pub fn top_up_refund(
    conn: &mut WriteConn<'_>,
    event_type: EventType,
    refund: &Refund,
    top_up: Option<&TopUp>,
    balance_after: Option<SignedMoney>,
) -> Result<()> {
    let data = json!({
        "refund": RefundResponse::from(refund.clone()),
        "top_up": top_up.map(|t| TopUpResponse::from(t.clone())),
        "balance_after": balance_after.map(Amount::of),
    });
    record(conn, event_type, Some(refund.account_id), data).map(drop)
}

/// `chargeback.created`: `{"refund", "top_up", "account"}`, as the chargeback reply.
pub fn chargeback(
    conn: &mut WriteConn<'_>,
    refund: &Refund,
    top_up: &TopUp,
    account: &Account,
) -> Result<()> {
    let data = json!({
        "refund": RefundResponse::from(refund.clone()),
        "top_up": TopUpResponse::from(top_up.clone()),
        "account": AccountResponse::from(account.clone()),
    });
    record(conn, EventType::ChargebackCreated, Some(account.id), data).map(drop)
}

/// `account.suspended` / `account.reactivated`: `{"account"}`.
pub fn account(conn: &mut WriteConn<'_>, event_type: EventType, account: &Account) -> Result<()> {
    let data = json!({ "account": AccountResponse::from(account.clone()) });
    record(conn, event_type, Some(account.id), data).map(drop)
}

/// `refill.created`: `{"refill", "order_id"}`.
pub fn refill_created(conn: &mut WriteConn<'_>, refill: &Refill) -> Result<()> {
    let data = json!({ "refill": RefillResponse::from(refill.clone()) });
    record(
        conn,
        EventType::RefillCreated,
        Some(refill.account_id),
        data,
    )
    .map(drop)
}

/// `refill.status_changed`: `{"refill", "from", "to"}`, when the status moved.
pub fn refill_status_changed(
    conn: &mut WriteConn<'_>,
    from: RefillStatus,
    refill: &Refill,
) -> Result<()> {
    if from == refill.status {
        return Ok(());
    }
    let data = json!({
        "refill": RefillResponse::from(refill.clone()),
        "from": from,
        "to": refill.status,
    });
    record(
        conn,
        EventType::RefillStatusChanged,
        Some(refill.account_id),
        data,
    )
    .map(drop)
}

/// `alert.*`: `{"alert"}`, an operator event (no account).
pub fn alert(conn: &mut WriteConn<'_>, event_type: EventType, alert: &Alert) -> Result<()> {
    let data = json!({ "alert": AlertResponse::from(alert.clone()) });
    record(conn, event_type, None, data).map(drop)
}

/// `provider.currency_mismatch`: `{"provider_id", "currency", "reported_currency"}`, an
/// operator event: a status reply named another currency than the provider's configured
/// one (its `charge` was not used as cost).
pub fn provider_currency_mismatch(
    conn: &mut WriteConn<'_>,
    provider_id: ProviderId,
    currency: &str,
    reported: &str,
) -> Result<()> {
    let data = json!({
        "provider_id": provider_id,
        "currency": currency,
        "reported_currency": reported,
    });
    record(conn, EventType::ProviderCurrencyMismatch, None, data).map(drop)
}

/// `ping`: `{"endpoint_id"}`, the test event of one endpoint.
pub fn ping(
    conn: &mut WriteConn<'_>,
    account_id: AccountId,
    endpoint_id: EndpointId,
) -> Result<Event> {
    record(
        conn,
        EventType::Ping,
        Some(account_id),
        json!({ "endpoint_id": endpoint_id }),
    )
}
