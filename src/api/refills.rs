//! Refills of delivered orders: a reseller asks for one and follows it; an operator
//! decides the ones no provider works.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::api::orders::rows_of_order;
use crate::application;
use crate::application::refills::RefillError;
use crate::db::refills;
use crate::domain::account::Scope;
use crate::domain::ids::{OrderId, RefillId};
use crate::domain::parse_text;
use crate::domain::refill::{RefillRefusal, RefillStatus};
use crate::error::{ApiError, ErrorCode};
use crate::http::auth::{Admin, Caller};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::state::AppState;
use crate::http::wire::{page_limit, page_response, Page};
pub use crate::resources::RefillResponse;

/// Ask for a refill of one of your orders: completed or partial, of a service that offers
/// refills, within its `refill_days` of the order, at most one per order per 24 hours.
/// A provider-backed order's refill is sent to the provider after this call commits.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Order id")),
    responses(
        (status = 201, description = "The refill, pending", body = RefillResponse),
        (status = 404, description = "No such order among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not refillable (`not_refillable`), outside the service's window (`refill_window_closed`), or within 24 hours of the last refill (`refill_too_soon`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/orders/{id}/refills")]
pub async fn create_refill(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersWrite)?;
    let order_id = OrderId(id.into_inner());
    let account_id = caller.account_id;
    let refill = state
        .db(move |conn| {
            application::refills::request_refill(conn, account_id, order_id).map_err(ApiError::from)
        })
        .await?;
    if refill.state.is_some() {
        state.wake.notify();
    }
    Ok(HttpResponse::Created().json(RefillResponse::from(refill)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListRefillsQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Return refills after this refill id.
    pub starting_after: Option<i64>,
}

/// The refills of one of your orders, oldest first.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Order id"), ListRefillsQuery),
    responses(
        (status = 200, description = "A page of the order's refills", body = Page<RefillResponse>),
        (status = 404, description = "No such order among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/orders/{id}/refills")]
pub async fn list_refills(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    query: ApiQuery<ListRefillsQuery>,
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
        refills::page_for_order,
    )
    .await?;
    Ok(page_response(
        &req,
        rows,
        limit,
        |r| r.id.get(),
        RefillResponse::from,
    ))
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRefillRequest {
    /// Why; shown to the reseller.
    #[schema(value_type = Option<crate::http::input::Text2000>)]
    pub reason: Option<String>,
}

async fn decide(
    state: web::Data<AppState>,
    admin: Admin,
    id: RefillId,
    status: RefillStatus,
    body: DecideRefillRequest,
) -> Result<HttpResponse, ApiError> {
    let reason = match body.reason {
        Some(text) => Some(parse_text(&text, 2000).map_err(|m| ApiError::invalid("reason", m))?),
        None => None,
    };
    let (admin_id, by) = (admin.0.account_id, admin.actor());
    let refill = state
        .db(move |conn| {
            application::refills::decide_refill(conn, &by, admin_id, id, status, reason.clone())
        })
        .await?;
    Ok(HttpResponse::Ok().json(RefillResponse::from(refill)))
}

/// Mark a refill no provider works as completed.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Refill id")),
    request_body = Option<DecideRefillRequest>,
    responses(
        (status = 200, description = "The completed refill", body = RefillResponse),
        (status = 404, description = "No such refill", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Worked by its provider, or already final (`refill_not_open`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/refills/{id}/complete")]
pub async fn complete_refill(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<DecideRefillRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.value;
    decide(
        state,
        admin,
        RefillId(id.into_inner()),
        RefillStatus::Completed,
        body,
    )
    .await
}

/// Reject a refill no provider works.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Refill id")),
    request_body = Option<DecideRefillRequest>,
    responses(
        (status = 200, description = "The rejected refill", body = RefillResponse),
        (status = 404, description = "No such refill", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Worked by its provider, or already final (`refill_not_open`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/refills/{id}/reject")]
pub async fn reject_refill(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<DecideRefillRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.value;
    decide(
        state,
        admin,
        RefillId(id.into_inner()),
        RefillStatus::Rejected,
        body,
    )
    .await
}

/// How REST words a refill's refusal: one problem per refusal, its status from its code.
impl From<RefillError> for ApiError {
    fn from(error: RefillError) -> ApiError {
        let conflict = |code, detail: String| ApiError::Refused { code, detail };
        match error {
            RefillError::OrderNotFound => ApiError::not_found("order"),
            RefillError::Refused(RefillRefusal::NotOffered) => conflict(
                ErrorCode::NotRefillable,
                "this order's service offers no refills".into(),
            ),
            RefillError::Refused(RefillRefusal::NotDelivered) => conflict(
                ErrorCode::NotRefillable,
                "only completed or partial orders can be refilled".into(),
            ),
            RefillError::Refused(RefillRefusal::WindowClosed { days }) => conflict(
                ErrorCode::RefillWindowClosed,
                format!("refills of this service are accepted for {days} days after the order"),
            ),
            RefillError::Refused(RefillRefusal::TooSoon { next_at }) => conflict(
                ErrorCode::RefillTooSoon,
                format!(
                    "one refill per order per 24 hours; the next from {}",
                    next_at.and_utc().to_rfc3339()
                ),
            ),
            RefillError::Db(e) => e.into(),
        }
    }
}
