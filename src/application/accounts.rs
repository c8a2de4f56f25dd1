//! Accounts and their API keys.

use crate::db::{self, DbConnection};
use crate::domain::account::{Role, Scope};
use crate::domain::api_key::generate_api_key;

/// Issues a new API key for an account, returning the record and the plaintext (shown once).
pub fn issue_api_key(
    conn: &mut DbConnection,
    account_id: i64,
    scopes: &[Scope],
) -> Result<(db::api_keys::ApiKey, String), diesel::result::Error> {
    let key = generate_api_key();
    let record = db::api_keys::insert(conn, account_id, &key.hash, &key.prefix, scopes)?;
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
