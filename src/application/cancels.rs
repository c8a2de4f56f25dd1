//! A reseller's cancel of an order, wherever it stands. Not yet sent upstream: withdrawn
//! and refunded at once (`orders::cancel_owned_order`). Already with its provider: a
//! cancel request, recorded here and sent by the worker after commit. The request itself
//! never moves money: the refund comes from the provider's next status through the one
//! refund rule (Canceled: in full; Partial: the undelivered share), and a refusal leaves
//! the order running with the provider's words on the request.

use super::orders::cancel_owned_order;
use super::refunds::Settled;
use crate::db::cancels::{self, CancelRequest, NewCancel};
use crate::db::{self, orders, provider_orders, services, DbConnection, WriteConn};
use crate::domain::cancel::CancelSource;
use crate::domain::ids::{AccountId, OrderId};
use crate::domain::order::OrderStatus;
use crate::domain::provider::ForwardingState;
use crate::error::{ApiError, ErrorCode};

/// What a cancel did.
#[derive(Debug)]
pub enum Canceled {
    /// Never sent upstream: canceled and refunded now.
    Refunded(Box<Settled>),
    /// With its provider: asked to cancel; the refund follows the provider's status.
    Requested(CancelRequest),
}

/// Why a reseller's cancel was refused. REST words these in `api::orders`, API v2 in
/// `api::api_v2`.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("order not found")]
    OrderNotFound,
    #[error("service not found")]
    ServiceNotFound,
    #[error("this order's service does not allow cancel")]
    NotOffered,
    /// Not yet sent upstream, and no longer pending.
    #[error("only pending orders can be canceled; this one is {status}")]
    NotPending { status: OrderStatus },
    /// With its provider, and already in a final status.
    #[error("this order is already {status}")]
    AlreadyFinal { status: OrderStatus },
    /// Its send left for the provider while the cancel was on its way.
    #[error("this order was already sent to the provider")]
    AlreadySent,
    /// The database, its writer or the settlement failed (as the service answers it).
    #[error(transparent)]
    Failed(#[from] ApiError),
}

impl CancelError {
    /// The problem code this refusal is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            CancelError::OrderNotFound | CancelError::ServiceNotFound => ErrorCode::NotFound,
            CancelError::NotOffered
            | CancelError::NotPending { .. }
            | CancelError::AlreadyFinal { .. }
            | CancelError::AlreadySent => ErrorCode::NotCancelable,
            CancelError::Failed(error) => error.code(),
        }
    }
}

impl From<diesel::result::Error> for CancelError {
    fn from(error: diesel::result::Error) -> CancelError {
        CancelError::Failed(error.into())
    }
}

impl db::TxError for CancelError {
    fn is_conflict(&self) -> bool {
        matches!(self, CancelError::Failed(error) if db::TxError::is_conflict(error))
    }

    fn from_write(error: db::writer::WriteError) -> CancelError {
        CancelError::Failed(error.into())
    }
}

/// Cancels one of the account's orders of a cancellable service, or asks its provider to.
pub fn cancel_order(
    conn: &mut DbConnection,
    account_id: AccountId,
    order_id: OrderId,
) -> Result<Canceled, CancelError> {
    db::write_tx(conn, |conn| {
        let upstream = provider_orders::find(conn, order_id)?
            .filter(|job| job.state == ForwardingState::Sent)
            .and_then(|job| job.provider_order_id.map(|id| (job.provider_id, id)));
        let Some((provider_id, remote)) = upstream else {
            return Ok(Canceled::Refunded(Box::new(cancel_owned_order(
                conn, account_id, order_id,
            )?)));
        };
        let order =
            orders::lock(conn, order_id, Some(account_id))?.ok_or(CancelError::OrderNotFound)?;
        let service =
            services::find(conn, order.service_id)?.ok_or(CancelError::ServiceNotFound)?;
        if !service.cancel {
            return Err(CancelError::NotOffered);
        }
        if order.status.is_terminal() {
            return Err(CancelError::AlreadyFinal {
                status: order.status,
            });
        }
        // Asking again while the provider has not answered is the same request.
        if let Some(pending) = cancels::pending_for_order(conn, order_id)? {
            return Ok(Canceled::Requested(pending));
        }
        let request = cancels::insert(
            conn,
            &NewCancel {
                order_id,
                account_id,
                provider_id,
                provider_order_id: &remote,
                source: CancelSource::Reseller,
            },
        )?;
        Ok(Canceled::Requested(request))
    })
}

/// Asks the provider to stop an order already sent to it, because its service was
/// disabled (and the order refunded by the last known progress); call inside the
/// transaction that refunds it. Nothing when the provider does not have the order.
pub fn request_on_disable(
    conn: &mut WriteConn<'_>,
    account_id: AccountId,
    order_id: OrderId,
) -> Result<(), diesel::result::Error> {
    let upstream = provider_orders::find(conn, order_id)?
        .filter(|job| job.state == ForwardingState::Sent)
        .and_then(|job| job.provider_order_id.map(|id| (job.provider_id, id)));
    let Some((provider_id, remote)) = upstream else {
        return Ok(());
    };
    if cancels::pending_for_order(conn, order_id)?.is_some() {
        return Ok(());
    }
    cancels::insert(
        conn,
        &NewCancel {
            order_id,
            account_id,
            provider_id,
            provider_order_id: &remote,
            source: CancelSource::ServiceDisabled,
        },
    )
    .map(drop)
}
