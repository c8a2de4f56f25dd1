//! One error type for the whole service, rendered as RFC 9457 `application/problem+json`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::FieldError;

tokio::task_local! {
    /// The id of the request being served, so every problem body can name it.
    pub static REQUEST_ID: String;
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{detail}")]
    PaymentRequired { code: &'static str, detail: String },
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{detail}")]
    Unprocessable {
        code: &'static str,
        detail: String,
        param: Option<String>,
    },
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unavailable(String),
    /// A request quota or the refund-abuse policy said no; try again after `retry_after_secs`.
    #[error("{detail}")]
    RateLimited {
        policy: String,
        retry_after_secs: u64,
        detail: String,
    },
    /// The refund-abuse policy refused a refund request.
    #[error("{detail}")]
    PolicyRefused {
        rule: String,
        detail: String,
        numbers: serde_json::Value,
        retry_after_secs: u64,
    },
    /// Anything unexpected: logged in full, shown to the client as a bare 500.
    #[error("internal error: {0}")]
    Internal(String),
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
    pub code: String,
    /// The request field at fault, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// Every failing field of a validation error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
    /// On 429: the quota or policy rule that refused the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// On 429: seconds until a retry can pass (also in `Retry-After`).
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
    pub fn not_found(what: &str) -> ApiError {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn invalid(param: &str, detail: impl Into<String>) -> ApiError {
        ApiError::Unprocessable {
            code: "validation_failed",
            detail: detail.into(),
            param: Some(param.to_string()),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(cause.to_string())
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited {
                retry_after_secs, ..
            }
            | ApiError::PolicyRefused {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::PaymentRequired { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Validation(_) => "validation_failed",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::PolicyRefused { .. } => "refund_policy_refused",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        let code = self.code();
        let detail = match self {
            ApiError::Internal(_) => "The server could not complete the request.".to_string(),
            ApiError::Validation(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        let (param, errors) = match self {
            ApiError::Unprocessable { param, .. } => (param.clone(), Vec::new()),
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
            code: code.to_string(),
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

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::PaymentRequired { .. } => StatusCode::PAYMENT_REQUIRED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } | ApiError::Validation(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } | ApiError::PolicyRefused { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(request_id = %current_request_id(), %cause, "request failed");
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

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> ApiError {
        match error {
            diesel::result::Error::NotFound => ApiError::NotFound("not found".into()),
            other => ApiError::Internal(format!("database: {other}")),
        }
    }
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> ApiError {
        ApiError::Validation(errors)
    }
}

impl From<crate::db::refunds::SettleError> for ApiError {
    fn from(error: crate::db::refunds::SettleError) -> ApiError {
        use crate::db::refunds::SettleError;
        use crate::domain::money::format_micros;
        use crate::domain::refund::Refusal;
        match error {
            SettleError::NotFound => ApiError::not_found("order"),
            SettleError::Db(e) => e.into(),
            SettleError::Refused(Refusal::Final { status }) => ApiError::Conflict {
                code: "order_final",
                detail: format!("the order is {status}; its outcome can no longer change"),
            },
            SettleError::Refused(Refusal::Backwards { from, to }) => ApiError::Conflict {
                code: "invalid_transition",
                detail: format!("a {from} order cannot go back to {to}"),
            },
            SettleError::Refused(Refusal::RemainsRequired) => {
                ApiError::invalid("remains", "a partial outcome needs `remains`")
            }
            SettleError::Refused(Refusal::WouldTakeBack { owed, refunded }) => ApiError::Conflict {
                code: "refund_would_be_taken_back",
                detail: format!(
                    "this outcome owes {} but {} was already refunded; refunds are never taken back",
                    format_micros(owed),
                    format_micros(refunded)
                ),
            },
            SettleError::Refused(Refusal::TooMuch { refundable }) => ApiError::Unprocessable {
                code: "amount_exceeds_refundable",
                detail: format!("at most {} can still be refunded", format_micros(refundable)),
                param: Some("amount".into()),
            },
        }
    }
}
