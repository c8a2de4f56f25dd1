//! Reading a provider's catalog (`action=services`) for a catalog sync.

use super::client::{call, Reply};
use super::dialect::parse_services;
use crate::domain::provider::Provider;
use crate::domain::service::CatalogEntry;
use crate::metrics;

/// The provider's services, or why they could not be read. Blocking: call off the
/// async runtime.
pub fn fetch_services(provider: &Provider) -> Result<Vec<CatalogEntry>, String> {
    let reply = call(provider, &[("action", "services")]);
    let read = match &reply {
        Reply::Answered { status, body } => parse_services(body).ok_or_else(|| {
            let mut end = body.len().min(200);
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            format!(
                "the provider's services reply is unreadable (HTTP {status}): {}",
                &body[..end]
            )
        }),
        Reply::NotSent(e) | Reply::Lost(e) => Err(format!("the provider did not answer: {e}")),
    };
    let label = if read.is_ok() { "read" } else { "unreadable" };
    metrics::PROVIDER_REQUESTS.inc(&[&provider.id.to_string(), "services", label]);
    read
}
