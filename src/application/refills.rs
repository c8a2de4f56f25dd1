//! Refills: a reseller asks for a delivered order to be topped up again.

use crate::db::{orders, refills, services, DbConnection};
use crate::domain::order::OrderStatus;
use crate::error::ApiError;

/// Why a refill was not requested.
#[derive(Debug, thiserror::Error)]
pub enum RefillError {
    #[error("order not found")]
    OrderNotFound,
    /// Its service offers no refills, or the order is not delivered yet.
    #[error("order not eligible for refill")]
    NotEligible,
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

impl From<RefillError> for ApiError {
    fn from(error: RefillError) -> ApiError {
        match error {
            RefillError::OrderNotFound => ApiError::not_found("order"),
            RefillError::NotEligible => ApiError::invalid(
                "order",
                "only completed or partial orders of a refill service can be refilled",
            ),
            RefillError::Db(e) => e.into(),
        }
    }
}

/// Requests a refill of one of the account's orders, only for a completed or partial
/// order of a service that offers refills; returns the refill's id.
pub fn request_refill(
    conn: &mut DbConnection,
    account_id: i64,
    order_id: i64,
) -> Result<i64, RefillError> {
    let order =
        orders::find_owned(conn, account_id, order_id)?.ok_or(RefillError::OrderNotFound)?;
    let service = services::find(conn, order.service_id)?.ok_or(RefillError::OrderNotFound)?;
    if !service.refill || !matches!(order.status, OrderStatus::Completed | OrderStatus::Partial) {
        return Err(RefillError::NotEligible);
    }
    Ok(refills::insert(conn, order_id, account_id)?)
}
