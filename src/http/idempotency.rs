//! Idempotency on the wire: reading the `Idempotency-Key` header and answering with a
//! stored response.

use actix_web::{HttpRequest, HttpResponse};

use crate::application::idempotency::{Stored, KEY_NAME};
use crate::error::ApiError;

/// Reads the optional `Idempotency-Key`: 1 to 255 printable ASCII characters.
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(KEY_NAME) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .map(|k| Some(k.to_string()))
        .ok_or_else(|| ApiError::invalid(KEY_NAME, "must be 1 to 255 printable ASCII characters"))
}

/// The stored response as sent, marked `Idempotent-Replayed` when it answers a retry.
pub fn stored_response(stored: Stored) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(stored.status)
        .unwrap_or(actix_web::http::StatusCode::OK);
    let mut response = HttpResponse::build(status);
    response.content_type("application/json");
    if stored.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    response.body(stored.body)
}
