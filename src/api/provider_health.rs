//! Provider health for operators: each provider's orders by forwarding state, and the
//! orders in one state (those waiting in `ambiguous` for a reconcile, above all).

use std::collections::BTreeMap;

use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::providers::ForwardingResponse;
use crate::db::{gauges, provider_orders, providers};
use crate::domain::ids::ProviderId;
use crate::domain::provider::ForwardingState;
use crate::error::ApiError;
use crate::http::auth::Admin;
use crate::http::extract::ApiQuery;
use crate::http::state::AppState;
use crate::http::wire::{page_limit, page_response, Page};

#[derive(Serialize, ToSchema)]
pub struct ProviderHealth {
    #[schema(value_type = i64)]
    pub provider_id: ProviderId,
    pub name: String,
    pub enabled: bool,
    /// Orders by forwarding state (`queued`, `sending`, `sent`, `ambiguous`, `failed`,
    /// `given_up`); `done` is left out, it only grows. `ambiguous` orders wait for an operator.
    #[schema(value_type = std::collections::BTreeMap<String, i64>, example = json!({"sent": 12, "ambiguous": 1}))]
    pub orders: BTreeMap<String, i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ProviderHealthList {
    pub data: Vec<ProviderHealth>,
}

/// Every provider with its orders by forwarding state. The provider's own balance is not
/// known: API v2 offers no call this panel makes for it.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "Every provider's forwarding counts", body = ProviderHealthList))
)]
#[get("/v1/admin/provider-health")]
pub async fn list_provider_health(
    state: web::Data<AppState>,
    _admin: Admin,
) -> Result<HttpResponse, ApiError> {
    let (all, counts) = state
        .db(|conn| Ok((providers::all(conn)?, gauges::read(conn)?.forwarding)))
        .await?;
    let data = all
        .into_iter()
        .map(|provider| {
            let mut orders: BTreeMap<String, i64> = ForwardingState::ALL
                .iter()
                .filter(|s| **s != ForwardingState::Done)
                .map(|s| (s.as_str().to_string(), 0))
                .collect();
            for (provider_id, word, count) in &counts {
                if *provider_id == provider.id.get() {
                    orders.insert(word.clone(), *count);
                }
            }
            ProviderHealth {
                provider_id: provider.id,
                name: provider.name,
                enabled: provider.enabled,
                orders,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(ProviderHealthList { data }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListForwardingQuery {
    /// The forwarding state, e.g. `ambiguous` for the sends waiting for a reconcile.
    pub state: ForwardingState,
    /// One provider's orders.
    #[param(value_type = Option<i64>)]
    pub provider_id: Option<ProviderId>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Return orders after this order id.
    pub starting_after: Option<i64>,
}

/// Provider-backed orders in one forwarding state, oldest first.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(ListForwardingQuery),
    responses((status = 200, description = "A page of provider-backed orders", body = Page<ForwardingResponse>))
)]
#[get("/v1/admin/forwarding")]
pub async fn list_forwarding(
    req: HttpRequest,
    state: web::Data<AppState>,
    _admin: Admin,
    query: ApiQuery<ListForwardingQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    let limit = page_limit(query.limit)?;
    let rows = state
        .db(move |conn| {
            Ok(provider_orders::in_state(
                conn,
                query.state,
                query.provider_id,
                query.starting_after,
                limit + 1,
            )?)
        })
        .await?;
    Ok(page_response(
        &req,
        rows,
        limit,
        |p| p.order_id.get(),
        ForwardingResponse::from,
    ))
}
