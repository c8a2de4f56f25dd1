use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api_keys::ApiKeyResponse;
use crate::application::accounts::create_account_with_key;
use crate::db::accounts;
use crate::domain::account::{parse_currency, AccountStatus, Role};
use crate::domain::ids::AccountId;
use crate::domain::{parse_text, FieldError};
use crate::error::ApiError;
use crate::http::auth::{Admin, Caller};
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
pub use crate::resources::AccountResponse;

/// The caller's own account.
#[utoipa::path(
    tag = "account",
    security(("bearer" = [])),
    responses((status = 200, description = "The account", body = AccountResponse))
)]
#[get("/v1/account")]
pub async fn find_account(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let account = state
        .db(move |conn| {
            accounts::find(conn, caller.account_id)?.ok_or_else(|| ApiError::not_found("account"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(AccountResponse::from(account)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    #[schema(value_type = crate::http::input::Text200)]
    pub name: String,
    pub role: Role,
    /// Three-letter currency code; `USD` when omitted.
    #[schema(value_type = Option<crate::http::input::CurrencyCode>)]
    pub currency: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedAccountResponse {
    pub account: AccountResponse,
    /// The new account's API key. It is shown this once and stored only as a hash.
    pub api_key: String,
    pub key: ApiKeyResponse,
}

/// Create an account with its first API key.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = CreateAccountRequest,
    responses((status = 201, description = "The account and its key", body = CreatedAccountResponse))
)]
#[post("/v1/admin/accounts")]
pub async fn create_account(
    state: web::Data<AppState>,
    admin: Admin,
    body: ApiJson<CreateAccountRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.value;
    let mut errors = Vec::new();
    let name = parse_text(&request.name, 200)
        .map_err(|m| errors.push(FieldError::new("name", m)))
        .ok();
    let currency = parse_currency(request.currency.as_deref().unwrap_or("USD"))
        .map_err(|m| errors.push(FieldError::new("currency", m)))
        .ok();
    let (Some(name), Some(currency), true) = (name, currency, errors.is_empty()) else {
        return Err(errors.into());
    };
    let (role, by) = (request.role, admin.actor());
    let (account, key, plaintext) = state
        .db(move |conn| Ok(create_account_with_key(conn, &by, &name, role, &currency)?))
        .await?;
    // A new key is never answered from this process's memory of unknown keys.
    state.tokens.forget_misses();
    Ok(HttpResponse::Created().json(CreatedAccountResponse {
        account: account.into(),
        api_key: plaintext,
        key: key.into(),
    }))
}

async fn set_status(
    state: web::Data<AppState>,
    admin: Admin,
    id: AccountId,
    status: AccountStatus,
) -> Result<HttpResponse, ApiError> {
    let by = admin.actor();
    let account = state
        .db(move |conn| crate::application::accounts::set_status(conn, &by, id, status))
        .await?;
    Ok(HttpResponse::Ok().json(AccountResponse::from(account)))
}

/// Suspend an account: it can still read, but cannot order.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "The suspended account", body = AccountResponse),
        (status = 404, description = "No such account", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/accounts/{id}/suspend")]
pub async fn suspend_account(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    set_status(
        state,
        admin,
        AccountId(id.into_inner()),
        AccountStatus::Suspended,
    )
    .await
}

/// Reactivate a suspended account.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "The active account", body = AccountResponse),
        (status = 404, description = "No such account", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/accounts/{id}/reactivate")]
pub async fn reactivate_account(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    set_status(
        state,
        admin,
        AccountId(id.into_inner()),
        AccountStatus::Active,
    )
    .await
}
