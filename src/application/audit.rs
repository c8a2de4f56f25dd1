//! The audit log: one entry per operator (or CLI) write, appended inside the transaction
//! of the change, so an entry exists if and only if its change committed. The entry names
//! its actor, action and target and records the fields before and after; a secret (an API
//! key, a webhook secret, a token-signing key) is named in `secrets`, never shown.

use serde_json::{json, Value};

use crate::db::audit::{self, NewEntry};
use crate::db::WriteConn;
use crate::domain::account::Account;
use crate::domain::audit::{Actor, AuditAction, AuditChange, AuditTarget};
use crate::domain::event::Endpoint;
use crate::domain::ids::AccountId;
use crate::domain::ledger::TopUp;
use crate::domain::order::Order;
use crate::domain::provider::Provider;
use crate::domain::refund::Refund;
use crate::domain::service::Service;
use crate::resources::{
    utc, AccountResponse, Amount, OrderResponse, RefillResponse, RefundResponse, TopUpResponse,
};

/// The object an entry is about, and the account it concerns.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub kind: AuditTarget,
    pub id: Option<i64>,
    pub account_id: Option<AccountId>,
}

impl Target {
    pub fn new(kind: AuditTarget, id: i64, account_id: Option<AccountId>) -> Target {
        Target {
            kind,
            id: Some(id),
            account_id,
        }
    }

    /// An object of which there is one (the master key).
    pub fn only(kind: AuditTarget) -> Target {
        Target {
            kind,
            id: None,
            account_id: None,
        }
    }
}

/// Appends one entry; call inside the write transaction of the change it records.
pub fn record(
    conn: &mut WriteConn<'_>,
    by: &Actor,
    action: AuditAction,
    target: Target,
    change: &AuditChange,
) -> Result<(), diesel::result::Error> {
    audit::insert(
        conn,
        by,
        &NewEntry {
            action,
            target_type: target.kind,
            target_id: target.id,
            account_id: target.account_id,
            change,
        },
    )
}

/// [`record`] when there may be no actor: work the worker does by itself (a scheduled
/// catalog sync) is not an operator's action and leaves no entry.
pub fn record_if(
    conn: &mut WriteConn<'_>,
    by: Option<&Actor>,
    action: AuditAction,
    target: Target,
    change: &AuditChange,
) -> Result<(), diesel::result::Error> {
    match by {
        Some(by) => record(conn, by, action, target, change),
        None => Ok(()),
    }
}

fn to_value(value: impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// An account's fields as the API shows them.
pub fn account(account: &Account) -> Value {
    let mut value = to_value(AccountResponse::from(account.clone()));
    if let Some(fields) = value.as_object_mut() {
        fields.insert(
            "refund_allowlisted_until".into(),
            json!(account.refund_allowlisted_until.map(utc)),
        );
    }
    value
}

pub fn order(order: &Order) -> Value {
    to_value(OrderResponse::from(order.clone()))
}

pub fn refund(refund: &Refund) -> Value {
    to_value(RefundResponse::from(refund.clone()))
}

pub fn refill(refill: &crate::db::refills::Refill) -> Value {
    to_value(RefillResponse::from(refill.clone()))
}

pub fn top_up(top_up: &TopUp) -> Value {
    to_value(TopUpResponse::from(top_up.clone()))
}

/// A service's fields (it holds no secret).
pub fn service(service: &Service) -> Value {
    json!({
        "name": service.name,
        "category": service.category,
        "type": service.kind,
        "rate": Amount::of(service.rate),
        "min": service.min_quantity,
        "max": service.max_quantity,
        "refill": service.refill,
        "refill_days": service.refill_days,
        "cancel": service.cancel,
        "status": service.status,
        "provider_id": service.provider.as_ref().map(|(id, _)| id.get()),
        "provider_service_id": service.provider.as_ref().map(|(_, remote)| remote),
    })
}

/// A provider's settings; its API key is a secret and never part of them.
pub fn provider(provider: &Provider) -> Value {
    json!({
        "name": provider.name,
        "url": provider.url,
        "enabled": provider.enabled,
        "timeout_ms": provider.timeout_ms,
        "batch_size": provider.batch_size,
        "idempotent_add": provider.idempotent_add,
        "min_balance": provider.min_balance.map(Amount::of),
        "markup_percent": provider.markup_percent.to_string(),
        "auto_sync": provider.auto_sync,
        "allow_private_network": provider.allow_private_network,
        "currency": provider.currency,
        "exchange_rate": provider.exchange_rate.map(|rate| rate.to_string()),
        "credit_mode": provider.credit_mode,
    })
}

/// A webhook endpoint's settings; its signing secrets are never part of them.
pub fn endpoint(endpoint: &Endpoint) -> Value {
    json!({
        "account_id": endpoint.account_id,
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "description": endpoint.description,
        "status": endpoint.status,
    })
}

/// Only the fields that differ between `before` and `after` (objects), so an entry shows
/// what changed; both sides `None` when nothing did.
pub fn changed(before: Value, after: Value) -> AuditChange {
    match (before, after) {
        (Value::Object(before), Value::Object(after)) => {
            let keys: Vec<&String> = before
                .keys()
                .chain(after.keys().filter(|k| !before.contains_key(*k)))
                .collect();
            let (mut was, mut is) = (serde_json::Map::new(), serde_json::Map::new());
            for key in keys {
                let (b, a) = (
                    before.get(key).cloned().unwrap_or(Value::Null),
                    after.get(key).cloned().unwrap_or(Value::Null),
                );
                if b != a {
                    was.insert(key.clone(), b);
                    is.insert(key.clone(), a);
                }
            }
            AuditChange::new(Some(Value::Object(was)), Some(Value::Object(is)))
        }
        (before, after) => AuditChange::new(Some(before), Some(after)),
    }
}
