//! One API v2 call to a provider: form-encoded over HTTP, with the provider's timeout,
//! telling "never sent" from "may have arrived".

use std::time::{Duration, Instant};

use crate::domain::provider::Provider;
use crate::metrics;

/// How one exchange with a provider went.
pub enum Reply {
    /// An HTTP answer with its body (any status).
    Answered { status: u16, body: String },
    /// The request never reached the provider (refused connection, bad address).
    NotSent(String),
    /// It may have reached the provider (timeout, broken connection).
    Lost(String),
}

impl Reply {
    /// The HTTP status, when there was an answer.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Reply::Answered { status, .. } => Some(*status),
            Reply::NotSent(_) | Reply::Lost(_) => None,
        }
    }

    /// What the attempt log keeps: the body of an answer, or why there was none.
    pub fn text(&self) -> &str {
        match self {
            Reply::Answered { body, .. } => body,
            Reply::NotSent(error) | Reply::Lost(error) => error,
        }
    }
}

/// Sends one API v2 call, form-encoded, with the provider's timeout, and times it for
/// `/metrics` by provider and `action` (the worker counts the outcome it reads).
pub fn call(provider: &Provider, fields: &[(&str, &str)]) -> Reply {
    let started = Instant::now();
    let reply = exchange(provider, fields);
    let action = fields
        .iter()
        .find(|(name, _)| *name == "action")
        .map_or("none", |(_, value)| *value);
    metrics::PROVIDER_REQUEST_DURATION
        .observe(&[&provider.id.to_string(), action], started.elapsed());
    reply
}

fn exchange(provider: &Provider, fields: &[(&str, &str)]) -> Reply {
    // No redirect is followed: a provider is called at its URL only, so its answer cannot
    // steer the worker to another address (an internal one, a metadata service).
    let mut builder = ureq::AgentBuilder::new()
        .timeout(Duration::from_millis(provider.timeout_ms.max(1) as u64))
        .redirects(0);
    // Nor an internal address, unless the operator opted the provider in.
    if !provider.allow_private_network {
        builder = builder.resolver(crate::net::guarded_resolver);
    }
    let agent = builder.build();
    let mut form = vec![(
        "key",
        secrecy::ExposeSecret::expose_secret(&provider.api_key),
    )];
    form.extend_from_slice(fields);
    let response = match agent.post(&provider.url).send_form(&form) {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(transport)) => {
            return match transport.kind() {
                ureq::ErrorKind::Dns
                | ureq::ErrorKind::ConnectionFailed
                | ureq::ErrorKind::InvalidUrl => Reply::NotSent(transport.to_string()),
                _ => Reply::Lost(transport.to_string()),
            }
        }
    };
    let status = response.status();
    if (300..400).contains(&status) {
        // Not read as the provider's answer: what the operator and the attempt log see is
        // where it pointed.
        let location = response.header("location").unwrap_or("(no Location)");
        let body = format!(
            "a redirect to {} (HTTP {status}), not followed: providers are called at their URL only",
            super::worker::truncate(location, 500)
        );
        return Reply::Answered { status, body };
    }
    match response.into_string() {
        Ok(body) => Reply::Answered { status, body },
        Err(e) => Reply::Lost(format!("reading the reply: {e}")),
    }
}

/// How a reply that could not be read is told to operators (an order's forwarding error, a
/// sync's 409, a balance error). An HTML page means a wrong URL path or a proxy's error
/// page: it is named as such and never quoted, its first bytes staying in the attempt log
/// only. Any other body is quoted by its first 200 bytes.
/// Without a status there was no answer, and `body` says what went wrong on the way.
pub fn unreadable_reply(action: &str, status: Option<u16>, body: &str) -> String {
    let body_start = super::worker::truncate(body, 200);
    let Some(status) = status else {
        return format!("no certain answer to {action}: {body_start}");
    };
    if looks_like_html(body) {
        return format!(
            "the provider answered an HTML page (HTTP {status}), not the panel API: check the \
             URL's path (often /api/v2 or /api/v1)"
        );
    }
    format!("{action} reply unreadable (HTTP {status}): {body_start}")
}

/// A body that starts as an HTML document does (white space and case aside).
fn looks_like_html(body: &str) -> bool {
    let start = body.trim_start();
    let head = super::worker::truncate(start, 64).to_ascii_lowercase();
    [
        "<!doctype html",
        "<html",
        "<head",
        "<body",
        "<title",
        "<!--",
    ]
    .iter()
    .any(|tag| head.starts_with(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_html_page_is_named_never_quoted() {
        let page = "\n  <!DOCTYPE html><html><head><title>403 Forbidden</title></head><body>nginx secret-path</body></html>";
        let told = unreadable_reply("services", Some(403), page);
        assert_eq!(
            told,
            "the provider answered an HTML page (HTTP 403), not the panel API: check the \
             URL's path (often /api/v2 or /api/v1)"
        );
        assert!(!told.contains("nginx"));
        assert!(looks_like_html("<HTML><BODY>500</BODY></HTML>"));
        assert_eq!(
            unreadable_reply("status", Some(200), r#"{"status":"success"}"#),
            r#"status reply unreadable (HTTP 200): {"status":"success"}"#
        );
        assert_eq!(
            unreadable_reply("add", None, "timed out"),
            "no certain answer to add: timed out"
        );
        assert!(!looks_like_html(r#"{"error":"<html>"}"#));
    }
}
