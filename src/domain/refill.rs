//! Refills: a delivered order topped up again, within its service's window.

use chrono::{Duration, NaiveDateTime};

use super::order::{Order, OrderStatus};
use super::service::Service;
use super::string_enum;

/// The longest refill window an operator may set on a service.
pub const MAX_REFILL_DAYS: i64 = 3650;

/// How long after one refill of an order the next may be asked for.
pub const REFILL_COOLDOWN_HOURS: i64 = 24;

string_enum! {
    /// Where a refill stands: `pending` (asked, not started), `in_progress`, or final:
    /// `completed`, `rejected` (the provider or an operator said no), `error` (it could
    /// not be placed or followed).
    RefillStatus {
        Pending => "pending",
        InProgress => "in_progress",
        Completed => "completed",
        Rejected => "rejected",
        Errored => "error",
    }
}

impl RefillStatus {
    /// The panel's spelling, for API v2.
    pub fn panel_name(self) -> &'static str {
        match self {
            RefillStatus::Pending => "Pending",
            RefillStatus::InProgress => "In progress",
            RefillStatus::Completed => "Completed",
            RefillStatus::Rejected => "Rejected",
            RefillStatus::Errored => "Error",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            RefillStatus::Completed | RefillStatus::Rejected | RefillStatus::Errored
        )
    }
}

/// A provider's refill status word, folded (case, spaces, `_`, `-`) and mapped; anything
/// else is kept verbatim, to be quarantined, never guessed.
pub fn parse_refill_status(raw: &str) -> Result<RefillStatus, String> {
    let folded: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .collect();
    match folded.as_str() {
        "pending" => Ok(RefillStatus::Pending),
        "inprogress" | "processing" => Ok(RefillStatus::InProgress),
        "completed" | "complete" => Ok(RefillStatus::Completed),
        "rejected" => Ok(RefillStatus::Rejected),
        "error" => Ok(RefillStatus::Errored),
        _ => Err(raw.trim().to_string()),
    }
}

/// Why a refill may not be asked for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefillRefusal {
    /// The order's service offers no refills.
    NotOffered,
    /// The order is not completed or partial.
    NotDelivered,
    /// More than the service's `refill_days` since the order was placed.
    WindowClosed { days: i64 },
    /// Another refill of this order was asked for less than 24 hours ago.
    TooSoon { next_at: NaiveDateTime },
}

/// Whether `order` of `service` may be refilled at `now`, given when its latest refill
/// was asked for. The window counts from the order's placement.
pub fn check_refill(
    service: &Service,
    order: &Order,
    latest_refill_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<(), RefillRefusal> {
    if !service.refill {
        return Err(RefillRefusal::NotOffered);
    }
    if !matches!(order.status, OrderStatus::Completed | OrderStatus::Partial) {
        return Err(RefillRefusal::NotDelivered);
    }
    if now > order.created_at + Duration::days(service.refill_days) {
        return Err(RefillRefusal::WindowClosed {
            days: service.refill_days,
        });
    }
    if let Some(latest) = latest_refill_at {
        let next_at = latest + Duration::hours(REFILL_COOLDOWN_HOURS);
        if now < next_at {
            return Err(RefillRefusal::TooSoon { next_at });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refill_status_words_in_every_spelling() {
        for (raw, status) in [
            ("Pending", RefillStatus::Pending),
            ("In progress", RefillStatus::InProgress),
            ("in_progress", RefillStatus::InProgress),
            ("In Progress", RefillStatus::InProgress),
            ("Completed", RefillStatus::Completed),
            ("complete", RefillStatus::Completed),
            ("Rejected", RefillStatus::Rejected),
            ("ERROR", RefillStatus::Errored),
        ] {
            assert_eq!(parse_refill_status(raw), Ok(status), "{raw}");
        }
        for raw in ["Refunded", "Awaiting", "Canceled", "", "Partial"] {
            assert_eq!(parse_refill_status(raw), Err(raw.to_string()));
        }
    }
}
