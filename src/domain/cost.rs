//! What a forwarded order cost us, and whether the provider gave back what we refunded.
//!
//! Amounts come in two currencies: the provider's (as it bills) and the panel's (converted
//! with the order's exchange rate, `ExchangeRate::convert`, half-up to the micro-unit).
//! Revenue is our charge minus our refunds; cost is the provider's latest reported charge
//! (the expected cost until one is reported); margin is revenue minus cost.

use chrono::NaiveDateTime;

use super::money::{ExchangeRate, Money, SignedMoney};
use super::string_enum;

string_enum! {
    /// Where the refund recovery of an order stands: `watching` (we refunded because the
    /// provider reported Partial or Canceled; its lowered `charge` is awaited until the
    /// watch window ends), `recovered` (its charge fell by the matching share of the
    /// expected cost, within its rounding), `unrecovered` (the window ended short) or
    /// `to_balance` (the provider credits its balance instead of lowering `charge`, so the
    /// credit is owed through its balance and cannot be read from its replies).
    Recovery {
        Watching => "watching",
        Recovered => "recovered",
        Unrecovered => "unrecovered",
        ToBalance => "to_balance",
    }
}

/// How far a provider's lowered charge may fall short of the expected credit and still
/// count as recovered: its rounding, in its own currency (four decimals is common, so one
/// unit of the fourth decimal), beside the micro-unit our share is floored to.
pub const PROVIDER_ROUNDING: &str = "0.0001";

/// One forwarded order's cost, as stored beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderCost {
    /// The provider's currency at send time.
    pub currency: String,
    /// The rate the order was priced with: panel units per provider unit at send time.
    pub exchange_rate: ExchangeRate,
    /// The provider's rate × the quantity at send time (`None`: no provider rate is known
    /// for the service, e.g. one made by hand rather than by a sync).
    pub expected_cost_provider: Option<Money>,
    pub expected_cost: Option<Money>,
    /// The provider's `charge` in its first and latest status reply.
    pub first_charge_provider: Option<Money>,
    pub first_charge: Option<Money>,
    pub latest_charge_provider: Option<Money>,
    pub latest_charge: Option<Money>,
    pub charge_reported_at: Option<NaiveDateTime>,
    /// The provider's charge as it stood before the first refund its status made us pay
    /// (`None`: it reported none before): what a recovery is measured from.
    pub baseline_charge_provider: Option<Money>,
    /// What we refunded the reseller because the provider reported Partial or Canceled.
    pub provider_refunded: Money,
    pub recovery: Option<Recovery>,
    pub watch_until: Option<NaiveDateTime>,
}

/// Revenue, cost and margin of one order, in the panel's currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Margin {
    pub revenue: Money,
    pub cost: Option<Money>,
    pub margin: Option<SignedMoney>,
}

/// What a refund recovery stands at, in the panel's currency (converted from the
/// provider's figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryFigures {
    /// What we refunded because of the provider's status.
    pub refunded: Money,
    /// What the provider should credit back: the matching share of the expected cost.
    pub expected_credit: Money,
    /// What it did: the drop in its charge from the expected cost.
    pub credited: Money,
    /// What is missing beyond its rounding; zero when recovered.
    pub shortfall: Money,
}

impl OrderCost {
    /// What a recovery is measured from, in the provider's currency: the provider's own
    /// charge before the first refund its status caused (what it actually billed, even when
    /// its price moved since the last sync), else the expected cost at send time, else, for
    /// a service no sync priced, the first charge the provider reported.
    fn expected_provider(&self) -> Option<Money> {
        self.baseline_charge_provider
            .or(self.expected_cost_provider)
            .or(self.first_charge_provider)
    }

    /// Revenue, cost and margin of the order whose charge and refunds are given.
    pub fn margin(&self, charge: Money, refunded: Money) -> Margin {
        let revenue = charge.saturating_sub(refunded);
        let cost = self.latest_charge.or(self.expected_cost);
        Margin {
            revenue,
            cost,
            margin: cost.map(|cost| SignedMoney::difference(revenue, cost)),
        }
    }

    /// The recovery of what we refunded (`None` when we refunded nothing because of the
    /// provider, or no cost is known to recover from). `charge` is our charge for the order.
    pub fn recovery_figures(&self, charge: Money) -> Option<RecoveryFigures> {
        if self.provider_refunded.is_zero() {
            return None;
        }
        let expected = self.expected_provider()?;
        let expected_credit = expected.share_of_money(self.provider_refunded, charge);
        let credited = self
            .latest_charge_provider
            .map_or(Money::ZERO, |latest| expected.saturating_sub(latest));
        let tolerance = Money::parse(PROVIDER_ROUNDING).unwrap_or(Money::ZERO);
        let missing = expected_credit.saturating_sub(credited);
        // A provider that credits its balance leaves `charge`: nothing is short of it.
        let shortfall = if missing <= tolerance || self.recovery == Some(Recovery::ToBalance) {
            Money::ZERO
        } else {
            missing
        };
        let rate = self.exchange_rate;
        Some(RecoveryFigures {
            refunded: self.provider_refunded,
            expected_credit: rate.convert(expected_credit),
            credited: rate.convert(credited),
            shortfall: rate.convert(shortfall),
        })
    }
}

/// What a watched recovery becomes at `now`: recovered once nothing is short, unrecovered
/// once the window ended short, otherwise still watched.
pub fn judge_recovery(
    figures: &RecoveryFigures,
    watch_until: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Recovery {
    if figures.shortfall.is_zero() {
        Recovery::Recovered
    } else if watch_until.is_none_or(|until| now >= until) {
        Recovery::Unrecovered
    } else {
        Recovery::Watching
    }
}

/// One forwarded order as the provider money report reads it.
#[derive(Debug, Clone)]
pub struct CostedOrder {
    pub created_at: NaiveDateTime,
    pub service_id: i64,
    pub provider_id: i64,
    pub charge: Money,
    /// Every refund of the order (revenue is what stays with us).
    pub refunded: Money,
    pub cost: OrderCost,
}

/// The sums of a provider money report's row, or of its totals (panel currency).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoneyMetrics {
    pub orders: i64,
    /// Our charges minus our refunds.
    pub revenue: Money,
    /// The providers' latest charges (the expected cost until one is reported).
    pub provider_cost: Money,
    /// Orders with no known cost (no sync priced the service and no charge reported).
    pub orders_without_cost: i64,
    /// What we refunded because the provider reported Partial or Canceled.
    pub refunds_paid: Money,
    /// The matching share of the expected cost those refunds should bring back.
    pub expected_credits: Money,
    /// What the providers credited back (the drop in their charges).
    pub credits_recovered: Money,
    /// The shortfall of orders judged unrecovered (their watch window ended short).
    pub unrecovered: Money,
    /// The shortfall of orders still watched.
    pub awaiting_credit: Money,
    /// The expected credit of refunds whose provider credits its balance instead of
    /// lowering `charge` (`to_balance`): owed through its balance, to check there; not in
    /// `expected_credits`, `credits_recovered` or the recovery rate.
    pub credited_to_balance: Money,
    /// Orders we refunded because of the provider (with a cost to recover from), and
    /// those of them judged unrecovered.
    pub recovery_cases: i64,
    pub unrecovered_cases: i64,
}

impl MoneyMetrics {
    /// Revenue minus provider cost; may be negative.
    pub fn margin(&self) -> SignedMoney {
        SignedMoney::difference(self.revenue, self.provider_cost)
    }

    /// Credits recovered ÷ expected credits, 6 decimals (`domain::report::rate_of`); 1
    /// when nothing was expected back.
    pub fn recovery_rate(&self) -> rust_decimal::Decimal {
        if self.expected_credits.is_zero() {
            return rust_decimal::Decimal::ONE;
        }
        super::report::rate_of(
            self.credits_recovered.to_decimal(),
            self.expected_credits.to_decimal(),
        )
        .min(rust_decimal::Decimal::ONE)
    }

    /// Adds the sums of other orders (another bucket's, a rollup's).
    pub fn merge(&mut self, other: &MoneyMetrics) {
        self.orders += other.orders;
        self.revenue = self.revenue.saturating_add(other.revenue);
        self.provider_cost = self.provider_cost.saturating_add(other.provider_cost);
        self.orders_without_cost += other.orders_without_cost;
        self.refunds_paid = self.refunds_paid.saturating_add(other.refunds_paid);
        self.expected_credits = self.expected_credits.saturating_add(other.expected_credits);
        self.credits_recovered = self
            .credits_recovered
            .saturating_add(other.credits_recovered);
        self.unrecovered = self.unrecovered.saturating_add(other.unrecovered);
        self.awaiting_credit = self.awaiting_credit.saturating_add(other.awaiting_credit);
        self.recovery_cases += other.recovery_cases;
        self.unrecovered_cases += other.unrecovered_cases;
        self.credited_to_balance = self
            .credited_to_balance
            .saturating_add(other.credited_to_balance);
    }

    /// Adds one order.
    pub fn add(&mut self, order: &CostedOrder) {
        self.orders += 1;
        let margin = order.cost.margin(order.charge, order.refunded);
        self.revenue = self.revenue.saturating_add(margin.revenue);
        match margin.cost {
            Some(cost) => self.provider_cost = self.provider_cost.saturating_add(cost),
            None => self.orders_without_cost += 1,
        }
        self.refunds_paid = self
            .refunds_paid
            .saturating_add(order.cost.provider_refunded);
        if let Some(figures) = order.cost.recovery_figures(order.charge) {
            if order.cost.recovery == Some(Recovery::ToBalance) {
                self.credited_to_balance = self
                    .credited_to_balance
                    .saturating_add(figures.expected_credit);
                return;
            }
            self.recovery_cases += 1;
            if order.cost.recovery == Some(Recovery::Unrecovered) {
                self.unrecovered_cases += 1;
            }
            self.expected_credits = self
                .expected_credits
                .saturating_add(figures.expected_credit);
            self.credits_recovered = self.credits_recovered.saturating_add(figures.credited);
            match order.cost.recovery {
                Some(Recovery::Unrecovered) => {
                    self.unrecovered = self.unrecovered.saturating_add(figures.shortfall)
                }
                Some(Recovery::Watching) => {
                    self.awaiting_credit = self.awaiting_credit.saturating_add(figures.shortfall)
                }
                Some(Recovery::Recovered) | Some(Recovery::ToBalance) | None => {}
            }
        }
    }
}

/// The row key of an order in a provider money report: its provider or service id, or
/// the first local day of its day or week (weeks start on Monday) in `offset`.
pub fn money_row_key(
    group: super::report::ReportGroup,
    order: &CostedOrder,
    offset: chrono::FixedOffset,
) -> Option<String> {
    use super::report::ReportGroup;
    use chrono::Datelike;
    let local =
        (order.created_at + chrono::Duration::seconds(offset.local_minus_utc().into())).date();
    match group {
        ReportGroup::Provider => Some(order.provider_id.to_string()),
        ReportGroup::Service => Some(order.service_id.to_string()),
        ReportGroup::Day => Some(local.format("%Y-%m-%d").to_string()),
        ReportGroup::Week => {
            let back = i64::from(local.weekday().num_days_from_monday());
            Some(
                (local - chrono::Duration::days(back))
                    .format("%Y-%m-%d")
                    .to_string(),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(raw: &str) -> Money {
        Money::parse(raw).unwrap()
    }

    fn cost(expected: &str, latest: Option<&str>, refunded: &str) -> OrderCost {
        let rate = ExchangeRate::parse("1.1").unwrap();
        OrderCost {
            currency: "EUR".into(),
            exchange_rate: rate,
            expected_cost_provider: Some(m(expected)),
            expected_cost: Some(rate.convert(m(expected))),
            first_charge_provider: Some(m(expected)),
            first_charge: Some(rate.convert(m(expected))),
            latest_charge_provider: latest.map(m),
            latest_charge: latest.map(|l| rate.convert(m(l))),
            charge_reported_at: None,
            baseline_charge_provider: None,
            provider_refunded: m(refunded),
            recovery: None,
            watch_until: None,
        }
    }

    #[test]
    fn margin_is_revenue_minus_the_latest_charge() {
        // Our charge 2.00, refunded 0.50; the provider's 1.00 EUR fell to 0.75 EUR.
        let c = cost("1", Some("0.75"), "0.5");
        let margin = c.margin(m("2"), m("0.5"));
        assert_eq!(margin.revenue, m("1.5"));
        assert_eq!(margin.cost, Some(m("0.825")));
        assert_eq!(margin.margin.unwrap().to_string(), "0.675");
    }

    #[test]
    fn a_credit_within_the_providers_rounding_is_recovered() {
        // A quarter refunded: 0.25 EUR expected back; 0.2500 fell exactly.
        let full = cost("1", Some("0.75"), "0.5")
            .recovery_figures(m("2"))
            .unwrap();
        assert_eq!(full.expected_credit, m("0.275"));
        assert_eq!(full.credited, m("0.275"));
        assert!(full.shortfall.is_zero());
        // 0.74995 (rounded at the fourth decimal) is still recovered.
        let rounded = cost("1", Some("0.75009"), "0.5")
            .recovery_figures(m("2"))
            .unwrap();
        assert!(rounded.shortfall.is_zero());
        // Nothing credited: the whole share is short.
        let none = cost("1", Some("1"), "0.5")
            .recovery_figures(m("2"))
            .unwrap();
        assert_eq!(none.credited, Money::ZERO);
        assert_eq!(none.shortfall, m("0.275"));
        let now = chrono::DateTime::UNIX_EPOCH.naive_utc();
        let later = now + chrono::Duration::hours(1);
        assert_eq!(judge_recovery(&none, Some(later), now), Recovery::Watching);
        assert_eq!(judge_recovery(&none, Some(now), now), Recovery::Unrecovered);
        assert_eq!(judge_recovery(&full, Some(later), now), Recovery::Recovered);
        assert!(cost("1", None, "0").recovery_figures(m("2")).is_none());
    }
}
