//! `POST /v1/orders/batch`: mass orders, each line its own transaction.

use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::orders::{CreateOrderRequest, OrderResponse};
use crate::application;
use crate::application::idempotency::{request_hash, IdempotencyKey};
use crate::application::order_batches::MAX_BATCH_ORDERS;
use crate::application::orders::OrderRequest;
use crate::domain::account::Scope;
use crate::domain::order::Order;
use crate::error::ApiError;
use crate::http::auth::Caller;
use crate::http::extract::ApiJson;
use crate::http::idempotency::{idempotency_key, stored_response};
use crate::http::problem::Problem;
use crate::http::state::AppState;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderBatchRequest {
    /// 1 to 100 orders, each the body of `POST /v1/orders`.
    #[schema(min_items = 1, max_items = 100)]
    pub orders: Vec<serde_json::Value>,
}

/// One line's outcome: the order placed, or why not.
#[derive(Serialize, ToSchema)]
pub struct OrderBatchItem {
    pub order: Option<OrderResponse>,
    pub error: Option<Problem>,
}

#[derive(Serialize, ToSchema)]
pub struct OrderBatchResponse {
    /// One item per line, in request order: `{"order": …}` or `{"error": <problem>}`.
    pub results: Vec<OrderBatchItem>,
}

/// Place up to 100 orders at once. Each line is placed in its own transaction with the
/// checks, pricing, quotas and books of `POST /v1/orders` and is charged only if placed;
/// a line that fails (`{"error": <problem>}`) leaves the others alone. With an
/// `Idempotency-Key` a retry returns the same results and places nothing again.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    request_body = CreateOrderBatchRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body replay the first response. 1 to 255 printable ASCII characters, no spaces", pattern = r"^[!-~]{1,255}$", min_length = 1, max_length = 255)),
    responses(
        (status = 200, description = "Per-line results in request order", body = OrderBatchResponse),
        (status = 409, description = "A request with this Idempotency-Key is in flight", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "No lines, more than 100, or the key reused with another body", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/orders/batch")]
pub async fn create_order_batch(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateOrderBatchRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersWrite)?;
    let raw = body.raw.clone();
    let lines = body.value.orders;
    if lines.is_empty() || lines.len() > MAX_BATCH_ORDERS {
        return Err(ApiError::invalid(
            "orders",
            format!("between 1 and {MAX_BATCH_ORDERS} orders"),
        ));
    }
    // The account quota counts every line, as if each were its own `POST /v1/orders`.
    state
        .limits
        .account
        .check_more(&caller.account_id, lines.len() as u32 - 1)?;
    // Each line is read like the body of `POST /v1/orders`; one that is not is its own
    // error, the others still run.
    let mut parsed: Vec<Result<(OrderRequest, serde_json::Value), ApiError>> = Vec::new();
    for line in lines {
        parsed.push(
            serde_json::from_value::<CreateOrderRequest>(line.clone())
                .map(|request| (OrderRequest::from(request), line))
                .map_err(|e| ApiError::invalid("orders", format!("{e}"))),
        );
    }
    let key = idempotency_key(&req)?.map(|key| IdempotencyKey {
        key,
        request_hash: request_hash(&raw),
        ttl: state.config.retention.idempotency_ttl(),
    });
    let account_id = caller.account_id;
    let stored = state
        .db(move |conn| {
            let mut runnable = Vec::new();
            let mut refused = Vec::new();
            for (index, line) in parsed.iter().enumerate() {
                match line {
                    Ok((request, raw)) => runnable.push((request.clone(), raw.clone())),
                    Err(error) => refused.push((index, error.problem())),
                }
            }
            let render = |order: Order| {
                serde_json::to_string(&OrderResponse::from(order)).map_err(ApiError::internal)
            };
            let problem = |error: ApiError| {
                serde_json::to_value(error.problem()).unwrap_or(serde_json::Value::Null)
            };
            if refused.is_empty() {
                return application::order_batches::place_batch(
                    conn, account_id, runnable, key, render, problem,
                );
            }
            // A batch with unreadable lines is refused whole, naming them: placing the
            // rest would leave the client guessing which of its lines ran.
            let (index, first) = &refused[0];
            Err(ApiError::invalid(
                "orders",
                format!("line {index}: {}", first.detail),
            ))
        })
        .await?;
    if !stored.replayed {
        state.wake.notify();
    }
    Ok(stored_response(stored))
}
