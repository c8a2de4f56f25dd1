//! Webhook endpoints as their owners manage them, redelivery and the test ping. The
//! sending itself is the webhook worker's (`webhooks::worker`).
//!
//! A target is checked when it is registered (only `https`, and no host that is or
//! resolves to a loopback, private, link-local or metadata address) and again at every
//! delivery, where the resolver refuses such addresses, so a name that later resolves to
//! an internal address (DNS rebinding) is never reached. `--webhook-allow-private` lifts
//! both checks and allows `http`, for development and tests.

use std::net::IpAddr;

use base64::Engine;
use rand::RngCore;

use super::audit::{self, Target};
use crate::db::webhooks::{self as store, EndpointChanges, NewEndpoint};
use crate::db::{self, DbConnection};
use crate::domain::account::Role;
use crate::domain::audit::{Actor, AuditAction, AuditChange, AuditTarget};
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

/// A target URL that passed [`UrlToCheck::judge`]: the only way to give a URL to
/// [`create_endpoint`] and [`update_endpoint`], so the check (and its DNS wait) is over
/// before any database connection is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUrl(String);

impl CheckedUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A URL whose form passed [`parse_url`], whose host may still need resolving.
#[derive(Debug, Clone)]
pub struct UrlToCheck {
    url: url::Url,
    /// The host name and port to resolve; `None` for an address literal or when private
    /// targets are allowed.
    resolve: Option<(String, u16)>,
}

/// Checks a target URL's form, with no network wait: absolute, `https` (or `http` with
/// `allow_private`), no user info, at most 2,000 characters, and a host that is not an
/// address (or a `localhost` name) webhooks may not reach. Its host name, if any, is then
/// resolved by the caller, off the request's worker and holding no database connection,
/// and judged by [`UrlToCheck::judge`].
pub fn parse_url(raw: &str, allow_private: bool) -> Result<UrlToCheck, ApiError> {
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
    let mut resolve = None;
    if !allow_private {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let private = match bare.parse::<IpAddr>() {
            Ok(ip) => is_forbidden_target(ip),
            Err(_) => {
                resolve = Some((bare.to_string(), url.port_or_known_default().unwrap_or(443)));
                bare.eq_ignore_ascii_case("localhost")
                    || bare.to_ascii_lowercase().ends_with(".localhost")
            }
        };
        if private {
            return Err(private_refused());
        }
    }
    Ok(UrlToCheck { url, resolve })
}

fn private_refused() -> ApiError {
    refused("the URL's host is a loopback, private, link-local or metadata address")
}

impl UrlToCheck {
    /// The host name and port to resolve before [`UrlToCheck::judge`], if any.
    pub fn host_to_resolve(&self) -> Option<(&str, u16)> {
        self.resolve
            .as_ref()
            .map(|(host, port)| (host.as_str(), *port))
    }

    /// Judges the host by the addresses it resolved to. A host that did not resolve (or
    /// not in time) is accepted: every delivery resolves it again under the same rule.
    pub fn judge(self, resolved: &[IpAddr]) -> Result<CheckedUrl, ApiError> {
        if resolved.iter().any(|ip| is_forbidden_target(*ip)) {
            return Err(private_refused());
        }
        Ok(CheckedUrl(self.url.to_string()))
    }
}

/// [`parse_url`], resolution and [`UrlToCheck::judge`] in one blocking call, for callers
/// that hold no connection and wait on nothing (the CLI, tests).
pub fn check_url(
    raw: &str,
    allow_private: bool,
    resolver: &crate::config::HostResolver,
) -> Result<CheckedUrl, ApiError> {
    let to_check = parse_url(raw, allow_private)?;
    let resolved = match to_check.host_to_resolve() {
        Some((host, port)) => resolver.resolve(host, port).unwrap_or_default(),
        None => Vec::new(),
    };
    to_check.judge(&resolved)
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
    pub url: CheckedUrl,
    pub event_types: Vec<EventType>,
    pub description: Option<String>,
}

/// Operators' changes to endpoints are audited (`by`: the operator); a reseller's
/// changes to its own are in its event log and leave no audit entry (`by`: `None`).
pub fn create_endpoint(
    conn: &mut DbConnection,
    by: Option<&Actor>,
    owner: AccountId,
    role: Role,
    request: EndpointRequest,
    per_account: i64,
) -> Result<Endpoint, ApiError> {
    check_types(role, &request.event_types)?;
    let secret = new_secret();
    db::write_tx(conn, |conn| {
        // The account's row is locked (PostgreSQL) so that two creations at once cannot
        // both pass the count; on SQLite writes are serialized anyway.
        db::accounts::lock(conn, owner)?.ok_or_else(|| ApiError::not_found("account"))?;
        let have = store::count_of(conn, owner)?;
        if have >= per_account {
            return Err(ApiError::Refused {
                code: ErrorCode::WebhookEndpointLimit,
                detail: format!(
                    "an account may have at most {per_account} webhook endpoints and this one has {have}; delete one first"
                ),
            });
        }
        let endpoint = store::insert(
            conn,
            &NewEndpoint {
                account_id: owner,
                url: request.url.as_str(),
                event_types: &request.event_types,
                description: request.description.as_deref(),
                secret: &secret,
            },
        )?;
        let change = AuditChange::new(None, Some(audit::endpoint(&endpoint))).with_secret("secret");
        let target = endpoint_target(&endpoint);
        audit::record_if(
            conn,
            by,
            AuditAction::WebhookEndpointCreate,
            target,
            &change,
        )?;
        Ok(endpoint)
    })
}

fn endpoint_target(endpoint: &Endpoint) -> Target {
    Target::new(
        AuditTarget::WebhookEndpoint,
        endpoint.id.get(),
        Some(endpoint.account_id),
    )
}

fn owned(conn: &mut DbConnection, owner: AccountId, id: EndpointId) -> Result<Endpoint, ApiError> {
    store::find(conn, id, Some(owner))?.ok_or_else(|| ApiError::not_found("webhook endpoint"))
}

pub fn update_endpoint(
    conn: &mut DbConnection,
    by: Option<&Actor>,
    owner: AccountId,
    role: Role,
    id: EndpointId,
    url: Option<CheckedUrl>,
    mut changes: EndpointChanges,
) -> Result<Endpoint, ApiError> {
    changes.url = url.map(|url| url.0);
    if let Some(types) = &changes.event_types {
        check_types(role, types)?;
    }
    db::write_tx(conn, |conn| {
        let before = owned(conn, owner, id)?;
        let endpoint = store::update(conn, id, &changes)?;
        let change = audit::changed(audit::endpoint(&before), audit::endpoint(&endpoint));
        let target = endpoint_target(&endpoint);
        audit::record_if(
            conn,
            by,
            AuditAction::WebhookEndpointUpdate,
            target,
            &change,
        )?;
        Ok(endpoint)
    })
}

pub fn delete_endpoint(
    conn: &mut DbConnection,
    by: Option<&Actor>,
    owner: AccountId,
    id: EndpointId,
) -> Result<Endpoint, ApiError> {
    db::write_tx(conn, |conn| {
        let endpoint = owned(conn, owner, id)?;
        store::delete(conn, id)?;
        let change = AuditChange::new(Some(audit::endpoint(&endpoint)), None);
        let target = endpoint_target(&endpoint);
        audit::record_if(
            conn,
            by,
            AuditAction::WebhookEndpointDelete,
            target,
            &change,
        )?;
        Ok(endpoint)
    })
}

/// A new secret; the previous one keeps signing for `grace`.
pub fn rotate_secret(
    conn: &mut DbConnection,
    by: Option<&Actor>,
    owner: AccountId,
    id: EndpointId,
    grace: chrono::Duration,
) -> Result<Endpoint, ApiError> {
    let secret = new_secret();
    db::write_tx(conn, |conn| {
        owned(conn, owner, id)?;
        let endpoint = store::rotate(conn, id, &secret, grace)?;
        let change = AuditChange::new(
            None,
            Some(serde_json::json!({
                "previous_secret_until": endpoint.previous_secret_until.map(crate::resources::utc),
            })),
        )
        .with_secret("secret");
        let target = endpoint_target(&endpoint);
        audit::record_if(
            conn,
            by,
            AuditAction::WebhookEndpointRotateSecret,
            target,
            &change,
        )?;
        Ok(endpoint)
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
