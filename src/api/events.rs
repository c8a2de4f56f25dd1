use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::application;
use crate::db::events::{self, EventFilter};
use crate::domain::account::{Role, Scope};
use crate::domain::event::{Event, EventType};
use crate::domain::ids::{AccountId, EndpointId, EventId};
use crate::error::ApiError;
use crate::http::auth::Caller;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::state::AppState;
use crate::http::wire::{page_limit, page_response, utc, Page};

/// Something that happened, with the resource as the API returned it then.
#[derive(Serialize, ToSchema)]
pub struct EventResponse {
    /// Also the `webhook-id` of every delivery of this event.
    #[schema(value_type = i64)]
    pub id: EventId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The account it belongs to; null for operator events (alerts).
    #[schema(value_type = Option<i64>)]
    pub account_id: Option<AccountId>,
    pub created_at: DateTime<Utc>,
    /// By type: `order.*` `{"order", …}`; `refund.*` `{"refund", "order", "balance_after"}`;
    /// `top_up.succeeded` `{"top_up", "balance_after"}`; `top_up_refund.*` `{"refund",
    /// "top_up", "balance_after"}`; `chargeback.created` `{"refund", "top_up", "account"}`;
    /// `account.*` `{"account"}`; `alert.*` `{"alert"}`; `ping` `{"endpoint_id"}`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<Event> for EventResponse {
    fn from(event: Event) -> EventResponse {
        EventResponse {
            id: event.id,
            event_type: event.event_type,
            account_id: event.account_id,
            created_at: utc(event.created_at),
            data: event.data,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListEventsQuery {
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<EventType>)]
    pub event_type: Option<EventType>,
    /// Events created at or after this time (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Events created before this time (RFC 3339).
    pub created_to: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Return events older than this event id.
    pub starting_after: Option<i64>,
}

/// Operators see every event; anyone else only its own account's.
fn visible_to(caller: &Caller) -> Option<AccountId> {
    (caller.role != Role::Admin || !caller.scopes.contains(&Scope::Admin))
        .then_some(caller.account_id)
}

/// The event log, newest first: catch up on anything a webhook missed.
#[utoipa::path(
    tag = "events",
    security(("bearer" = [])),
    params(ListEventsQuery),
    responses((status = 200, description = "A page of events", body = Page<EventResponse>))
)]
#[get("/v1/events")]
pub async fn list_events(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListEventsQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Webhooks)?;
    let query = query.0;
    let limit = page_limit(query.limit)?;
    let filter = EventFilter {
        account_id: visible_to(&caller),
        event_type: query.event_type,
        created_from: query.created_from.map(|t| t.naive_utc()),
        created_to: query.created_to.map(|t| t.naive_utc()),
        starting_after: query.starting_after,
    };
    let rows = state
        .db(move |conn| Ok(events::list(conn, &filter, limit + 1)?))
        .await?;
    Ok(page_response(
        &req,
        rows,
        limit,
        |e| e.id.get(),
        EventResponse::from,
    ))
}

/// One event.
#[utoipa::path(
    tag = "events",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Event id")),
    responses(
        (status = 200, description = "The event", body = EventResponse),
        (status = 404, description = "No such event among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/events/{id}")]
pub async fn find_event(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Webhooks)?;
    let (id, scope) = (EventId(id.into_inner()), visible_to(&caller));
    let event = state
        .db(move |conn| events::find(conn, id, scope)?.ok_or_else(|| ApiError::not_found("event")))
        .await?;
    Ok(HttpResponse::Ok().json(EventResponse::from(event)))
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverRequest {
    /// One of your endpoints; every one of yours subscribed to the event when omitted.
    #[schema(value_type = Option<i64>)]
    pub endpoint_id: Option<EndpointId>,
}

#[derive(Serialize, ToSchema)]
pub struct RedeliverResponse {
    /// The endpoints the event was queued for, from the first attempt of the schedule.
    #[schema(value_type = Vec<i64>)]
    pub endpoint_ids: Vec<EndpointId>,
}

/// Deliver an event again, to one of your endpoints or all of them.
#[utoipa::path(
    tag = "events",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Event id")),
    request_body = Option<RedeliverRequest>,
    responses(
        (status = 202, description = "Queued", body = RedeliverResponse),
        (status = 404, description = "No such event or endpoint among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint is disabled", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/events/{id}/redeliver")]
pub async fn redeliver_event(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: ApiJson<RedeliverRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Webhooks)?;
    let (event_id, endpoint_id) = (EventId(id.into_inner()), body.value.endpoint_id);
    let role = if visible_to(&caller).is_none() {
        Role::Admin
    } else {
        Role::Reseller
    };
    let endpoint_ids = state
        .db(move |conn| {
            application::webhooks::redeliver(conn, caller.account_id, role, event_id, endpoint_id)
        })
        .await?;
    Ok(HttpResponse::Accepted().json(RedeliverResponse { endpoint_ids }))
}
