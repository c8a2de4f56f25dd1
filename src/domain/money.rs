//! Money: decimal strings on the wire, `Decimal` here, integer micro-units in storage.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

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

impl Money {
    pub const ZERO: Money = Money(0);

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

    /// Wraps stored micro-units; negative values are clamped to zero.
    pub fn from_micros(micros: i64) -> Money {
        Money(micros.max(0))
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
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

/// Formats signed micro-units (ledger amounts, balances after a chargeback) as a decimal string.
pub fn format_micros(micros: i64) -> String {
    Decimal::new(micros, SCALE).normalize().to_string()
}

/// Charge for `units` at `rate_micros` per 1000 units, rounded half-up to micro-units.
/// `None` when the result would not fit the money range.
pub fn charge_for(rate_micros: i64, units: i64) -> Option<Money> {
    let exact = i128::from(rate_micros) * i128::from(units);
    let micros = (exact + 500) / 1000;
    i64::try_from(micros)
        .ok()
        .filter(|m| *m <= MAX_MICROS)
        .map(Money)
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
        assert_eq!(charge_for(900_000, 1).unwrap().micros(), 900);
        // 0.0015 per 1000, 1 unit = 0.0000015 -> 0.000002
        assert_eq!(charge_for(1_500, 1).unwrap().micros(), 2);
        // 0.0014 per 1000, 1 unit = 0.0000014 -> 0.000001
        assert_eq!(charge_for(1_400, 1).unwrap().micros(), 1);
        assert_eq!(charge_for(2_780_000, 1000).unwrap().micros(), 2_780_000);
    }

    #[test]
    fn formats_without_trailing_zeros() {
        assert_eq!(Money::from_micros(12_500_000).to_string(), "12.5");
        assert_eq!(format_micros(-1), "-0.000001");
        assert_eq!(format_micros(0), "0");
    }
}
