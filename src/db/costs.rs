//! Provider money: the panel's currency, a synced service's provider rate, and each
//! forwarded order's cost and refund recovery (`order_costs`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{order_costs, panel_settings, service_costs};
use super::{now, DbConnection, WriteConn};
use crate::domain::cost::{OrderCost, Recovery};
use crate::domain::ids::{OrderId, ProviderId, ServiceId};
use crate::domain::money::{ExchangeRate, Money};

fn decoding(error: impl std::error::Error + Send + Sync + 'static) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(Box::new(error))
}

fn rate_of(micros: i64) -> QueryResult<ExchangeRate> {
    ExchangeRate::try_from_micros(micros).map_err(decoding)
}

/// The currency services are priced in (one row, `USD` until an operator changes it).
pub fn panel_currency(conn: &mut DbConnection) -> QueryResult<String> {
    panel_settings::table
        .find(1_i64)
        .select(panel_settings::currency)
        .get_result(conn)
}

pub fn set_panel_currency(conn: &mut WriteConn<'_>, currency: &str) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    diesel::update(panel_settings::table.find(1_i64))
        .set((
            panel_settings::currency.eq(currency),
            panel_settings::updated_at.eq(now()),
        ))
        .execute(conn)
        .map(drop)
}

/// A synced service's provider rate, as the last sync converted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCost {
    pub service_id: ServiceId,
    pub provider_id: ProviderId,
    pub currency: String,
    /// Per 1000, in the provider's currency.
    pub provider_rate: Money,
    pub exchange_rate: ExchangeRate,
    /// `provider_rate` in the panel's currency, before the markup.
    pub converted_rate: Money,
    /// Our rate was at or below `converted_rate` when synced.
    pub at_loss: bool,
    pub synced_at: NaiveDateTime,
}

type ServiceCostRow = (
    ServiceId,
    ProviderId,
    String,
    Money,
    i64,
    Money,
    bool,
    NaiveDateTime,
);

fn service_cost(row: ServiceCostRow) -> QueryResult<ServiceCost> {
    let (service_id, provider_id, currency, provider_rate, rate, converted_rate, at_loss, at) = row;
    Ok(ServiceCost {
        service_id,
        provider_id,
        currency,
        provider_rate,
        exchange_rate: rate_of(rate)?,
        converted_rate,
        at_loss,
        synced_at: at,
    })
}

/// Keeps what a sync read of a service's provider rate.
pub fn upsert_service_cost(conn: &mut WriteConn<'_>, cost: &ServiceCost) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    let values = (
        service_costs::provider_id.eq(cost.provider_id),
        service_costs::currency.eq(&cost.currency),
        service_costs::provider_rate_micros.eq(cost.provider_rate.micros()),
        service_costs::exchange_rate_micros.eq(cost.exchange_rate.micros()),
        service_costs::converted_rate_micros.eq(cost.converted_rate.micros()),
        service_costs::at_loss.eq(cost.at_loss),
        service_costs::synced_at.eq(cost.synced_at),
    );
    let changed = diesel::update(service_costs::table.find(cost.service_id))
        .set(values)
        .execute(conn)?;
    if changed == 0 {
        diesel::insert_into(service_costs::table)
            .values((service_costs::service_id.eq(cost.service_id), values))
            .execute(conn)?;
    }
    Ok(())
}

pub fn find_service_cost(
    conn: &mut DbConnection,
    service_id: ServiceId,
) -> QueryResult<Option<ServiceCost>> {
    service_costs::table
        .find(service_id)
        .select((
            service_costs::service_id,
            service_costs::provider_id,
            service_costs::currency,
            service_costs::provider_rate_micros,
            service_costs::exchange_rate_micros,
            service_costs::converted_rate_micros,
            service_costs::at_loss,
            service_costs::synced_at,
        ))
        .get_result::<ServiceCostRow>(conn)
        .optional()?
        .map(service_cost)
        .transpose()
}

/// What is known of an order's cost when it is sent.
#[derive(Debug, Clone)]
pub struct SendCost {
    pub order_id: OrderId,
    pub provider_id: ProviderId,
    pub service_id: ServiceId,
    pub currency: String,
    pub exchange_rate: ExchangeRate,
    pub expected_cost_provider: Option<Money>,
    pub expected_cost: Option<Money>,
}

/// Records an order's expected cost once the provider took it (a resend keeps the first).
pub fn record_send(conn: &mut WriteConn<'_>, cost: &SendCost) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    let exists = order_costs::table
        .find(cost.order_id)
        .select(order_costs::order_id)
        .get_result::<OrderId>(conn)
        .optional()?
        .is_some();
    if exists {
        return Ok(());
    }
    let at = now();
    diesel::insert_into(order_costs::table)
        .values((
            order_costs::order_id.eq(cost.order_id),
            order_costs::provider_id.eq(cost.provider_id),
            order_costs::service_id.eq(cost.service_id),
            order_costs::currency.eq(&cost.currency),
            order_costs::exchange_rate_micros.eq(cost.exchange_rate.micros()),
            order_costs::expected_cost_provider_micros
                .eq(cost.expected_cost_provider.map(Money::micros)),
            order_costs::expected_cost_micros.eq(cost.expected_cost.map(Money::micros)),
            order_costs::created_at.eq(at),
            order_costs::updated_at.eq(at),
        ))
        .execute(conn)
        .map(drop)
}

type OrderCostRow = (
    String,
    i64,
    Option<Money>,
    Option<Money>,
    Option<Money>,
    Option<Money>,
    Option<Money>,
    Option<Money>,
    Option<NaiveDateTime>,
    Money,
    Option<String>,
    Option<NaiveDateTime>,
    Option<Money>,
);

fn order_cost(row: OrderCostRow) -> QueryResult<OrderCost> {
    let (
        currency,
        rate,
        expected_cost_provider,
        expected_cost,
        first_charge_provider,
        first_charge,
        latest_charge_provider,
        latest_charge,
        charge_reported_at,
        provider_refunded,
        recovery,
        watch_until,
        baseline_charge_provider,
    ) = row;
    Ok(OrderCost {
        currency,
        exchange_rate: rate_of(rate)?,
        expected_cost_provider,
        expected_cost,
        first_charge_provider,
        first_charge,
        latest_charge_provider,
        latest_charge,
        charge_reported_at,
        baseline_charge_provider,
        provider_refunded,
        recovery: recovery
            .map(|r| Recovery::try_from(r).map_err(decoding))
            .transpose()?,
        watch_until,
    })
}

macro_rules! order_cost_columns {
    () => {
        (
            order_costs::currency,
            order_costs::exchange_rate_micros,
            order_costs::expected_cost_provider_micros,
            order_costs::expected_cost_micros,
            order_costs::first_charge_provider_micros,
            order_costs::first_charge_micros,
            order_costs::latest_charge_provider_micros,
            order_costs::latest_charge_micros,
            order_costs::charge_reported_at,
            order_costs::provider_refunded_micros,
            order_costs::recovery,
            order_costs::watch_until,
            order_costs::baseline_charge_provider_micros,
        )
    };
}

pub fn find(conn: &mut DbConnection, order_id: OrderId) -> QueryResult<Option<OrderCost>> {
    order_costs::table
        .find(order_id)
        .select(order_cost_columns!())
        .get_result::<OrderCostRow>(conn)
        .optional()?
        .map(order_cost)
        .transpose()
}

/// Stores the provider's `charge` from a status reply (the first one stays as it was).
pub fn record_charge(
    conn: &mut WriteConn<'_>,
    order_id: OrderId,
    charge_provider: Money,
    charge: Money,
) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    let at = now();
    diesel::update(
        order_costs::table
            .find(order_id)
            .filter(order_costs::first_charge_provider_micros.is_null()),
    )
    .set((
        order_costs::first_charge_provider_micros.eq(Some(charge_provider.micros())),
        order_costs::first_charge_micros.eq(Some(charge.micros())),
    ))
    .execute(conn)?;
    diesel::update(order_costs::table.find(order_id))
        .set((
            order_costs::latest_charge_provider_micros.eq(Some(charge_provider.micros())),
            order_costs::latest_charge_micros.eq(Some(charge.micros())),
            order_costs::charge_reported_at.eq(Some(at)),
            order_costs::updated_at.eq(at),
        ))
        .execute(conn)
        .map(drop)
}

/// Adds a refund we paid because of the provider's status, and starts (or extends) the
/// watch for its credit. `baseline`: the provider's charge before this reply, kept only
/// with the first such refund (later ones are measured from the same point).
pub fn add_provider_refund(
    conn: &mut WriteConn<'_>,
    order_id: OrderId,
    amount: Money,
    baseline: Option<Money>,
    watch_until: NaiveDateTime,
) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    if let Some(baseline) = baseline {
        diesel::update(
            order_costs::table
                .find(order_id)
                .filter(order_costs::provider_refunded_micros.eq(0))
                .filter(order_costs::baseline_charge_provider_micros.is_null()),
        )
        .set(order_costs::baseline_charge_provider_micros.eq(Some(baseline.micros())))
        .execute(conn)?;
    }
    diesel::update(order_costs::table.find(order_id))
        .set((
            order_costs::provider_refunded_micros
                .eq(order_costs::provider_refunded_micros + amount.micros()),
            order_costs::recovery.eq(Some(Recovery::Watching.as_str())),
            order_costs::watch_until.eq(Some(watch_until)),
            order_costs::updated_at.eq(now()),
        ))
        .execute(conn)
        .map(drop)
}

pub fn set_recovery(
    conn: &mut WriteConn<'_>,
    order_id: OrderId,
    recovery: Recovery,
) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    diesel::update(order_costs::table.find(order_id))
        .set((
            order_costs::recovery.eq(Some(recovery.as_str())),
            order_costs::updated_at.eq(now()),
        ))
        .execute(conn)
        .map(drop)
}

/// A watched order the recovery watch claimed: its id, our charge and the provider's id.
#[derive(Debug, Clone)]
pub struct Watched {
    pub order_id: OrderId,
    pub charge: Money,
    pub provider_order_id: Option<String>,
}

/// Claims up to `limit` orders of the provider whose refund recovery is watched and was not
/// looked at since `due_before` (each claim one conditional update of `updated_at`, so of
/// several workers one asks), oldest first.
pub fn claim_watched(
    conn: &mut WriteConn<'_>,
    provider_id: ProviderId,
    due_before: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Watched>> {
    use super::schema::{orders, provider_orders};
    let conn: &mut DbConnection = conn;
    let candidates: Vec<(OrderId, Money, Option<String>)> = order_costs::table
        .inner_join(orders::table.on(orders::id.eq(order_costs::order_id)))
        .left_join(provider_orders::table.on(provider_orders::order_id.eq(order_costs::order_id)))
        .filter(order_costs::provider_id.eq(provider_id))
        .filter(order_costs::recovery.eq(Recovery::Watching.as_str()))
        .filter(order_costs::updated_at.le(due_before))
        .order(order_costs::order_id.asc())
        .limit(limit)
        .select((
            order_costs::order_id,
            orders::charge_micros,
            provider_orders::provider_order_id.nullable(),
        ))
        .load(conn)?;
    let at = now();
    let mut claimed = Vec::with_capacity(candidates.len());
    for (order_id, charge, provider_order_id) in candidates {
        let taken = diesel::update(
            order_costs::table
                .find(order_id)
                .filter(order_costs::recovery.eq(Recovery::Watching.as_str()))
                .filter(order_costs::updated_at.le(due_before)),
        )
        .set(order_costs::updated_at.eq(at))
        .execute(conn)?;
        if taken == 1 {
            claimed.push(Watched {
                order_id,
                charge,
                provider_order_id,
            });
        }
    }
    Ok(claimed)
}

/// Every forwarded order placed in `[from, to)` with its cost (of one provider, or all),
/// for the provider money report: read from the rows themselves.
pub fn costed_orders(
    conn: &mut DbConnection,
    from: NaiveDateTime,
    to: NaiveDateTime,
    provider_id: Option<ProviderId>,
) -> QueryResult<Vec<crate::domain::cost::CostedOrder>> {
    load_costed(conn, from, to, provider_id, false)
}

/// The forwarded orders placed in `[from, to)` whose refund recovery is recorded (we
/// refunded because of the provider's status), for the recovery alerts: only those rows.
pub fn recovering_orders(
    conn: &mut DbConnection,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> QueryResult<Vec<crate::domain::cost::CostedOrder>> {
    load_costed(conn, from, to, None, true)
}

fn load_costed(
    conn: &mut DbConnection,
    from: NaiveDateTime,
    to: NaiveDateTime,
    provider_id: Option<ProviderId>,
    recovering_only: bool,
) -> QueryResult<Vec<crate::domain::cost::CostedOrder>> {
    use super::schema::orders;
    let mut query = order_costs::table
        .inner_join(orders::table.on(orders::id.eq(order_costs::order_id)))
        .filter(orders::created_at.ge(from))
        .filter(orders::created_at.lt(to))
        .into_boxed();
    if let Some(id) = provider_id {
        query = query.filter(order_costs::provider_id.eq(id));
    }
    if recovering_only {
        query = query.filter(order_costs::recovery.is_not_null());
    }
    // Planned for its own window every time: a literal fragment keeps diesel from caching
    // the statement, so PostgreSQL never switches to a generic plan, which (not knowing
    // how short the window is) hashed every `order_costs` row: 150–200 ms at 2M orders
    // for a report's 15-minute edges.
    query = query.filter(diesel::dsl::sql::<diesel::sql_types::Bool>("TRUE"));
    let rows: Vec<(
        NaiveDateTime,
        ServiceId,
        ProviderId,
        Money,
        Money,
        OrderCostRow,
    )> = query
        .order(orders::id.asc())
        .select((
            orders::created_at,
            order_costs::service_id,
            order_costs::provider_id,
            orders::charge_micros,
            orders::refunded_micros,
            order_cost_columns!(),
        ))
        .load(conn)?;
    rows.into_iter()
        .map(
            |(created_at, service_id, provider_id, charge, refunded, row)| {
                Ok(crate::domain::cost::CostedOrder {
                    created_at,
                    service_id: service_id.get(),
                    provider_id: provider_id.get(),
                    charge,
                    refunded,
                    cost: order_cost(row)?,
                })
            },
        )
        .collect()
}
