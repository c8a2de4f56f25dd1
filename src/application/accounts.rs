//! Accounts and their API keys.

use crate::db::{self, DbConnection};
use crate::domain::account::{Account, AccountStatus, Role, Scope};
use crate::domain::api_key::generate_api_key;
use crate::domain::event::EventType;
use crate::domain::ids::{AccountId, ApiKeyId};
use crate::error::ApiError;

/// Issues a new API key for an account, returning the record and the plaintext (shown once).
pub fn issue_api_key(
    conn: &mut DbConnection,
    account_id: AccountId,
    scopes: &[Scope],
) -> Result<(db::api_keys::ApiKey, String), diesel::result::Error> {
    let key = generate_api_key();
    // In the caller's write transaction where there is one, else in its own.
    let record = db::write_tx(conn, |conn| {
        db::api_keys::insert(conn, account_id, &key.hash, &key.prefix, scopes)
    })?;
    Ok((record, key.plaintext))
}

/// Creates an account and its first API key (with the role's default scopes) in one transaction.
pub fn create_account_with_key(
    conn: &mut DbConnection,
    name: &str,
    role: Role,
    currency: &str,
) -> Result<
    (
        crate::domain::account::Account,
        db::api_keys::ApiKey,
        String,
    ),
    diesel::result::Error,
> {
    db::write_tx(conn, |conn| {
        let account = db::accounts::insert(conn, name, role, currency)?;
        let (key, plaintext) = issue_api_key(conn, account.id, &role.default_scopes())?;
        Ok((account, key, plaintext))
    })
}

/// Revokes an API key and, in the same transaction, moves the revocation generation on,
/// so every process drops the access tokens it had validated and re-checks each one
/// against the key: tokens already issued with the key are refused within seconds.
/// Revoking twice keeps the first revocation time.
pub fn revoke_api_key(
    conn: &mut DbConnection,
    id: ApiKeyId,
) -> Result<Option<db::api_keys::ApiKey>, diesel::result::Error> {
    db::write_tx(conn, |conn| {
        let key = db::api_keys::revoke(conn, id)?;
        if key.is_some() {
            db::revocations::bump(conn)?;
        }
        Ok(key)
    })
}

/// Exempts an account from the refund-abuse policy until `until`, or (`None`) ends its
/// exemption now.
pub fn set_refund_allowlist(
    conn: &mut DbConnection,
    id: AccountId,
    until: Option<chrono::NaiveDateTime>,
) -> Result<Account, ApiError> {
    db::write_tx(conn, |conn| {
        db::accounts::set_refund_allowlist(conn, id, until)?
            .ok_or_else(|| ApiError::not_found("account"))
    })
}

/// Suspends or reactivates an account, with its `account.suspended` / `.reactivated` event
/// when the status changes (setting the status it already has changes nothing).
pub fn set_status(
    conn: &mut DbConnection,
    account_id: AccountId,
    status: AccountStatus,
) -> Result<Account, ApiError> {
    db::write_tx(conn, |conn| {
        let before =
            db::accounts::lock(conn, account_id)?.ok_or_else(|| ApiError::not_found("account"))?;
        if before.status == status {
            return Ok(before);
        }
        let account = db::accounts::set_status(conn, account_id, status)?
            .ok_or_else(|| ApiError::not_found("account"))?;
        let event_type = match status {
            AccountStatus::Suspended => EventType::AccountSuspended,
            AccountStatus::Active => EventType::AccountReactivated,
        };
        super::events::account(conn, event_type, &account)?;
        Ok(account)
    })
}
