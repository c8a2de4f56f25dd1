//! Refill requests on delivered orders, as API v2 clients make and follow them.

use diesel::prelude::*;

use super::schema::refills;
use super::{now, DbConnection};

/// Records a pending refill of an order, returning its id.
pub fn insert(conn: &mut DbConnection, order_id: i64, account_id: i64) -> QueryResult<i64> {
    diesel::insert_into(refills::table)
        .values((
            refills::order_id.eq(order_id),
            refills::account_id.eq(account_id),
            refills::status.eq("Pending"),
            refills::created_at.eq(now()),
        ))
        .returning(refills::id)
        .get_result(conn)
}

/// The status of one of the account's refills.
pub fn status(conn: &mut DbConnection, id: i64, account_id: i64) -> QueryResult<Option<String>> {
    refills::table
        .filter(refills::id.eq(id))
        .filter(refills::account_id.eq(account_id))
        .select(refills::status)
        .first(conn)
        .optional()
}
