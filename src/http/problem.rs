//! Errors on the wire: [`ApiError`] rendered as an RFC 9457 problem document.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorCode};

tokio::task_local! {
    /// The id of the request being served, so every problem body can name it.
    pub static REQUEST_ID: String;
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; stable per `code`.
    #[schema(example = "urn:reseller-api:problem:insufficient_funds")]
    pub r#type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code.
    #[schema(example = "insufficient_funds")]
    pub code: ErrorCode,
    /// The request field at fault, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// Every failing field of a validation error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
    /// On 429: the quota or policy rule that refused the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// On 429 and 503: seconds until a retry can pass (also in `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// On a refund-policy refusal: the numbers the rule looked at.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub policy_detail: Option<serde_json::Value>,
    pub request_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemField {
    pub param: String,
    pub detail: String,
}

impl ApiError {
    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        let code = self.code();
        let detail = match self {
            ApiError::Internal(_) | ApiError::Database(_) => {
                "The server could not complete the request.".to_string()
            }
            ApiError::Validation(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        let (param, errors) = match self {
            ApiError::Invalid { param, .. } => (param.clone(), Vec::new()),
            ApiError::Validation(errors) => (
                (errors.len() == 1).then(|| errors[0].field.to_string()),
                errors
                    .iter()
                    .map(|e| ProblemField {
                        param: e.field.to_string(),
                        detail: e.message.clone(),
                    })
                    .collect(),
            ),
            _ => (None, Vec::new()),
        };
        Problem {
            r#type: format!("urn:reseller-api:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            code,
            param,
            errors,
            policy: match self {
                ApiError::RateLimited { policy, .. } => Some(policy.clone()),
                ApiError::PolicyRefused { rule, .. } => Some(rule.clone()),
                _ => None,
            },
            retry_after: self.retry_after(),
            policy_detail: match self {
                ApiError::PolicyRefused { numbers, .. } => Some(numbers.clone()),
                _ => None,
            },
            request_id: current_request_id(),
        }
    }
}

/// The id of the request being served, or an empty string outside of one.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// The one table from a problem's code to its HTTP status.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        MalformedJson | UnreadableBody => StatusCode::BAD_REQUEST,
        Unauthorized => StatusCode::UNAUTHORIZED,
        InsufficientFunds => StatusCode::PAYMENT_REQUIRED,
        AccountSuspended | AdminOnly | InsufficientScope | OriginNotAllowed => {
            StatusCode::FORBIDDEN
        }
        NotFound => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        CurrencyMismatch
        | DisputePending
        | DuplicateGatewayRef
        | EndpointDisabled
        | IdempotencyKeyInFlight
        | InvalidTransition
        | NotAmbiguous
        | NotCancelable
        | NotRefillable
        | NothingToChargeBack
        | NothingToRefund
        | OrderCanceled
        | OrderFinal
        | ProviderUnavailable
        | RefillNotOpen
        | RefillTooSoon
        | RefillWindowClosed
        | RefundAlreadyDecided
        | RefundNotPending
        | RefundWouldBeTakenBack
        | ServicePaused
        | WebhookEndpointLimit => StatusCode::CONFLICT,
        PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        AmountExceedsRefundable
        | ChargeTooSmall
        | IdempotencyKeyReused
        | InvalidQuery
        | ValidationFailed
        | WebhookUrlRefused => StatusCode::UNPROCESSABLE_ENTITY,
        RateLimited | RefundPolicyRefused => StatusCode::TOO_MANY_REQUESTS,
        InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        StorageFull | Unavailable | WriteQueueFull => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.code())
    }

    fn error_response(&self) -> HttpResponse {
        // The same failure on every request is logged once per interval, with a count.
        static REPEATS: crate::log::Repeats =
            crate::log::Repeats::new(std::time::Duration::from_secs(10));
        let failed = |cause: &str| {
            if let Some(left_out) = REPEATS.admit(cause) {
                tracing::error!(request_id = %current_request_id(), %cause, repeats_left_out = left_out, "request failed");
            }
        };
        match self {
            ApiError::Internal(cause) => failed(cause),
            ApiError::Database(error) => failed(&format!("database: {error}")),
            ApiError::StorageFull => {
                if let Some(left_out) = REPEATS.admit("storage full") {
                    tracing::error!(
                        repeats_left_out = left_out,
                        "the database is out of storage space: writes are answered 503 storage_full until space is freed"
                    );
                }
            }
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        response.content_type("application/problem+json");
        if matches!(self, ApiError::Unauthorized(_)) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Some(secs) = self.retry_after() {
            response.insert_header((header::RETRY_AFTER, secs.max(1).to_string()));
        }
        response.json(self.problem())
    }
}
