//! The event log: written inside the transaction of each change (`application::events`),
//! read by the event API and dispatched to webhook endpoints by the webhook worker.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::backend::get_result_native;

use super::schema::{events, webhook_attempts, webhook_deliveries};
use super::{now, DbConnection, WriteConn};
use crate::domain::event::{Event, EventType};
use crate::domain::ids::{AccountId, EventId};

type EventRow = (
    EventId,
    String,
    Option<AccountId>,
    String,
    bool,
    NaiveDateTime,
);

const COLUMNS: (
    events::id,
    events::event_type,
    events::account_id,
    events::data,
    events::dispatched,
    events::created_at,
) = (
    events::id,
    events::event_type,
    events::account_id,
    events::data,
    events::dispatched,
    events::created_at,
);

fn decode(row: EventRow) -> QueryResult<Event> {
    let (id, event_type, account_id, data, _, created_at) = row;
    let event_type = EventType::try_from(event_type)
        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
    let data = serde_json::from_str(&data)
        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
    Ok(Event {
        id,
        event_type,
        account_id,
        data,
        created_at,
    })
}

fn decode_all(rows: Vec<EventRow>) -> QueryResult<Vec<Event>> {
    rows.into_iter().map(decode).collect()
}

/// Appends an event; call inside the transaction of the change it describes. Only the id
/// comes back from the database: the rest is what was written (no decode of `data`).
pub fn insert(
    conn: &mut WriteConn<'_>,
    event_type: EventType,
    account_id: Option<AccountId>,
    data: serde_json::Value,
) -> QueryResult<Event> {
    let conn: &mut DbConnection = conn;
    let created_at = now();
    let id = diesel::insert_into(events::table)
        .values((
            events::event_type.eq(event_type.as_str()),
            events::account_id.eq(account_id),
            events::data.eq(data.to_string()),
            events::dispatched.eq(false),
            events::created_at.eq(created_at),
        ))
        .returning(events::id);
    let id = get_result_native(conn, id)?;
    Ok(Event {
        id,
        event_type,
        account_id,
        data,
        created_at,
    })
}

/// Which events a list shows.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// One account's events; `None` for an operator's view of all.
    pub account_id: Option<AccountId>,
    pub event_type: Option<EventType>,
    pub created_from: Option<NaiveDateTime>,
    pub created_to: Option<NaiveDateTime>,
    /// Older than this id.
    pub starting_after: Option<i64>,
}

/// A page of events, newest first, `limit` rows at most.
pub fn list(conn: &mut DbConnection, filter: &EventFilter, limit: i64) -> QueryResult<Vec<Event>> {
    let mut query = events::table.select(COLUMNS).into_boxed();
    if let Some(account_id) = filter.account_id {
        query = query.filter(events::account_id.eq(account_id));
    }
    if let Some(event_type) = filter.event_type {
        query = query.filter(events::event_type.eq(event_type.as_str()));
    }
    if let Some(from) = filter.created_from {
        query = query.filter(events::created_at.ge(from));
    }
    if let Some(to) = filter.created_to {
        query = query.filter(events::created_at.lt(to));
    }
    if let Some(after) = filter.starting_after {
        query = query.filter(events::id.lt(after));
    }
    decode_all(query.order(events::id.desc()).limit(limit).load(conn)?)
}

/// One event, if `account_id` (when given) owns it.
pub fn find(
    conn: &mut DbConnection,
    id: EventId,
    account_id: Option<AccountId>,
) -> QueryResult<Option<Event>> {
    let mut query = events::table.find(id).select(COLUMNS).into_boxed();
    if let Some(account_id) = account_id {
        query = query.filter(events::account_id.eq(account_id));
    }
    query.first(conn).optional()?.map(decode).transpose()
}

/// The oldest events no delivery has been queued for yet. Call inside the write
/// transaction that queues them and marks them ([`mark_dispatched`]): on PostgreSQL the
/// rows are locked and rows another worker holds are skipped.
pub fn undispatched(conn: &mut WriteConn<'_>, limit: i64) -> QueryResult<Vec<Event>> {
    let conn: &mut DbConnection = conn;
    let query = events::table
        .filter(events::dispatched.eq(false))
        .select(COLUMNS)
        .order(events::id.asc())
        .limit(limit);
    let rows = match conn {
        DbConnection::Pg(pg) => query.for_update().skip_locked().load(pg)?,
        DbConnection::Sqlite(sqlite) => query.load(sqlite)?,
    };
    decode_all(rows)
}

pub fn mark_dispatched(conn: &mut WriteConn<'_>, ids: &[EventId]) -> QueryResult<usize> {
    let conn: &mut DbConnection = conn;
    diesel::update(events::table.filter(events::id.eq_any(ids)))
        .set(events::dispatched.eq(true))
        .execute(conn)
}

/// How many events exist (tests and the delivery check count them).
pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    events::table.count().get_result(conn)
}

/// Deletes up to `batch` dispatched events created before `before`, with their webhook
/// deliveries and attempt log; returns how many events went.
pub fn delete_older(
    conn: &mut WriteConn<'_>,
    before: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let conn: &mut DbConnection = conn;
    let ids: Vec<EventId> = events::table
        .filter(events::created_at.lt(before))
        .filter(events::dispatched.eq(true))
        .select(events::id)
        .order(events::id.asc())
        .limit(batch)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(webhook_attempts::table.filter(webhook_attempts::event_id.eq_any(&ids)))
        .execute(conn)?;
    diesel::delete(webhook_deliveries::table.filter(webhook_deliveries::event_id.eq_any(&ids)))
        .execute(conn)?;
    diesel::delete(events::table.filter(events::id.eq_any(&ids))).execute(conn)
}
