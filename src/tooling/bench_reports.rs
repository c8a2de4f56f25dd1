//! `reseller-api bench-reports`: report latency on whatever data the database holds
//! (see `reseller-api seed`). Not part of `cargo test`: it measures, it does not judge.

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;

use crate::db::reports::{self, ReportScope};
use crate::db::DbConnection;
use crate::domain::report::{summarize, ReportGroup, Window};

/// One measured report shape.
#[derive(Debug)]
pub struct Measurement {
    pub name: String,
    pub rows: usize,
    pub orders: i64,
    pub p50: StdDuration,
    pub p95: StdDuration,
    pub max: StdDuration,
}

fn measure(
    conn: &mut DbConnection,
    name: String,
    group: ReportGroup,
    window: &Window,
    scope: ReportScope,
    iterations: usize,
) -> Result<Measurement, String> {
    let mut times = Vec::with_capacity(iterations);
    let mut shape = (0, 0);
    for _ in 0..iterations.max(1) {
        let started = Instant::now();
        let (orders, refunds) =
            reports::sums(conn, group, window, scope).map_err(|e| e.to_string())?;
        let summary = summarize(group, orders, refunds);
        reports::pending_review_count(conn, scope).map_err(|e| e.to_string())?;
        times.push(started.elapsed());
        shape = (summary.rows.len(), summary.totals.orders);
    }
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok(Measurement {
        name,
        rows: shape.0,
        orders: shape.1,
        p50: at(0.5),
        p95: at(0.95),
        max: at(1.0),
    })
}

/// The provider money report, as `measure` times the refund reports.
fn measure_money(
    conn: &mut DbConnection,
    name: String,
    group: ReportGroup,
    window: &Window,
    iterations: usize,
) -> Result<Measurement, String> {
    let mut times = Vec::with_capacity(iterations.max(1));
    let mut shape = (0, 0);
    for _ in 0..iterations.max(1) {
        let started = Instant::now();
        let (rows, totals) =
            crate::db::rollups::money_sums(conn, group, window, None).map_err(|e| e.to_string())?;
        times.push(started.elapsed());
        shape = (rows.len(), totals.orders);
    }
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok(Measurement {
        name,
        rows: shape.0,
        orders: shape.1,
        p50: at(0.5),
        p95: at(0.95),
        max: at(1.0),
    })
}

/// Measures the report shapes the dashboard asks for over the newest `days` of data,
/// and the same over the oldest `days` (cost must follow the window, not the history).
/// With `explain`, prints each query's plan first.
pub fn run(
    conn: &mut DbConnection,
    days: i64,
    iterations: usize,
    explain: bool,
) -> Result<Vec<Measurement>, String> {
    let (first, last) = reports::order_time_range(conn).map_err(|e| e.to_string())?;
    let (Some(first), Some(last)) = (first, last) else {
        return Err("no orders: run `reseller-api seed` first".into());
    };
    let utc = chrono::Offset::fix(&chrono::Utc);
    // Ends one second past the newest order, so it starts one second later too: exactly
    // `days` long (a 366-day window stays within the reports' limit).
    let newest = Window::new(
        last + Duration::seconds(1) - Duration::days(days),
        last + Duration::seconds(1),
        utc,
    )
    .map_err(|(_, m)| m)?;
    let oldest = Window::new(first, first + Duration::days(days), utc).map_err(|(_, m)| m)?;
    let busiest = reports::busiest_account(conn, &newest).map_err(|e| e.to_string())?;
    if explain {
        for (label, group, scope) in [
            ("admin, by service", ReportGroup::Service, ReportScope::All),
            (
                "reseller, by day",
                ReportGroup::Day,
                ReportScope::Account(busiest),
            ),
        ] {
            println!("== plan: {label}, newest {days} days");
            for line in reports::explain(conn, group, &newest, scope).map_err(|e| e.to_string())? {
                println!("   {line}");
            }
        }
    }
    let mut out = Vec::new();
    let plus0530 = chrono::FixedOffset::east_opt(5 * 3600 + 30 * 60).unwrap_or(utc);
    let plus0545 = chrono::FixedOffset::east_opt(5 * 3600 + 45 * 60).unwrap_or(utc);
    for (window_name, window) in [("newest", &newest), ("oldest", &oldest)] {
        for group in [
            ReportGroup::Service,
            ReportGroup::Provider,
            ReportGroup::Account,
            ReportGroup::Day,
            ReportGroup::Reason,
        ] {
            out.push(measure(
                conn,
                format!("admin    {group:<8} {window_name} {days}d"),
                group,
                window,
                ReportScope::All,
                iterations,
            )?);
        }
        // A day series in +05:30: no UTC day fits in a local day. Read from that zone's
        // local days when it is a report zone (`--report-zones`, as bench/reports.sh
        // lists it), else from quarters, hours and six hours; +05:45, never listed there,
        // shows the second way.
        for (zone, name) in [(plus0530, "day+0530"), (plus0545, "day+0545")] {
            out.push(measure(
                conn,
                format!("admin    {name} {window_name} {days}d"),
                ReportGroup::Day,
                &Window {
                    offset: zone,
                    ..*window
                },
                ReportScope::All,
                iterations,
            )?);
        }
        for group in [ReportGroup::Provider, ReportGroup::Day] {
            out.push(measure_money(
                conn,
                format!("money    {group:<8} {window_name} {days}d"),
                group,
                window,
                iterations,
            )?);
        }
        out.push(measure(
            conn,
            format!("reseller service  {window_name} {days}d"),
            ReportGroup::Service,
            window,
            ReportScope::Account(busiest),
            iterations,
        )?);
        // A reseller's day series: in +05:30, a report zone, one row of that reseller's a
        // local day; in +05:45 (18:15 UTC), not listed, three quarters, five hours, three
        // six-hour spans and a quarter of that reseller's rows (per account alone).
        for (zone, name) in [(plus0530, "day+0530"), (plus0545, "day+0545")] {
            out.push(measure(
                conn,
                format!("reseller {name} {window_name} {days}d"),
                ReportGroup::Day,
                &Window {
                    offset: zone,
                    ..*window
                },
                ReportScope::Account(busiest),
                iterations,
            )?);
        }
    }
    Ok(out)
}
