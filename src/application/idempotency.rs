//! Idempotency: a request sent with a key runs at most once; a retry with the same key
//! and body replays the first response, another body is refused, a concurrent one waits.
//!
//! One mechanism for every capability that takes a key (single orders, batches and their
//! lines, disputes): [`claim`] answers [`Claimed::Proceed`] (run the work, then
//! [`Claim::store`] its answer inside the work's transaction) or [`Claimed::Replay`] (the
//! stored response, byte for byte). Called inside the work's transaction, the claim
//! commits or rolls back with it; work that spans several transactions (a batch) claims
//! in a transaction of its own and [`Claim::release`]s the key if it fails, so a failed
//! request never leaves a claim behind.
//!
//! The stored response is what the client was answered: a status and the body's bytes.
//! The status comes from the adapter's table (`http::idempotency::status_of`), handed in
//! with the key; this layer names only the [`Answer`] it stores.

use sha2::{Digest, Sha256};

use crate::db::{self, idempotency, DbConnection};
use crate::domain::ids::AccountId;
use crate::error::ErrorCode;

/// The name clients send the key under; errors about the key point at it.
pub const KEY_NAME: &str = "Idempotency-Key";

/// A fingerprint of a JSON body that ignores key order and whitespace.
pub fn request_hash(body: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(body.to_string().as_bytes()))
}

/// The API a keyed request came through, which decides what its stored answer looks like
/// (the REST resource, or the panel dialect's `{"order": id}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Rest,
    PanelV2,
}

/// What a stored answer says; the adapter's table turns it into the status stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// An order placed (a single order or a batch line).
    OrderPlaced,
    /// A batch's per-line results.
    BatchAnswered,
    /// A dispute approved and credited at once.
    DisputeApproved,
    /// A dispute left for an operator's review.
    DisputeInReview,
    /// A subscription created.
    SubscriptionCreated,
}

/// The key a request came with, the fingerprint of its body, how long a response stored
/// under it may be replayed (after that the key starts a new request), the API it came
/// through and that API's status for each [`Answer`].
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
    pub ttl: chrono::Duration,
    pub dialect: Dialect,
    pub status_of: fn(Dialect, Answer) -> u16,
}

/// A response stored under a key, exactly as it was first sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub status: u16,
    pub body: String,
}

/// Why a keyed request is refused before it runs, or rolled back after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyError {
    #[error("this Idempotency-Key was already used with a different request body")]
    Reused,
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    InFlight,
    /// The claim was taken over as abandoned while the work ran; the work rolls back.
    #[error("another request with this Idempotency-Key took over; retry to get its response")]
    TakenOver,
}

impl IdempotencyError {
    /// The problem code this refusal is reported (and counted) with.
    pub fn code(self) -> ErrorCode {
        match self {
            IdempotencyError::Reused => ErrorCode::IdempotencyKeyReused,
            IdempotencyError::InFlight | IdempotencyError::TakenOver => {
                ErrorCode::IdempotencyKeyInFlight
            }
        }
    }
}

/// What [`claim`] decided.
#[derive(Debug)]
pub enum Claimed {
    /// Run the work; store its answer with the claim (none without a key).
    Proceed(Option<Claim>),
    /// The key already has this request's answer: send it as stored.
    Replay(Replay),
}

/// A key this request holds until its answer is stored or the key is given back.
#[derive(Debug, Clone, Copy)]
#[must_use = "store the answer with the claim, or release it"]
pub struct Claim {
    held: idempotency::Held,
    dialect: Dialect,
    status_of: fn(Dialect, Answer) -> u16,
}

/// Claims `key` under `scope` for the account, inside the caller's write transaction: the
/// work's own (the claim then commits or rolls back with the work) or one of its own.
pub fn claim<E>(
    conn: &mut db::WriteConn<'_>,
    account_id: AccountId,
    scope: &str,
    key: Option<&IdempotencyKey>,
) -> Result<Claimed, E>
where
    E: From<IdempotencyError> + From<diesel::result::Error>,
{
    let Some(key) = key else {
        return Ok(Claimed::Proceed(None));
    };
    match idempotency::claim(
        conn,
        account_id,
        scope,
        &key.key,
        &key.request_hash,
        key.ttl,
    )? {
        idempotency::Claim::Started(held) => Ok(Claimed::Proceed(Some(Claim {
            held,
            dialect: key.dialect,
            status_of: key.status_of,
        }))),
        idempotency::Claim::Replay { status, body } => Ok(Claimed::Replay(Replay { status, body })),
        idempotency::Claim::Mismatch => Err(IdempotencyError::Reused.into()),
        idempotency::Claim::InFlight => Err(IdempotencyError::InFlight.into()),
    }
}

impl Claim {
    /// The API the claimed request came through.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Stores the answer under the claim; call inside the transaction that did the work.
    /// If the claim was taken over meanwhile, fails with [`IdempotencyError::TakenOver`] so
    /// the work rolls back.
    pub fn store<E>(self, conn: &mut db::WriteConn<'_>, answer: Answer, body: &str) -> Result<(), E>
    where
        E: From<IdempotencyError> + From<diesel::result::Error>,
    {
        let status = (self.status_of)(self.dialect, answer);
        if idempotency::finish(conn, self.held, status, body)? {
            Ok(())
        } else {
            Err(IdempotencyError::TakenOver.into())
        }
    }

    /// Gives the key back after the work failed, so a corrected retry with the same key
    /// runs. For claims taken in a transaction of their own; one taken inside the work's
    /// transaction goes with its rollback.
    pub fn release(self, conn: &mut DbConnection) {
        let held = self.held;
        if let Err(e) = db::write_tx(conn, |conn| idempotency::release(conn, held)) {
            tracing::warn!(error = %e, "could not release an idempotency claim; it expires on its own");
        }
    }
}

/// Gives `claim` back if `result` failed (see [`Claim::release`]); returns `result`.
pub fn release_on_error<T, E>(
    conn: &mut DbConnection,
    claim: Option<Claim>,
    result: Result<T, E>,
) -> Result<T, E> {
    if let (Err(_), Some(claim)) = (&result, claim) {
        claim.release(conn);
    }
    result
}
