//! The operator's review queue, oldest request first, and the case file of one request:
//! everything needed to decide it on one screen (the order, its provider progress, the
//! policy's decision, the reseller's standing), read in one call.

use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::accounts::AccountResponse;
use super::admin_orders::AttemptResponse;
use super::orders::OrderResponse;
use super::providers::ForwardingResponse;
use super::refund_standing::{standing_response, RefundStandingResponse};
use super::refunds::RefundResponse;
use crate::db::{accounts, orders, provider_orders, refunds, services};
use crate::domain::ids::{ProviderId, RefundId, ServiceId};
use crate::error::ApiError;
use crate::http::auth::Admin;
use crate::http::extract::ApiQuery;
use crate::http::state::AppState;
use crate::http::wire::{page_limit, page_response, Page};

/// Attempts and past requests shown beside a request under review.
const CASE_HISTORY: i64 = 10;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReviewQueueQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Return requests newer than this refund id.
    pub starting_after: Option<i64>,
}

/// The review queue: refund requests awaiting a decision, oldest first.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(ReviewQueueQuery),
    responses((status = 200, description = "A page of requests awaiting review, oldest first", body = Page<RefundResponse>))
)]
#[get("/v1/admin/review-queue")]
pub async fn list_review_queue(
    req: HttpRequest,
    state: web::Data<AppState>,
    _admin: Admin,
    query: ApiQuery<ReviewQueueQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.0.limit)?;
    let after = query.0.starting_after;
    let rows = state
        .db(move |conn| Ok(refunds::review_queue(conn, after, limit + 1)?))
        .await?;
    Ok(page_response(
        &req,
        rows,
        limit,
        |r| r.id.get(),
        RefundResponse::from,
    ))
}

#[derive(Serialize, ToSchema)]
pub struct ServiceSummary {
    #[schema(value_type = i64)]
    pub id: ServiceId,
    pub name: String,
    #[schema(value_type = Option<i64>)]
    pub provider_id: Option<ProviderId>,
}

#[derive(Serialize, ToSchema)]
pub struct ReviewCaseResponse {
    /// The request, with the policy decision (rule and numbers) that sent it to review.
    pub refund: RefundResponse,
    /// The order disputed; null for a refund that is not an order's.
    pub order: Option<OrderResponse>,
    pub service: Option<ServiceSummary>,
    /// The reseller, with its balance now.
    pub account: AccountResponse,
    pub standing: RefundStandingResponse,
    /// The reseller's latest refund requests, newest first (this one included).
    pub recent_requests: Vec<RefundResponse>,
    /// Where the order stands upstream; null when no provider delivers it.
    pub forwarding: Option<ForwardingResponse>,
    /// The latest exchanges with the provider about this order, newest first.
    pub attempts: Vec<AttemptResponse>,
}

/// The case file of one refund: the request, the order, its provider progress and the
/// reseller's standing. Also shows a request another operator already decided.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Refund id")),
    responses(
        (status = 200, description = "The refund and its evidence", body = ReviewCaseResponse),
        (status = 404, description = "No such refund", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/admin/refunds/{id}/case")]
pub async fn find_review_case(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = RefundId(id.into_inner());
    let (refund, order, service, account, recent, forwarding, attempts) = state
        .db(move |conn| {
            let refund =
                refunds::find(conn, id, None)?.ok_or_else(|| ApiError::not_found("refund"))?;
            let order = match refund.order_id {
                Some(order_id) => orders::find(conn, order_id)?,
                None => None,
            };
            let service = match &order {
                Some(order) => services::find(conn, order.service_id)?,
                None => None,
            };
            let account = accounts::find(conn, refund.account_id)?
                .ok_or_else(|| ApiError::not_found("account"))?;
            let recent = refunds::recent_requests(conn, refund.account_id, CASE_HISTORY)?;
            let (forwarding, attempts) = match refund.order_id {
                Some(order_id) => (
                    provider_orders::find(conn, order_id)?,
                    provider_orders::attempts_for(conn, order_id, CASE_HISTORY)?,
                ),
                None => (None, Vec::new()),
            };
            Ok((
                refund, order, service, account, recent, forwarding, attempts,
            ))
        })
        .await?;
    let standing = standing_response(&state, account.id).await?;
    Ok(HttpResponse::Ok().json(ReviewCaseResponse {
        refund: refund.into(),
        order: order.map(Into::into),
        service: service.map(|s| ServiceSummary {
            id: s.id,
            name: s.name,
            provider_id: s.provider.map(|p| p.0),
        }),
        account: account.into(),
        standing,
        recent_requests: recent.into_iter().map(Into::into).collect(),
        forwarding: forwarding.map(Into::into),
        attempts: attempts.into_iter().map(Into::into).collect(),
    }))
}
