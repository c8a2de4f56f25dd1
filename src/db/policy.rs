//! What the refund-abuse policy reads: an account's recent refund requests, refund
//! rate and rejections, all from the database so every process decides alike.

use chrono::{Duration, NaiveDateTime};
use diesel::dsl::{count_star, max, min};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamp};

use super::backend::Dialect;
use super::schema::{dispute_refusals, refunds};
use super::{DbConnection, WriteConn};
use crate::domain::account::Account;
use crate::domain::ids::{AccountId, OrderId};
use crate::domain::money::Money;
use crate::domain::policy::{Decision, Standing};
use crate::domain::refund::{DisputeReason, RefundSource, RefundStatus};

fn dispute_reasons() -> Vec<&'static str> {
    DisputeReason::ALL
        .iter()
        .map(|r| r.refund_reason().as_str())
        .collect()
}

/// Reseller refund requests since `since`: how many, and the oldest one's time.
fn requests_since(
    conn: &mut DbConnection,
    account_id: AccountId,
    since: NaiveDateTime,
) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    refunds::table
        .filter(refunds::account_id.eq(account_id))
        .filter(refunds::source.eq(RefundSource::Reseller.as_str()))
        .filter(refunds::reason.eq_any(dispute_reasons()))
        .filter(refunds::created_at.ge(since))
        .select((count_star(), min(refunds::created_at)))
        .get_result(conn)
}

#[derive(QueryableByName)]
struct RateRow {
    #[diesel(sql_type = BigInt)]
    orders: i64,
    #[diesel(sql_type = BigInt)]
    refunded_orders: i64,
    #[diesel(sql_type = BigInt)]
    charged: Money,
    #[diesel(sql_type = BigInt)]
    refunded: Money,
}

// SUM over BIGINT is NUMERIC on PostgreSQL: cast back so both backends return i64.
const RATE_SQL: &str = "SELECT CAST(COUNT(*) AS BIGINT) AS orders, \
    CAST(COALESCE(SUM(CASE WHEN refunded_micros > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS refunded_orders, \
    CAST(COALESCE(SUM(charge_micros), 0) AS BIGINT) AS charged, \
    CAST(COALESCE(SUM(refunded_micros), 0) AS BIGINT) AS refunded \
    FROM orders WHERE account_id = ? AND created_at >= ?";

/// The account's standing as of `now`.
pub fn standing(
    conn: &mut DbConnection,
    account: &Account,
    now: NaiveDateTime,
) -> QueryResult<Standing> {
    let (requests_last_hour, oldest_request_last_hour) =
        requests_since(conn, account.id, now - Duration::hours(1))?;
    let (requests_last_day, oldest_request_last_day) =
        requests_since(conn, account.id, now - Duration::days(1))?;
    let sql = Dialect::of(conn).placeholders(RATE_SQL);
    let rate = diesel::sql_query(sql)
        .bind::<BigInt, _>(account.id)
        .bind::<Timestamp, _>(now - Duration::days(30))
        .get_result::<RateRow>(conn)?;
    let (rejections_7d, last_rejection_at): (i64, Option<NaiveDateTime>) = refunds::table
        .filter(refunds::account_id.eq(account.id))
        .filter(refunds::source.eq(RefundSource::Reseller.as_str()))
        .filter(refunds::status.eq(RefundStatus::Rejected.as_str()))
        .filter(refunds::decided_at.ge(now - Duration::days(7)))
        .select((count_star(), max(refunds::decided_at)))
        .get_result(conn)?;
    Ok(Standing {
        requests_last_hour,
        requests_last_day,
        oldest_request_last_hour,
        oldest_request_last_day,
        orders_30d: rate.orders,
        refunded_orders_30d: rate.refunded_orders,
        charged_30d: rate.charged,
        refunded_30d: rate.refunded,
        rejections_7d,
        last_rejection_at,
        allowlisted_until: account.refund_allowlisted_until,
    })
}

/// Keeps a refused request on record, for the operator's view of the account.
pub fn record_refusal(
    conn: &mut WriteConn<'_>,
    account_id: AccountId,
    order_id: OrderId,
    decision: &Decision,
    at: NaiveDateTime,
) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    diesel::insert_into(dispute_refusals::table)
        .values((
            dispute_refusals::account_id.eq(account_id),
            dispute_refusals::order_id.eq(order_id),
            dispute_refusals::rule.eq(decision.rule),
            dispute_refusals::detail.eq(decision.detail.to_string()),
            dispute_refusals::created_at.eq(at),
        ))
        .execute(conn)
        .map(drop)
}

/// Refused requests since `since`.
pub fn refusals_since(
    conn: &mut DbConnection,
    account_id: AccountId,
    since: NaiveDateTime,
) -> QueryResult<i64> {
    dispute_refusals::table
        .filter(dispute_refusals::account_id.eq(account_id))
        .filter(dispute_refusals::created_at.ge(since))
        .select(count_star())
        .get_result(conn)
}
