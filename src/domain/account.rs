use chrono::NaiveDateTime;

use super::money::SignedMoney;
use super::string_enum;
use crate::domain::ids::AccountId;

string_enum! {
    /// Who an account is: a reseller buys, an admin runs the panel.
    Role { Reseller => "reseller", Admin => "admin" }
}

string_enum! {
    /// Suspended accounts can read but not order.
    AccountStatus { Active => "active", Suspended => "suspended" }
}

string_enum! {
    /// What a token may do.
    Scope {
        OrdersRead => "orders:read",
        OrdersWrite => "orders:write",
        RefundsRead => "refunds:read",
        RefundsWrite => "refunds:write",
        ReportsRead => "reports:read",
        Webhooks => "webhooks",
        Admin => "admin",
    }
}

impl Role {
    /// Scopes a new key of this role carries unless others are asked for.
    pub fn default_scopes(self) -> Vec<Scope> {
        match self {
            Role::Reseller => Scope::ALL
                .iter()
                .copied()
                .filter(|s| *s != Scope::Admin)
                .collect(),
            Role::Admin => Scope::ALL.to_vec(),
        }
    }
}

/// Space-separated scope list, as in the token's `scope` claim and the key's record.
pub fn scopes_to_string(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a space-separated scope list, ignoring names it does not know.
pub fn scopes_from_str(text: &str) -> Vec<Scope> {
    text.split_whitespace().filter_map(Scope::parse).collect()
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub role: Role,
    pub status: AccountStatus,
    pub currency: String,
    /// Below zero only after a chargeback.
    pub balance: SignedMoney,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Exempt from the refund-abuse policy until then.
    pub refund_allowlisted_until: Option<NaiveDateTime>,
    /// Held for subscriptions (never below zero): not spendable, released when they end.
    pub held: SignedMoney,
}

/// A validated ISO 4217-style currency code: three uppercase ASCII letters.
pub fn parse_currency(raw: &str) -> Result<String, &'static str> {
    if raw.len() == 3 && raw.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(raw.to_string())
    } else {
        Err("must be a three-letter uppercase currency code such as USD")
    }
}
