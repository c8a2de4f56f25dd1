//! Idempotency: a request sent with a key runs at most once; a retry with the same key
//! and body replays the first response, another body is refused, a concurrent one waits.

use sha2::{Digest, Sha256};

use crate::db::{self, idempotency, DbConnection};
use crate::error::{ApiError, ErrorCode};

/// The name clients send the key under; errors about the key point at it.
pub const KEY_NAME: &str = "Idempotency-Key";

/// A fingerprint of a JSON body that ignores key order and whitespace.
pub fn request_hash(body: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(body.to_string().as_bytes()))
}

/// The key a request came with, the fingerprint of its body, and how long a response
/// stored under it may be replayed (after that the key starts a new request).
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
    pub ttl: chrono::Duration,
}

/// A response stored with an idempotency key, or about to be.
#[derive(Debug)]
pub struct Stored {
    pub status: u16,
    pub body: String,
    pub replayed: bool,
}

/// Stores the response under the request's idempotency claim, inside the work's own
/// transaction; if the claim was taken over meanwhile, the work is rolled back with 409.
pub fn store_response(
    conn: &mut db::WriteConn<'_>,
    claim: idempotency::Held,
    status: u16,
    body: &str,
) -> Result<(), ApiError> {
    if idempotency::finish(conn, claim, status, body)? {
        Ok(())
    } else {
        Err(ApiError::Refused {
            code: ErrorCode::IdempotencyKeyInFlight,
            detail:
                "another request with this Idempotency-Key took over; retry to get its response"
                    .into(),
        })
    }
}

/// Claims `key` for this request: `Ok(Ok(claim))` to go on (no claim without a key),
/// `Ok(Err(stored))` to replay a stored response, `Err` for a key reused with another
/// body or still held by a request in flight.
fn claim_key(
    conn: &mut db::WriteConn<'_>,
    account_id: i64,
    scope: &str,
    key: Option<&IdempotencyKey>,
) -> Result<Result<Option<idempotency::Held>, Stored>, ApiError> {
    let Some(key) = key else {
        return Ok(Ok(None));
    };
    match idempotency::claim(
        conn,
        account_id,
        scope,
        &key.key,
        &key.request_hash,
        key.ttl,
    )? {
        idempotency::Claim::Started(held) => Ok(Ok(Some(held))),
        idempotency::Claim::Replay { status, body } => Ok(Err(Stored {
            status,
            body,
            replayed: true,
        })),
        idempotency::Claim::Mismatch => Err(ApiError::Invalid {
            code: ErrorCode::IdempotencyKeyReused,
            detail: "this Idempotency-Key was already used with a different request body".into(),
            param: Some(KEY_NAME.into()),
        }),
        idempotency::Claim::InFlight => Err(ApiError::Refused {
            code: ErrorCode::IdempotencyKeyInFlight,
            detail: "a request with this Idempotency-Key is still being processed; retry shortly"
                .into(),
        }),
    }
}

/// Runs `work` at most once per idempotency key: claims the key, runs `work` (which must
/// call [`store_response`] inside its own transaction), and gives the claim back if
/// `work` fails, so a corrected retry with the same key can run.
pub fn with_idempotency<E: From<ApiError>>(
    conn: &mut DbConnection,
    account_id: i64,
    scope: &str,
    key: Option<IdempotencyKey>,
    work: impl FnOnce(&mut DbConnection, Option<idempotency::Held>) -> Result<Stored, E>,
) -> Result<Stored, E> {
    let claimed = db::write_tx(conn, |conn| {
        claim_key(conn, account_id, scope, key.as_ref())
    })?;
    let claim = match claimed {
        Ok(claim) => claim,
        Err(replay) => return Ok(replay),
    };
    let result = work(conn, claim);
    if let (Err(_), Some(id)) = (&result, claim) {
        if let Err(e) = db::write_tx(conn, |conn| idempotency::release(conn, id)) {
            tracing::warn!(error = %e, "could not release an idempotency claim; it expires on its own");
        }
    }
    result
}

/// Runs `work` at most once per key in one write transaction that also claims the key
/// and stores the response `work` renders, so the claim, the effect and its replay commit
/// or roll back together: a request that fails, or dies with its process, leaves no claim
/// behind, and a retry with the key simply runs (or replays what committed).
///
/// A concurrent request with the same key waits for this one's transaction (SQLite: its
/// turn at the writer; PostgreSQL: the key's unique index) and then replays it. A
/// transaction the database rolls back for a conflict runs again whole (`db::write_tx`).
pub fn respond_once<E: From<ApiError> + db::TxError + Send>(
    conn: &mut DbConnection,
    account_id: i64,
    scope: &str,
    key: Option<IdempotencyKey>,
    status: u16,
    work: impl Fn(&mut db::WriteConn<'_>) -> Result<String, E> + Sync,
) -> Result<Stored, E> {
    db::write_tx(conn, |conn| {
        let claim = match claim_key(conn, account_id, scope, key.as_ref())? {
            Ok(claim) => claim,
            Err(replay) => return Ok(replay),
        };
        let body = work(conn)?;
        if let Some(claim) = claim {
            store_response(conn, claim, status, &body)?;
        }
        Ok(Stored {
            status,
            body,
            replayed: false,
        })
    })
}
