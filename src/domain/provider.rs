//! An upstream provider, as the rest of the code sees it.

use chrono::NaiveDateTime;

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
