//! Placing and cancelling orders, and recording their delivery outcomes.

use super::idempotency::{respond_once, Stored};
use super::refunds::{self, Settled, Trigger};
use crate::db::{self, accounts, ledger, orders, provider_orders, services, DbConnection};
use crate::domain::account::AccountStatus;
use crate::domain::ledger::LedgerKind;
use crate::domain::order::{plan_order, NewOrder, Order, OrderInput, OrderStatus};
use crate::domain::refund::{reason_for, Change, RefundReason, RefundSource};
use crate::domain::FieldError;
use crate::error::{ApiError, ErrorCode};
use crate::metrics;

/// An order as a caller asks for it, before its service's rules price it.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    pub service_id: i64,
    pub input: OrderInput,
}

/// Why an order was not placed. The unknown service is its own case because the panel
/// dialect words it differently from every other invalid field.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("no such service")]
    UnknownService,
    #[error(transparent)]
    Other(#[from] ApiError),
}

impl From<diesel::result::Error> for OrderError {
    fn from(error: diesel::result::Error) -> OrderError {
        OrderError::Other(error.into())
    }
}

impl db::TxError for OrderError {
    fn is_conflict(&self) -> bool {
        matches!(self, OrderError::Other(error) if error.is_conflict())
    }

    fn from_write(error: db::writer::WriteError) -> OrderError {
        OrderError::Other(error.into())
    }
}

impl From<OrderError> for ApiError {
    fn from(error: OrderError) -> ApiError {
        match error {
            OrderError::UnknownService => {
                ApiError::Validation(vec![FieldError::new("service_id", "no such service")])
            }
            OrderError::Other(error) => error,
        }
    }
}

/// Places an order at most once per idempotency key: the key's claim, the debit, the order,
/// its queued send and the stored response (`render`ed from the order) commit in one
/// transaction.
/// Every API that places orders comes through here, so this is where they are counted:
/// placed once committed, refused by problem code, a replay not at all.
pub fn create_order(
    conn: &mut DbConnection,
    account_id: i64,
    request: OrderRequest,
    scope: &str,
    key: Option<super::idempotency::IdempotencyKey>,
    status: u16,
    render: impl Fn(Order) -> Result<String, ApiError> + Sync,
) -> Result<Stored, OrderError> {
    let placed = respond_once(conn, account_id, scope, key, status, |conn| {
        let order = place_order(conn, account_id, request.clone())?;
        Ok(render(order)?)
    });
    match &placed {
        Ok(stored) if !stored.replayed => metrics::ORDERS_PLACED.inc(&[]),
        Ok(_) => {}
        Err(error) => metrics::ORDERS_REFUSED.inc(&[refusal_code(error).as_str()]),
    }
    placed
}

fn refusal_code(error: &OrderError) -> ErrorCode {
    match error {
        OrderError::UnknownService => ErrorCode::ValidationFailed,
        OrderError::Other(error) => error.code(),
    }
}

/// The order transaction's body: checks, prices, debits with one conditional statement,
/// records the order and its ledger entry. Call inside a write transaction.
pub fn place_order(
    conn: &mut db::WriteConn<'_>,
    account_id: i64,
    request: OrderRequest,
) -> Result<Order, OrderError> {
    // One statement: the service (locked shared), the account's status and the pause.
    let found = services::find_shared_for_order(conn, request.service_id, account_id)?;
    let status = match &found {
        Some((_, status, _)) => *status,
        // No such service: the account still decides first which refusal this is.
        None => accounts::find(conn, account_id)?.map(|account| account.status),
    };
    match status.ok_or_else(|| ApiError::not_found("account"))? {
        AccountStatus::Active => {}
        AccountStatus::Suspended => {
            return Err(ApiError::Refused {
                code: ErrorCode::AccountSuspended,
                detail: "this account is suspended and cannot place orders".into(),
            }
            .into())
        }
    }
    let (service, _, paused) = found.ok_or(OrderError::UnknownService)?;
    if paused {
        return Err(ApiError::Refused {
            code: ErrorCode::ServicePaused,
            detail: "new orders to this service are paused by a critical refund-rate alert".into(),
        }
        .into());
    }
    let planned = plan_order(account_id, &service, request.input).map_err(ApiError::from)?;
    let order = place_order_planned(conn, planned)?;
    if let Some((provider_id, remote_service)) = &service.provider {
        // Sent by the worker once this transaction has committed, never inside it.
        let key = format!(
            "order-{}-{}",
            order.id,
            crate::domain::api_key::random_token(8)
        );
        provider_orders::enqueue(conn, order.id, *provider_id, remote_service, &key)?;
    }
    Ok(order)
}

/// Records a priced order and debits its charge with one conditional statement, so the
/// balance can never be overdrawn. Call inside a write transaction.
pub fn place_order_planned(
    conn: &mut db::WriteConn<'_>,
    planned: NewOrder,
) -> Result<Order, ApiError> {
    let order = orders::insert(conn, &planned)?;
    let refs = ledger::Refs {
        order_id: Some(order.id),
        ..Default::default()
    };
    let debited = ledger::post(
        conn,
        planned.account_id,
        LedgerKind::OrderCharge,
        -planned.charge.micros(),
        refs,
        ledger::Overdraft::Refuse,
    )?;
    if debited.is_some() {
        super::events::order_created(conn, &order)?;
    }
    if debited.is_none() {
        let balance = accounts::find(conn, planned.account_id)?.map_or(0, |a| a.balance_micros);
        return Err(ApiError::Refused {
            code: ErrorCode::InsufficientFunds,
            detail: format!(
                "the order costs {} but the balance is {}",
                planned.charge,
                crate::domain::money::format_micros(balance)
            ),
        });
    }
    Ok(order)
}

/// A reseller's cancel of its own pending order, refunded in full in one transaction with
/// the withdrawal of its queued send.
pub fn cancel_order(
    conn: &mut DbConnection,
    account_id: i64,
    order_id: i64,
) -> Result<Settled, ApiError> {
    db::write_tx(conn, |conn| cancel_owned_order(conn, account_id, order_id))
}

/// The body of [`cancel_order`]. Call inside a write transaction.
pub(crate) fn cancel_owned_order(
    conn: &mut db::WriteConn<'_>,
    account_id: i64,
    order_id: i64,
) -> Result<Settled, ApiError> {
    let order = orders::lock(conn, order_id, Some(account_id))?
        .ok_or_else(|| ApiError::not_found("order"))?;
    let service =
        services::find(conn, order.service_id)?.ok_or_else(|| ApiError::not_found("service"))?;
    if !service.cancel {
        return Err(ApiError::Refused {
            code: ErrorCode::NotCancelable,
            detail: "this order's service does not allow cancel".into(),
        });
    }
    if order.status != OrderStatus::Pending {
        return Err(ApiError::Refused {
            code: ErrorCode::NotCancelable,
            detail: format!(
                "only pending orders can be canceled; this one is {}",
                order.status
            ),
        });
    }
    if provider_orders::find(conn, order_id)?.is_some()
        && !provider_orders::withdraw(conn, order_id)?
    {
        return Err(ApiError::Refused {
            code: ErrorCode::NotCancelable,
            detail: "this order was already sent to the provider".into(),
        });
    }
    let mut trigger = Trigger::new(
        Change {
            status: Some(OrderStatus::Canceled),
            ..Change::default()
        },
        RefundReason::CanceledByReseller,
        RefundSource::Reseller,
    );
    trigger.owner = Some(account_id);
    trigger.decided_by = Some(account_id);
    Ok(refunds::settle_within(conn, order_id, trigger)?)
}

/// A delivery outcome an operator records by hand, its fields already checked.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: OrderStatus,
    pub start_count: Option<i64>,
    /// Units not delivered; give this or `runs_delivered`, not both.
    pub remains: Option<i64>,
    /// Drip-feed only: runs delivered in full.
    pub runs_delivered: Option<i64>,
    pub note: Option<String>,
}

/// Applies an operator's outcome under the refund rule, in one transaction that reads the
/// drip-feed order it converts `runs_delivered` for.
pub fn record_outcome(
    conn: &mut DbConnection,
    admin_id: i64,
    order_id: i64,
    outcome: Outcome,
) -> Result<Settled, ApiError> {
    db::write_tx(conn, |conn| {
        let mut remains = outcome.remains;
        if let Some(delivered) = outcome.runs_delivered {
            let order =
                orders::lock(conn, order_id, None)?.ok_or_else(|| ApiError::not_found("order"))?;
            let runs = order.runs.ok_or_else(|| {
                ApiError::invalid("runs_delivered", "this is not a drip-feed order")
            })?;
            remains = Some((runs - delivered).max(0) * order.quantity);
        }
        let mut trigger = Trigger::new(
            Change {
                status: Some(outcome.status),
                remains,
                approve: 0,
            },
            reason_for(outcome.status),
            RefundSource::Admin,
        );
        trigger.start_count = outcome.start_count;
        trigger.decided_by = Some(admin_id);
        trigger.note = outcome.note.clone();
        Ok(refunds::settle_within(conn, order_id, trigger)?)
    })
}
