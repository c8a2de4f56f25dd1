use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::application;
use crate::db::{self, accounts, policy};
use crate::domain::ids::AccountId;
use crate::domain::money::Money;
use crate::domain::policy::{assess, Standing};
use crate::error::ApiError;
use crate::http::auth::Admin;
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::http::wire::{utc, Amount};

#[derive(Serialize, ToSchema)]
pub struct PolicyThresholds {
    pub requests_per_hour: i64,
    pub requests_per_day: i64,
    pub refund_rate_min_orders: i64,
    #[schema(example = "0.2")]
    pub refund_rate_escalate: String,
    #[schema(example = "0.5")]
    pub refund_rate_refuse: String,
    pub cooldown_rejections: i64,
    pub cooldown_hours: i64,
    pub auto_approve_max: Amount,
}

#[derive(Serialize, ToSchema)]
pub struct NextDecision {
    #[schema(value_type = crate::domain::policy::PolicyOutcome)]
    pub outcome: String,
    pub rule: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub retry_after: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct RefundStandingResponse {
    #[schema(value_type = i64)]
    pub account_id: AccountId,
    /// Exempt from the policy until then; null when not allow-listed.
    pub allowlisted_until: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub standing: Standing,
    pub charged_30d: Amount,
    pub refunded_30d: Amount,
    #[schema(example = "0.0412")]
    pub refund_rate_amount: String,
    #[schema(example = "0.05")]
    pub refund_rate_count: String,
    pub last_rejection_at: Option<DateTime<Utc>>,
    /// Requests the policy refused in the last 7 days.
    pub refusals_7d: i64,
    pub thresholds: PolicyThresholds,
    /// What the policy would decide for a request made now (for the smallest amount).
    pub next_request: NextDecision,
}

pub(crate) async fn standing_response(
    state: &web::Data<AppState>,
    account_id: AccountId,
) -> Result<RefundStandingResponse, ApiError> {
    let rules = state.policy.clone();
    let (account, standing, refusals) = state
        .db(move |conn| {
            let account =
                accounts::find(conn, account_id)?.ok_or_else(|| ApiError::not_found("account"))?;
            let now = db::now();
            let standing = policy::standing(conn, &account, now)?;
            let refusals =
                policy::refusals_since(conn, account_id, now - chrono::Duration::days(7))?;
            Ok((account, standing, refusals))
        })
        .await?;
    // What a request of the smallest amount would meet now.
    let next = assess(&rules, &standing, Money::SMALLEST, db::now());
    Ok(RefundStandingResponse {
        account_id: account.id,
        allowlisted_until: account.refund_allowlisted_until.map(utc),
        charged_30d: Amount::of(standing.charged_30d),
        refunded_30d: Amount::of(standing.refunded_30d),
        refund_rate_amount: standing.rate_by_amount().to_string(),
        refund_rate_count: standing.rate_by_count().to_string(),
        last_rejection_at: standing.last_rejection_at.map(utc),
        refusals_7d: refusals,
        thresholds: PolicyThresholds {
            requests_per_hour: rules.max_per_hour,
            requests_per_day: rules.max_per_day,
            refund_rate_min_orders: rules.rate_min_orders,
            refund_rate_escalate: rules.rate_escalate.to_string(),
            refund_rate_refuse: rules.rate_refuse.to_string(),
            cooldown_rejections: rules.cooldown_rejections,
            cooldown_hours: rules.cooldown.num_hours(),
            auto_approve_max: Amount::of(rules.auto_approve_max),
        },
        next_request: NextDecision {
            outcome: next.outcome.as_str().to_string(),
            rule: next.rule.to_string(),
            detail: next.detail,
            retry_after: next.retry_after_secs,
        },
        standing,
    })
}

/// An account's standing under the refund-abuse policy: its recent requests, 30-day
/// refund rate, rejections, allow-listing, and what the next request would meet.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "The account's standing", body = RefundStandingResponse),
        (status = 404, description = "No such account", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/admin/accounts/{id}/refund-standing")]
pub async fn find_refund_standing(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(standing_response(&state, AccountId(id.into_inner())).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowlistRequest {
    /// Until when the account is exempt from the refund-abuse policy (RFC 3339, in the future).
    pub until: DateTime<Utc>,
}

/// Allow-list an account for a period: its refund requests skip the velocity, cool-down
/// and refund-rate rules (they still go to review unless small enough to auto-approve).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Account id")),
    request_body = AllowlistRequest,
    responses(
        (status = 200, description = "The account's new standing", body = RefundStandingResponse),
        (status = 404, description = "No such account", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/accounts/{id}/refund-allowlist")]
pub async fn create_refund_allowlist(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<AllowlistRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = AccountId(id.into_inner());
    let until = body.value.until.naive_utc();
    if until <= db::now() {
        return Err(ApiError::invalid("until", "must be in the future"));
    }
    set_allowlist(&state, &admin, id, Some(until)).await
}

/// End an account's allow-listing now.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "The account's new standing", body = RefundStandingResponse),
        (status = 404, description = "No such account", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/admin/accounts/{id}/refund-allowlist")]
pub async fn delete_refund_allowlist(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    set_allowlist(&state, &admin, AccountId(id.into_inner()), None).await
}

async fn set_allowlist(
    state: &web::Data<AppState>,
    admin: &Admin,
    id: AccountId,
    until: Option<chrono::NaiveDateTime>,
) -> Result<HttpResponse, ApiError> {
    let by = admin.actor();
    state
        .db(move |conn| application::accounts::set_refund_allowlist(conn, &by, id, until))
        .await?;
    Ok(HttpResponse::Ok().json(standing_response(state, id).await?))
}
