//! The refund-abuse policy: decides what happens to a reseller's refund request from
//! its recent history. Only reseller-initiated requests pass through it; refunds owed
//! for provider cancellations or partial deliveries never do.

use chrono::{Duration, NaiveDateTime};
use rust_decimal::Decimal;
use serde::Serialize;

use super::money::Money;
use super::string_enum;

string_enum! {
    /// What the policy decided for a refund request.
    PolicyOutcome {
        AutoApprove => "auto_approve",
        Review => "review",
        Escalate => "escalate",
        Refuse => "refuse",
    }
}

/// Thresholds, all from configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    pub max_per_hour: i64,
    pub max_per_day: i64,
    /// The refund-rate rules apply only once the account has this many orders in 30 days.
    pub rate_min_orders: i64,
    /// Refund rate (by amount or by count) from which requests go to a person.
    pub rate_escalate: Decimal,
    /// Refund rate from which requests are refused.
    pub rate_refuse: Decimal,
    /// Rejected requests within 7 days that start a cool-down.
    pub cooldown_rejections: i64,
    pub cooldown: Duration,
    /// Requests up to this amount are approved at once when no rule objects; 0 turns it off.
    pub auto_approve_max: Money,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            max_per_hour: 5,
            max_per_day: 20,
            rate_min_orders: 20,
            rate_escalate: Decimal::new(20, 2),
            rate_refuse: Decimal::new(50, 2),
            cooldown_rejections: 2,
            cooldown: Duration::hours(24),
            auto_approve_max: Money::ZERO,
        }
    }
}

/// An account's recent refund history, as the policy reads it.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Standing {
    pub requests_last_hour: i64,
    pub requests_last_day: i64,
    #[serde(skip)]
    pub oldest_request_last_hour: Option<NaiveDateTime>,
    #[serde(skip)]
    pub oldest_request_last_day: Option<NaiveDateTime>,
    pub orders_30d: i64,
    pub refunded_orders_30d: i64,
    #[serde(skip)]
    pub charged_30d: Money,
    #[serde(skip)]
    pub refunded_30d: Money,
    pub rejections_7d: i64,
    #[serde(skip)]
    pub last_rejection_at: Option<NaiveDateTime>,
    #[serde(skip)]
    pub allowlisted_until: Option<NaiveDateTime>,
}

impl Standing {
    /// Refunded ÷ charged over the 30-day window, 4 decimals; zero with nothing charged.
    pub fn rate_by_amount(&self) -> Decimal {
        ratio(
            self.refunded_30d.to_decimal(),
            self.charged_30d.to_decimal(),
        )
    }

    /// Refunded orders ÷ orders over the 30-day window, 4 decimals.
    pub fn rate_by_count(&self) -> Decimal {
        ratio(
            Decimal::from(self.refunded_orders_30d),
            Decimal::from(self.orders_30d),
        )
    }
}

fn ratio(part: Decimal, whole: Decimal) -> Decimal {
    if whole <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    (part / whole).round_dp(4).normalize()
}

/// A decision and the rule that made it, with the numbers it looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: PolicyOutcome,
    pub rule: &'static str,
    /// The numbers behind the rule, as a JSON object.
    pub detail: serde_json::Value,
    /// For refusals: seconds until a request could pass this rule.
    pub retry_after_secs: Option<i64>,
}

fn seconds_until(at: NaiveDateTime, now: NaiveDateTime) -> i64 {
    (at - now).num_seconds().max(1)
}

/// Assesses a refund request of `amount` for an account with this standing.
pub fn assess(policy: &Policy, standing: &Standing, amount: Money, now: NaiveDateTime) -> Decision {
    let small = !policy.auto_approve_max.is_zero() && amount <= policy.auto_approve_max;
    let quiet = |outcome, rule, detail| Decision {
        outcome,
        rule,
        detail,
        retry_after_secs: None,
    };
    if let Some(until) = standing.allowlisted_until.filter(|until| *until > now) {
        let detail = serde_json::json!({ "allowlisted_until": until.and_utc().to_rfc3339() });
        return if small {
            quiet(PolicyOutcome::AutoApprove, "allowlisted", detail)
        } else {
            quiet(PolicyOutcome::Review, "allowlisted", detail)
        };
    }
    if standing.requests_last_hour >= policy.max_per_hour {
        let reopens = standing
            .oldest_request_last_hour
            .map_or(now, |t| t + Duration::hours(1));
        return Decision {
            outcome: PolicyOutcome::Refuse,
            rule: "velocity_hour",
            detail: serde_json::json!({ "requests_last_hour": standing.requests_last_hour, "max_per_hour": policy.max_per_hour }),
            retry_after_secs: Some(seconds_until(reopens, now)),
        };
    }
    if standing.requests_last_day >= policy.max_per_day {
        let reopens = standing
            .oldest_request_last_day
            .map_or(now, |t| t + Duration::days(1));
        return Decision {
            outcome: PolicyOutcome::Refuse,
            rule: "velocity_day",
            detail: serde_json::json!({ "requests_last_day": standing.requests_last_day, "max_per_day": policy.max_per_day }),
            retry_after_secs: Some(seconds_until(reopens, now)),
        };
    }
    if standing.rejections_7d >= policy.cooldown_rejections {
        if let Some(ends) = standing
            .last_rejection_at
            .map(|t| t + policy.cooldown)
            .filter(|ends| *ends > now)
        {
            return Decision {
                outcome: PolicyOutcome::Refuse,
                rule: "cooldown_after_rejections",
                detail: serde_json::json!({
                    "rejections_7d": standing.rejections_7d,
                    "cooldown_rejections": policy.cooldown_rejections,
                    "cooldown_ends_at": ends.and_utc().to_rfc3339(),
                }),
                retry_after_secs: Some(seconds_until(ends, now)),
            };
        }
    }
    if standing.orders_30d >= policy.rate_min_orders {
        let (by_amount, by_count) = (standing.rate_by_amount(), standing.rate_by_count());
        let detail = serde_json::json!({
            "orders_30d": standing.orders_30d,
            "refund_rate_amount": by_amount.to_string(),
            "refund_rate_count": by_count.to_string(),
            "escalate_at": policy.rate_escalate.to_string(),
            "refuse_at": policy.rate_refuse.to_string(),
        });
        if by_amount >= policy.rate_refuse || by_count >= policy.rate_refuse {
            return Decision {
                outcome: PolicyOutcome::Refuse,
                rule: "refund_rate_refuse",
                detail,
                retry_after_secs: Some(Duration::days(1).num_seconds()),
            };
        }
        if by_amount >= policy.rate_escalate || by_count >= policy.rate_escalate {
            return quiet(PolicyOutcome::Escalate, "refund_rate_escalate", detail);
        }
    }
    let detail = serde_json::json!({
        "amount": amount.to_string(),
        "auto_approve_max": policy.auto_approve_max.to_string(),
    });
    if small {
        quiet(PolicyOutcome::AutoApprove, "auto_approve_small", detail)
    } else {
        quiet(PolicyOutcome::Review, "manual_review", detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(micros: i64) -> Money {
        Money::try_from_micros(micros).unwrap()
    }

    fn now() -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .naive_utc()
    }

    #[test]
    fn velocity_refuses_until_the_oldest_request_leaves_the_window() {
        let standing = Standing {
            requests_last_hour: 5,
            oldest_request_last_hour: Some(now() - Duration::minutes(20)),
            ..Standing::default()
        };
        let decision = assess(&Policy::default(), &standing, m(1), now());
        assert_eq!(decision.outcome, PolicyOutcome::Refuse);
        assert_eq!(decision.rule, "velocity_hour");
        assert_eq!(decision.retry_after_secs, Some(40 * 60));
    }

    #[test]
    fn refund_rate_escalates_then_refuses_but_only_with_enough_orders() {
        let mut standing = Standing {
            orders_30d: 19,
            refunded_orders_30d: 19,
            charged_30d: m(100),
            refunded_30d: m(100),
            ..Standing::default()
        };
        let policy = Policy {
            auto_approve_max: m(1_000_000),
            ..Policy::default()
        };
        assert_eq!(
            assess(&policy, &standing, m(1), now()).outcome,
            PolicyOutcome::AutoApprove
        );
        standing.orders_30d = 20;
        standing.refunded_orders_30d = 4;
        standing.refunded_30d = m(10);
        let escalated = assess(&policy, &standing, m(1), now());
        assert_eq!(escalated.outcome, PolicyOutcome::Escalate);
        assert_eq!(escalated.detail["refund_rate_count"], "0.2");
        standing.refunded_30d = m(50);
        assert_eq!(
            assess(&policy, &standing, m(1), now()).rule,
            "refund_rate_refuse"
        );
    }

    #[test]
    fn cooldown_follows_repeated_rejections_and_allowlist_overrides_all() {
        let mut standing = Standing {
            rejections_7d: 2,
            last_rejection_at: Some(now() - Duration::hours(1)),
            requests_last_hour: 99,
            ..Standing::default()
        };
        standing.requests_last_hour = 0;
        let decision = assess(&Policy::default(), &standing, m(1), now());
        assert_eq!(decision.rule, "cooldown_after_rejections");
        assert_eq!(decision.retry_after_secs, Some(23 * 3600));
        standing.requests_last_hour = 99;
        standing.allowlisted_until = Some(now() + Duration::hours(1));
        assert_eq!(
            assess(&Policy::default(), &standing, m(1), now()).outcome,
            PolicyOutcome::Review
        );
    }
}
