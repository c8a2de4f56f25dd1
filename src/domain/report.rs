//! Refund reports: the window and grouping asked for, and the sums a report shows.
//!
//! Buckets are by **order date** (a cohort): a row covers the orders placed in its
//! bucket, and the refunds counted are every succeeded refund of those orders, whenever
//! it happened. So `refunded / charged` is the refund rate of the same orders and never
//! exceeds 100 %, and a report on a past window can still grow while its orders are
//! being refunded. Only order refunds count (top-up refunds and chargebacks are not
//! sales); pending, rejected, failed and canceled refunds moved no money and are left out.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use super::money::Money;
use super::refund::RefundReason;
use super::string_enum;

string_enum! {
    /// What a report's rows are: a time bucket, or a service, provider, reason or account.
    ReportGroup {
        Day => "day",
        Week => "week",
        Month => "month",
        Service => "service",
        Provider => "provider",
        Reason => "reason",
        Account => "account",
    }
}

/// The longest window a report may cover.
pub const MAX_WINDOW_DAYS: i64 = 366;
/// Fractional digits of a refund rate.
pub const RATE_SCALE: u32 = 6;
/// The row key of orders whose service has no provider.
pub const NO_PROVIDER: &str = "none";

/// A report's half-open time window `[from, to)` in UTC, and the offset its time
/// buckets are cut in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: NaiveDateTime,
    pub to: NaiveDateTime,
    pub offset: FixedOffset,
}

/// Where the local days of a zone `offset` east of UTC start, in quarters of an hour past
/// a UTC midnight (+05:30: 74), or `None` for a zone whose days are UTC days (phase 0) or
/// whose offset is not a whole number of quarters. The report rollups keep the days of
/// the zones the panel lists by this phase.
pub fn phase_of(offset: FixedOffset) -> Option<i64> {
    let minutes = i64::from(offset.local_minus_utc()) / 60;
    if i64::from(offset.local_minus_utc()) % 60 != 0 || minutes % 15 != 0 {
        return None;
    }
    let phase = (-minutes / 15).rem_euclid(96);
    (phase != 0).then_some(phase)
}

/// Parses `UTC`, `Z` or a fixed offset `±HH:MM` (up to ±14:00).
pub fn parse_timezone(raw: &str) -> Result<FixedOffset, String> {
    let text = raw.trim();
    if text.eq_ignore_ascii_case("utc") || text == "Z" {
        return Ok(chrono::Offset::fix(&Utc));
    }
    let message = || "must be `UTC` or a fixed offset such as `+03:00` or `-05:30`".to_string();
    let bytes = text.as_bytes();
    if bytes.len() != 6 || !matches!(bytes[0], b'+' | b'-') || bytes[3] != b':' {
        return Err(message());
    }
    let digits = |s: &str| -> Result<i32, String> {
        if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().map_err(|_| message())
        } else {
            Err(message())
        }
    };
    let hours = digits(&text[1..3])?;
    let minutes = digits(&text[4..6])?;
    if minutes >= 60 || hours * 60 + minutes > 14 * 60 {
        return Err("must be an offset between -14:00 and +14:00".into());
    }
    let seconds = (hours * 60 + minutes) * 60;
    let seconds = if bytes[0] == b'-' { -seconds } else { seconds };
    FixedOffset::east_opt(seconds).ok_or_else(message)
}

/// Parses a window bound: an RFC 3339 time, or a `YYYY-MM-DD` date meaning its midnight
/// in the report's time zone.
pub fn parse_bound(raw: &str, offset: FixedOffset) -> Result<NaiveDateTime, String> {
    let text = raw.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc).naive_utc());
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = date.and_time(chrono::NaiveTime::MIN);
        return offset
            .from_local_datetime(&midnight)
            .single()
            .map(|at| at.with_timezone(&Utc).naive_utc())
            .ok_or_else(|| "is out of range".to_string());
    }
    Err("must be an RFC 3339 time (2026-11-01T00:00:00Z) or a date (2026-11-01)".into())
}

impl Window {
    /// Checks `from < to` and the window's length. Errors name the parameter at fault.
    pub fn new(
        from: NaiveDateTime,
        to: NaiveDateTime,
        offset: FixedOffset,
    ) -> Result<Window, (&'static str, String)> {
        if from >= to {
            return Err(("to", "must be later than `from`".into()));
        }
        if to - from > Duration::days(MAX_WINDOW_DAYS) {
            return Err((
                "to",
                format!("the window may cover at most {MAX_WINDOW_DAYS} days"),
            ));
        }
        Ok(Window { from, to, offset })
    }

    /// The offset in whole minutes east of UTC, as the SQL bucketing takes it.
    pub fn offset_minutes(&self) -> i32 {
        self.offset.local_minus_utc() / 60
    }

    /// The part of a time bucket (keyed by its first local day) inside the window, in UTC.
    pub fn bucket_bounds(
        &self,
        group: ReportGroup,
        key: &str,
    ) -> Option<(NaiveDateTime, NaiveDateTime)> {
        let first = NaiveDate::parse_from_str(key, "%Y-%m-%d").ok()?;
        let next = match group {
            ReportGroup::Day => first.succ_opt()?,
            ReportGroup::Week => first.checked_add_signed(Duration::days(7))?,
            ReportGroup::Month => first.checked_add_months(chrono::Months::new(1))?,
            _ => return None,
        };
        let utc = |date: NaiveDate| {
            self.offset
                .from_local_datetime(&date.and_hms_opt(0, 0, 0)?)
                .single()
                .map(|at| at.with_timezone(&Utc).naive_utc())
        };
        Some((utc(first)?.max(self.from), utc(next)?.min(self.to)))
    }
}

/// Sums of one group's orders (by order date), as the database aggregates them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderSums {
    pub key: Option<String>,
    pub orders: i64,
    pub charged: Money,
    /// Orders with anything refunded.
    pub refunded_orders: i64,
}

/// Sums of one group's succeeded refunds of one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundSums {
    pub key: Option<String>,
    pub reason: String,
    pub refunds: i64,
    pub refunded: Money,
    /// Distinct orders these refunds belong to.
    pub refunded_orders: i64,
}

/// Count and amount of refunds of one reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReasonSums {
    pub count: i64,
    pub amount: Money,
}

/// The metrics of a row or of the totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    pub orders: i64,
    pub charged: Money,
    pub refunded_orders: i64,
    pub refunds: i64,
    pub refunded: Money,
    pub by_reason: BTreeMap<String, ReasonSums>,
}

impl Metrics {
    /// Refunded orders ÷ orders, rounded half away from zero to 6 decimals; 0 without orders.
    pub fn rate_count(&self) -> Decimal {
        rate(self.refunded_orders, self.orders)
    }

    /// Refunded ÷ charged, rounded half away from zero to 6 decimals; 0 when nothing was charged.
    pub fn rate_amount(&self) -> Decimal {
        rate_of(self.refunded.to_decimal(), self.charged.to_decimal())
    }

    fn add_refunds(&mut self, sums: &RefundSums) {
        self.refunds += sums.refunds;
        self.refunded = self.refunded.saturating_add(sums.refunded);
        let reason = self.by_reason.entry(sums.reason.clone()).or_default();
        reason.count += sums.refunds;
        reason.amount = reason.amount.saturating_add(sums.refunded);
    }
}

/// `part / whole` to [`RATE_SCALE`] decimals, exact in `Decimal` (no floating point).
pub fn rate(part: i64, whole: i64) -> Decimal {
    rate_of(Decimal::from(part), Decimal::from(whole))
}

/// [`rate`] of two decimals (amounts: refunded ÷ charged).
pub fn rate_of(part: Decimal, whole: Decimal) -> Decimal {
    if whole <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    (part / whole)
        .round_dp_with_strategy(RATE_SCALE, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// One row of a report before labels: its key and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub key: String,
    pub metrics: Metrics,
}

/// A report's rows in display order, and its totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub rows: Vec<Row>,
    pub totals: Metrics,
}

fn row_key(group: ReportGroup, key: Option<String>) -> String {
    match (group, key) {
        (_, Some(key)) => key,
        (ReportGroup::Provider, None) => NO_PROVIDER.into(),
        (_, None) => String::new(),
    }
}

/// Folds the database's per-group sums into rows and totals.
///
/// For `group_by=reason` the rows are the reasons refunds were given for; each row's
/// `orders` and `charged` are those of the whole window (the denominator the reason's
/// share is taken of), so its rates say what share of the window's orders and money went
/// back for that reason, and the rows' rates add up to the totals' amount rate.
pub fn summarize(group: ReportGroup, orders: Vec<OrderSums>, refunds: Vec<RefundSums>) -> Summary {
    let mut totals = Metrics::default();
    let mut rows: BTreeMap<String, Metrics> = BTreeMap::new();
    for sums in orders {
        totals.orders += sums.orders;
        totals.charged = totals.charged.saturating_add(sums.charged);
        totals.refunded_orders += sums.refunded_orders;
        if group != ReportGroup::Reason {
            let row = rows.entry(row_key(group, sums.key)).or_default();
            row.orders += sums.orders;
            row.charged = row.charged.saturating_add(sums.charged);
            row.refunded_orders += sums.refunded_orders;
        }
    }
    for sums in refunds {
        totals.add_refunds(&sums);
        let row = rows
            .entry(row_key(group, sums.key.clone()))
            .or_insert_with(|| Metrics {
                orders: totals.orders,
                charged: totals.charged,
                ..Metrics::default()
            });
        if group == ReportGroup::Reason {
            row.refunded_orders += sums.refunded_orders;
        }
        row.add_refunds(&sums);
    }
    let mut rows: Vec<Row> = rows
        .into_iter()
        .map(|(key, metrics)| Row { key, metrics })
        .collect();
    match group {
        // Time buckets read oldest first (their keys are ISO dates).
        ReportGroup::Day | ReportGroup::Week | ReportGroup::Month => {}
        // Everything else: most refunded first, ties by key (numerically for ids).
        _ => rows.sort_by(|a, b| {
            b.metrics
                .refunded
                .cmp(&a.metrics.refunded)
                .then_with(|| numeric_key(&a.key).cmp(&numeric_key(&b.key)))
                .then_with(|| a.key.cmp(&b.key))
        }),
    }
    Summary { rows, totals }
}

fn numeric_key(key: &str) -> Option<i64> {
    key.parse().ok()
}

/// A person's name for a refund reason: `partial_delivery` → "Partial delivery".
pub fn reason_label(reason: &str) -> String {
    match RefundReason::parse(reason) {
        Some(RefundReason::CanceledByReseller) => "Canceled by reseller".into(),
        _ => {
            let spaced = reason.replace('_', " ");
            let mut chars = spaced.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => spaced,
            }
        }
    }
}

/// A label for a time bucket keyed by its first day: the day, `2026-W48`, or `2026-11`.
pub fn time_label(group: ReportGroup, key: &str) -> String {
    let Ok(date) = NaiveDate::parse_from_str(key, "%Y-%m-%d") else {
        return key.to_string();
    };
    match group {
        ReportGroup::Week => {
            let week = date.iso_week();
            format!("{}-W{:02}", week.year(), week.week())
        }
        ReportGroup::Month => date.format("%Y-%m").to_string(),
        _ => key.to_string(),
    }
}

/// Guards a spreadsheet cell against formula injection: a cell that starts with `=`,
/// `+`, `-`, `@`, tab or carriage return gets a leading `'`, so spreadsheet programs show
/// it as text instead of evaluating it. Amounts in reports are never negative, so no
/// number is changed by this.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn timezones_are_utc_or_fixed_offsets() {
        assert_eq!(parse_timezone("UTC").unwrap().local_minus_utc(), 0);
        assert_eq!(parse_timezone("+03:00").unwrap().local_minus_utc(), 10_800);
        assert_eq!(parse_timezone("-05:30").unwrap().local_minus_utc(), -19_800);
        for bad in [
            "",
            "+3",
            "+15:00",
            "+03:60",
            "Europe/Paris",
            "+0300",
            "+ab:cd",
        ] {
            assert!(parse_timezone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_are_midnight_in_the_report_zone() {
        let plus3 = parse_timezone("+03:00").unwrap();
        assert_eq!(
            parse_bound("2026-11-01", plus3).unwrap(),
            at("2026-10-31 21:00:00")
        );
        assert_eq!(
            parse_bound("2026-11-01T10:00:00+02:00", plus3).unwrap(),
            at("2026-11-01 08:00:00")
        );
        assert!(parse_bound("yesterday", plus3).is_err());
    }

    #[test]
    fn windows_must_be_ordered_and_at_most_a_year() {
        let utc = parse_timezone("UTC").unwrap();
        let from = at("2026-01-01 00:00:00");
        assert!(Window::new(from, from, utc).is_err());
        assert!(Window::new(from, at("2027-01-02 00:00:00"), utc).is_ok());
        assert!(Window::new(from, at("2027-01-02 00:00:01"), utc).is_err());
    }

    #[test]
    fn rates_are_exact_decimals_rounded_to_six_places() {
        assert_eq!(rate(1, 3).to_string(), "0.333333");
        assert_eq!(rate(2, 3).to_string(), "0.666667");
        assert_eq!(rate(5, 5).to_string(), "1");
        assert_eq!(rate(0, 7).to_string(), "0");
        assert_eq!(rate(3, 0).to_string(), "0");
    }

    #[test]
    fn cells_that_a_spreadsheet_would_evaluate_are_quoted() {
        assert_eq!(spreadsheet_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(spreadsheet_safe("+cmd"), "'+cmd");
        assert_eq!(spreadsheet_safe("-1"), "'-1");
        assert_eq!(spreadsheet_safe("@SUM"), "'@SUM");
        assert_eq!(spreadsheet_safe("\tx"), "'\tx");
        assert_eq!(spreadsheet_safe("12.5"), "12.5");
        assert_eq!(spreadsheet_safe("Likes"), "Likes");
    }

    #[test]
    fn reason_rows_share_the_window_as_denominator() {
        let orders = vec![OrderSums {
            key: None,
            orders: 10,
            charged: Money::try_from_micros(1_000).unwrap(),
            refunded_orders: 3,
        }];
        let refunds = vec![
            RefundSums {
                key: Some("partial_delivery".into()),
                reason: "partial_delivery".into(),
                refunds: 2,
                refunded: Money::try_from_micros(100).unwrap(),
                refunded_orders: 2,
            },
            RefundSums {
                key: Some("provider_canceled".into()),
                reason: "provider_canceled".into(),
                refunds: 1,
                refunded: Money::try_from_micros(300).unwrap(),
                refunded_orders: 1,
            },
        ];
        let summary = summarize(ReportGroup::Reason, orders, refunds);
        assert_eq!(summary.rows[0].key, "provider_canceled");
        assert_eq!(summary.rows[0].metrics.orders, 10);
        assert_eq!(summary.rows[0].metrics.rate_amount().to_string(), "0.3");
        assert_eq!(summary.totals.refunded.micros(), 400);
        assert_eq!(summary.totals.rate_amount().to_string(), "0.4");
        assert_eq!(summary.totals.rate_count().to_string(), "0.3");
    }

    #[test]
    fn buckets_are_clipped_to_the_window() {
        let plus3 = parse_timezone("+03:00").unwrap();
        let window =
            Window::new(at("2026-11-01 12:00:00"), at("2026-11-10 00:00:00"), plus3).unwrap();
        assert_eq!(
            window.bucket_bounds(ReportGroup::Day, "2026-11-02"),
            Some((at("2026-11-01 21:00:00"), at("2026-11-02 21:00:00")))
        );
        assert_eq!(
            window.bucket_bounds(ReportGroup::Month, "2026-11-01"),
            Some((at("2026-11-01 12:00:00"), at("2026-11-10 00:00:00")))
        );
        assert_eq!(time_label(ReportGroup::Week, "2026-11-23"), "2026-W48");
        assert_eq!(time_label(ReportGroup::Month, "2026-11-01"), "2026-11");
    }
}
