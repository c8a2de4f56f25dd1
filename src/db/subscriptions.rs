//! Subscriptions: their rows, the id they take from the orders' sequence, and the money
//! columns the application moves together with the ledger.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::backend::lock_row;
use super::columns;
use super::schema::{orders, provider_subscriptions, subscription_children, subscriptions};
use super::{now, DbConnection, WriteConn};
use crate::domain::ids::{AccountId, OrderId, ProviderId, ServiceId, SubscriptionId};
use crate::domain::money::Money;
use crate::domain::provider::ForwardingState;
use crate::domain::subscription::{
    NewSubscription, Subscription, SubscriptionStatus, UpstreamCancel,
};

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

/// Open subscriptions (Active or Paused) without a provider due to end by schedule: expired at `at`, or with
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
        // A provider-backed one ends when its provider says so (its children may still be
        // reported after our count or date): the status poll ends it.
        .filter(diesel::dsl::not(diesel::dsl::exists(
            provider_subscriptions::table
                .filter(provider_subscriptions::subscription_id.eq(subscriptions::id)),
        )))
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

// ---------------------------------------------------------------------------------------
// Upstream: a provider-backed subscription's row in `provider_subscriptions` (its `add`,
// its status polls, a forwarded cancel), leased and fenced like `provider_orders`, and
// the provider's child ids already made into local child orders.

/// Where a provider-backed subscription stands with its provider.
#[derive(Debug, Clone)]
pub struct ProviderSubscription {
    pub subscription_id: SubscriptionId,
    pub provider_id: ProviderId,
    pub provider_service_id: String,
    pub state: ForwardingState,
    pub provider_subscription_id: Option<String>,
    pub idempotency_key: String,
    /// A reseller's cancel waiting to be forwarded, or refused by the provider.
    pub cancel: Option<UpstreamCancel>,
    pub attempts: i64,
    pub failures: i64,
    pub next_at: NaiveDateTime,
    pub last_error: Option<String>,
    pub quarantined_status: Option<String>,
    pub last_synced_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    /// Taken anew by every claim; see [`UpstreamFence`].
    pub lease_token: i64,
}

super::lease::fence! {
    /// One claim of one provider-backed subscription's row; see [`super::lease`].
    UpstreamFence { subscription_id: SubscriptionId } for ProviderSubscription.subscription_id
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = provider_subscriptions, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ProviderSubscriptionRow {
    subscription_id: SubscriptionId,
    provider_id: ProviderId,
    provider_service_id: String,
    state: String,
    provider_subscription_id: Option<String>,
    idempotency_key: String,
    cancel: Option<String>,
    attempts: i64,
    failures: i64,
    next_at: NaiveDateTime,
    last_error: Option<String>,
    quarantined_status: Option<String>,
    last_synced_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    lease_token: i64,
}

/// A stored word the code does not know is a decoding error, never a default.
fn decode_word<T: TryFrom<String, Error = crate::domain::UnknownName>>(
    word: String,
) -> QueryResult<T> {
    T::try_from(word).map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
}

impl ProviderSubscriptionRow {
    fn decode(self) -> QueryResult<ProviderSubscription> {
        Ok(ProviderSubscription {
            subscription_id: self.subscription_id,
            provider_id: self.provider_id,
            provider_service_id: self.provider_service_id,
            state: decode_word(self.state)?,
            provider_subscription_id: self.provider_subscription_id,
            idempotency_key: self.idempotency_key,
            cancel: self.cancel.map(decode_word).transpose()?,
            attempts: self.attempts,
            failures: self.failures,
            next_at: self.next_at,
            last_error: self.last_error,
            quarantined_status: self.quarantined_status,
            last_synced_at: self.last_synced_at,
            created_at: self.created_at,
            lease_token: self.lease_token,
        })
    }
}

/// Queues a new subscription's `add` for its provider; call in the transaction that
/// creates it, so the send happens only after the create (and its hold) committed.
pub fn enqueue_upstream(
    conn: &mut WriteConn<'_>,
    id: SubscriptionId,
    provider_id: ProviderId,
    provider_service_id: &str,
    idempotency_key: &str,
) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    let at = now();
    diesel::insert_into(provider_subscriptions::table)
        .values((
            provider_subscriptions::subscription_id.eq(id),
            provider_subscriptions::provider_id.eq(provider_id),
            provider_subscriptions::provider_service_id.eq(provider_service_id),
            provider_subscriptions::state.eq(ForwardingState::Queued.as_str()),
            provider_subscriptions::idempotency_key.eq(idempotency_key),
            provider_subscriptions::next_at.eq(at),
            provider_subscriptions::created_at.eq(at),
            provider_subscriptions::updated_at.eq(at),
        ))
        .execute(conn)
        .map(drop)
}

/// The subscription's row with its provider, if it is provider-backed.
pub fn find_upstream(
    conn: &mut DbConnection,
    id: SubscriptionId,
) -> QueryResult<Option<ProviderSubscription>> {
    provider_subscriptions::table
        .find(id)
        .select(columns::<ProviderSubscriptionRow>())
        .get_result::<ProviderSubscriptionRow>(conn)
        .optional()?
        .map(ProviderSubscriptionRow::decode)
        .transpose()
}

/// Which rows a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamWork {
    /// `add` not yet sent (or a send interrupted): `queued`, `sending`.
    Send,
    /// Accepted upstream, polled for status and children: `sent`.
    Poll,
    /// Accepted upstream with a reseller's cancel waiting to be forwarded.
    Cancel,
}

/// Leases up to `limit` due rows of one provider for `work`, each with the token this
/// claim gave it (see [`super::lease`]).
pub fn claim_upstream(
    conn: &mut WriteConn<'_>,
    owner: &str,
    work: UpstreamWork,
    provider_id: ProviderId,
    limit: i64,
    due_by: NaiveDateTime,
    lease: chrono::Duration,
) -> QueryResult<Vec<ProviderSubscription>> {
    let conn: &mut DbConnection = conn;
    let states: Vec<&str> = match work {
        UpstreamWork::Send => vec![
            ForwardingState::Queued.as_str(),
            ForwardingState::Sending.as_str(),
        ],
        UpstreamWork::Poll | UpstreamWork::Cancel => vec![ForwardingState::Sent.as_str()],
    };
    let rows: Vec<ProviderSubscriptionRow> = if work == UpstreamWork::Cancel {
        // A cancel is claimed only where one is waiting.
        let requested = UpstreamCancel::Requested.as_str();
        super::lease::claim!(
            conn, provider_subscriptions, subscription_id,
            owner: owner, limit: limit, lease: lease,
            work: |_at| provider_subscriptions::state
                .eq_any(&states)
                .and(provider_subscriptions::next_at.le(due_by))
                .and(provider_subscriptions::cancel.eq(requested)),
            narrow: |due| due.filter(provider_subscriptions::provider_id.eq(provider_id)),
            load: |leased| leased
                .select(columns::<ProviderSubscriptionRow>())
                .load::<ProviderSubscriptionRow>(conn),
        )?
    } else {
        super::lease::claim!(
            conn, provider_subscriptions, subscription_id,
            owner: owner, limit: limit, lease: lease,
            work: |_at| provider_subscriptions::state
                .eq_any(&states)
                .and(provider_subscriptions::next_at.le(due_by)),
            narrow: |due| due.filter(provider_subscriptions::provider_id.eq(provider_id)),
            load: |leased| leased
                .select(columns::<ProviderSubscriptionRow>())
                .load::<ProviderSubscriptionRow>(conn),
        )?
    };
    rows.into_iter()
        .map(ProviderSubscriptionRow::decode)
        .collect()
}

/// Records under `fence` that an `add` is about to be sent, before it is
/// ([`super::lease::begin_send!`]). False when the claim was lost or the row left the
/// send queue (a cancel withdrew it).
pub fn begin_upstream_send(
    conn: &mut WriteConn<'_>,
    fence: UpstreamFence,
    lease: chrono::Duration,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    super::lease::begin_send!(conn, provider_subscriptions, fence, lease)
}

/// What an attempt leaves on a provider-backed subscription's row.
#[derive(Debug, Clone)]
pub struct UpstreamOutcome {
    pub state: ForwardingState,
    pub provider_subscription_id: Option<String>,
    pub next_at: Option<NaiveDateTime>,
    pub failed: bool,
    pub error: Option<String>,
    pub quarantined_status: Option<String>,
    pub synced: bool,
    /// `Some` sets the cancel column (`Some(None)` clears it); `None` leaves it.
    pub cancel: Option<Option<UpstreamCancel>>,
}

impl UpstreamOutcome {
    pub fn to(state: ForwardingState) -> UpstreamOutcome {
        UpstreamOutcome {
            state,
            provider_subscription_id: None,
            next_at: None,
            failed: false,
            error: None,
            quarantined_status: None,
            synced: false,
            cancel: None,
        }
    }
}

/// Ends a leased attempt in one statement conditional on its fence and releases the
/// lease. False, with nothing changed, when the claim was lost.
pub fn finish_upstream(
    conn: &mut WriteConn<'_>,
    fence: UpstreamFence,
    outcome: UpstreamOutcome,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let current = match provider_subscriptions::table
        .find(fence.subscription_id)
        .select(columns::<ProviderSubscriptionRow>())
        .get_result::<ProviderSubscriptionRow>(conn)
        .optional()?
    {
        Some(row) => row.decode()?,
        None => return Ok(false),
    };
    let at = now();
    let failures = if outcome.failed {
        current.failures + 1
    } else {
        0
    };
    // The cancel column is written only when the outcome sets it, in its own fenced
    // statement: a reseller's cancel requested meanwhile (no lock on this row: it is not
    // written back from the read above) is never overwritten by an attempt that did not
    // see it.
    if let Some(cancel) = outcome.cancel {
        let set = diesel::update(super::lease::fenced!(provider_subscriptions, fence))
            .set(provider_subscriptions::cancel.eq(cancel.map(UpstreamCancel::as_str)))
            .execute(conn)?;
        if set != 1 {
            return Ok(false);
        }
    }
    let changed = diesel::update(super::lease::fenced!(provider_subscriptions, fence))
        .set((
            provider_subscriptions::state.eq(outcome.state.as_str()),
            provider_subscriptions::provider_subscription_id.eq(outcome
                .provider_subscription_id
                .or(current.provider_subscription_id)),
            provider_subscriptions::next_at.eq(outcome.next_at.unwrap_or(at)),
            provider_subscriptions::last_error.eq(&outcome.error),
            provider_subscriptions::quarantined_status.eq(&outcome.quarantined_status),
            provider_subscriptions::failures.eq(failures),
            provider_subscriptions::last_synced_at.eq(if outcome.synced {
                Some(at)
            } else {
                current.last_synced_at
            }),
            super::lease::released!(provider_subscriptions),
            provider_subscriptions::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

/// A clear acceptance whose attempt lost its claim: the provider has the subscription, so
/// a row that knows no provider id yet and has not ended becomes `sent` with it. Any
/// attempt still holding the row loses its claim. False when it already has an id or ended.
pub fn adopt_upstream_acceptance(
    conn: &mut WriteConn<'_>,
    id: SubscriptionId,
    remote: &str,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let changed = diesel::update(
        provider_subscriptions::table
            .find(id)
            .filter(provider_subscriptions::provider_subscription_id.is_null())
            .filter(provider_subscriptions::state.eq_any([
                ForwardingState::Queued.as_str(),
                ForwardingState::Sending.as_str(),
                ForwardingState::Ambiguous.as_str(),
            ])),
    )
    .set((
        provider_subscriptions::state.eq(ForwardingState::Sent.as_str()),
        provider_subscriptions::provider_subscription_id.eq(remote),
        provider_subscriptions::next_at.eq(at),
        provider_subscriptions::failures.eq(0),
        provider_subscriptions::last_error.eq(None::<String>),
        super::lease::revoked!(provider_subscriptions),
        provider_subscriptions::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Takes a still-queued `add` out of the send queue (the reseller canceled first). False
/// once a send has begun. A worker holding the row loses its claim.
pub fn withdraw_upstream(conn: &mut WriteConn<'_>, id: SubscriptionId) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let changed = diesel::update(
        provider_subscriptions::table
            .find(id)
            .filter(provider_subscriptions::state.eq(ForwardingState::Queued.as_str())),
    )
    .set((
        provider_subscriptions::state.eq(ForwardingState::Done.as_str()),
        super::lease::revoked!(provider_subscriptions),
        provider_subscriptions::updated_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Asks for a cancel to be forwarded: the row becomes due now with `cancel = requested`.
/// A worker polling it meanwhile keeps its claim (its finish leaves the request standing).
pub fn request_upstream_cancel(conn: &mut WriteConn<'_>, id: SubscriptionId) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    let at = now();
    diesel::update(provider_subscriptions::table.find(id))
        .set((
            provider_subscriptions::cancel.eq(UpstreamCancel::Requested.as_str()),
            provider_subscriptions::next_at.eq(at),
            provider_subscriptions::updated_at.eq(at),
        ))
        .execute(conn)
        .map(drop)
}

/// Gives back every lease `owner` holds on provider-backed subscriptions.
pub fn release_upstream(conn: &mut WriteConn<'_>, owner: &str) -> QueryResult<usize> {
    let conn: &mut DbConnection = conn;
    super::lease::release_all!(conn, provider_subscriptions, owner)
}

/// The local child already made for the provider's child order `remote`, if any.
pub fn upstream_child(
    conn: &mut DbConnection,
    provider_id: ProviderId,
    remote: &str,
) -> QueryResult<Option<OrderId>> {
    subscription_children::table
        .find((provider_id, remote))
        .select(subscription_children::order_id)
        .first(conn)
        .optional()
}

/// Records that the provider's child order `remote` is the local child `order_id`. The
/// primary key (provider, provider order id) refuses a second one.
pub fn insert_upstream_child(
    conn: &mut WriteConn<'_>,
    provider_id: ProviderId,
    remote: &str,
    subscription_id: SubscriptionId,
    order_id: OrderId,
) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    diesel::insert_into(subscription_children::table)
        .values((
            subscription_children::provider_id.eq(provider_id),
            subscription_children::provider_order_id.eq(remote),
            subscription_children::subscription_id.eq(subscription_id),
            subscription_children::order_id.eq(order_id),
            subscription_children::created_at.eq(now()),
        ))
        .execute(conn)
        .map(drop)
}
