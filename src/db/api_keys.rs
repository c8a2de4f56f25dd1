use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::api_keys;
use super::{now, DbConnection, WriteConn};
use crate::domain::account::{scopes_from_str, scopes_to_string, Scope};
use crate::domain::ids::{AccountId, ApiKeyId};

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub account_id: AccountId,
    /// The first characters of the key, so a person can tell keys apart.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Queryable)]
struct ApiKeyRow {
    id: ApiKeyId,
    account_id: AccountId,
    _key_hash: String,
    prefix: String,
    scopes: String,
    created_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> ApiKey {
        ApiKey {
            id: row.id,
            account_id: row.account_id,
            prefix: row.prefix,
            scopes: scopes_from_str(&row.scopes),
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        }
    }
}

pub fn insert(
    conn: &mut WriteConn<'_>,
    account_id: AccountId,
    key_hash: &str,
    prefix: &str,
    scopes: &[Scope],
) -> QueryResult<ApiKey> {
    let conn: &mut DbConnection = conn;
    diesel::insert_into(api_keys::table)
        .values((
            api_keys::account_id.eq(account_id),
            api_keys::key_hash.eq(key_hash),
            api_keys::prefix.eq(prefix),
            api_keys::scopes.eq(scopes_to_string(scopes)),
            api_keys::created_at.eq(now()),
        ))
        .returning(api_keys::all_columns)
        .get_result::<ApiKeyRow>(conn)
        .map(ApiKey::from)
}

/// The live (unrevoked) key with this hash.
pub fn find_live_by_hash(conn: &mut DbConnection, key_hash: &str) -> QueryResult<Option<ApiKey>> {
    api_keys::table
        .filter(api_keys::key_hash.eq(key_hash))
        .filter(api_keys::revoked_at.is_null())
        .first::<ApiKeyRow>(conn)
        .optional()
        .map(|row| row.map(ApiKey::from))
}

/// One key, revoked or not.
pub fn find(conn: &mut DbConnection, id: ApiKeyId) -> QueryResult<Option<ApiKey>> {
    api_keys::table
        .find(id)
        .first::<ApiKeyRow>(conn)
        .optional()
        .map(|row| row.map(ApiKey::from))
}

/// Revokes a key; revoking twice keeps the first revocation time.
pub fn revoke(conn: &mut WriteConn<'_>, id: ApiKeyId) -> QueryResult<Option<ApiKey>> {
    let conn: &mut DbConnection = conn;
    diesel::update(
        api_keys::table
            .find(id)
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(now()))
    .execute(conn)?;
    api_keys::table
        .find(id)
        .first::<ApiKeyRow>(conn)
        .optional()
        .map(|row| row.map(ApiKey::from))
}

/// Whether key `id` belongs to `account_id` and is not revoked (one primary-key read).
pub fn is_live_for(
    conn: &mut DbConnection,
    id: ApiKeyId,
    account_id: AccountId,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        api_keys::table
            .find(id)
            .filter(api_keys::account_id.eq(account_id))
            .filter(api_keys::revoked_at.is_null()),
    ))
    .get_result(conn)
}
