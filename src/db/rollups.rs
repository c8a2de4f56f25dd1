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

/// Folds the change rows of at most `max_buckets` buckets (the oldest changes first):
/// each bucket recomputed from the rows, then exactly the change rows read are deleted.
pub fn fold(conn: &mut WriteConn<'_>, max_buckets: usize) -> QueryResult<Folded> {
    let changes: Vec<(i64, i64)> = {
        let read: &mut DbConnection = conn;
        rollup_changes::table
            .order(rollup_changes::id.asc())
            .limit(20_000)
            .select((rollup_changes::id, rollup_changes::bucket))
            .load(read)?
    };
    let mut buckets = BTreeSet::new();
    let mut ids = Vec::new();
    for (id, bucket) in changes {
        if buckets.len() >= max_buckets && !buckets.contains(&bucket) {
            continue;
        }
        buckets.insert(bucket);
        ids.push(id);
    }
    for &bucket in &buckets {
        refold_bucket(conn, bucket)?;
    }
    let write: &mut DbConnection = conn;
    for chunk in ids.chunks(500) {
        diesel::delete(rollup_changes::table.filter(rollup_changes::id.eq_any(chunk)))
            .execute(write)?;
    }
    Ok(Folded {
        changes: ids.len(),
        buckets: buckets.len(),
    })
}

const FOLD_ORDERS: &str = "INSERT INTO rollup_orders \
    (bucket, service_id, account_id, orders, charged_micros, refunded_orders) \
    SELECT CAST(? AS BIGINT), o.service_id, o.account_id, COUNT(*), \
    CAST(COALESCE(SUM(o.charge_micros), 0) AS BIGINT), \
    CAST(COALESCE(SUM(CASE WHEN o.refunded_micros > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) \
    FROM orders o WHERE o.created_at >= ? AND o.created_at < ? \
    GROUP BY o.service_id, o.account_id";

const FOLD_REFUNDS: &str = "INSERT INTO rollup_refunds \
    (bucket, service_id, account_id, reason, refunds, refunded_micros, refunded_orders) \
    SELECT CAST(? AS BIGINT), o.service_id, o.account_id, r.reason, COUNT(*), \
    CAST(COALESCE(SUM(r.amount_micros), 0) AS BIGINT), COUNT(DISTINCT r.order_id) \
    FROM orders o JOIN refunds r ON r.order_id = o.id AND r.status = '{succeeded}' \
    WHERE o.created_at >= ? AND o.created_at < ? \
    GROUP BY o.service_id, o.account_id, r.reason";

/// The rollup rows of `bucket`, as its rows give them now.
fn refold_bucket(conn: &mut WriteConn<'_>, bucket: i64) -> QueryResult<()> {
    let (start, end) = (bucket_start(bucket), bucket_start(bucket + 1));
    let money = raw_money_by_service(conn, start, end)?;
    let conn: &mut DbConnection = conn;
    diesel::delete(rollup_orders::table.filter(rollup_orders::bucket.eq(bucket))).execute(conn)?;
    diesel::delete(rollup_refunds::table.filter(rollup_refunds::bucket.eq(bucket)))
        .execute(conn)?;
    diesel::delete(rollup_money::table.filter(rollup_money::bucket.eq(bucket))).execute(conn)?;
    let dialect = Dialect::of(conn);
    for template in [FOLD_ORDERS, FOLD_REFUNDS] {
        let sql = template.replace("{succeeded}", RefundStatus::Succeeded.as_str());
        diesel::sql_query(dialect.placeholders(&sql))
            .bind::<BigInt, _>(bucket)
            .bind::<Timestamp, _>(start)
            .bind::<Timestamp, _>(end)
            .execute(conn)?;
    }
    for ((provider_id, service_id), m) in money {
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
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The provider money sums of the orders placed in `[from, to)` per (provider, service),
/// from the rows.
fn raw_money_by_service(
    conn: &mut DbConnection,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> QueryResult<BTreeMap<(i64, i64), MoneyMetrics>> {
    let mut out: BTreeMap<(i64, i64), MoneyMetrics> = BTreeMap::new();
    for order in costs::costed_orders(conn, from, to, None)? {
        out.entry((order.provider_id, order.service_id))
            .or_default()
            .add(&order);
    }
    Ok(out)
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
    CAST(COALESCE(SUM(r.unrecovered_cases), 0) AS BIGINT) AS unrecovered_cases";

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

type OrderRollup = (i64, i64, i64, Money, i64);
type RefundRollup = (i64, i64, String, i64, Money, i64);

/// Compares every folded bucket's rollups with its rows (in the caller's snapshot), one
/// bucket at a time: every bucket that has orders or rollup rows, but those with a change
/// row left (they are read from the rows until folded).
pub fn check(conn: &mut DbConnection) -> QueryResult<(usize, Vec<Mismatch>)> {
    use super::schema::orders;
    let dirty: BTreeSet<i64> = rollup_changes::table
        .select(rollup_changes::bucket)
        .distinct()
        .load::<i64>(conn)?
        .into_iter()
        .collect();
    let mut mismatches = Vec::new();
    let mut checked = 0;
    let mut next = i64::MIN;
    loop {
        let rolled: Option<i64> = rollup_orders::table
            .filter(rollup_orders::bucket.ge(next))
            .select(diesel::dsl::min(rollup_orders::bucket))
            .get_result(conn)?;
        let money: Option<i64> = rollup_money::table
            .filter(rollup_money::bucket.ge(next))
            .select(diesel::dsl::min(rollup_money::bucket))
            .get_result(conn)?;
        let ordered: Option<NaiveDateTime> = orders::table
            .filter(orders::created_at.ge(bucket_start(next.max(0))))
            .select(diesel::dsl::min(orders::created_at))
            .get_result(conn)?;
        let Some(bucket) = [rolled, money, ordered.map(bucket_of)]
            .into_iter()
            .flatten()
            .min()
        else {
            break;
        };
        if !dirty.contains(&bucket) {
            checked += 1;
            check_bucket(conn, bucket, &mut mismatches)?;
        }
        next = bucket + 1;
    }
    Ok((checked, mismatches))
}

fn check_bucket(
    conn: &mut DbConnection,
    bucket: i64,
    mismatches: &mut Vec<Mismatch>,
) -> QueryResult<()> {
    let (start, end) = (bucket_start(bucket), bucket_start(bucket + 1));
    let stored_orders: BTreeMap<(i64, i64), (i64, Money, i64)> = rollup_orders::table
        .filter(rollup_orders::bucket.eq(bucket))
        .select((
            rollup_orders::service_id,
            rollup_orders::account_id,
            rollup_orders::orders,
            rollup_orders::charged_micros,
            rollup_orders::refunded_orders,
        ))
        .load::<OrderRollup>(conn)?
        .into_iter()
        .map(|(s, a, n, c, r)| ((s, a), (n, c, r)))
        .collect();
    let stored_refunds: BTreeMap<(i64, i64, String), (i64, Money, i64)> = rollup_refunds::table
        .filter(rollup_refunds::bucket.eq(bucket))
        .select((
            rollup_refunds::service_id,
            rollup_refunds::account_id,
            rollup_refunds::reason,
            rollup_refunds::refunds,
            rollup_refunds::refunded_micros,
            rollup_refunds::refunded_orders,
        ))
        .load::<RefundRollup>(conn)?
        .into_iter()
        .map(|(s, a, reason, n, m, o)| ((s, a, reason), (n, m, o)))
        .collect();
    let (raw_orders, raw_refunds) = raw_bucket(conn, start, end)?;
    if stored_orders != raw_orders {
        mismatches.push(Mismatch {
            bucket,
            what: "orders",
        });
    }
    if stored_refunds != raw_refunds {
        mismatches.push(Mismatch {
            bucket,
            what: "refunds",
        });
    }
    let stored_money: BTreeMap<(i64, i64), MoneyMetrics> = {
        let sql = format!(
            "SELECT CAST(r.provider_id AS TEXT) || ':' || CAST(r.service_id AS TEXT) AS grp, {MONEY_SUMS} \
             FROM rollup_money r WHERE r.bucket = ? GROUP BY r.provider_id, r.service_id"
        );
        let dialect = Dialect::of(conn);
        diesel::sql_query(dialect.placeholders(&sql))
            .bind::<BigInt, _>(bucket)
            .load::<RolledMoney>(conn)?
            .into_iter()
            .filter_map(|r| {
                let key = r.grp.clone()?;
                let (p, s) = key.split_once(':')?;
                Some((
                    (p.parse().ok()?, s.parse().ok()?),
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
                    },
                ))
            })
            .collect()
    };
    if stored_money != raw_money_by_service(conn, start, end)? {
        mismatches.push(Mismatch {
            bucket,
            what: "provider money",
        });
    }
    Ok(())
}

#[derive(QueryableByName)]
struct RawOrders {
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

type RawBucket = (
    BTreeMap<(i64, i64), (i64, Money, i64)>,
    BTreeMap<(i64, i64, String), (i64, Money, i64)>,
);

/// A bucket's sums as the fold computes them, from the rows.
fn raw_bucket(
    conn: &mut DbConnection,
    start: NaiveDateTime,
    end: NaiveDateTime,
) -> QueryResult<RawBucket> {
    let dialect = Dialect::of(conn);
    let orders: Vec<RawOrders> = diesel::sql_query(aliased_orders(dialect))
        .bind::<Timestamp, _>(start)
        .bind::<Timestamp, _>(end)
        .load(conn)?;
    let refunds: Vec<RawRefunds> = diesel::sql_query(aliased_refunds(dialect))
        .bind::<Timestamp, _>(start)
        .bind::<Timestamp, _>(end)
        .load(conn)?;
    Ok((
        orders
            .into_iter()
            .map(|r| {
                (
                    (r.service_id, r.account_id),
                    (r.orders, r.charged_micros, r.refunded_orders),
                )
            })
            .collect(),
        refunds
            .into_iter()
            .map(|r| {
                (
                    (r.service_id, r.account_id, r.reason),
                    (r.refunds, r.refunded_micros, r.refunded_orders),
                )
            })
            .collect(),
    ))
}

fn aliased_orders(dialect: Dialect) -> String {
    dialect.placeholders(
        "SELECT o.service_id AS service_id, o.account_id AS account_id, COUNT(*) AS orders, \
         CAST(COALESCE(SUM(o.charge_micros), 0) AS BIGINT) AS charged_micros, \
         CAST(COALESCE(SUM(CASE WHEN o.refunded_micros > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS refunded_orders \
         FROM orders o WHERE o.created_at >= ? AND o.created_at < ? \
         GROUP BY o.service_id, o.account_id",
    )
}

fn aliased_refunds(dialect: Dialect) -> String {
    let sql = "SELECT o.service_id AS service_id, o.account_id AS account_id, r.reason AS reason, \
         COUNT(*) AS refunds, CAST(COALESCE(SUM(r.amount_micros), 0) AS BIGINT) AS refunded_micros, \
         COUNT(DISTINCT r.order_id) AS refunded_orders \
         FROM orders o JOIN refunds r ON r.order_id = o.id AND r.status = '{succeeded}' \
         WHERE o.created_at >= ? AND o.created_at < ? \
         GROUP BY o.service_id, o.account_id, r.reason"
        .replace("{succeeded}", RefundStatus::Succeeded.as_str());
    dialect.placeholders(&sql)
}
