//! The request context around every call: a request id (echoing the client's), the
//! rate-limit headers, the request log line and the metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::HttpMessage;

use crate::http::limits::{header_values, AppliedLimits};
use crate::http::problem::REQUEST_ID;
use crate::metrics;

const REQUEST_ID_HEADER: &str = "x-request-id";

fn request_id_from(req: &ServiceRequest) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| {
            let mut bytes = [0u8; 12];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
            hex::encode(bytes)
        })
}

/// The method as a metric label: any other word a client sends is `other`, so a client
/// cannot create series at will.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Gives every request an id (echoing the client's), logs it, counts it.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id_from(&req);
    let method = req.method().to_string();
    let path = req.path().to_string();
    let started = Instant::now();
    let mut res = REQUEST_ID.scope(id.clone(), next.call(req)).await?;
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    let applied = res.request().extensions().get::<AppliedLimits>().cloned();
    if let Some(applied) = applied {
        let (policy, state) = header_values(&applied);
        for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                res.headers_mut()
                    .insert(HeaderName::from_static(name), value);
            }
        }
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    let route = res.request().match_pattern();
    metrics::HTTP_REQUESTS.inc(&[&status.to_string()]);
    metrics::HTTP_REQUEST_DURATION.observe(
        &[
            method_label(&method),
            route.as_deref().unwrap_or("unmatched"),
        ],
        elapsed,
    );
    tracing::info!(
        request_id = %id,
        %method,
        %path,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    Ok(res)
}

/// Marks a request that came as HEAD and is routed as GET, so a 405 names the method the
/// client used.
#[derive(Debug, Clone, Copy)]
pub struct HeadAsGet;

/// The method the client sent: HEAD where [`head_as_get`] routed it as GET.
pub fn sent_method(req: &actix_web::HttpRequest) -> String {
    if req.extensions().get::<HeadAsGet>().is_some() {
        return Method::HEAD.to_string();
    }
    req.method().to_string()
}

/// Answers HEAD as GET on every GET route, with the GET's status and headers. actix-web
/// routes HEAD nowhere by itself, and a route-by-route HEAD would miss the next route
/// added. Authentication and every other check run as for the GET; the body is never
/// sent because actix-http drops it for a request that arrived as HEAD (it remembers the
/// method from the wire, not from this rewrite) while keeping `Content-Length`.
pub async fn head_as_get<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    if req.method() == Method::HEAD {
        req.extensions_mut().insert(HeadAsGet);
        req.head_mut().method = Method::GET;
    }
    next.call(req).await
}
