//! Report rollups (`db::rollups`): the fold that brings them up to the change log, one
//! process at a time.

use crate::db::{self, rollups, DbConnection};

/// Ranges of buckets one fold transaction recomputes at most (and at most a week of
/// buckets in all), so a transaction stays short (on SQLite it holds the writer).
pub const RANGES_PER_FOLD: usize = 64;

/// Folds the change log in transactions of at most [`RANGES_PER_FOLD`] ranges, at most
/// `passes` of them. Each transaction first takes the `rollups` job's row
/// (`db::jobs::take_turn`, in the same transaction), so on PostgreSQL a second process
/// waits on that row until the first commits: folds never run side by side. Returns what
/// was folded in all.
pub fn fold(
    conn: &mut DbConnection,
    owner: &str,
    passes: usize,
) -> Result<rollups::Folded, diesel::result::Error> {
    let mut total = rollups::Folded::default();
    for _ in 0..passes {
        let folded = db::write_tx(conn, |conn| {
            if !db::jobs::take_turn(conn, "rollups", owner, chrono::Duration::zero())? {
                return Ok(rollups::Folded::default());
            }
            rollups::fold(conn, RANGES_PER_FOLD)
        })?;
        total.changes += folded.changes;
        total.buckets += folded.buckets;
        if folded.changes == 0 {
            break;
        }
    }
    Ok(total)
}
