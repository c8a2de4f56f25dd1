use std::time::Duration;

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::events::EventResponse;
use crate::application::webhooks::{self as app, CheckedUrl, EndpointRequest};
use crate::db::webhooks::{self as store, Attempt, DeliveryView, EndpointChanges};
use crate::domain::account::Scope;
use crate::domain::event::{DeliveryState, Endpoint, EndpointStatus, EventType};
use crate::domain::ids::{DeliveryId, EndpointId, EventId};
use crate::domain::{parse_text, FieldError};
use crate::error::ApiError;
use crate::http::auth::Caller;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::state::AppState;
use crate::http::wire::{page_limit, page_response, utc, Page};

/// A webhook endpoint. Its signing secret is shown only by create and rotate.
#[derive(Serialize, ToSchema)]
pub struct EndpointResponse {
    #[schema(value_type = i64)]
    pub id: EndpointId,
    pub url: String,
    /// The event types it receives; empty means every event you may see.
    pub events: Vec<EventType>,
    pub description: Option<String>,
    pub status: EndpointStatus,
    /// Why it was disabled (by you, by a 410 Gone, or after failing for days).
    pub disabled_reason: Option<String>,
    /// When the current run of failed attempts began; null while deliveries succeed.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret also signs, after a rotation.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Endpoint> for EndpointResponse {
    fn from(e: Endpoint) -> EndpointResponse {
        EndpointResponse {
            id: e.id,
            url: e.url,
            events: e.event_types,
            description: e.description,
            status: e.status,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since.map(utc),
            previous_secret_expires_at: e.previous_secret_until.map(utc),
            created_at: utc(e.created_at),
            updated_at: utc(e.updated_at),
        }
    }
}

/// An endpoint with its signing secret: shown this once.
#[derive(Serialize, ToSchema)]
pub struct EndpointWithSecretResponse {
    #[serde(flatten)]
    pub endpoint: EndpointResponse,
    /// `whsec_` + base64: verify `webhook-signature` with it (Standard Webhooks).
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

impl From<Endpoint> for EndpointWithSecretResponse {
    fn from(e: Endpoint) -> EndpointWithSecretResponse {
        // Shown to the endpoint's owner once, at creation and rotation, to verify with.
        let secret = e.secret.expose_secret().to_string();
        EndpointWithSecretResponse {
            endpoint: e.into(),
            secret,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointRequest {
    /// `https` only, on a public address (the server may allow private ones for testing).
    #[schema(
        min_length = 1,
        max_length = 2000,
        example = "https://example.com/hooks"
    )]
    pub url: String,
    /// Event types to receive; empty or missing for every event you may see.
    #[schema(max_items = 16)]
    pub events: Option<Vec<EventType>>,
    #[schema(value_type = Option<crate::http::input::Text500>)]
    pub description: Option<String>,
}

fn description(raw: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    match raw.map(|text| parse_text(text, 500)) {
        Some(Err(message)) => {
            errors.push(FieldError::new("description", message));
            None
        }
        other => other.and_then(Result::ok),
    }
}

/// Checks a webhook URL: its form here, its host's addresses on the blocking pool for at
/// most `--webhook-resolve-timeout-secs`, holding no database connection and never
/// blocking this worker. A host that has not resolved by then is judged at delivery.
async fn checked_url(state: &AppState, raw: &str) -> Result<CheckedUrl, ApiError> {
    let hooks = &state.config.webhooks;
    let to_check = app::parse_url(raw, hooks.webhook_allow_private)?;
    let resolved = match to_check.host_to_resolve() {
        Some((host, port)) => {
            let (host, resolver) = (host.to_string(), hooks.webhook_resolver.clone());
            let resolving = web::block(move || resolver.resolve(&host, port));
            let wait = Duration::from_secs(hooks.webhook_resolve_timeout_secs);
            match tokio::time::timeout(wait, resolving).await {
                Ok(Ok(Some(addresses))) => addresses,
                // Not in time, too many resolutions waiting, or the blocking pool gone:
                // left to the delivery's guarded resolver.
                _ => Vec::new(),
            }
        }
        None => Vec::new(),
    };
    to_check.judge(&resolved)
}

/// Register an endpoint; the reply carries its signing secret, shown this once.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    request_body = CreateEndpointRequest,
    responses(
        (status = 201, description = "The endpoint, with its secret", body = EndpointWithSecretResponse),
        (status = 409, description = "The account has as many endpoints as it may (`webhook_endpoint_limit`); delete one first", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The URL is refused (not https, or a private address)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/webhook-endpoints")]
pub async fn create_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateEndpointRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Webhooks)?;
    let request = body.value;
    let mut errors = Vec::new();
    let description = description(request.description.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    // The URL is checked (DNS included) before a database connection is taken.
    let url = checked_url(&state, &request.url).await?;
    let request = EndpointRequest {
        url,
        event_types: request.events.unwrap_or_default(),
        description,
    };
    let per_account = state.config.webhooks.webhook_endpoints_per_account;
    let by = caller.operator_actor();
    let endpoint = state
        .db(move |conn| {
            app::create_endpoint(
                conn,
                by.as_ref(),
                caller.account_id,
                caller.role,
                request,
                per_account,
            )
        })
        .await?;
    Ok(HttpResponse::Created().json(EndpointWithSecretResponse::from(endpoint)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Return items older than this id.
    pub starting_after: Option<i64>,
}

/// Your endpoints, newest first.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, description = "A page of endpoints", body = Page<EndpointResponse>))
)]
#[get("/v1/webhook-endpoints")]
pub async fn list_endpoints(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Webhooks)?;
    let limit = page_limit(query.0.limit)?;
    let after = query.0.starting_after;
    let rows = state
        .db(move |conn| Ok(store::list(conn, caller.account_id, after, limit + 1)?))
        .await?;
    Ok(page_response(
        &req,
        rows,
        limit,
        |e| e.id.get(),
        EndpointResponse::from,
    ))
}

/// One of your endpoints.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointResponse),
        (status = 404, description = "No such endpoint among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/webhook-endpoints/{id}")]
pub async fn find_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Webhooks)?;
    let id = EndpointId(id.into_inner());
    let endpoint = state
        .db(move |conn| {
            store::find(conn, id, Some(caller.account_id))?
                .ok_or_else(|| ApiError::not_found("webhook endpoint"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(EndpointResponse::from(endpoint)))
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpointRequest {
    #[schema(min_length = 1, max_length = 2000)]
    pub url: Option<String>,
    /// Replaces the list; empty for every event.
    #[schema(max_items = 16)]
    pub events: Option<Vec<EventType>>,
    #[schema(value_type = Option<crate::http::input::Text500>)]
    pub description: Option<String>,
    /// `enabled` turns a disabled endpoint back on (forgetting why it was disabled);
    /// `disabled` stops its deliveries.
    pub status: Option<EndpointStatus>,
}

/// Change an endpoint: its URL, events, description, or enable or disable it.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Endpoint id")),
    request_body = Option<UpdateEndpointRequest>,
    responses(
        (status = 200, description = "The endpoint", body = EndpointResponse),
        (status = 404, description = "No such endpoint among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The URL is refused", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/v1/webhook-endpoints/{id}")]
pub async fn update_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    body: ApiJson<UpdateEndpointRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Webhooks)?;
    let (id, request) = (EndpointId(id.into_inner()), body.value);
    let mut errors = Vec::new();
    let description = description(request.description.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    // The URL is checked (DNS included) before a database connection is taken.
    let url = match &request.url {
        Some(raw) => Some(checked_url(&state, raw).await?),
        None => None,
    };
    let changes = EndpointChanges {
        url: None,
        event_types: request.events,
        description: request.description.map(|_| description),
        status: request.status,
    };
    let by = caller.operator_actor();
    let endpoint = state
        .db(move |conn| {
            app::update_endpoint(
                conn,
                by.as_ref(),
                caller.account_id,
                caller.role,
                id,
                url.clone(),
                changes.clone(),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(EndpointResponse::from(endpoint)))
}

/// Delete an endpoint, with its delivery log.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint as it was; it is deleted", body = EndpointResponse),
        (status = 404, description = "No such endpoint among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/webhook-endpoints/{id}")]
pub async fn delete_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Webhooks)?;
    let id = EndpointId(id.into_inner());
    let by = caller.operator_actor();
    let endpoint = state
        .db(move |conn| app::delete_endpoint(conn, by.as_ref(), caller.account_id, id))
        .await?;
    Ok(HttpResponse::Ok().json(EndpointResponse::from(endpoint)))
}

/// A new signing secret (shown this once); the old one keeps signing beside it for the
/// grace period (`--webhook-rotation-grace-hours`, 24 by default).
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint, with its new secret", body = EndpointWithSecretResponse),
        (status = 404, description = "No such endpoint among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/webhook-endpoints/{id}/rotate-secret")]
pub async fn rotate_endpoint_secret(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Webhooks)?;
    let id = EndpointId(id.into_inner());
    let grace = chrono::Duration::hours(state.config.webhooks.webhook_rotation_grace_hours);
    let by = caller.operator_actor();
    let endpoint = state
        .db(move |conn| app::rotate_secret(conn, by.as_ref(), caller.account_id, id, grace))
        .await?;
    Ok(HttpResponse::Ok().json(EndpointWithSecretResponse::from(endpoint)))
}

/// Send a signed `ping` event to this endpoint.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Endpoint id")),
    responses(
        (status = 202, description = "The ping event, queued for this endpoint", body = EventResponse),
        (status = 404, description = "No such endpoint among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint is disabled", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/webhook-endpoints/{id}/test")]
pub async fn test_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Webhooks)?;
    let id = EndpointId(id.into_inner());
    let event = state
        .db(move |conn| app::test_endpoint(conn, caller.account_id, id))
        .await?;
    Ok(HttpResponse::Accepted().json(EventResponse::from(event)))
}

/// One delivery attempt.
#[derive(Serialize, ToSchema)]
pub struct DeliveryAttemptResponse {
    pub id: i64,
    #[schema(value_type = i64)]
    pub event_id: EventId,
    /// The delivery (one event to this endpoint) the attempt belongs to; see
    /// `GET /v1/webhook-endpoints/{id}/event-deliveries`.
    #[schema(value_type = i64)]
    pub delivery_id: DeliveryId,
    /// That delivery's state now, not when this attempt was made.
    pub delivery_state: DeliveryState,
    /// 1 for the first attempt of a delivery (a redelivery starts again at 1).
    pub attempt: i64,
    /// The HTTP status answered; null when there was no answer (timeout, refused).
    pub status_code: Option<i32>,
    pub duration_ms: i64,
    /// The start of the answer's body (at most 2048 bytes).
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl DeliveryAttemptResponse {
    fn new(a: Attempt, delivery_state: DeliveryState) -> DeliveryAttemptResponse {
        DeliveryAttemptResponse {
            id: a.id,
            event_id: a.event_id,
            delivery_id: a.delivery_id,
            delivery_state,
            attempt: a.attempt,
            status_code: a.status_code,
            duration_ms: a.duration_ms,
            response_body: a.response_body,
            error: a.error,
            created_at: utc(a.created_at),
        }
    }
}

/// The delivery log of an endpoint: every attempt, newest first.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Endpoint id"), PageQuery),
    responses(
        (status = 200, description = "A page of attempts", body = Page<DeliveryAttemptResponse>),
        (status = 404, description = "No such endpoint among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/webhook-endpoints/{id}/deliveries")]
pub async fn list_deliveries(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    query: ApiQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Webhooks)?;
    let (id, limit, after) = (
        EndpointId(id.into_inner()),
        page_limit(query.0.limit)?,
        query.0.starting_after,
    );
    let rows = state
        .db(move |conn| {
            store::find(conn, id, Some(caller.account_id))?
                .ok_or_else(|| ApiError::not_found("webhook endpoint"))?;
            let attempts = store::attempts(conn, id, after, limit + 1)?;
            let ids: Vec<DeliveryId> = attempts.iter().map(|a| a.delivery_id).collect();
            let states = store::delivery_states(conn, &ids)?;
            attempts
                .into_iter()
                .map(|a| {
                    // Attempts go with their delivery (a foreign key): a missing one is
                    // a broken database, not a state to guess.
                    let delivery_state = *states.get(&a.delivery_id).ok_or_else(|| {
                        ApiError::internal(format!(
                            "attempt {} has no delivery {}",
                            a.id, a.delivery_id
                        ))
                    })?;
                    Ok(DeliveryAttemptResponse::new(a, delivery_state))
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .await?;
    Ok(page_response(&req, rows, limit, |a| a.id, |a| a))
}

/// One event's delivery to one endpoint, with where it stands.
#[derive(Serialize, ToSchema)]
pub struct EventDeliveryResponse {
    /// The delivery's id (`delivery_id` on its attempts).
    #[schema(value_type = i64)]
    pub id: DeliveryId,
    /// Also the `webhook-id` the endpoint receives.
    #[schema(value_type = i64)]
    pub event_id: EventId,
    pub event_type: EventType,
    #[schema(value_type = i64)]
    pub endpoint_id: EndpointId,
    /// `pending` while attempts remain (and after a redelivery), `succeeded` after a 2xx,
    /// `failed` after the last attempt of the schedule, a 410 Gone, or when the endpoint
    /// was disabled.
    pub state: DeliveryState,
    /// Attempts made since the delivery was queued (a redelivery starts again at 0).
    pub attempts: i64,
    /// When the next attempt is due; null unless `pending`.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was last tried; null if never.
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<DeliveryView> for EventDeliveryResponse {
    fn from(d: DeliveryView) -> EventDeliveryResponse {
        EventDeliveryResponse {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            endpoint_id: d.endpoint_id,
            state: d.state,
            attempts: d.attempts,
            next_attempt_at: (d.state == DeliveryState::Pending).then(|| utc(d.next_at)),
            last_attempt_at: d.last_attempt_at.map(utc),
            created_at: utc(d.created_at),
            updated_at: utc(d.updated_at),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventDeliveriesQuery {
    /// Only deliveries in this state.
    #[param(value_type = Option<DeliveryState>)]
    pub state: Option<DeliveryState>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Return deliveries older than this delivery id.
    pub starting_after: Option<i64>,
}

/// The deliveries of events to an endpoint, newest first: whether each is still pending
/// (and when it is tried next), succeeded, or failed for good.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Endpoint id"), EventDeliveriesQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = Page<EventDeliveryResponse>),
        (status = 404, description = "No such endpoint among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/webhook-endpoints/{id}/event-deliveries")]
pub async fn list_event_deliveries(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
    query: ApiQuery<EventDeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Webhooks)?;
    let (id, limit, after, only) = (
        EndpointId(id.into_inner()),
        page_limit(query.0.limit)?,
        query.0.starting_after,
        query.0.state,
    );
    let rows = state
        .db(move |conn| {
            store::find(conn, id, Some(caller.account_id))?
                .ok_or_else(|| ApiError::not_found("webhook endpoint"))?;
            Ok(store::deliveries(conn, id, only, after, limit + 1)?)
        })
        .await?;
    Ok(page_response(
        &req,
        rows,
        limit,
        |d| d.id.get(),
        EventDeliveryResponse::from,
    ))
}
