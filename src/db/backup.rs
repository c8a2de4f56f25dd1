//! `reseller-api backup`: a consistent copy of the embedded SQLite database, taken while
//! the server runs, made durable and then checked before it is called a backup.

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::SqliteConnection;

use super::{verify, Backend, DbConnection};

/// A finished backup: where it is, how large, and what the checks of the copy found.
#[derive(Debug)]
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
    /// The books of the copy, recomputed by `verify`.
    pub books: verify::Report,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "`backup` copies the embedded SQLite database; for PostgreSQL use pg_dump (see docs/operations.md)"
    )]
    NotSqlite,
    #[error("there is no database at {0}")]
    NoDatabase(String),
    #[error("{0} already exists; a backup never overwrites a file")]
    Exists(PathBuf),
    #[error("cannot open the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("writing the backup: {0}")]
    Io(#[from] std::io::Error),
    #[error("the copy failed its integrity check: {0}")]
    Corrupt(String),
}

#[derive(QueryableByName)]
struct IntegrityLine {
    #[diesel(sql_type = Text)]
    integrity_check: String,
}

/// Copies the database behind `database_url` to `target` with `VACUUM INTO`, which reads
/// one snapshot (in WAL mode writers carry on meanwhile) and writes a compact file; then
/// fsyncs the file and its folder, and checks the copy with `PRAGMA integrity_check` and
/// `verify`. A copy whose books do not balance is reported in `books.problems`.
pub fn sqlite_backup(database_url: &str, target: &Path) -> Result<Backup, BackupError> {
    let Backend::Sqlite(source) = Backend::from_url(database_url) else {
        return Err(BackupError::NotSqlite);
    };
    if !Path::new(&source).exists() {
        return Err(BackupError::NoDatabase(source));
    }
    if target.exists() {
        return Err(BackupError::Exists(target.to_path_buf()));
    }
    let mut conn = SqliteConnection::establish(&source)?;
    conn.batch_execute("PRAGMA busy_timeout = 30000;")?;
    let target_text = target.to_string_lossy();
    diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(target_text.as_ref())
        .execute(&mut conn)?;
    drop(conn);
    std::fs::File::open(target)?.sync_all()?;
    let folder = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // The new directory entry must reach the disk too, or a crash could lose the file.
    std::fs::File::open(&folder)?.sync_all()?;

    let mut copy = SqliteConnection::establish(&target_text)?;
    let lines = diesel::sql_query("PRAGMA integrity_check").load::<IntegrityLine>(&mut copy)?;
    let verdict: Vec<String> = lines.into_iter().map(|l| l.integrity_check).collect();
    if verdict != ["ok"] {
        return Err(BackupError::Corrupt(verdict.join("; ")));
    }
    let mut copy = DbConnection::Sqlite(copy);
    let books = verify::run(&mut copy)?;
    Ok(Backup {
        bytes: std::fs::metadata(target)?.len(),
        path: target.to_path_buf(),
        books,
    })
}
