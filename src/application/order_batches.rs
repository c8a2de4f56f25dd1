//! Mass orders: up to 100 orders in one request, each placed in its own transaction by
//! `orders::create_order` (the same checks, pricing, quotas and books as a single order),
//! answered line by line in request order.
//!
//! With an `Idempotency-Key` the batch runs at most once: the key is claimed first, each
//! line runs under a key derived from it and its position (so a line that committed is
//! never placed twice, even if the batch was interrupted), and the whole answer is stored
//! under the batch key at the end; a replay returns it as it was.

use super::idempotency::{request_hash, store_response, with_idempotency, IdempotencyKey, Stored};
use super::orders::{create_order, OrderRequest};
use crate::db::{self, DbConnection};
use crate::domain::order::Order;
use crate::error::ApiError;

/// The most orders one batch may hold.
pub const MAX_BATCH_ORDERS: usize = 100;

/// Places every line in order, each in its own transaction; `render` turns each line's
/// outcome into its JSON item, and the answer is `{"results": [...]}`.
pub fn place_batch(
    conn: &mut DbConnection,
    account_id: i64,
    lines: Vec<(OrderRequest, serde_json::Value)>,
    key: Option<IdempotencyKey>,
    render_order: impl Fn(Order) -> Result<String, ApiError> + Sync,
    render_error: impl Fn(ApiError) -> serde_json::Value,
) -> Result<Stored, ApiError> {
    with_idempotency(
        conn,
        account_id,
        "create_order_batch",
        key.clone(),
        |conn, claim| {
            let mut results = Vec::with_capacity(lines.len());
            for (index, (request, raw)) in lines.into_iter().enumerate() {
                let line_key = key.as_ref().map(|k| IdempotencyKey {
                    key: format!("{}#{index}", k.key),
                    request_hash: request_hash(&raw),
                    ttl: k.ttl,
                });
                let placed = create_order(
                    conn,
                    account_id,
                    request,
                    "create_order_batch_line",
                    line_key,
                    201,
                    &render_order,
                );
                results.push(match placed {
                    Ok(stored) => {
                        let order: serde_json::Value =
                            serde_json::from_str(&stored.body).map_err(ApiError::internal)?;
                        serde_json::json!({ "order": order })
                    }
                    Err(error) => serde_json::json!({ "error": render_error(error.into()) }),
                });
            }
            let body = serde_json::json!({ "results": results }).to_string();
            if let Some(claim) = claim {
                db::write_tx(conn, |conn| store_response(conn, claim, 200, &body))?;
            }
            Ok(Stored {
                status: 200,
                body,
                replayed: false,
            })
        },
    )
}
