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
const MAX_SPAN: i64 = 7 * 96;
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
/// rows of those buckets that were read are deleted.
pub fn fold(conn: &mut WriteConn<'_>, max_ranges: usize) -> QueryResult<Folded> {
    let changes: Vec<(i64, i64)> = {
        let read: &mut DbConnection = conn;
        rollup_changes::table
            .order(rollup_changes::id.asc())
            .limit(20_000)
            .select((rollup_changes::id, rollup_changes::bucket))
            .load(read)?
    };
    let buckets: BTreeSet<i64> = changes.iter().map(|(_, b)| *b).collect();
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
    let mut folded = Folded::default();
    for &(first, end) in &ranges {
        refold_range(conn, first, end)?;
    }
    let ids: Vec<i64> = changes
        .iter()
        .filter(|(_, b)| ranges.iter().any(|(first, end)| (*first..*end).contains(b)))
        .map(|(id, _)| *id)
        .collect();
    let write: &mut DbConnection = conn;
    for chunk in ids.chunks(500) {
        diesel::delete(rollup_changes::table.filter(rollup_changes::id.eq_any(chunk)))
            .execute(write)?;
    }
    folded.changes = ids.len();
    folded.buckets = ranges.iter().map(|(first, end)| end - first).sum::<i64>() as usize;
    Ok(folded)
}

/// A timestamp column's bucket, in SQL.
fn bucket_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "(CAST(strftime('%s', o.created_at) AS INTEGER) / 900)",
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

/// How a window splits: whole folded buckets `[first, end)` read from the rollups (minus
/// those with a change row left), and the UTC ranges read from the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub rolled: Option<(i64, i64)>,
    pub raw: Vec<(NaiveDateTime, NaiveDateTime)>,
}

/// Whether `group`'s rows can be cut from whole buckets in `window`'s zone: always, but a
/// time grouping in an offset that is not a whole number of quarters (`+03:20`), whose day
/// edges fall inside buckets; such a report reads its whole window from the rows.
pub fn buckets_fit(group: ReportGroup, window: &Window) -> bool {
    let time = matches!(
        group,
        ReportGroup::Day | ReportGroup::Week | ReportGroup::Month
    );
    !time || i64::from(window.offset_minutes()) % (BUCKET_SECS / 60) == 0
}

/// Splits `[from, to)`: the unaligned edges and the buckets with a change row left are
/// read from the rows. Call it in the snapshot the report reads in.
pub fn plan(conn: &mut DbConnection, from: NaiveDateTime, to: NaiveDateTime) -> QueryResult<Plan> {
    let first = bucket_of(from) + i64::from(bucket_start(bucket_of(from)) < from);
    let end = bucket_of(to);
    if first >= end {
        return Ok(Plan {
            rolled: None,
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
    let mut run: Option<(i64, i64)> = None;
    for bucket in dirty {
        run = match run {
            Some((start, stop)) if stop == bucket => Some((start, bucket + 1)),
            Some((start, stop)) => {
                raw.push((bucket_start(start), bucket_start(stop)));
                Some((bucket, bucket + 1))
            }
            None => Some((bucket, bucket + 1)),
        };
    }
    if let Some((start, stop)) = run {
        raw.push((bucket_start(start), bucket_start(stop)));
    }
    if bucket_start(end) < to {
        raw.push((bucket_start(end), to));
    }
    if raw.len() > MAX_RAW_RANGES {
        return Ok(Plan {
            rolled: None,
            raw: vec![(from, to)],
        });
    }
    Ok(Plan {
        rolled: Some((first, end)),
        raw,
    })
}

/// A bucket's start as SQL, in place of `o.created_at` in the report's key expressions.
fn bucket_time_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "datetime(r.bucket * 900, 'unixepoch')",
        Dialect::Postgres => {
            "(TIMESTAMP '1970-01-01 00:00:00' + r.bucket * INTERVAL '900 seconds')"
        }
    }
}

/// A report key expression written over `orders o` (and `services s`), over a rollup `r`.
fn rolled_key(dialect: Dialect, key: &str) -> String {
    key.replace("o.created_at", bucket_time_sql(dialect))
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

const CLEAN: &str = "r.bucket >= ? AND r.bucket < ? \
    AND r.bucket NOT IN (SELECT c.bucket FROM rollup_changes c WHERE c.bucket >= ? AND c.bucket < ?)";

/// The refund report's sums over the folded buckets `[first, end)` (those with no change
/// row left), keyed as `reports::sums` keys them. `key` is the report's key expression.
pub fn rolled_sums(
    conn: &mut DbConnection,
    group: ReportGroup,
    key: &str,
    window: &Window,
    (first, end): (i64, i64),
    scope: ReportScope,
) -> QueryResult<(Vec<OrderSums>, Vec<RefundSums>)> {
    let dialect = Dialect::of(conn);
    let key =
        rolled_key(dialect, key).replace("{offset}", &format!("{:+}", window.offset_minutes()));
    let join = if group == ReportGroup::Provider {
        "JOIN services s ON s.id = r.service_id"
    } else {
        ""
    };
    let mut filter = CLEAN.to_string();
    if let ReportScope::Account(_) = scope {
        filter.push_str(" AND r.account_id = ?");
    }
    let orders_sql = format!(
        "SELECT {key} AS grp, CAST(COALESCE(SUM(r.orders), 0) AS BIGINT) AS orders_count, \
         CAST(COALESCE(SUM(r.charged_micros), 0) AS BIGINT) AS charged_micros, \
         CAST(COALESCE(SUM(r.refunded_orders), 0) AS BIGINT) AS refunded_orders \
         FROM rollup_orders r {join} WHERE {filter} GROUP BY 1"
    );
    let refunds_key = if group == ReportGroup::Reason {
        "r.reason".to_string()
    } else {
        key.clone()
    };
    let refunds_sql = format!(
        "SELECT {refunds_key} AS grp, r.reason AS reason, \
         CAST(COALESCE(SUM(r.refunds), 0) AS BIGINT) AS refunds_count, \
         CAST(COALESCE(SUM(r.refunded_micros), 0) AS BIGINT) AS refunded_micros, \
         CAST(COALESCE(SUM(r.refunded_orders), 0) AS BIGINT) AS refunded_orders \
         FROM rollup_refunds r {join} WHERE {filter} GROUP BY 1, 2"
    );
    let bind = |sql: String| {
        let query = diesel::sql_query(dialect.placeholders(&sql))
            .bind::<BigInt, _>(first)
            .bind::<BigInt, _>(end)
            .bind::<BigInt, _>(first)
            .bind::<BigInt, _>(end);
        let account = match scope {
            ReportScope::Account(id) => id.get(),
            ReportScope::All => 0,
        };
        (query, account)
    };
    let (query, account) = bind(orders_sql);
    let orders: Vec<RolledOrders> = match scope {
        ReportScope::All => query.load(conn)?,
        ReportScope::Account(_) => query.bind::<BigInt, _>(account).load(conn)?,
    };
    let (query, account) = bind(refunds_sql);
    let refunds: Vec<RolledRefunds> = match scope {
        ReportScope::All => query.load(conn)?,
        ReportScope::Account(_) => query.bind::<BigInt, _>(account).load(conn)?,
    };
    Ok((
        orders
            .into_iter()
            .map(|r| OrderSums {
                key: r.grp,
                orders: r.orders_count,
                charged: r.charged_micros,
                refunded_orders: r.refunded_orders,
            })
            .collect(),
        refunds
            .into_iter()
            .map(|r| RefundSums {
                key: r.grp,
                reason: r.reason,
                refunds: r.refunds_count,
                refunded: r.refunded_micros,
                refunded_orders: r.refunded_orders,
            })
            .collect(),
    ))
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
        if let Some(range) = plan.rolled {
            for (key, m) in rolled_money(conn, group, window, range, provider_id)? {
                totals.merge(&m);
                if let Some(key) = key {
                    rows.entry(key).or_default().merge(&m);
                }
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
    (first, end): (i64, i64),
    provider_id: Option<ProviderId>,
) -> QueryResult<Vec<(Option<String>, MoneyMetrics)>> {
    let dialect = Dialect::of(conn);
    let key = match group {
        ReportGroup::Provider => "CAST(r.provider_id AS TEXT)".to_string(),
        ReportGroup::Service => "CAST(r.service_id AS TEXT)".to_string(),
        ReportGroup::Day | ReportGroup::Week => {
            rolled_key(dialect, super::reports::key_sql(dialect, group))
                .replace("{offset}", &format!("{:+}", window.offset_minutes()))
        }
        _ => "CAST(NULL AS TEXT)".to_string(),
    };
    let mut filter = CLEAN.to_string();
    if provider_id.is_some() {
        filter.push_str(" AND r.provider_id = ?");
    }
    let sql =
        format!("SELECT {key} AS grp, {MONEY_SUMS} FROM rollup_money r WHERE {filter} GROUP BY 1");
    let query = diesel::sql_query(dialect.placeholders(&sql))
        .bind::<BigInt, _>(first)
        .bind::<BigInt, _>(end)
        .bind::<BigInt, _>(first)
        .bind::<BigInt, _>(end);
    let rows: Vec<RolledMoney> = match provider_id {
        Some(id) => query.bind::<BigInt, _>(id.get()).load(conn)?,
        None => query.load(conn)?,
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.grp,
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
            )
        })
        .collect())
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
