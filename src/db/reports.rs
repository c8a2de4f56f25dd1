//! Refund reports, aggregated in SQL so their cost follows the window, not the history.
//!
//! Two grouped queries, both driven by the orders placed in the window (buckets are by
//! order date, see `domain::report`): one sums the orders, one sums their succeeded
//! refunds per reason. Both read only indexes added by the `report_indexes` migration:
//!
//! - `orders_report (created_at, account_id, service_id, charge_micros, refunded_micros)`
//!   and `orders_account_report (account_id, created_at, …)`: a range scan over the
//!   window that never touches the table (covering on SQLite, `INCLUDE` on PostgreSQL);
//! - `refunds_report (order_id, reason, amount_micros) WHERE status = 'succeeded'`: one
//!   index probe per order of the window, again without reading the table.
//!
//! Query plans on a seeded database (1,000,000 orders over a year, 100,000 refunds; the
//! newest 30 days grouped by service; `reseller-api bench-reports --explain` prints them):
//!
//! ```text
//! SQLite (after ANALYZE; with 40 accounts it skip-scans the per-account index):
//!   orders:  SEARCH o USING COVERING INDEX orders_account_report (ANY(account_id) AND created_at>? AND created_at<?)
//!            USE TEMP B-TREE FOR GROUP BY
//!   refunds: SEARCH o USING COVERING INDEX orders_account_report (ANY(account_id) AND created_at>? AND created_at<?)
//!            SEARCH r USING COVERING INDEX refunds_report (order_id=?)
//!            USE TEMP B-TREE FOR GROUP BY
//! PostgreSQL 15:
//!   orders:  Finalize GroupAggregate
//!              -> Parallel Index Only Scan using orders_report on orders o  (Heap Fetches: 0)
//!                   Index Cond: ((created_at >= $1) AND (created_at < $2))
//!   refunds: GroupAggregate -> Parallel Hash Join (r.order_id = o.id)
//!              -> Parallel Seq Scan on refunds r  (Filter: status = 'succeeded')
//!              -> Parallel Index Scan using orders_report on orders o
//! ```
//!
//! With 100,000 refunds PostgreSQL finds hashing the whole (small) refunds table cheaper
//! (15 ms) than 82,000 index probes; the per-order plan (Nested Loop → Index Scan on
//! `refunds(order_id)`, 76 ms here) is what it switches to as the refunds table grows, so
//! the cost stays bounded by the window.
//!
//! Date functions (`strftime` / `date_trunc`) are written per backend; placeholders are
//! written `?` and numbered for PostgreSQL by [`Dialect::placeholders`]; `SUM(bigint)` is
//! NUMERIC on PostgreSQL, hence the casts. Literal constants (`'succeeded'`, the offset in minutes) are inlined on purpose:
//! a partial index is only used when the query's own text implies its condition.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};

use super::backend::Dialect;
use super::schema::{accounts, refunds, services};
use super::DbConnection;
use crate::domain::ids::AccountId;
use crate::domain::money::Money;
use crate::domain::refund::RefundStatus;
use crate::domain::report::{OrderSums, RefundSums, ReportGroup, Window};

/// Whose orders a report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportScope {
    All,
    Account(AccountId),
}

#[derive(QueryableByName)]
struct OrderSumsRow {
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
struct RefundSumsRow {
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

/// The SQL expression a row's key is, as text (NULL for "no provider").
pub(crate) fn key_sql(dialect: Dialect, group: ReportGroup) -> &'static str {
    // The offset is inlined by `render`; keeping the templates static keeps them reviewable.
    match (dialect, group) {
        (Dialect::Sqlite, ReportGroup::Day) => {
            "strftime('%Y-%m-%d', o.created_at, '{offset} minutes')"
        }
        (Dialect::Sqlite, ReportGroup::Week) => {
            // 'weekday 0' moves to the next Sunday (or stays); 6 days back is its Monday.
            "date(o.created_at, '{offset} minutes', 'weekday 0', '-6 days')"
        }
        (Dialect::Sqlite, ReportGroup::Month) => {
            "strftime('%Y-%m-01', o.created_at, '{offset} minutes')"
        }
        (Dialect::Postgres, ReportGroup::Day) => {
            "to_char(o.created_at + interval '{offset} minutes', 'YYYY-MM-DD')"
        }
        (Dialect::Postgres, ReportGroup::Week) => {
            "to_char(date_trunc('week', o.created_at + interval '{offset} minutes'), 'YYYY-MM-DD')"
        }
        (Dialect::Postgres, ReportGroup::Month) => {
            "to_char(date_trunc('month', o.created_at + interval '{offset} minutes'), 'YYYY-MM-DD')"
        }
        (_, ReportGroup::Service) => "CAST(o.service_id AS TEXT)",
        (_, ReportGroup::Account) => "CAST(o.account_id AS TEXT)",
        // The provider the order's service is routed to (NULL: fulfilled by hand).
        (_, ReportGroup::Provider) => "CAST(s.provider_id AS TEXT)",
        // Orders are summed over the whole window; refunds are keyed by their reason.
        (_, ReportGroup::Reason) => "CAST(NULL AS TEXT)",
    }
}

/// Builds one report query's text for the backend, with its placeholders.
fn render(
    dialect: Dialect,
    template: &str,
    group: ReportGroup,
    window: &Window,
    scope: ReportScope,
) -> String {
    // Placeholders in bind order: the window's bounds, then the account.
    let mut filter = "o.created_at >= ? AND o.created_at < ?".to_string();
    if let ReportScope::Account(_) = scope {
        filter.push_str(" AND o.account_id = ?");
    }
    let join_services = if group == ReportGroup::Provider {
        "JOIN services s ON s.id = o.service_id"
    } else {
        ""
    };
    let offset = format!("{:+}", window.offset_minutes());
    let sql = template
        .replace("{key}", key_sql(dialect, group))
        .replace("{offset}", &offset)
        .replace("{join_services}", join_services)
        .replace("{filter}", &filter)
        .replace("{succeeded}", RefundStatus::Succeeded.as_str());
    dialect.placeholders(&sql)
}

const ORDERS_SQL: &str = "SELECT {key} AS grp, \
    COUNT(*) AS orders_count, \
    CAST(COALESCE(SUM(o.charge_micros), 0) AS BIGINT) AS charged_micros, \
    CAST(COALESCE(SUM(CASE WHEN o.refunded_micros > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS refunded_orders \
    FROM orders o {join_services} \
    WHERE {filter} \
    GROUP BY 1";

const REFUNDS_SQL_KEYED: &str = "SELECT {key} AS grp, r.reason AS reason, \
    COUNT(*) AS refunds_count, \
    CAST(COALESCE(SUM(r.amount_micros), 0) AS BIGINT) AS refunded_micros, \
    COUNT(DISTINCT r.order_id) AS refunded_orders \
    FROM orders o {join_services} \
    JOIN refunds r ON r.order_id = o.id AND r.status = '{succeeded}' \
    WHERE {filter} \
    GROUP BY 1, 2";

const REFUNDS_SQL_BY_REASON: &str = "SELECT r.reason AS grp, r.reason AS reason, \
    COUNT(*) AS refunds_count, \
    CAST(COALESCE(SUM(r.amount_micros), 0) AS BIGINT) AS refunded_micros, \
    COUNT(DISTINCT r.order_id) AS refunded_orders \
    FROM orders o \
    JOIN refunds r ON r.order_id = o.id AND r.status = '{succeeded}' \
    WHERE {filter} \
    GROUP BY 1, 2";

fn refunds_template(group: ReportGroup) -> &'static str {
    if group == ReportGroup::Reason {
        REFUNDS_SQL_BY_REASON
    } else {
        REFUNDS_SQL_KEYED
    }
}

/// The two report queries as the backend will run them, for `--explain` and tests.
pub fn report_sql(
    conn: &DbConnection,
    group: ReportGroup,
    window: &Window,
    scope: ReportScope,
) -> [String; 2] {
    let dialect = Dialect::of(conn);
    [
        render(dialect, ORDERS_SQL, group, window, scope),
        render(dialect, refunds_template(group), group, window, scope),
    ]
}

fn load<R>(
    conn: &mut DbConnection,
    sql: String,
    window: &Window,
    scope: ReportScope,
) -> QueryResult<Vec<R>>
where
    R: QueryableByName<<DbConnection as Connection>::Backend> + 'static,
{
    let query = diesel::sql_query(sql)
        .bind::<Timestamp, _>(window.from)
        .bind::<Timestamp, _>(window.to);
    match scope {
        ReportScope::All => query.load(conn),
        ReportScope::Account(id) => query.bind::<BigInt, _>(id).load(conn),
    }
}

/// The order sums and refund sums of a report: whole folded buckets from the rollups
/// (`db::rollups`: the coarsest whole spans that fit, 15-minute rows at their edges), the
/// window's unaligned edges and the buckets not folded yet from the rows, all in one
/// snapshot. Equal to [`raw_sums`] to the micro-unit.
pub fn sums(
    conn: &mut DbConnection,
    group: ReportGroup,
    window: &Window,
    scope: ReportScope,
) -> QueryResult<(Vec<OrderSums>, Vec<RefundSums>)> {
    super::consistent_read(conn, |conn| {
        if !super::rollups::buckets_fit(group, window) {
            return raw_sums(conn, group, window, scope);
        }
        let plan = super::rollups::plan(conn, window.from, window.to)?;
        let (mut orders, mut refunds) = (Vec::new(), Vec::new());
        for (from, to) in &plan.raw {
            let part = Window {
                from: *from,
                to: *to,
                ..*window
            };
            let (o, r) = raw_sums(conn, group, &part, scope)?;
            orders.extend(o);
            refunds.extend(r);
        }
        let (o, r) = super::rollups::rolled_sums(conn, group, window, &plan.clean, scope)?;
        orders.extend(o);
        refunds.extend(r);
        Ok((orders, refunds))
    })
}

/// The order sums and refund sums of a report, grouped in the database from the rows
/// alone (the computation the rollups must equal).
pub fn raw_sums(
    conn: &mut DbConnection,
    group: ReportGroup,
    window: &Window,
    scope: ReportScope,
) -> QueryResult<(Vec<OrderSums>, Vec<RefundSums>)> {
    let [orders_sql, refunds_sql] = report_sql(conn, group, window, scope);
    let orders = load::<OrderSumsRow>(conn, orders_sql, window, scope)?
        .into_iter()
        .map(|row| OrderSums {
            key: row.grp,
            orders: row.orders_count,
            charged: row.charged_micros,
            refunded_orders: row.refunded_orders,
        })
        .collect();
    let refunds = load::<RefundSumsRow>(conn, refunds_sql, window, scope)?
        .into_iter()
        .map(|row| RefundSums {
            key: row.grp,
            reason: row.reason,
            refunds: row.refunds_count,
            refunded: row.refunded_micros,
            refunded_orders: row.refunded_orders,
        })
        .collect();
    Ok((orders, refunds))
}

/// Refund requests awaiting review now (whatever the window), of one account or all.
pub fn pending_review_count(conn: &mut DbConnection, scope: ReportScope) -> QueryResult<i64> {
    // The status as a literal (a constant of ours), so one reseller's count reads the
    // partial index `refunds_pending_review` (its `WHERE` must be implied by the query's;
    // a bound parameter is not).
    let pending = format!(
        "refunds.status = '{}'",
        RefundStatus::PendingReview.as_str()
    );
    let mut query = refunds::table
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(&pending))
        .into_boxed();
    if let ReportScope::Account(id) = scope {
        query = query.filter(refunds::account_id.eq(id));
    }
    query.count().get_result(conn)
}

/// Names of the services with these ids.
pub fn service_names(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<(i64, String)>> {
    services::table
        .filter(services::id.eq_any(ids))
        .select((services::id, services::name))
        .load(conn)
}

/// Names of the providers with these ids.
pub fn provider_names(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<(i64, String)>> {
    use super::schema::providers;
    providers::table
        .filter(providers::id.eq_any(ids))
        .select((providers::id, providers::name))
        .load(conn)
}

/// Names of the accounts with these ids.
pub fn account_names(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<(i64, String)>> {
    accounts::table
        .filter(accounts::id.eq_any(ids))
        .select((accounts::id, accounts::name))
        .load(conn)
}

#[derive(QueryableByName)]
struct SqlitePlanRow {
    #[diesel(sql_type = Text)]
    detail: String,
}

#[derive(QueryableByName)]
struct PgPlanRow {
    #[diesel(sql_type = Text)]
    #[diesel(column_name = "QUERY PLAN")]
    plan: String,
}

/// The backend's plan of each report query: `EXPLAIN QUERY PLAN` on SQLite,
/// `EXPLAIN (ANALYZE, BUFFERS)` on PostgreSQL.
pub fn explain(
    conn: &mut DbConnection,
    group: ReportGroup,
    window: &Window,
    scope: ReportScope,
) -> QueryResult<Vec<String>> {
    let mut out = Vec::new();
    for sql in report_sql(conn, group, window, scope) {
        out.push(format!("-- {sql}"));
        match Dialect::of(conn) {
            Dialect::Sqlite => {
                let rows: Vec<SqlitePlanRow> =
                    load(conn, format!("EXPLAIN QUERY PLAN {sql}"), window, scope)?;
                out.extend(rows.into_iter().map(|r| r.detail));
            }
            Dialect::Postgres => {
                let rows: Vec<PgPlanRow> = load(
                    conn,
                    format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"),
                    window,
                    scope,
                )?;
                out.extend(rows.into_iter().map(|r| r.plan));
            }
        }
    }
    Ok(out)
}

/// The account with the most orders in the window, for benchmarking a reseller's report.
pub fn busiest_account(conn: &mut DbConnection, window: &Window) -> QueryResult<AccountId> {
    use super::schema::orders;
    orders::table
        .filter(orders::created_at.ge(window.from))
        .filter(orders::created_at.lt(window.to))
        .group_by(orders::account_id)
        .select(orders::account_id)
        .order(diesel::dsl::count_star().desc())
        .first(conn)
}

/// Bounds of the orders' creation times, for picking a benchmark window.
pub fn order_time_range(
    conn: &mut DbConnection,
) -> QueryResult<(Option<NaiveDateTime>, Option<NaiveDateTime>)> {
    use super::schema::orders;
    use diesel::dsl::{max, min};
    orders::table
        .select((min(orders::created_at), max(orders::created_at)))
        .first(conn)
}
