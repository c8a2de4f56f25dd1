//! Subscriptions: created with their hold, each post's child order paid from the hold,
//! ended with what is left released — every move one ledger entry, in the same transaction
//! as the change it pays for (see docs/subscriptions.md).

use super::audit::{self, Target};
use super::idempotency::{
    self, Answer, Claimed, Dialect, IdempotencyError, IdempotencyKey, Replay,
};
use crate::db::{self, accounts, ledger, orders, services, subscriptions, DbConnection};
use crate::domain::account::AccountStatus;
use crate::domain::audit::{Actor, AuditAction, AuditTarget};
use crate::domain::ids::{AccountId, ServiceId, SubscriptionId};
use crate::domain::ledger::LedgerKind;
use crate::domain::money::{Money, SignedMoney};
use crate::domain::order::{NewOrder, Order, MAX_LINK_CHARS};
use crate::domain::order_fields::OrderFields;
use crate::domain::parse_text;
use crate::domain::service::ServiceType;
use crate::domain::subscription::{
    child_charge, paid_from_hold, plan_subscription, Subscription, SubscriptionFieldError,
    SubscriptionInput, SubscriptionStatus,
};
use crate::error::{ApiError, ErrorCode};
use crate::resources::{PanelOrderPlaced, SubscriptionResponse};

/// A subscription as a caller asks for it.
#[derive(Debug, Clone)]
pub struct SubscriptionRequest {
    pub service_id: ServiceId,
    pub input: SubscriptionInput,
}

/// Why a subscription was not created, a post not recorded or a subscription not ended.
/// Each API words these its own way.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("no such service")]
    UnknownService,
    #[error("account not found")]
    UnknownAccount,
    #[error("this account is suspended and cannot place orders")]
    AccountSuspended,
    #[error("new orders to this service are paused by a critical refund-rate alert")]
    ServicePaused,
    #[error(
        "this account is in {account} but services are priced in {panel}; it cannot place orders"
    )]
    ForeignCurrency { account: String, panel: String },
    /// The hold (or a child's charge, once the hold is spent) does not fit the balance.
    #[error("{what} costs {amount} but the balance is {balance}")]
    InsufficientFunds {
        what: &'static str,
        amount: Money,
        balance: SignedMoney,
    },
    /// Every field the service's rules refuse.
    #[error("validation failed")]
    Invalid(Vec<SubscriptionFieldError>),
    #[error("no such subscription")]
    NotFound,
    /// The subscription has ended (or, for a post, has served every post).
    #[error("the subscription is {status}: {why}")]
    Ended {
        status: SubscriptionStatus,
        why: &'static str,
    },
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error(transparent)]
    Database(ApiError),
}

impl SubscriptionError {
    /// The problem code this refusal is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            SubscriptionError::UnknownService | SubscriptionError::Invalid(_) => {
                ErrorCode::ValidationFailed
            }
            SubscriptionError::UnknownAccount | SubscriptionError::NotFound => ErrorCode::NotFound,
            SubscriptionError::AccountSuspended => ErrorCode::AccountSuspended,
            SubscriptionError::ServicePaused => ErrorCode::ServicePaused,
            SubscriptionError::ForeignCurrency { .. } => ErrorCode::CurrencyMismatch,
            SubscriptionError::InsufficientFunds { .. } => ErrorCode::InsufficientFunds,
            SubscriptionError::Ended { .. } => ErrorCode::InvalidTransition,
            SubscriptionError::Idempotency(error) => error.code(),
            SubscriptionError::Database(error) => error.code(),
        }
    }
}

impl From<diesel::result::Error> for SubscriptionError {
    fn from(error: diesel::result::Error) -> SubscriptionError {
        SubscriptionError::Database(error.into())
    }
}

impl db::TxError for SubscriptionError {
    fn is_conflict(&self) -> bool {
        matches!(self, SubscriptionError::Database(error) if error.is_conflict())
    }

    fn from_write(error: db::writer::WriteError) -> SubscriptionError {
        SubscriptionError::Database(error.into())
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> SubscriptionError {
    SubscriptionError::Invalid(vec![SubscriptionFieldError {
        field,
        message: message.into(),
    }])
}

/// A subscription created by this call, or the answer stored under its idempotency key.
#[derive(Debug)]
pub enum Created {
    New(Box<Subscription>),
    Replayed(Replay),
}

/// Creates a subscription at most once per idempotency key: the key's claim, the
/// subscription, its hold (one ledger entry, available → held) and the stored answer
/// commit in one transaction. Its id is taken from the orders' sequence.
pub fn create(
    conn: &mut DbConnection,
    account_id: AccountId,
    request: SubscriptionRequest,
    key: Option<IdempotencyKey>,
) -> Result<Created, SubscriptionError> {
    let scope = match key.as_ref().map(|key| key.dialect) {
        // API v2 `add` makes orders and subscriptions under one key space.
        Some(Dialect::PanelV2) => "api_v2_add",
        Some(Dialect::Rest) | None => "create_subscription",
    };
    db::write_tx(conn, |conn| {
        let claim =
            match idempotency::claim::<SubscriptionError>(conn, account_id, scope, key.as_ref())? {
                Claimed::Replay(replay) => return Ok(Created::Replayed(replay)),
                Claimed::Proceed(claim) => claim,
            };
        let subscription = create_within(conn, account_id, request.clone())?;
        if let Some(claim) = claim {
            let body = match claim.dialect() {
                Dialect::Rest => {
                    serde_json::to_string(&SubscriptionResponse::new(&subscription, Vec::new()))
                }
                Dialect::PanelV2 => serde_json::to_string(&PanelOrderPlaced {
                    order: crate::domain::ids::OrderId(subscription.id.get()),
                }),
            }
            .map_err(|e| SubscriptionError::Database(ApiError::internal(e)))?;
            claim.store::<SubscriptionError>(conn, Answer::SubscriptionCreated, &body)?;
        }
        Ok(Created::New(Box::new(subscription)))
    })
}

/// The body of [`create`]. Call inside a write transaction.
pub fn create_within(
    conn: &mut db::WriteConn<'_>,
    account_id: AccountId,
    request: SubscriptionRequest,
) -> Result<Subscription, SubscriptionError> {
    let found = services::find_shared_for_order(conn, request.service_id, account_id)?;
    let status = match &found {
        Some(found) => found.status,
        None => accounts::find(conn, account_id)?.map(|account| account.status),
    };
    match status.ok_or(SubscriptionError::UnknownAccount)? {
        AccountStatus::Active => {}
        AccountStatus::Suspended => return Err(SubscriptionError::AccountSuspended),
    }
    let found = found.ok_or(SubscriptionError::UnknownService)?;
    if let Some((account, panel)) = found.foreign_currency {
        return Err(SubscriptionError::ForeignCurrency { account, panel });
    }
    if found.paused {
        return Err(SubscriptionError::ServicePaused);
    }
    let service = found.service;
    let today = chrono::Utc::now().date_naive();
    let planned = plan_subscription(
        account_id,
        &service,
        &service.subscription,
        request.input,
        today,
    )
    .map_err(SubscriptionError::Invalid)?;
    if service.provider.is_some() {
        // Refused when the service is saved; a stored one is not served either.
        return Err(invalid(
            "service_id",
            "subscriptions of a provider-backed service are not offered yet",
        ));
    }
    let id = subscriptions::next_id(conn)?;
    // Without a provider there is nothing to wait for: it is active at once.
    let subscription = subscriptions::insert(conn, id, &planned, SubscriptionStatus::Active)?;
    let hold = planned.hold.signed();
    let held = ledger::post_moves(
        conn,
        account_id,
        LedgerKind::SubscriptionHold,
        -planned.hold,
        hold,
        ledger::Refs::default(),
        Some(id),
    )?;
    if held.is_none() {
        let balance = accounts::find(conn, account_id)?.map_or(SignedMoney::ZERO, |a| a.balance);
        return Err(SubscriptionError::InsufficientFunds {
            what: "the subscription's hold",
            amount: planned.hold,
            balance,
        });
    }
    super::events::subscription_created(conn, &subscription)?;
    Ok(subscription)
}

/// A post an operator records for a subscription without a provider.
#[derive(Debug, Clone)]
pub struct Post {
    /// Says which post this is: the same key again records nothing new.
    pub key: String,
    /// The post's link.
    pub link: String,
    /// Units for this post (`min`..=`max`); the subscription's `max` when left out.
    pub quantity: Option<i64>,
}

/// A post's child order, and whether this call recorded it.
#[derive(Debug)]
pub struct Recorded {
    pub order: Order,
    pub subscription: Subscription,
    pub new: bool,
}

/// The most characters of a post key.
pub const MAX_POST_KEY_CHARS: usize = 200;

/// Records a post of a subscription as its child order, once per post key: the order,
/// its charge (from the hold while what is left covers it, else from the available
/// balance), the count of posts served and, with the last post, the subscription's end
/// and release — one transaction, under the subscription's row lock.
pub fn record_post(
    conn: &mut DbConnection,
    by: &Actor,
    id: SubscriptionId,
    post: Post,
) -> Result<Recorded, SubscriptionError> {
    // The outer result rolls the transaction back; the inner one is a refusal after a
    // change that commits (a subscription found past its expiry is ended first).
    db::write_tx(conn, |conn| {
        let sub = subscriptions::lock(conn, id)?.ok_or(SubscriptionError::NotFound)?;
        let key = parse_text(&post.key, MAX_POST_KEY_CHARS).map_err(|m| invalid("post_key", m))?;
        if let Some(order_id) = subscriptions::child_for_post(conn, id, &key)? {
            let order = orders::find(conn, order_id)?.ok_or(SubscriptionError::NotFound)?;
            return Ok(Ok(Recorded {
                order,
                subscription: sub,
                new: false,
            }));
        }
        if expire_if_due(conn, &sub)?.is_some() {
            return Ok(Err(SubscriptionError::Ended {
                status: SubscriptionStatus::Expired,
                why: "its expiry date has passed; it takes no more posts",
            }));
        }
        let recorded = record_child(conn, &sub, &key, &post.link, post.quantity)?;
        let target = Target::new(AuditTarget::Subscription, id.get(), Some(sub.account_id));
        let mut after = audit_json(&recorded.subscription);
        if let serde_json::Value::Object(fields) = &mut after {
            fields.insert("post_key".into(), key.clone().into());
            fields.insert("order".into(), audit::order(&recorded.order));
        }
        let change = audit::changed(audit_json(&sub), after);
        audit::record(
            conn,
            by,
            AuditAction::SubscriptionRecordPost,
            target,
            &change,
        )?;
        Ok(Ok(recorded))
    })
    .and_then(|recorded| recorded)
}

/// Ends a locked open subscription whose expiry has come as Expired, releasing what is
/// left of its hold (same transaction). Returns it ended, or `None` when it is not due.
fn expire_if_due(
    conn: &mut db::WriteConn<'_>,
    sub: &Subscription,
) -> Result<Option<Subscription>, SubscriptionError> {
    let now = chrono::Utc::now().naive_utc();
    if !sub.status.takes_posts() || sub.expires_at.is_none_or(|at| at > now) {
        return Ok(None);
    }
    end_within(
        conn,
        sub,
        SubscriptionStatus::Expired,
        Some("the expiry date came"),
    )
    .map(Some)
}

/// Records one child of a locked subscription. Call inside a write transaction.
fn record_child(
    conn: &mut db::WriteConn<'_>,
    sub: &Subscription,
    key: &str,
    link: &str,
    quantity: Option<i64>,
) -> Result<Recorded, SubscriptionError> {
    if !sub.status.takes_posts() {
        return Err(SubscriptionError::Ended {
            status: sub.status,
            why: "it takes no more posts",
        });
    }
    if sub.posts_served >= sub.posts_total() {
        return Err(SubscriptionError::Ended {
            status: sub.status,
            why: "every post has been served",
        });
    }
    let link = match parse_text(link, MAX_LINK_CHARS) {
        Ok(link) if link.chars().any(char::is_whitespace) => {
            return Err(invalid("link", "must not contain spaces"))
        }
        Ok(link) => link,
        Err(message) => return Err(invalid("link", message)),
    };
    let quantity = quantity.unwrap_or(sub.max);
    let charge = child_charge(sub, quantity).ok_or_else(|| {
        invalid(
            "quantity",
            format!(
                "must be between {} and {} for this subscription",
                sub.min, sub.max
            ),
        )
    })?;
    let order = orders::insert(
        conn,
        &NewOrder {
            account_id: sub.account_id,
            service_id: sub.service_id,
            kind: ServiceType::Subscriptions,
            link,
            quantity,
            runs: None,
            interval: None,
            fields: OrderFields::default(),
            charge,
            external_ref: None,
            subscription: Some((sub.id, key.to_string())),
        },
    )?;
    let refs = ledger::Refs {
        order_id: Some(order.id),
        ..Default::default()
    };
    let captured = if paid_from_hold(charge, sub.hold_left()) {
        // Its own order_charge entry, paid from the held balance.
        ledger::post_moves(
            conn,
            sub.account_id,
            LedgerKind::OrderCharge,
            SignedMoney::ZERO,
            -charge,
            refs,
            Some(sub.id),
        )?
        .ok_or_else(|| {
            SubscriptionError::Database(ApiError::internal(format!(
                "subscription {}: its hold left {} is not in the account's held balance",
                sub.id,
                sub.hold_left()
            )))
        })?;
        charge
    } else {
        // The hold is spent: paid from the available balance if it covers it.
        let paid = ledger::post(
            conn,
            sub.account_id,
            LedgerKind::OrderCharge,
            -charge,
            refs,
            ledger::Overdraft::Refuse,
        )?;
        if paid.is_none() {
            let balance =
                accounts::find(conn, sub.account_id)?.map_or(SignedMoney::ZERO, |a| a.balance);
            return Err(SubscriptionError::InsufficientFunds {
                what: "the post's child order (the hold is spent)",
                amount: charge,
                balance,
            });
        }
        Money::ZERO
    };
    let mut subscription = subscriptions::add_served(conn, sub.id, captured)?;
    super::events::order_created(conn, &order)?;
    super::events::subscription_child_created(conn, &subscription, &order, captured)?;
    if subscription.posts_served >= subscription.posts_total() {
        subscription = end_within(
            conn,
            &subscription,
            SubscriptionStatus::Completed,
            Some("every post served"),
        )?;
    }
    Ok(Recorded {
        order,
        subscription,
        new: true,
    })
}

/// Ends a locked subscription: what is still held goes back to the available balance
/// (one release entry) in the same transaction as the status change.
fn end_within(
    conn: &mut db::WriteConn<'_>,
    sub: &Subscription,
    status: SubscriptionStatus,
    reason: Option<&str>,
) -> Result<Subscription, SubscriptionError> {
    if !sub.status.can_become(status) || !status.is_terminal() {
        return Err(SubscriptionError::Ended {
            status: sub.status,
            why: "it cannot end again",
        });
    }
    let left = sub.hold_left();
    if !left.is_zero() {
        let amount = left.signed();
        ledger::post_moves(
            conn,
            sub.account_id,
            LedgerKind::SubscriptionRelease,
            amount,
            -left,
            ledger::Refs::default(),
            Some(sub.id),
        )?
        .ok_or_else(|| {
            SubscriptionError::Database(ApiError::internal(format!(
                "subscription {}: its hold left {left} is not in the account's held balance",
                sub.id
            )))
        })?;
    }
    let ended = subscriptions::set_status(conn, sub.id, status, left, reason)?;
    super::events::subscription_status_changed(conn, sub.status, &ended, left)?;
    Ok(ended)
}

/// A reseller's cancel of its own subscription: without a provider it ends at once and
/// what is still held is released. One whose expiry has already come ends as Expired.
pub fn cancel(
    conn: &mut DbConnection,
    account_id: AccountId,
    id: SubscriptionId,
) -> Result<Subscription, SubscriptionError> {
    db::write_tx(conn, |conn| {
        let sub = subscriptions::lock(conn, id)?
            .filter(|sub| sub.account_id == account_id)
            .ok_or(SubscriptionError::NotFound)?;
        if let Some(expired) = expire_if_due(conn, &sub)? {
            return Ok(expired);
        }
        end_within(
            conn,
            &sub,
            SubscriptionStatus::Canceled,
            Some("canceled by the reseller"),
        )
    })
}

/// An operator's local end of a subscription: canceled here (expired when its expiry has
/// already come), the hold released (an upstream, once there is one, is left as it is).
/// Audited.
pub fn end_by_operator(
    conn: &mut DbConnection,
    by: &Actor,
    id: SubscriptionId,
    reason: Option<String>,
) -> Result<Subscription, SubscriptionError> {
    db::write_tx(conn, |conn| {
        let sub = subscriptions::lock(conn, id)?.ok_or(SubscriptionError::NotFound)?;
        // One whose expiry has already come ends as Expired, as a reseller's cancel does.
        let ended = match expire_if_due(conn, &sub)? {
            Some(expired) => expired,
            None => {
                let reason = reason.as_deref().unwrap_or("ended by an operator");
                end_within(conn, &sub, SubscriptionStatus::Canceled, Some(reason))?
            }
        };
        let target = Target::new(AuditTarget::Subscription, id.get(), Some(sub.account_id));
        let change = audit::changed(audit_json(&sub), audit_json(&ended));
        audit::record(conn, by, AuditAction::SubscriptionEnd, target, &change)?;
        Ok(ended)
    })
}

/// Ends, one transaction each, up to `limit` open subscriptions whose time has come:
/// expired (the expiry date has begun, UTC) or with every post served. Returns how many
/// ended. One that cannot be ended is logged and skipped: the others still end. The
/// worker runs this periodically.
pub fn end_due(conn: &mut DbConnection, limit: i64) -> Result<usize, SubscriptionError> {
    let now = chrono::Utc::now().naive_utc();
    let due = subscriptions::due(conn, now, limit)?;
    let mut ended = 0;
    for id in due {
        let done = db::write_tx(conn, |conn| {
            let Some(sub) = subscriptions::lock(conn, id)? else {
                return Ok(false);
            };
            if !sub.status.takes_posts() {
                return Ok(false);
            }
            let (status, reason) = if sub.expires_at.is_some_and(|at| at <= now) {
                (SubscriptionStatus::Expired, "the expiry date came")
            } else if sub.posts_served >= sub.posts_total() {
                (SubscriptionStatus::Completed, "every post served")
            } else {
                return Ok(false);
            };
            end_within(conn, &sub, status, Some(reason)).map(|_| true)
        });
        match done {
            Ok(done) => ended += usize::from(done),
            Err(e) => tracing::error!(
                subscription = id.get(),
                error = %e,
                "could not end a subscription whose time has come; skipped until the next pass"
            ),
        }
    }
    Ok(ended)
}

/// Ends every open subscription of a disabled service as Canceled, what each still holds
/// released in the same transaction as its end (one transaction each, like the orders in
/// flight the disable refunds). Returns how many ended.
pub fn end_for_service(
    conn: &mut DbConnection,
    service_id: ServiceId,
) -> Result<usize, SubscriptionError> {
    let mut ended = 0;
    loop {
        let open = subscriptions::open_for_service(conn, service_id, 500)?;
        if open.is_empty() {
            return Ok(ended);
        }
        for id in open {
            let done = db::write_tx(conn, |conn| {
                let Some(sub) = subscriptions::lock(conn, id)? else {
                    return Ok(false);
                };
                if sub.status.is_terminal() {
                    return Ok(false);
                }
                end_within(
                    conn,
                    &sub,
                    SubscriptionStatus::Canceled,
                    Some("the service was disabled"),
                )
                .map(|_| true)
            })?;
            ended += usize::from(done);
        }
    }
}

/// A subscription's fields for the audit log.
fn audit_json(sub: &Subscription) -> serde_json::Value {
    serde_json::to_value(SubscriptionResponse::new(sub, Vec::new()))
        .unwrap_or(serde_json::Value::Null)
}
