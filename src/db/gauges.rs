//! The database's side of `/metrics`: small reads taken at every scrape, each served by an
//! index (the partial ones of migration `000030_metrics_indexes`), never a table scan.

use chrono::NaiveDateTime;
use diesel::dsl::{count_star, min, sql};
use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::reports::{self, ReportScope};
use super::schema::provider_orders;
use super::DbConnection;

/// What the database says at one scrape.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Refund requests awaiting an operator's review.
    pub pending_review: i64,
    /// (provider id, forwarding state as stored, orders) for every state but `done`.
    pub forwarding: Vec<(i64, String, i64)>,
    /// The oldest last sync of an order sent upstream and not final yet (its creation
    /// when it was never synced); `None` when nothing is open upstream.
    pub oldest_sync: Option<NaiveDateTime>,
    /// How far the report rollups are behind their change log.
    pub rollup_lag: super::rollups::Lag,
    /// Open subscriptions (pending, active or paused), and the money they still hold in
    /// micro-units (their holds less what children captured and what was released).
    pub subscriptions_open: i64,
    pub subscriptions_held: crate::domain::money::SignedMoney,
}

/// The open statuses, literals as in the partial index `subscriptions_open`.
const OPEN_SUBSCRIPTION: &str = "status IN ('pending', 'active', 'paused')";

// The states are literals in the SQL, not bound values, so both planners can match them
// with the partial indexes' predicates.
const NOT_DONE: &str = "state <> 'done'";
const OPEN_UPSTREAM: &str = "state = 'sent'";

pub fn read(conn: &mut DbConnection) -> QueryResult<Gauges> {
    let pending_review = reports::pending_review_count(conn, ReportScope::All)?;
    // `done` holds every order ever finished and only grows; the rest is what is in flight
    // or waits for an operator.
    let forwarding = provider_orders::table
        .filter(sql::<Bool>(NOT_DONE))
        .group_by((provider_orders::provider_id, provider_orders::state))
        .select((
            provider_orders::provider_id,
            provider_orders::state,
            count_star(),
        ))
        .order((provider_orders::provider_id, provider_orders::state))
        .load::<(i64, String, i64)>(conn)?;
    let synced: Option<NaiveDateTime> = provider_orders::table
        .filter(sql::<Bool>(OPEN_UPSTREAM))
        .filter(provider_orders::last_synced_at.is_not_null())
        .select(min(provider_orders::last_synced_at))
        .first(conn)?;
    let never_synced: Option<NaiveDateTime> = provider_orders::table
        .filter(sql::<Bool>(OPEN_UPSTREAM))
        .filter(provider_orders::last_synced_at.is_null())
        .select(min(provider_orders::created_at))
        .first(conn)?;
    let (subscriptions_open, subscriptions_held) = super::schema::subscriptions::table
        .filter(sql::<Bool>(OPEN_SUBSCRIPTION))
        .select((
            count_star(),
            sql::<diesel::sql_types::BigInt>(
                "CAST(COALESCE(SUM(hold_micros - captured_micros - released_micros), 0) AS BIGINT)",
            ),
        ))
        .first::<(i64, i64)>(conn)?;
    let subscriptions_held = crate::domain::money::SignedMoney::from_micros(subscriptions_held);
    Ok(Gauges {
        subscriptions_open,
        subscriptions_held,
        pending_review,
        forwarding,
        oldest_sync: [synced, never_synced].into_iter().flatten().min(),
        rollup_lag: super::rollups::lag(conn)?,
    })
}
