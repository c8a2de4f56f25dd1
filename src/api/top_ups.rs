use actix_web::{post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{parse_money, utc, Amount, ApiJson};
use crate::app::AppState;
use crate::auth::Admin;
use crate::db::{self, accounts, is_unique_violation, ledger, top_ups};
use crate::domain::ledger::{LedgerKind, TopUp};
use crate::domain::{parse_text, FieldError};
use crate::error::ApiError;

#[derive(Serialize, ToSchema)]
pub struct TopUpResponse {
    pub id: i64,
    pub account_id: i64,
    pub amount: Amount,
    /// How much of the top-up went back to the payment method.
    pub refunded: Amount,
    #[schema(example = "stripe")]
    pub gateway: String,
    /// The payment's reference at the gateway; unique.
    pub gateway_ref: String,
    #[schema(example = "succeeded")]
    pub status: String,
    pub created_at: DateTime<Utc>,
}

impl From<TopUp> for TopUpResponse {
    fn from(top_up: TopUp) -> TopUpResponse {
        TopUpResponse {
            id: top_up.id,
            account_id: top_up.account_id,
            amount: Amount::micros(top_up.amount_micros),
            refunded: Amount::micros(top_up.refunded_micros),
            gateway: top_up.gateway,
            gateway_ref: top_up.gateway_ref,
            status: top_up.status,
            created_at: utc(top_up.created_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopUpRequest {
    /// Decimal string, more than zero.
    #[schema(value_type = String, example = "100")]
    pub amount: String,
    pub gateway: String,
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
        (status = 404, description = "No such account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "This `gateway_ref` was already recorded", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/accounts/{id}/top-ups")]
pub async fn create_top_up(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<CreateTopUpRequest>,
) -> Result<HttpResponse, ApiError> {
    let account_id = id.into_inner();
    let request = body.value;
    let mut errors = Vec::new();
    let amount = parse_money("amount", &request.amount, &mut errors);
    if amount.is_some_and(|a| a.is_zero()) {
        errors.push(FieldError::new("amount", "must be more than zero"));
    }
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
    let top_up = state
        .db(move |conn| {
            let duplicate = || ApiError::Conflict {
                code: "duplicate_gateway_ref",
                detail: format!("a top-up with gateway_ref `{gateway_ref}` is already recorded"),
            };
            db::write_tx(conn, |conn| {
                accounts::find(conn, account_id)?.ok_or_else(|| ApiError::not_found("account"))?;
                if top_ups::find_by_gateway_ref(conn, &gateway_ref)?.is_some() {
                    return Err(duplicate());
                }
                // Two concurrent recordings of one payment: the unique index decides.
                let top_up =
                    top_ups::insert(conn, account_id, amount.micros(), &gateway, &gateway_ref)
                        .map_err(|e| {
                            if is_unique_violation(&e) {
                                duplicate()
                            } else {
                                e.into()
                            }
                        })?;
                let refs = ledger::Refs {
                    top_up_id: Some(top_up.id),
                    ..Default::default()
                };
                ledger::post(
                    conn,
                    account_id,
                    LedgerKind::TopUp,
                    amount.micros(),
                    refs,
                    ledger::Overdraft::Refuse,
                )?;
                Ok(top_up)
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(TopUpResponse::from(top_up)))
}
