//! Webhook endpoints as their owners manage them, redelivery and the test ping. The
//! sending itself is the webhook worker's (`webhooks::worker`).
//!
//! A target is checked when it is registered (only `https`, and no host that is or
//! resolves to a loopback, private, link-local or metadata address) and again at every
//! delivery, where the resolver refuses such addresses, so a name that later resolves to
//! an internal address (DNS rebinding) is never reached. `--webhook-allow-private` lifts
//! both checks and allows `http`, for development and tests.

use std::net::{IpAddr, ToSocketAddrs};

use base64::Engine;
use rand::RngCore;

use crate::db::webhooks::{self as store, EndpointChanges, NewEndpoint};
use crate::db::{self, DbConnection};
use crate::domain::account::Role;
use crate::domain::event::{is_forbidden_target, Endpoint, EndpointStatus, Event, EventType};
use crate::domain::ids::{AccountId, EndpointId, EventId};
use crate::error::{ApiError, ErrorCode};

/// A new signing secret in the Standard Webhooks format: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

fn refused(detail: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        code: ErrorCode::WebhookUrlRefused,
        detail: detail.into(),
        param: Some("url".into()),
    }
}

/// Checks a target URL: absolute, `https` (or `http` with `allow_private`), no user info,
/// at most 2,000 characters, and a host that is not (and does not resolve to) an address
/// webhooks may not reach. A host that does not resolve now is accepted: every delivery
/// resolves it again under the same rule.
pub fn check_url(raw: &str, allow_private: bool) -> Result<String, ApiError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 2000 {
        return Err(refused("give an https URL of at most 2000 characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| refused(format!("not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(refused("webhook URLs must use https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("a webhook URL may not carry credentials"));
    }
    let host = url
        .host_str()
        .ok_or_else(|| refused("the URL has no host"))?;
    if !allow_private {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let literal = bare.parse::<IpAddr>().ok();
        let addresses: Vec<IpAddr> = match literal {
            Some(ip) => vec![ip],
            None => (bare, url.port_or_known_default().unwrap_or(443))
                .to_socket_addrs()
                .map(|addrs| addrs.map(|a| a.ip()).collect())
                .unwrap_or_default(),
        };
        if bare.eq_ignore_ascii_case("localhost")
            || bare.to_ascii_lowercase().ends_with(".localhost")
            || addresses.into_iter().any(is_forbidden_target)
        {
            return Err(refused(
                "the URL's host is a loopback, private, link-local or metadata address",
            ));
        }
    }
    Ok(url.to_string())
}

/// Refuses event types the owner may not subscribe to (alerts are operators').
fn check_types(role: Role, types: &[EventType]) -> Result<(), ApiError> {
    if let Some(t) = types
        .iter()
        .find(|t| **t == EventType::Ping || (role != Role::Admin && t.is_operator_only()))
    {
        return Err(ApiError::invalid(
            "events",
            format!("`{t}` cannot be subscribed to by this account"),
        ));
    }
    Ok(())
}

/// What a new endpoint is.
#[derive(Debug, Clone)]
pub struct EndpointRequest {
    pub url: String,
    pub event_types: Vec<EventType>,
    pub description: Option<String>,
}

pub fn create_endpoint(
    conn: &mut DbConnection,
    owner: AccountId,
    role: Role,
    request: EndpointRequest,
    allow_private: bool,
) -> Result<Endpoint, ApiError> {
    let url = check_url(&request.url, allow_private)?;
    check_types(role, &request.event_types)?;
    let secret = new_secret();
    db::write_tx(conn, |conn| {
        Ok(store::insert(
            conn,
            &NewEndpoint {
                account_id: owner,
                url: &url,
                event_types: &request.event_types,
                description: request.description.as_deref(),
                secret: &secret,
            },
        )?)
    })
}

fn owned(conn: &mut DbConnection, owner: AccountId, id: EndpointId) -> Result<Endpoint, ApiError> {
    store::find(conn, id, Some(owner))?.ok_or_else(|| ApiError::not_found("webhook endpoint"))
}

pub fn update_endpoint(
    conn: &mut DbConnection,
    owner: AccountId,
    role: Role,
    id: EndpointId,
    mut changes: EndpointChanges,
    allow_private: bool,
) -> Result<Endpoint, ApiError> {
    if let Some(url) = &changes.url {
        changes.url = Some(check_url(url, allow_private)?);
    }
    if let Some(types) = &changes.event_types {
        check_types(role, types)?;
    }
    db::write_tx(conn, |conn| {
        owned(conn, owner, id)?;
        Ok(store::update(conn, id, &changes)?)
    })
}

pub fn delete_endpoint(
    conn: &mut DbConnection,
    owner: AccountId,
    id: EndpointId,
) -> Result<Endpoint, ApiError> {
    db::write_tx(conn, |conn| {
        let endpoint = owned(conn, owner, id)?;
        store::delete(conn, id)?;
        Ok(endpoint)
    })
}

/// A new secret; the previous one keeps signing for `grace`.
pub fn rotate_secret(
    conn: &mut DbConnection,
    owner: AccountId,
    id: EndpointId,
    grace: chrono::Duration,
) -> Result<Endpoint, ApiError> {
    let secret = new_secret();
    db::write_tx(conn, |conn| {
        owned(conn, owner, id)?;
        Ok(store::rotate(conn, id, &secret, grace)?)
    })
}

/// Queues a signed `ping` to one endpoint, delivered like any event.
pub fn test_endpoint(
    conn: &mut DbConnection,
    owner: AccountId,
    id: EndpointId,
) -> Result<Event, ApiError> {
    db::write_tx(conn, |conn| {
        let endpoint = owned(conn, owner, id)?;
        if endpoint.status != EndpointStatus::Enabled {
            return Err(ApiError::Refused {
                code: ErrorCode::EndpointDisabled,
                detail: "this endpoint is disabled; enable it first".into(),
            });
        }
        let event = super::events::ping(conn, owner, id)?;
        // Only this endpoint gets a ping: queued here, never matched by the dispatcher.
        db::events::mark_dispatched(conn, &[event.id])?;
        store::queue(conn, event.id, id, true)?;
        Ok(event)
    })
}

/// Whether `endpoint` may receive `event`: its owner's own events, or, for an
/// operator's endpoint, any event.
pub fn may_receive(endpoint_role: Role, endpoint: &Endpoint, event: &Event) -> bool {
    endpoint_role == Role::Admin || event.account_id == Some(endpoint.account_id)
}

/// Delivers an event again, from the first attempt of the schedule: to one of the
/// caller's endpoints, or to every enabled endpoint of the caller's that may receive it.
/// Returns the endpoints it was queued for.
pub fn redeliver(
    conn: &mut DbConnection,
    caller: AccountId,
    role: Role,
    event_id: EventId,
    endpoint_id: Option<EndpointId>,
) -> Result<Vec<EndpointId>, ApiError> {
    db::write_tx(conn, |conn| {
        let scope = (role != Role::Admin).then_some(caller);
        let event =
            db::events::find(conn, event_id, scope)?.ok_or_else(|| ApiError::not_found("event"))?;
        let endpoints = match endpoint_id {
            Some(id) => vec![owned(conn, caller, id)?],
            None => store::list(conn, caller, None, 1000)?
                .into_iter()
                .filter(|e| e.status == EndpointStatus::Enabled && e.wants(event.event_type))
                .collect(),
        };
        let mut queued = Vec::new();
        for endpoint in endpoints {
            if endpoint.status != EndpointStatus::Enabled {
                return Err(ApiError::Refused {
                    code: ErrorCode::EndpointDisabled,
                    detail: format!("webhook endpoint {} is disabled", endpoint.id),
                });
            }
            if may_receive(role, &endpoint, &event) {
                store::queue(conn, event.id, endpoint.id, true)?;
                queued.push(endpoint.id);
            }
        }
        Ok(queued)
    })
}
