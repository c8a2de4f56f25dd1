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
    conn: &mut DbConnection,
    claim: idempotency::Held,
    status: u16,
    body: &str,
) -> Result<(), ApiError> {
    if idempotency::finish(conn, claim, status, body)? {
        Ok(())
    } else {
        Err(ApiError::Conflict {
            code: ErrorCode::IdempotencyKeyInFlight,
            detail:
                "another request with this Idempotency-Key took over; retry to get its response"
                    .into(),
        })
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
    let claim = match &key {
        None => None,
        Some(key) => match idempotency::claim(
            conn,
            account_id,
            scope,
            &key.key,
            &key.request_hash,
            key.ttl,
        )
        .map_err(ApiError::from)?
        {
            idempotency::Claim::Started(held) => Some(held),
            idempotency::Claim::Replay { status, body } => {
                return Ok(Stored {
                    status,
                    body,
                    replayed: true,
                })
            }
            idempotency::Claim::Mismatch => {
                return Err(ApiError::Unprocessable {
                    code: ErrorCode::IdempotencyKeyReused,
                    detail: "this Idempotency-Key was already used with a different request body"
                        .into(),
                    param: Some(KEY_NAME.into()),
                }
                .into())
            }
            idempotency::Claim::InFlight => return Err(ApiError::Conflict {
                code: ErrorCode::IdempotencyKeyInFlight,
                detail:
                    "a request with this Idempotency-Key is still being processed; retry shortly"
                        .into(),
            }
            .into()),
        },
    };
    let result = work(conn, claim);
    if let (Err(_), Some(id)) = (&result, claim) {
        if let Err(e) = idempotency::release(conn, id) {
            tracing::warn!(error = %e, "could not release an idempotency claim; it expires on its own");
        }
    }
    result
}

/// Runs `work` at most once per key in one write transaction that also stores the
/// response `work` renders, so the effect and its replay commit or roll back together.
///
/// A transaction the database rolls back for a conflict runs again under the same claim
/// (`db::write_tx`), `work` and the stored response with it: the claim is given back only
/// when the last attempt failed, and only one attempt can ever commit.
pub fn respond_once<E: From<ApiError> + db::TxError>(
    conn: &mut DbConnection,
    account_id: i64,
    scope: &str,
    key: Option<IdempotencyKey>,
    status: u16,
    work: impl Fn(&mut DbConnection) -> Result<String, E>,
) -> Result<Stored, E> {
    with_idempotency(conn, account_id, scope, key, |conn, claim| {
        db::write_tx(conn, |conn| {
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
    })
}
