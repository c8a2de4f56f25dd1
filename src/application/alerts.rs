//! Refund-rate alerts: the early warning on a service or provider whose refunds jump.
//!
//! Every evaluation reads, for each rolling window (1 h, 24 h, 7 d), the same sums the
//! refund report grouped by service and by provider shows (`db::reports::sums`: orders
//! placed in the window and their succeeded refunds, through the report indexes, so the
//! cost grows with the window, never with the whole history). Each (subject, window,
//! measure) then moves by `domain::alert::transition`: raised at the warning rate,
//! escalated at the critical rate, cleared only below the lower clearing threshold. Every
//! move is written with its `alert.*` event in one transaction.

use std::collections::{HashMap, HashSet};

use chrono::{Offset, Utc};

use crate::db::alerts::{self as store, Reading, Rule};
use crate::db::reports::{self, ReportScope};
use crate::db::{self, DbConnection};
use crate::domain::alert::{
    transition, Alert, AlertLevel, AlertMeasure, AlertScope, AlertWindow, Thresholds, Transition,
    PPM,
};
use crate::domain::cost::MoneyMetrics;
use crate::domain::event::EventType;
use crate::domain::ids::{AlertId, ProviderId, ServiceId};
use crate::domain::money::Money;
use crate::domain::report::{summarize, Metrics, ReportGroup, Window};

/// True when this process takes this interval's evaluation.
pub fn take_turn(
    conn: &mut DbConnection,
    owner: &str,
    every: chrono::Duration,
) -> Result<bool, diesel::result::Error> {
    db::write_tx(conn, |conn| {
        db::jobs::take_turn(conn, "alerts", owner, every)
    })
}

fn ppm(part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        return 0;
    }
    ((part as i128 * PPM as i128) / whole as i128) as i64
}

fn effective(global: &Thresholds, rule: Option<&Rule>) -> Thresholds {
    let Some(rule) = rule else { return *global };
    Thresholds {
        warning_ppm: rule.warning_ppm.unwrap_or(global.warning_ppm),
        critical_ppm: rule.critical_ppm.unwrap_or(global.critical_ppm),
        min_orders: rule.min_orders.unwrap_or(global.min_orders),
        clear_ratio_ppm: global.clear_ratio_ppm,
    }
}

/// The sums of one window by service and by provider: subject → (orders, refunded
/// orders, charged, refunded).
fn window_sums(
    conn: &mut DbConnection,
    window: AlertWindow,
) -> Result<Vec<(AlertScope, i64, Metrics)>, diesel::result::Error> {
    let to = db::now();
    let range = Window {
        from: to - window.length(),
        to,
        offset: Utc.fix(),
    };
    let mut out = Vec::new();
    for (scope, group) in [
        (AlertScope::Service, ReportGroup::Service),
        (AlertScope::Provider, ReportGroup::Provider),
    ] {
        let (orders, refunds) = reports::sums(conn, group, &range, ReportScope::All)?;
        for row in summarize(group, orders, refunds).rows {
            let Ok(subject) = row.key.parse::<i64>() else {
                continue; // orders of services with no provider
            };
            out.push((scope, subject, row.metrics));
        }
    }
    Ok(out)
}

/// The settings of providers' `unrecovered` alerts.
#[derive(Debug, Clone, Copy)]
pub struct Recovery {
    pub thresholds: Thresholds,
    /// A critical one stops forwarding to the provider (`db::alerts::pauses_forwarding`).
    pub pause_forwarding: bool,
}

/// Each provider's refund recovery in one window (orders by order date, as the provider
/// money report sums them): provider → sums.
fn recovery_sums(
    conn: &mut DbConnection,
    window: AlertWindow,
) -> Result<Vec<(i64, MoneyMetrics)>, diesel::result::Error> {
    let to = db::now();
    let mut by_provider: std::collections::BTreeMap<i64, MoneyMetrics> = Default::default();
    for order in crate::db::costs::recovering_orders(conn, to - window.length(), to)? {
        by_provider
            .entry(order.provider_id)
            .or_default()
            .add(&order);
    }
    Ok(by_provider
        .into_iter()
        .filter(|(_, sums)| sums.recovery_cases > 0)
        .collect())
}

/// One evaluation of every alert; returns how many alerts moved.
pub fn evaluate(
    conn: &mut DbConnection,
    global: &Thresholds,
    pause_orders: bool,
    recovery: &Recovery,
) -> Result<usize, diesel::result::Error> {
    let rules: HashMap<(String, i64), Rule> = store::rules(conn)?
        .into_iter()
        .map(|(scope, id, rule)| ((scope, id), rule))
        .collect();
    let open = store::active(conn)?;
    let mut readings = Vec::new();
    for window in AlertWindow::ALL.iter().copied() {
        let mut seen = HashSet::new();
        for (scope, subject_id, sums) in window_sums(conn, window)? {
            let (orders, refunded_orders) = (sums.orders, sums.refunded_orders);
            seen.insert((scope, subject_id));
            let t = effective(global, rules.get(&(scope.as_str().to_string(), subject_id)));
            for (measure, rate_ppm) in [
                (AlertMeasure::Amount, sums.refunded.ppm_of(sums.charged)),
                (AlertMeasure::Count, ppm(refunded_orders, orders)),
            ] {
                readings.push((
                    Reading {
                        scope,
                        subject_id,
                        window,
                        measure,
                        rate_ppm,
                        threshold_ppm: t.warning_ppm,
                        orders,
                        refunded_orders,
                        charged: sums.charged,
                        refunded: sums.refunded,
                    },
                    t,
                ));
            }
        }
        let mut recovering = HashSet::new();
        for (provider_id, sums) in recovery_sums(conn, window)? {
            recovering.insert(provider_id);
            readings.push((
                Reading {
                    scope: AlertScope::Provider,
                    subject_id: provider_id,
                    window,
                    measure: AlertMeasure::Unrecovered,
                    rate_ppm: sums.unrecovered.ppm_of(sums.expected_credits),
                    threshold_ppm: recovery.thresholds.warning_ppm,
                    // Refunds to recover, and those unrecovered; what should have come
                    // back, and what did not.
                    orders: sums.recovery_cases,
                    refunded_orders: sums.unrecovered_cases,
                    charged: sums.expected_credits,
                    refunded: sums.unrecovered,
                },
                recovery.thresholds,
            ));
        }
        // A subject with an active alert and no orders left in the window reads as empty.
        for alert in open.iter().filter(|a| a.window == window) {
            let unrecovered = alert.measure == AlertMeasure::Unrecovered;
            if unrecovered && !recovering.contains(&alert.subject_id) {
                readings.push((
                    Reading {
                        scope: alert.scope,
                        subject_id: alert.subject_id,
                        window,
                        measure: alert.measure,
                        rate_ppm: 0,
                        threshold_ppm: recovery.thresholds.warning_ppm,
                        orders: 0,
                        refunded_orders: 0,
                        charged: Money::ZERO,
                        refunded: Money::ZERO,
                    },
                    recovery.thresholds,
                ));
            }
            if !unrecovered && !seen.contains(&(alert.scope, alert.subject_id)) {
                let t = effective(
                    global,
                    rules.get(&(alert.scope.as_str().to_string(), alert.subject_id)),
                );
                readings.push((
                    Reading {
                        scope: alert.scope,
                        subject_id: alert.subject_id,
                        window,
                        measure: alert.measure,
                        rate_ppm: 0,
                        threshold_ppm: t.warning_ppm,
                        orders: 0,
                        refunded_orders: 0,
                        charged: Money::ZERO,
                        refunded: Money::ZERO,
                    },
                    t,
                ));
            }
        }
    }
    db::write_tx(conn, |conn| {
        let active: HashMap<(AlertScope, i64, AlertWindow, AlertMeasure), Alert> =
            store::active(conn)?
                .into_iter()
                .map(|a| ((a.scope, a.subject_id, a.window, a.measure), a))
                .collect();
        let mut moved = 0;
        for (reading, t) in &readings {
            let key = (
                reading.scope,
                reading.subject_id,
                reading.window,
                reading.measure,
            );
            let current = active.get(&key);
            let mut r = *reading;
            // An `unrecovered` alert pauses forwarding, the others new orders.
            let pauses = if r.measure == AlertMeasure::Unrecovered {
                recovery.pause_forwarding
            } else {
                pause_orders
            };
            let (event_type, alert) =
                match transition(current.map(|a| a.level), r.rate_ppm, r.orders, t) {
                    Transition::Stay => continue,
                    Transition::Raise(level) => {
                        if level == AlertLevel::Critical {
                            r.threshold_ppm = t.critical_ppm;
                        }
                        (
                            EventType::AlertRaised,
                            store::raise(conn, &r, level, pauses)?,
                        )
                    }
                    Transition::Escalate => {
                        r.threshold_ppm = t.critical_ppm;
                        let id = current.map_or(AlertId(0), |a| a.id);
                        (
                            EventType::AlertEscalated,
                            store::escalate(conn, id, &r, pauses)?,
                        )
                    }
                    Transition::Clear => {
                        r.threshold_ppm = t.clear_below_ppm();
                        let id = current.map_or(AlertId(0), |a| a.id);
                        (EventType::AlertCleared, store::clear(conn, id, &r)?)
                    }
                };
            super::events::alert(conn, event_type, &alert)?;
            moved += 1;
        }
        Ok::<_, diesel::result::Error>(moved)
    })
}

/// Sets one service's or provider's thresholds (`None` falls back to the global flag;
/// all `None` removes the rule).
pub fn set_rule(
    conn: &mut DbConnection,
    by: &crate::domain::audit::Actor,
    scope: AlertScope,
    subject_id: i64,
    rule: Rule,
) -> Result<(), crate::error::ApiError> {
    if let (Some(w), Some(c)) = (rule.warning_ppm, rule.critical_ppm) {
        if c < w {
            return Err(crate::error::ApiError::invalid(
                "critical_rate",
                "must be at least the warning rate",
            ));
        }
    }
    db::write_tx(conn, |conn| {
        let exists = match scope {
            AlertScope::Service => db::services::find(conn, ServiceId(subject_id))?.is_some(),
            AlertScope::Provider => db::providers::find(conn, ProviderId(subject_id))?.is_some(),
        };
        if !exists {
            return Err(crate::error::ApiError::not_found(scope.as_str()));
        }
        let before = store::rules(conn)?
            .into_iter()
            .find(|(s, id, _)| s == scope.as_str() && *id == subject_id)
            .map(|(_, _, rule)| rule)
            .unwrap_or_default();
        store::set_rule(conn, scope, subject_id, rule)?;
        use crate::domain::audit::{AuditAction, AuditTarget};
        let fields = |rule: Rule| {
            serde_json::json!({
                "warning_rate_ppm": rule.warning_ppm,
                "critical_rate_ppm": rule.critical_ppm,
                "min_orders": rule.min_orders,
            })
        };
        let change = super::audit::changed(fields(before), fields(rule));
        let kind = match scope {
            AlertScope::Service => AuditTarget::Service,
            AlertScope::Provider => AuditTarget::Provider,
        };
        let target = super::audit::Target::new(kind, subject_id, None);
        super::audit::record(conn, by, AuditAction::AlertRuleSet, target, &change)?;
        Ok(())
    })
}
