use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::backend::{get_result_native, lock_row};
use super::columns;
use super::schema::accounts;
use super::{now, DbConnection, WriteConn};
use crate::domain::account::{Account, AccountStatus, Role};
use crate::domain::ids::AccountId;
use crate::domain::money::SignedMoney;

/// Named columns: each field binds the column of its name (`super::columns`).
#[derive(Queryable, Selectable)]
#[diesel(table_name = accounts, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct AccountRow {
    id: AccountId,
    name: String,
    #[diesel(deserialize_as = String)]
    role: Role,
    #[diesel(deserialize_as = String)]
    status: AccountStatus,
    currency: String,
    balance_micros: SignedMoney,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    refund_allowlisted_until: Option<NaiveDateTime>,
    held_micros: SignedMoney,
}

impl From<AccountRow> for Account {
    fn from(row: AccountRow) -> Account {
        Account {
            id: row.id,
            name: row.name,
            role: row.role,
            status: row.status,
            currency: row.currency,
            balance: row.balance_micros,
            created_at: row.created_at,
            updated_at: row.updated_at,
            refund_allowlisted_until: row.refund_allowlisted_until,
            held: row.held_micros,
        }
    }
}

pub fn insert(
    conn: &mut WriteConn<'_>,
    name: &str,
    role: Role,
    currency: &str,
) -> QueryResult<Account> {
    let conn: &mut DbConnection = conn;
    let at = now();
    diesel::insert_into(accounts::table)
        .values((
            accounts::name.eq(name),
            accounts::role.eq(role.as_str()),
            accounts::status.eq(AccountStatus::Active.as_str()),
            accounts::currency.eq(currency),
            accounts::balance_micros.eq(0),
            accounts::created_at.eq(at),
            accounts::updated_at.eq(at),
        ))
        .returning(columns::<AccountRow>())
        .get_result::<AccountRow>(conn)
        .map(Account::from)
}

pub fn find(conn: &mut DbConnection, id: AccountId) -> QueryResult<Option<Account>> {
    // By its key, so no `LIMIT` (see "one row by its key" in `db`).
    accounts::table
        .find(id)
        .select(columns::<AccountRow>())
        .get_result::<AccountRow>(conn)
        .optional()
        .map(|row| row.map(Account::from))
}

pub fn set_status(
    conn: &mut WriteConn<'_>,
    id: AccountId,
    status: AccountStatus,
) -> QueryResult<Option<Account>> {
    let conn: &mut DbConnection = conn;
    diesel::update(accounts::table.find(id))
        .set((
            accounts::status.eq(status.as_str()),
            accounts::updated_at.eq(now()),
        ))
        .returning(columns::<AccountRow>())
        .get_result::<AccountRow>(conn)
        .optional()
        .map(|row| row.map(Account::from))
}

/// Adds `micros` (signed) to the balance unconditionally; returns the new balance.
pub fn add_to_balance(conn: &mut WriteConn<'_>, id: AccountId, micros: i64) -> QueryResult<i64> {
    let conn: &mut DbConnection = conn;
    diesel::update(accounts::table.find(id))
        .set((
            accounts::balance_micros.eq(accounts::balance_micros + micros),
            accounts::updated_at.eq(now()),
        ))
        .returning(accounts::balance_micros)
        .get_result(conn)
}

/// Takes `micros` from the balance only if the balance covers it, in one statement, so
/// concurrent debits can never overdraw. `None` when the balance is short.
pub fn debit_if_covered(
    conn: &mut WriteConn<'_>,
    id: AccountId,
    micros: i64,
) -> QueryResult<Option<i64>> {
    let conn: &mut DbConnection = conn;
    let debit = DebitIfCovered {
        id,
        micros,
        at: now(),
    };
    get_result_native(conn, debit).optional()
}

/// The statement of [`debit_if_covered`], written out: diesel prepares each of its own
/// `UPDATE` statements anew on every call (it never caches them), and this one runs in
/// every order. With a static query id it is prepared once per connection.
#[derive(diesel::query_builder::QueryId)]
struct DebitIfCovered {
    id: AccountId,
    micros: i64,
    at: NaiveDateTime,
}

impl diesel::query_builder::Query for DebitIfCovered {
    type SqlType = diesel::sql_types::BigInt;
}

impl<Conn> RunQueryDsl<Conn> for DebitIfCovered {}

impl<DB> diesel::query_builder::QueryFragment<DB> for DebitIfCovered
where
    DB: diesel::backend::Backend,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
    NaiveDateTime: diesel::serialize::ToSql<diesel::sql_types::Timestamp, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Timestamp};
        out.push_sql("UPDATE accounts SET balance_micros = balance_micros - ");
        out.push_bind_param::<BigInt, _>(&self.micros)?;
        out.push_sql(", updated_at = ");
        out.push_bind_param::<Timestamp, _>(&self.at)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<BigInt, _>(&self.id)?;
        out.push_sql(" AND balance_micros >= ");
        out.push_bind_param::<BigInt, _>(&self.micros)?;
        out.push_sql(" RETURNING balance_micros");
        Ok(())
    }
}

/// Every account's id and stored balance, for `verify`.
pub fn all_balances(conn: &mut DbConnection) -> QueryResult<Vec<(AccountId, i64)>> {
    accounts::table
        .select((accounts::id, accounts::balance_micros))
        .order(accounts::id)
        .load(conn)
}

/// Every account's held balance (money held for subscriptions), for `verify`.
pub fn all_held(conn: &mut DbConnection) -> QueryResult<Vec<(AccountId, i64)>> {
    accounts::table
        .select((accounts::id, accounts::held_micros))
        .order(accounts::id)
        .load(conn)
}

/// Moves `available` (signed) into the available balance and `held` (signed) into the
/// held one in one statement, only if neither goes below zero; returns both balances
/// after, or `None` (nothing changed) when one would.
pub fn move_balances(
    conn: &mut WriteConn<'_>,
    id: AccountId,
    available: i64,
    held: i64,
) -> QueryResult<Option<(i64, i64)>> {
    let conn: &mut DbConnection = conn;
    // A credit needs no floor (a balance below zero after a chargeback still takes it).
    let floor = |change: i64| if change < 0 { -change } else { i64::MIN };
    diesel::update(accounts::table.find(id))
        .filter(accounts::balance_micros.ge(floor(available)))
        .filter(accounts::held_micros.ge(floor(held)))
        .set((
            accounts::balance_micros.eq(accounts::balance_micros + available),
            accounts::held_micros.eq(accounts::held_micros + held),
            accounts::updated_at.eq(now()),
        ))
        .returning((accounts::balance_micros, accounts::held_micros))
        .get_result(conn)
        .optional()
}

/// True when at least one admin account exists.
pub fn any_admin(conn: &mut DbConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        accounts::table.filter(accounts::role.eq(Role::Admin.as_str())),
    ))
    .get_result(conn)
}

/// Reads an account and locks its row until the transaction ends; serializes one
/// account's refund requests across every process sharing the database.
pub fn lock(conn: &mut DbConnection, id: AccountId) -> QueryResult<Option<Account>> {
    lock_row(
        conn,
        accounts::table.find(id).select(columns::<AccountRow>()),
        QueryDsl::for_update,
    )
    .map(|row: Option<AccountRow>| row.map(Account::from))
}

/// Exempts an account from the refund-abuse policy until `until` (or ends the exemption).
pub fn set_refund_allowlist(
    conn: &mut WriteConn<'_>,
    id: AccountId,
    until: Option<NaiveDateTime>,
) -> QueryResult<Option<Account>> {
    let conn: &mut DbConnection = conn;
    diesel::update(accounts::table.find(id))
        .set((
            accounts::refund_allowlisted_until.eq(until),
            accounts::updated_at.eq(now()),
        ))
        .returning(columns::<AccountRow>())
        .get_result::<AccountRow>(conn)
        .optional()
        .map(|row| row.map(Account::from))
}

/// The account behind a live (unrevoked) API key, with the key's scopes, in one query.
pub fn find_by_live_key(
    conn: &mut DbConnection,
    key_hash: &str,
) -> QueryResult<Option<(Account, Vec<crate::domain::account::Scope>)>> {
    use super::schema::api_keys;
    accounts::table
        .inner_join(api_keys::table)
        .filter(api_keys::key_hash.eq(key_hash))
        .filter(api_keys::revoked_at.is_null())
        .select((columns::<AccountRow>(), api_keys::scopes))
        // `key_hash` is unique, so no `LIMIT` (see "one row by its key" in `db`).
        .get_result::<(AccountRow, String)>(conn)
        .optional()
        .map(|row| {
            row.map(|(account, scopes)| {
                (
                    Account::from(account),
                    crate::domain::account::scopes_from_str(&scopes),
                )
            })
        })
}
