//! An upstream provider, as the rest of the code sees it.

use chrono::NaiveDateTime;

use super::string_enum;

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

/// An upstream API v2 provider.
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: i64,
    pub name: String,
    pub url: String,
    /// The provider's API key for this panel; never shown after creation.
    pub api_key: String,
    pub enabled: bool,
    pub timeout_ms: i64,
    pub batch_size: i64,
    /// The provider honours an `idempotency_key` on `add` (another reseller-api does), so
    /// an ambiguous send can be retried safely; otherwise it waits for an operator.
    pub idempotent_add: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

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
