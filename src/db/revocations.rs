//! The revocation generation: one counter row that every revocation of an API key bumps,
//! so processes that cache validated access tokens know when to forget them.

use diesel::prelude::*;

use super::schema::revocation_generation;
use super::{DbConnection, WriteConn};

const ROW: i64 = 1;

/// The current generation (one primary-key read).
pub fn generation(conn: &mut DbConnection) -> QueryResult<i64> {
    revocation_generation::table
        .find(ROW)
        .select(revocation_generation::generation)
        // By its key, so no `LIMIT` (see "one row by its key" in `db`).
        .get_result(conn)
}

/// Moves the generation on; call it in the transaction that revokes.
pub fn bump(conn: &mut WriteConn<'_>) -> QueryResult<i64> {
    let conn: &mut DbConnection = conn;
    diesel::update(revocation_generation::table.find(ROW))
        .set(revocation_generation::generation.eq(revocation_generation::generation + 1))
        .returning(revocation_generation::generation)
        .get_result(conn)
}
