//! Refund-rate alerts, their per-subject thresholds, and the job lease that lets one
//! process evaluate them per interval.

use chrono::NaiveDateTime;
use diesel::dsl;
use diesel::prelude::*;

use super::schema::{alert_rules, alerts};
use super::{now, DbConnection, WriteConn};
use crate::domain::alert::{Alert, AlertLevel, AlertMeasure, AlertScope, AlertWindow};
use crate::domain::ids::AlertId;
use crate::domain::money::Money;

#[derive(Queryable)]
struct AlertRow {
    id: AlertId,
    scope: String,
    subject_id: i64,
    window_name: String,
    measure: String,
    level: String,
    active: bool,
    rate_ppm: i64,
    threshold_ppm: i64,
    orders: i64,
    refunded_orders: i64,
    charged_micros: Money,
    refunded_micros: Money,
    _pauses_orders: bool,
    raised_at: NaiveDateTime,
    escalated_at: Option<NaiveDateTime>,
    cleared_at: Option<NaiveDateTime>,
    updated_at: NaiveDateTime,
}

fn undecodable(e: crate::domain::UnknownName) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(Box::new(e))
}

fn decode(row: AlertRow) -> QueryResult<Alert> {
    Ok(Alert {
        id: row.id,
        scope: AlertScope::try_from(row.scope).map_err(undecodable)?,
        subject_id: row.subject_id,
        window: AlertWindow::try_from(row.window_name).map_err(undecodable)?,
        measure: AlertMeasure::try_from(row.measure).map_err(undecodable)?,
        level: AlertLevel::try_from(row.level).map_err(undecodable)?,
        active: row.active,
        rate_ppm: row.rate_ppm,
        threshold_ppm: row.threshold_ppm,
        orders: row.orders,
        refunded_orders: row.refunded_orders,
        charged: row.charged_micros,
        refunded: row.refunded_micros,
        raised_at: row.raised_at,
        escalated_at: row.escalated_at,
        cleared_at: row.cleared_at,
        updated_at: row.updated_at,
    })
}

fn decode_all(rows: Vec<AlertRow>) -> QueryResult<Vec<Alert>> {
    rows.into_iter().map(decode).collect()
}

/// Every active alert.
pub fn active(conn: &mut DbConnection) -> QueryResult<Vec<Alert>> {
    decode_all(
        alerts::table
            .filter(alerts::active.eq(true))
            .order(alerts::id.asc())
            .load(conn)?,
    )
}

/// The numbers an evaluation saw for one (subject, window, measure).
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    pub scope: AlertScope,
    pub subject_id: i64,
    pub window: AlertWindow,
    pub measure: AlertMeasure,
    pub rate_ppm: i64,
    pub threshold_ppm: i64,
    pub orders: i64,
    pub refunded_orders: i64,
    pub charged: Money,
    pub refunded: Money,
}

pub fn raise(
    conn: &mut WriteConn<'_>,
    r: &Reading,
    level: AlertLevel,
    pauses: bool,
) -> QueryResult<Alert> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let row = diesel::insert_into(alerts::table)
        .values((
            alerts::scope.eq(r.scope.as_str()),
            alerts::subject_id.eq(r.subject_id),
            alerts::window_name.eq(r.window.as_str()),
            alerts::measure.eq(r.measure.as_str()),
            alerts::level.eq(level.as_str()),
            alerts::active.eq(true),
            alerts::rate_ppm.eq(r.rate_ppm),
            alerts::threshold_ppm.eq(r.threshold_ppm),
            alerts::orders.eq(r.orders),
            alerts::refunded_orders.eq(r.refunded_orders),
            alerts::charged_micros.eq(r.charged.micros()),
            alerts::refunded_micros.eq(r.refunded.micros()),
            alerts::pauses_orders.eq(pauses && level == AlertLevel::Critical),
            alerts::raised_at.eq(at),
            alerts::escalated_at.eq((level == AlertLevel::Critical).then_some(at)),
            alerts::updated_at.eq(at),
        ))
        .get_result::<AlertRow>(conn)?;
    decode(row)
}

pub fn escalate(
    conn: &mut WriteConn<'_>,
    id: AlertId,
    r: &Reading,
    pauses: bool,
) -> QueryResult<Alert> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let row = diesel::update(alerts::table.find(id))
        .set((
            alerts::level.eq(AlertLevel::Critical.as_str()),
            alerts::rate_ppm.eq(r.rate_ppm),
            alerts::threshold_ppm.eq(r.threshold_ppm),
            alerts::orders.eq(r.orders),
            alerts::refunded_orders.eq(r.refunded_orders),
            alerts::charged_micros.eq(r.charged.micros()),
            alerts::refunded_micros.eq(r.refunded.micros()),
            alerts::pauses_orders.eq(pauses),
            alerts::escalated_at.eq(Some(at)),
            alerts::updated_at.eq(at),
        ))
        .get_result::<AlertRow>(conn)?;
    decode(row)
}

pub fn clear(conn: &mut WriteConn<'_>, id: AlertId, r: &Reading) -> QueryResult<Alert> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let row = diesel::update(alerts::table.find(id))
        .set((
            alerts::active.eq(false),
            alerts::rate_ppm.eq(r.rate_ppm),
            alerts::threshold_ppm.eq(r.threshold_ppm),
            alerts::orders.eq(r.orders),
            alerts::refunded_orders.eq(r.refunded_orders),
            alerts::charged_micros.eq(r.charged.micros()),
            alerts::refunded_micros.eq(r.refunded.micros()),
            alerts::pauses_orders.eq(false),
            alerts::cleared_at.eq(Some(at)),
            alerts::updated_at.eq(at),
        ))
        .get_result::<AlertRow>(conn)?;
    decode(row)
}

/// Alerts newest first, optionally only active ones, older than `starting_after`.
pub fn list(
    conn: &mut DbConnection,
    only_active: bool,
    starting_after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Alert>> {
    let mut query = alerts::table.into_boxed();
    if only_active {
        query = query.filter(alerts::active.eq(true));
    }
    if let Some(after) = starting_after {
        query = query.filter(alerts::id.lt(after));
    }
    decode_all(query.order(alerts::id.desc()).limit(limit).load(conn)?)
}

/// A subject's own thresholds (each `None` falls back to the global flag).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Queryable)]
pub struct Rule {
    pub warning_ppm: Option<i64>,
    pub critical_ppm: Option<i64>,
    pub min_orders: Option<i64>,
}

type RuleRow = (String, i64, Option<i64>, Option<i64>, Option<i64>);

pub fn rules(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64, Rule)>> {
    let rows: Vec<RuleRow> = alert_rules::table
        .select((
            alert_rules::scope,
            alert_rules::subject_id,
            alert_rules::warning_rate_ppm,
            alert_rules::critical_rate_ppm,
            alert_rules::min_orders,
        ))
        .order((alert_rules::scope, alert_rules::subject_id))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(scope, id, w, c, m)| {
            (
                scope,
                id,
                Rule {
                    warning_ppm: w,
                    critical_ppm: c,
                    min_orders: m,
                },
            )
        })
        .collect())
}

/// Sets (or, with every field `None`, removes) a subject's thresholds.
pub fn set_rule(
    conn: &mut WriteConn<'_>,
    scope: AlertScope,
    subject_id: i64,
    rule: Rule,
) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    diesel::delete(
        alert_rules::table
            .filter(alert_rules::scope.eq(scope.as_str()))
            .filter(alert_rules::subject_id.eq(subject_id)),
    )
    .execute(conn)?;
    if rule == Rule::default() {
        return Ok(());
    }
    diesel::insert_into(alert_rules::table)
        .values((
            alert_rules::scope.eq(scope.as_str()),
            alert_rules::subject_id.eq(subject_id),
            alert_rules::warning_rate_ppm.eq(rule.warning_ppm),
            alert_rules::critical_rate_ppm.eq(rule.critical_ppm),
            alert_rules::min_orders.eq(rule.min_orders),
            alert_rules::updated_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

type ActivePausing = dsl::Filter<
    dsl::Filter<
        dsl::Filter<alerts::table, dsl::Eq<alerts::active, bool>>,
        dsl::Eq<alerts::pauses_orders, bool>,
    >,
    dsl::NotEq<alerts::measure, &'static str>,
>;
type ForService = dsl::And<
    dsl::Eq<alerts::scope, &'static str>,
    dsl::Eq<alerts::subject_id, super::schema::services::id>,
>;
type ForProvider = dsl::And<
    dsl::Eq<alerts::scope, &'static str>,
    dsl::Eq<dsl::Nullable<alerts::subject_id>, super::schema::services::provider_id>,
>;
/// The type of [`pauses_service`].
pub(super) type PausesService =
    dsl::exists<dsl::Filter<ActivePausing, dsl::Or<ForService, ForProvider>>>;

/// Whether an active alert pauses new orders to the service of the enclosing query or to
/// its provider: a correlated subquery on `services.id` and `services.provider_id`, so a
/// service is read with its pause in one statement (`services::find_shared_for_order`).
pub(super) fn pauses_service() -> PausesService {
    use super::schema::services;
    diesel::dsl::exists(
        alerts::table
            .filter(alerts::active.eq(true))
            .filter(alerts::pauses_orders.eq(true))
            // An `unrecovered` alert pauses forwarding, not new orders.
            .filter(alerts::measure.ne(AlertMeasure::Unrecovered.as_str()))
            .filter(
                alerts::scope
                    .eq(AlertScope::Service.as_str())
                    .and(alerts::subject_id.eq(services::id))
                    .or(alerts::scope
                        .eq(AlertScope::Provider.as_str())
                        .and(alerts::subject_id.nullable().eq(services::provider_id))),
            ),
    )
}

/// Whether an active critical `unrecovered` alert stops forwarding to the provider
/// (raised with `--alert-pause-forwarding`): its orders wait queued, as under a balance
/// below its minimum.
pub fn pauses_forwarding(
    conn: &mut DbConnection,
    provider_id: crate::domain::ids::ProviderId,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        alerts::table
            .filter(alerts::active.eq(true))
            .filter(alerts::pauses_orders.eq(true))
            .filter(alerts::measure.eq(AlertMeasure::Unrecovered.as_str()))
            .filter(alerts::scope.eq(AlertScope::Provider.as_str()))
            .filter(alerts::subject_id.eq(provider_id.get())),
    ))
    .get_result(conn)
}
