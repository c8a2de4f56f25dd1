//! The audit log's table: appended inside the transaction of each operator write
//! (`application::audit`), read by `GET /v1/admin/audit`, checked by `verify`, and removed
//! only by the retention sweep. Nothing here updates an entry.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{audit_entries, audit_log_start};
use super::{now, DbConnection, WriteConn};
use crate::domain::account::Role;
use crate::domain::audit::{Actor, ActorKind, AuditAction, AuditChange, AuditEntry, AuditTarget};
use crate::domain::ids::{AccountId, ApiKeyId, AuditEntryId};

type Row = (
    AuditEntryId,
    NaiveDateTime,
    String,
    Option<AccountId>,
    Option<ApiKeyId>,
    Option<String>,
    String,
    String,
    Option<i64>,
    Option<AccountId>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

fn bad(e: impl std::error::Error + Send + Sync + 'static) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(Box::new(e))
}

fn json(text: Option<String>) -> QueryResult<Option<serde_json::Value>> {
    text.map(|t| serde_json::from_str(&t).map_err(bad))
        .transpose()
}

fn decode(row: Row) -> QueryResult<AuditEntry> {
    let (
        id,
        created_at,
        kind,
        actor_account_id,
        actor_api_key_id,
        role,
        action,
        target_type,
        target_id,
        account_id,
        client_addr,
        request_id,
        before,
        after,
        secrets,
    ) = row;
    Ok(AuditEntry {
        id,
        created_at,
        actor: Actor {
            kind: ActorKind::try_from(kind).map_err(bad)?,
            account_id: actor_account_id,
            api_key_id: actor_api_key_id,
            role: role.map(Role::try_from).transpose().map_err(bad)?,
            client_addr,
            request_id,
        },
        action: AuditAction::try_from(action).map_err(bad)?,
        target_type: AuditTarget::try_from(target_type).map_err(bad)?,
        target_id,
        account_id,
        before: json(before)?,
        after: json(after)?,
        secrets: secrets
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// What an entry records besides its actor.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub action: AuditAction,
    pub target_type: AuditTarget,
    pub target_id: Option<i64>,
    pub account_id: Option<AccountId>,
    pub change: &'a AuditChange,
}

/// Appends one entry; call inside the transaction of the change it records.
pub fn insert(conn: &mut WriteConn<'_>, actor: &Actor, entry: &NewEntry<'_>) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    diesel::insert_into(audit_entries::table)
        .values((
            audit_entries::created_at.eq(now()),
            audit_entries::actor_kind.eq(actor.kind.as_str()),
            audit_entries::actor_account_id.eq(actor.account_id),
            audit_entries::actor_api_key_id.eq(actor.api_key_id),
            audit_entries::actor_role.eq(actor.role.map(Role::as_str)),
            audit_entries::action.eq(entry.action.as_str()),
            audit_entries::target_type.eq(entry.target_type.as_str()),
            audit_entries::target_id.eq(entry.target_id),
            audit_entries::account_id.eq(entry.account_id),
            audit_entries::client_addr.eq(actor.client_addr.as_deref()),
            audit_entries::request_id.eq(actor.request_id.as_deref()),
            audit_entries::before_data.eq(entry.change.before.as_ref().map(|v| v.to_string())),
            audit_entries::after_data.eq(entry.change.after.as_ref().map(|v| v.to_string())),
            audit_entries::secret_fields.eq(entry.change.secrets.join(",")),
        ))
        .execute(conn)?;
    Ok(())
}

/// Whose entries a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorFilter {
    Cli,
    Account(AccountId),
}

/// Which entries a list shows.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<ActorFilter>,
    pub action: Option<AuditAction>,
    pub target_type: Option<AuditTarget>,
    pub target_id: Option<i64>,
    /// Entries about this account (its own changes and its objects').
    pub account_id: Option<AccountId>,
    pub created_from: Option<NaiveDateTime>,
    pub created_to: Option<NaiveDateTime>,
    /// Older than this id.
    pub starting_after: Option<i64>,
}

/// A page of entries, newest first, `limit` rows at most.
pub fn list(
    conn: &mut DbConnection,
    filter: &AuditFilter,
    limit: i64,
) -> QueryResult<Vec<AuditEntry>> {
    let mut query = audit_entries::table
        .select(audit_entries::all_columns)
        .into_boxed();
    match filter.actor {
        Some(ActorFilter::Cli) => {
            query = query.filter(audit_entries::actor_kind.eq(ActorKind::Cli.as_str()))
        }
        Some(ActorFilter::Account(id)) => {
            query = query.filter(audit_entries::actor_account_id.eq(id))
        }
        None => {}
    }
    if let Some(action) = filter.action {
        query = query.filter(audit_entries::action.eq(action.as_str()));
    }
    if let Some(target_type) = filter.target_type {
        query = query.filter(audit_entries::target_type.eq(target_type.as_str()));
    }
    if let Some(target_id) = filter.target_id {
        query = query.filter(audit_entries::target_id.eq(target_id));
    }
    if let Some(account_id) = filter.account_id {
        query = query.filter(audit_entries::account_id.eq(account_id));
    }
    if let Some(from) = filter.created_from {
        query = query.filter(audit_entries::created_at.ge(from));
    }
    if let Some(to) = filter.created_to {
        query = query.filter(audit_entries::created_at.lt(to));
    }
    if let Some(after) = filter.starting_after {
        query = query.filter(audit_entries::id.lt(after));
    }
    query
        .order(audit_entries::id.desc())
        .limit(limit)
        .load::<Row>(conn)?
        .into_iter()
        .map(decode)
        .collect()
}

/// When the log began (or, after the retention sweep removed older entries, the oldest
/// time it still covers in full).
pub fn began_at(conn: &mut DbConnection) -> QueryResult<NaiveDateTime> {
    audit_log_start::table
        .find(1i64)
        .select(audit_log_start::began_at)
        .first(conn)
}

/// An entry's id, action, target type and target id, as stored.
pub type MoneyKey = (i64, String, String, Option<i64>);

/// The entries of money-moving actions at or after `since`, as (action, target type,
/// target id), for `verify` to match the ledger against; oldest first, after `after_id`.
pub fn money_keys(
    conn: &mut DbConnection,
    actions: &[AuditAction],
    after_id: i64,
    limit: i64,
) -> QueryResult<Vec<MoneyKey>> {
    let actions: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
    audit_entries::table
        .filter(audit_entries::action.eq_any(actions))
        .filter(audit_entries::id.gt(after_id))
        .order(audit_entries::id.asc())
        .limit(limit)
        .select((
            audit_entries::id,
            audit_entries::action,
            audit_entries::target_type,
            audit_entries::target_id,
        ))
        .load(conn)
}

/// Deletes up to `batch` entries created before `before`, and moves the log's start to
/// `before` (the entries older than it may be gone now); returns how many went.
pub fn delete_older(
    conn: &mut WriteConn<'_>,
    before: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let conn: &mut DbConnection = conn;
    let ids: Vec<AuditEntryId> = audit_entries::table
        .filter(audit_entries::created_at.lt(before))
        .select(audit_entries::id)
        .order(audit_entries::id.asc())
        .limit(batch)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(audit_log_start::table.filter(audit_log_start::began_at.lt(before)))
        .set(audit_log_start::began_at.eq(before))
        .execute(conn)?;
    diesel::delete(audit_entries::table.filter(audit_entries::id.eq_any(&ids))).execute(conn)
}
