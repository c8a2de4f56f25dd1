use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::orders::OrderResponse;
use crate::application;
use crate::application::disputes::Dispute;
use crate::application::disputes::{DisputeError, Disputed};
use crate::application::idempotency::{Answer, Dialect};
use crate::application::refunds::Settled;
use crate::db::refunds::{self, RefundFilter};
use crate::domain::account::Scope;
use crate::domain::ids::{AccountId, OrderId, RefundId};
use crate::domain::refund::{DisputeReason, RefundReason, RefundStatus};
use crate::domain::{parse_text, FieldError};
use crate::error::{ApiError, ErrorCode};
use crate::http::auth::{Admin, Caller};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::idempotency::{answered, replayed, rest_key};
use crate::http::state::AppState;
use crate::http::wire::{page_limit, page_response, parse_optional_positive_money, Page};
pub use crate::resources::RefundResponse;

/// An order after a refund trigger, with the refund it produced (null when nothing was owed).
#[derive(Serialize, ToSchema)]
pub struct SettlementResponse {
    pub order: OrderResponse,
    pub refund: Option<RefundResponse>,
}

impl From<Settled> for SettlementResponse {
    fn from(settled: Settled) -> SettlementResponse {
        SettlementResponse {
            order: settled.order.into(),
            refund: settled.refund.map(Into::into),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListRefundsQuery {
    #[param(value_type = Option<i64>)]
    pub order_id: Option<OrderId>,
    pub status: Option<RefundStatus>,
    pub reason: Option<RefundReason>,
    /// Refunds created at or after this time (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Refunds created before this time (RFC 3339).
    pub created_to: Option<DateTime<Utc>>,
    /// Operators only: one account's refunds.
    #[param(value_type = Option<i64>)]
    pub account_id: Option<AccountId>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Return refunds older than this refund id.
    pub starting_after: Option<i64>,
}

async fn refund_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: ListRefundsQuery,
    account_id: Option<AccountId>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let filter = RefundFilter {
        account_id,
        order_id: query.order_id,
        status: query.status,
        reason: query.reason,
        created_from: query.created_from.map(|t| t.naive_utc()),
        created_to: query.created_to.map(|t| t.naive_utc()),
    };
    let rows = state
        .db(move |conn| {
            Ok(refunds::page(
                conn,
                &filter,
                query.starting_after,
                limit + 1,
            )?)
        })
        .await?;
    Ok(page_response(
        &req,
        rows,
        limit,
        |r| r.id.get(),
        RefundResponse::from,
    ))
}

/// Your refunds, newest first.
#[utoipa::path(
    tag = "refunds",
    security(("bearer" = [])),
    params(ListRefundsQuery),
    responses((status = 200, description = "A page of refunds", body = Page<RefundResponse>))
)]
#[get("/v1/refunds")]
pub async fn list_refunds(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListRefundsQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::RefundsRead)?;
    if query.0.account_id.is_some_and(|id| id != caller.account_id) {
        return Err(ApiError::invalid(
            "account_id",
            "resellers see only their own refunds",
        ));
    }
    refund_page(req, state, query.0, Some(caller.account_id)).await
}

/// The review queue and every refund, for operators.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(ListRefundsQuery),
    responses((status = 200, description = "A page of refunds", body = Page<RefundResponse>))
)]
#[get("/v1/admin/refunds")]
pub async fn list_admin_refunds(
    req: HttpRequest,
    state: web::Data<AppState>,
    _admin: Admin,
    query: ApiQuery<ListRefundsQuery>,
) -> Result<HttpResponse, ApiError> {
    let account_id = query.0.account_id;
    refund_page(req, state, query.0, account_id).await
}

/// One of your refunds.
#[utoipa::path(
    tag = "refunds",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Refund id")),
    responses(
        (status = 200, description = "The refund", body = RefundResponse),
        (status = 404, description = "No such refund among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/refunds/{id}")]
pub async fn find_refund(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::RefundsRead)?;
    let id = RefundId(id.into_inner());
    let refund = state
        .db(move |conn| {
            refunds::find(conn, id, Some(caller.account_id))?
                .ok_or_else(|| ApiError::not_found("refund"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(RefundResponse::from(refund)))
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDisputeRequest {
    pub reason: DisputeReason,
    /// What went wrong, for the reviewer.
    #[schema(value_type = Option<crate::http::input::Text2000>)]
    pub note: Option<String>,
    /// How much to refund; the order's whole refundable remainder when omitted.
    #[schema(value_type = Option<crate::http::input::PositiveAmount>)]
    pub amount: Option<String>,
}

/// Ask for a refund on one of your orders. It waits for an operator's review.
#[utoipa::path(
    tag = "refunds",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe. 1 to 255 printable ASCII characters, no spaces", pattern = r"^[!-~]{1,255}$", min_length = 1, max_length = 255),
    ),
    request_body = CreateDisputeRequest,
    responses(
        (status = 201, description = "Approved at once by the refund policy and credited", body = RefundResponse,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored reply to an earlier request with the same Idempotency-Key"))),
        (status = 202, description = "The refund request, awaiting review", body = RefundResponse,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored reply to an earlier request with the same Idempotency-Key")), links(
            ("ApproveRefund" = (operation_id = "approve_refund", parameters(("id" = "$response.body#/id")), description = "Approve the request (operators)")),
            ("RejectRefund" = (operation_id = "reject_refund", parameters(("id" = "$response.body#/id")), description = "Reject the request (operators)")),
            )),
        (status = 429, description = "Refused by a request quota or the refund-abuse policy; the body names the rule and its numbers", body = crate::http::problem::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until a request could pass"))),
        (status = 404, description = "No such order among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is canceled, fully refunded, or already has a request under review", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/orders/{id}/refunds")]
pub async fn create_dispute(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: ApiJson<CreateDisputeRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::RefundsWrite)?;
    state.limits.dispute.check(&caller.account_id, &req)?;
    let order_id = OrderId(id.into_inner());
    let key = rest_key(&req, &body.raw, &state.config)?;
    let request = body.value;
    let mut errors = Vec::new();
    let amount = parse_optional_positive_money("amount", request.amount.as_deref(), &mut errors);
    let note = optional_text("note", request.note.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let dispute = Dispute {
        reason: request.reason,
        amount,
        note,
    };
    let account_id = caller.account_id;
    let rules = state.policy.clone();
    let disputed = state
        .db(move |conn| {
            Ok(application::disputes::create_dispute(
                conn, &rules, account_id, order_id, dispute, key,
            )?)
        })
        .await?;
    let (answer, refund) = match disputed {
        Disputed::Replayed(replay) => return Ok(replayed(replay)),
        Disputed::Approved(refund) => (Answer::DisputeApproved, refund),
        Disputed::InReview(refund) => (Answer::DisputeInReview, refund),
    };
    let body = serde_json::to_string(&RefundResponse::from(refund)).map_err(ApiError::internal)?;
    Ok(answered(Dialect::Rest, answer, body))
}

/// How REST words a dispute's refusal: one problem per variant, its status from its code.
impl From<DisputeError> for ApiError {
    fn from(error: DisputeError) -> ApiError {
        let detail = error.to_string();
        let refused = |code: ErrorCode| ApiError::Refused {
            code,
            detail: detail.clone(),
        };
        match error {
            DisputeError::OrderNotFound => ApiError::not_found("order"),
            DisputeError::OrderCanceled => refused(ErrorCode::OrderCanceled),
            DisputeError::NothingToRefund => refused(ErrorCode::NothingToRefund),
            DisputeError::DisputePending => refused(ErrorCode::DisputePending),
            DisputeError::AmountExceedsRefundable { .. } => ApiError::Invalid {
                code: ErrorCode::AmountExceedsRefundable,
                detail,
                param: Some("amount".into()),
            },
            DisputeError::PolicyRefused(decision) => ApiError::PolicyRefused {
                detail,
                rule: decision.rule.to_string(),
                numbers: decision.detail,
                retry_after_secs: decision.retry_after_secs.unwrap_or(3600).max(1) as u64,
            },
            DisputeError::Idempotency(error) => error.into(),
            DisputeError::Failed(error) => error,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ApproveRefundRequest {
    /// How much to credit; the amount asked (capped at what is still refundable) when omitted.
    #[schema(value_type = Option<crate::http::input::PositiveAmount>)]
    pub amount: Option<String>,
    /// Why, recorded on the refund.
    #[schema(value_type = Option<crate::http::input::Text2000>)]
    pub reason: Option<String>,
}

/// Approve a refund request: credits the balance in the same call.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Refund id")),
    request_body = Option<ApproveRefundRequest>,
    responses(
        (status = 200, description = "The order and the credited refund", body = SettlementResponse),
        (status = 404, description = "No such refund", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The refund was already decided", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/refunds/{id}/approve")]
pub async fn approve_refund(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<ApproveRefundRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = RefundId(id.into_inner());
    let request = body.value;
    let mut errors = Vec::new();
    let amount = parse_optional_positive_money("amount", request.amount.as_deref(), &mut errors);
    let reason = optional_text("reason", request.reason.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let (admin_id, by) = (admin.0.account_id, admin.actor());
    let settled = state
        .db(move |conn| {
            application::disputes::approve_dispute(conn, &by, admin_id, id, amount, reason)
        })
        .await?;
    Ok(HttpResponse::Ok().json(SettlementResponse::from(settled)))
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRefundRequest {
    /// Why the request was rejected; shown to the reseller.
    #[schema(value_type = crate::http::input::Text2000)]
    pub reason: String,
}

/// Reject a refund request. No money moves.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Refund id")),
    request_body = RejectRefundRequest,
    responses(
        (status = 200, description = "The rejected refund", body = RefundResponse),
        (status = 404, description = "No such refund", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The refund was already decided", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/refunds/{id}/reject")]
pub async fn reject_refund(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<RejectRefundRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = RefundId(id.into_inner());
    let reason =
        parse_text(&body.value.reason, 2000).map_err(|m| ApiError::invalid("reason", m))?;
    let (admin_id, by) = (admin.0.account_id, admin.actor());
    let refund = state
        .db(move |conn| application::disputes::reject_dispute(conn, &by, admin_id, id, &reason))
        .await?;
    Ok(HttpResponse::Ok().json(RefundResponse::from(refund)))
}

/// Parses an optional free-text field, recording an error when it is present but bad.
pub fn optional_text(
    field: &'static str,
    raw: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match raw.map(|text| parse_text(text, 2000)) {
        Some(Err(message)) => {
            errors.push(FieldError::new(field, message));
            None
        }
        other => other.and_then(Result::ok),
    }
}
