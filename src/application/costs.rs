//! Provider money: what each forwarded order cost (the expected cost at send time, the
//! provider's reported `charge`), and whether the provider credited back what we refunded
//! because of its Partial or Canceled (`domain::cost`).

use chrono::Duration;

use crate::db::{self, costs, providers, WriteConn};
use crate::domain::cost::{judge_recovery, Recovery};
use crate::domain::ids::OrderId;
use crate::domain::money::{charge_for, Money};
use crate::domain::order::Order;
use crate::domain::provider::{CreditMode, Provider};
use crate::metrics;

type Result<T> = std::result::Result<T, diesel::result::Error>;

/// Records the order's expected cost once `provider` took it: the service's provider rate
/// (as the last sync read it, in the provider's currency) × the order's units (a flat-price
/// type: the rate itself), converted
/// with the provider's exchange rate now. Call inside the transaction that records the
/// acceptance; a provider without a rate to the panel's currency records nothing.
pub fn record_send(conn: &mut WriteConn<'_>, provider: &Provider, order: &Order) -> Result<()> {
    let panel = costs::panel_currency(conn)?;
    let Some(rate) = provider.exchange_rate_to(&panel) else {
        tracing::warn!(
            provider = provider.id.get(),
            order = order.id.get(),
            "the provider has no exchange rate to the panel's currency; the order's cost is not recorded"
        );
        return Ok(());
    };
    let expected_provider = costs::find_service_cost(conn, order.service_id)?
        .filter(|cost| cost.currency == provider.currency && cost.provider_id == provider.id)
        .and_then(|cost| {
            // Priced as the order was: a flat-price type per package, others per 1000.
            if order.kind.is_flat() {
                Some(cost.provider_rate)
            } else {
                charge_for(cost.provider_rate, order.units())
            }
        });
    costs::record_send(
        conn,
        &costs::SendCost {
            order_id: order.id,
            provider_id: provider.id,
            service_id: order.service_id,
            currency: provider.currency.clone(),
            exchange_rate: rate,
            expected_cost_provider: expected_provider,
            expected_cost: expected_provider.map(|cost| rate.convert(cost)),
        },
    )?;
    if let Some(cost) = expected_provider.map(|cost| rate.convert(cost)) {
        metrics::provider_money(provider.id.get(), "provider_cost", cost.micros());
    }
    Ok(())
}

/// What one status reply says of an order's money.
#[derive(Debug, Clone, Default)]
pub struct StatusMoney {
    /// The provider's `charge`, in the reply's currency.
    pub charge: Option<Money>,
    /// The reply's `currency` (`None`: the provider's configured one).
    pub currency: Option<String>,
    /// What the reply made us refund (a Partial or Canceled settled by it).
    pub refunded: Option<Money>,
}

/// Applies a status reply's money to the order's cost, inside the transaction that settled
/// the reply: its `charge` stored (unless the reply names another currency than the
/// provider's: then it is not used, the provider is flagged and an operator event
/// recorded), a refund it caused watched for the provider's credit for `watch`.
pub fn record_status(
    conn: &mut WriteConn<'_>,
    provider: &Provider,
    order: &Order,
    money: &StatusMoney,
    watch: Duration,
) -> Result<()> {
    let mismatch = money
        .currency
        .as_deref()
        .filter(|reported| *reported != provider.currency);
    if let Some(reported) = mismatch {
        // Read again: an earlier order of the same batch may have flagged it already.
        let flagged = providers::find(conn, provider.id)?
            .and_then(|p| p.currency_mismatch)
            .is_some_and(|flagged| flagged == reported);
        providers::record_currency_mismatch(conn, provider.id, reported)?;
        if !flagged {
            tracing::warn!(
                provider = provider.id.get(),
                order = order.id.get(),
                configured = %provider.currency,
                reported = %reported,
                "a status reply names another currency than the provider's; its charge is not used as cost"
            );
            super::events::provider_currency_mismatch(
                conn,
                provider.id,
                &provider.currency,
                reported,
            )?;
        }
    }
    let Some(cost) = costs::find(conn, order.id)? else {
        // Sent before costs were recorded: nothing to compare with.
        return Ok(());
    };
    // A status sync repeats the same charge on every poll: written only when it moved.
    let charge = money
        .charge
        .filter(|_| mismatch.is_none())
        .filter(|charge| cost.latest_charge_provider != Some(*charge));
    if let Some(charge) = charge {
        let converted = cost.exchange_rate.convert(charge);
        costs::record_charge(conn, order.id, charge, converted)?;
    }
    if let Some(refunded) = money.refunded.filter(|r| !r.is_zero()) {
        // `cost` was read before this reply's charge: the charge the refund is measured from.
        let baseline = cost.latest_charge_provider;
        costs::add_provider_refund(conn, order.id, refunded, baseline, db::now() + watch)?;
        metrics::provider_money(provider.id.get(), "refunds_paid", refunded.micros());
    }
    judge(conn, provider, order.id, order.charge, false)
}

/// Moves a watched recovery on: recovered once the provider's charge fell far enough;
/// with `window_checked`, unrecovered once the watch window ended short.
fn judge(
    conn: &mut WriteConn<'_>,
    provider: &Provider,
    order_id: OrderId,
    charge: Money,
    window_checked: bool,
) -> Result<()> {
    let Some(cost) = costs::find(conn, order_id)? else {
        return Ok(());
    };
    if cost.recovery != Some(Recovery::Watching) {
        return Ok(());
    }
    if provider.credit_mode == CreditMode::Balance {
        // Its replies will not show the credit: owed through its balance, not watched.
        return costs::set_recovery(conn, order_id, Recovery::ToBalance);
    }
    let now = db::now();
    let judged = match cost.recovery_figures(charge) {
        Some(figures) => {
            let judged = judge_recovery(&figures, cost.watch_until, now);
            if judged == Recovery::Recovered {
                let credited = figures.credited;
                metrics::provider_money(provider.id.get(), "credits_recovered", credited.micros());
            }
            judged
        }
        // No cost to recover from is known: the window decides.
        None if cost.watch_until.is_none_or(|until| now >= until) => Recovery::Unrecovered,
        None => Recovery::Watching,
    };
    let judged = match judged {
        Recovery::Unrecovered if !window_checked => Recovery::Watching,
        other => other,
    };
    if judged != Recovery::Watching {
        costs::set_recovery(conn, order_id, judged)?;
    }
    Ok(())
}

/// What the recovery watch read of one watched order: its `charge` (if the reply gave one
/// in the provider's currency), then the recovery judged, unrecovered once its window ended.
pub fn record_watch(
    conn: &mut WriteConn<'_>,
    provider: &Provider,
    order_id: OrderId,
    charge: Money,
    reported: Option<&StatusMoney>,
) -> Result<()> {
    if let Some(reported) = reported {
        let same_currency = reported
            .currency
            .as_deref()
            .is_none_or(|c| c == provider.currency);
        if let (true, Some(reported_charge), Some(cost)) =
            (same_currency, reported.charge, costs::find(conn, order_id)?)
        {
            if cost.latest_charge_provider == Some(reported_charge) {
                return judge(conn, provider, order_id, charge, true);
            }
            costs::record_charge(
                conn,
                order_id,
                reported_charge,
                cost.exchange_rate.convert(reported_charge),
            )?;
        }
    }
    judge(conn, provider, order_id, charge, true)
}

/// Changes the panel's currency (`None`: keeps it); returns the currency now set.
pub fn update_panel_currency(
    conn: &mut db::DbConnection,
    by: &crate::domain::audit::Actor,
    currency: Option<&str>,
) -> std::result::Result<String, crate::error::ApiError> {
    use crate::domain::audit::{AuditAction, AuditChange, AuditTarget};
    db::write_tx(conn, |conn| {
        let before = costs::panel_currency(conn)?;
        if let Some(currency) = currency.filter(|c| *c != before) {
            costs::set_panel_currency(conn, currency)?;
            let change = AuditChange::new(
                Some(serde_json::json!({ "currency": before })),
                Some(serde_json::json!({ "currency": currency })),
            );
            super::audit::record(
                conn,
                by,
                AuditAction::PanelSettingsUpdate,
                super::audit::Target::only(AuditTarget::PanelSettings),
                &change,
            )?;
        }
        Ok(costs::panel_currency(conn)?)
    })
}
