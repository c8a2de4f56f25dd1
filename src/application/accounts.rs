//! Accounts and their API keys.

use super::audit::{self, Target};
use crate::db::{self, DbConnection};
use crate::domain::account::{Account, AccountStatus, Role, Scope};
use crate::domain::api_key::generate_api_key;
use crate::domain::audit::{Actor, AuditAction, AuditChange, AuditTarget};
use crate::domain::event::EventType;
use crate::domain::ids::{AccountId, ApiKeyId};
use crate::error::ApiError;

/// Issues a new API key for an account, returning the record and the plaintext (shown once).
pub fn issue_api_key(
    conn: &mut DbConnection,
    by: &Actor,
    account_id: AccountId,
    scopes: &[Scope],
) -> Result<(db::api_keys::ApiKey, String), diesel::result::Error> {
    let key = generate_api_key();
    // In the caller's write transaction where there is one, else in its own.
    let record = db::write_tx(conn, |conn| {
        let record = db::api_keys::insert(conn, account_id, &key.hash, &key.prefix, scopes)?;
        let after = serde_json::json!({
            "account_id": account_id,
            "prefix": record.prefix,
            "scopes": scopes,
        });
        let change = AuditChange::new(None, Some(after)).with_secret("key");
        let target = Target::new(AuditTarget::ApiKey, record.id.get(), Some(account_id));
        audit::record(conn, by, AuditAction::ApiKeyCreate, target, &change)?;
        Ok::<_, diesel::result::Error>(record)
    })?;
    Ok((record, key.plaintext))
}

/// Creates an account and its first API key (with the role's default scopes) in one transaction.
pub fn create_account_with_key(
    conn: &mut DbConnection,
    by: &Actor,
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
        let change = AuditChange::new(None, Some(audit::account(&account)));
        let target = Target::new(AuditTarget::Account, account.id.get(), Some(account.id));
        audit::record(conn, by, AuditAction::AccountCreate, target, &change)?;
        let (key, plaintext) = issue_api_key(conn, by, account.id, &role.default_scopes())?;
        Ok((account, key, plaintext))
    })
}

/// Revokes an API key and, in the same transaction, moves the revocation generation on,
/// so every process drops the access tokens it had validated and re-checks each one
/// against the key: tokens already issued with the key are refused within seconds.
/// Revoking twice keeps the first revocation time.
pub fn revoke_api_key(
    conn: &mut DbConnection,
    by: &Actor,
    id: ApiKeyId,
) -> Result<Option<db::api_keys::ApiKey>, diesel::result::Error> {
    db::write_tx(conn, |conn| {
        let was_live = db::api_keys::find(conn, id)?.is_some_and(|k| k.revoked_at.is_none());
        let key = db::api_keys::revoke(conn, id)?;
        if key.is_some() {
            db::revocations::bump(conn)?;
        }
        if let Some(key) = key.as_ref().filter(|_| was_live) {
            let change = AuditChange::new(
                Some(serde_json::json!({"revoked_at": null})),
                Some(serde_json::json!({"revoked_at": key.revoked_at.map(crate::resources::utc)})),
            );
            let target = Target::new(AuditTarget::ApiKey, id.get(), Some(key.account_id));
            audit::record(conn, by, AuditAction::ApiKeyRevoke, target, &change)?;
        }
        Ok(key)
    })
}

/// Exempts an account from the refund-abuse policy until `until`, or (`None`) ends its
/// exemption now.
pub fn set_refund_allowlist(
    conn: &mut DbConnection,
    by: &Actor,
    id: AccountId,
    until: Option<chrono::NaiveDateTime>,
) -> Result<Account, ApiError> {
    db::write_tx(conn, |conn| {
        let before = db::accounts::find(conn, id)?.ok_or_else(|| ApiError::not_found("account"))?;
        let account = db::accounts::set_refund_allowlist(conn, id, until)?
            .ok_or_else(|| ApiError::not_found("account"))?;
        let action = match until {
            Some(_) => AuditAction::RefundAllowlistSet,
            None => AuditAction::RefundAllowlistEnd,
        };
        let change = audit::changed(audit::account(&before), audit::account(&account));
        let target = Target::new(AuditTarget::Account, id.get(), Some(id));
        audit::record(conn, by, action, target, &change)?;
        Ok(account)
    })
}

/// Suspends or reactivates an account, with its `account.suspended` / `.reactivated` event
/// when the status changes (setting the status it already has changes nothing).
pub fn set_status(
    conn: &mut DbConnection,
    by: &Actor,
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
        let action = match status {
            AccountStatus::Suspended => AuditAction::AccountSuspend,
            AccountStatus::Active => AuditAction::AccountReactivate,
        };
        let change = audit::changed(audit::account(&before), audit::account(&account));
        let target = Target::new(AuditTarget::Account, account_id.get(), Some(account_id));
        audit::record(conn, by, action, target, &change)?;
        Ok(account)
    })
}
