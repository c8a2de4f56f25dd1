//! Read-only SQLite connections for short reads run on the calling thread
//! (`http::state::AppState::read`).
//!
//! A read of a few rows on SQLite in WAL mode costs microseconds and never waits for the
//! writer: it reads the last commit. Sent to the blocking pool it costs two thread
//! hand-offs (there and back), several times the query itself. So each actix worker
//! thread keeps one connection of its own, opened by [`open`], and runs such reads inline.
//! The connection is `query_only`: a write through it fails instead of taking the lock.
//! PostgreSQL has no reader: its reads are network round trips and stay off the workers.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::SqliteConnection;

use super::{Backend, DbConnection};

/// How long an inline read may wait on SQLite's lock. A WAL reader meets one only while
/// another connection recovers or resets the WAL index; it is not worth stalling an actix
/// worker (and every request on it) for longer than this.
const READER_BUSY_TIMEOUT_MS: u32 = 1_000;

/// A read-only connection to the SQLite database behind `url`; `None` on PostgreSQL.
pub fn open(url: &str) -> QueryResult<Option<DbConnection>> {
    let Backend::Sqlite(path) = Backend::from_url(url) else {
        return Ok(None);
    };
    let mut conn = SqliteConnection::establish(&path)
        .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {READER_BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON; \
         PRAGMA query_only = ON;"
    ))?;
    Ok(Some(DbConnection::Sqlite(conn)))
}
