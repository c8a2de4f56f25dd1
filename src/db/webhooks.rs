//! Webhook endpoints, the deliveries of events to them (leased, fenced, retried by the
//! webhook worker) and the log of every attempt.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::schema::{
    events, webhook_attempts, webhook_breakers, webhook_deliveries, webhook_endpoints,
};
use super::{lease, now, DbConnection, WriteConn};
use crate::domain::event::{join_event_types, DeliveryState, Endpoint, EndpointStatus, EventType};
use crate::domain::ids::{AccountId, DeliveryId, EndpointId, EventId};

type EndpointRow = (
    EndpointId,
    AccountId,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<NaiveDateTime>,
    String,
    Option<String>,
    Option<NaiveDateTime>,
    NaiveDateTime,
    NaiveDateTime,
);

fn undecodable(e: impl std::error::Error + Send + Sync + 'static) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(Box::new(e))
}

fn decode(row: EndpointRow) -> QueryResult<Endpoint> {
    let (
        id,
        account_id,
        url,
        event_types,
        description,
        secret,
        previous_secret,
        previous_secret_until,
        status,
        disabled_reason,
        failing_since,
        created_at,
        updated_at,
    ) = row;
    let event_types = event_types
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|t| EventType::try_from(t.to_string()).map_err(undecodable))
        .collect::<QueryResult<Vec<_>>>()?;
    // Both secrets are stored sealed for the endpoint's row (`crate::secrets`).
    let row = id.to_string();
    let place = crate::secrets::webhook_secret(&row);
    let secret = crate::secrets::open(place, &secret)?;
    let previous_secret = previous_secret
        .map(|p| crate::secrets::open(place, &p))
        .transpose()?;
    Ok(Endpoint {
        id,
        account_id,
        url,
        event_types,
        description,
        secret,
        previous_secret,
        previous_secret_until,
        status: EndpointStatus::try_from(status).map_err(undecodable)?,
        disabled_reason,
        failing_since,
        created_at,
        updated_at,
    })
}

macro_rules! endpoint_columns {
    () => {
        (
            webhook_endpoints::id,
            webhook_endpoints::account_id,
            webhook_endpoints::url,
            webhook_endpoints::event_types,
            webhook_endpoints::description,
            webhook_endpoints::secret,
            webhook_endpoints::previous_secret,
            webhook_endpoints::previous_secret_until,
            webhook_endpoints::status,
            webhook_endpoints::disabled_reason,
            webhook_endpoints::failing_since,
            webhook_endpoints::created_at,
            webhook_endpoints::updated_at,
        )
    };
}

/// An endpoint's signing secret, sealed for its row.
fn sealed_secret(id: EndpointId, secret: &str) -> QueryResult<String> {
    Ok(crate::secrets::seal(
        crate::secrets::webhook_secret(&id.to_string()),
        secret,
    )?)
}

pub struct NewEndpoint<'a> {
    pub account_id: AccountId,
    pub url: &'a str,
    pub event_types: &'a [EventType],
    pub description: Option<&'a str>,
    pub secret: &'a str,
}

pub fn insert(conn: &mut WriteConn<'_>, new: &NewEndpoint) -> QueryResult<Endpoint> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let id = diesel::insert_into(webhook_endpoints::table)
        .values((
            webhook_endpoints::account_id.eq(new.account_id),
            webhook_endpoints::url.eq(new.url),
            webhook_endpoints::event_types.eq(join_event_types(new.event_types)),
            webhook_endpoints::description.eq(new.description),
            // Sealed for the row, whose id the insert makes: just below.
            webhook_endpoints::secret.eq(""),
            webhook_endpoints::status.eq(EndpointStatus::Enabled.as_str()),
            webhook_endpoints::created_at.eq(at),
            webhook_endpoints::updated_at.eq(at),
        ))
        .returning(webhook_endpoints::id)
        .get_result::<EndpointId>(conn)?;
    let row = diesel::update(webhook_endpoints::table.find(id))
        .set(webhook_endpoints::secret.eq(sealed_secret(id, new.secret)?))
        .returning(endpoint_columns!())
        .get_result(conn)?;
    decode(row)
}

/// One endpoint, if `owner` (when given) owns it.
pub fn find(
    conn: &mut DbConnection,
    id: EndpointId,
    owner: Option<AccountId>,
) -> QueryResult<Option<Endpoint>> {
    let mut query = webhook_endpoints::table
        .find(id)
        .select(endpoint_columns!())
        .into_boxed();
    if let Some(owner) = owner {
        query = query.filter(webhook_endpoints::account_id.eq(owner));
    }
    query.first(conn).optional()?.map(decode).transpose()
}

/// An account's endpoints, newest first, older than `starting_after`.
pub fn list(
    conn: &mut DbConnection,
    owner: AccountId,
    starting_after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Endpoint>> {
    let mut query = webhook_endpoints::table
        .filter(webhook_endpoints::account_id.eq(owner))
        .select(endpoint_columns!())
        .into_boxed();
    if let Some(after) = starting_after {
        query = query.filter(webhook_endpoints::id.lt(after));
    }
    let rows: Vec<EndpointRow> = query
        .order(webhook_endpoints::id.desc())
        .limit(limit)
        .load(conn)?;
    rows.into_iter().map(decode).collect()
}

/// Every enabled endpoint (the dispatcher matches events against them).
pub fn enabled(conn: &mut DbConnection) -> QueryResult<Vec<Endpoint>> {
    let rows: Vec<EndpointRow> = webhook_endpoints::table
        .filter(webhook_endpoints::status.eq(EndpointStatus::Enabled.as_str()))
        .select(endpoint_columns!())
        .order(webhook_endpoints::id.asc())
        .load(conn)?;
    rows.into_iter().map(decode).collect()
}

/// What an update changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    pub description: Option<Option<String>>,
    /// Enabling also forgets the reason it was disabled and its failing streak.
    pub status: Option<EndpointStatus>,
}

pub fn update(
    conn: &mut WriteConn<'_>,
    id: EndpointId,
    changes: &EndpointChanges,
) -> QueryResult<Endpoint> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let target = webhook_endpoints::table.find(id);
    if let Some(url) = &changes.url {
        diesel::update(target)
            .set(webhook_endpoints::url.eq(url))
            .execute(conn)?;
    }
    if changes.url.is_some() || changes.status.is_some() {
        // A new target, or an endpoint turned on or off, starts with a closed breaker.
        diesel::delete(webhook_breakers::table.find(id)).execute(conn)?;
    }
    if let Some(types) = &changes.event_types {
        diesel::update(target)
            .set(webhook_endpoints::event_types.eq(join_event_types(types)))
            .execute(conn)?;
    }
    if let Some(description) = &changes.description {
        diesel::update(target)
            .set(webhook_endpoints::description.eq(description))
            .execute(conn)?;
    }
    if let Some(status) = changes.status {
        diesel::update(target)
            .set((
                webhook_endpoints::status.eq(status.as_str()),
                webhook_endpoints::disabled_reason.eq(None::<String>),
                webhook_endpoints::failing_since.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?;
    }
    let row = diesel::update(target)
        .set(webhook_endpoints::updated_at.eq(at))
        .returning(endpoint_columns!())
        .get_result(conn)?;
    decode(row)
}

/// A new secret; the old one keeps signing until `grace` from now.
pub fn rotate(
    conn: &mut WriteConn<'_>,
    id: EndpointId,
    secret: &str,
    grace: Duration,
) -> QueryResult<Endpoint> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let row = diesel::update(webhook_endpoints::table.find(id))
        .set((
            webhook_endpoints::previous_secret.eq(webhook_endpoints::secret.nullable()),
            webhook_endpoints::previous_secret_until.eq(Some(at + grace)),
            webhook_endpoints::secret.eq(sealed_secret(id, secret)?),
            webhook_endpoints::updated_at.eq(at),
        ))
        .returning(endpoint_columns!())
        .get_result(conn)?;
    decode(row)
}

/// Disables an endpoint and says why; its pending deliveries fail.
pub fn disable(conn: &mut WriteConn<'_>, id: EndpointId, reason: &str) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    let at = now();
    diesel::update(webhook_endpoints::table.find(id))
        .set((
            webhook_endpoints::status.eq(EndpointStatus::Disabled.as_str()),
            webhook_endpoints::disabled_reason.eq(reason),
            webhook_endpoints::updated_at.eq(at),
        ))
        .execute(conn)?;
    diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(id))
            .filter(webhook_deliveries::state.eq(DeliveryState::Pending.as_str())),
    )
    .set((
        webhook_deliveries::state.eq(DeliveryState::Failed.as_str()),
        lease::revoked!(webhook_deliveries),
        webhook_deliveries::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(())
}

/// Records a delivery's success or failure on its endpoint: a success ends a failing
/// streak, a failure starts one if none is running. Returns when the streak began.
pub fn note_result(
    conn: &mut WriteConn<'_>,
    id: EndpointId,
    success: bool,
) -> QueryResult<Option<NaiveDateTime>> {
    let conn: &mut DbConnection = conn;
    let target = webhook_endpoints::table.find(id);
    if success {
        diesel::update(target.filter(webhook_endpoints::failing_since.is_not_null()))
            .set(webhook_endpoints::failing_since.eq(None::<NaiveDateTime>))
            .execute(conn)?;
        return Ok(None);
    }
    diesel::update(target.filter(webhook_endpoints::failing_since.is_null()))
        .set(webhook_endpoints::failing_since.eq(Some(now())))
        .execute(conn)?;
    webhook_endpoints::table
        .find(id)
        .select(webhook_endpoints::failing_since)
        .first(conn)
}

/// Deletes an endpoint with its deliveries and their log.
pub fn delete(conn: &mut WriteConn<'_>, id: EndpointId) -> QueryResult<usize> {
    let conn: &mut DbConnection = conn;
    diesel::delete(webhook_attempts::table.filter(webhook_attempts::endpoint_id.eq(id)))
        .execute(conn)?;
    diesel::delete(webhook_deliveries::table.filter(webhook_deliveries::endpoint_id.eq(id)))
        .execute(conn)?;
    diesel::delete(webhook_breakers::table.find(id)).execute(conn)?;
    diesel::delete(webhook_endpoints::table.find(id)).execute(conn)
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, Queryable)]
pub struct Delivery {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub endpoint_id: EndpointId,
    pub state: String,
    pub attempts: i64,
    pub next_at: NaiveDateTime,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub lease_token: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

lease::fence! {
    /// The claim a worker holds on a delivery: every write of its attempt is fenced by it
    /// (see [`lease`]).
    DeliveryFence { delivery_id: DeliveryId } for Delivery.id
}

/// Queues a delivery of an event to an endpoint (due now), or, when one exists, makes it
/// due again from its first attempt (a redelivery). Returns the delivery's id.
pub fn queue(
    conn: &mut WriteConn<'_>,
    event_id: EventId,
    endpoint_id: EndpointId,
    again: bool,
) -> QueryResult<i64> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let existing: Option<i64> = webhook_deliveries::table
        .filter(webhook_deliveries::event_id.eq(event_id))
        .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
        .select(webhook_deliveries::id)
        .first(conn)
        .optional()?;
    match existing {
        Some(id) if again => {
            diesel::update(webhook_deliveries::table.find(id))
                .set((
                    webhook_deliveries::state.eq(DeliveryState::Pending.as_str()),
                    webhook_deliveries::attempts.eq(0),
                    webhook_deliveries::next_at.eq(at),
                    lease::revoked!(webhook_deliveries),
                    webhook_deliveries::updated_at.eq(at),
                ))
                .execute(conn)?;
            Ok(id)
        }
        Some(id) => Ok(id),
        None => diesel::insert_into(webhook_deliveries::table)
            .values((
                webhook_deliveries::event_id.eq(event_id),
                webhook_deliveries::endpoint_id.eq(endpoint_id),
                webhook_deliveries::state.eq(DeliveryState::Pending.as_str()),
                webhook_deliveries::attempts.eq(0),
                webhook_deliveries::next_at.eq(at),
                webhook_deliveries::created_at.eq(at),
                webhook_deliveries::updated_at.eq(at),
            ))
            .returning(webhook_deliveries::id)
            .get_result(conn),
    }
}

/// Claims up to `limit` due deliveries for `owner` until `lease` from now, each taking the
/// next fencing token; see [`lease`].
pub fn claim(
    conn: &mut WriteConn<'_>,
    owner: &str,
    limit: i64,
    lease: Duration,
) -> QueryResult<Vec<Delivery>> {
    let conn: &mut DbConnection = conn;
    lease::claim!(
        conn, webhook_deliveries, id,
        owner: owner, limit: limit, lease: lease,
        work: |at| webhook_deliveries::state
            .eq(DeliveryState::Pending.as_str())
            .and(webhook_deliveries::next_at.le(at)),
        load: |leased| leased.load(conn),
    )
}

/// How many endpoints an account has (the cap on endpoints per account counts them).
pub fn count_of(conn: &mut DbConnection, owner: AccountId) -> QueryResult<i64> {
    webhook_endpoints::table
        .filter(webhook_endpoints::account_id.eq(owner))
        .count()
        .get_result(conn)
}

/// Claims the next due delivery for `owner` until `lease` from now, of an endpoint that
/// has no delivery in flight (leased, by any process), whose circuit breaker is not open,
/// and whose account has fewer than `per_account` deliveries in flight. So a slow or
/// failing endpoint holds at most one sender, and an account at most `per_account`.
pub fn claim_next(
    conn: &mut WriteConn<'_>,
    owner: &str,
    per_account: i64,
    lease: Duration,
) -> QueryResult<Option<Delivery>> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let in_flight: Vec<(EndpointId, AccountId)> = webhook_deliveries::table
        .inner_join(webhook_endpoints::table)
        .filter(webhook_deliveries::lease_until.ge(at))
        .select((
            webhook_deliveries::endpoint_id,
            webhook_endpoints::account_id,
        ))
        .load(conn)?;
    let mut per_owner: std::collections::HashMap<AccountId, i64> = Default::default();
    let mut skip: Vec<EndpointId> = Vec::new();
    for (endpoint, account) in &in_flight {
        *per_owner.entry(*account).or_default() += 1;
        skip.push(*endpoint);
    }
    let full: Vec<AccountId> = per_owner
        .into_iter()
        .filter(|(_, n)| *n >= per_account)
        .map(|(account, _)| account)
        .collect();
    if !full.is_empty() {
        skip.extend(
            webhook_endpoints::table
                .filter(webhook_endpoints::account_id.eq_any(&full))
                .select(webhook_endpoints::id)
                .load::<EndpointId>(conn)?,
        );
    }
    skip.extend(
        webhook_breakers::table
            .filter(webhook_breakers::open_until.gt(at))
            .select(webhook_breakers::endpoint_id)
            .load::<EndpointId>(conn)?,
    );
    skip.sort_unstable();
    skip.dedup();
    let claimed: Vec<Delivery> = lease::claim!(
        conn, webhook_deliveries, id,
        owner: owner, limit: 1, lease: lease,
        work: |at| webhook_deliveries::state
            .eq(DeliveryState::Pending.as_str())
            .and(webhook_deliveries::next_at.le(at)),
        narrow: |query| query.filter(webhook_deliveries::endpoint_id.ne_all(&skip)),
        load: |leased| leased.load(conn),
    )?;
    Ok(claimed.into_iter().next())
}

/// Whether any delivery is due and free at `at` (a read, before a sender claims).
pub fn any_due(conn: &mut DbConnection, at: NaiveDateTime) -> QueryResult<bool> {
    let due: Option<DeliveryId> = webhook_deliveries::table
        .filter(webhook_deliveries::state.eq(DeliveryState::Pending.as_str()))
        .filter(webhook_deliveries::next_at.le(at))
        .filter(lease::free!(webhook_deliveries, at))
        .select(webhook_deliveries::id)
        .first(conn)
        .optional()?;
    Ok(due.is_some())
}

/// An endpoint's circuit breaker after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerMove {
    /// Closed, and stays closed (a success, or a failure below the threshold).
    Closed,
    /// The attempt opened it (or a failed probe reopened it) until then.
    Opened(NaiveDateTime),
    /// A success closed it after it had opened.
    Recovered,
}

/// Records an attempt's outcome on its endpoint's breaker: a success closes it; a failure
/// adds to the run, and at `threshold` failures in a row (or a failed probe) opens it for
/// `open_for(times it opened in a row)`. Call inside the attempt's fenced transaction.
pub fn note_breaker(
    conn: &mut WriteConn<'_>,
    id: EndpointId,
    success: bool,
    threshold: i64,
    open_for: impl Fn(i64) -> Duration,
) -> QueryResult<BreakerMove> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let current: Option<(i64, Option<NaiveDateTime>, i64)> = webhook_breakers::table
        .find(id)
        .select((
            webhook_breakers::failures,
            webhook_breakers::open_until,
            webhook_breakers::opened,
        ))
        .first(conn)
        .optional()?;
    let (failures, open_until, opened) = current.unwrap_or((0, None, 0));
    let (failures, open_until, opened, moved) = if success {
        let moved = if opened > 0 {
            BreakerMove::Recovered
        } else {
            BreakerMove::Closed
        };
        (0, None, 0, moved)
    } else {
        let failures = failures + 1;
        // A failed probe (the breaker had opened) reopens it at once, for longer.
        if failures >= threshold || open_until.is_some() {
            let until = at + open_for(opened);
            (
                failures,
                Some(until),
                opened + 1,
                BreakerMove::Opened(until),
            )
        } else {
            (failures, None, opened, BreakerMove::Closed)
        }
    };
    if current.is_none() && failures == 0 && open_until.is_none() {
        return Ok(moved);
    }
    let changed = diesel::update(webhook_breakers::table.find(id))
        .set((
            webhook_breakers::failures.eq(failures),
            webhook_breakers::open_until.eq(open_until),
            webhook_breakers::opened.eq(opened),
            webhook_breakers::updated_at.eq(at),
        ))
        .execute(conn)?;
    if changed == 0 {
        diesel::insert_into(webhook_breakers::table)
            .values((
                webhook_breakers::endpoint_id.eq(id),
                webhook_breakers::failures.eq(failures),
                webhook_breakers::open_until.eq(open_until),
                webhook_breakers::opened.eq(opened),
                webhook_breakers::updated_at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(moved)
}

/// Endpoints by breaker state at `at`, for `/metrics`: (closed, open, half-open). Closed
/// counts every endpoint whose breaker is not open or half-open.
pub fn breaker_states(conn: &mut DbConnection, at: NaiveDateTime) -> QueryResult<(i64, i64, i64)> {
    let endpoints: i64 = webhook_endpoints::table.count().get_result(conn)?;
    let open: i64 = webhook_breakers::table
        .filter(webhook_breakers::open_until.gt(at))
        .count()
        .get_result(conn)?;
    let half_open: i64 = webhook_breakers::table
        .filter(webhook_breakers::open_until.le(at))
        .count()
        .get_result(conn)?;
    Ok(((endpoints - open - half_open).max(0), open, half_open))
}

/// An endpoint's breaker: (failures in a row, open until); `None` when it never failed.
pub fn breaker(
    conn: &mut DbConnection,
    id: EndpointId,
) -> QueryResult<Option<(i64, Option<NaiveDateTime>)>> {
    webhook_breakers::table
        .find(id)
        .select((webhook_breakers::failures, webhook_breakers::open_until))
        .first(conn)
        .optional()
}

/// Ends an attempt under its fence: the delivery's new state, attempt count and next due
/// time, with the lease given back. False when the claim was lost (nothing written).
pub fn finish(
    conn: &mut WriteConn<'_>,
    fence: DeliveryFence,
    state: DeliveryState,
    attempts: i64,
    next_at: NaiveDateTime,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let updated = diesel::update(
        lease::fenced!(webhook_deliveries, fence)
            .filter(webhook_deliveries::state.eq(DeliveryState::Pending.as_str())),
    )
    .set((
        webhook_deliveries::state.eq(state.as_str()),
        webhook_deliveries::attempts.eq(attempts),
        webhook_deliveries::next_at.eq(next_at),
        lease::released!(webhook_deliveries),
        webhook_deliveries::updated_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Gives back every lease `owner` holds (on shutdown, or after a failed pass).
pub fn release_all(conn: &mut WriteConn<'_>, owner: &str) -> QueryResult<usize> {
    let conn: &mut DbConnection = conn;
    lease::release_all!(conn, webhook_deliveries, owner)
}

/// The deliveries of one event (for redelivery and tests).
pub fn of_event(conn: &mut DbConnection, event_id: EventId) -> QueryResult<Vec<Delivery>> {
    webhook_deliveries::table
        .filter(webhook_deliveries::event_id.eq(event_id))
        .order(webhook_deliveries::id.asc())
        .load(conn)
}

/// One attempt, as the delivery log shows it.
#[derive(Debug, Clone, Queryable)]
pub struct Attempt {
    pub id: i64,
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub endpoint_id: EndpointId,
    pub attempt: i64,
    pub status_code: Option<i32>,
    pub duration_ms: i64,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
}

pub struct NewAttempt<'a> {
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub endpoint_id: EndpointId,
    pub attempt: i64,
    pub status_code: Option<u16>,
    pub duration_ms: i64,
    pub response_body: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub fn record_attempt(conn: &mut WriteConn<'_>, new: &NewAttempt) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    diesel::insert_into(webhook_attempts::table)
        .values((
            webhook_attempts::delivery_id.eq(new.delivery_id),
            webhook_attempts::event_id.eq(new.event_id),
            webhook_attempts::endpoint_id.eq(new.endpoint_id),
            webhook_attempts::attempt.eq(new.attempt),
            webhook_attempts::status_code.eq(new.status_code.map(i32::from)),
            webhook_attempts::duration_ms.eq(new.duration_ms),
            webhook_attempts::response_body.eq(new.response_body),
            webhook_attempts::error.eq(new.error),
            webhook_attempts::created_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// An endpoint's attempts, newest first.
pub fn attempts(
    conn: &mut DbConnection,
    endpoint_id: EndpointId,
    starting_after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Attempt>> {
    let mut query = webhook_attempts::table
        .filter(webhook_attempts::endpoint_id.eq(endpoint_id))
        .into_boxed();
    if let Some(after) = starting_after {
        query = query.filter(webhook_attempts::id.lt(after));
    }
    query
        .order(webhook_attempts::id.desc())
        .limit(limit)
        .load(conn)
}

/// A delivery as its endpoint's owner sees it: its event's type and when it was last tried.
#[derive(Debug, Clone)]
pub struct DeliveryView {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub endpoint_id: EndpointId,
    pub state: DeliveryState,
    pub attempts: i64,
    pub next_at: NaiveDateTime,
    pub last_attempt_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Queryable)]
struct DeliveryViewRow {
    id: DeliveryId,
    event_id: EventId,
    #[diesel(deserialize_as = String)]
    event_type: EventType,
    endpoint_id: EndpointId,
    #[diesel(deserialize_as = String)]
    state: DeliveryState,
    attempts: i64,
    next_at: NaiveDateTime,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// An endpoint's deliveries, newest first, older than `starting_after`, in `state` if given.
pub fn deliveries(
    conn: &mut DbConnection,
    endpoint_id: EndpointId,
    state: Option<DeliveryState>,
    starting_after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<DeliveryView>> {
    let mut query = webhook_deliveries::table
        .inner_join(events::table)
        .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
        .select((
            webhook_deliveries::id,
            webhook_deliveries::event_id,
            events::event_type,
            webhook_deliveries::endpoint_id,
            webhook_deliveries::state,
            webhook_deliveries::attempts,
            webhook_deliveries::next_at,
            webhook_deliveries::created_at,
            webhook_deliveries::updated_at,
        ))
        .into_boxed();
    if let Some(state) = state {
        query = query.filter(webhook_deliveries::state.eq(state.as_str()));
    }
    if let Some(after) = starting_after {
        query = query.filter(webhook_deliveries::id.lt(after));
    }
    let rows: Vec<DeliveryViewRow> = query
        .order(webhook_deliveries::id.desc())
        .limit(limit)
        .load(conn)?;
    let ids: Vec<DeliveryId> = rows.iter().map(|r| r.id).collect();
    let last = last_attempts(conn, &ids)?;
    Ok(rows
        .into_iter()
        .map(|r| DeliveryView {
            last_attempt_at: last.get(&r.id).copied(),
            id: r.id,
            event_id: r.event_id,
            event_type: r.event_type,
            endpoint_id: r.endpoint_id,
            state: r.state,
            attempts: r.attempts,
            next_at: r.next_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect())
}

/// When each of these deliveries was last tried; a delivery never tried is absent.
fn last_attempts(
    conn: &mut DbConnection,
    delivery_ids: &[DeliveryId],
) -> QueryResult<std::collections::HashMap<DeliveryId, NaiveDateTime>> {
    if delivery_ids.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(DeliveryId, Option<NaiveDateTime>)> = webhook_attempts::table
        .filter(webhook_attempts::delivery_id.eq_any(delivery_ids))
        .group_by(webhook_attempts::delivery_id)
        .select((
            webhook_attempts::delivery_id,
            diesel::dsl::max(webhook_attempts::created_at),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, at)| at.map(|at| (id, at)))
        .collect())
}

/// The state of each of these deliveries, for the attempts of the delivery log.
pub fn delivery_states(
    conn: &mut DbConnection,
    delivery_ids: &[DeliveryId],
) -> QueryResult<std::collections::HashMap<DeliveryId, DeliveryState>> {
    if delivery_ids.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(DeliveryId, String)> = webhook_deliveries::table
        .filter(webhook_deliveries::id.eq_any(delivery_ids))
        .select((webhook_deliveries::id, webhook_deliveries::state))
        .load(conn)?;
    rows.into_iter()
        .map(|(id, state)| Ok((id, DeliveryState::try_from(state).map_err(undecodable)?)))
        .collect()
}
