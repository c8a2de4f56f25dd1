//! One error type for the whole service. Each variant has one HTTP status; `http::problem`
//! renders it as an RFC 9457 `application/problem+json` document.

use serde::Serialize;
use utoipa::ToSchema;

use crate::db::writer::{WriteError, QUEUE_FULL_RETRY_SECS};
use crate::domain::FieldError;

/// The stable, machine-readable `code` of every problem document; its wire names are the
/// snake_case of the variants. Clients may switch on it: a new code is a new variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    AccountSuspended,
    AdminOnly,
    AmountExceedsRefundable,
    DisputePending,
    DuplicateGatewayRef,
    EndpointDisabled,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InsufficientFunds,
    InsufficientScope,
    InternalError,
    InvalidQuery,
    InvalidTransition,
    MalformedJson,
    MethodNotAllowed,
    NotAmbiguous,
    NotCancelable,
    NotFound,
    NotRefillable,
    NothingToChargeBack,
    NothingToRefund,
    OrderCanceled,
    OrderFinal,
    OriginNotAllowed,
    PayloadTooLarge,
    ProviderUnavailable,
    RateLimited,
    RefillNotOpen,
    RefillTooSoon,
    RefillWindowClosed,
    RefundAlreadyDecided,
    RefundNotPending,
    RefundPolicyRefused,
    RefundWouldBeTakenBack,
    ServicePaused,
    Unauthorized,
    Unavailable,
    UnreadableBody,
    UnsupportedMediaType,
    ValidationFailed,
    WebhookUrlRefused,
    WriteQueueFull,
}

impl ErrorCode {
    /// The wire name, e.g. `insufficient_funds`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AccountSuspended => "account_suspended",
            ErrorCode::AdminOnly => "admin_only",
            ErrorCode::AmountExceedsRefundable => "amount_exceeds_refundable",
            ErrorCode::DisputePending => "dispute_pending",
            ErrorCode::DuplicateGatewayRef => "duplicate_gateway_ref",
            ErrorCode::EndpointDisabled => "endpoint_disabled",
            ErrorCode::IdempotencyKeyInFlight => "idempotency_key_in_flight",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::InsufficientFunds => "insufficient_funds",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::InvalidTransition => "invalid_transition",
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::NotAmbiguous => "not_ambiguous",
            ErrorCode::NotCancelable => "not_cancelable",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotRefillable => "not_refillable",
            ErrorCode::NothingToChargeBack => "nothing_to_charge_back",
            ErrorCode::NothingToRefund => "nothing_to_refund",
            ErrorCode::OrderCanceled => "order_canceled",
            ErrorCode::OrderFinal => "order_final",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::ProviderUnavailable => "provider_unavailable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::RefillNotOpen => "refill_not_open",
            ErrorCode::RefillTooSoon => "refill_too_soon",
            ErrorCode::RefillWindowClosed => "refill_window_closed",
            ErrorCode::RefundAlreadyDecided => "refund_already_decided",
            ErrorCode::RefundNotPending => "refund_not_pending",
            ErrorCode::RefundPolicyRefused => "refund_policy_refused",
            ErrorCode::RefundWouldBeTakenBack => "refund_would_be_taken_back",
            ErrorCode::ServicePaused => "service_paused",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::UnreadableBody => "unreadable_body",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::WebhookUrlRefused => "webhook_url_refused",
            ErrorCode::WriteQueueFull => "write_queue_full",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { code: ErrorCode, detail: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{detail}")]
    PaymentRequired { code: ErrorCode, detail: String },
    #[error("{detail}")]
    Forbidden { code: ErrorCode, detail: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    Conflict { code: ErrorCode, detail: String },
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{detail}")]
    Unprocessable {
        code: ErrorCode,
        detail: String,
        param: Option<String>,
    },
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unavailable(String),
    /// Too many write transactions are already waiting for the database's writer
    /// (`--write-queue`): nothing was done; retry after `retry_after_secs`.
    #[error("too many writes are waiting; retry shortly")]
    Overloaded { retry_after_secs: u64 },
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
    /// The database failed: shown like [`ApiError::Internal`]. Kept whole so that a write
    /// transaction refused for a conflict with a concurrent one can be told apart and run
    /// again (`db::write_tx`) before it ever reaches the client.
    #[error("database: {0}")]
    Database(diesel::result::Error),
}

impl ApiError {
    pub fn not_found(what: &str) -> ApiError {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn invalid(param: &str, detail: impl Into<String>) -> ApiError {
        ApiError::Unprocessable {
            code: ErrorCode::ValidationFailed,
            detail: detail.into(),
            param: Some(param.to_string()),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(cause.to_string())
    }

    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited {
                retry_after_secs, ..
            }
            | ApiError::PolicyRefused {
                retry_after_secs, ..
            }
            | ApiError::Overloaded { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The problem `code` this error is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::PaymentRequired { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. } => *code,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::Validation(_) => ErrorCode::ValidationFailed,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Overloaded { .. } => ErrorCode::WriteQueueFull,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::PolicyRefused { .. } => ErrorCode::RefundPolicyRefused,
            ApiError::Internal(_) | ApiError::Database(_) => ErrorCode::InternalError,
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> ApiError {
        // A refusal of the writer's that a worker or a query helper carried this far is not
        // a database failure.
        if let Some(refusal) = WriteError::carried_by(&error) {
            return refusal.clone().into();
        }
        match error {
            diesel::result::Error::NotFound => ApiError::NotFound("not found".into()),
            other if crate::db::is_lost_connection(&other) => {
                ApiError::Unavailable("the database connection was lost; retry the request".into())
            }
            other => ApiError::Database(other),
        }
    }
}

/// The writer's refusals are the service's state, not a fault of the request: a full
/// queue or a stopped writer is a 503 the client may retry (nothing was done). Only a batch
/// the database itself failed is a 500.
impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> ApiError {
        match error {
            WriteError::QueueFull => ApiError::Overloaded {
                retry_after_secs: QUEUE_FULL_RETRY_SECS,
            },
            WriteError::WriterGone => {
                ApiError::Unavailable("the database writer has stopped; retry the request".into())
            }
            WriteError::BatchFailed(_) => ApiError::internal(error),
        }
    }
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> ApiError {
        ApiError::Validation(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::writer::BatchFailure;

    #[test]
    fn the_writers_refusals_are_503s_and_only_a_failed_batch_is_a_500() {
        let full = ApiError::from(WriteError::QueueFull);
        assert_eq!(full.code(), ErrorCode::WriteQueueFull);
        assert_eq!(full.retry_after(), Some(QUEUE_FULL_RETRY_SECS));

        assert_eq!(
            ApiError::from(WriteError::WriterGone).code(),
            ErrorCode::Unavailable
        );

        let failed = WriteError::BatchFailed(std::sync::Arc::new(BatchFailure::Unbalanced));
        assert_eq!(ApiError::from(failed).code(), ErrorCode::InternalError);
    }

    #[test]
    fn a_refusal_carried_in_a_diesel_error_is_mapped_like_the_refusal() {
        let full = ApiError::from(WriteError::QueueFull.into_diesel());
        assert_eq!(full.code(), ErrorCode::WriteQueueFull);
        assert_eq!(full.retry_after(), Some(QUEUE_FULL_RETRY_SECS));
        assert_eq!(
            ApiError::from(WriteError::WriterGone.into_diesel()).code(),
            ErrorCode::Unavailable
        );
    }
}
