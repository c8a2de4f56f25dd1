//! Money: decimal strings on the wire, `Decimal` here, integer micro-units in storage.
//!
//! Two types carry every amount between the layers: [`Money`], never negative (a charge,
//! a refund, a rate, a top-up, a minimum), and [`SignedMoney`] (a balance, which a
//! chargeback can take below zero, a ledger entry's delta, a provider's reported balance).
//! [`Percent`] is a markup, parsed and shown like money but never added to it.
//! Micro-units as bare integers belong to `db` (rows, SQL sums) and to metrics.

use rust_decimal::Decimal;
use std::fmt;
use std::str::FromStr;

/// Micro-units in one currency unit.
pub const MICROS_PER_UNIT: i64 = 1_000_000;
/// Fractional digits a money amount may carry.
pub const SCALE: u32 = 6;
/// The largest amount accepted anywhere (one billion units): balances are sums of such
/// amounts in `i64` micro-units, and this keeps thousands of them far from overflow.
const MAX_MICROS: i64 = 1_000_000_000 * MICROS_PER_UNIT;

/// A non-negative amount with at most six fractional digits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

/// A signed amount with at most six fractional digits: a balance, a ledger delta.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignedMoney(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a decimal string such as \"12.5\"")]
    Malformed,
    #[error("must not be negative")]
    Negative,
    #[error("must have at most 6 fractional digits")]
    TooPrecise,
    #[error("is too large")]
    TooLarge,
}

/// A stored amount below zero where only a non-negative one is valid: a decoding error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a stored amount of {0} micro-units is negative where none may be")]
pub struct NegativeAmount(pub i64);

impl Money {
    pub const ZERO: Money = Money(0);
    /// The smallest amount above zero: one micro-unit.
    pub const SMALLEST: Money = Money(1);

    /// Parses a wire amount. More precision than micro-units is an error, never rounded.
    pub fn parse(raw: &str) -> Result<Money, MoneyError> {
        let trimmed = raw.trim();
        let well_formed = !trimmed.is_empty()
            && trimmed.len() <= 40
            && trimmed
                .chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_digit() || c == '.' || (i == 0 && c == '-'))
            && trimmed.chars().filter(|c| *c == '.').count() <= 1
            && !trimmed.ends_with('.')
            && !trimmed.starts_with('.');
        if !well_formed {
            return Err(MoneyError::Malformed);
        }
        let value = Decimal::from_str(trimmed).map_err(|_| MoneyError::TooLarge)?;
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative);
        }
        let normalized = value.normalize();
        if normalized.scale() > SCALE {
            return Err(MoneyError::TooPrecise);
        }
        let micros = normalized
            .checked_mul(Decimal::from(MICROS_PER_UNIT))
            .and_then(|m| i64::try_from(m).ok())
            .filter(|m| *m <= MAX_MICROS)
            .ok_or(MoneyError::TooLarge)?;
        Ok(Money(micros))
    }

    /// Wraps stored micro-units; a negative value is refused, never clamped.
    pub fn try_from_micros(micros: i64) -> Result<Money, NegativeAmount> {
        if micros < 0 {
            Err(NegativeAmount(micros))
        } else {
            Ok(Money(micros))
        }
    }

    /// The amount in micro-units, for storage and metrics.
    pub fn micros(self) -> i64 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The same amount as a signed one.
    pub fn signed(self) -> SignedMoney {
        SignedMoney(self.0)
    }

    /// `None` when the sum does not fit.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// `None` when `other` is larger (the result would be negative).
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).filter(|m| *m >= 0).map(Money)
    }

    /// `self × times`; `None` past the largest amount a balance can hold (or for a
    /// negative `times`).
    pub fn checked_times(self, times: i64) -> Option<Money> {
        let product = i128::from(self.0) * i128::from(times);
        i64::try_from(product)
            .ok()
            .filter(|m| (0..=MAX_MICROS).contains(m))
            .map(Money)
    }

    /// The sum, at most the largest `i64` micro-units (report and alert totals).
    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// The difference, zero when `other` is larger.
    pub fn saturating_sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0).max(0))
    }

    /// `self × part ÷ whole`, floored to micro-units; `part` is clamped to `0..=whole` and
    /// a `whole` below one counts as one, so the share never exceeds the amount.
    pub fn share(self, part: i64, whole: i64) -> Money {
        let whole = whole.max(1);
        let part = part.clamp(0, whole);
        let share = i128::from(self.0) * i128::from(part) / i128::from(whole);
        // At most `self.0`, so it fits.
        Money(i64::try_from(share).unwrap_or(self.0))
    }

    /// `self × part ÷ whole` for amounts, floored to micro-units, as [`Money::share`].
    pub fn share_of_money(self, part: Money, whole: Money) -> Money {
        self.share(part.0, whole.0)
    }

    /// `self ÷ whole` in parts per million, floored; 0 when `whole` is zero.
    pub fn ppm_of(self, whole: Money) -> i64 {
        if whole.0 == 0 {
            return 0;
        }
        let ppm = i128::from(self.0) * 1_000_000 / i128::from(whole.0);
        i64::try_from(ppm).unwrap_or(i64::MAX)
    }

    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, SCALE).normalize()
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_decimal())
    }
}

impl std::ops::Neg for Money {
    type Output = SignedMoney;

    /// The amount taken away: a debit of this much. Exact, since `-self` fits in `i64`.
    fn neg(self) -> SignedMoney {
        SignedMoney(-self.0)
    }
}

impl SignedMoney {
    pub const ZERO: SignedMoney = SignedMoney(0);

    /// Wraps stored micro-units; every `i64` is a valid signed amount.
    pub fn from_micros(micros: i64) -> SignedMoney {
        SignedMoney(micros)
    }

    /// The amount in micro-units, for storage and metrics.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// `a − b`, which may be below zero (a margin).
    pub fn difference(a: Money, b: Money) -> SignedMoney {
        SignedMoney(a.0 - b.0)
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// The amount as a non-negative one; `None` when it is below zero.
    pub fn non_negative(self) -> Option<Money> {
        (self.0 >= 0).then_some(Money(self.0))
    }

    /// `None` when the sum does not fit.
    pub fn checked_add(self, other: SignedMoney) -> Option<SignedMoney> {
        self.0.checked_add(other.0).map(SignedMoney)
    }

    /// `None` when the difference does not fit.
    pub fn checked_sub(self, other: SignedMoney) -> Option<SignedMoney> {
        self.0.checked_sub(other.0).map(SignedMoney)
    }

    /// `None` for the one value whose negation does not fit.
    pub fn checked_neg(self) -> Option<SignedMoney> {
        self.0.checked_neg().map(SignedMoney)
    }

    /// A decimal read from elsewhere (a provider's reply), digits past the sixth dropped;
    /// `None` when it does not fit `i64` micro-units.
    pub fn from_decimal_truncated(value: Decimal) -> Option<SignedMoney> {
        let micros = value.checked_mul(Decimal::from(MICROS_PER_UNIT))?.trunc();
        i64::try_from(micros).ok().map(SignedMoney)
    }

    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, SCALE).normalize()
    }
}

impl From<Money> for SignedMoney {
    fn from(money: Money) -> SignedMoney {
        money.signed()
    }
}

impl TryFrom<SignedMoney> for Money {
    type Error = NegativeAmount;

    fn try_from(amount: SignedMoney) -> Result<Money, NegativeAmount> {
        Money::try_from_micros(amount.0)
    }
}

impl fmt::Display for SignedMoney {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_decimal())
    }
}

/// Charge for `units` at `rate` per 1000 units, rounded half-up to micro-units.
/// `None` when the result would not fit the money range.
pub fn charge_for(rate: Money, units: i64) -> Option<Money> {
    let exact = i128::from(rate.0) * i128::from(units);
    let micros = (exact + 500) / 1000;
    i64::try_from(micros)
        .ok()
        .filter(|m| (0..=MAX_MICROS).contains(m))
        .map(Money)
}

/// The fewest units [`charge_for`] prices at one micro-unit or more at a `rate` above zero
/// (at a rate of 0 every order is free, by the operator's choice, and this is 1).
pub fn least_charged_units(rate: Money) -> i64 {
    if rate.0 == 0 {
        return 1;
    }
    // (rate × units + 500) / 1000 >= 1  ⇔  rate × units >= 500.
    (500 + rate.0 - 1) / rate.0
}

/// A non-negative percentage with at most six fractional digits (a provider's markup),
/// held in millionths of a percent. Not money, but written and parsed the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(i64);

impl Percent {
    pub const ZERO: Percent = Percent(0);

    /// Parses a wire percentage by the rules of [`Money::parse`].
    pub fn parse(raw: &str) -> Result<Percent, MoneyError> {
        Money::parse(raw).map(|m| Percent(m.0))
    }

    /// Wraps stored millionths of a percent; a negative value is refused, never clamped.
    pub fn try_from_micros(micros: i64) -> Result<Percent, NegativeAmount> {
        Money::try_from_micros(micros).map(|m| Percent(m.0))
    }

    /// Millionths of a percent, for storage.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// `amount` with this percentage added, rounded half-up to micro-units.
    pub fn added_to(self, amount: Money) -> Money {
        let scale = 100i128 * 1_000_000;
        let product = i128::from(amount.0) * (scale + i128::from(self.0));
        let micros = (product + scale / 2) / scale;
        // Both factors are non-negative, so the result is; beyond `i64` it saturates.
        Money(i64::try_from(micros).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Decimal::new(self.0, SCALE).normalize())
    }
}

/// An exchange rate: panel-currency units per one provider-currency unit (`1.1`: one EUR
/// is 1.10 USD when the panel prices in USD), at most six fractional digits, above zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExchangeRate(i64);

impl ExchangeRate {
    /// A provider billing in the panel's own currency.
    pub const ONE: ExchangeRate = ExchangeRate(MICROS_PER_UNIT);

    /// Parses a wire rate by the rules of [`Money::parse`] (at most 1000000000); zero is
    /// refused.
    pub fn parse(raw: &str) -> Result<ExchangeRate, String> {
        let money = Money::parse(raw).map_err(|e| e.to_string())?;
        if money.0 == 0 {
            return Err("must be above zero".into());
        }
        Ok(ExchangeRate(money.0))
    }

    /// Wraps a stored rate; zero or below is refused, never taken as one.
    pub fn try_from_micros(micros: i64) -> Result<ExchangeRate, NegativeAmount> {
        if micros <= 0 {
            return Err(NegativeAmount(micros));
        }
        Ok(ExchangeRate(micros))
    }

    /// Millionths of a panel unit per provider unit, for storage.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// `amount` (in the provider's currency) in the panel's currency, rounded half-up to
    /// the micro-unit: the one conversion every provider amount goes through.
    pub fn convert(self, amount: Money) -> Money {
        let scale = i128::from(MICROS_PER_UNIT);
        let product = i128::from(amount.0) * i128::from(self.0);
        let micros = (product + scale / 2) / scale;
        Money(i64::try_from(micros).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for ExchangeRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Decimal::new(self.0, SCALE).normalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_strings_exactly() {
        assert_eq!(Money::parse("12.5").unwrap().micros(), 12_500_000);
        assert_eq!(Money::parse("0.000001").unwrap().micros(), 1);
        assert_eq!(Money::parse("0.00006").unwrap().micros(), 60);
        assert_eq!(Money::parse("7").unwrap().micros(), 7_000_000);
        assert_eq!(Money::parse("1.2300000").unwrap().micros(), 1_230_000);
    }

    #[test]
    fn refuses_what_it_cannot_hold_exactly() {
        assert_eq!(Money::parse("0.0000001"), Err(MoneyError::TooPrecise));
        assert_eq!(Money::parse("-1"), Err(MoneyError::Negative));
        assert_eq!(Money::parse("1e3"), Err(MoneyError::Malformed));
        assert_eq!(Money::parse(""), Err(MoneyError::Malformed));
        assert_eq!(Money::parse("1."), Err(MoneyError::Malformed));
        assert_eq!(Money::parse("NaN"), Err(MoneyError::Malformed));
        assert_eq!(
            Money::parse("99999999999999999999"),
            Err(MoneyError::TooLarge)
        );
    }

    #[test]
    fn charge_rounds_half_up_to_micros() {
        // 0.9 per 1000, 1 unit = 0.0009 exactly
        let rate = |micros| Money::try_from_micros(micros).unwrap();
        assert_eq!(charge_for(rate(900_000), 1).unwrap().micros(), 900);
        // 0.0015 per 1000, 1 unit = 0.0000015 -> 0.000002
        assert_eq!(charge_for(rate(1_500), 1).unwrap().micros(), 2);
        // 0.0014 per 1000, 1 unit = 0.0000014 -> 0.000001
        assert_eq!(charge_for(rate(1_400), 1).unwrap().micros(), 1);
        assert_eq!(
            charge_for(rate(2_780_000), 1000).unwrap().micros(),
            2_780_000
        );
    }

    #[test]
    fn the_least_charged_quantity_is_the_first_that_costs_a_micro_unit() {
        let rate = |micros| Money::try_from_micros(micros).unwrap();
        for micros in [1, 2, 3, 7, 499, 500, 501, 999, 1_000, 1_500, 2_780_000] {
            let least = least_charged_units(rate(micros));
            assert!(
                !charge_for(rate(micros), least).unwrap().is_zero(),
                "{micros}"
            );
            assert!(
                least == 1 || charge_for(rate(micros), least - 1).unwrap().is_zero(),
                "{micros}"
            );
        }
        assert_eq!(least_charged_units(rate(1)), 500);
        assert_eq!(least_charged_units(Money::ZERO), 1);
    }

    #[test]
    fn formats_without_trailing_zeros() {
        assert_eq!(
            Money::try_from_micros(12_500_000).unwrap().to_string(),
            "12.5"
        );
        assert_eq!(SignedMoney::from_micros(-1).to_string(), "-0.000001");
        assert_eq!(SignedMoney::ZERO.to_string(), "0");
        assert_eq!(Money::ZERO.to_string(), "0");
    }

    #[test]
    fn a_negative_stored_amount_is_refused_not_clamped() {
        assert_eq!(Money::try_from_micros(-1), Err(NegativeAmount(-1)));
        assert_eq!(Money::try_from_micros(0), Ok(Money::ZERO));
        assert_eq!(SignedMoney::from_micros(-1).non_negative(), None);
        assert_eq!(
            Money::try_from(SignedMoney::from_micros(-1)),
            Err(NegativeAmount(-1))
        );
    }

    #[test]
    fn signed_and_unsigned_convert_exactly() {
        let ten = Money::try_from_micros(10).unwrap();
        let three = Money::try_from_micros(3).unwrap();
        assert_eq!((-ten).micros(), -10);
        assert_eq!(ten.signed().non_negative(), Some(ten));
        assert_eq!(ten.checked_sub(three).map(Money::micros), Some(7));
        assert_eq!(three.checked_sub(ten), None);
        assert_eq!(three.saturating_sub(ten), Money::ZERO);
        assert_eq!(
            (-ten).checked_add(three.signed()),
            Some(SignedMoney::from_micros(-7))
        );
        assert_eq!(SignedMoney::from_micros(i64::MIN).checked_neg(), None);
        assert_eq!(ten.share(1, 3).micros(), 3);
        assert_eq!(ten.share(9, 3), ten);
        assert_eq!(ten.share(-1, 3), Money::ZERO);
    }

    #[test]
    fn exchange_rates_convert_half_up_to_the_micro_unit() {
        let rate = ExchangeRate::parse("1.1").unwrap();
        assert_eq!(rate.convert(Money::parse("0.9").unwrap()).micros(), 990_000);
        // 0.0000015 × 1.1 would be 0.00000165: 1 micro × 1.1 = 1.1 → 1; 5 micros → 5.5 → 6.
        assert_eq!(rate.convert(Money::try_from_micros(5).unwrap()).micros(), 6);
        assert_eq!(rate.convert(Money::try_from_micros(1).unwrap()).micros(), 1);
        assert_eq!(
            ExchangeRate::ONE
                .convert(Money::parse("12.345678").unwrap())
                .micros(),
            12_345_678
        );
        assert!(ExchangeRate::parse("0").is_err());
        assert!(ExchangeRate::parse("1.0000001").is_err());
        assert!(ExchangeRate::parse("-1").is_err());
        assert!(ExchangeRate::try_from_micros(0).is_err());
        assert_eq!(rate.to_string(), "1.1");
    }
}
