//! Placing and cancelling orders, and recording their delivery outcomes.

use super::audit::{self, Target};
use super::cancels::CancelError;
use super::idempotency::{
    self, Answer, Claimed, Dialect, IdempotencyError, IdempotencyKey, Replay,
};
use super::refunds::{self, Settled, Trigger};
use crate::db::{self, accounts, ledger, orders, provider_orders, services, DbConnection};
use crate::domain::account::AccountStatus;
use crate::domain::audit::{Actor, AuditAction, AuditTarget};
use crate::domain::ids::{AccountId, OrderId, ServiceId};
use crate::domain::ledger::LedgerKind;
use crate::domain::money::{Money, SignedMoney};
use crate::domain::order::{plan_order, NewOrder, Order, OrderFieldError, OrderInput, OrderStatus};
use crate::domain::refund::{reason_for, Change, RefundReason, RefundSource};
use crate::error::{ApiError, ErrorCode};
use crate::metrics;
use crate::resources::{OrderResponse, PanelOrderPlaced};

/// An order as a caller asks for it, before its service's rules price it.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    pub service_id: ServiceId,
    pub input: OrderInput,
}

/// Why an order was not placed. Each API words these its own way: REST through
/// `api::orders` (a problem document), API v2 through `api::api_v2` (its dialect).
#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    #[error("no such service")]
    UnknownService,
    #[error("account not found")]
    UnknownAccount,
    #[error("this account is suspended and cannot place orders")]
    AccountSuspended,
    #[error("new orders to this service are paused by a critical refund-rate alert")]
    ServicePaused,
    /// Services are priced in the panel's currency; accounts in several currencies are
    /// not built yet, so an account in another cannot order.
    #[error(
        "this account is in {account} but services are priced in {panel}; it cannot place orders"
    )]
    ForeignCurrency { account: String, panel: String },
    #[error("the order costs {charge} but the balance is {balance}")]
    InsufficientFunds { charge: Money, balance: SignedMoney },
    /// Every field the service's rules refuse, in the order of the fields.
    #[error("validation failed")]
    Invalid(Vec<OrderFieldError>),
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    /// The database failed, or its writer refused the transaction (kept as the service
    /// answers it, so a conflict can still be told apart and run again).
    #[error(transparent)]
    Database(ApiError),
}

impl PlaceOrderError {
    /// The problem code this refusal is reported (and counted) with.
    pub fn code(&self) -> ErrorCode {
        match self {
            PlaceOrderError::Invalid(fields) if fields.iter().any(is_charge_too_small) => {
                ErrorCode::ChargeTooSmall
            }
            PlaceOrderError::UnknownService | PlaceOrderError::Invalid(_) => {
                ErrorCode::ValidationFailed
            }
            PlaceOrderError::UnknownAccount => ErrorCode::NotFound,
            PlaceOrderError::AccountSuspended => ErrorCode::AccountSuspended,
            PlaceOrderError::ServicePaused => ErrorCode::ServicePaused,
            PlaceOrderError::ForeignCurrency { .. } => ErrorCode::CurrencyMismatch,
            PlaceOrderError::InsufficientFunds { .. } => ErrorCode::InsufficientFunds,
            PlaceOrderError::Idempotency(error) => error.code(),
            PlaceOrderError::Database(error) => error.code(),
        }
    }
}

/// A charge that rounds to zero is refused alone (the other fields were read first), under
/// its own code.
fn is_charge_too_small(error: &OrderFieldError) -> bool {
    matches!(error, OrderFieldError::ChargeTooSmall { .. })
}

impl From<diesel::result::Error> for PlaceOrderError {
    fn from(error: diesel::result::Error) -> PlaceOrderError {
        PlaceOrderError::Database(error.into())
    }
}

impl db::TxError for PlaceOrderError {
    fn is_conflict(&self) -> bool {
        matches!(self, PlaceOrderError::Database(error) if error.is_conflict())
    }

    fn from_write(error: db::writer::WriteError) -> PlaceOrderError {
        PlaceOrderError::Database(error.into())
    }
}

/// An order placed by this call, or the answer stored under its idempotency key by the
/// first call with it (its bytes, to be sent as they are).
#[derive(Debug)]
pub enum Placed {
    New(Box<Order>),
    Replayed(Replay),
}

/// Places an order at most once per idempotency key: the key's claim, the debit, the order,
/// its queued send and the stored answer commit in one transaction.
/// Every API that places orders comes through here (a worker may call it as it is), so this
/// is where they are counted: placed once committed, refused by problem code, a replay not
/// at all.
pub fn place(
    conn: &mut DbConnection,
    account_id: AccountId,
    request: OrderRequest,
    key: Option<IdempotencyKey>,
) -> Result<Placed, PlaceOrderError> {
    let scope = match key.as_ref().map(|key| key.dialect) {
        Some(Dialect::PanelV2) => "api_v2_add",
        Some(Dialect::Rest) | None => "create_order",
    };
    place_scoped(conn, account_id, request, scope, key)
}

/// [`place`] under a given idempotency scope (a batch's lines have their own).
pub(super) fn place_scoped(
    conn: &mut DbConnection,
    account_id: AccountId,
    request: OrderRequest,
    scope: &str,
    key: Option<IdempotencyKey>,
) -> Result<Placed, PlaceOrderError> {
    let placed: Result<Placed, PlaceOrderError> = db::write_tx(conn, |conn| {
        let claimed = idempotency::claim::<PlaceOrderError>(conn, account_id, scope, key.as_ref());
        let claim = match claimed? {
            Claimed::Replay(replay) => return Ok(Placed::Replayed(replay)),
            Claimed::Proceed(claim) => claim,
        };
        let order = place_order(conn, account_id, request.clone())?;
        if let Some(claim) = claim {
            let body = match claim.dialect() {
                Dialect::Rest => serde_json::to_string(&OrderResponse::from(order.clone())),
                Dialect::PanelV2 => serde_json::to_string(&PanelOrderPlaced { order: order.id }),
            }
            .map_err(|e| PlaceOrderError::Database(ApiError::internal(e)))?;
            claim.store::<PlaceOrderError>(conn, Answer::OrderPlaced, &body)?;
        }
        Ok(Placed::New(Box::new(order)))
    });
    match &placed {
        Ok(Placed::New(_)) => metrics::ORDERS_PLACED.inc(&[]),
        Ok(Placed::Replayed(_)) => {}
        Err(error) => metrics::ORDERS_REFUSED.inc(&[error.code().as_str()]),
    }
    placed
}

/// The order transaction's body: checks, prices, debits with one conditional statement,
/// records the order and its ledger entry. Call inside a write transaction.
pub fn place_order(
    conn: &mut db::WriteConn<'_>,
    account_id: AccountId,
    request: OrderRequest,
) -> Result<Order, PlaceOrderError> {
    // One statement: the service (locked shared), the account's status and the pause.
    let found = services::find_shared_for_order(conn, request.service_id, account_id)?;
    let status = match &found {
        Some(found) => found.status,
        // No such service: the account still decides first which refusal this is.
        None => accounts::find(conn, account_id)?.map(|account| account.status),
    };
    match status.ok_or(PlaceOrderError::UnknownAccount)? {
        AccountStatus::Active => {}
        AccountStatus::Suspended => return Err(PlaceOrderError::AccountSuspended),
    }
    let found = found.ok_or(PlaceOrderError::UnknownService)?;
    let (service, paused) = (found.service, found.paused);
    if let Some((account, panel)) = found.foreign_currency {
        return Err(PlaceOrderError::ForeignCurrency { account, panel });
    }
    if paused {
        return Err(PlaceOrderError::ServicePaused);
    }
    let planned =
        plan_order(account_id, &service, request.input).map_err(PlaceOrderError::Invalid)?;
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
) -> Result<Order, PlaceOrderError> {
    let order = orders::insert(conn, &planned)?;
    let refs = ledger::Refs {
        order_id: Some(order.id),
        ..Default::default()
    };
    let debited = ledger::post(
        conn,
        planned.account_id,
        LedgerKind::OrderCharge,
        -planned.charge,
        refs,
        ledger::Overdraft::Refuse,
    )?;
    if debited.is_some() {
        super::events::order_created(conn, &order)?;
    }
    if debited.is_none() {
        let balance =
            accounts::find(conn, planned.account_id)?.map_or(SignedMoney::ZERO, |a| a.balance);
        return Err(PlaceOrderError::InsufficientFunds {
            charge: planned.charge,
            balance,
        });
    }
    Ok(order)
}

/// A reseller's cancel of its own pending order, refunded in full in one transaction with
/// the withdrawal of its queued send.
pub fn cancel_order(
    conn: &mut DbConnection,
    account_id: AccountId,
    order_id: OrderId,
) -> Result<Settled, CancelError> {
    db::write_tx(conn, |conn| cancel_owned_order(conn, account_id, order_id))
}

/// The body of [`cancel_order`]. Call inside a write transaction.
pub(crate) fn cancel_owned_order(
    conn: &mut db::WriteConn<'_>,
    account_id: AccountId,
    order_id: OrderId,
) -> Result<Settled, CancelError> {
    let order =
        orders::lock(conn, order_id, Some(account_id))?.ok_or(CancelError::OrderNotFound)?;
    let service = services::find(conn, order.service_id)?.ok_or(CancelError::ServiceNotFound)?;
    if !service.cancel {
        return Err(CancelError::NotOffered);
    }
    if order.status != OrderStatus::Pending {
        return Err(CancelError::NotPending {
            status: order.status,
        });
    }
    if provider_orders::find(conn, order_id)?.is_some()
        && !provider_orders::withdraw(conn, order_id)?
    {
        return Err(CancelError::AlreadySent);
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
    Ok(refunds::settle_within(conn, order_id, trigger).map_err(ApiError::from)?)
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
    by: &Actor,
    admin_id: AccountId,
    order_id: OrderId,
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
                approve: Money::ZERO,
            },
            reason_for(outcome.status),
            RefundSource::Admin,
        );
        trigger.start_count = outcome.start_count;
        trigger.decided_by = Some(admin_id);
        trigger.note = outcome.note.clone();
        let before = orders::lock(conn, order_id, None)?.map(|o| audit::order(&o));
        let settled = refunds::settle_within(conn, order_id, trigger)?;
        let mut change = audit::changed(
            before.unwrap_or(serde_json::Value::Null),
            audit::order(&settled.order),
        );
        if let (Some(refund), Some(serde_json::Value::Object(after))) =
            (&settled.refund, change.after.as_mut())
        {
            after.insert("refund".into(), audit::refund(refund));
        }
        let target = Target::new(
            AuditTarget::Order,
            order_id.get(),
            Some(settled.order.account_id),
        );
        audit::record(conn, by, AuditAction::OrderOutcome, target, &change)?;
        Ok(settled)
    })
}
