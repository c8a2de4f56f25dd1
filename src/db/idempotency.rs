//! Idempotency keys: the first request with a key runs, later ones with the same key
//! and body replay its response, another body is refused, a concurrent one waits its turn.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::schema::idempotency_keys;
use super::{now, DbConnection, WriteConn};
use crate::domain::ids::AccountId;
use crate::domain::UnknownName;

/// A claim left `in_flight` this long belongs to a request that died; it may be taken over.
const ABANDONED_AFTER_SECS: i64 = 60;

/// A claim this request holds: the row and the time it was (re)claimed, which tells this
/// holder from a later one that took an abandoned claim over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub id: i64,
    pub since: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request owns the key: run it, then [`finish`] with the claim.
    Started(Held),
    /// The key already has a stored response with the same request.
    Replay { status: u16, body: String },
    /// The key was used with another request body.
    Mismatch,
    /// Another request with this key is still running.
    InFlight,
}

/// Where a key stands: its request is still running, or its response is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyStatus {
    InFlight,
    Done,
}

impl KeyStatus {
    fn as_str(self) -> &'static str {
        match self {
            KeyStatus::InFlight => "in_flight",
            KeyStatus::Done => "done",
        }
    }
}

impl TryFrom<String> for KeyStatus {
    type Error = UnknownName;

    fn try_from(text: String) -> Result<KeyStatus, UnknownName> {
        match text.as_str() {
            "in_flight" => Ok(KeyStatus::InFlight),
            "done" => Ok(KeyStatus::Done),
            _ => Err(UnknownName {
                kind: "KeyStatus",
                text,
            }),
        }
    }
}

#[derive(Queryable)]
struct KeyRow {
    id: i64,
    _account_id: AccountId,
    _scope: String,
    _idem_key: String,
    request_hash: String,
    #[diesel(deserialize_as = String)]
    status: KeyStatus,
    response_status: Option<i32>,
    response_body: Option<String>,
    created_at: NaiveDateTime,
}

/// A stored row that contradicts how [`finish`] writes them: fails the request rather
/// than replaying a response that was never stored.
fn corrupt(row: &KeyRow, what: &str) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(
        format!("idempotency key {}: {what}", row.id).into(),
    )
}

fn classify(row: KeyRow, request_hash: &str) -> QueryResult<Claim> {
    if row.request_hash != request_hash {
        return Ok(Claim::Mismatch);
    }
    if row.status == KeyStatus::InFlight {
        return Ok(Claim::InFlight);
    }
    let Some(status) = row.response_status else {
        return Err(corrupt(&row, "done without a response status"));
    };
    let Ok(status) = u16::try_from(status) else {
        return Err(corrupt(&row, "response status out of range"));
    };
    let Some(body) = row.response_body else {
        return Err(corrupt(&row, "done without a response body"));
    };
    Ok(Claim::Replay { status, body })
}

/// Claims `key` for this request, inside the caller's write transaction (the order's, or
/// a short one of its own).
///
/// A new key (the common case) is one statement: the insert, which does nothing when the
/// key exists (on PostgreSQL it first waits for a concurrent transaction holding the same
/// key to end). Only then is the existing row read and judged. Nothing here can fail
/// halfway (the insert does not raise on the key), so no savepoint: an error fails the
/// enclosing transaction whole anyway.
pub fn claim(
    conn: &mut WriteConn<'_>,
    account_id: AccountId,
    scope: &str,
    key: &str,
    request_hash: &str,
    ttl: Duration,
) -> QueryResult<Claim> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let insert = diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::account_id.eq(account_id),
            idempotency_keys::scope.eq(scope),
            idempotency_keys::idem_key.eq(key),
            idempotency_keys::request_hash.eq(request_hash),
            idempotency_keys::status.eq(KeyStatus::InFlight.as_str()),
            idempotency_keys::created_at.eq(at),
        ))
        .on_conflict((
            idempotency_keys::account_id,
            idempotency_keys::scope,
            idempotency_keys::idem_key,
        ))
        .do_nothing()
        .returning(idempotency_keys::id);
    // Diesel builds `ON CONFLICT` for each backend, not for `DbConnection`: same SQL on both.
    let inserted = match conn {
        DbConnection::Pg(pg) => insert.get_result::<i64>(pg),
        DbConnection::Sqlite(sqlite) => insert.get_result::<i64>(sqlite),
    }
    .optional()?;
    if let Some(id) = inserted {
        return Ok(Claim::Started(Held { id, since: at }));
    }
    let existing = idempotency_keys::table
        .filter(idempotency_keys::account_id.eq(account_id))
        .filter(idempotency_keys::scope.eq(scope))
        .filter(idempotency_keys::idem_key.eq(key))
        // Unique (account, scope, key), so no `LIMIT` (see "one row by its key" in `db`).
        .get_result::<KeyRow>(conn)
        .optional()?;
    match existing {
        // Gone between the insert and the read (retention deleted an expired key): the
        // next try inserts it.
        None => Ok(Claim::InFlight),
        // Past its lifetime a key is forgotten, whatever it was used for: this is a
        // new request. Retention deletes such rows; until it has, start afresh here.
        Some(row) if row.created_at < at - ttl => {
            let renewed = diesel::update(
                idempotency_keys::table
                    .find(row.id)
                    .filter(idempotency_keys::created_at.eq(row.created_at)),
            )
            .set((
                idempotency_keys::request_hash.eq(request_hash),
                idempotency_keys::status.eq("in_flight"),
                idempotency_keys::response_status.eq(None::<i32>),
                idempotency_keys::response_body.eq(None::<String>),
                idempotency_keys::created_at.eq(at),
            ))
            .execute(conn)?;
            Ok(if renewed == 1 {
                Claim::Started(Held {
                    id: row.id,
                    since: at,
                })
            } else {
                Claim::InFlight
            })
        }
        Some(row) if row.request_hash != request_hash => Ok(Claim::Mismatch),
        Some(row)
            if row.status == KeyStatus::InFlight
                && row.created_at < at - Duration::seconds(ABANDONED_AFTER_SECS) =>
        {
            // Take over only the claim we read: a concurrent taker changes
            // `created_at` first, and then this update matches nothing.
            let taken = diesel::update(
                idempotency_keys::table
                    .find(row.id)
                    .filter(idempotency_keys::status.eq(KeyStatus::InFlight.as_str()))
                    .filter(idempotency_keys::created_at.eq(row.created_at)),
            )
            .set(idempotency_keys::created_at.eq(at))
            .execute(conn)?;
            Ok(if taken == 1 {
                Claim::Started(Held {
                    id: row.id,
                    since: at,
                })
            } else {
                Claim::InFlight
            })
        }
        Some(row) => classify(row, request_hash),
    }
}

/// Stores the response of a claimed key; call inside the transaction that did the work.
/// False when the claim is no longer this request's (it was taken over as abandoned): the
/// caller must then roll its work back.
pub fn finish(conn: &mut WriteConn<'_>, held: Held, status: u16, body: &str) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let changed = diesel::update(
        idempotency_keys::table
            .find(held.id)
            .filter(idempotency_keys::status.eq(KeyStatus::InFlight.as_str()))
            .filter(idempotency_keys::created_at.eq(held.since)),
    )
    .set((
        idempotency_keys::status.eq(KeyStatus::Done.as_str()),
        idempotency_keys::response_status.eq(i32::from(status)),
        idempotency_keys::response_body.eq(body),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Gives a claim back when the request failed before doing anything, so the client may
/// retry with the same key once it has fixed the cause. Only this request's own claim.
pub fn release(conn: &mut WriteConn<'_>, held: Held) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    diesel::delete(
        idempotency_keys::table
            .find(held.id)
            .filter(idempotency_keys::status.eq(KeyStatus::InFlight.as_str()))
            .filter(idempotency_keys::created_at.eq(held.since)),
    )
    .execute(conn)
    .map(drop)
}

/// Deletes up to `limit` keys claimed before `cutoff`, oldest first, in one short
/// statement; returns how many went. Their responses can no longer be replayed.
pub fn delete_expired(
    conn: &mut WriteConn<'_>,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    let conn: &mut DbConnection = conn;
    let ids: Vec<i64> = idempotency_keys::table
        .filter(idempotency_keys::created_at.lt(cutoff))
        .order(idempotency_keys::created_at.asc())
        .select(idempotency_keys::id)
        .limit(limit)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::id.eq_any(&ids))
            .filter(idempotency_keys::created_at.lt(cutoff)),
    )
    .execute(conn)
}
