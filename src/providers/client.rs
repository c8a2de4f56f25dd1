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
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_millis(provider.timeout_ms.max(1) as u64))
        .build();
    let mut form = vec![("key", provider.api_key.as_str())];
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
    match response.into_string() {
        Ok(body) => Reply::Answered { status, body },
        Err(e) => Reply::Lost(format!("reading the reply: {e}")),
    }
}
