//! Refills: a reseller asks for a delivered order to be topped up again. A refill of an
//! order its provider has is queued for the provider worker in the transaction that
//! records it (sent after commit, then followed upstream); any other refill waits for an
//! operator's decision.

use crate::db::refills::{self, Refill, Upstream};
use crate::db::{self, orders, provider_orders, services, DbConnection};
use crate::domain::ids::{AccountId, OrderId, RefillId};
use crate::domain::refill::{check_refill, RefillRefusal, RefillStatus};
use crate::error::{ApiError, ErrorCode};

/// Why a refill was not requested.
#[derive(Debug, thiserror::Error)]
pub enum RefillError {
    #[error("order not found")]
    OrderNotFound,
    #[error("order not eligible for refill")]
    Refused(RefillRefusal),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

impl db::TxError for RefillError {
    fn is_conflict(&self) -> bool {
        matches!(self, RefillError::Db(error) if db::is_conflict(error))
    }
}

/// Requests a refill of one of the account's orders: a completed or partial order of a
/// service that offers refills, within its `refill_days`, at most one per 24 hours. The
/// order's row lock serialises concurrent requests, so two never both pass the 24-hour rule.
pub fn request_refill(
    conn: &mut DbConnection,
    account_id: AccountId,
    order_id: OrderId,
) -> Result<Refill, RefillError> {
    db::write_tx(conn, |conn| {
        let order =
            orders::lock(conn, order_id, Some(account_id))?.ok_or(RefillError::OrderNotFound)?;
        let service = services::find(conn, order.service_id)?.ok_or(RefillError::OrderNotFound)?;
        let latest = refills::latest_for_order(conn, order_id)?;
        check_refill(&service, &order, latest, db::now()).map_err(RefillError::Refused)?;
        let upstream = provider_orders::find(conn, order_id)?
            .and_then(|job| job.provider_order_id.map(|id| (job.provider_id, id)));
        let upstream = upstream.as_ref().map(|(provider_id, remote)| Upstream {
            provider_id: *provider_id,
            provider_order_id: remote,
        });
        let refill = refills::insert(conn, order_id, account_id, upstream)?;
        super::events::refill_created(conn, &refill)?;
        Ok(refill)
    })
}

/// An operator completes or rejects a refill no provider works (`note` says why).
pub fn decide_refill(
    conn: &mut DbConnection,
    by: &crate::domain::audit::Actor,
    admin_id: AccountId,
    refill_id: RefillId,
    status: RefillStatus,
    note: Option<String>,
) -> Result<Refill, ApiError> {
    db::write_tx(conn, |conn| {
        let refill =
            refills::find(conn, refill_id)?.ok_or_else(|| ApiError::not_found("refill"))?;
        if refill.state.is_some() {
            return Err(ApiError::Refused {
                code: ErrorCode::RefillNotOpen,
                detail: "this refill is worked by its provider".into(),
            });
        }
        if !refills::decide(conn, refill_id, status, admin_id, note.as_deref())? {
            return Err(ApiError::Refused {
                code: ErrorCode::RefillNotOpen,
                detail: format!("this refill is already {}", refill.status),
            });
        }
        let decided =
            refills::find(conn, refill_id)?.ok_or_else(|| ApiError::not_found("refill"))?;
        super::events::refill_status_changed(conn, refill.status, &decided)?;
        use crate::domain::audit::{AuditAction, AuditTarget};
        let action = match decided.status {
            RefillStatus::Rejected => AuditAction::RefillReject,
            _ => AuditAction::RefillComplete,
        };
        let change = super::audit::changed(
            super::audit::refill(&refill),
            super::audit::refill(&decided),
        );
        let target = super::audit::Target::new(
            AuditTarget::Refill,
            refill_id.get(),
            Some(decided.account_id),
        );
        super::audit::record(conn, by, action, target, &change)?;
        Ok(decided)
    })
}
