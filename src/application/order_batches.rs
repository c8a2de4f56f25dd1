//! Mass orders: up to 100 orders in one request, each placed in its own transaction by
//! `orders::place` (the same checks, pricing, quotas, books and metrics as a single order),
//! answered line by line in request order.
//!
//! With an `Idempotency-Key` the batch runs at most once: the key is claimed first, in a
//! transaction of its own, each line runs under a key derived from it and its position
//! (`key#index`, so a line that committed is never placed twice, even if the batch was
//! interrupted), and the whole answer is stored under the batch key at the end
//! ([`answer`]); a replay returns it as it was. A batch that fails before its answer is
//! stored gives its key back.

use super::idempotency::{
    self, release_on_error, request_hash, Answer, Claim, Claimed, IdempotencyError, IdempotencyKey,
    Replay,
};
use super::orders::{place_scoped, OrderRequest, PlaceOrderError, Placed};
use crate::db::{self, DbConnection};
use crate::domain::ids::AccountId;
use crate::error::{ApiError, ErrorCode};

/// The most orders one batch may hold.
pub const MAX_BATCH_ORDERS: usize = 100;

/// Why a batch was not run, or its answer not stored (a line's refusal is its own result).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    /// The database failed, or its writer refused (as the service answers it).
    #[error(transparent)]
    Database(ApiError),
}

impl BatchError {
    /// The problem code this refusal is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            BatchError::Idempotency(error) => error.code(),
            BatchError::Database(error) => error.code(),
        }
    }
}

impl From<diesel::result::Error> for BatchError {
    fn from(error: diesel::result::Error) -> BatchError {
        BatchError::Database(error.into())
    }
}

impl db::TxError for BatchError {
    fn is_conflict(&self) -> bool {
        matches!(self, BatchError::Database(error) if db::TxError::is_conflict(error))
    }

    fn from_write(error: db::writer::WriteError) -> BatchError {
        BatchError::Database(error.into())
    }
}

/// What a batch did: ran its lines (its answer still to be stored with [`answer`]), or
/// replayed the answer stored by the first request with its key.
#[derive(Debug)]
pub enum Batch {
    Ran(Ran),
    Replayed(Replay),
}

/// A batch whose lines ran: each line's outcome in request order, and the batch key's
/// claim, held until [`answer`] stores the rendered answer under it.
#[derive(Debug)]
pub struct Ran {
    pub lines: Vec<Result<Placed, PlaceOrderError>>,
    claim: Option<Claim>,
}

/// Places every line in order, each in its own transaction (a line's `raw` body is its
/// key's fingerprint). Pass the result to [`answer`] with the answer rendered from it.
pub fn place_batch(
    conn: &mut DbConnection,
    account_id: AccountId,
    lines: Vec<(OrderRequest, serde_json::Value)>,
    key: Option<IdempotencyKey>,
) -> Result<Batch, BatchError> {
    // Claimed in a transaction of its own: each line commits in its own.
    let claimed = db::write_tx(conn, |conn| {
        idempotency::claim::<BatchError>(conn, account_id, "create_order_batch", key.as_ref())
    })?;
    let claim = match claimed {
        Claimed::Replay(replay) => return Ok(Batch::Replayed(replay)),
        Claimed::Proceed(claim) => claim,
    };
    let mut results = Vec::with_capacity(lines.len());
    for (index, (request, raw)) in lines.into_iter().enumerate() {
        let line_key = key.as_ref().map(|k| IdempotencyKey {
            key: format!("{}#{index}", k.key),
            request_hash: request_hash(&raw),
            ..k.clone()
        });
        results.push(place_scoped(
            conn,
            account_id,
            request,
            "create_order_batch_line",
            line_key,
        ));
    }
    Ok(Batch::Ran(Ran {
        lines: results,
        claim,
    }))
}

/// Stores a batch's answer under its key (nothing without a key); gives the key back if
/// that fails, so the retry runs (its lines replay, none is placed twice).
pub fn answer(conn: &mut DbConnection, ran: Ran, body: &str) -> Result<(), BatchError> {
    let Some(claim) = ran.claim else {
        return Ok(());
    };
    let stored = db::write_tx(conn, |conn| {
        claim.store::<BatchError>(conn, Answer::BatchAnswered, body)
    });
    release_on_error(conn, Some(claim), stored)
}
