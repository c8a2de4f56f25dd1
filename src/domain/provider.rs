//! An upstream provider, as the rest of the code sees it.

use chrono::NaiveDateTime;
use secrecy::SecretString;

use super::money::{ExchangeRate, Money, Percent, SignedMoney};
use super::string_enum;
use crate::domain::ids::ProviderId;

string_enum! {
    /// Where a provider-backed order stands upstream: `queued` to send, `sending` (a send
    /// began), `sent` (the provider has it; polled), `ambiguous` (no certain answer; an
    /// operator decides), `failed` (refused too often; the order was canceled), `done` (final)
    /// or `given_up` (no final status within the give-up horizon).
    ForwardingState {
        Queued => "queued",
        Sending => "sending",
        Sent => "sent",
        Ambiguous => "ambiguous",
        Failed => "failed",
        Done => "done",
        GivenUp => "given_up",
    }
}

string_enum! {
    /// How a provider gives back the money of a Partial or Canceled it reported: `charge`
    /// (it lowers the order's `charge`, which the recovery watch reads) or `balance` (it
    /// credits its balance with us and leaves `charge` as it was, so no order's recovery
    /// can be read from its replies).
    CreditMode {
        Charge => "charge",
        Balance => "balance",
    }
}

/// An upstream API v2 provider.
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: ProviderId,
    pub name: String,
    pub url: String,
    /// The provider's API key for this panel; never shown after creation, and redacted
    /// from `Debug` so no log line of a provider carries it.
    pub api_key: SecretString,
    pub enabled: bool,
    pub timeout_ms: i64,
    pub batch_size: i64,
    /// The provider honours an `idempotency_key` on `add` (another reseller-api does), so
    /// an ambiguous send can be retried safely; otherwise it waits for an operator.
    pub idempotent_add: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Below this balance upstream, no new order is sent to the provider.
    pub min_balance: Option<Money>,
    /// The balance the worker last read from the provider, with its currency.
    pub balance: Option<SignedMoney>,
    pub balance_currency: Option<String>,
    pub balance_checked_at: Option<NaiveDateTime>,
    /// Why the last balance read failed, if it did.
    pub balance_error: Option<String>,
    /// The markup on the provider's rates when its catalog is synced.
    pub markup_percent: Percent,
    /// The worker syncs this provider's catalog every `--service-sync-interval-secs`.
    pub auto_sync: bool,
    /// The operator allows calls to a loopback, private, link-local or metadata address
    /// (a provider on the panel's own network); otherwise every call resolves its host
    /// under the same rule as webhooks and refuses such an address.
    pub allow_private_network: bool,
    /// The currency the provider bills in (its rates, `charge`s, balance and
    /// `min_balance`).
    pub currency: String,
    /// Panel units per one provider unit, set by an operator when `currency` is not the
    /// panel's; with when it was set.
    pub exchange_rate: Option<ExchangeRate>,
    pub exchange_rate_set_at: Option<NaiveDateTime>,
    /// The currency of the last status reply that named another than `currency` (its
    /// charge was not used as cost), and when.
    pub currency_mismatch: Option<String>,
    pub currency_mismatch_at: Option<NaiveDateTime>,
    /// How it gives back the money of a Partial or Canceled (`charge` unless set).
    pub credit_mode: CreditMode,
}

impl Provider {
    /// The rate that converts this provider's amounts into the panel's currency: one when
    /// it bills in the panel's, its operator-set rate otherwise (`None`: none set yet).
    pub fn exchange_rate_to(&self, panel_currency: &str) -> Option<ExchangeRate> {
        if self.currency == panel_currency {
            Some(ExchangeRate::ONE)
        } else {
            self.exchange_rate
        }
    }

    /// Why forwarding to this provider is paused: its last known balance is below the
    /// operator's minimum. Derived, never stored, so a new reading or a new minimum
    /// applies at once.
    pub fn paused_because(&self) -> Option<String> {
        let (min, balance) = (self.min_balance?, self.balance?);
        (balance < min.signed()).then(|| {
            let currency = self
                .balance_currency
                .as_deref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default();
            format!("the provider's balance {balance}{currency} is below the minimum {min}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_debugged_shows_no_api_key() {
        let at = chrono::DateTime::UNIX_EPOCH.naive_utc();
        let provider = Provider {
            id: ProviderId(1),
            name: "upstream".into(),
            url: "https://upstream.example/api/v2".into(),
            api_key: "pk-live-9f8e7d6c5b4a".to_string().into(),
            enabled: true,
            timeout_ms: 10_000,
            batch_size: 100,
            idempotent_add: false,
            created_at: at,
            updated_at: at,
            min_balance: None,
            balance: None,
            balance_currency: None,
            balance_checked_at: None,
            balance_error: None,
            allow_private_network: false,
            currency: "USD".into(),
            exchange_rate: None,
            exchange_rate_set_at: None,
            currency_mismatch: None,
            currency_mismatch_at: None,
            credit_mode: CreditMode::Charge,
            markup_percent: Percent::ZERO,
            auto_sync: false,
        };
        let shown = format!("{provider:?} {provider:#?}");
        assert!(!shown.contains("9f8e7d6c5b4a"), "{shown}");
        assert!(shown.contains("upstream.example"), "{shown}");
    }

    #[test]
    fn forwarding_states_keep_their_stored_words() {
        for state in ForwardingState::ALL {
            let text = state.as_str().to_string();
            assert_eq!(ForwardingState::try_from(text.clone()), Ok(*state));
            assert_eq!(serde_json::to_value(state).unwrap(), text);
        }
        assert_eq!(ForwardingState::GivenUp.as_str(), "given_up");
        assert!(ForwardingState::try_from("lost".to_string()).is_err());
    }
}
