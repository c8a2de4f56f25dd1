//! Outbound addresses: where the worker may call a provider, by the address policy webhooks follow (no loopback,
//! private, link-local or metadata address, judged on every address a host resolves to,
//! at every call), unless an operator opted the provider in because it runs on the panel's
//! own network.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::domain::event::is_forbidden_target;

/// How long checking a provider's address at creation may wait on DNS; a name that does
/// not resolve in time is accepted, as one that does not resolve at all (every call
/// resolves it again under the rule).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The resolver of a provider not opted in: a host that resolves to any address the rule
/// forbids is not called (ureq resolves IP literals through it too).
pub fn guarded_resolver(netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
    if addrs.iter().any(|a| is_forbidden_target(a.ip())) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "the provider's host is a loopback, private, link-local or metadata address, and the provider is not opted in to private networks",
        ));
    }
    Ok(addrs)
}

/// Whether `url`'s host is, or resolves to, an address the rule forbids: `None` when the
/// URL has no host or the name does not resolve (now).
pub fn reaches_private(url: &str) -> Option<bool> {
    let url = url::Url::parse(url).ok()?;
    let host = url.host_str()?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let lower = bare.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return Some(true);
    }
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(is_forbidden_target(ip));
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<SocketAddr> = (bare, port).to_socket_addrs().ok()?.collect();
    if addresses.is_empty() {
        return None;
    }
    Some(addresses.iter().any(|a| is_forbidden_target(a.ip())))
}

/// [`reaches_private`] on the blocking pool, bounded by a timeout: a slow resolver holds
/// neither an actix worker nor a database connection (callers ask before taking one).
pub async fn reaches_private_off_thread(url: String) -> Option<bool> {
    let lookup = actix_web::web::block(move || reaches_private(&url));
    match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(found)) => found,
        Ok(Err(_)) | Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_local_hosts_are_judged_without_dns() {
        assert_eq!(reaches_private("http://127.0.0.1:8080/api/v2"), Some(true));
        assert_eq!(reaches_private("http://[::1]/api/v2"), Some(true));
        assert_eq!(reaches_private("http://169.254.169.254/"), Some(true));
        assert_eq!(reaches_private("https://localhost/api/v2"), Some(true));
        assert_eq!(
            reaches_private("https://panel.localhost/api/v2"),
            Some(true)
        );
        assert_eq!(reaches_private("https://[::ffff:10.0.0.1]/"), Some(true));
        assert_eq!(reaches_private("https://93.184.216.34/api/v2"), Some(false));
        assert_eq!(reaches_private("not a url"), None);
    }
}
