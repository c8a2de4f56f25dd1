//! Report rollups: exact sums per 15-minute bucket, so a report reads whole buckets from
//! here and only the raw rows its buckets do not cover (see `docs/reports.md`).
//!
//! - **Buckets** are UTC-aligned quarters of an hour, numbered by `unix_seconds / 900`.
//!   Every zone in use has offsets in whole quarters (+05:30, +05:45 included), so every
//!   local day, week and month edge falls on a bucket edge.
//! - **The change log** (`rollup_changes`): triggers append one row per change that moves a
//!   report's sums (an order placed or changed, a refund made or settled, an order's cost
//!   or recovery), naming the bucket of the order's creation, in the change's own
//!   transaction. Nothing in the order path updates a shared row.
//! - **The fold** ([`fold`]) reads change rows, recomputes each bucket they name from the
//!   rows themselves (delete and insert its rollup rows) and deletes exactly the change rows
//!   it read, in one transaction. A change committed late with a lower id than rows already
//!   folded (PostgreSQL sequences commit out of order) is simply still there: its bucket is
//!   folded again on the next pass.
//! - **Reads** ([`rolled_sums`], [`rolled_money`]) take the buckets inside the window that
//!   have no change row left; the report reads the rest (the window's unaligned edges and
//!   the buckets still to fold) from the rows, in the same snapshot. Hence: in any snapshot,
//!   a bucket without a change row has rollups equal to its rows.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};

use super::backend::Dialect;
use super::reports::ReportScope;
use super::schema::{rollup_changes, rollup_money, rollup_orders, rollup_refunds};
use super::{costs, now, DbConnection, WriteConn};
use crate::domain::cost::{money_row_key, MoneyMetrics};
use crate::domain::ids::ProviderId;
use crate::domain::money::Money;
use crate::domain::refund::RefundStatus;
use crate::domain::report::{OrderSums, RefundSums, ReportGroup, Window};

/// A bucket's length.
pub const BUCKET_SECS: i64 = 900;
/// More runs of raw rows than this in one window (a fresh upgrade, a fold far behind): the
/// whole window is read from the rows instead.
const MAX_RAW_RANGES: usize = 64;

/// The bucket `at` falls in.
pub fn bucket_of(at: NaiveDateTime) -> i64 {
    at.and_utc().timestamp().div_euclid(BUCKET_SECS)
}

/// The start of bucket `bucket`.
pub fn bucket_start(bucket: i64) -> NaiveDateTime {
    DateTime::from_timestamp(bucket.saturating_mul(BUCKET_SECS), 0)
        .unwrap_or(DateTime::UNIX_EPOCH)
        .naive_utc()
}

/// What one fold pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folded {
    pub changes: usize,
    pub buckets: usize,
}

/// Buckets one fold transaction may recompute at most (a week): a range of buckets is
/// recomputed with one statement per rollup table, whatever it holds.
pub const MAX_SPAN: i64 = 7 * 96;
/// While catching up (more than [`CATCH_UP_BUCKETS`] distinct buckets waiting, as after
/// the upgrade or a bulk load), neighbouring changed buckets at most this far apart (a day)
/// are recomputed as one range, the buckets between them included (recomputing a bucket
/// from its rows is idempotent). In steady running only adjacent buckets are joined: a
/// Partial on an order of last month refolds that order's bucket alone, not the weeks
/// between it and today's, so a fold holds the (SQLite) writer only for the buckets that
/// changed.
const MAX_GAP: i64 = 96;
const CATCH_UP_BUCKETS: usize = 256;

/// Folds the oldest change rows: the buckets they name, joined into at most `max_ranges`
/// ranges of at most a week in all, are recomputed from the rows, then exactly the change
/// rows of those buckets that were read are deleted. With `below`, only buckets lower than
/// it (the worker leaves the quarter still open for most passes: see
/// `application::rollups`).
pub fn fold(
    conn: &mut WriteConn<'_>,
    max_ranges: usize,
    below: Option<i64>,
) -> QueryResult<Folded> {
    let buckets: BTreeSet<i64> = {
        let read: &mut DbConnection = conn;
        pending(below)
            .order(rollup_changes::id.asc())
            .limit(20_000)
            .select(rollup_changes::bucket)
            .load::<i64>(read)?
            .into_iter()
            .collect()
    };
    let gap = if buckets.len() > CATCH_UP_BUCKETS {
        MAX_GAP
    } else {
        1
    };
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    let mut span = 0;
    for bucket in buckets {
        let count = ranges.len();
        match ranges.last_mut() {
            Some((_, end)) if bucket - *end < gap && span + bucket + 1 - *end <= MAX_SPAN => {
                span += bucket + 1 - *end;
                *end = bucket + 1;
            }
            _ if count < max_ranges && span < MAX_SPAN => {
                span += 1;
                ranges.push((bucket, bucket + 1));
            }
            _ => {}
        }
    }
    // Every change row of the chosen buckets, read before they are recomputed (a change
    // committed after this read stays logged and is folded again), not only those among
    // the oldest read above: a busy bucket with more change rows than that is recomputed
    // once, not once per batch of them.
    let mut ids: Vec<i64> = Vec::new();
    for &(first, end) in &ranges {
        let read: &mut DbConnection = conn;
        ids.extend(change_ids(read, first, end)?);
    }
    // The keys of the 15-minute rows the fold changes (compared before and after): only
    // their parent rows can differ from their children now.
    let before = quarters(conn, &ranges)?;
    for &(first, end) in &ranges {
        refold_range(conn, first, end)?;
    }
    let touched = Touched::between(before, quarters(conn, &ranges)?);
    refold_parents(conn, &ranges, touched.as_ref())?;
    delete_changes(conn, &ids)?;
    Ok(Folded {
        changes: ids.len(),
        buckets: ranges.iter().map(|(first, end)| end - first).sum::<i64>() as usize,
    })
}

/// The change rows naming a bucket lower than `below` (every one with `None`).
fn pending<'a>(
    below: Option<i64>,
) -> rollup_changes::BoxedQuery<'a, <DbConnection as Connection>::Backend> {
    let query = rollup_changes::table.into_boxed();
    match below {
        Some(below) => query.filter(rollup_changes::bucket.lt(below)),
        None => query,
    }
}

/// The ids of the change rows naming a bucket in `[first, end)`.
fn change_ids(conn: &mut DbConnection, first: i64, end: i64) -> QueryResult<Vec<i64>> {
    rollup_changes::table
        .filter(rollup_changes::bucket.ge(first))
        .filter(rollup_changes::bucket.lt(end))
        .select(rollup_changes::id)
        .load(conn)
}

/// Deletes the change rows `ids` (the ones a fold read before recomputing their buckets).
fn delete_changes(conn: &mut WriteConn<'_>, ids: &[i64]) -> QueryResult<()> {
    let write: &mut DbConnection = conn;
    for chunk in ids.chunks(500) {
        diesel::delete(rollup_changes::table.filter(rollup_changes::id.eq_any(chunk)))
            .execute(write)?;
    }
    Ok(())
}

/// Recomputes every bucket of `[first, end)` (at most a week: a bulk load's history, one
/// week per transaction) and the coarser spans holding them, and deletes the change rows
/// of those buckets that were there before (read first, so a change committed meanwhile
/// stays logged and is folded again). Cheaper than [`fold`] after a bulk load, whose
/// change log names nearly every bucket many times over.
pub fn rebuild_range(conn: &mut WriteConn<'_>, first: i64, end: i64) -> QueryResult<Folded> {
    let end = end.min(first + MAX_SPAN);
    let ids = {
        let read: &mut DbConnection = conn;
        change_ids(read, first, end)?
    };
    refold_range(conn, first, end)?;
    refold_parents(conn, &[(first, end)], None)?;
    delete_changes(conn, &ids)?;
    Ok(Folded {
        changes: ids.len(),
        buckets: usize::try_from(end - first).unwrap_or(0),
    })
}

/// Whether the change log names a bucket lower than `below` (any bucket with `None`): one
/// index probe, read outside the writer, so a pass with nothing to fold takes no write
/// transaction (on SQLite the writer is the orders' too).
pub fn has_changes(conn: &mut DbConnection, below: Option<i64>) -> QueryResult<bool> {
    Ok(pending(below)
        .select(rollup_changes::bucket)
        .order(rollup_changes::bucket.asc())
        .first::<i64>(conn)
        .optional()?
        .is_some())
}

/// The buckets the change log names, lowest and highest (`None`: nothing to fold).
pub fn changed_bounds(conn: &mut DbConnection) -> QueryResult<Option<(i64, i64)>> {
    use diesel::dsl::{max, min};
    let (lo, hi): (Option<i64>, Option<i64>) = rollup_changes::table
        .select((min(rollup_changes::bucket), max(rollup_changes::bucket)))
        .get_result(conn)?;
    Ok(lo.zip(hi))
}

/// A timestamp column's bucket, in SQL.
fn bucket_sql(dialect: Dialect) -> &'static str {
    match dialect {
        // Floor division, as `bucket_of` (SQLite's `/` truncates towards zero, which would
        // put an order of 1969 in the bucket after its own).
        Dialect::Sqlite => {
            "(CAST(strftime('%s', o.created_at) AS INTEGER) / 900 \
             - (CAST(strftime('%s', o.created_at) AS INTEGER) % 900 < 0))"
        }
        Dialect::Postgres => "CAST(FLOOR(EXTRACT(EPOCH FROM o.created_at) / 900) AS BIGINT)",
    }
}

const FOLD_ORDERS: &str = "INSERT INTO rollup_orders \
    (bucket, service_id, account_id, orders, charged_micros, refunded_orders) \
    SELECT {bucket}, o.service_id, o.account_id, COUNT(*), \
    CAST(COALESCE(SUM(o.charge_micros), 0) AS BIGINT), \
    CAST(COALESCE(SUM(CASE WHEN o.refunded_micros > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) \
    FROM orders o WHERE o.created_at >= ? AND o.created_at < ? \
    GROUP BY 1, o.service_id, o.account_id";

const FOLD_REFUNDS: &str = "INSERT INTO rollup_refunds \
    (bucket, service_id, account_id, reason, refunds, refunded_micros, refunded_orders) \
    SELECT {bucket}, o.service_id, o.account_id, r.reason, COUNT(*), \
    CAST(COALESCE(SUM(r.amount_micros), 0) AS BIGINT), COUNT(DISTINCT r.order_id) \
    FROM orders o JOIN refunds r ON r.order_id = o.id AND r.status = '{succeeded}' \
    WHERE o.created_at >= ? AND o.created_at < ? \
    GROUP BY 1, o.service_id, o.account_id, r.reason";

/// The rollup rows of buckets `[first, end)`, as their rows give them now.
fn refold_range(conn: &mut WriteConn<'_>, first: i64, end: i64) -> QueryResult<()> {
    let (start, stop) = (bucket_start(first), bucket_start(end));
    let mut money: BTreeMap<(i64, i64, i64), MoneyMetrics> = BTreeMap::new();
    for order in costs::costed_orders(conn, start, stop, None)? {
        money
            .entry((
                bucket_of(order.created_at),
                order.provider_id,
                order.service_id,
            ))
            .or_default()
            .add(&order);
    }
    let conn: &mut DbConnection = conn;
    let range = |b: rollup_orders::bucket| b.ge(first).and(b.lt(end));
    diesel::delete(rollup_orders::table.filter(range(rollup_orders::bucket))).execute(conn)?;
    diesel::delete(
        rollup_refunds::table.filter(
            rollup_refunds::bucket
                .ge(first)
                .and(rollup_refunds::bucket.lt(end)),
        ),
    )
    .execute(conn)?;
    diesel::delete(
        rollup_money::table.filter(
            rollup_money::bucket
                .ge(first)
                .and(rollup_money::bucket.lt(end)),
        ),
    )
    .execute(conn)?;
    let dialect = Dialect::of(conn);
    for template in [FOLD_ORDERS, FOLD_REFUNDS] {
        let sql = template
            .replace("{bucket}", bucket_sql(dialect))
            .replace("{succeeded}", RefundStatus::Succeeded.as_str());
        diesel::sql_query(dialect.placeholders(&sql))
            .bind::<Timestamp, _>(start)
            .bind::<Timestamp, _>(stop)
            .execute(conn)?;
    }
    for ((bucket, provider_id, service_id), m) in money {
        diesel::insert_into(rollup_money::table)
            .values((
                rollup_money::bucket.eq(bucket),
                rollup_money::provider_id.eq(provider_id),
                rollup_money::service_id.eq(service_id),
                rollup_money::orders.eq(m.orders),
                rollup_money::revenue_micros.eq(m.revenue.micros()),
                rollup_money::provider_cost_micros.eq(m.provider_cost.micros()),
                rollup_money::orders_without_cost.eq(m.orders_without_cost),
                rollup_money::refunds_paid_micros.eq(m.refunds_paid.micros()),
                rollup_money::expected_credits_micros.eq(m.expected_credits.micros()),
                rollup_money::credits_recovered_micros.eq(m.credits_recovered.micros()),
                rollup_money::unrecovered_micros.eq(m.unrecovered.micros()),
                rollup_money::awaiting_credit_micros.eq(m.awaiting_credit.micros()),
                rollup_money::recovery_cases.eq(m.recovery_cases),
                rollup_money::unrecovered_cases.eq(m.unrecovered_cases),
                rollup_money::credited_to_balance_micros.eq(m.credited_to_balance.micros()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// A coarser level: rows of `table` with `span` 15-minute buckets each, the sums of
/// `child`'s rows (`child_span`: the level below in the same table, `None`: the 15-minute
/// table) grouped by `keys`.
#[derive(Clone)]
struct Level {
    table: &'static str,
    span: i64,
    child: &'static str,
    child_span: Option<i64>,
    keys: &'static [&'static str],
    sums: &'static [&'static str],
    /// `Some(p)`: a report zone's local days ([`zone_levels`]): spans of `span` buckets
    /// starting `p` quarters past a UTC midnight, their rows named by `phase = p` in the
    /// level's table instead of `span`.
    phase: Option<i64>,
}

const ORDER_COLUMNS: &[&str] = &["orders", "charged_micros", "refunded_orders"];
const REFUND_COLUMNS: &[&str] = &["refunds", "refunded_micros", "refunded_orders"];
const MONEY_COLUMNS: &[&str] = &[
    "orders",
    "revenue_micros",
    "provider_cost_micros",
    "orders_without_cost",
    "refunds_paid_micros",
    "expected_credits_micros",
    "credits_recovered_micros",
    "unrecovered_micros",
    "awaiting_credit_micros",
    "recovery_cases",
    "unrecovered_cases",
    "credited_to_balance_micros",
];

/// Every coarser level, each after the level it is summed from (the migrations
/// `2026-12-07-002200_coarse_rollups`, `2026-12-08-000100_account_hour_rollups` and
/// `2026-12-08-000200_account_total_hours` fill them in the same order).
const LEVELS: &[Level] = &[
    Level {
        table: "rollup_time_orders",
        span: 1,
        child: "rollup_orders",
        child_span: None,
        keys: &[],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_time_orders",
        span: 4,
        child: "rollup_time_orders",
        child_span: Some(1),
        keys: &[],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_time_orders",
        span: 24,
        child: "rollup_time_orders",
        child_span: Some(4),
        keys: &[],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_time_orders",
        span: 96,
        child: "rollup_time_orders",
        child_span: Some(24),
        keys: &[],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_time_orders",
        span: 672,
        child: "rollup_time_orders",
        child_span: Some(96),
        keys: &[],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_time_refunds",
        span: 1,
        child: "rollup_refunds",
        child_span: None,
        keys: &["reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_time_refunds",
        span: 4,
        child: "rollup_time_refunds",
        child_span: Some(1),
        keys: &["reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_time_refunds",
        span: 24,
        child: "rollup_time_refunds",
        child_span: Some(4),
        keys: &["reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_time_refunds",
        span: 96,
        child: "rollup_time_refunds",
        child_span: Some(24),
        keys: &["reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_time_refunds",
        span: 672,
        child: "rollup_time_refunds",
        child_span: Some(96),
        keys: &["reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_service_orders",
        span: 4,
        child: "rollup_orders",
        child_span: None,
        keys: &["service_id"],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_service_orders",
        span: 96,
        child: "rollup_service_orders",
        child_span: Some(4),
        keys: &["service_id"],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_service_orders",
        span: 672,
        child: "rollup_service_orders",
        child_span: Some(96),
        keys: &["service_id"],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_service_refunds",
        span: 4,
        child: "rollup_refunds",
        child_span: None,
        keys: &["service_id", "reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_service_refunds",
        span: 96,
        child: "rollup_service_refunds",
        child_span: Some(4),
        keys: &["service_id", "reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_service_refunds",
        span: 672,
        child: "rollup_service_refunds",
        child_span: Some(96),
        keys: &["service_id", "reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_service_money",
        span: 4,
        child: "rollup_money",
        child_span: None,
        keys: &["provider_id", "service_id"],
        sums: MONEY_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_service_money",
        span: 96,
        child: "rollup_service_money",
        child_span: Some(4),
        keys: &["provider_id", "service_id"],
        sums: MONEY_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_service_money",
        span: 672,
        child: "rollup_service_money",
        child_span: Some(96),
        keys: &["provider_id", "service_id"],
        sums: MONEY_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_orders",
        span: 4,
        child: "rollup_orders",
        child_span: None,
        keys: &["account_id", "service_id"],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_orders",
        span: 24,
        child: "rollup_account_orders",
        child_span: Some(4),
        keys: &["account_id", "service_id"],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_orders",
        span: 96,
        child: "rollup_account_orders",
        child_span: Some(24),
        keys: &["account_id", "service_id"],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_orders",
        span: 672,
        child: "rollup_account_orders",
        child_span: Some(96),
        keys: &["account_id", "service_id"],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_refunds",
        span: 4,
        child: "rollup_refunds",
        child_span: None,
        keys: &["account_id", "service_id", "reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_refunds",
        span: 24,
        child: "rollup_account_refunds",
        child_span: Some(4),
        keys: &["account_id", "service_id", "reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_refunds",
        span: 96,
        child: "rollup_account_refunds",
        child_span: Some(24),
        keys: &["account_id", "service_id", "reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_refunds",
        span: 672,
        child: "rollup_account_refunds",
        child_span: Some(96),
        keys: &["account_id", "service_id", "reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_totals",
        span: 4,
        child: "rollup_account_orders",
        child_span: Some(4),
        keys: &["account_id"],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_totals",
        span: 24,
        child: "rollup_account_totals",
        child_span: Some(4),
        keys: &["account_id"],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_totals",
        span: 96,
        child: "rollup_account_orders",
        child_span: Some(96),
        keys: &["account_id"],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_totals",
        span: 672,
        child: "rollup_account_totals",
        child_span: Some(96),
        keys: &["account_id"],
        sums: ORDER_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_reasons",
        span: 4,
        child: "rollup_account_refunds",
        child_span: Some(4),
        keys: &["account_id", "reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_reasons",
        span: 24,
        child: "rollup_account_reasons",
        child_span: Some(4),
        keys: &["account_id", "reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_reasons",
        span: 96,
        child: "rollup_account_refunds",
        child_span: Some(96),
        keys: &["account_id", "reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
    Level {
        table: "rollup_account_reasons",
        span: 672,
        child: "rollup_account_reasons",
        child_span: Some(96),
        keys: &["account_id", "reason"],
        sums: REFUND_COLUMNS,
        phase: None,
    },
];

/// The key values (service, account, provider) of the 15-minute rows a fold changed
/// (added, removed or with other sums): it refolds the parent rows of these keys only,
/// since no other key's children changed. A set grown past [`MAX_TOUCHED`] is dropped:
/// that column is not filtered.
#[derive(Debug, Default)]
struct Touched {
    services: Option<BTreeSet<i64>>,
    accounts: Option<BTreeSet<i64>>,
    providers: Option<BTreeSet<i64>>,
}

/// Key values one fold filters its parents by, per column, at most.
const MAX_TOUCHED: usize = 1_000;
/// 15-minute rows a fold compares before and after, at most (catching up on a week of
/// history: the parents are then refolded for every key).
const MAX_COMPARED: usize = 50_000;

/// A 15-minute row: its two key columns and the whole row as text (bucket, keys, sums).
#[derive(QueryableByName, PartialEq, Eq, PartialOrd, Ord)]
struct Quarter {
    #[diesel(sql_type = BigInt)]
    a: i64,
    #[diesel(sql_type = BigInt)]
    b: i64,
    #[diesel(sql_type = Text)]
    fingerprint: String,
}

/// The 15-minute tables, each with its two integer key columns (named as [`Touched`]
/// reads them) and its other columns.
const QUARTER_TABLES: [(&str, [&str; 2], &[&str]); 3] = [
    ("rollup_orders", ["service_id", "account_id"], ORDER_COLUMNS),
    (
        "rollup_refunds",
        ["service_id", "account_id"],
        &["reason", "refunds", "refunded_micros", "refunded_orders"],
    ),
    ("rollup_money", ["provider_id", "service_id"], MONEY_COLUMNS),
];

/// The 15-minute rows of `ranges`, per table (`None`: more than [`MAX_COMPARED`]).
type Quarters = Vec<BTreeSet<Quarter>>;

fn quarters(conn: &mut DbConnection, ranges: &[(i64, i64)]) -> QueryResult<Option<Quarters>> {
    let dialect = Dialect::of(conn);
    let mut out = Vec::new();
    let mut count = 0;
    for (table, [a, b], rest) in QUARTER_TABLES {
        let row: Vec<String> = ["bucket", a, b]
            .iter()
            .chain(rest)
            .map(|c| format!("CAST({c} AS TEXT)"))
            .collect();
        let sql = format!(
            "SELECT {a} AS a, {b} AS b, {} AS fingerprint FROM {table} WHERE bucket >= ? AND bucket < ?",
            row.join(" || ',' || ")
        );
        let mut rows = BTreeSet::new();
        for &(first, end) in ranges {
            let read: Vec<Quarter> = diesel::sql_query(dialect.placeholders(&sql))
                .bind::<BigInt, _>(first)
                .bind::<BigInt, _>(end)
                .load(conn)?;
            count += read.len();
            if count > MAX_COMPARED {
                return Ok(None);
            }
            rows.extend(read);
        }
        out.push(rows);
    }
    Ok(Some(out))
}

impl Touched {
    /// The keys of the rows that differ between `before` and `after` ([`quarters`] of the
    /// same ranges); every key when either is `None`.
    fn between(before: Option<Quarters>, after: Option<Quarters>) -> Option<Self> {
        let (before, after) = (before?, after?);
        let mut services = BTreeSet::new();
        let mut accounts = BTreeSet::new();
        let mut providers = BTreeSet::new();
        for (((table, _, _), old), new) in QUARTER_TABLES.iter().zip(&before).zip(&after) {
            for q in old.symmetric_difference(new) {
                if *table == "rollup_money" {
                    providers.insert(q.a);
                    services.insert(q.b);
                } else {
                    services.insert(q.a);
                    accounts.insert(q.b);
                }
            }
        }
        let cap = |set: BTreeSet<i64>| (set.len() <= MAX_TOUCHED).then_some(set);
        Some(Self {
            services: cap(services),
            accounts: cap(accounts),
            providers: cap(providers),
        })
    }

    /// `AND {prefix}col IN (…)` for each of `keys` with a set, or `None` when a set is
    /// empty: no 15-minute row of that column changed, so no parent row of the level did.
    /// The values are integers written into the SQL (never text).
    fn condition(&self, keys: &[&str], prefix: &str) -> Option<String> {
        let mut out = String::new();
        for key in keys {
            let set = match *key {
                "service_id" => &self.services,
                "account_id" => &self.accounts,
                "provider_id" => &self.providers,
                _ => continue,
            };
            if let Some(set) = set {
                if set.is_empty() {
                    return None;
                }
                let values: Vec<String> = set.iter().map(i64::to_string).collect();
                out.push_str(&format!(" AND {prefix}{key} IN ({})", values.join(", ")));
            }
        }
        Some(out)
    }
}

/// `bucket` rounded down to a multiple of `span` (plus `phase`: the spans start `phase`
/// buckets past a multiple), in SQL (floor, as `div_euclid`: `/` truncates towards zero on
/// both backends, so a bucket before 1970 would land in the span after its own).
fn span_start_sql(bucket: &str, span: i64, phase: i64) -> String {
    if phase == 0 {
        format!("({bucket} - (({bucket} % {span}) + {span}) % {span})")
    } else {
        format!("({bucket} - ((({bucket} - {phase}) % {span}) + {span}) % {span})")
    }
}

impl Level {
    /// The column naming this level's rows in its table, and its value: the span, or a
    /// zone's phase.
    fn id(&self) -> (&'static str, i64) {
        match self.phase {
            Some(phase) => ("phase", phase),
            None => ("span", self.span),
        }
    }

    /// The first bucket of this level's span holding `bucket`.
    fn start_of(&self, bucket: i64) -> i64 {
        let phase = self.phase.unwrap_or(0);
        phase + (bucket - phase).div_euclid(self.span) * self.span
    }

    /// `SELECT span, bucket, keys…, sums…` (`phase` for a zone's days) of this level as
    /// its child's rows in buckets `[?, ?)` give it (the range is whole spans of this
    /// level), for the keys `only` allows (`""`: every key; see [`Touched::condition`]).
    fn summed_from_child(&self, only: &str) -> String {
        let keys: String = self.keys.iter().map(|k| format!(", c.{k}")).collect();
        let sums: Vec<String> = self
            .sums
            .iter()
            .map(|s| format!("CAST(SUM(c.{s}) AS BIGINT)"))
            .collect();
        let child_span = self
            .child_span
            .map_or(String::new(), |s| format!("c.span = {s} AND "));
        let start = span_start_sql("c.bucket", self.span, self.phase.unwrap_or(0));
        let (column, id) = self.id();
        format!(
            "SELECT {id} AS {column}, {start} AS bucket{keys}, {sums} FROM {child} c \
             WHERE {child_span}c.bucket >= ? AND c.bucket < ?{only} \
             GROUP BY {start}{keys}",
            sums = sums.join(", "),
            child = self.child,
        )
    }

    /// The stored rows of this level in buckets `[?, ?)`, as [`Level::summed_from_child`] lists them.
    fn stored(&self) -> String {
        let (column, id) = self.id();
        format!(
            "SELECT {column}, bucket{keys}, {sums} FROM {table} \
             WHERE {column} = {id} AND bucket >= ? AND bucket < ?",
            keys = self
                .keys
                .iter()
                .map(|k| format!(", {k}"))
                .collect::<String>(),
            sums = self.sums.join(", "),
            table = self.table,
        )
    }

    /// Recomputes this level's rows of buckets `[first, end)` (whole spans) from its child,
    /// those of the keys `touched` names only (`None`: every key).
    fn refold(
        &self,
        conn: &mut DbConnection,
        first: i64,
        end: i64,
        touched: Option<&Touched>,
    ) -> QueryResult<()> {
        let (only, only_child) = match touched {
            None => (String::new(), String::new()),
            Some(touched) => match (
                touched.condition(self.keys, ""),
                touched.condition(self.keys, "c."),
            ) {
                (Some(only), Some(only_child)) => (only, only_child),
                _ => return Ok(()),
            },
        };
        let dialect = Dialect::of(conn);
        let (column, id) = self.id();
        let delete = format!(
            "DELETE FROM {} WHERE {column} = {id} AND bucket >= ? AND bucket < ?{only}",
            self.table
        );
        diesel::sql_query(dialect.placeholders(&delete))
            .bind::<BigInt, _>(first)
            .bind::<BigInt, _>(end)
            .execute(conn)?;
        let insert = format!(
            "INSERT INTO {} ({column}, bucket{}, {}) {}",
            self.table,
            self.keys
                .iter()
                .map(|k| format!(", {k}"))
                .collect::<String>(),
            self.sums.join(", "),
            self.summed_from_child(&only_child)
        );
        diesel::sql_query(dialect.placeholders(&insert))
            .bind::<BigInt, _>(first)
            .bind::<BigInt, _>(end)
            .execute(conn)?;
        Ok(())
    }
}

/// After the 15-minute buckets `ranges` were recomputed: every coarser span holding one of
/// them is recomputed from the level below, finest first (an hour from its quarters, a
/// day from its hours, seven days from their days), and no other; of a keyed level, only
/// the rows of the keys `touched` names (a new order of one reseller rewrites that
/// reseller's hour, six-hour, day and seven-day rows, not every reseller's). Then the
/// local days holding them of every report zone listed ([`zones`]), filled or not.
fn refold_parents(
    conn: &mut WriteConn<'_>,
    ranges: &[(i64, i64)],
    touched: Option<&Touched>,
) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    let zoned: Vec<Level> = zones(conn)?
        .into_iter()
        .flat_map(|zone| zone_levels(zone.phase))
        .collect();
    for level in LEVELS.iter().chain(&zoned) {
        for (lo, hi) in level.parents(ranges) {
            level.refold(conn, lo, hi, touched)?;
        }
    }
    Ok(())
}

impl Level {
    /// The whole spans of this level holding the buckets `[first, end)` (`first < end`).
    fn covering(&self, first: i64, end: i64) -> (i64, i64) {
        (self.start_of(first), self.start_of(end - 1) + self.span)
    }

    /// The whole spans of this level holding the buckets of `ranges` (sorted), joined
    /// where they meet.
    fn parents(&self, ranges: &[(i64, i64)]) -> Vec<(i64, i64)> {
        let mut parents: Vec<(i64, i64)> = Vec::new();
        for &(first, end) in ranges {
            let (lo, hi) = self.covering(first, end);
            match parents.last_mut() {
                Some((_, last)) if *last >= lo => *last = (*last).max(hi),
                _ => parents.push((lo, hi)),
            }
        }
        parents
    }
}

/// The tables of the report zones' local days, as [`zone_levels`] names them.
const ZONE_TABLES: [&str; 4] = [
    "rollup_zone_orders",
    "rollup_zone_refunds",
    "rollup_zone_account_orders",
    "rollup_zone_account_refunds",
];

/// The levels of a report zone's local days (phase `phase`: they start that many quarters
/// past a UTC midnight; +05:30 is 74): over all accounts from the time-only quarters, and
/// per account from the 15-minute rows. A day series in that zone reads one row a day per
/// key instead of the quarters, hours and six hours of the UTC levels.
fn zone_levels(phase: i64) -> [Level; 4] {
    [
        Level {
            table: ZONE_TABLES[0],
            span: 96,
            child: "rollup_time_orders",
            child_span: Some(1),
            keys: &[],
            sums: ORDER_COLUMNS,
            phase: Some(phase),
        },
        Level {
            table: ZONE_TABLES[1],
            span: 96,
            child: "rollup_time_refunds",
            child_span: Some(1),
            keys: &["reason"],
            sums: REFUND_COLUMNS,
            phase: Some(phase),
        },
        Level {
            table: ZONE_TABLES[2],
            span: 96,
            child: "rollup_orders",
            child_span: None,
            keys: &["account_id"],
            sums: ORDER_COLUMNS,
            phase: Some(phase),
        },
        Level {
            table: ZONE_TABLES[3],
            span: 96,
            child: "rollup_refunds",
            child_span: None,
            keys: &["account_id", "reason"],
            sums: REFUND_COLUMNS,
            phase: Some(phase),
        },
    ]
}

/// A report zone the fold keeps local days for (`rollup_zones`): where its days start
/// (quarters past a UTC midnight) and how far its history is filled: the days from
/// `next_bucket` to `end_bucket` (the history when the zone was listed) are still to be
/// summed; every fold since keeps the days it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable)]
pub struct Zone {
    pub phase: i64,
    pub next_bucket: i64,
    pub end_bucket: i64,
}

impl Zone {
    /// Whether every local day of the zone is summed: reports may read them.
    pub fn filled(&self) -> bool {
        self.next_bucket >= self.end_bucket
    }
}

pub use crate::domain::report::phase_of;

/// The report zones listed, by phase.
pub fn zones(conn: &mut DbConnection) -> QueryResult<Vec<Zone>> {
    use super::schema::rollup_zones;
    rollup_zones::table
        .select((
            rollup_zones::phase,
            rollup_zones::next_bucket,
            rollup_zones::end_bucket,
        ))
        .order(rollup_zones::phase.asc())
        .load(conn)
}

/// Lists the zone of phase `phase` (see [`phase_of`]): from now on every fold keeps its
/// local days, and [`fill_zone`] sums those of the history (the whole local days holding
/// every 15-minute row there is now). Call it holding the fold's turn, as a fold.
pub fn add_zone(conn: &mut WriteConn<'_>, phase: i64) -> QueryResult<Zone> {
    use super::schema::rollup_zones;
    use diesel::dsl::{max, min};
    let conn: &mut DbConnection = conn;
    let (lo, hi): (Option<i64>, Option<i64>) = rollup_orders::table
        .select((min(rollup_orders::bucket), max(rollup_orders::bucket)))
        .get_result(conn)?;
    let (next, end) = match (lo, hi) {
        (Some(lo), Some(hi)) => zone_levels(phase)[0].covering(lo, hi + 1),
        _ => (0, 0),
    };
    diesel::insert_into(rollup_zones::table)
        .values((
            rollup_zones::phase.eq(phase),
            rollup_zones::next_bucket.eq(next),
            rollup_zones::end_bucket.eq(end),
            rollup_zones::created_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(Zone {
        phase,
        next_bucket: next,
        end_bucket: end,
    })
}

/// Stops keeping the zone of phase `phase`: its days and its row go.
pub fn drop_zone(conn: &mut WriteConn<'_>, phase: i64) -> QueryResult<()> {
    use super::schema::rollup_zones;
    let conn: &mut DbConnection = conn;
    for table in ZONE_TABLES {
        diesel::sql_query(format!("DELETE FROM {table} WHERE phase = {phase}")).execute(conn)?;
    }
    diesel::delete(rollup_zones::table.filter(rollup_zones::phase.eq(phase))).execute(conn)?;
    Ok(())
}

/// Sums the next week (at most) of `zone`'s history still to fill ([`add_zone`]); returns
/// the zone as it stands after. Call it holding the fold's turn, as a fold.
pub fn fill_zone(conn: &mut WriteConn<'_>, zone: Zone) -> QueryResult<Zone> {
    use super::schema::rollup_zones;
    if zone.filled() {
        return Ok(zone);
    }
    let stop = (zone.next_bucket + MAX_SPAN).min(zone.end_bucket);
    let conn: &mut DbConnection = conn;
    for level in zone_levels(zone.phase) {
        level.refold(conn, zone.next_bucket, stop, None)?;
    }
    diesel::update(rollup_zones::table.filter(rollup_zones::phase.eq(zone.phase)))
        .set(rollup_zones::next_bucket.eq(stop))
        .execute(conn)?;
    Ok(Zone {
        next_bucket: stop,
        ..zone
    })
}

#[derive(QueryableByName)]
struct Differing {
    #[diesel(sql_type = BigInt)]
    rows: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    bucket: Option<i64>,
}

/// Compares every coarser level with the level below over buckets `[first, end)` (whole
/// spans of every UTC level; a zone's days holding them, but those of its history still
/// to fill): each row differing on either side counts once; returns those that differ.
fn check_levels(conn: &mut DbConnection, first: i64, end: i64) -> QueryResult<Vec<LevelMismatch>> {
    let dialect = Dialect::of(conn);
    let mut checks: Vec<(Level, i64, i64)> = LEVELS
        .iter()
        .map(|level| (level.clone(), first, end))
        .collect();
    for zone in zones(conn)? {
        for level in zone_levels(zone.phase) {
            let (lo, hi) = level.covering(first, end);
            let (unfilled_lo, unfilled_hi) = (zone.next_bucket, zone.end_bucket);
            if zone.filled() || unfilled_hi <= lo || hi <= unfilled_lo {
                checks.push((level, lo, hi));
            } else {
                checks.push((level.clone(), lo, unfilled_lo.max(lo)));
                checks.push((level, unfilled_hi.min(hi), hi));
            }
        }
    }
    let mut out = Vec::new();
    for (level, first, end) in checks {
        if first >= end {
            continue;
        }
        let (stored, derived) = (level.stored(), level.summed_from_child(""));
        let sql = format!(
            "SELECT COUNT(*) AS rows, MIN(d.bucket) AS bucket FROM (\
             SELECT x.bucket FROM ({stored} EXCEPT {derived}) x \
             UNION ALL SELECT y.bucket FROM ({derived} EXCEPT {stored}) y) d"
        );
        let diff: Differing = diesel::sql_query(dialect.placeholders(&sql))
            .bind::<BigInt, _>(first)
            .bind::<BigInt, _>(end)
            .bind::<BigInt, _>(first)
            .bind::<BigInt, _>(end)
            .bind::<BigInt, _>(first)
            .bind::<BigInt, _>(end)
            .bind::<BigInt, _>(first)
            .bind::<BigInt, _>(end)
            .get_result(conn)?;
        if diff.rows > 0 {
            out.push(LevelMismatch {
                table: level.table,
                span: level.span,
                phase: level.phase,
                bucket: diff.bucket.unwrap_or(first),
                rows: diff.rows,
            });
        }
    }
    Ok(out)
}

/// How a window splits: runs of folded 15-minute buckets `[first, end)` read from the
/// rollups (each covered by the coarsest whole spans that fit, see [`blocks`]), and the UTC
/// ranges read from the rows (the unaligned edges and the buckets with a change row left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub clean: Vec<(i64, i64)>,
    pub raw: Vec<(NaiveDateTime, NaiveDateTime)>,
}

/// Whether `group`'s rows can be cut from whole buckets in `window`'s zone: always, but a
/// time grouping in an offset that is not a whole number of quarters (`+03:20`), whose day
/// edges fall inside buckets; such a report reads its whole window from the rows.
pub fn buckets_fit(group: ReportGroup, window: &Window) -> bool {
    !is_time(group) || i64::from(window.offset_minutes()) % (BUCKET_SECS / 60) == 0
}

fn is_time(group: ReportGroup) -> bool {
    matches!(
        group,
        ReportGroup::Day | ReportGroup::Week | ReportGroup::Month
    )
}

/// Splits `[from, to)`: the unaligned edges and the buckets with a change row left are
/// read from the rows, the other buckets from the rollups. Call it in the snapshot the
/// report reads in.
pub fn plan(conn: &mut DbConnection, from: NaiveDateTime, to: NaiveDateTime) -> QueryResult<Plan> {
    let first = bucket_of(from) + i64::from(bucket_start(bucket_of(from)) < from);
    let end = bucket_of(to);
    if first >= end {
        return Ok(Plan {
            clean: Vec::new(),
            raw: vec![(from, to)],
        });
    }
    let dirty: Vec<i64> = rollup_changes::table
        .filter(rollup_changes::bucket.ge(first))
        .filter(rollup_changes::bucket.lt(end))
        .select(rollup_changes::bucket)
        .distinct()
        .order(rollup_changes::bucket.asc())
        .load(conn)?;
    let mut raw = Vec::new();
    if from < bucket_start(first) {
        raw.push((from, bucket_start(first)));
    }
    let mut clean = Vec::new();
    let mut at = first;
    let mut run: Option<(i64, i64)> = None;
    for bucket in dirty {
        if at < bucket {
            clean.push((at, bucket));
        }
        at = bucket + 1;
        run = match run {
            Some((start, stop)) if stop == bucket => Some((start, bucket + 1)),
            Some((start, stop)) => {
                raw.push((bucket_start(start), bucket_start(stop)));
                Some((bucket, bucket + 1))
            }
            None => Some((bucket, bucket + 1)),
        };
    }
    if at < end {
        clean.push((at, end));
    }
    if let Some((start, stop)) = run {
        raw.push((bucket_start(start), bucket_start(stop)));
    }
    if bucket_start(end) < to {
        raw.push((bucket_start(end), to));
    }
    if raw.len() > MAX_RAW_RANGES {
        return Ok(Plan {
            clean: Vec::new(),
            raw: vec![(from, to)],
        });
    }
    Ok(Plan { clean, raw })
}

/// The rollup tables one report reads: the 15-minute table and the coarser one, with the
/// spans the coarser one keeps (largest first).
#[derive(Debug, Clone, Copy)]
struct Family {
    quarter: &'static str,
    coarse: &'static str,
    spans: &'static [i64],
    /// The table of the report zones' local days with the same keys ([`zone_levels`]).
    zoned: Option<&'static str>,
}

const TIME_ORDERS: Family = Family {
    quarter: "rollup_orders",
    coarse: "rollup_time_orders",
    spans: &[672, 96, 24, 4, 1],
    zoned: Some("rollup_zone_orders"),
};
const TIME_REFUNDS: Family = Family {
    quarter: "rollup_refunds",
    coarse: "rollup_time_refunds",
    spans: &[672, 96, 24, 4, 1],
    zoned: Some("rollup_zone_refunds"),
};
const SERVICE_ORDERS: Family = Family {
    quarter: "rollup_orders",
    coarse: "rollup_service_orders",
    spans: &[672, 96, 4],
    zoned: None,
};
const SERVICE_REFUNDS: Family = Family {
    quarter: "rollup_refunds",
    coarse: "rollup_service_refunds",
    spans: &[672, 96, 4],
    zoned: None,
};
const ACCOUNT_ORDERS: Family = Family {
    quarter: "rollup_orders",
    coarse: "rollup_account_orders",
    spans: &[672, 96, 24, 4],
    zoned: None,
};
const ACCOUNT_REFUNDS: Family = Family {
    quarter: "rollup_refunds",
    coarse: "rollup_account_refunds",
    spans: &[672, 96, 24, 4],
    zoned: None,
};
const ACCOUNT_TOTALS: Family = Family {
    quarter: "rollup_orders",
    coarse: "rollup_account_totals",
    spans: &[672, 96, 24, 4],
    zoned: Some("rollup_zone_account_orders"),
};
const ACCOUNT_REASONS: Family = Family {
    quarter: "rollup_refunds",
    coarse: "rollup_account_reasons",
    spans: &[672, 96, 24, 4],
    zoned: Some("rollup_zone_account_refunds"),
};
const MONEY: Family = Family {
    quarter: "rollup_money",
    coarse: "rollup_service_money",
    spans: &[672, 96, 4],
    zoned: None,
};

/// The spans a report's rollups keep, largest first (`1`: a coarser table's own
/// 15-minute level): the levels [`blocks`] may cover its window with.
pub fn report_spans(group: ReportGroup, scope: ReportScope) -> &'static [i64] {
    families(group, scope).0.spans
}

/// The rollup tables a refund report reads (orders, refunds): one reseller's report by
/// service or provider those with the account and service; the by-account report and one
/// reseller's time series and by-reason report those with the account alone; time series
/// and the by-reason report over all accounts those with time alone; the rest those with
/// the service. Each the fewest rows that still carry the report's key.
fn families(group: ReportGroup, scope: ReportScope) -> (Family, Family) {
    match (scope, group) {
        (ReportScope::Account(_), ReportGroup::Service | ReportGroup::Provider) => {
            (ACCOUNT_ORDERS, ACCOUNT_REFUNDS)
        }
        (ReportScope::Account(_), _) | (ReportScope::All, ReportGroup::Account) => {
            (ACCOUNT_TOTALS, ACCOUNT_REASONS)
        }
        (
            ReportScope::All,
            ReportGroup::Day | ReportGroup::Week | ReportGroup::Month | ReportGroup::Reason,
        ) => (TIME_ORDERS, TIME_REFUNDS),
        (ReportScope::All, ReportGroup::Service | ReportGroup::Provider) => {
            (SERVICE_ORDERS, SERVICE_REFUNDS)
        }
    }
}

/// A run of whole spans read from one level: `span` (1: the 15-minute rows), buckets
/// `[lo, hi)`, and the time group they all fall in (`""` when the report is not a time
/// series).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub span: i64,
    pub lo: i64,
    pub hi: i64,
    pub key: String,
    /// Local days of the window's report zone ([`zone_levels`], `span` 96), not UTC spans.
    pub zoned: bool,
}

/// The time group (its key, as the report's SQL writes it) that bucket `bucket` falls in,
/// and the first bucket of the next one. `offset` is a whole number of quarters
/// ([`buckets_fit`]), so group edges are bucket edges.
fn time_group(group: ReportGroup, window: &Window, bucket: i64) -> (String, i64) {
    use chrono::{Datelike, Duration};
    let shift = Duration::seconds(window.offset.local_minus_utc().into());
    let date = (bucket_start(bucket) + shift).date();
    let (first, next) = match group {
        ReportGroup::Week => {
            let monday = date - Duration::days(date.weekday().num_days_from_monday().into());
            (monday, monday + Duration::days(7))
        }
        ReportGroup::Month => {
            let first = date.with_day(1).unwrap_or(date);
            let next = first
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(first + Duration::days(31));
            (first, next)
        }
        _ => (date, date + Duration::days(1)),
    };
    let end = bucket_of(next.and_time(chrono::NaiveTime::MIN) - shift);
    (first.format("%Y-%m-%d").to_string(), end.max(bucket + 1))
}

/// Covers the folded runs `clean` with the coarsest whole spans of `spans` (largest first;
/// each a multiple of the next, and of the 15-minute bucket) that fit, aligned on their
/// own length: the 15-minute rows at the edges, then hours, days, seven days. For a time
/// series, runs are cut at the group's edges first (a local day in +05:30 is quarters and
/// hours, a UTC week days and seven days), and each block carries its group's key. With
/// `zone` (the phase of the window's zone, its local days filled: [`zone_to_read`]), every
/// whole local day is one of that zone's days instead.
pub fn blocks(
    clean: &[(i64, i64)],
    group: ReportGroup,
    window: &Window,
    spans: &[i64],
    zone: Option<i64>,
) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    for &(first, end) in clean {
        let mut at = first;
        while at < end {
            let (key, stop) = if is_time(group) {
                let (key, next) = time_group(group, window, at);
                (key, next.min(end))
            } else {
                (String::new(), end)
            };
            while at < stop {
                let zoned = is_time(group)
                    && zone
                        .is_some_and(|phase| (at - phase).rem_euclid(96) == 0 && at + 96 <= stop);
                let span = if zoned {
                    96
                } else {
                    spans
                        .iter()
                        .copied()
                        .find(|s| at.rem_euclid(*s) == 0 && at + s <= stop)
                        .unwrap_or(1)
                };
                match out.last_mut() {
                    Some(last)
                        if last.span == span
                            && last.zoned == zoned
                            && last.hi == at
                            && last.key == key =>
                    {
                        last.hi = at + span
                    }
                    _ => out.push(Block {
                        span,
                        lo: at,
                        hi: at + span,
                        key: key.clone(),
                        zoned,
                    }),
                }
                at += span;
            }
        }
    }
    out
}

/// The rows of `blocks` of one level as a `WITH w` list of literals (numbers and dates
/// this code wrote, nothing from outside) joined on the level's table `r`, with each
/// block's group key `tk`. On SQLite one row per run, `bucket >= lo AND bucket < hi`
/// (an index range each), the level's span (a zone's days: the zone's phase, the column
/// naming them) a column of the list (`sp`) rather than a constant: with
/// `r.span = <constant>` SQLite's planner builds a Bloom filter on the
/// span, scanning every row of that level first (a +05:30 day series over a year: 60 ms
/// against 25 ms). On PostgreSQL one row per span, joined by equality: with range
/// conditions on a join its planner guessed a third of the table per row and scanned it
/// (300 ms on a reseller's year at 2M orders), while an equality is one index probe; on
/// SQLite the runs are cheaper (a year's day series in +05:30: 23 ms against 45–61 ms).
fn from_blocks(dialect: Dialect, family: Family, span: i64, blocks: &[&Block]) -> String {
    let zoned = blocks.first().is_some_and(|b| b.zoned);
    let quarter = span == 1 && !family.spans.contains(&1);
    let (table, column, id) = match family.zoned {
        // A zone's days: named by the zone's phase (where they start), not their span.
        Some(table) if zoned => (table, "phase", blocks[0].lo.rem_euclid(96)),
        _ if quarter => (family.quarter, "", span),
        _ => (family.coarse, "span", span),
    };
    let (values, on, join): (Vec<String>, &str, String) = match dialect {
        Dialect::Sqlite => (
            blocks
                .iter()
                .map(|b| format!("({id}, {}, {}, {})", b.lo, b.hi, b.key))
                .collect(),
            "(sp, lo, hi, tk)",
            format!(
                "{}r.bucket >= w.lo AND r.bucket < w.hi",
                if column.is_empty() {
                    String::new()
                } else {
                    format!("r.{column} = w.sp AND ")
                }
            ),
        ),
        Dialect::Postgres => (
            blocks
                .iter()
                .flat_map(|b| {
                    (b.lo..b.hi)
                        .step_by(usize::try_from(span).unwrap_or(1))
                        .map(move |at| format!("({at}, {})", b.key))
                })
                .collect(),
            "(b, tk)",
            format!(
                "{}r.bucket = w.b",
                if column.is_empty() {
                    String::new()
                } else {
                    format!("r.{column} = {id} AND ")
                }
            ),
        ),
    };
    format!(
        "WITH {{with}}w {on} AS (VALUES {}) SELECT {{key}} AS grp, {{sums}} FROM w{{cross}} \
         JOIN {table} r ON {join}{{on}} {{join}} {{filter}} {{group}}",
        values.join(", ")
    )
}

/// How a [`from_blocks`] query keeps one account's rows (`{with}`, `{cross}`, `{on}`,
/// `{filter}`), its id bound as the query's one parameter. On SQLite the account comes
/// from a one-row table `a` joined beside `w`, not from a constant in `WHERE`: with
/// `r.account_id = ?` its planner builds a Bloom filter on the account (and span) by
/// scanning every row of the level first (a reseller's year of hours: 42–49 ms against
/// 6–7 ms).
fn account_clauses(dialect: Dialect, scope: ReportScope) -> [(&'static str, &'static str); 4] {
    match (scope, dialect) {
        (ReportScope::All, _) => [
            ("{with}", ""),
            ("{cross}", ""),
            ("{on}", ""),
            ("{filter}", ""),
        ],
        (ReportScope::Account(_), Dialect::Sqlite) => [
            ("{with}", "a (ac) AS (VALUES (?)), "),
            ("{cross}", " CROSS JOIN a"),
            ("{on}", " AND r.account_id = a.ac"),
            ("{filter}", ""),
        ],
        (ReportScope::Account(_), Dialect::Postgres) => [
            ("{with}", ""),
            ("{cross}", ""),
            ("{on}", ""),
            ("{filter}", "WHERE r.account_id = ?"),
        ],
    }
}

/// One query per level that `blocks` reads from (`template` filled in for that level),
/// and the blocks' group keys. In the queries a block's group is its key's index in those
/// keys (`w.tk`, an integer: SQLite groups integers faster than the text of dates; a
/// year's day series in +05:30 groups about 23,000 rows), mapped back by [`group_key`].
fn per_level(dialect: Dialect, family: Family, blocks: &[Block]) -> (Vec<String>, Vec<String>) {
    let mut keys: Vec<String> = Vec::new();
    let numbered: Vec<Block> = blocks
        .iter()
        .map(|b| {
            let index = match keys.iter().rposition(|k| *k == b.key) {
                Some(index) => index,
                None => {
                    keys.push(b.key.clone());
                    keys.len() - 1
                }
            };
            Block {
                key: index.to_string(),
                ..b.clone()
            }
        })
        .collect();
    let mut levels: Vec<(i64, bool)> = numbered.iter().map(|b| (b.span, b.zoned)).collect();
    levels.sort_unstable();
    levels.dedup();
    let queries = levels
        .into_iter()
        .map(|(span, zoned)| {
            let of_level: Vec<&Block> = numbered
                .iter()
                .filter(|b| b.span == span && b.zoned == zoned)
                .collect();
            from_blocks(dialect, family, span, &of_level)
        })
        .collect();
    (queries, keys)
}

/// A row's group key: for a time series the key of the group numbered `grp` in `keys`
/// ([`per_level`]), otherwise `grp` itself.
fn group_key(
    group: ReportGroup,
    keys: &[String],
    grp: Option<String>,
) -> QueryResult<Option<String>> {
    if !is_time(group) {
        return Ok(grp);
    }
    grp.as_deref()
        .and_then(|g| g.parse::<usize>().ok())
        .and_then(|index| keys.get(index))
        .map(|key| Some(key.clone()))
        .ok_or_else(|| {
            diesel::result::Error::DeserializationError(
                format!("a report row of an unknown time group {grp:?}").into(),
            )
        })
}

/// `GROUP BY` of a report over a rollup: the block's group number for a time series (an
/// integer, see [`per_level`]), else the key expression; then the refunds' reason.
fn group_by(group: ReportGroup, refunds: bool) -> &'static str {
    match (is_time(group), refunds) {
        (true, false) => "GROUP BY w.tk",
        (true, true) => "GROUP BY w.tk, r.reason",
        (false, false) => "GROUP BY 1",
        (false, true) => "GROUP BY 1, 2",
    }
}

/// A report key expression written over `orders o` (and `services s`), over a rollup `r`;
/// a time series takes its group's number from the block (`w.tk`, see [`per_level`]).
fn rolled_key(dialect: Dialect, group: ReportGroup) -> String {
    if is_time(group) {
        return "CAST(w.tk AS TEXT)".into();
    }
    super::reports::key_sql(dialect, group)
        .replace("o.service_id", "r.service_id")
        .replace("o.account_id", "r.account_id")
}

#[derive(QueryableByName)]
struct RolledOrders {
    #[diesel(sql_type = Nullable<Text>)]
    grp: Option<String>,
    #[diesel(sql_type = BigInt)]
    orders_count: i64,
    #[diesel(sql_type = BigInt)]
    charged_micros: Money,
    #[diesel(sql_type = BigInt)]
    refunded_orders: i64,
}

#[derive(QueryableByName)]
struct RolledRefunds {
    #[diesel(sql_type = Nullable<Text>)]
    grp: Option<String>,
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = BigInt)]
    refunds_count: i64,
    #[diesel(sql_type = BigInt)]
    refunded_micros: Money,
    #[diesel(sql_type = BigInt)]
    refunded_orders: i64,
}

const ORDER_SUMS_SQL: &str = "CAST(COALESCE(SUM(r.orders), 0) AS BIGINT) AS orders_count, \
    CAST(COALESCE(SUM(r.charged_micros), 0) AS BIGINT) AS charged_micros, \
    CAST(COALESCE(SUM(r.refunded_orders), 0) AS BIGINT) AS refunded_orders";

const REFUND_SUMS_SQL: &str = "r.reason AS reason, \
    CAST(COALESCE(SUM(r.refunds), 0) AS BIGINT) AS refunds_count, \
    CAST(COALESCE(SUM(r.refunded_micros), 0) AS BIGINT) AS refunded_micros, \
    CAST(COALESCE(SUM(r.refunded_orders), 0) AS BIGINT) AS refunded_orders";

/// `sum + more`, or an error when a report sum overflows 64 bits (never a wrap).
fn added<T: CheckedSum>(sum: T, more: T) -> QueryResult<T> {
    sum.checked_sum(more).ok_or_else(|| {
        diesel::result::Error::DeserializationError("a report sum overflows 64 bits".into())
    })
}

trait CheckedSum: Sized {
    fn checked_sum(self, more: Self) -> Option<Self>;
}

impl CheckedSum for i64 {
    fn checked_sum(self, more: Self) -> Option<Self> {
        self.checked_add(more)
    }
}

impl CheckedSum for Money {
    fn checked_sum(self, more: Self) -> Option<Self> {
        self.checked_add(more)
    }
}

/// The phase of `window`'s zone when `group` is a time series and that zone's local days
/// are kept and filled ([`zones`]): a report reads its whole local days from them.
pub fn zone_to_read(
    conn: &mut DbConnection,
    group: ReportGroup,
    window: &Window,
) -> QueryResult<Option<i64>> {
    let Some(phase) = phase_of(window.offset).filter(|_| is_time(group)) else {
        return Ok(None);
    };
    Ok(zones(conn)?
        .into_iter()
        .find(|zone| zone.phase == phase && zone.filled())
        .map(|zone| zone.phase))
}

/// The refund report's sums over the folded runs `clean` ([`Plan::clean`]), keyed as
/// `reports::sums` keys them (one row per key, and per reason for refunds: the levels'
/// rows of one key are added here), from the rollup tables [`families`] picks (their
/// 15-minute rows at the edges of the spans they keep).
pub fn rolled_sums(
    conn: &mut DbConnection,
    group: ReportGroup,
    window: &Window,
    clean: &[(i64, i64)],
    scope: ReportScope,
) -> QueryResult<(Vec<OrderSums>, Vec<RefundSums>)> {
    let dialect = Dialect::of(conn);
    let (orders_family, refunds_family) = families(group, scope);
    let key = rolled_key(dialect, group);
    let join = if group == ReportGroup::Provider {
        "JOIN services s ON s.id = r.service_id"
    } else {
        ""
    };
    let account = account_clauses(dialect, scope);
    let fill = |template: &str, key: &str, sums: &str, group_by: &str| {
        let mut sql = template
            .replace("{key}", key)
            .replace("{sums}", sums)
            .replace("{join}", join)
            .replace("{group}", group_by);
        for (name, clause) in account {
            sql = sql.replace(name, clause);
        }
        dialect.placeholders(&sql)
    };
    let zone = zone_to_read(conn, group, window)?;
    let mut orders: BTreeMap<Option<String>, OrderSums> = BTreeMap::new();
    let (queries, keys) = per_level(
        dialect,
        orders_family,
        &blocks(
            clean,
            group,
            window,
            orders_family.spans,
            orders_family.zoned.and(zone),
        ),
    );
    for template in &queries {
        let sql = fill(template, &key, ORDER_SUMS_SQL, group_by(group, false));
        let rows: Vec<RolledOrders> = load_scoped(conn, sql, scope)?;
        for r in rows {
            let grp = group_key(group, &keys, r.grp)?;
            let sums = orders.entry(grp.clone()).or_insert_with(|| OrderSums {
                key: grp,
                orders: 0,
                charged: Money::ZERO,
                refunded_orders: 0,
            });
            sums.orders = added(sums.orders, r.orders_count)?;
            sums.charged = added(sums.charged, r.charged_micros)?;
            sums.refunded_orders = added(sums.refunded_orders, r.refunded_orders)?;
        }
    }
    let refunds_key = if group == ReportGroup::Reason {
        "r.reason".to_string()
    } else {
        key.clone()
    };
    let mut refunds: BTreeMap<(Option<String>, String), RefundSums> = BTreeMap::new();
    let (queries, keys) = per_level(
        dialect,
        refunds_family,
        &blocks(
            clean,
            group,
            window,
            refunds_family.spans,
            refunds_family.zoned.and(zone),
        ),
    );
    for template in &queries {
        let sql = fill(
            template,
            &refunds_key,
            REFUND_SUMS_SQL,
            group_by(group, true),
        );
        let rows: Vec<RolledRefunds> = load_scoped(conn, sql, scope)?;
        for r in rows {
            let grp = group_key(group, &keys, r.grp)?;
            let sums = refunds
                .entry((grp.clone(), r.reason.clone()))
                .or_insert_with(|| RefundSums {
                    key: grp,
                    reason: r.reason,
                    refunds: 0,
                    refunded: Money::ZERO,
                    refunded_orders: 0,
                });
            sums.refunds = added(sums.refunds, r.refunds_count)?;
            sums.refunded = added(sums.refunded, r.refunded_micros)?;
            sums.refunded_orders = added(sums.refunded_orders, r.refunded_orders)?;
        }
    }
    Ok((
        orders.into_values().collect(),
        refunds.into_values().collect(),
    ))
}

fn load_scoped<R>(conn: &mut DbConnection, sql: String, scope: ReportScope) -> QueryResult<Vec<R>>
where
    R: QueryableByName<<DbConnection as Connection>::Backend> + 'static,
{
    let query = diesel::sql_query(sql);
    match scope {
        ReportScope::All => query.load(conn),
        ReportScope::Account(id) => query.bind::<BigInt, _>(id.get()).load(conn),
    }
}

#[derive(QueryableByName)]
struct RolledMoney {
    #[diesel(sql_type = Nullable<Text>)]
    grp: Option<String>,
    #[diesel(sql_type = BigInt)]
    orders: i64,
    #[diesel(sql_type = BigInt)]
    revenue_micros: Money,
    #[diesel(sql_type = BigInt)]
    provider_cost_micros: Money,
    #[diesel(sql_type = BigInt)]
    orders_without_cost: i64,
    #[diesel(sql_type = BigInt)]
    refunds_paid_micros: Money,
    #[diesel(sql_type = BigInt)]
    expected_credits_micros: Money,
    #[diesel(sql_type = BigInt)]
    credits_recovered_micros: Money,
    #[diesel(sql_type = BigInt)]
    unrecovered_micros: Money,
    #[diesel(sql_type = BigInt)]
    awaiting_credit_micros: Money,
    #[diesel(sql_type = BigInt)]
    recovery_cases: i64,
    #[diesel(sql_type = BigInt)]
    unrecovered_cases: i64,
    #[diesel(sql_type = BigInt)]
    credited_to_balance_micros: Money,
}

const MONEY_SUMS: &str = "CAST(COALESCE(SUM(r.orders), 0) AS BIGINT) AS orders, \
    CAST(COALESCE(SUM(r.revenue_micros), 0) AS BIGINT) AS revenue_micros, \
    CAST(COALESCE(SUM(r.provider_cost_micros), 0) AS BIGINT) AS provider_cost_micros, \
    CAST(COALESCE(SUM(r.orders_without_cost), 0) AS BIGINT) AS orders_without_cost, \
    CAST(COALESCE(SUM(r.refunds_paid_micros), 0) AS BIGINT) AS refunds_paid_micros, \
    CAST(COALESCE(SUM(r.expected_credits_micros), 0) AS BIGINT) AS expected_credits_micros, \
    CAST(COALESCE(SUM(r.credits_recovered_micros), 0) AS BIGINT) AS credits_recovered_micros, \
    CAST(COALESCE(SUM(r.unrecovered_micros), 0) AS BIGINT) AS unrecovered_micros, \
    CAST(COALESCE(SUM(r.awaiting_credit_micros), 0) AS BIGINT) AS awaiting_credit_micros, \
    CAST(COALESCE(SUM(r.recovery_cases), 0) AS BIGINT) AS recovery_cases, \
    CAST(COALESCE(SUM(r.unrecovered_cases), 0) AS BIGINT) AS unrecovered_cases, \
    CAST(COALESCE(SUM(r.credited_to_balance_micros), 0) AS BIGINT) AS credited_to_balance_micros";

/// The provider money report's rows (keyed as `domain::cost::money_row_key` keys them) and
/// totals over `window`: folded buckets from the rollups, the rest from the rows, in one
/// snapshot.
pub fn money_sums(
    conn: &mut DbConnection,
    group: ReportGroup,
    window: &Window,
    provider_id: Option<ProviderId>,
) -> QueryResult<(BTreeMap<String, MoneyMetrics>, MoneyMetrics)> {
    super::consistent_read(conn, |conn| {
        if !buckets_fit(group, window) {
            return raw_money_sums(conn, group, window, provider_id);
        }
        let plan = plan(conn, window.from, window.to)?;
        let mut rows: BTreeMap<String, MoneyMetrics> = BTreeMap::new();
        let mut totals = MoneyMetrics::default();
        for (from, to) in &plan.raw {
            let part = raw_money_sums(
                conn,
                group,
                &Window {
                    from: *from,
                    to: *to,
                    ..*window
                },
                provider_id,
            )?;
            for (key, m) in part.0 {
                rows.entry(key).or_default().merge(&m);
            }
            totals.merge(&part.1);
        }
        for (key, m) in rolled_money(conn, group, window, &plan.clean, provider_id)? {
            totals.merge(&m);
            if let Some(key) = key {
                rows.entry(key).or_default().merge(&m);
            }
        }
        Ok((rows, totals))
    })
}

/// The provider money report computed from the rows alone (what the rollups must equal).
pub fn raw_money_sums(
    conn: &mut DbConnection,
    group: ReportGroup,
    window: &Window,
    provider_id: Option<ProviderId>,
) -> QueryResult<(BTreeMap<String, MoneyMetrics>, MoneyMetrics)> {
    let orders = costs::costed_orders(conn, window.from, window.to, provider_id)?;
    let mut rows: BTreeMap<String, MoneyMetrics> = BTreeMap::new();
    let mut totals = MoneyMetrics::default();
    for order in &orders {
        totals.add(order);
        if let Some(key) = money_row_key(group, order, window.offset) {
            rows.entry(key).or_default().add(order);
        }
    }
    Ok((rows, totals))
}

fn rolled_money(
    conn: &mut DbConnection,
    group: ReportGroup,
    window: &Window,
    clean: &[(i64, i64)],
    provider_id: Option<ProviderId>,
) -> QueryResult<Vec<(Option<String>, MoneyMetrics)>> {
    let dialect = Dialect::of(conn);
    let key = match group {
        ReportGroup::Provider => "CAST(r.provider_id AS TEXT)",
        ReportGroup::Service => "CAST(r.service_id AS TEXT)",
        ReportGroup::Day | ReportGroup::Week => "CAST(w.tk AS TEXT)",
        _ => "CAST(NULL AS TEXT)",
    };
    let filter = if provider_id.is_some() {
        "WHERE r.provider_id = ?"
    } else {
        ""
    };
    let mut out = Vec::new();
    let (queries, keys) = per_level(
        dialect,
        MONEY,
        &blocks(clean, group, window, MONEY.spans, None),
    );
    for template in &queries {
        let sql = dialect.placeholders(
            &template
                .replace("{key}", key)
                .replace("{sums}", MONEY_SUMS)
                .replace("{join}", "")
                .replace("{with}", "")
                .replace("{cross}", "")
                .replace("{on}", "")
                .replace("{filter}", filter)
                .replace("{group}", group_by(group, false)),
        );
        let query = diesel::sql_query(sql);
        let rows: Vec<RolledMoney> = match provider_id {
            Some(id) => query.bind::<BigInt, _>(id.get()).load(conn)?,
            None => query.load(conn)?,
        };
        for r in rows {
            out.push((
                group_key(group, &keys, r.grp)?,
                MoneyMetrics {
                    orders: r.orders,
                    revenue: r.revenue_micros,
                    provider_cost: r.provider_cost_micros,
                    orders_without_cost: r.orders_without_cost,
                    refunds_paid: r.refunds_paid_micros,
                    expected_credits: r.expected_credits_micros,
                    credits_recovered: r.credits_recovered_micros,
                    unrecovered: r.unrecovered_micros,
                    awaiting_credit: r.awaiting_credit_micros,
                    recovery_cases: r.recovery_cases,
                    unrecovered_cases: r.unrecovered_cases,
                    credited_to_balance: r.credited_to_balance_micros,
                },
            ));
        }
    }
    Ok(out)
}

/// How far the rollups are behind: change rows not folded yet, and the age of the oldest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    pub rows: i64,
    pub seconds: i64,
}

pub fn lag(conn: &mut DbConnection) -> QueryResult<Lag> {
    let rows: i64 = rollup_changes::table.count().get_result(conn)?;
    let oldest: Option<NaiveDateTime> = rollup_changes::table
        .select(diesel::dsl::min(rollup_changes::created_at))
        .get_result(conn)?;
    Ok(Lag {
        rows,
        seconds: oldest.map_or(0, |at| (now() - at).num_seconds().max(0)),
    })
}

/// A folded bucket whose rollups differ from its rows (for `verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub bucket: i64,
    pub what: &'static str,
}

/// Compares every folded bucket's rollups with its rows (in the caller's snapshot), a week
/// of buckets at a time: every bucket that has orders or rollup rows, but those with a
/// change row left (they are read from the rows until folded). Returns the buckets checked
/// and those that differ.
pub fn check(conn: &mut DbConnection) -> QueryResult<(usize, Vec<Mismatch>)> {
    use super::schema::orders;
    use diesel::dsl::{max, min};
    let dirty: BTreeSet<i64> = rollup_changes::table
        .select(rollup_changes::bucket)
        .distinct()
        .load::<i64>(conn)?
        .into_iter()
        .collect();
    let (o_lo, o_hi): (Option<i64>, Option<i64>) = rollup_orders::table
        .select((min(rollup_orders::bucket), max(rollup_orders::bucket)))
        .get_result(conn)?;
    let (m_lo, m_hi): (Option<i64>, Option<i64>) = rollup_money::table
        .select((min(rollup_money::bucket), max(rollup_money::bucket)))
        .get_result(conn)?;
    let (first_order, last_order): (Option<NaiveDateTime>, Option<NaiveDateTime>) = orders::table
        .select((min(orders::created_at), max(orders::created_at)))
        .get_result(conn)?;
    let lo = [o_lo, m_lo, first_order.map(bucket_of)]
        .into_iter()
        .flatten()
        .min();
    let hi = [o_hi, m_hi, last_order.map(bucket_of)]
        .into_iter()
        .flatten()
        .max();
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok((0, Vec::new()));
    };
    let mut checked = BTreeSet::new();
    let mut mismatches = Vec::new();
    let mut first = lo;
    while first <= hi {
        let end = (first + MAX_SPAN).min(hi + 1);
        check_range(conn, first, end, &dirty, &mut checked, &mut mismatches)?;
        first = end;
    }
    Ok((checked.len(), mismatches))
}

/// A coarser level whose rows differ from the sums of the level below (for `verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelMismatch {
    pub table: &'static str,
    pub span: i64,
    /// A report zone's days: the zone's phase ([`phase_of`]).
    pub phase: Option<i64>,
    /// The first bucket of the first differing row.
    pub bucket: i64,
    /// Rows that differ, counted on both sides.
    pub rows: i64,
}

/// Compares every coarser level (hours, days, seven days) with the level it is summed
/// from, over all the buckets that hold rollups: they are kept in the fold's transaction,
/// so they agree in every snapshot, change rows or not. With [`check`] (the 15-minute rows
/// against the rows themselves) every level is checked against the rows.
pub fn check_levels_all(conn: &mut DbConnection) -> QueryResult<Vec<LevelMismatch>> {
    use diesel::dsl::{max, min};
    let mut lo: Option<i64> = None;
    let mut hi: Option<i64> = None;
    let mut widen = |range: (Option<i64>, Option<i64>)| {
        lo = [lo, range.0].into_iter().flatten().min();
        hi = [hi, range.1].into_iter().flatten().max();
    };
    widen(
        rollup_orders::table
            .select((min(rollup_orders::bucket), max(rollup_orders::bucket)))
            .get_result(conn)?,
    );
    widen(
        rollup_money::table
            .select((min(rollup_money::bucket), max(rollup_money::bucket)))
            .get_result(conn)?,
    );
    let mut tables: Vec<&str> = LEVELS.iter().map(|l| l.table).chain(ZONE_TABLES).collect();
    tables.dedup();
    for table in tables {
        let range: Bounds = diesel::sql_query(format!(
            "SELECT MIN(bucket) AS lo, MAX(bucket) AS hi FROM {table}"
        ))
        .get_result(conn)?;
        widen((range.lo, range.hi));
    }
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(Vec::new());
    };
    const WIDEST: i64 = 672;
    let first = lo.div_euclid(WIDEST) * WIDEST;
    let end = (hi + WIDEST).div_euclid(WIDEST) * WIDEST;
    check_levels(conn, first, end)
}

#[derive(QueryableByName)]
struct Bounds {
    #[diesel(sql_type = Nullable<BigInt>)]
    lo: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    hi: Option<i64>,
}

type Keyed<K, V> = BTreeMap<i64, BTreeMap<K, V>>;

fn by_bucket<K: Ord, V>(rows: impl IntoIterator<Item = (i64, K, V)>) -> Keyed<K, V> {
    let mut out: Keyed<K, V> = BTreeMap::new();
    for (bucket, key, value) in rows {
        out.entry(bucket).or_default().insert(key, value);
    }
    out
}

fn compare<K: Ord, V: PartialEq>(
    what: &'static str,
    stored: &Keyed<K, V>,
    raw: &Keyed<K, V>,
    dirty: &BTreeSet<i64>,
    checked: &mut BTreeSet<i64>,
    mismatches: &mut Vec<Mismatch>,
) {
    let buckets: BTreeSet<i64> = stored.keys().chain(raw.keys()).copied().collect();
    for bucket in buckets.into_iter().filter(|b| !dirty.contains(b)) {
        checked.insert(bucket);
        if stored.get(&bucket) != raw.get(&bucket) {
            mismatches.push(Mismatch { bucket, what });
        }
    }
}

fn check_range(
    conn: &mut DbConnection,
    first: i64,
    end: i64,
    dirty: &BTreeSet<i64>,
    checked: &mut BTreeSet<i64>,
    mismatches: &mut Vec<Mismatch>,
) -> QueryResult<()> {
    let (start, stop) = (bucket_start(first), bucket_start(end));
    let stored_orders = by_bucket(
        rollup_orders::table
            .filter(
                rollup_orders::bucket
                    .ge(first)
                    .and(rollup_orders::bucket.lt(end)),
            )
            .select((
                rollup_orders::bucket,
                rollup_orders::service_id,
                rollup_orders::account_id,
                rollup_orders::orders,
                rollup_orders::charged_micros,
                rollup_orders::refunded_orders,
            ))
            .load::<(i64, i64, i64, i64, Money, i64)>(conn)?
            .into_iter()
            .map(|(b, s, a, n, c, r)| (b, (s, a), (n, c, r))),
    );
    let stored_refunds = by_bucket(
        rollup_refunds::table
            .filter(
                rollup_refunds::bucket
                    .ge(first)
                    .and(rollup_refunds::bucket.lt(end)),
            )
            .select((
                rollup_refunds::bucket,
                rollup_refunds::service_id,
                rollup_refunds::account_id,
                rollup_refunds::reason,
                rollup_refunds::refunds,
                rollup_refunds::refunded_micros,
                rollup_refunds::refunded_orders,
            ))
            .load::<(i64, i64, i64, String, i64, Money, i64)>(conn)?
            .into_iter()
            .map(|(b, s, a, reason, n, m, o)| (b, (s, a, reason), (n, m, o))),
    );
    let dialect = Dialect::of(conn);
    let raw_orders: Vec<RawOrders> = diesel::sql_query(aliased_orders(dialect))
        .bind::<Timestamp, _>(start)
        .bind::<Timestamp, _>(stop)
        .load(conn)?;
    let raw_orders = by_bucket(raw_orders.into_iter().map(|r| {
        (
            r.bucket,
            (r.service_id, r.account_id),
            (r.orders, r.charged_micros, r.refunded_orders),
        )
    }));
    let raw_refunds: Vec<RawRefunds> = diesel::sql_query(aliased_refunds(dialect))
        .bind::<Timestamp, _>(start)
        .bind::<Timestamp, _>(stop)
        .load(conn)?;
    let raw_refunds = by_bucket(raw_refunds.into_iter().map(|r| {
        (
            r.bucket,
            (r.service_id, r.account_id, r.reason),
            (r.refunds, r.refunded_micros, r.refunded_orders),
        )
    }));
    compare(
        "orders",
        &stored_orders,
        &raw_orders,
        dirty,
        checked,
        mismatches,
    );
    compare(
        "refunds",
        &stored_refunds,
        &raw_refunds,
        dirty,
        checked,
        mismatches,
    );
    let stored_money = by_bucket(
        rollup_money::table
            .filter(
                rollup_money::bucket
                    .ge(first)
                    .and(rollup_money::bucket.lt(end)),
            )
            .select((
                rollup_money::bucket,
                rollup_money::provider_id,
                rollup_money::service_id,
                (
                    rollup_money::orders,
                    rollup_money::revenue_micros,
                    rollup_money::provider_cost_micros,
                    rollup_money::orders_without_cost,
                    rollup_money::refunds_paid_micros,
                    rollup_money::expected_credits_micros,
                ),
                (
                    rollup_money::credits_recovered_micros,
                    rollup_money::unrecovered_micros,
                    rollup_money::awaiting_credit_micros,
                    rollup_money::recovery_cases,
                    rollup_money::unrecovered_cases,
                    rollup_money::credited_to_balance_micros,
                ),
            ))
            .load::<(
                i64,
                i64,
                i64,
                (i64, Money, Money, i64, Money, Money),
                (Money, Money, Money, i64, i64, Money),
            )>(conn)?
            .into_iter()
            .map(|(b, p, s, x, y)| {
                (
                    b,
                    (p, s),
                    MoneyMetrics {
                        orders: x.0,
                        revenue: x.1,
                        provider_cost: x.2,
                        orders_without_cost: x.3,
                        refunds_paid: x.4,
                        expected_credits: x.5,
                        credits_recovered: y.0,
                        unrecovered: y.1,
                        awaiting_credit: y.2,
                        recovery_cases: y.3,
                        unrecovered_cases: y.4,
                        credited_to_balance: y.5,
                    },
                )
            }),
    );
    let mut raw_money: Keyed<(i64, i64), MoneyMetrics> = BTreeMap::new();
    for order in costs::costed_orders(conn, start, stop, None)? {
        raw_money
            .entry(bucket_of(order.created_at))
            .or_default()
            .entry((order.provider_id, order.service_id))
            .or_default()
            .add(&order);
    }
    compare(
        "provider money",
        &stored_money,
        &raw_money,
        dirty,
        checked,
        mismatches,
    );
    Ok(())
}

#[derive(QueryableByName)]
struct RawOrders {
    #[diesel(sql_type = BigInt)]
    bucket: i64,
    #[diesel(sql_type = BigInt)]
    service_id: i64,
    #[diesel(sql_type = BigInt)]
    account_id: i64,
    #[diesel(sql_type = BigInt)]
    orders: i64,
    #[diesel(sql_type = BigInt)]
    charged_micros: Money,
    #[diesel(sql_type = BigInt)]
    refunded_orders: i64,
}

#[derive(QueryableByName)]
struct RawRefunds {
    #[diesel(sql_type = BigInt)]
    bucket: i64,
    #[diesel(sql_type = BigInt)]
    service_id: i64,
    #[diesel(sql_type = BigInt)]
    account_id: i64,
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = BigInt)]
    refunds: i64,
    #[diesel(sql_type = BigInt)]
    refunded_micros: Money,
    #[diesel(sql_type = BigInt)]
    refunded_orders: i64,
}

fn aliased_orders(dialect: Dialect) -> String {
    dialect.placeholders(&format!(
        "SELECT {} AS bucket, o.service_id AS service_id, o.account_id AS account_id, COUNT(*) AS orders, \
         CAST(COALESCE(SUM(o.charge_micros), 0) AS BIGINT) AS charged_micros, \
         CAST(COALESCE(SUM(CASE WHEN o.refunded_micros > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS refunded_orders \
         FROM orders o WHERE o.created_at >= ? AND o.created_at < ? \
         GROUP BY 1, o.service_id, o.account_id",
        bucket_sql(dialect)
    ))
}

fn aliased_refunds(dialect: Dialect) -> String {
    let sql = "SELECT {bucket} AS bucket, o.service_id AS service_id, o.account_id AS account_id, r.reason AS reason, \
         COUNT(*) AS refunds, CAST(COALESCE(SUM(r.amount_micros), 0) AS BIGINT) AS refunded_micros, \
         COUNT(DISTINCT r.order_id) AS refunded_orders \
         FROM orders o JOIN refunds r ON r.order_id = o.id AND r.status = '{succeeded}' \
         WHERE o.created_at >= ? AND o.created_at < ? \
         GROUP BY 1, o.service_id, o.account_id, r.reason"
        .replace("{bucket}", bucket_sql(dialect))
        .replace("{succeeded}", RefundStatus::Succeeded.as_str());
    dialect.placeholders(&sql)
}
