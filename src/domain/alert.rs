//! Refund-rate alerts: levels, windows, and the hysteresis that moves an alert.

use chrono::{Duration, NaiveDateTime};

use super::money::Money;
use super::string_enum;
use crate::domain::ids::AlertId;

string_enum! {
    /// What an alert watches: one service, or one provider (all its services).
    AlertScope {
        Service => "service",
        Provider => "provider",
    }
}

string_enum! {
    /// The rolling window of orders (by order date, as the refund reports count).
    AlertWindow {
        Hour => "1h",
        Day => "24h",
        Week => "7d",
    }
}

impl AlertWindow {
    pub fn length(self) -> Duration {
        match self {
            AlertWindow::Hour => Duration::hours(1),
            AlertWindow::Day => Duration::hours(24),
            AlertWindow::Week => Duration::days(7),
        }
    }
}

string_enum! {
    /// `amount`: refunded ÷ charged; `count`: orders with a refund ÷ orders;
    /// `unrecovered` (providers only): refunds the provider's Partial or Canceled caused
    /// that it did not credit back ÷ what it should have credited back (the shortfall of
    /// orders judged unrecovered ÷ their expected credits).
    AlertMeasure {
        Amount => "amount",
        Count => "count",
        Unrecovered => "unrecovered",
    }
}

string_enum! {
    /// How bad: `warning` at the warning rate, `critical` at the critical rate.
    AlertLevel {
        Warning => "warning",
        Critical => "critical",
    }
}

/// Rates are kept in millionths (ppm) so they compare exactly as integers.
pub const PPM: i64 = 1_000_000;

/// The thresholds that apply to one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub warning_ppm: i64,
    pub critical_ppm: i64,
    /// Fewer orders than this in a window and its rate does not count (the alert clears).
    pub min_orders: i64,
    /// An active alert clears only below `warning_ppm × clear_ratio_ppm / 1e6`.
    pub clear_ratio_ppm: i64,
}

impl Thresholds {
    pub fn clear_below_ppm(&self) -> i64 {
        self.warning_ppm * self.clear_ratio_ppm / PPM
    }
}

/// What one evaluation does to one (subject, window, measure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Stay,
    Raise(AlertLevel),
    Escalate,
    Clear,
}

/// The hysteresis: raised at the warning rate (or straight to critical), escalated at the
/// critical rate, cleared only below the clearing threshold (lower than the warning rate),
/// never lowered from critical to warning while it lasts (the peak is what an operator
/// must see). A window with fewer than `min_orders` orders clears.
pub fn transition(
    current: Option<AlertLevel>,
    rate_ppm: i64,
    orders: i64,
    t: &Thresholds,
) -> Transition {
    let counts = orders >= t.min_orders && orders > 0;
    match current {
        None if !counts => Transition::Stay,
        None if rate_ppm >= t.critical_ppm => Transition::Raise(AlertLevel::Critical),
        None if rate_ppm >= t.warning_ppm => Transition::Raise(AlertLevel::Warning),
        None => Transition::Stay,
        Some(_) if !counts || rate_ppm < t.clear_below_ppm() => Transition::Clear,
        Some(AlertLevel::Warning) if rate_ppm >= t.critical_ppm => Transition::Escalate,
        Some(_) => Transition::Stay,
    }
}

/// One alert episode.
#[derive(Debug, Clone)]
pub struct Alert {
    pub id: AlertId,
    pub scope: AlertScope,
    pub subject_id: i64,
    pub window: AlertWindow,
    pub measure: AlertMeasure,
    pub level: AlertLevel,
    pub active: bool,
    pub rate_ppm: i64,
    pub threshold_ppm: i64,
    pub orders: i64,
    pub refunded_orders: i64,
    pub charged: Money,
    pub refunded: Money,
    pub raised_at: NaiveDateTime,
    pub escalated_at: Option<NaiveDateTime>,
    pub cleared_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        warning_ppm: 100_000,
        critical_ppm: 250_000,
        min_orders: 10,
        clear_ratio_ppm: 800_000,
    };

    #[test]
    fn alerts_move_with_hysteresis() {
        assert_eq!(transition(None, 99_999, 50, &T), Transition::Stay);
        assert_eq!(
            transition(None, 100_000, 50, &T),
            Transition::Raise(AlertLevel::Warning)
        );
        assert_eq!(
            transition(None, 300_000, 50, &T),
            Transition::Raise(AlertLevel::Critical)
        );
        assert_eq!(transition(None, 900_000, 9, &T), Transition::Stay);
        let warn = Some(AlertLevel::Warning);
        assert_eq!(transition(warn, 250_000, 50, &T), Transition::Escalate);
        // Between the clearing threshold (8 %) and the warning rate: it stays raised.
        assert_eq!(transition(warn, 90_000, 50, &T), Transition::Stay);
        assert_eq!(transition(warn, 79_999, 50, &T), Transition::Clear);
        let crit = Some(AlertLevel::Critical);
        assert_eq!(transition(crit, 120_000, 50, &T), Transition::Stay);
        assert_eq!(transition(crit, 0, 50, &T), Transition::Clear);
        assert_eq!(transition(crit, 900_000, 3, &T), Transition::Clear);
    }
}
