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
    SubscriptionInput, SubscriptionStatus, UpstreamCancel,
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
    let id = subscriptions::next_id(conn)?;
    // Without a provider there is nothing to wait for: it is active at once. A
    // provider-backed one is pending until its provider takes the `add`.
    let status = match service.provider {
        Some(_) => SubscriptionStatus::Pending,
        None => SubscriptionStatus::Active,
    };
    let subscription = subscriptions::insert(conn, id, &planned, status)?;
    if let Some((provider_id, remote_service)) = &service.provider {
        // Sent by the worker once this transaction has committed, never inside it.
        let key = format!(
            "subscription-{}-{}",
            id.get(),
            crate::domain::api_key::random_token(8)
        );
        subscriptions::enqueue_upstream(conn, id, *provider_id, remote_service, &key)?;
    }
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
        if subscriptions::find_upstream(conn, id)?.is_some() {
            // Its provider reports its posts (the worker makes their children).
            return Err(invalid(
                "post_key",
                "this subscription is provider-backed: its provider reports its posts",
            ));
        }
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

/// Books a child's `charge` as its own `order_charge` entry paid from the subscription's
/// held balance (the hold covers it). Returns what was captured from the hold.
fn charge_from_hold(
    conn: &mut db::WriteConn<'_>,
    sub: &Subscription,
    charge: Money,
    refs: ledger::Refs,
) -> Result<Money, SubscriptionError> {
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
    Ok(charge)
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
        charge_from_hold(conn, sub, charge, refs)?
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
/// A provider-backed one is forwarded (see [`cancel_upstream`]) and comes back still open
/// unless its `add` had not been sent yet.
pub fn cancel(
    conn: &mut DbConnection,
    account_id: AccountId,
    id: SubscriptionId,
) -> Result<Subscription, SubscriptionError> {
    db::write_tx(conn, |conn| {
        let sub = subscriptions::lock(conn, id)?
            .filter(|sub| sub.account_id == account_id)
            .ok_or(SubscriptionError::NotFound)?;
        if let Some(upstream) = subscriptions::find_upstream(conn, id)? {
            return cancel_upstream(conn, &sub, &upstream);
        }
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
/// flight the disable refunds); a provider-backed one's cancel is forwarded to its
/// provider. Returns how many ended.
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
                )?;
                // Its provider is told too (a queued `add` is withdrawn, a sent one
                // canceled): it would go on making children nobody pays for.
                if subscriptions::find_upstream(conn, id)?.is_some()
                    && !subscriptions::withdraw_upstream(conn, id)?
                {
                    subscriptions::request_upstream_cancel(conn, id)?;
                }
                Ok::<_, SubscriptionError>(true)
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

// ---------------------------------------------------------------------------------------
// Upstream: what the provider worker learns of a provider-backed subscription, each
// applied inside the worker's fenced transaction (so a worker that lost its claim changes
// nothing).

/// The reason an open provider-backed subscription shows while its cancel waits for the
/// provider.
pub const CANCEL_REQUESTED: &str = "cancel requested: waiting for the provider's confirmation";

/// A reseller's cancel of a provider-backed subscription, inside the caller's transaction
/// (the subscription locked): an `add` still queued is withdrawn and the subscription ends
/// at once, its hold released; otherwise the cancel is forwarded by the worker and the hold
/// is released only when the provider confirms (cancel accepted, or status Canceled).
fn cancel_upstream(
    conn: &mut db::WriteConn<'_>,
    sub: &Subscription,
    upstream: &subscriptions::ProviderSubscription,
) -> Result<Subscription, SubscriptionError> {
    if sub.status.is_terminal() {
        return Err(SubscriptionError::Ended {
            status: sub.status,
            why: "it cannot end again",
        });
    }
    if subscriptions::withdraw_upstream(conn, sub.id)? {
        // Never sent: nothing upstream to cancel.
        return end_within(
            conn,
            sub,
            SubscriptionStatus::Canceled,
            Some("canceled by the reseller"),
        );
    }
    if !matches!(
        upstream.cancel,
        Some(UpstreamCancel::Requested | UpstreamCancel::Accepted)
    ) {
        subscriptions::request_upstream_cancel(conn, sub.id)?;
    }
    Ok(subscriptions::set_status(
        conn,
        sub.id,
        sub.status,
        Money::ZERO,
        Some(CANCEL_REQUESTED),
    )?)
}

/// The provider took the subscription's `add`: Pending → Active. One that ended here
/// meanwhile (an operator's local end) stays as it is.
pub fn upstream_accepted(
    conn: &mut db::WriteConn<'_>,
    id: SubscriptionId,
) -> Result<Subscription, SubscriptionError> {
    let sub = subscriptions::lock(conn, id)?.ok_or(SubscriptionError::NotFound)?;
    if sub.status != SubscriptionStatus::Pending {
        return Ok(sub);
    }
    let active = subscriptions::set_status(
        conn,
        id,
        SubscriptionStatus::Active,
        Money::ZERO,
        sub.status_reason.as_deref(),
    )?;
    super::events::subscription_status_changed(conn, sub.status, &active, Money::ZERO)?;
    Ok(active)
}

/// The provider refused the subscription's `add` in clear words: it ends as Error, its
/// hold released in the same transaction.
pub fn upstream_refused(
    conn: &mut db::WriteConn<'_>,
    id: SubscriptionId,
    words: &str,
) -> Result<Subscription, SubscriptionError> {
    let sub = subscriptions::lock(conn, id)?.ok_or(SubscriptionError::NotFound)?;
    if sub.status.is_terminal() {
        return Ok(sub);
    }
    let reason = format!(
        "the provider refused the subscription: {}",
        clip(words, 300)
    );
    end_within(conn, &sub, SubscriptionStatus::Failed, Some(&reason))
}

/// The provider refused a forwarded cancel: an open subscription stays open with the
/// provider's words as its reason (the reseller sees them). One that already ended here (an
/// operator's end, a disabled service) has no reason to show them in: the refusal is logged
/// as an error for the operators (the provider goes on making children, booked as they come)
/// and kept on the provider row's `last_error` by the caller.
pub fn upstream_cancel_refused(
    conn: &mut db::WriteConn<'_>,
    id: SubscriptionId,
    words: &str,
) -> Result<Subscription, SubscriptionError> {
    let sub = subscriptions::lock(conn, id)?.ok_or(SubscriptionError::NotFound)?;
    if sub.status.is_terminal() {
        tracing::error!(
            subscription = id.get(),
            words = %clip(words, 300),
            "the provider refused to cancel a subscription that ended here; its children are still booked"
        );
        return Ok(sub);
    }
    let reason = format!("the provider refused the cancel: {}", clip(words, 300));
    Ok(subscriptions::set_status(
        conn,
        id,
        sub.status,
        Money::ZERO,
        Some(&reason),
    )?)
}

/// What a provider's `status` says of one of its subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamReport {
    /// `None`: a status word we do not know (its children are booked all the same).
    pub status: Option<SubscriptionStatus>,
    /// The provider's ids of the child orders it made so far, in its order.
    pub children: Vec<String>,
}

/// What applying an [`UpstreamReport`] did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The subscription after it (`None`: gone).
    pub subscription: Option<Subscription>,
    /// Child orders made by this report.
    pub children: Vec<Order>,
    /// A child came after the hold was spent: the subscription is to be canceled upstream.
    pub cancel_upstream: bool,
    /// Children made past the hold that the available balance did not cover: charged
    /// below zero.
    pub unpaid: Vec<crate::domain::ids::OrderId>,
}

/// Applies a provider's report on a subscription, inside the worker's fenced transaction:
/// each child id not seen before becomes one local child order (paid from the hold; past
/// it, from the available balance, and the subscription is to be canceled upstream), then
/// the status (`None`: a word we do not know, quarantined by the caller): Active ⇄ Paused
/// as reported; Completed, Expired or Canceled end it, what is still held released; a
/// cancel the provider accepted (`cancel_accepted`) ends it Canceled once its children are
/// booked. A subscription that already ended here still has its children booked (the
/// provider made and bills them; the hold is gone, so they are paid from the available
/// balance or queued unpaid for review); only its status stays as it is.
pub fn apply_upstream_report(
    conn: &mut db::WriteConn<'_>,
    provider: &crate::domain::provider::Provider,
    upstream: &subscriptions::ProviderSubscription,
    report: &UpstreamReport,
) -> Result<Applied, SubscriptionError> {
    let id = upstream.subscription_id;
    let Some(mut sub) = subscriptions::lock(conn, id)? else {
        return Ok(Applied::default());
    };
    let mut applied = Applied::default();
    for remote in &report.children {
        if subscriptions::upstream_child(conn, provider.id, remote)?.is_some() {
            continue;
        }
        let mut unpaid = false;
        let child = record_upstream_child(conn, provider, upstream, &sub, remote, &mut unpaid)?;
        applied.cancel_upstream |= child.beyond_hold;
        if unpaid {
            applied.unpaid.push(child.order.id);
        }
        applied.children.push(*child.order);
        sub = *child.subscription;
    }
    if sub.status.is_terminal() {
        applied.subscription = Some(sub);
        return Ok(applied);
    }
    if let Some(reported) = report.status.filter(|reported| *reported != sub.status) {
        if reported.is_terminal() {
            let reason = format!("the provider reports it {}", reported.panel_name());
            sub = end_within(conn, &sub, reported, Some(&reason))?;
        } else if sub.status.can_become(reported) {
            let before = sub.status;
            sub = subscriptions::set_status(
                conn,
                id,
                reported,
                Money::ZERO,
                sub.status_reason.as_deref(),
            )?;
            super::events::subscription_status_changed(conn, before, &sub, Money::ZERO)?;
        }
    }
    if !sub.status.is_terminal() && upstream.cancel == Some(UpstreamCancel::Accepted) {
        sub = end_within(
            conn,
            &sub,
            SubscriptionStatus::Canceled,
            Some("canceled by the reseller; the provider confirmed"),
        )?;
    }
    applied.subscription = Some(sub);
    Ok(applied)
}

/// The note of the review-queue entry of a child charged below zero.
pub const UNPAID_CHILD_NOTE: &str = "unpaid: a subscription's child reported after its hold \
    was spent, not covered by the balance (charged below zero); approve to forgive the \
    charge, reject to keep the debt";

/// The note of the review-queue entry of a child whose Partial its provider's charge
/// cannot settle.
pub const UNSETTLED_CHILD_NOTE: &str = "partial: a subscription's child the provider \
    reports Partial, whose undelivered share its charge cannot tell (no provider rate, \
    another currency, a charge above the one for max); approve with the amount to refund";

/// Puts `amount` of a child order on the operators' review queue: a refund in
/// `pending_review` with `note`, decided there like a dispute.
fn queue_for_review(
    conn: &mut db::WriteConn<'_>,
    order: &Order,
    amount: Money,
    note: &str,
) -> Result<(), diesel::result::Error> {
    let review = db::refunds::insert(
        conn,
        &db::refunds::NewRefund {
            account_id: order.account_id,
            order_id: Some(order.id),
            top_up_id: None,
            amount,
            reason: crate::domain::refund::RefundReason::Other,
            status: crate::domain::refund::RefundStatus::PendingReview,
            source: crate::domain::refund::RefundSource::Automatic,
            note: Some(note.to_string()),
            decided_by: None,
        },
    )?;
    super::events::refund(
        conn,
        crate::domain::event::EventType::RefundPendingReview,
        &review,
        Some(order),
        None,
    )?;
    Ok(())
}

/// A subscription's child the provider reports Partial whose undelivered share cannot be
/// told from its charge: rather than polled until the worker gives up (the reseller never
/// refunded), its whole refundable charge goes on the operators' review queue, where an
/// approval with the right amount refunds it through the one refund rule. Inside the
/// worker's fenced transaction; the caller stops polling it.
pub fn unsettled_child_to_review(
    conn: &mut db::WriteConn<'_>,
    order_id: crate::domain::ids::OrderId,
) -> Result<(), diesel::result::Error> {
    let Some(order) = orders::lock(conn, order_id, None)? else {
        return Ok(());
    };
    let refundable = order.refundable();
    if order.subscription_id.is_none() || refundable.is_zero() {
        return Ok(());
    }
    tracing::warn!(
        order = order.id.get(),
        "a subscription's Partial child cannot be settled from its charge: on the review queue"
    );
    queue_for_review(conn, &order, refundable, UNSETTLED_CHILD_NOTE)
}

/// A child the provider reported, as recorded.
struct UpstreamChild {
    order: Box<Order>,
    subscription: Box<Subscription>,
    /// Paid from the available balance: the hold was spent.
    beyond_hold: bool,
}

/// Records one child the provider made for a locked open subscription: an order of `max`
/// units (the provider gives no quantity; a Partial is refunded by what its final charge
/// leaves unbilled), paid from the hold while what is left covers it whole, else from the
/// available balance (below zero if it must: the provider delivered it). It is already
/// accepted upstream: its provider row is `sent` under
/// the provider's id, so the status poll follows it and it is never sent with `add`.
fn record_upstream_child(
    conn: &mut db::WriteConn<'_>,
    provider: &crate::domain::provider::Provider,
    upstream: &subscriptions::ProviderSubscription,
    sub: &Subscription,
    remote: &str,
    unpaid: &mut bool,
) -> Result<UpstreamChild, SubscriptionError> {
    let quantity = sub.max;
    let charge = child_charge(sub, quantity).ok_or_else(|| {
        SubscriptionError::Database(ApiError::internal(format!(
            "subscription {}: a child of its max {} cannot be priced",
            sub.id, sub.max
        )))
    })?;
    let from_hold = paid_from_hold(charge, sub.hold_left());
    let order = orders::insert(
        conn,
        &NewOrder {
            account_id: sub.account_id,
            service_id: sub.service_id,
            kind: ServiceType::Subscriptions,
            link: sub.username.clone(),
            quantity,
            runs: None,
            interval: None,
            fields: OrderFields::default(),
            charge,
            external_ref: None,
            subscription: Some((sub.id, format!("upstream:{remote}"))),
        },
    )?;
    subscriptions::insert_upstream_child(conn, provider.id, remote, sub.id, order.id)?;
    let refs = ledger::Refs {
        order_id: Some(order.id),
        ..Default::default()
    };
    let captured = if from_hold {
        charge_from_hold(conn, sub, charge, refs)?
    } else {
        // The provider delivered it: it is recorded whatever the balance. Paid from the
        // available balance if that covers it; else charged all the same, the balance
        // going below zero (a debt, like a chargeback's), and logged for the operators.
        let paid = ledger::post(
            conn,
            sub.account_id,
            LedgerKind::OrderCharge,
            -charge,
            refs,
            ledger::Overdraft::Refuse,
        )?;
        if paid.is_none() {
            ledger::post(
                conn,
                sub.account_id,
                LedgerKind::OrderCharge,
                -charge,
                refs,
                ledger::Overdraft::Allow,
            )?;
            // Unpaid for now: on the operators' review queue, as a waiver to decide
            // (approve: the charge refunded, the debt forgiven; reject: the debt stands).
            queue_for_review(conn, &order, charge, UNPAID_CHILD_NOTE)?;
            tracing::warn!(
                subscription = sub.id.get(),
                order = order.id.get(),
                account = sub.account_id.get(),
                %charge,
                "a child reported after the hold was spent is not covered by the balance: charged below zero, on the review queue"
            );
            *unpaid = true;
        }
        Money::ZERO
    };
    let subscription = subscriptions::add_served(conn, sub.id, captured)?;
    // Accepted upstream already: tracked by the provider's id and polled, never sent.
    let key = format!("subscription-child-{}", order.id);
    db::provider_orders::enqueue(
        conn,
        order.id,
        provider.id,
        &upstream.provider_service_id,
        &key,
    )?;
    db::provider_orders::adopt_acceptance(conn, order.id, remote)?;
    super::costs::record_send(conn, provider, &order)?;
    super::events::order_created(conn, &order)?;
    super::events::subscription_child_created(conn, &subscription, &order, captured)?;
    Ok(UpstreamChild {
        order: Box::new(order),
        subscription: Box::new(subscription),
        beyond_hold: !from_hold,
    })
}

fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
