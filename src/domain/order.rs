use chrono::NaiveDateTime;

use super::money::{charge_for, least_charged_units, Money};
use super::order_fields::{self, FieldProblem, OrderField, OrderFields};
use super::service::{QuantityRule, Service, ServiceStatus, ServiceType};
use super::{parse_text, string_enum, FieldError};
use crate::domain::ids::{AccountId, OrderId, ServiceId, SubscriptionId};

/// What the refund rule (`domain::refund`) needs to know of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderBook {
    pub charge: Money,
    /// Units the charge paid for: quantity × runs.
    pub units: i64,
    pub status: OrderStatus,
    pub remains: Option<i64>,
    pub approved_disputes: Money,
    pub refunded: Money,
    /// A flat-price order (one package): a Partial is not refunded by units, since the
    /// provider's remains are in units the price does not count.
    pub flat: bool,
}

string_enum! {
    /// Where an order stands. Terminal: completed, partial, canceled.
    OrderStatus {
        Pending => "pending",
        Processing => "processing",
        InProgress => "in_progress",
        Completed => "completed",
        Partial => "partial",
        Canceled => "canceled",
    }
}

impl OrderStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Completed | OrderStatus::Partial | OrderStatus::Canceled
        )
    }

    /// The spelling of the panel API v2 dialect.
    pub fn panel_name(self) -> &'static str {
        match self {
            OrderStatus::Pending => "Pending",
            OrderStatus::Processing => "Processing",
            OrderStatus::InProgress => "In progress",
            OrderStatus::Completed => "Completed",
            OrderStatus::Partial => "Partial",
            OrderStatus::Canceled => "Canceled",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Order {
    pub id: OrderId,
    pub account_id: AccountId,
    pub service_id: ServiceId,
    /// The service's type when the order was placed: it says which fields the order has
    /// and how it was priced, whatever the service becomes later.
    pub kind: ServiceType,
    pub link: String,
    pub quantity: i64,
    pub runs: Option<i64>,
    pub interval: Option<i64>,
    /// The type's fields, as cleaned when the order was placed.
    pub fields: OrderFields,
    pub charge: Money,
    pub refunded: Money,
    pub status: OrderStatus,
    pub start_count: Option<i64>,
    pub remains: Option<i64>,
    pub external_ref: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Dispute amounts an operator approved; part of what the order is owed.
    pub approved_disputes: Money,
    /// The subscription this order serves a post of, if it is a child order.
    pub subscription_id: Option<SubscriptionId>,
}

impl Order {
    /// What could still be refunded: the charge not yet returned.
    pub fn refundable(&self) -> Money {
        self.charge.saturating_sub(self.refunded)
    }

    /// Units the charge paid for: quantity × runs.
    pub fn units(&self) -> i64 {
        self.quantity.saturating_mul(self.runs.unwrap_or(1))
    }

    /// Units not delivered as a reseller is told them on the REST API: null where unknown.
    /// A terminal status settles the question whatever was reported before it: a stale
    /// "in progress" count must not survive completion (a panel stores and shows it), and
    /// a canceled order is refunded in full, so nothing of it counts as delivered.
    /// Otherwise what was stored, as reported (negative for over-delivery).
    pub fn remains_known(&self) -> Option<i64> {
        match self.status {
            OrderStatus::Completed => Some(0),
            OrderStatus::Canceled => Some(self.units()),
            OrderStatus::Pending
            | OrderStatus::Processing
            | OrderStatus::InProgress
            | OrderStatus::Partial => self.remains,
        }
    }

    /// Units not delivered as API v2 answers them, where the dialect has no "unknown":
    /// the total until a report says otherwise, and nothing while pending (a provider's
    /// `"remains":"0"` on a pending order means "not started", not "delivered").
    /// Reports are clamped to the order, as the refund rule counts them, so a client
    /// panel that refunds by `remains` refunds what we did.
    pub fn remains_or_total(&self) -> i64 {
        let units = self.units();
        match self.status {
            OrderStatus::Pending => units,
            // A flat order's Partial is decided by an operator: nothing is undelivered as a
            // client panel counts it until the whole charge came back (a part approved
            // cannot be said in units of one package).
            OrderStatus::Partial if self.kind.is_flat() => {
                if self.refunded >= self.charge {
                    units
                } else {
                    0
                }
            }
            _ => self.remains_known().unwrap_or(units).clamp(0, units.max(0)),
        }
    }

    /// Drip-feed only: the runs delivered so far. Providers report no runs, only units,
    /// so partly delivered orders count whole runs: a run with any unit undelivered is
    /// not delivered. Client panels refund a drip-feed partial by the share of runs not
    /// delivered, so their refund is never smaller than ours by units.
    pub fn runs_delivered(&self) -> Option<i64> {
        let runs = self.runs?;
        let undelivered = self.remains_or_total();
        let per_run = self.quantity.max(1);
        let runs_undelivered = undelivered / per_run + i64::from(undelivered % per_run != 0);
        Some((runs - runs_undelivered).clamp(0, runs.max(0)))
    }

    /// The order as the refund rule sees it.
    pub fn book(&self) -> OrderBook {
        OrderBook {
            charge: self.charge,
            units: self.units(),
            status: self.status,
            remains: self.remains,
            approved_disputes: self.approved_disputes,
            refunded: self.refunded,
            flat: self.kind.is_flat(),
        }
    }
}

/// What a reseller asked for, as typed on the wire, before any rule is applied.
#[derive(Debug, Clone, Default)]
pub struct OrderInput {
    pub link: String,
    pub quantity: Option<i64>,
    pub runs: Option<i64>,
    pub interval: Option<i64>,
    /// The type's fields as sent (see [`order_fields::check`]).
    pub fields: OrderFields,
    pub external_ref: Option<String>,
}

/// An order that passed every rule of its service and is priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub account_id: AccountId,
    pub service_id: ServiceId,
    pub kind: ServiceType,
    pub link: String,
    pub quantity: i64,
    pub runs: Option<i64>,
    pub interval: Option<i64>,
    pub fields: OrderFields,
    pub charge: Money,
    pub external_ref: Option<String>,
    /// A subscription's child order: the subscription and the key of the post it serves.
    pub subscription: Option<(SubscriptionId, String)>,
}

pub const MAX_LINK_CHARS: usize = 2048;
pub const MAX_RUNS: i64 = 10_000;
/// Drip-feed interval in minutes: at most 30 days.
pub const MAX_INTERVAL_MINUTES: i64 = 43_200;

/// Why a field of an order request is refused: one variant per rule, so each API words it
/// its own way (REST as a [`FieldError`], API v2 in its dialect) without reading text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderFieldError {
    #[error("service is disabled and takes no new orders")]
    ServiceDisabled,
    /// A subscriptions service takes subscriptions, not single orders.
    #[error("this service sells subscriptions: create a subscription instead of an order")]
    SubscriptionsOnly,
    /// The link is empty, too long or holds control characters (`reason` says which).
    #[error("{reason}")]
    BadLink { reason: String },
    #[error("must not contain spaces")]
    LinkHasSpaces,
    /// A type field is missing, not taken by the service's type, or malformed.
    #[error("{problem}")]
    Field {
        field: OrderField,
        problem: FieldProblem,
    },
    /// The quantity of a type that counts it from a list differs from the count.
    #[error("must equal the number of {field} lines ({count}) or be omitted")]
    QuantityNotCount { field: OrderField, count: i64 },
    /// A flat-price order is one package.
    #[error("must be 1 or omitted: this service sells one package at a flat price")]
    QuantityNotOne,
    #[error("is required")]
    QuantityRequired,
    #[error("must be between {min} and {max} for this service")]
    QuantityOutOfRange { min: i64, max: i64 },
    #[error("the order total is larger than any balance can hold")]
    TotalTooLarge,
    #[error("this service does not offer drip-feed")]
    DripFeedNotOffered,
    #[error("must be between 2 and {MAX_RUNS}")]
    RunsOutOfRange,
    #[error("must be between 1 and {MAX_INTERVAL_MINUTES} minutes")]
    IntervalOutOfRange,
    #[error("is required with runs")]
    IntervalRequired,
    #[error("is required with interval")]
    RunsRequired,
    #[error("{reason}")]
    BadExternalRef { reason: String },
    /// The rate and quantity price the order below one micro-unit: it would be free,
    /// though the service is not. `least` is the smallest quantity that costs something.
    #[error("an order of {units} units at this service's rate costs less than 0.000001; the least that costs something is {least}")]
    ChargeTooSmall { units: i64, least: i64 },
}

impl OrderFieldError {
    /// The request field at fault, as the REST API names it.
    pub fn field(&self) -> &'static str {
        use OrderFieldError::*;
        match self {
            ServiceDisabled | SubscriptionsOnly => "service_id",
            BadLink { .. } | LinkHasSpaces => "link",
            Field { field, .. } => field.as_str(),
            QuantityNotCount { .. }
            | QuantityNotOne
            | QuantityRequired
            | QuantityOutOfRange { .. }
            | TotalTooLarge
            | ChargeTooSmall { .. } => "quantity",
            DripFeedNotOffered | RunsOutOfRange | RunsRequired => "runs",
            IntervalOutOfRange | IntervalRequired => "interval",
            BadExternalRef { .. } => "external_ref",
        }
    }
}

impl From<&OrderFieldError> for FieldError {
    fn from(error: &OrderFieldError) -> FieldError {
        FieldError::new(error.field(), error.to_string())
    }
}

/// Applies the service's rules to an order request and prices it, reporting every
/// failing field at once, in the order of the fields.
pub fn plan_order(
    account_id: AccountId,
    service: &Service,
    input: OrderInput,
) -> Result<NewOrder, Vec<OrderFieldError>> {
    use OrderFieldError as E;
    let mut errors = Vec::new();
    if service.kind == ServiceType::Subscriptions {
        return Err(vec![E::SubscriptionsOnly]);
    }
    if service.status != ServiceStatus::Active {
        errors.push(E::ServiceDisabled);
    }

    let link = match parse_text(&input.link, MAX_LINK_CHARS) {
        Ok(link) if link.chars().any(char::is_whitespace) => {
            errors.push(E::LinkHasSpaces);
            None
        }
        Ok(link) => Some(link),
        Err(reason) => {
            errors.push(E::BadLink { reason });
            None
        }
    };

    let fields = match order_fields::check(service.kind, &input.fields) {
        Ok(fields) => Some(fields),
        Err(problems) => {
            errors.extend(
                problems
                    .into_iter()
                    .map(|(field, problem)| E::Field { field, problem }),
            );
            None
        }
    };
    let quantity = match service.kind.quantity_rule() {
        QuantityRule::PerThousand => {
            if input.quantity.is_none() {
                errors.push(E::QuantityRequired);
            }
            input.quantity
        }
        // Counted from the list; a list that failed its checks has no count to compare.
        QuantityRule::CountOf(field) => fields.as_ref().and_then(|fields| {
            let count = fields.count(field);
            match input.quantity {
                Some(q) if q != count => {
                    errors.push(E::QuantityNotCount { field, count });
                    None
                }
                _ => Some(count),
            }
        }),
        QuantityRule::Flat => match input.quantity {
            Some(q) if q != 1 => {
                errors.push(E::QuantityNotOne);
                None
            }
            _ => Some(1),
        },
    };
    if let (Some(q), false) = (quantity, service.kind.is_flat()) {
        if q < service.min_quantity || q > service.max_quantity {
            errors.push(E::QuantityOutOfRange {
                min: service.min_quantity,
                max: service.max_quantity,
            });
        }
    }

    match (input.runs, input.interval) {
        (None, None) => {}
        (Some(_), _) | (_, Some(_)) if !service.dripfeed => {
            errors.push(E::DripFeedNotOffered);
        }
        (Some(runs), Some(interval)) => {
            if !(2..=MAX_RUNS).contains(&runs) {
                errors.push(E::RunsOutOfRange);
            }
            if !(1..=MAX_INTERVAL_MINUTES).contains(&interval) {
                errors.push(E::IntervalOutOfRange);
            }
        }
        (Some(_), None) => errors.push(E::IntervalRequired),
        (None, Some(_)) => errors.push(E::RunsRequired),
    }

    let external_ref = match input.external_ref.as_deref().map(|r| parse_text(r, 200)) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(reason)) => {
            errors.push(E::BadExternalRef { reason });
            None
        }
    };

    let (Some(link), Some(quantity), Some(fields), true) =
        (link, quantity, fields, errors.is_empty())
    else {
        // A missing link, quantity or field always records an error.
        return Err(errors);
    };
    let units = quantity * input.runs.unwrap_or(1);
    let charge = if service.kind.is_flat() {
        service.rate
    } else {
        charge_for(service.rate, units).ok_or_else(|| vec![E::TotalTooLarge])?
    };
    if charge.is_zero() && !service.rate.is_zero() {
        // A free order is an operator's choice (a rate of 0), never a rounding.
        let runs = input.runs.unwrap_or(1);
        let least = (least_charged_units(service.rate) + runs - 1) / runs;
        return Err(vec![E::ChargeTooSmall { units, least }]);
    }
    Ok(NewOrder {
        account_id,
        service_id: service.id,
        kind: service.kind,
        link,
        quantity,
        runs: input.runs,
        interval: input.interval,
        fields,
        charge,
        external_ref,
        subscription: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(kind: ServiceType) -> Service {
        let now = chrono::Utc::now().naive_utc();
        Service {
            id: ServiceId(7),
            name: "Likes".into(),
            category: "Instagram".into(),
            kind,
            dripfeed: false,
            rate: Money::parse("0.9").unwrap(),
            min_quantity: 10,
            max_quantity: 10_000,
            refill: false,
            refill_days: 30,
            cancel: true,
            status: ServiceStatus::Active,
            created_at: now,
            updated_at: now,
            provider: None,
            description: None,
            subscription: Default::default(),
        }
    }

    fn input(quantity: i64) -> OrderInput {
        OrderInput {
            link: "https://example.com/p/1".into(),
            quantity: Some(quantity),
            ..OrderInput::default()
        }
    }

    fn order(status: OrderStatus, quantity: i64, runs: Option<i64>, remains: Option<i64>) -> Order {
        let now = chrono::Utc::now().naive_utc();
        Order {
            id: OrderId(1),
            account_id: AccountId(1),
            service_id: ServiceId(7),
            kind: ServiceType::Default,
            link: "https://example.com/p/1".into(),
            quantity,
            runs,
            interval: runs.map(|_| 30),
            fields: OrderFields::default(),
            charge: Money::parse("1").unwrap(),
            refunded: Money::ZERO,
            status,
            start_count: None,
            remains,
            external_ref: None,
            created_at: now,
            updated_at: now,
            approved_disputes: Money::ZERO,
            subscription_id: None,
        }
    }

    /// (status, stored remains) → (REST remains, API v2 remains), for 1000 units.
    #[test]
    fn remains_by_status() {
        use OrderStatus::*;
        let cases = [
            (Completed, None, Some(0), 0),
            (Completed, Some(400), Some(0), 0),
            (Completed, Some(-20), Some(0), 0),
            (Canceled, None, Some(1000), 1000),
            (Canceled, Some(400), Some(1000), 1000),
            (Partial, Some(157), Some(157), 157),
            (Partial, Some(-20), Some(-20), 0),
            (Partial, Some(5000), Some(5000), 1000),
            (Pending, None, None, 1000),
            (Pending, Some(0), Some(0), 1000),
            (Processing, None, None, 1000),
            (Processing, Some(600), Some(600), 600),
            (InProgress, None, None, 1000),
            (InProgress, Some(333), Some(333), 333),
            (InProgress, Some(-20), Some(-20), 0),
        ];
        for (status, stored, rest, v2) in cases {
            let o = order(status, 1000, None, stored);
            assert_eq!(o.remains_known(), rest, "{status:?} {stored:?}");
            assert_eq!(o.remains_or_total(), v2, "{status:?} {stored:?}");
            assert_eq!(o.runs_delivered(), None);
        }
    }

    /// Drip-feed: 100 × 5 runs. (status, stored remains) → (API v2 remains, runs delivered).
    #[test]
    fn drip_feed_counts_whole_runs() {
        use OrderStatus::*;
        let cases = [
            (Completed, Some(300), 0, 5),
            (Canceled, Some(0), 500, 0),
            (Pending, Some(0), 500, 0),
            (InProgress, None, 500, 0),
            (InProgress, Some(200), 200, 3),
            (InProgress, Some(201), 201, 2),
            (Partial, Some(199), 199, 3),
            (Partial, Some(1), 1, 4),
            (Partial, Some(0), 0, 5),
            (Partial, Some(-40), 0, 5),
            (Partial, Some(900), 500, 0),
        ];
        for (status, stored, remains, runs) in cases {
            let o = order(status, 100, Some(5), stored);
            assert_eq!(o.remains_or_total(), remains, "{status:?} {stored:?}");
            assert_eq!(o.runs_delivered(), Some(runs), "{status:?} {stored:?}");
        }
        assert_eq!(
            order(Canceled, 100, Some(5), None).remains_known(),
            Some(500)
        );
    }

    #[test]
    fn prices_rate_per_thousand() {
        let order = plan_order(AccountId(1), &service(ServiceType::Default), input(1234)).unwrap();
        assert_eq!(order.charge.micros(), 1_110_600);
    }

    #[test]
    fn drip_feed_charges_quantity_times_runs() {
        let mut req = input(100);
        req.runs = Some(5);
        req.interval = Some(30);
        let mut svc = service(ServiceType::Default);
        svc.dripfeed = true;
        let order = plan_order(AccountId(1), &svc, req).unwrap();
        assert_eq!(order.charge.micros(), 450_000);
    }

    #[test]
    fn custom_comments_count_lines() {
        let mut req = input(0);
        req.quantity = None;
        req.fields.comments = Some(vec!["nice\n\n  great  \nwow\n".into()]);
        let mut svc = service(ServiceType::CustomComments);
        svc.min_quantity = 1;
        let order = plan_order(AccountId(1), &svc, req).unwrap();
        assert_eq!(order.quantity, 3);
        assert_eq!(
            order.fields.comments,
            Some(vec!["nice".into(), "great".into(), "wow".into()])
        );
        assert_eq!(order.charge.micros(), 2_700);
    }

    #[test]
    fn flat_types_charge_the_rate_once() {
        let mut svc = service(ServiceType::Package);
        svc.rate = Money::parse("12.5").unwrap();
        let mut req = input(1);
        let order = plan_order(AccountId(1), &svc, req.clone()).unwrap();
        assert_eq!((order.quantity, order.charge.micros()), (1, 12_500_000));
        req.quantity = None;
        assert!(plan_order(AccountId(1), &svc, req.clone()).is_ok());
        req.quantity = Some(100);
        assert_eq!(
            plan_order(AccountId(1), &svc, req).unwrap_err(),
            vec![OrderFieldError::QuantityNotOne]
        );
    }

    #[test]
    fn derived_quantity_must_match_the_list() {
        let mut svc = service(ServiceType::MentionsCustomList);
        svc.min_quantity = 1;
        let mut req = input(3);
        req.fields.usernames = Some(vec!["@a\nb".into()]);
        assert_eq!(
            plan_order(AccountId(1), &svc, req).unwrap_err(),
            vec![OrderFieldError::QuantityNotCount {
                field: OrderField::Usernames,
                count: 2
            }]
        );
    }

    #[test]
    fn reports_every_failing_field() {
        let req = OrderInput {
            link: " ".into(),
            quantity: Some(5),
            runs: Some(3),
            ..OrderInput::default()
        };
        let errors = plan_order(AccountId(1), &service(ServiceType::Default), req).unwrap_err();
        let fields: Vec<_> = errors.iter().map(OrderFieldError::field).collect();
        assert_eq!(fields, vec!["link", "quantity", "runs"]);
        assert_eq!(
            errors,
            vec![
                OrderFieldError::BadLink {
                    reason: "must not be empty".into()
                },
                OrderFieldError::QuantityOutOfRange {
                    min: 10,
                    max: 10_000
                },
                OrderFieldError::DripFeedNotOffered,
            ]
        );
        // The REST problem's words, unchanged.
        let messages: Vec<_> = errors.iter().map(|e| FieldError::from(e).message).collect();
        assert_eq!(
            messages,
            vec![
                "must not be empty",
                "must be between 10 and 10000 for this service",
                "this service does not offer drip-feed",
            ]
        );
    }
}
