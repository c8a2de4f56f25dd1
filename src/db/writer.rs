//! Group commit on SQLite: one writer thread per database file owns the only connection
//! that writes. [`super::write_tx`] hands each write transaction to it through a bounded
//! FIFO queue and blocks until it is answered; the writer takes every transaction waiting
//! (up to [`MAX_BATCH`]), runs them one after another inside one `BEGIN IMMEDIATE`, each
//! in its own savepoint, commits once, and only then answers them all. A transaction whose
//! closure fails (or panics) is rolled back to its savepoint and takes nothing else with it.
//!
//! One commit (one fsync under `synchronous = FULL`) thus carries every write that queued
//! while the previous one was on disk, and our own writers never meet SQLite's sleeping
//! busy handler: they wait in the queue, woken when their answer is ready.
//!
//! The closure runs on the writer thread but borrows from the caller's stack. That is
//! sound because the caller cannot leave [`Writer::run`] before the writer is done with
//! the job: it blocks until the job has been dropped (its `done` sender goes with it),
//! the same reasoning as `std::thread::scope`. `F: Sync` (the writer calls it through a
//! shared reference) and `T, E: Send` (the result crosses back) are what that needs.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::SqliteConnection;

use super::{outside_transaction, DbConnection, Durability};

/// At most this many transactions share one commit, so one batch cannot hold the write
/// lock (and every answer in it) for long.
pub const MAX_BATCH: usize = 256;

/// Seconds a client refused for a full write queue is told to wait (`Retry-After`).
pub const QUEUE_FULL_RETRY_SECS: u64 = 1;

/// The write queue is full: the transaction was not run. Carried inside a
/// `diesel::result::Error::QueryBuilderError` so every error type a write transaction can
/// end with (they all convert from diesel's) can carry it; `ApiError` recognises it by type
/// and answers 503 with `Retry-After`.
#[derive(Debug, thiserror::Error)]
#[error("the write queue is full")]
pub struct WriteQueueFull;

impl WriteQueueFull {
    /// True when `error` is a refusal for a full write queue.
    pub fn is(error: &diesel::result::Error) -> bool {
        matches!(error, diesel::result::Error::QueryBuilderError(e) if e.is::<WriteQueueFull>())
    }
}

/// What the writer runs for one transaction: the caller's closure with its result slot.
/// Returns true when the closure succeeded and its savepoint is to be kept.
type Work = dyn FnMut(&mut DbConnection) -> bool + Send;

struct Job {
    /// Declared first so it is dropped before `done`: the caller may free what `work`
    /// borrows as soon as `done` is gone. Replaced by a no-op before `done` is used.
    work: Box<Work>,
    /// `Ok` once the job's outcome stands (its savepoint was rolled back, or the batch
    /// holding it committed); `Err` with the reason when the batch failed as a whole.
    done: Option<SyncSender<Result<(), String>>>,
}

/// The writer of one SQLite database file in this process.
pub struct Writer {
    queue: SyncSender<Job>,
    path: String,
}

/// The writers of this process, by database file. Weak: a writer lives as long as a pool
/// on its file (the pool's connection customizer holds it), and its thread ends with it.
static WRITERS: Mutex<Vec<(String, Weak<Writer>)>> = Mutex::new(Vec::new());

/// The file behind `conn`'s main database; empty for an in-memory or temporary one.
fn file_of(conn: &mut SqliteConnection) -> QueryResult<String> {
    MainFile.get_result(conn)
}

/// `SELECT file FROM pragma_database_list WHERE name = 'main'`, as a query with a static
/// id so the connection keeps it prepared: every write transaction asks it ([`of`]), and
/// written with `diesel::dsl::sql` it was prepared anew each time (diesel caches no SQL
/// literal), a twelfth of the server's time placing orders.
#[derive(diesel::query_builder::QueryId)]
struct MainFile;

impl diesel::query_builder::Query for MainFile {
    type SqlType = diesel::sql_types::Text;
}

impl RunQueryDsl<SqliteConnection> for MainFile {}

impl diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for MainFile {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()> {
        out.push_sql("SELECT file FROM pragma_database_list WHERE name = 'main'");
        Ok(())
    }
}

/// The writer of the database `conn` is connected to, if this process started one.
pub fn of(conn: &mut DbConnection) -> QueryResult<Option<Arc<Writer>>> {
    let DbConnection::Sqlite(inner) = conn else {
        return Ok(None);
    };
    let path = file_of(inner)?;
    let writers = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
    Ok(writers
        .iter()
        .find(|(p, _)| *p == path)
        .and_then(|(_, w)| w.upgrade()))
}

/// The session settings every SQLite connection of ours gets. `temp_store = MEMORY`
/// keeps the statement journal of each savepoint in memory: on a file it cost a temporary
/// file per batch (open, unlink, close) and a write per page a savepoint first touched,
/// more system calls than the WAL itself.
pub(super) fn sqlite_settings(durability: Durability) -> &'static str {
    match durability {
        Durability::Full => {
            "PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; \
             PRAGMA temp_store = MEMORY;"
        }
        Durability::Relaxed => {
            "PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; PRAGMA synchronous = OFF; \
             PRAGMA temp_store = MEMORY;"
        }
    }
}

/// The writer's own settings on top of [`sqlite_settings`]: a page cache big enough for
/// the tables' and indexes' hot pages (32 MB; the default 2 MB re-read pages the next
/// batch wrote again), and no checkpoint inside its commits while the [`checkpointer`]
/// keeps up: it runs them beside the writer, so copying the WAL back into the database
/// (and that file's fsync) does not hold up a batch. Only a WAL of 10 000 pages (40 MB,
/// ten times SQLite's default) has the writer checkpoint after its commit, as a fallback.
const WRITER_SETTINGS: &str = "PRAGMA cache_size = -32000; PRAGMA wal_autocheckpoint = 10000;";

/// The writer of the SQLite file at `path`: this process's running one, or a new one with
/// a queue of `capacity` waiting transactions (0: a transaction is taken only when the
/// writer is idle).
pub fn start(path: &str, durability: Durability, capacity: usize) -> QueryResult<Arc<Writer>> {
    let mut conn = open(path, durability)?;
    let file = file_of(&mut conn)?;
    let mut writers = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
    writers.retain(|(_, w)| w.strong_count() > 0);
    if let Some(running) = writers
        .iter()
        .find(|(p, _)| *p == file)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(running);
    }
    let (queue, jobs) = mpsc::sync_channel(capacity);
    let reopen = path.to_string();
    let (nudge, nudged) = mpsc::sync_channel(1);
    let checkpoints = open_plain(path, durability)?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || checkpointer(checkpoints, nudged))
        .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || serve(DbConnection::Sqlite(conn), jobs, &reopen, durability, nudge))
        .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
    let writer = Arc::new(Writer {
        queue,
        path: file.clone(),
    });
    if !file.is_empty() {
        writers.push((file, Arc::downgrade(&writer)));
    }
    Ok(writer)
}

/// The writer's connection: the session settings and [`WRITER_SETTINGS`].
fn open(path: &str, durability: Durability) -> QueryResult<SqliteConnection> {
    let mut conn = open_plain(path, durability)?;
    conn.batch_execute(WRITER_SETTINGS)?;
    Ok(conn)
}

/// A connection with the session settings only (the checkpointer's: it writes no pages
/// through a cache of its own and takes no commits to checkpoint after).
fn open_plain(path: &str, durability: Durability) -> QueryResult<SqliteConnection> {
    let mut conn = SqliteConnection::establish(path)
        .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
    conn.batch_execute(sqlite_settings(durability))?;
    Ok(conn)
}

/// Checkpoints the WAL beside the writer: woken by a nudge after a commit, it runs a
/// passive checkpoint (which waits for no reader and never blocks the writer), then
/// rests [`CHECKPOINT_PAUSE`] so a busy writer is not followed commit by commit. It ends
/// with the writer, whose nudges stop.
fn checkpointer(mut conn: SqliteConnection, nudged: Receiver<()>) {
    while nudged.recv().is_ok() {
        if let Err(error) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
            tracing::warn!(%error, "a WAL checkpoint failed; the next commit asks again");
        }
        std::thread::sleep(CHECKPOINT_PAUSE);
    }
}

/// The checkpointer's rest between two checkpoints.
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("path", &self.path).finish()
    }
}

impl Writer {
    /// Runs `f` as one transaction of a batch on the writer thread and returns its result
    /// once its outcome is on disk (or rolled back). A full queue is refused at once with
    /// [`WriteQueueFull`], without running `f`.
    pub fn run<T, E, F>(&self, f: &F) -> Result<T, E>
    where
        F: Fn(&mut DbConnection) -> Result<T, E> + Sync,
        T: Send,
        E: From<diesel::result::Error> + Send,
    {
        let mut slot: Option<std::thread::Result<Result<T, E>>> = None;
        let answer = {
            let result = &mut slot;
            let work = move |conn: &mut DbConnection| {
                let outcome = catch_unwind(AssertUnwindSafe(|| f(conn)));
                let keep = matches!(outcome, Ok(Ok(_)));
                *result = Some(outcome);
                keep
            };
            let work: Box<dyn FnMut(&mut DbConnection) -> bool + Send + '_> = Box::new(work);
            // SAFETY: only the lifetime is erased. The writer drops `work` before it drops
            // `done`, and this function does not return (nor unwind: it only blocks on
            // `recv`) until `done` has been used or dropped, so nothing `work` borrows
            // (`f`, `slot`) is freed while the writer can still reach it.
            #[expect(
                unsafe_code,
                reason = "erases only the lifetime of `work`; SAFETY above"
            )]
            let work: Box<Work> = unsafe { std::mem::transmute(work) };
            let (done, answer) = mpsc::sync_channel(1);
            match self.queue.try_send(Job {
                work,
                done: Some(done),
            }) {
                Ok(()) => {}
                // The job came back unrun and is dropped here, while all it borrows is alive.
                Err(TrySendError::Full(_)) => {
                    return Err(
                        diesel::result::Error::QueryBuilderError(Box::new(WriteQueueFull)).into(),
                    )
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(stopped("the SQLite writer has stopped").into())
                }
            }
            answer.recv()
        };
        match answer {
            Ok(Ok(())) => match slot {
                Some(Ok(result)) => result,
                Some(Err(panic)) => resume_unwind(panic),
                None => Err(stopped("the SQLite writer answered a job it did not run").into()),
            },
            Ok(Err(reason)) => Err(stopped(&reason).into()),
            Err(_) => Err(stopped("the SQLite writer stopped during the transaction").into()),
        }
    }
}

fn stopped(reason: &str) -> diesel::result::Error {
    diesel::result::Error::DatabaseError(
        diesel::result::DatabaseErrorKind::Unknown,
        Box::new(reason.to_string()),
    )
}

/// The writer thread: batches until every sender (every pool on the file) is gone.
fn serve(
    mut conn: DbConnection,
    jobs: Receiver<Job>,
    path: &str,
    durability: Durability,
    checkpoint: SyncSender<()>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let sound = run_batch(&mut conn, &mut batch);
        // Full: a nudge is already waiting for the checkpointer, which is enough.
        let _ = checkpoint.try_send(());
        if !sound {
            // The connection's transaction state is not what it should be: start afresh.
            match open(path, durability) {
                Ok(fresh) => conn = DbConnection::Sqlite(fresh),
                Err(error) => {
                    tracing::error!(%error, "the SQLite writer cannot reopen its connection")
                }
            }
        }
    }
}

/// Runs and answers `batch` (emptying it). False when the connection was left in a state
/// it cannot be trusted in.
fn run_batch(conn: &mut DbConnection, batch: &mut Vec<Job>) -> bool {
    type Manager = <DbConnection as Connection>::TransactionManager;
    let DbConnection::Sqlite(inner) = conn else {
        unreachable!("the writer holds a SQLite connection")
    };
    if let Err(error) = AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE") {
        answer_all(
            batch,
            Err(format!("cannot begin the write transaction: {error}")),
        );
        return outside_transaction(conn);
    }
    let mut kept: u64 = 0;
    let committed = crate::metrics::in_transaction(|| {
        for job in batch.iter_mut() {
            let outcome = crate::metrics::in_transaction(|| {
                Manager::begin_transaction(conn).map_err(|e| e.to_string())?;
                let keep = (job.work)(conn);
                if depth(conn) != Some(2) {
                    return Err("a transaction left its savepoint unbalanced".to_string());
                }
                if keep {
                    Manager::commit_transaction(conn).map_err(|e| e.to_string())?;
                    Ok(())
                } else {
                    Manager::rollback_transaction(conn).map_err(|e| e.to_string())?;
                    Err(String::new())
                }
            });
            match outcome {
                // Kept: answered once the batch has committed.
                Ok(()) => kept += 1,
                // Rolled back to its savepoint: its outcome stands now.
                Err(reason) if reason.is_empty() => answer(job, Ok(())),
                // The batch's transaction can no longer be trusted: nothing of it commits.
                Err(reason) => return Err(reason),
            }
        }
        Manager::commit_transaction(conn).map_err(|e| format!("commit failed: {e}"))
    });
    let mut sound = true;
    if let Err(reason) = committed {
        if !outside_transaction(conn) {
            let _ = Manager::rollback_transaction(conn);
        }
        sound = outside_transaction(conn);
        let reason = format!("the batch was rolled back: {reason}");
        tracing::error!(%reason, "a group commit failed; its transactions are answered with an error");
        answer_all(batch, Err(reason));
    } else {
        if kept > 0 {
            crate::metrics::DB_WRITE_BATCHES.inc(&[]);
            crate::metrics::DB_WRITE_BATCHED.add(&[], kept);
        }
        answer_all(batch, Ok(()));
    }
    sound
}

/// Drops the job's work (and with it every borrow of the caller's), then answers it.
fn answer(job: &mut Job, outcome: Result<(), String>) {
    job.work = Box::new(|_| false);
    if let Some(done) = job.done.take() {
        let _ = done.send(outcome);
    }
}

/// Answers every job of `jobs` not answered yet with `outcome`, emptying it.
fn answer_all(jobs: &mut Vec<Job>, outcome: Result<(), String>) {
    for mut job in jobs.drain(..) {
        answer(&mut job, outcome.clone());
    }
}

fn depth(conn: &mut DbConnection) -> Option<u32> {
    <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .ok()
        .flatten()
        .map(|d| d.get())
}
