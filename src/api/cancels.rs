//! Cancel requests: what was asked of the provider for an order already sent, and its answer.

use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::orders::rows_of_order;
use crate::db::cancels::{self, CancelRequest};
use crate::domain::account::Scope;
use crate::domain::cancel::{CancelSource, CancelStatus};
use crate::domain::ids::{CancelRequestId, OrderId};
use crate::error::ApiError;
use crate::http::auth::Caller;
use crate::http::extract::ApiQuery;
use crate::http::state::AppState;
use crate::http::wire::{page_limit, page_response, utc, Page};

#[derive(Serialize, ToSchema)]
pub struct CancelRequestResponse {
    #[schema(value_type = i64)]
    pub id: CancelRequestId,
    #[schema(value_type = i64)]
    pub order_id: OrderId,
    /// `pending` (not answered yet), `accepted` (the refund follows the provider's next
    /// status), `refused` (the order continues; see `reason`), `failed` (no answer).
    pub status: CancelStatus,
    /// `reseller`, or `service_disabled` when an operator disabled the service.
    pub source: CancelSource,
    /// Why the provider refused, in its words.
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<CancelRequest> for CancelRequestResponse {
    fn from(request: CancelRequest) -> CancelRequestResponse {
        CancelRequestResponse {
            id: request.id,
            order_id: request.order_id,
            status: request.status,
            source: request.source,
            reason: request.reason,
            created_at: utc(request.created_at),
            updated_at: utc(request.updated_at),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListCancelRequestsQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Return requests after this request id.
    pub starting_after: Option<i64>,
}

/// The cancel requests sent upstream for one of your orders, oldest first.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Order id"), ListCancelRequestsQuery),
    responses(
        (status = 200, description = "A page of the order's cancel requests", body = Page<CancelRequestResponse>),
        (status = 404, description = "No such order among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/orders/{id}/cancel-requests")]
pub async fn list_cancel_requests(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    query: ApiQuery<ListCancelRequestsQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersRead)?;
    let query = query.0;
    let limit = page_limit(query.limit)?;
    let rows = rows_of_order(
        &state,
        caller.account_id,
        OrderId(id.into_inner()),
        query.starting_after,
        limit,
        cancels::page_for_order,
    )
    .await?;
    Ok(page_response(
        &req,
        rows,
        limit,
        |r| r.id.get(),
        CancelRequestResponse::from,
    ))
}
