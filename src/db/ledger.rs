//! The append-only ledger: every balance change is one entry, written in the same
//! transaction as the change.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::backend::get_result_native;
use super::columns;

use super::schema::ledger_entries;
use super::{accounts, now, DbConnection, WriteConn};
use crate::domain::ids::{AccountId, OrderId, RefundId, SubscriptionId, TopUpId};
use crate::domain::ledger::{LedgerEntry, LedgerKind};
use crate::domain::money::SignedMoney;

/// Named columns: each field binds the column of its name (`super::columns`).
#[derive(Queryable, Selectable)]
#[diesel(table_name = ledger_entries, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct EntryRow {
    id: i64,
    account_id: AccountId,
    #[diesel(deserialize_as = String)]
    kind: LedgerKind,
    amount_micros: SignedMoney,
    balance_after_micros: SignedMoney,
    order_id: Option<OrderId>,
    refund_id: Option<RefundId>,
    top_up_id: Option<TopUpId>,
    created_at: NaiveDateTime,
    held_amount_micros: SignedMoney,
    held_after_micros: SignedMoney,
    subscription_id: Option<SubscriptionId>,
}

impl From<EntryRow> for LedgerEntry {
    fn from(row: EntryRow) -> LedgerEntry {
        LedgerEntry {
            id: row.id,
            account_id: row.account_id,
            kind: row.kind,
            amount: row.amount_micros,
            balance_after: row.balance_after_micros,
            order_id: row.order_id,
            refund_id: row.refund_id,
            top_up_id: row.top_up_id,
            created_at: row.created_at,
            held_amount: row.held_amount_micros,
            held_after: row.held_after_micros,
            subscription_id: row.subscription_id,
        }
    }
}

/// What an entry is about.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refs {
    pub order_id: Option<OrderId>,
    pub refund_id: Option<RefundId>,
    pub top_up_id: Option<TopUpId>,
}

/// How a negative amount may move the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overdraft {
    /// Only if the balance covers it (orders, top-up refunds).
    Refuse,
    /// Even below zero (chargebacks).
    Allow,
}

/// Changes the balance by `amount` and records the entry. Returns `None`, having
/// changed nothing, when a debit is not covered and `overdraft` is `Refuse`.
pub fn post(
    conn: &mut WriteConn<'_>,
    account_id: AccountId,
    kind: LedgerKind,
    amount: SignedMoney,
    refs: Refs,
    overdraft: Overdraft,
) -> QueryResult<Option<LedgerEntry>> {
    let amount_micros = amount.micros();
    let balance_after = if amount_micros < 0 && overdraft == Overdraft::Refuse {
        match accounts::debit_if_covered(conn, account_id, -amount_micros)? {
            Some(balance) => balance,
            None => return Ok(None),
        }
    } else {
        accounts::add_to_balance(conn, account_id, amount_micros)?
    };
    // Only the id comes back: the rest of the entry is what was written.
    let created_at = now();
    let id = diesel::insert_into(ledger_entries::table)
        .values((
            ledger_entries::account_id.eq(account_id),
            ledger_entries::kind.eq(kind.as_str()),
            ledger_entries::amount_micros.eq(amount_micros),
            ledger_entries::balance_after_micros.eq(balance_after),
            ledger_entries::order_id.eq(refs.order_id),
            ledger_entries::refund_id.eq(refs.refund_id),
            ledger_entries::top_up_id.eq(refs.top_up_id),
            ledger_entries::created_at.eq(created_at),
        ))
        .returning(ledger_entries::id);
    let id = get_result_native(conn, id)?;
    Ok(Some(LedgerEntry {
        id,
        account_id,
        kind,
        amount,
        balance_after: SignedMoney::from_micros(balance_after),
        order_id: refs.order_id,
        refund_id: refs.refund_id,
        top_up_id: refs.top_up_id,
        created_at,
        held_amount: SignedMoney::ZERO,
        held_after: SignedMoney::ZERO,
        subscription_id: None,
    }))
}

/// Moves money between an account's available and held balances (and out of or into
/// them) as one entry: `available` changes the available balance, `held` the held one.
/// Returns `None`, having changed nothing, when either would go below zero (a chargeback
/// is not among these moves).
pub fn post_moves(
    conn: &mut WriteConn<'_>,
    account_id: AccountId,
    kind: LedgerKind,
    available: SignedMoney,
    held: SignedMoney,
    refs: Refs,
    subscription_id: Option<SubscriptionId>,
) -> QueryResult<Option<LedgerEntry>> {
    let Some((balance_after, held_after)) =
        accounts::move_balances(conn, account_id, available.micros(), held.micros())?
    else {
        return Ok(None);
    };
    let created_at = now();
    let id = diesel::insert_into(ledger_entries::table)
        .values((
            ledger_entries::account_id.eq(account_id),
            ledger_entries::kind.eq(kind.as_str()),
            ledger_entries::amount_micros.eq(available.micros()),
            ledger_entries::balance_after_micros.eq(balance_after),
            ledger_entries::held_amount_micros.eq(held.micros()),
            ledger_entries::held_after_micros.eq(held_after),
            ledger_entries::order_id.eq(refs.order_id),
            ledger_entries::refund_id.eq(refs.refund_id),
            ledger_entries::top_up_id.eq(refs.top_up_id),
            ledger_entries::subscription_id.eq(subscription_id),
            ledger_entries::created_at.eq(created_at),
        ))
        .returning(ledger_entries::id);
    let id = get_result_native(conn, id)?;
    Ok(Some(LedgerEntry {
        id,
        account_id,
        kind,
        amount: available,
        balance_after: SignedMoney::from_micros(balance_after),
        order_id: refs.order_id,
        refund_id: refs.refund_id,
        top_up_id: refs.top_up_id,
        created_at,
        held_amount: held,
        held_after: SignedMoney::from_micros(held_after),
        subscription_id,
    }))
}

/// One page of an account's entries, newest first, strictly older than `starting_after`.
pub fn page(
    conn: &mut DbConnection,
    account_id: AccountId,
    starting_after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<LedgerEntry>> {
    let mut query = ledger_entries::table
        .filter(ledger_entries::account_id.eq(account_id))
        .order(ledger_entries::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(cursor) = starting_after {
        query = query.filter(ledger_entries::id.lt(cursor));
    }
    query
        .select(columns::<EntryRow>())
        .load::<EntryRow>(conn)
        .map(|rows| rows.into_iter().map(LedgerEntry::from).collect())
}

/// Entries in id order after `after_id`, for audits that walk the whole ledger.
pub fn scan(conn: &mut DbConnection, after_id: i64, limit: i64) -> QueryResult<Vec<LedgerEntry>> {
    ledger_entries::table
        .filter(ledger_entries::id.gt(after_id))
        .order(ledger_entries::id.asc())
        .limit(limit)
        .select(columns::<EntryRow>())
        .load::<EntryRow>(conn)
        .map(|rows| rows.into_iter().map(LedgerEntry::from).collect())
}

/// Every entry of one order (its charge, its refunds), oldest first.
pub fn for_order(conn: &mut DbConnection, order_id: OrderId) -> QueryResult<Vec<LedgerEntry>> {
    ledger_entries::table
        .filter(ledger_entries::order_id.eq(order_id))
        .order(ledger_entries::id.asc())
        .select(columns::<EntryRow>())
        .load::<EntryRow>(conn)
        .map(|rows| rows.into_iter().map(LedgerEntry::from).collect())
}
