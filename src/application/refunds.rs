//! Settling refunds: what the one refund rule refused, as the errors callers see.

use crate::error::{ApiError, ErrorCode};

impl From<crate::db::refunds::SettleError> for ApiError {
    fn from(error: crate::db::refunds::SettleError) -> ApiError {
        use crate::db::refunds::SettleError;
        use crate::domain::money::format_micros;
        use crate::domain::refund::Refusal;
        match error {
            SettleError::NotFound => ApiError::not_found("order"),
            SettleError::Db(e) => e.into(),
            SettleError::Refused(Refusal::Final { status }) => ApiError::Conflict {
                code: ErrorCode::OrderFinal,
                detail: format!("the order is {status}; its outcome can no longer change"),
            },
            SettleError::Refused(Refusal::Backwards { from, to }) => ApiError::Conflict {
                code: ErrorCode::InvalidTransition,
                detail: format!("a {from} order cannot go back to {to}"),
            },
            SettleError::Refused(Refusal::RemainsRequired) => {
                ApiError::invalid("remains", "a partial outcome needs `remains`")
            }
            SettleError::Refused(Refusal::WouldTakeBack { owed, refunded }) => ApiError::Conflict {
                code: ErrorCode::RefundWouldBeTakenBack,
                detail: format!(
                    "this outcome owes {} but {} was already refunded; refunds are never taken back",
                    format_micros(owed),
                    format_micros(refunded)
                ),
            },
            SettleError::Refused(Refusal::TooMuch { refundable }) => ApiError::Unprocessable {
                code: ErrorCode::AmountExceedsRefundable,
                detail: format!("at most {} can still be refunded", format_micros(refundable)),
                param: Some("amount".into()),
            },
        }
    }
}
