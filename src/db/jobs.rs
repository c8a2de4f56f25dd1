//! Periodic work one process does at a time for all of them (the alert evaluation, the
//! scheduled catalog sync of each provider): each job is a `job_leases` row, and a
//! conditional update of its last run decides which process takes an interval's turn.

use chrono::Duration;
use diesel::prelude::*;

use super::schema::job_leases;
use super::{now, DbConnection, WriteConn};

/// Takes this interval's turn at job `name`: true for the one process whose conditional
/// update finds the last run at least `every` ago. A job named for the first time (one per
/// provider) gets its row here.
pub fn take_turn(
    conn: &mut WriteConn<'_>,
    name: &str,
    owner: &str,
    every: Duration,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let insert = diesel::insert_into(job_leases::table)
        .values(job_leases::name.eq(name))
        .on_conflict(job_leases::name)
        .do_nothing();
    // Diesel builds `ON CONFLICT` for each backend, not for `DbConnection`: same SQL on both.
    match conn {
        DbConnection::Pg(pg) => insert.execute(pg),
        DbConnection::Sqlite(sqlite) => insert.execute(sqlite),
    }?;
    let at = now();
    let taken = diesel::update(
        job_leases::table.find(name).filter(
            job_leases::last_run_at
                .is_null()
                .or(job_leases::last_run_at.le(at - every)),
        ),
    )
    .set((
        job_leases::lease_owner.eq(owner),
        job_leases::lease_until.eq(Some(at + every)),
        job_leases::last_run_at.eq(Some(at)),
    ))
    .execute(conn)?;
    Ok(taken == 1)
}
