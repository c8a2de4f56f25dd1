//! One delivery attempt over HTTP: no redirects followed, a timeout, the response body read
//! up to a small cap, and a resolver that refuses addresses webhooks may not reach (so DNS
//! cannot be used to point a public name at an internal host) unless private targets are
//! allowed.

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::domain::event::is_forbidden_target;

/// How much of a receiver's answer is kept in the delivery log.
pub const BODY_CAP: usize = 2048;

/// What a receiver answered, or why there was no answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: Option<u16>,
    /// Seconds from a `Retry-After` header, when one was sent as seconds.
    pub retry_after_secs: Option<u64>,
    pub body: Option<String>,
    pub error: Option<String>,
    /// No answer in time (connecting, sending or reading).
    pub timed_out: bool,
    pub duration: Duration,
}

/// Whether a transport error is a timeout: an I/O error of kind `TimedOut` (or
/// `WouldBlock`, how a socket's read timeout shows on some platforms) down its sources.
fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) {
                return true;
            }
        }
        next = error.source();
    }
    false
}

fn guarded_resolver(netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
    if addrs.iter().any(|a| is_forbidden_target(a.ip())) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "the host resolves to a loopback, private, link-local or metadata address",
        ));
    }
    Ok(addrs)
}

/// POSTs `body` with `headers` to `url`.
pub fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
    allow_private: bool,
) -> Answer {
    let started = Instant::now();
    let mut builder = ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(0)
        .user_agent("reseller-api-webhooks/1");
    if !allow_private {
        builder = builder.resolver(guarded_resolver);
    }
    let agent = builder.build();
    let mut request = agent.post(url).set("content-type", "application/json");
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let response = match request.send_string(body) {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(transport)) => {
            return Answer {
                status: None,
                retry_after_secs: None,
                body: None,
                timed_out: is_timeout(&transport),
                error: Some(transport.to_string()),
                duration: started.elapsed(),
            }
        }
    };
    let status = response.status();
    let retry_after_secs = response
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut kept = Vec::with_capacity(256);
    let read = response
        .into_reader()
        .take(BODY_CAP as u64)
        .read_to_end(&mut kept);
    let mut body = String::from_utf8_lossy(&kept).into_owned();
    let (error, timed_out) = match read {
        Ok(_) => (None, false),
        Err(e) => (Some(format!("reading the answer: {e}")), is_timeout(&e)),
    };
    if body.len() > BODY_CAP {
        let mut end = BODY_CAP;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body.truncate(end);
    }
    Answer {
        status: Some(status),
        retry_after_secs,
        body: Some(body),
        error,
        timed_out,
        duration: started.elapsed(),
    }
}
