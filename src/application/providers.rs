//! Upstream providers: changing their settings, and reconciling an order whose send got
//! no certain answer.

use super::audit::{self, Target};
use crate::db::provider_orders::{self, ProviderOrder};
use crate::db::providers::{self, ProviderFields};
use crate::db::{self, costs, orders, DbConnection};
use crate::domain::audit::{Actor, AuditAction, AuditChange, AuditTarget};
use crate::domain::ids::{OrderId, ProviderId};
use crate::domain::money::ExchangeRate;
use crate::domain::provider::Provider;
use crate::error::{ApiError, ErrorCode};

/// The currency and exchange rate `fields` give a provider, against the panel's: a
/// provider in another currency needs a rate; one in the panel's has none (a rate given
/// for it is not kept).
fn settle_currency(
    conn: &mut DbConnection,
    fields: &ProviderFields,
    current: Option<&Provider>,
) -> Result<(String, Option<ExchangeRate>), ApiError> {
    let panel = costs::panel_currency(conn)?;
    let currency = fields
        .currency
        .clone()
        .or_else(|| current.map(|p| p.currency.clone()))
        .unwrap_or_else(|| panel.clone());
    if currency == panel {
        return Ok((currency, None));
    }
    match fields.exchange_rate {
        Some(rate) => Ok((currency, Some(rate))),
        None => Err(ApiError::invalid(
            "exchange_rate",
            format!(
                "is required: the provider bills in {currency} and the panel prices in \
                 {panel} (panel units per one provider unit, e.g. \"1.1\")"
            ),
        )),
    }
}

/// Registers a provider; its currency is the panel's unless given.
pub fn create_provider(
    conn: &mut DbConnection,
    by: &Actor,
    fields: &ProviderFields,
) -> Result<Provider, ApiError> {
    db::write_tx(conn, |conn| {
        let (currency, rate) = settle_currency(conn, fields, None)?;
        let fields = ProviderFields {
            currency: Some(currency.clone()),
            exchange_rate: rate,
            ..fields.clone()
        };
        let provider = providers::insert(conn, &fields)?;
        providers::set_exchange_rate(conn, provider.id, &currency, rate, by.account_id)?;
        let provider =
            providers::find(conn, provider.id)?.ok_or_else(|| ApiError::not_found("provider"))?;
        let change =
            AuditChange::new(None, Some(audit::provider(&provider))).with_secret("api_key");
        let target = Target::new(AuditTarget::Provider, provider.id.get(), None);
        audit::record(conn, by, AuditAction::ProviderCreate, target, &change)?;
        Ok(provider)
    })
}

/// Changes a provider in one transaction: `merge` turns the current provider into the
/// checked new fields, so a concurrent change is never half overwritten. A new currency or
/// exchange rate is stamped and kept in the provider's history. `sets_key`: the change
/// gives the provider's API key (named in the audit entry, never recorded).
pub fn update_provider(
    conn: &mut DbConnection,
    by: &Actor,
    sets_key: bool,
    id: ProviderId,
    merge: impl Fn(Provider) -> Result<ProviderFields, ApiError> + Sync,
) -> Result<Provider, ApiError> {
    db::write_tx(conn, |conn| {
        let current = providers::find(conn, id)?.ok_or_else(|| ApiError::not_found("provider"))?;
        let before = audit::provider(&current);
        let fields = merge(current.clone())?;
        let (currency, rate) = settle_currency(conn, &fields, Some(&current))?;
        providers::update(conn, id, &fields)?.ok_or_else(|| ApiError::not_found("provider"))?;
        if currency != current.currency || rate != current.exchange_rate {
            providers::set_exchange_rate(conn, id, &currency, rate, by.account_id)?;
        }
        if currency != current.currency {
            providers::clear_currency_mismatch(conn, id)?;
        }
        let provider = providers::find(conn, id)?.ok_or_else(|| ApiError::not_found("provider"))?;
        let mut change = audit::changed(before, audit::provider(&provider));
        if sets_key {
            change = change.with_secret("api_key");
        }
        let target = Target::new(AuditTarget::Provider, id.get(), None);
        audit::record(conn, by, AuditAction::ProviderUpdate, target, &change)?;
        Ok(provider)
    })
}

/// Reconciles an ambiguous or failed send under the order's lock, so it cannot race the
/// order's own outcome: attaches the provider's order id, or (`None`) queues a new send.
pub fn reconcile_forwarding(
    conn: &mut DbConnection,
    by: &Actor,
    order_id: OrderId,
    provider_order_id: Option<&str>,
) -> Result<ProviderOrder, ApiError> {
    db::write_tx(conn, |conn| {
        let order =
            orders::lock(conn, order_id, None)?.ok_or_else(|| ApiError::not_found("order"))?;
        let before = provider_orders::find(conn, order_id)?
            .ok_or_else(|| ApiError::not_found("provider-backed order"))?;
        if order.status.is_terminal() {
            return Err(ApiError::Refused {
                code: ErrorCode::OrderFinal,
                detail: format!("the order is {}; nothing is left to send", order.status),
            });
        }
        if !provider_orders::reconcile(conn, order_id, provider_order_id)? {
            return Err(ApiError::Refused {
                code: ErrorCode::NotAmbiguous,
                detail: "only an order whose send is ambiguous or failed can be reconciled".into(),
            });
        }
        let after = provider_orders::find(conn, order_id)?
            .ok_or_else(|| ApiError::not_found("provider-backed order"))?;
        if provider_order_id.is_some() {
            // Attached: the provider took it, so its expected cost is recorded as for any
            // acceptance (a resend records it when the provider accepts).
            if let Some(provider) = providers::find(conn, after.provider_id)? {
                super::costs::record_send(conn, &provider, &order)?;
            }
        }
        let action = match provider_order_id {
            Some(_) => AuditAction::ForwardingAttach,
            None => AuditAction::ForwardingResend,
        };
        let change = audit::changed(forwarding(&before), forwarding(&after));
        let target = Target::new(AuditTarget::Order, order_id.get(), Some(order.account_id));
        audit::record(conn, by, action, target, &change)?;
        Ok(after)
    })
}

/// The fields of an order's forwarding an operator's reconciliation changes.
fn forwarding(row: &ProviderOrder) -> serde_json::Value {
    serde_json::json!({
        "state": row.state,
        "provider_order_id": row.provider_order_id,
    })
}

/// What the start-up check of providers made before the private-network opt-in found.
#[derive(Debug, Default)]
pub struct NetworkCheck {
    /// Providers on a private address: opted in, so nothing that worked stops.
    pub opted_in: Vec<ProviderId>,
    /// Providers on public addresses: held to the rule from now on.
    pub public: Vec<ProviderId>,
    /// Providers whose host did not resolve: checked again at the next start, and called
    /// as before until then.
    pub unresolved: Vec<ProviderId>,
}

/// Settles the private-network opt-in of providers that existed before it: a provider whose
/// URL is or resolves to a private address is opted in, one on public addresses is not.
/// DNS is asked with no database connection held; an operator's change made meanwhile wins.
pub fn settle_private_network(pool: &db::DbPool) -> Result<NetworkCheck, String> {
    let unchecked = {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        providers::unchecked_network(&mut conn).map_err(|e| e.to_string())?
    };
    let mut check = NetworkCheck::default();
    let mut found = Vec::new();
    for (id, url) in unchecked {
        match crate::net::reaches_private(&url) {
            Some(private) => found.push((id, private)),
            None => check.unresolved.push(id),
        }
    }
    if found.is_empty() {
        return Ok(check);
    }
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    db::write_tx(&mut conn, |conn| {
        for (id, private) in &found {
            providers::settle_network(conn, *id, *private)?;
        }
        Ok::<_, ApiError>(())
    })
    .map_err(|e| e.to_string())?;
    for (id, private) in found {
        if private {
            check.opted_in.push(id);
        } else {
            check.public.push(id);
        }
    }
    Ok(check)
}
