//! Idempotency on the wire: reading the `Idempotency-Key` header, the one table of the
//! statuses stored answers are sent with, and sending a stored answer again.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use crate::application::idempotency::{
    request_hash, Answer, Dialect, IdempotencyError, IdempotencyKey, Replay, KEY_NAME,
};
use crate::config::Config;
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

/// The REST request's key, if it sent one, fingerprinted by its body.
pub fn rest_key(
    req: &HttpRequest,
    raw: &serde_json::Value,
    config: &Config,
) -> Result<Option<IdempotencyKey>, ApiError> {
    Ok(idempotency_key(req)?.map(|key| IdempotencyKey {
        key,
        request_hash: request_hash(raw),
        ttl: config.retention.idempotency_ttl(),
        dialect: Dialect::Rest,
        status_of,
    }))
}

/// The one table of the statuses an answer stored under a key is sent (and replayed) with.
pub fn status_of(dialect: Dialect, answer: Answer) -> u16 {
    let status = match (dialect, answer) {
        // The panel dialect answers everything 200.
        (Dialect::PanelV2, _) => StatusCode::OK,
        (
            Dialect::Rest,
            Answer::OrderPlaced | Answer::DisputeApproved | Answer::SubscriptionCreated,
        ) => StatusCode::CREATED,
        (Dialect::Rest, Answer::DisputeInReview) => StatusCode::ACCEPTED,
        (Dialect::Rest, Answer::BatchAnswered) => StatusCode::OK,
    };
    status.as_u16()
}

/// A fresh answer of `dialect`, sent as it was stored.
pub fn answered(dialect: Dialect, answer: Answer, body: String) -> HttpResponse {
    json_response(status_of(dialect, answer), body, false)
}

/// A stored answer sent again as it was first sent, byte for byte, with its status and
/// `Idempotent-Replayed: true`.
pub fn replayed(replay: Replay) -> HttpResponse {
    json_response(replay.status, replay.body, true)
}

fn json_response(status: u16, body: String, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    response.content_type("application/json");
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    response.body(body)
}

/// The key's refusals as problems: reused with another body (422, naming the header),
/// in flight or taken over (409).
impl From<IdempotencyError> for ApiError {
    fn from(error: IdempotencyError) -> ApiError {
        match error {
            IdempotencyError::Reused => ApiError::Invalid {
                code: error.code(),
                detail: error.to_string(),
                param: Some(KEY_NAME.into()),
            },
            IdempotencyError::InFlight | IdempotencyError::TakenOver => ApiError::Refused {
                code: error.code(),
                detail: error.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_answers_keep_the_statuses_they_always_had() {
        assert_eq!(status_of(Dialect::Rest, Answer::OrderPlaced), 201);
        assert_eq!(status_of(Dialect::Rest, Answer::BatchAnswered), 200);
        assert_eq!(status_of(Dialect::Rest, Answer::DisputeApproved), 201);
        assert_eq!(status_of(Dialect::Rest, Answer::DisputeInReview), 202);
        assert_eq!(status_of(Dialect::PanelV2, Answer::OrderPlaced), 200);
    }
}
