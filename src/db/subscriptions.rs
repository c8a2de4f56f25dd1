//! Subscriptions: their rows, the id they take from the orders' sequence, and the money
//! columns the application moves together with the ledger.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::backend::lock_row;
use super::columns;
use super::schema::{orders, subscriptions};
use super::{now, DbConnection, WriteConn};
use crate::domain::ids::{AccountId, OrderId, ServiceId, SubscriptionId};
use crate::domain::money::Money;
use crate::domain::subscription::{NewSubscription, Subscription, SubscriptionStatus};

/// Named columns: each field binds the column of its name (`super::columns`).
#[derive(Queryable, Selectable)]
#[diesel(table_name = subscriptions, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct SubscriptionRow {
    id: SubscriptionId,
    account_id: AccountId,
    service_id: ServiceId,
    username: String,
    min_quantity: i64,
    max_quantity: i64,
    posts: i64,
    old_posts: i64,
    delay_minutes: i64,
    expires_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = String)]
    status: SubscriptionStatus,
    rate_micros: Money,
    post_charge_micros: Money,
    hold_micros: Money,
    captured_micros: Money,
    released_micros: Money,
    posts_served: i64,
    status_reason: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    ended_at: Option<NaiveDateTime>,
}

impl From<SubscriptionRow> for Subscription {
    fn from(row: SubscriptionRow) -> Subscription {
        Subscription {
            id: row.id,
            account_id: row.account_id,
            service_id: row.service_id,
            username: row.username,
            min: row.min_quantity,
            max: row.max_quantity,
            posts: row.posts,
            old_posts: row.old_posts,
            delay: row.delay_minutes,
            expires_at: row.expires_at,
            status: row.status,
            rate: row.rate_micros,
            post_charge: row.post_charge_micros,
            hold: row.hold_micros,
            captured: row.captured_micros,
            released: row.released_micros,
            posts_served: row.posts_served,
            status_reason: row.status_reason,
            created_at: row.created_at,
            updated_at: row.updated_at,
            ended_at: row.ended_at,
        }
    }
}

#[derive(QueryableByName)]
struct NextId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Takes the next id of the orders' sequence for a subscription, so that an order and a
/// subscription never share an id (API v2 asks `status` with the id `add` answered, which
/// may be either). PostgreSQL: `nextval` of the orders' id sequence. SQLite: the orders'
/// `AUTOINCREMENT` counter in `sqlite_sequence`, moved past both it and the highest order
/// id (as SQLite itself picks the next rowid), inside the caller's write transaction, which
/// SQLite runs alone on its writer.
pub fn next_id(conn: &mut WriteConn<'_>) -> QueryResult<SubscriptionId> {
    let conn: &mut DbConnection = conn;
    let id = match conn {
        DbConnection::Pg(pg) => {
            diesel::sql_query("SELECT nextval(pg_get_serial_sequence('orders', 'id')) AS id")
                .get_result::<NextId>(pg)?
                .id
        }
        DbConnection::Sqlite(sqlite) => {
            let updated = diesel::sql_query(
                "UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT COALESCE(MAX(id), 0) FROM orders)) + 1 \
                 WHERE name = 'orders' RETURNING seq AS id",
            )
            .get_results::<NextId>(sqlite)?;
            match updated.as_slice() {
                [one] => one.id,
                [] => {
                    // No order was ever inserted: the counter has no row yet.
                    diesel::sql_query(
                        "INSERT INTO sqlite_sequence (name, seq) \
                         SELECT 'orders', COALESCE(MAX(id), 0) + 1 FROM orders RETURNING seq AS id",
                    )
                    .get_result::<NextId>(sqlite)?
                    .id
                }
                _ => {
                    return Err(diesel::result::Error::QueryBuilderError(
                        "sqlite_sequence has more than one row for orders".into(),
                    ))
                }
            }
        }
    };
    Ok(SubscriptionId(id))
}

/// Records a new subscription with its id (from [`next_id`]) and status.
pub fn insert(
    conn: &mut WriteConn<'_>,
    id: SubscriptionId,
    new: &NewSubscription,
    status: SubscriptionStatus,
) -> QueryResult<Subscription> {
    let conn: &mut DbConnection = conn;
    let at = now();
    diesel::insert_into(subscriptions::table)
        .values((
            subscriptions::id.eq(id),
            subscriptions::account_id.eq(new.account_id),
            subscriptions::service_id.eq(new.service_id),
            subscriptions::username.eq(&new.username),
            subscriptions::min_quantity.eq(new.min),
            subscriptions::max_quantity.eq(new.max),
            subscriptions::posts.eq(new.posts),
            subscriptions::old_posts.eq(new.old_posts),
            subscriptions::delay_minutes.eq(new.delay),
            subscriptions::expires_at.eq(new.expiry.map(crate::domain::subscription::expires_at)),
            subscriptions::status.eq(status.as_str()),
            subscriptions::rate_micros.eq(new.rate.micros()),
            subscriptions::post_charge_micros.eq(new.post_charge.micros()),
            subscriptions::hold_micros.eq(new.hold.micros()),
            subscriptions::captured_micros.eq(0),
            subscriptions::released_micros.eq(0),
            subscriptions::posts_served.eq(0),
            subscriptions::created_at.eq(at),
            subscriptions::updated_at.eq(at),
        ))
        .returning(columns::<SubscriptionRow>())
        .get_result::<SubscriptionRow>(conn)
        .map(Subscription::from)
}

pub fn find(conn: &mut DbConnection, id: SubscriptionId) -> QueryResult<Option<Subscription>> {
    subscriptions::table
        .find(id)
        .select(columns::<SubscriptionRow>())
        .get_result::<SubscriptionRow>(conn)
        .optional()
        .map(|row| row.map(Subscription::from))
}

/// The subscription, if it belongs to `account_id`.
pub fn find_owned(
    conn: &mut DbConnection,
    account_id: AccountId,
    id: SubscriptionId,
) -> QueryResult<Option<Subscription>> {
    Ok(find(conn, id)?.filter(|s| s.account_id == account_id))
}

/// Reads a subscription and locks its row until the transaction ends (PostgreSQL; SQLite's
/// single writer serializes the transaction whole).
pub fn lock(conn: &mut DbConnection, id: SubscriptionId) -> QueryResult<Option<Subscription>> {
    let row: Option<SubscriptionRow> = lock_row(
        conn,
        subscriptions::table
            .find(id)
            .select(columns::<SubscriptionRow>()),
        QueryDsl::for_update,
    )?;
    Ok(row.map(Subscription::from))
}

/// One page of an account's subscriptions, newest first, strictly older than
/// `starting_after`.
pub fn page(
    conn: &mut DbConnection,
    account_id: AccountId,
    starting_after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Subscription>> {
    let mut query = subscriptions::table
        .filter(subscriptions::account_id.eq(account_id))
        .order(subscriptions::id.desc())
        .limit(limit)
        .select(columns::<SubscriptionRow>())
        .into_boxed();
    if let Some(cursor) = starting_after {
        query = query.filter(subscriptions::id.lt(cursor));
    }
    query
        .load::<SubscriptionRow>(conn)
        .map(|rows| rows.into_iter().map(Subscription::from).collect())
}

/// Subscriptions in id order after `after_id`, for `verify`.
pub fn scan(conn: &mut DbConnection, after_id: i64, limit: i64) -> QueryResult<Vec<Subscription>> {
    subscriptions::table
        .filter(subscriptions::id.gt(after_id))
        .order(subscriptions::id.asc())
        .limit(limit)
        .select(columns::<SubscriptionRow>())
        .load::<SubscriptionRow>(conn)
        .map(|rows| rows.into_iter().map(Subscription::from).collect())
}

/// Open subscriptions (Active or Paused) due to end by schedule: expired at `at`, or with
/// every post served. At most `limit`, oldest first.
pub fn due(
    conn: &mut DbConnection,
    at: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<SubscriptionId>> {
    subscriptions::table
        .filter(subscriptions::status.eq_any([
            SubscriptionStatus::Active.as_str(),
            SubscriptionStatus::Paused.as_str(),
        ]))
        .filter(
            subscriptions::expires_at
                .le(at)
                .or(subscriptions::posts_served.ge(subscriptions::posts + subscriptions::old_posts)),
        )
        .order(subscriptions::id.asc())
        .limit(limit)
        .select(subscriptions::id)
        .load(conn)
}

/// The child order already recorded for a post key, if any.
pub fn child_for_post(
    conn: &mut DbConnection,
    id: SubscriptionId,
    post_key: &str,
) -> QueryResult<Option<OrderId>> {
    orders::table
        .filter(orders::subscription_id.eq(id))
        .filter(orders::subscription_post_key.eq(post_key))
        .select(orders::id)
        .first(conn)
        .optional()
}

/// The ids of a subscription's child orders, oldest first.
pub fn children(conn: &mut DbConnection, id: SubscriptionId) -> QueryResult<Vec<OrderId>> {
    orders::table
        .filter(orders::subscription_id.eq(id))
        .order(orders::id.asc())
        .select(orders::id)
        .load(conn)
}

/// Up to `limit` open subscriptions of a service, oldest first.
pub fn open_for_service(
    conn: &mut DbConnection,
    service_id: ServiceId,
    limit: i64,
) -> QueryResult<Vec<SubscriptionId>> {
    subscriptions::table
        .filter(subscriptions::service_id.eq(service_id))
        .filter(subscriptions::status.eq_any([
            SubscriptionStatus::Pending.as_str(),
            SubscriptionStatus::Active.as_str(),
            SubscriptionStatus::Paused.as_str(),
        ]))
        .order(subscriptions::id.asc())
        .limit(limit)
        .select(subscriptions::id)
        .load(conn)
}

/// Every child order's charge, by subscription, for `verify`.
pub fn child_charges(conn: &mut DbConnection) -> QueryResult<Vec<(OrderId, SubscriptionId, i64)>> {
    orders::table
        .filter(orders::subscription_id.is_not_null())
        .select((
            orders::id,
            orders::subscription_id.assume_not_null(),
            orders::charge_micros,
        ))
        .load(conn)
}

/// Counts a served post and what its child captured from the hold.
pub fn add_served(
    conn: &mut WriteConn<'_>,
    id: SubscriptionId,
    captured: Money,
) -> QueryResult<Subscription> {
    let conn: &mut DbConnection = conn;
    diesel::update(subscriptions::table.find(id))
        .set((
            subscriptions::posts_served.eq(subscriptions::posts_served + 1),
            subscriptions::captured_micros.eq(subscriptions::captured_micros + captured.micros()),
            subscriptions::updated_at.eq(now()),
        ))
        .returning(columns::<SubscriptionRow>())
        .get_result::<SubscriptionRow>(conn)
        .map(Subscription::from)
}

/// Sets the status; an ended one records what was released and when it ended.
pub fn set_status(
    conn: &mut WriteConn<'_>,
    id: SubscriptionId,
    status: SubscriptionStatus,
    released: Money,
    reason: Option<&str>,
) -> QueryResult<Subscription> {
    let conn: &mut DbConnection = conn;
    let at = now();
    diesel::update(subscriptions::table.find(id))
        .set((
            subscriptions::status.eq(status.as_str()),
            subscriptions::released_micros.eq(subscriptions::released_micros + released.micros()),
            subscriptions::status_reason.eq(reason),
            subscriptions::ended_at.eq(status.is_terminal().then_some(at)),
            subscriptions::updated_at.eq(at),
        ))
        .returning(columns::<SubscriptionRow>())
        .get_result::<SubscriptionRow>(conn)
        .map(Subscription::from)
}
