use actix_web::{post, web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::refunds::{optional_text, RefundResponse};
use crate::application;
use crate::application::top_ups::{GatewayAnswer, TopUpRefund};
use crate::domain::ids::{AccountId, RefundId, TopUpId};
use crate::domain::refund::RefundReason;
use crate::domain::{parse_text, FieldError};
use crate::error::ApiError;
use crate::http::auth::Admin;
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::http::wire::{parse_optional_positive_money, parse_positive_money};
pub use crate::resources::{ChargebackResponse, TopUpResponse};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopUpRequest {
    /// Decimal string, more than zero.
    #[schema(value_type = crate::http::input::PositiveAmount)]
    pub amount: String,
    #[schema(value_type = crate::http::input::Text100)]
    pub gateway: String,
    #[schema(value_type = crate::http::input::Text200)]
    pub gateway_ref: String,
}

/// Record a payment: credits the balance through the ledger.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Account id")),
    request_body = CreateTopUpRequest,
    responses(
        (status = 201, description = "The recorded top-up", body = TopUpResponse),
        (status = 404, description = "No such account", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "This `gateway_ref` was already recorded", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/accounts/{id}/top-ups")]
pub async fn create_top_up(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<CreateTopUpRequest>,
) -> Result<HttpResponse, ApiError> {
    let account_id = AccountId(id.into_inner());
    let request = body.value;
    let mut errors = Vec::new();
    let amount = parse_positive_money("amount", &request.amount, &mut errors);
    let gateway = parse_text(&request.gateway, 100)
        .map_err(|m| errors.push(FieldError::new("gateway", m)))
        .ok();
    let gateway_ref = parse_text(&request.gateway_ref, 200)
        .map_err(|m| errors.push(FieldError::new("gateway_ref", m)))
        .ok();
    let (Some(amount), Some(gateway), Some(gateway_ref), true) =
        (amount, gateway, gateway_ref, errors.is_empty())
    else {
        return Err(errors.into());
    };
    let by = admin.actor();
    let top_up = state
        .db(move |conn| {
            application::top_ups::record_top_up(
                conn,
                &by,
                account_id,
                amount,
                &gateway,
                &gateway_ref,
            )
        })
        .await?;
    Ok(HttpResponse::Created().json(TopUpResponse::from(top_up)))
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TopUpRefundReason {
    DuplicateTopUp,
    Manual,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundTopUpRequest {
    /// How much to return to the payment method.
    #[schema(value_type = crate::http::input::PositiveAmount)]
    pub amount: String,
    pub reason: TopUpRefundReason,
    #[schema(value_type = Option<crate::http::input::Text2000>)]
    pub note: Option<String>,
}

/// Refund a top-up to its payment method. The balance is debited now; the refund stays
/// `pending` until the gateway answers (`succeed` or `fail`, which re-credits).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Top-up id")),
    request_body = RefundTopUpRequest,
    responses(
        (status = 201, description = "The pending refund", body = RefundResponse),
        (status = 402, description = "The balance no longer holds the amount", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such top-up", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/top-ups/{id}/refund")]
pub async fn refund_top_up(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<RefundTopUpRequest>,
) -> Result<HttpResponse, ApiError> {
    let top_up_id = TopUpId(id.into_inner());
    let request = body.value;
    let mut errors = Vec::new();
    let amount = parse_positive_money("amount", &request.amount, &mut errors);
    let note = optional_text("note", request.note.as_deref(), &mut errors);
    let (Some(amount), true) = (amount, errors.is_empty()) else {
        return Err(errors.into());
    };
    let reason = match request.reason {
        TopUpRefundReason::DuplicateTopUp => RefundReason::DuplicateTopUp,
        TopUpRefundReason::Manual => RefundReason::Manual,
    };
    let request = TopUpRefund {
        amount,
        reason,
        note,
    };
    let (admin_id, by) = (admin.0.account_id, admin.actor());
    let refund = state
        .db(move |conn| {
            application::top_ups::refund_top_up(conn, &by, admin_id, top_up_id, request)
        })
        .await?;
    Ok(HttpResponse::Created().json(RefundResponse::from(refund)))
}

/// The gateway's answer for a pending payment-method refund.
async fn finish_payment_refund(
    state: web::Data<AppState>,
    admin: Admin,
    id: RefundId,
    answer: GatewayAnswer,
) -> Result<HttpResponse, ApiError> {
    let (admin_id, by) = (admin.0.account_id, admin.actor());
    let refund = state
        .db(move |conn| {
            application::top_ups::finish_payment_refund(conn, &by, admin_id, id, answer)
        })
        .await?;
    Ok(HttpResponse::Ok().json(RefundResponse::from(refund)))
}

/// The gateway confirmed a payment-method refund.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Refund id")),
    responses(
        (status = 200, description = "The succeeded refund", body = RefundResponse),
        (status = 404, description = "No such refund", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The refund is not a pending payment refund", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/refunds/{id}/succeed")]
pub async fn succeed_refund(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    finish_payment_refund(
        state,
        admin,
        RefundId(id.into_inner()),
        GatewayAnswer::Succeeded,
    )
    .await
}

/// The gateway refused a payment-method refund: the balance is re-credited.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Refund id")),
    responses(
        (status = 200, description = "The failed refund", body = RefundResponse),
        (status = 404, description = "No such refund", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The refund is not a pending payment refund", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/refunds/{id}/fail")]
pub async fn fail_refund(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    finish_payment_refund(
        state,
        admin,
        RefundId(id.into_inner()),
        GatewayAnswer::Failed,
    )
    .await
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ChargebackRequest {
    /// The amount charged back; what is left of the top-up when omitted.
    #[schema(value_type = Option<crate::http::input::PositiveAmount>)]
    pub amount: Option<String>,
    #[schema(value_type = Option<crate::http::input::Text2000>)]
    pub note: Option<String>,
}

/// Record a chargeback: debits the balance (it may go negative) and suspends the account.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Top-up id")),
    request_body = Option<ChargebackRequest>,
    responses(
        (status = 201, description = "The chargeback", body = ChargebackResponse),
        (status = 409, description = "The top-up was already returned in full", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such top-up", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/top-ups/{id}/chargeback")]
pub async fn chargeback_top_up(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<ChargebackRequest>,
) -> Result<HttpResponse, ApiError> {
    let top_up_id = TopUpId(id.into_inner());
    let request = body.value;
    let mut errors = Vec::new();
    let amount = parse_optional_positive_money("amount", request.amount.as_deref(), &mut errors);
    let note = optional_text("note", request.note.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let (admin_id, by) = (admin.0.account_id, admin.actor());
    let charged = state
        .db(move |conn| {
            application::top_ups::charge_back(conn, &by, admin_id, top_up_id, amount, note)
        })
        .await?;
    Ok(HttpResponse::Created().json(ChargebackResponse {
        refund: charged.refund.into(),
        top_up: charged.top_up.into(),
        account: charged.account.into(),
    }))
}
