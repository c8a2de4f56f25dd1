use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{accounts, api_keys};
use crate::domain::account::scopes_to_string;
use crate::domain::api_key::hash_api_key;
use crate::error::ApiError;
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::http::token_cache;
use crate::metrics;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// An API key as issued by an operator.
    pub api_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Lifetime in seconds.
    #[schema(example = 900)]
    pub expires_in: i64,
    /// Space-separated scopes the token carries.
    #[schema(example = "orders:read orders:write")]
    pub scope: String,
}

/// Exchange an API key for a short-lived access token.
#[utoipa::path(
    tag = "auth",
    request_body = CreateTokenRequest,
    responses(
        (status = 200, description = "A new access token", body = TokenResponse),
        (status = 401, description = "Unknown or revoked key", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many token requests from this client IP (policy `token`), or too many failed key attempts from it (policy `auth_failures`)", body = crate::http::problem::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
#[post("/v1/auth/token")]
pub async fn create_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ApiJson<CreateTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let ip = state.limits.client_ip(&req);
    state.limits.token.check(&ip, &req)?;
    // An address that failed too often is refused before the key is looked at.
    state.limits.failures.admit(ip, "token_exchange")?;
    let presented = body.value.api_key.trim();
    let digest = token_cache::digest(presented);
    let unknown = || ApiError::Unauthorized("unknown or revoked API key".into());
    if state.tokens.is_known_miss(&digest) {
        state.limits.failures.fail(ip, "token_exchange");
        return Err(unknown());
    }
    metrics::AUTH_KEY_READS.inc(&["token_exchange"]);
    let hash = hash_api_key(presented);
    let found = state
        .db(move |conn| {
            let Some(key) = api_keys::find_live_by_hash(conn, &hash)? else {
                return Ok(None);
            };
            Ok(accounts::find(conn, key.account_id)?.map(|account| (key, account)))
        })
        .await?;
    let Some((key, account)) = found else {
        state.tokens.remember_miss(digest);
        state.limits.failures.fail(ip, "token_exchange");
        return Err(unknown());
    };
    let token = state
        .tokens
        .issue(account.id, key.id, account.role, &key.scopes)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TokenResponse {
            access_token: token,
            token_type: "Bearer".into(),
            expires_in: state.tokens.ttl_secs(),
            scope: scopes_to_string(&key.scopes),
        }))
}
