//! The catalog: adding and changing services, and disabling one, which refunds every
//! order still in flight.

use crate::application::audit::{self, Target};
use crate::application::refunds::{settle_within, SettleError, Trigger};
use crate::db::services::ServiceFields;
use crate::db::{self, orders, provider_orders, providers, services, DbConnection, WriteConn};
use crate::domain::audit::{Actor, AuditAction, AuditChange, AuditTarget};
use crate::domain::ids::{AccountId, OrderId, ServiceId};
use crate::domain::money::Money;
use crate::domain::order::{Order, OrderStatus};
use crate::domain::refund::{self, Change, RefundReason, RefundSource};
use crate::domain::service::{check_min_charge, Service, ServiceStatus};
use crate::error::ApiError;

/// Services still taking orders whose smallest order rounds to a charge of zero (made
/// before such services were refused): every such order is refused, so an operator must
/// raise their `min` or rate, or set the rate to 0 to make them free. Read at start.
pub fn priced_below_a_micro_unit(conn: &mut DbConnection) -> Result<Vec<Service>, ApiError> {
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let page = services::page(conn, after, 1000)?;
        let Some(last) = page.last() else {
            return Ok(found);
        };
        after = Some(last.id.0);
        found.extend(page.into_iter().filter(|s| {
            s.status == ServiceStatus::Active
                && !s.kind.is_flat()
                && check_min_charge(s.rate, s.min_quantity).is_err()
        }));
    }
}

/// Adds a service; it may only point at a provider that exists, checked in the same
/// transaction.
pub fn create_service(
    conn: &mut DbConnection,
    by: &Actor,
    fields: ServiceFields,
) -> Result<Service, ApiError> {
    db::write_tx(conn, |conn| {
        check_provider(conn, &fields)?;
        let service = services::insert(conn, &fields)?;
        let change = AuditChange::new(None, Some(audit::service(&service)));
        let target = Target::new(AuditTarget::Service, service.id.get(), None);
        audit::record(conn, by, AuditAction::ServiceCreate, target, &change)?;
        Ok(service)
    })
}

/// Changes a service in one transaction: `merge` turns the current service into the
/// checked new fields, so a concurrent change is never half overwritten.
pub fn update_service(
    conn: &mut DbConnection,
    by: &Actor,
    id: ServiceId,
    merge: impl Fn(Service) -> Result<ServiceFields, ApiError> + Sync,
) -> Result<Service, ApiError> {
    db::write_tx(conn, |conn| {
        let current = services::find(conn, id)?.ok_or_else(|| ApiError::not_found("service"))?;
        let before = audit::service(&current);
        let fields = merge(current)?;
        check_provider(conn, &fields)?;
        let service =
            services::update(conn, id, &fields)?.ok_or_else(|| ApiError::not_found("service"))?;
        let change = audit::changed(before, audit::service(&service));
        let target = Target::new(AuditTarget::Service, id.get(), None);
        audit::record(conn, by, AuditAction::ServiceUpdate, target, &change)?;
        Ok(service)
    })
}

/// A service may only point at a provider that exists.
fn check_provider(conn: &mut DbConnection, fields: &ServiceFields) -> Result<(), ApiError> {
    if let Some((provider_id, _)) = &fields.provider {
        if providers::find(conn, *provider_id)?.is_none() {
            return Err(ApiError::invalid("provider_id", "no such provider"));
        }
    }
    Ok(())
}

/// A disabled service and what disabling it refunded.
#[derive(Debug)]
pub struct Disabled {
    pub service: Service,
    /// Orders still in flight that this call ended (0 when called again).
    pub orders_in_flight: i64,
    /// Orders refunded by this call (0 when called again).
    pub orders_refunded: i64,
    pub amount_refunded: Money,
}

/// Orders refunded per transaction when a service is disabled: each batch is atomic and
/// short, so disabling a service with tens of thousands of open orders never holds one
/// lock for long.
const DISABLE_BATCH: i64 = 500;

/// Disables a service, ends its open subscriptions (each hold's rest released) and refunds
/// every order still in flight under the refund rule, one short transaction per batch;
/// safe to call again, a second call refunds nothing.
pub fn disable_service(
    conn: &mut DbConnection,
    by: Option<&Actor>,
    decided_by: Option<AccountId>,
    id: ServiceId,
) -> Result<Disabled, ApiError> {
    // The dry run's numbers, read in its own snapshot just before (not inside the write
    // transaction, which stays short): what the batches below are about to refund. A
    // refusal there is met again by the batches, as without it.
    let preview = match by {
        Some(_) => preview_disable(conn, id).ok(),
        None => None,
    };
    let service = db::write_tx(conn, |conn| {
        let before = services::find(conn, id)?.ok_or_else(|| ApiError::not_found("service"))?;
        let service = services::set_status(conn, id, ServiceStatus::Disabled)?
            .ok_or_else(|| ApiError::not_found("service"))?;
        if before.status != ServiceStatus::Disabled {
            let mut change = audit::changed(audit::service(&before), audit::service(&service));
            if let Some(serde_json::Value::Object(after)) = change.after.as_mut() {
                let numbers = preview.as_ref().map(|preview| {
                    serde_json::json!({
                        "orders_in_flight": preview.orders_in_flight,
                        "orders_refunded": preview.orders_refunded,
                        "amount_refunded": crate::resources::Amount::of(preview.amount_refunded),
                    })
                });
                after.insert("dry_run".into(), numbers.unwrap_or(serde_json::Value::Null));
            }
            let target = Target::new(AuditTarget::Service, id.get(), None);
            audit::record_if(conn, by, AuditAction::ServiceDisable, target, &change)?;
        }
        Ok::<_, ApiError>(service)
    })?;
    // Its open subscriptions end, their holds released, before its orders in flight
    // (their children among them) are refunded below.
    super::subscriptions::end_for_service(conn, id).map_err(|e| match e {
        super::subscriptions::SubscriptionError::Database(e) => e,
        other => ApiError::internal(other.to_string()),
    })?;
    let mut disabled = Disabled {
        service,
        orders_in_flight: 0,
        orders_refunded: 0,
        amount_refunded: Money::ZERO,
    };
    let mut after = 0;
    loop {
        let ids = orders::open_for_service(conn, id, after, DISABLE_BATCH)?;
        let Some(&last) = ids.last() else {
            return Ok(disabled);
        };
        let (ended, count, amount) =
            db::write_tx(conn, |conn| refund_batch(conn, decided_by, &ids))?;
        disabled.orders_in_flight += ended;
        disabled.orders_refunded += count;
        disabled.amount_refunded = disabled.amount_refunded.saturating_add(amount);
        after = last.get();
    }
}

/// One batch of [`disable_service`]: the orders it ended, and how many it refunded for
/// what amount.
fn refund_batch(
    conn: &mut WriteConn<'_>,
    decided_by: Option<AccountId>,
    ids: &[OrderId],
) -> Result<(i64, i64, Money), ApiError> {
    // Lock the whole batch first, in id order, then credit accounts in account order:
    // every writer takes order rows before account rows, so concurrent outcomes and
    // other batches cannot deadlock with this one.
    let mut planned = Vec::with_capacity(ids.len());
    for &order_id in ids {
        if let Some((account_id, change)) = disabled_outcome(conn, order_id)? {
            planned.push((account_id, order_id, change));
        }
    }
    planned.sort_unstable_by_key(|&(account_id, order_id, _)| (account_id, order_id));
    let ended = planned.len() as i64;
    let (mut count, mut amount) = (0i64, Money::ZERO);
    for (account_id, order_id, change) in planned {
        // An order still waiting to be sent upstream never will be now; one the provider
        // has is asked to stop, so it does not deliver what is refunded here.
        if !provider_orders::withdraw(conn, order_id)? {
            super::cancels::request_on_disable(conn, account_id, order_id)?;
        }
        let mut trigger = Trigger::new(change, RefundReason::ServiceDisabled, RefundSource::Admin);
        trigger.only_if_open = true;
        trigger.decided_by = decided_by;
        let settled = settle_within(conn, order_id, trigger)?;
        if let Some(refund) = settled.refund {
            count += 1;
            amount = amount.saturating_add(refund.amount);
        }
    }
    Ok((ended, count, amount))
}

/// Locks an order and says how it ends because its service is disabled: partial when
/// progress is known, canceled (refunded in full) otherwise; `None` once it has ended.
fn disabled_outcome(
    conn: &mut DbConnection,
    order_id: OrderId,
) -> Result<Option<(AccountId, Change)>, ApiError> {
    let Some(order) = orders::lock(conn, order_id, None)? else {
        return Ok(None);
    };
    Ok(disabled_change(&order).map(|change| (order.account_id, change)))
}

/// How an order ends because its service is disabled: partial when progress is known,
/// canceled (refunded in full) otherwise; `None` once it has ended.
fn disabled_change(order: &Order) -> Option<Change> {
    if order.status.is_terminal() {
        return None;
    }
    let units = order.book().units;
    Some(match order.remains {
        Some(remains) if order.status == OrderStatus::InProgress && remains < units => Change {
            status: Some(OrderStatus::Partial),
            remains: Some(remains),
            approve: Money::ZERO,
        },
        _ => Change {
            status: Some(OrderStatus::Canceled),
            ..Change::default()
        },
    })
}

/// What disabling a service would do now, changing nothing.
#[derive(Debug)]
pub struct DisablePreview {
    pub service: Service,
    /// Orders still in flight, which disabling ends.
    pub orders_in_flight: i64,
    /// Of those, the orders a refund would be credited to.
    pub orders_refunded: i64,
    pub amount_refunded: Money,
}

/// The dry run of [`disable_service`]: the same outcome for each order in flight and the
/// same refund rule, read in one snapshot, with nothing locked or written. Orders that
/// move between the preview and the real call are refunded by what they are then.
pub fn preview_disable(conn: &mut DbConnection, id: ServiceId) -> Result<DisablePreview, ApiError> {
    let preview = db::snapshot_tx(conn, |conn| {
        let Some(service) = services::find(conn, id)? else {
            return Ok(Err(SettleError::NotFound));
        };
        let mut preview = DisablePreview {
            service,
            orders_in_flight: 0,
            orders_refunded: 0,
            amount_refunded: Money::ZERO,
        };
        let mut after = 0;
        loop {
            let ids = orders::open_for_service(conn, id, after, DISABLE_BATCH)?;
            let Some(&last) = ids.last() else {
                return Ok(Ok(preview));
            };
            for order in orders::find_many(conn, &ids)? {
                let Some(change) = disabled_change(&order) else {
                    continue;
                };
                preview.orders_in_flight += 1;
                // A refusal here is the one the real call would meet: it fails the same way.
                let plan = match refund::plan(&order.book(), change) {
                    Ok(plan) => plan,
                    Err(refusal) => return Ok(Err(SettleError::Refused(refusal))),
                };
                if !plan.refund_now.is_zero() {
                    preview.orders_refunded += 1;
                    preview.amount_refunded =
                        preview.amount_refunded.saturating_add(plan.refund_now);
                }
            }
            after = last.get();
        }
    })?;
    preview.map_err(|error| match error {
        SettleError::NotFound => ApiError::not_found("service"),
        other => other.into(),
    })
}
