//! Idempotency keys: the first request with a key runs, later ones with the same key
//! and body replay its response, another body is refused, a concurrent one waits its turn.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::schema::idempotency_keys;
use super::{is_unique_violation, now, write_tx, DbConnection};

/// A claim left `in_flight` this long belongs to a request that died; it may be taken over.
const ABANDONED_AFTER_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request owns the key: run it, then [`finish`] with the claim id.
    Started(i64),
    /// The key already has a stored response with the same request.
    Replay { status: u16, body: String },
    /// The key was used with another request body.
    Mismatch,
    /// Another request with this key is still running.
    InFlight,
}

#[derive(Queryable)]
struct KeyRow {
    id: i64,
    _account_id: i64,
    _scope: String,
    _idem_key: String,
    request_hash: String,
    status: String,
    response_status: Option<i32>,
    response_body: Option<String>,
    created_at: NaiveDateTime,
}

fn classify(row: KeyRow, request_hash: &str) -> Claim {
    if row.request_hash != request_hash {
        return Claim::Mismatch;
    }
    match (row.status.as_str(), row.response_status, row.response_body) {
        ("done", Some(status), Some(body)) => Claim::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body,
        },
        _ => Claim::InFlight,
    }
}

/// Claims `key` for this request in its own short transaction.
pub fn claim(
    conn: &mut DbConnection,
    account_id: i64,
    scope: &str,
    key: &str,
    request_hash: &str,
) -> QueryResult<Claim> {
    let attempt = |conn: &mut DbConnection| {
        write_tx(conn, |conn| {
            let existing = idempotency_keys::table
                .filter(idempotency_keys::account_id.eq(account_id))
                .filter(idempotency_keys::scope.eq(scope))
                .filter(idempotency_keys::idem_key.eq(key))
                .first::<KeyRow>(conn)
                .optional()?;
            let at = now();
            match existing {
                Some(row)
                    if row.status == "in_flight"
                        && row.created_at < at - Duration::seconds(ABANDONED_AFTER_SECS) =>
                {
                    diesel::update(idempotency_keys::table.find(row.id))
                        .set((
                            idempotency_keys::request_hash.eq(request_hash),
                            idempotency_keys::created_at.eq(at),
                        ))
                        .execute(conn)?;
                    Ok(Claim::Started(row.id))
                }
                Some(row) => Ok(classify(row, request_hash)),
                None => diesel::insert_into(idempotency_keys::table)
                    .values((
                        idempotency_keys::account_id.eq(account_id),
                        idempotency_keys::scope.eq(scope),
                        idempotency_keys::idem_key.eq(key),
                        idempotency_keys::request_hash.eq(request_hash),
                        idempotency_keys::status.eq("in_flight"),
                        idempotency_keys::created_at.eq(at),
                    ))
                    .returning(idempotency_keys::id)
                    .get_result(conn)
                    .map(Claim::Started),
            }
        })
    };
    match attempt(conn) {
        // A concurrent request inserted the same key first: read what it left.
        Err(error) if is_unique_violation(&error) => attempt(conn),
        other => other,
    }
}

/// Stores the response of a claimed key; call inside the transaction that did the work.
pub fn finish(conn: &mut DbConnection, claim_id: i64, status: u16, body: &str) -> QueryResult<()> {
    diesel::update(idempotency_keys::table.find(claim_id))
        .set((
            idempotency_keys::status.eq("done"),
            idempotency_keys::response_status.eq(i32::from(status)),
            idempotency_keys::response_body.eq(body),
        ))
        .execute(conn)
        .map(drop)
}

/// Gives a claim back when the request failed before doing anything, so the client may
/// retry with the same key once it has fixed the cause.
pub fn release(conn: &mut DbConnection, claim_id: i64) -> QueryResult<()> {
    diesel::delete(
        idempotency_keys::table
            .find(claim_id)
            .filter(idempotency_keys::status.eq("in_flight")),
    )
    .execute(conn)
    .map(drop)
}
