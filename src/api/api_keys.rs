use actix_web::{delete, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::application::accounts::{issue_api_key, revoke_api_key as revoke};
use crate::db::{accounts, api_keys};
use crate::domain::account::Scope;
use crate::domain::ids::{AccountId, ApiKeyId};
use crate::error::ApiError;
use crate::http::auth::Admin;
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::http::wire::utc;

#[derive(Serialize, ToSchema)]
pub struct ApiKeyResponse {
    #[schema(value_type = i64)]
    pub id: ApiKeyId,
    #[schema(value_type = i64)]
    pub account_id: AccountId,
    /// The first characters of the key, to tell keys apart.
    #[schema(example = "rk_1a2b3c4d")]
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<api_keys::ApiKey> for ApiKeyResponse {
    fn from(key: api_keys::ApiKey) -> ApiKeyResponse {
        ApiKeyResponse {
            id: key.id,
            account_id: key.account_id,
            prefix: key.prefix,
            scopes: key.scopes,
            created_at: utc(key.created_at),
            revoked_at: key.revoked_at.map(utc),
        }
    }
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// Scopes for the key; the role's full set when omitted. A reseller's key can never
    /// carry `admin`.
    #[schema(min_items = 1)]
    pub scopes: Option<Vec<Scope>>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApiKeyResponse {
    /// The key itself, shown this once.
    pub api_key: String,
    pub key: ApiKeyResponse,
}

/// Issue another API key for an account.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Account id")),
    request_body = Option<CreateApiKeyRequest>,
    responses(
        (status = 201, description = "The new key", body = CreatedApiKeyResponse),
        (status = 404, description = "No such account", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/accounts/{id}/api-keys")]
pub async fn create_api_key(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<CreateApiKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let (account_id, by) = (AccountId(id.into_inner()), admin.actor());
    let requested = body.value.scopes;
    let (key, plaintext) = state
        .db(move |conn| {
            let account =
                accounts::find(conn, account_id)?.ok_or_else(|| ApiError::not_found("account"))?;
            let allowed = account.role.default_scopes();
            let scopes = match requested {
                None => allowed,
                Some(scopes) => {
                    if scopes.is_empty() {
                        return Err(ApiError::invalid("scopes", "must name at least one scope"));
                    }
                    if let Some(bad) = scopes.iter().find(|s| !allowed.contains(s)) {
                        return Err(ApiError::invalid(
                            "scopes",
                            format!("`{bad}` is not available to a {} account", account.role),
                        ));
                    }
                    let mut unique = Vec::new();
                    for scope in scopes {
                        if !unique.contains(&scope) {
                            unique.push(scope);
                        }
                    }
                    unique
                }
            };
            Ok(issue_api_key(conn, &by, account_id, &scopes)?)
        })
        .await?;
    // A new key is never answered from this process's memory of unknown keys.
    state.tokens.forget_misses();
    Ok(HttpResponse::Created().json(CreatedApiKeyResponse {
        api_key: plaintext,
        key: key.into(),
    }))
}

/// Revoke an API key. Access tokens already issued with it are refused (401) within 5 seconds
/// in every process.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "API key id")),
    responses(
        (status = 200, description = "The revoked key", body = ApiKeyResponse),
        (status = 404, description = "No such key", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/admin/api-keys/{id}")]
pub async fn revoke_api_key(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (id, by) = (ApiKeyId(id.into_inner()), admin.actor());
    let key = state
        .db(move |conn| revoke(conn, &by, id)?.ok_or_else(|| ApiError::not_found("API key")))
        .await?;
    Ok(HttpResponse::Ok().json(ApiKeyResponse::from(key)))
}
