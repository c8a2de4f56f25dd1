//! Report rollups (`db::rollups`): the fold that brings them up to the change log, one
//! process at a time.

use crate::db::{self, rollups, DbConnection};

/// The job row (`job_leases`) a fold holds. Named for the migration that last changed the
/// rollup levels: that migration makes the database refuse the previous name, so a process
/// of an older version still running after the upgrade cannot fold with fewer levels (its
/// fold fails and changes nothing; its 15-minute rows would otherwise leave the new levels
/// stale). `2026-12-08-000100_account_hour_rollups` retired `rollups`,
/// `2026-12-08-000200_account_total_hours` retired `rollups 2026-12-08`,
/// `2026-12-08-000300_zone_days` retired `rollups 2026-12-08-000200`.
pub const FOLD_JOB: &str = "rollups 2026-12-08-000300";

/// Ranges of buckets one fold transaction recomputes at most (and at most a week of
/// buckets in all), so a transaction stays short (on SQLite it holds the writer).
pub const RANGES_PER_FOLD: usize = 64;

/// How often the worker folds the quarter still open (the 15-minute bucket holding now):
/// every order placed lands there, and a fold recomputes a bucket from all its rows, so
/// folding it every second would reread a busy quarter's orders every second under the
/// writer (SQLite). Reports read a bucket not folded yet from its rows, exactly, so the
/// open quarter waits: folded once a minute, and whole once it has closed.
pub const OPEN_QUARTER_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Folds the change log in transactions of at most [`RANGES_PER_FOLD`] ranges, at most
/// `passes` of them; with `below`, only the buckets lower than it (the worker passes the
/// open quarter for most passes, see [`OPEN_QUARTER_EVERY`]). Each transaction first
/// takes the [`FOLD_JOB`] row (`db::jobs::take_turn`, in the same transaction), so on
/// PostgreSQL a second process waits on that row until the first commits: folds never run
/// side by side. Returns what was folded in all.
pub fn fold(
    conn: &mut DbConnection,
    owner: &str,
    passes: usize,
    below: Option<i64>,
) -> Result<rollups::Folded, diesel::result::Error> {
    let mut total = rollups::Folded::default();
    for _ in 0..passes {
        // Nothing to fold (most seconds, with the open quarter left for later): no write
        // transaction at all.
        if !rollups::has_changes(conn, below)? {
            break;
        }
        let folded = db::write_tx(conn, |conn| {
            if !db::jobs::take_turn(conn, FOLD_JOB, owner, chrono::Duration::zero())? {
                return Ok(rollups::Folded::default());
            }
            rollups::fold(conn, RANGES_PER_FOLD, below)
        })?;
        total.changes += folded.changes;
        total.buckets += folded.buckets;
        if folded.changes == 0 {
            break;
        }
    }
    Ok(total)
}

/// After a bulk load (`seed`): recomputes every bucket between the lowest and the highest
/// the change log names, a week per transaction (each holding the [`FOLD_JOB`] row
/// like [`fold`]), then folds whatever was logged meanwhile. One pass over the history,
/// where [`fold`] would revisit a week for every batch of changes naming it.
pub fn rebuild(
    conn: &mut DbConnection,
    owner: &str,
) -> Result<rollups::Folded, diesel::result::Error> {
    let mut total = rollups::Folded::default();
    let Some((lo, hi)) = rollups::changed_bounds(conn)? else {
        return Ok(total);
    };
    let mut first = lo.div_euclid(rollups::MAX_SPAN) * rollups::MAX_SPAN;
    while first <= hi {
        let end = first + rollups::MAX_SPAN;
        let done = db::write_tx(conn, |conn| {
            if !db::jobs::take_turn(conn, FOLD_JOB, owner, chrono::Duration::zero())? {
                return Ok(None);
            }
            rollups::rebuild_range(conn, first, end).map(Some)
        })?;
        let Some(done) = done else {
            // Another process is folding: leave the rest to it.
            return Ok(total);
        };
        total.changes += done.changes;
        total.buckets += done.buckets;
        first = end;
    }
    let rest = fold(conn, owner, usize::MAX, None)?;
    total.changes += rest.changes;
    Ok(total)
}

/// Brings the report zones the rollups keep (`db::rollups::zones`) to `phases` (see
/// `WorkerConfig::report_zones`): lists the missing ones, with `drop_others` drops the
/// others, and fills one week of the history of the first zone still filling, in one
/// transaction holding the [`FOLD_JOB`] row (so no fold runs beside it: the zone's days
/// are summed from rollups only a fold changes). Returns whether every zone of `phases`
/// is filled (reports read a zone's days only then), `None` when another process held
/// the fold's turn (nothing done).
pub fn keep_zones(
    conn: &mut DbConnection,
    owner: &str,
    phases: &[i64],
    drop_others: bool,
) -> Result<Option<bool>, diesel::result::Error> {
    // Read first, outside the writer: kept as they should be (every minute, in the
    // worker's steady state), nothing to write.
    let kept = rollups::zones(conn)?;
    let settled = phases
        .iter()
        .all(|phase| kept.iter().any(|z| z.phase == *phase && z.filled()))
        && (!drop_others || kept.iter().all(|z| phases.contains(&z.phase)));
    if settled {
        return Ok(Some(true));
    }
    db::write_tx(conn, |conn| {
        if !db::jobs::take_turn(conn, FOLD_JOB, owner, chrono::Duration::zero())? {
            return Ok(None);
        }
        let mut kept = {
            let read: &mut DbConnection = conn;
            rollups::zones(read)?
        };
        if drop_others {
            for zone in &kept {
                if !phases.contains(&zone.phase) {
                    rollups::drop_zone(conn, zone.phase)?;
                }
            }
        }
        kept.retain(|zone| phases.contains(&zone.phase));
        for &phase in phases {
            if !kept.iter().any(|zone| zone.phase == phase) {
                kept.push(rollups::add_zone(conn, phase)?);
            }
        }
        if let Some(zone) = kept.iter_mut().find(|zone| !zone.filled()) {
            *zone = rollups::fill_zone(conn, *zone)?;
        }
        Ok(Some(kept.iter().all(rollups::Zone::filled)))
    })
}

/// [`keep_zones`] until every zone of `phases` is listed and filled, dropping none (after
/// a bulk load, before a benchmark: zones other processes list stay). Gives up when
/// another process holds the fold's turn.
pub fn fill_zones(
    conn: &mut DbConnection,
    owner: &str,
    phases: &[i64],
) -> Result<bool, diesel::result::Error> {
    loop {
        match keep_zones(conn, owner, phases, false)? {
            Some(true) => return Ok(true),
            Some(false) => {}
            None => return Ok(false),
        }
    }
}
