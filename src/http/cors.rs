//! CORS for browser dashboards: the configured origins only, matched exactly; none by default.
//!
//! Written here rather than taken from `actix-cors` (0.7.2) because that crate answers a
//! preflight from an unlisted origin with a `text/plain` 400 instead of a problem document,
//! and adds `Access-Control-Expose-Headers` to responses for origins it does not allow.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};

use crate::error::{ApiError, ErrorCode};
use crate::http::state::AppState;

/// Methods a dashboard may use: every method the API declares (a test holds it to the spec).
/// HEAD is absent because browsers never preflight it (a CORS-safelisted method).
pub const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
/// Request headers a dashboard may send beyond the CORS-safelisted ones.
pub const ALLOW_HEADERS: &str = "Authorization, Content-Type, Idempotency-Key, X-Request-Id";
/// Response headers a dashboard's script may read.
pub const EXPOSE_HEADERS: &str =
    "RateLimit, RateLimit-Policy, Retry-After, Link, Location, X-Request-Id, Idempotent-Replayed";
/// How long a browser may cache a preflight answer, in seconds.
const MAX_AGE_SECS: &str = "600";

/// Answers preflights from allowed origins itself (they never reach authentication or a
/// request quota) and marks responses to allowed origins as readable by them.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let configured = state
        .as_ref()
        .map_or(&[][..], |s| &s.config.cors_origins[..]);
    if configured.is_empty() {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .filter(|o| {
            o.to_str()
                .is_ok_and(|o| configured.iter().any(|allowed| allowed == o))
        })
        .cloned();
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut response = match &origin {
            Some(origin) => HttpResponse::NoContent()
                .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE_SECS))
                .finish(),
            None => ApiError::Refused {
                code: ErrorCode::OriginNotAllowed,
                detail: "this origin is not allowed to call the API from a browser".into(),
            }
            .error_response(),
        };
        vary_on_origin(response.headers_mut());
        return Ok(req.into_response(response).map_into_right_body());
    }
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    vary_on_origin(headers);
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
    Ok(response.map_into_left_body())
}

/// The answer depends on `Origin`, so shared caches must keep one copy per origin.
fn vary_on_origin(headers: &mut header::HeaderMap) {
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}
