//! `POST /v1/orders/batch`: mass orders, each line its own transaction.

use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::orders::{CreateOrderRequest, OrderResponse};
use crate::application::idempotency::{Answer, Dialect};
use crate::application::order_batches::{self, Batch, BatchError, MAX_BATCH_ORDERS};
use crate::application::orders::{OrderRequest, PlaceOrderError, Placed};
use crate::domain::account::Scope;
use crate::error::ApiError;
use crate::http::auth::Caller;
use crate::http::extract::{ApiJson, BatchBody};
use crate::http::idempotency::{answered, replayed, rest_key};
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
    body: ApiJson<CreateOrderBatchRequest, BatchBody>,
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
        .check_account_more(&state, caller.account_id, lines.len() as u32 - 1)
        .await?;
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
    let key = rest_key(&req, &raw, &state.config)?;
    let account_id = caller.account_id;
    let reply = state
        .db(move |conn| {
            let mut runnable = Vec::new();
            let mut refused = Vec::new();
            for (index, line) in parsed.iter().enumerate() {
                match line {
                    Ok((request, raw)) => runnable.push((request.clone(), raw.clone())),
                    Err(error) => refused.push((index, error.problem())),
                }
            }
            if let Some((index, first)) = refused.first() {
                // A batch with unreadable lines is refused whole, naming them: placing the
                // rest would leave the client guessing which of its lines ran.
                return Err(ApiError::invalid(
                    "orders",
                    format!("line {index}: {}", first.detail),
                ));
            }
            match order_batches::place_batch(conn, account_id, runnable, key)? {
                Batch::Replayed(replay) => Ok(Err(replay)),
                Batch::Ran(mut ran) => {
                    let body = render_batch(std::mem::take(&mut ran.lines));
                    order_batches::answer(conn, ran, &body)?;
                    Ok(Ok(body))
                }
            }
        })
        .await?;
    Ok(match reply {
        Ok(body) => {
            state.wake.notify();
            answered(Dialect::Rest, Answer::BatchAnswered, body)
        }
        Err(replay) => replayed(replay),
    })
}

/// The batch's answer, `{"results": [...]}`: each line's order, or its problem document.
fn render_batch(lines: Vec<Result<Placed, PlaceOrderError>>) -> String {
    let results: Vec<serde_json::Value> = lines
        .into_iter()
        .map(|line| match line {
            Ok(Placed::New(order)) => serde_json::json!({
                "order": serde_json::to_value(OrderResponse::from(*order))
                    .unwrap_or(serde_json::Value::Null)
            }),
            // A line placed by an interrupted earlier run: its order as stored then.
            Ok(Placed::Replayed(replay)) => serde_json::json!({
                "order": serde_json::from_str::<serde_json::Value>(&replay.body)
                    .unwrap_or(serde_json::Value::Null)
            }),
            Err(error) => serde_json::json!({
                "error": serde_json::to_value(ApiError::from(error).problem())
                    .unwrap_or(serde_json::Value::Null)
            }),
        })
        .collect();
    serde_json::json!({ "results": results }).to_string()
}

/// How REST words a batch's refusal.
impl From<BatchError> for ApiError {
    fn from(error: BatchError) -> ApiError {
        match error {
            BatchError::Idempotency(error) => error.into(),
            BatchError::Database(error) => error,
        }
    }
}
