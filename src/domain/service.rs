use chrono::NaiveDateTime;

use super::money::{least_charged_units, Money, Percent};
use super::string_enum;
use crate::domain::ids::{ProviderId, ServiceId};

string_enum! {
    /// How a service takes orders, in the panel vocabulary.
    ServiceType {
        Default => "default",
        DripFeed => "drip_feed",
        CustomComments => "custom_comments",
        Package => "package",
    }
}

string_enum! {
    /// Disabled services take no new orders.
    ServiceStatus { Active => "active", Disabled => "disabled" }
}

/// The largest quantity a service may allow; keeps every charge far inside `i64` micros.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

#[derive(Debug, Clone)]
pub struct Service {
    pub id: ServiceId,
    pub name: String,
    pub category: String,
    pub kind: ServiceType,
    /// Price per 1000 units.
    pub rate: Money,
    pub min_quantity: i64,
    pub max_quantity: i64,
    pub refill: bool,
    /// Days after an order is placed during which a refill may be asked for.
    pub refill_days: i64,
    pub cancel: bool,
    pub status: ServiceStatus,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The upstream provider and the provider's own service id, for provider-backed services.
    pub provider: Option<(ProviderId, String)>,
}

impl Service {
    pub fn dripfeed(&self) -> bool {
        self.kind == ServiceType::DripFeed
    }
}

/// Checks an order-size window: `1 <= min <= max <= MAX_QUANTITY`.
pub fn check_quantity_window(min: i64, max: i64) -> Result<(), (&'static str, String)> {
    if !(1..=MAX_QUANTITY).contains(&min) {
        return Err(("min", format!("must be between 1 and {MAX_QUANTITY}")));
    }
    if !(1..=MAX_QUANTITY).contains(&max) {
        return Err(("max", format!("must be between 1 and {MAX_QUANTITY}")));
    }
    if max < min {
        return Err(("max", "must not be less than min".into()));
    }
    Ok(())
}

/// Checks that the smallest order a service takes costs something at its rate: a
/// service is free only by an operator's choice (a rate of 0), never because `min × rate`
/// rounds below one micro-unit.
pub fn check_min_charge(rate: Money, min: i64) -> Result<(), (&'static str, String)> {
    let least = least_charged_units(rate);
    if min < least {
        return Err((
            "min",
            format!(
                "at a rate of {rate} per 1000, an order of {min} costs less than 0.000001; \
                 the least that costs something is {least} (or make the service free with a rate of 0)"
            ),
        ));
    }
    Ok(())
}

/// One service of a provider's catalog (`action=services`), read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The provider's own id for the service.
    pub provider_service_id: String,
    pub name: String,
    pub category: String,
    /// `None` for a type word we do not offer (the entry is skipped, never guessed).
    pub kind: Option<ServiceType>,
    /// The type word as the provider sent it.
    pub type_word: String,
    /// The provider's price per 1000 units.
    pub rate: Money,
    pub min_quantity: i64,
    pub max_quantity: i64,
    /// `None` when the provider's entry has no `refill` key (many panels send none): an
    /// absent key says nothing, so it never turns off a flag an operator set.
    pub refill: Option<bool>,
    /// As `refill`, for the `cancel` key.
    pub cancel: Option<bool>,
}

/// A provider's rate with our markup, rounded half-up to micro-units.
pub fn marked_up(rate: Money, markup: Percent) -> Money {
    markup.added_to(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(micros: i64) -> Money {
        Money::try_from_micros(micros).unwrap()
    }

    fn p(micros: i64) -> Percent {
        Percent::try_from_micros(micros).unwrap()
    }

    #[test]
    fn markup_rounds_half_up_to_micros() {
        assert_eq!(marked_up(m(1_000_000), p(25_000_000)).micros(), 1_250_000);
        assert_eq!(marked_up(m(1), p(50_000_000)).micros(), 2);
        assert_eq!(marked_up(m(900_000), p(0)).micros(), 900_000);
        assert_eq!(marked_up(m(333_333), p(10_000_000)).micros(), 366_666);
    }
}
