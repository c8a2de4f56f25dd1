//! Bulk loads for `reseller-api seed` (`tooling::seed`): rows written as multi-row
//! INSERTs inside the caller's write transaction, with explicit ids, then the sequences
//! moved past them and the planner's statistics refreshed.
//!
//! The rows arrive as SQL text (parenthesised VALUES tuples) built by the seed from
//! numbers and fixed names only; nothing in them comes from outside.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::{DbConnection, WriteConn};

/// Rows per INSERT statement.
const ROWS_PER_INSERT: usize = 1_000;

/// Writes `rows` (each a parenthesised VALUES tuple) into `table`'s `columns`, in
/// INSERTs of [`ROWS_PER_INSERT`] rows; returns how many were written.
pub fn insert_rows(
    conn: &mut WriteConn<'_>,
    table: &str,
    columns: &str,
    rows: &[String],
) -> QueryResult<usize> {
    let conn: &mut DbConnection = conn;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO {table} ({columns}) VALUES {};",
            chunk.join(",")
        );
        conn.batch_execute(&sql)?;
    }
    Ok(rows.len())
}

/// Moves each table's id sequence past its highest id after rows were written with
/// explicit ids (PostgreSQL; SQLite's `INTEGER PRIMARY KEY` needs nothing). The orders'
/// sequence also gives subscriptions their ids: it moves past the highest of both.
pub fn reset_sequences(conn: &mut WriteConn<'_>, tables: &[&str]) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    if let DbConnection::Pg(_) = conn {
        for table in tables {
            let highest = match *table {
                "orders" => {
                    "GREATEST((SELECT MAX(id) FROM orders), (SELECT MAX(id) FROM subscriptions))"
                        .to_string()
                }
                table => format!("(SELECT MAX(id) FROM {table})"),
            };
            conn.batch_execute(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), {highest})"
            ))?;
        }
    }
    Ok(())
}

/// Refreshes the planner's statistics after a bulk load: `VACUUM ANALYZE` on PostgreSQL
/// (index-only scans need the visibility map), `ANALYZE` on SQLite. Outside any
/// transaction, since PostgreSQL's `VACUUM` cannot run inside one: one of the writes
/// listed at [`WriteConn`] that do not go through [`super::write_tx`]. It changes no row.
pub fn analyze(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Pg(_) => conn.batch_execute("VACUUM ANALYZE"),
        DbConnection::Sqlite(_) => conn.batch_execute("ANALYZE"),
    }
}
