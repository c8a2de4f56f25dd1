//! One error type for the whole service. Its HTTP status is a function of its [`ErrorCode`]
//! (one table, `http::problem::status_of`), so the two can never disagree;
//! `http::problem` renders it as an RFC 9457 `application/problem+json` document.

use serde::Serialize;
use utoipa::ToSchema;

use crate::db::writer::{WriteError, QUEUE_FULL_RETRY_SECS};
use crate::domain::FieldError;

/// The stable, machine-readable `code` of every problem document; its wire names are the
/// snake_case of the variants. Clients may switch on it: a new code is a new variant.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, strum::IntoStaticStr, strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    AccountSuspended,
    AdminOnly,
    AmountExceedsRefundable,
    ChargeTooSmall,
    /// An amount in another currency than the one it must be in (an account in another
    /// currency than the panel's ordering; a provider without its exchange rate).
    CurrencyMismatch,
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
    StorageFull,
    Unauthorized,
    Unavailable,
    UnreadableBody,
    UnsupportedMediaType,
    ValidationFailed,
    WebhookUrlRefused,
    WriteQueueFull,
    /// An account has as many webhook endpoints as `--webhook-endpoints-per-account` allows.
    WebhookEndpointLimit,
}

impl ErrorCode {
    /// The wire name, e.g. `insufficient_funds`: the same words serde writes (a test holds
    /// the two derivations equal for every code).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Seconds a client is asked to wait after a write refused for lack of disk space.
pub const STORAGE_FULL_RETRY_SECS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request was understood and refused for the reason `code` names (insufficient
    /// funds, a final order, a suspended account, …).
    #[error("{detail}")]
    Refused { code: ErrorCode, detail: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// One input the request gave is refused, named by `param` where there is one.
    #[error("{detail}")]
    Invalid {
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
    /// The database refused the write for lack of disk space: nothing was done; retry
    /// after `Retry-After` (an operator must free space).
    #[error("the database is out of storage space; nothing was done, retry later")]
    StorageFull,
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
        ApiError::Invalid {
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
            ApiError::StorageFull => Some(STORAGE_FULL_RETRY_SECS),
            _ => None,
        }
    }

    /// The problem `code` this error is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Refused { code, .. } | ApiError::Invalid { code, .. } => *code,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::Validation(_) => ErrorCode::ValidationFailed,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Overloaded { .. } => ErrorCode::WriteQueueFull,
            ApiError::StorageFull => ErrorCode::StorageFull,
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
        if crate::db::storage::is_storage_full(&error) {
            crate::db::storage::record_full();
            return ApiError::StorageFull;
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
            WriteError::BatchFailed(ref failure) if failure.is_storage_full() => {
                crate::db::storage::record_full();
                ApiError::StorageFull
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
    use strum::IntoEnumIterator;

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

    #[test]
    fn every_code_has_one_wire_name_the_same_in_both_derivations() {
        let mut names = std::collections::BTreeSet::new();
        for code in ErrorCode::iter() {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                code.as_str(),
                "{code:?}"
            );
            assert!(names.insert(code.as_str()), "{code:?} named twice");
        }
        // The wire contract: removing or renaming a code breaks clients.
        assert_eq!(names.len(), 46);
        assert!(names.contains("insufficient_funds"));
        assert!(names.contains("nothing_to_charge_back"));
        assert!(names.contains("idempotency_key_in_flight"));
    }
}
