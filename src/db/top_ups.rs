use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::backend::lock_row;
use super::columns;
use super::schema::top_ups;
use super::{now, DbConnection, WriteConn};
use crate::domain::ids::{AccountId, TopUpId};
use crate::domain::ledger::{TopUp, TopUpStatus};
use crate::domain::money::{Money, SignedMoney};

/// Named columns: each field binds the column of its name (`super::columns`).
#[derive(Queryable, Selectable)]
#[diesel(table_name = top_ups, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct TopUpRow {
    id: TopUpId,
    account_id: AccountId,
    amount_micros: Money,
    refunded_micros: Money,
    gateway: String,
    gateway_ref: String,
    status: String,
    created_at: NaiveDateTime,
}

impl From<TopUpRow> for TopUp {
    fn from(row: TopUpRow) -> TopUp {
        TopUp {
            id: row.id,
            account_id: row.account_id,
            amount: row.amount_micros,
            refunded: row.refunded_micros,
            gateway: row.gateway,
            gateway_ref: row.gateway_ref,
            status: row.status,
            created_at: row.created_at,
        }
    }
}

pub fn insert(
    conn: &mut WriteConn<'_>,
    account_id: AccountId,
    amount: Money,
    gateway: &str,
    gateway_ref: &str,
) -> QueryResult<TopUp> {
    let conn: &mut DbConnection = conn;
    diesel::insert_into(top_ups::table)
        .values((
            top_ups::account_id.eq(account_id),
            top_ups::amount_micros.eq(amount.micros()),
            top_ups::refunded_micros.eq(0),
            top_ups::gateway.eq(gateway),
            top_ups::gateway_ref.eq(gateway_ref),
            top_ups::status.eq(TopUpStatus::Succeeded.as_str()),
            top_ups::created_at.eq(now()),
        ))
        .returning(columns::<TopUpRow>())
        .get_result::<TopUpRow>(conn)
        .map(TopUp::from)
}

pub fn find_by_gateway_ref(
    conn: &mut DbConnection,
    gateway_ref: &str,
) -> QueryResult<Option<TopUp>> {
    top_ups::table
        .filter(top_ups::gateway_ref.eq(gateway_ref))
        .select(columns::<TopUpRow>())
        .first::<TopUpRow>(conn)
        .optional()
        .map(|row| row.map(TopUp::from))
}

/// Every top-up's id, account and amount, for `verify`.
pub fn all_amounts(conn: &mut DbConnection) -> QueryResult<Vec<(i64, i64, i64, i64)>> {
    top_ups::table
        .select((
            top_ups::id,
            top_ups::account_id,
            top_ups::amount_micros,
            top_ups::refunded_micros,
        ))
        .order(top_ups::id)
        .load(conn)
}

/// Reads a top-up and locks its row until the transaction ends.
pub fn lock(conn: &mut DbConnection, id: TopUpId) -> QueryResult<Option<TopUp>> {
    lock_row(
        conn,
        top_ups::table.find(id).select(columns::<TopUpRow>()),
        QueryDsl::for_update,
    )
    .map(|row: Option<TopUpRow>| row.map(TopUp::from))
}

/// Moves `delta` (signed) into or out of what was returned of a top-up; the table's CHECK
/// keeps it between zero and the top-up's amount.
pub fn add_refunded(
    conn: &mut WriteConn<'_>,
    id: TopUpId,
    delta: SignedMoney,
    status: Option<&str>,
) -> QueryResult<TopUp> {
    let conn: &mut DbConnection = conn;
    let delta = delta.micros();
    let row = match status {
        Some(status) => diesel::update(top_ups::table.find(id))
            .set((
                top_ups::refunded_micros.eq(top_ups::refunded_micros + delta),
                top_ups::status.eq(status),
            ))
            .returning(columns::<TopUpRow>())
            .get_result::<TopUpRow>(conn)?,
        None => diesel::update(top_ups::table.find(id))
            .set(top_ups::refunded_micros.eq(top_ups::refunded_micros + delta))
            .returning(columns::<TopUpRow>())
            .get_result::<TopUpRow>(conn)?,
    };
    Ok(row.into())
}

pub fn find(conn: &mut DbConnection, id: TopUpId) -> QueryResult<Option<TopUp>> {
    top_ups::table
        .find(id)
        .select(columns::<TopUpRow>())
        .first::<TopUpRow>(conn)
        .optional()
        .map(|row| row.map(TopUp::from))
}
