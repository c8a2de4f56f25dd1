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
//!
//! Every way a transaction handed to the writer can end is a type, never a string:
//! [`Writer::run`] returns `Ok(Ok(_))` when it committed, `Ok(Err(_))` when its closure
//! failed and only its savepoint was rolled back, and a [`WriteError`] when it was not
//! run (the queue is full, the writer is gone) or its whole batch was rolled back.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::SqliteConnection;

use super::{outside_transaction, DbConnection, Durability, SetupError};

/// At most this many transactions share one commit, so one batch cannot hold the write
/// lock (and every answer in it) for long.
pub const MAX_BATCH: usize = 256;

/// Seconds a client refused for a full write queue is told to wait (`Retry-After`).
pub const QUEUE_FULL_RETRY_SECS: u64 = 1;

/// Why the writer did not run a transaction, or did not keep it although its closure
/// succeeded. Callers map each case explicitly (`ApiError` has a `From` for it).
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The write queue is full (`--write-queue`): the transaction was not run. A client
    /// may retry after [`QUEUE_FULL_RETRY_SECS`].
    #[error("the write queue is full")]
    QueueFull,
    /// The writer thread is gone (it stopped before taking the transaction, or during its
    /// batch): nothing of the transaction committed.
    #[error("the SQLite writer has stopped")]
    WriterGone,
    /// The batch holding the transaction failed as a whole (its `BEGIN`, a savepoint or its
    /// `COMMIT`), so nothing of it committed, whatever the transaction's own outcome was.
    #[error("the batch holding this transaction was rolled back: {0}")]
    BatchFailed(Arc<BatchFailure>),
}

impl WriteError {
    /// `self` carried inside a diesel error, for callers whose error type holds nothing
    /// else (a worker's `QueryResult`). The carrier is typed: [`WriteError::carried_by`]
    /// recovers it, and `ApiError` does so before it ever treats a diesel error as a
    /// database failure.
    pub fn into_diesel(self) -> diesel::result::Error {
        diesel::result::Error::QueryBuilderError(Box::new(self))
    }

    /// The writer's refusal `error` carries, if it is one ([`WriteError::into_diesel`]).
    pub fn carried_by(error: &diesel::result::Error) -> Option<&WriteError> {
        match error {
            diesel::result::Error::QueryBuilderError(inner) => inner.downcast_ref(),
            _ => None,
        }
    }
}

/// Why a whole batch was rolled back. Shared by every transaction of the batch.
#[derive(Debug, thiserror::Error)]
pub enum BatchFailure {
    #[error("cannot begin the write transaction: {0}")]
    Begin(diesel::result::Error),
    #[error("a savepoint could not be opened or closed: {0}")]
    Savepoint(diesel::result::Error),
    /// A transaction's closure opened or closed savepoints it did not close or open.
    #[error("a transaction left its savepoint unbalanced")]
    Unbalanced,
    #[error("commit failed: {0}")]
    Commit(diesel::result::Error),
}

impl BatchFailure {
    /// The database refused the batch for lack of disk space (`db::storage`).
    pub fn is_storage_full(&self) -> bool {
        match self {
            BatchFailure::Begin(e) | BatchFailure::Savepoint(e) | BatchFailure::Commit(e) => {
                super::storage::is_storage_full(e)
            }
            BatchFailure::Unbalanced => false,
        }
    }
}

/// How the writer answers one job, once its outcome stands.
#[derive(Debug, Clone)]
enum Answer {
    /// The batch holding it committed: its result is on disk.
    Committed,
    /// Its closure failed (or panicked) and its savepoint was rolled back.
    RolledBack,
    /// The batch holding it was rolled back as a whole.
    Failed(Arc<BatchFailure>),
}

/// Why a job's savepoint was not kept. An error, because that is how
/// `metrics::in_transaction` learns to forget what the job recorded for after its commit.
enum NotKept {
    /// The job's closure failed (or panicked): its savepoint was rolled back, and its
    /// outcome stands at once.
    RolledBack,
    /// The batch cannot be trusted any more: nothing of it commits.
    Failed(BatchFailure),
}

/// What the writer runs for one transaction: the caller's closure with its result slot.
/// Returns true when the closure succeeded and its savepoint is to be kept.
type Work = dyn FnMut(&mut DbConnection) -> bool + Send;

/// One transaction waiting for or held by the writer.
///
/// The order of the fields is what makes the `unsafe` in [`Writer::run`] sound, so it must
/// not change: Rust drops fields in declaration order, and `work` borrows from the stack
/// of a caller that returns (freeing what it borrows) as soon as `done` is sent on or
/// dropped. Wherever a job is dropped without being answered (a batch dropped by a
/// panicking writer, the jobs left in a dropped queue), `work` must go first. [`answer`]
/// drops it explicitly before it sends. `tests::a_jobs_work_is_dropped_before_its_answer`
/// fails if the order is swapped.
struct Job {
    /// The caller's closure, with borrows of the caller's stack: dropped first.
    work: Box<Work>,
    /// Answers the caller, which waits on it; dropping it unsent also wakes the caller.
    done: Option<SyncSender<Answer>>,
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
pub(super) fn of(conn: &mut DbConnection) -> QueryResult<Option<Arc<Writer>>> {
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
pub fn start(
    path: &str,
    durability: Durability,
    capacity: usize,
) -> Result<Arc<Writer>, SetupError> {
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
        .map_err(SetupError::Thread)?;
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || serve(DbConnection::Sqlite(conn), jobs, &reopen, durability, nudge))
        .map_err(SetupError::Thread)?;
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
fn open(path: &str, durability: Durability) -> Result<SqliteConnection, SetupError> {
    let mut conn = open_plain(path, durability)?;
    conn.batch_execute(WRITER_SETTINGS)?;
    Ok(conn)
}

/// A connection with the session settings only (the checkpointer's: it writes no pages
/// through a cache of its own and takes no commits to checkpoint after).
fn open_plain(path: &str, durability: Durability) -> Result<SqliteConnection, SetupError> {
    let mut conn = SqliteConnection::establish(path)?;
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
    /// Runs `f` as one transaction of a batch on the writer thread and returns once its
    /// outcome stands: `Ok(Ok(_))` once the batch holding it is on disk, `Ok(Err(_))` when
    /// `f` failed and its savepoint was rolled back. A full queue is refused at once with
    /// [`WriteError::QueueFull`], without running `f`. A panic in `f` resumes here.
    pub(super) fn run<T, E, F>(&self, f: &F) -> Result<Result<T, E>, WriteError>
    where
        F: Fn(&mut DbConnection) -> Result<T, E> + Sync,
        T: Send,
        E: Send,
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
            // SAFETY: only the lifetime is erased. Every path that lets go of the job drops
            // `work` before `done` (see `Job`), and this function does not return (nor
            // unwind: it only blocks on `recv`) until `done` has been used or dropped, so
            // nothing `work` borrows (`f`, `slot`) is freed while the writer can reach it.
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
                Err(TrySendError::Full(_)) => return Err(WriteError::QueueFull),
                Err(TrySendError::Disconnected(_)) => return Err(WriteError::WriterGone),
            }
            // A closed channel: the writer dropped the job unanswered, which it does only
            // while unwinding from a panic, before its batch could commit.
            answer.recv().map_err(|_| WriteError::WriterGone)?
        };
        match answer {
            Answer::Committed | Answer::RolledBack => match slot {
                Some(Ok(result)) => Ok(result),
                Some(Err(panic)) => resume_unwind(panic),
                // Unreachable: the writer answers these only for a job whose work it ran.
                None => Err(WriteError::WriterGone),
            },
            Answer::Failed(failure) => Err(WriteError::BatchFailed(failure)),
        }
    }
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
        answer_all(batch, Answer::Failed(Arc::new(BatchFailure::Begin(error))));
        return outside_transaction(conn);
    }
    let mut kept: u64 = 0;
    let committed = crate::metrics::in_transaction(|| {
        for job in batch.iter_mut() {
            let savepoint = |e| NotKept::Failed(BatchFailure::Savepoint(e));
            let ran = crate::metrics::in_transaction(|| {
                Manager::begin_transaction(conn).map_err(savepoint)?;
                let keep = (job.work)(conn);
                if depth(conn) != Some(2) {
                    return Err(NotKept::Failed(BatchFailure::Unbalanced));
                }
                if keep {
                    Manager::commit_transaction(conn).map_err(savepoint)
                } else {
                    Manager::rollback_transaction(conn).map_err(savepoint)?;
                    Err(NotKept::RolledBack)
                }
            });
            match ran {
                // Kept: answered once the batch has committed.
                Ok(()) => kept += 1,
                Err(NotKept::RolledBack) => answer(job, Answer::RolledBack),
                Err(NotKept::Failed(failure)) => return Err(failure),
            }
        }
        Manager::commit_transaction(conn).map_err(BatchFailure::Commit)
    });
    let mut sound = true;
    if let Err(failure) = committed {
        if !outside_transaction(conn) {
            let _ = Manager::rollback_transaction(conn);
        }
        sound = outside_transaction(conn);
        static REPEATS: crate::log::Repeats =
            crate::log::Repeats::new(std::time::Duration::from_secs(10));
        if let Some(left_out) = REPEATS.admit(&failure.to_string()) {
            tracing::error!(%failure, repeats_left_out = left_out, "a group commit failed; its transactions are answered with an error");
        }
        answer_all(batch, Answer::Failed(Arc::new(failure)));
    } else {
        if kept > 0 {
            crate::metrics::DB_WRITE_BATCHES.inc(&[]);
            crate::metrics::DB_WRITE_BATCHED.add(&[], kept);
        }
        answer_all(batch, Answer::Committed);
    }
    sound
}

/// Drops the job's work (and with it every borrow of the caller's), then answers it.
fn answer(job: &mut Job, outcome: Answer) {
    job.work = Box::new(|_| false);
    if let Some(done) = job.done.take() {
        let _ = done.send(outcome);
    }
}

/// Answers every job of `jobs` not answered yet with `outcome`, emptying it.
fn answer_all(jobs: &mut Vec<Job>, outcome: Answer) {
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc::TryRecvError;

    use super::*;

    /// Captured by a job's work: when dropped, it records whether the job's `done` was
    /// still unanswered and alive, which is what the caller's borrows depend on (Miri is
    /// not available to check the `unsafe` itself).
    struct Witness {
        answer: Receiver<Answer>,
        saw_done_alive: Arc<Mutex<Option<bool>>>,
    }

    impl Drop for Witness {
        fn drop(&mut self) {
            let alive = matches!(self.answer.try_recv(), Err(TryRecvError::Empty));
            *self.saw_done_alive.lock().unwrap() = Some(alive);
        }
    }

    fn witnessed_job() -> (Job, Arc<Mutex<Option<bool>>>) {
        let (done, answer) = mpsc::sync_channel(1);
        let saw_done_alive = Arc::new(Mutex::new(None));
        let witness = Witness {
            answer,
            saw_done_alive: saw_done_alive.clone(),
        };
        let job = Job {
            work: Box::new(move |_| {
                let _ = &witness;
                false
            }),
            done: Some(done),
        };
        (job, saw_done_alive)
    }

    fn assert_work_went_first(saw_done_alive: &Mutex<Option<bool>>, how: &str) {
        assert_eq!(
            *saw_done_alive.lock().unwrap(),
            Some(true),
            "{how}: the work must be dropped while `done` is alive and unanswered"
        );
    }

    #[test]
    fn a_jobs_work_is_dropped_before_its_answer() {
        let (job, saw) = witnessed_job();
        drop(job);
        assert_work_went_first(&saw, "a job dropped alone");

        // A writer unwinding from a panic drops its batch.
        let (job, saw) = witnessed_job();
        drop(vec![job]);
        assert_work_went_first(&saw, "a job dropped in its batch");

        // A writer gone drops the jobs still queued.
        let (job, saw) = witnessed_job();
        let (queue, jobs) = mpsc::sync_channel(1);
        queue.send(job).unwrap();
        drop(jobs);
        drop(queue);
        assert_work_went_first(&saw, "a job dropped in its queue");

        let (mut job, saw) = witnessed_job();
        answer(&mut job, Answer::Committed);
        assert_work_went_first(&saw, "a job answered");
    }

    fn scratch_writer(capacity: usize) -> (tempfile::TempDir, Arc<Writer>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writer.db");
        let path = path.to_str().unwrap();
        let mut conn = SqliteConnection::establish(path).unwrap();
        conn.batch_execute("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER NOT NULL);")
            .unwrap();
        let writer = start(path, Durability::Relaxed, capacity).unwrap();
        (dir, writer)
    }

    fn count(conn: &mut DbConnection) -> QueryResult<i64> {
        diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT COUNT(*) FROM t").get_result(conn)
    }

    #[test]
    fn each_outcome_of_a_transaction_is_its_own_case() {
        let (_dir, writer) = scratch_writer(4);
        let insert = |conn: &mut DbConnection| {
            diesel::sql_query("INSERT INTO t (n) VALUES (1)").execute(conn)?;
            count(conn)
        };
        assert_eq!(writer.run(&insert).unwrap().unwrap(), 1, "committed");

        let refused = |conn: &mut DbConnection| -> QueryResult<()> {
            diesel::sql_query("INSERT INTO t (n) VALUES (2)").execute(conn)?;
            Err(diesel::result::Error::RollbackTransaction)
        };
        assert!(
            matches!(
                writer.run(&refused),
                Ok(Err(diesel::result::Error::RollbackTransaction))
            ),
            "rolled back by the transaction"
        );
        assert_eq!(writer.run(&count).unwrap().unwrap(), 1, "only the kept row");

        let unbalanced = |conn: &mut DbConnection| -> QueryResult<()> {
            <DbConnection as Connection>::TransactionManager::begin_transaction(conn)
        };
        assert!(matches!(
            writer.run(&unbalanced),
            Err(WriteError::BatchFailed(failure)) if matches!(*failure, BatchFailure::Unbalanced)
        ));
        assert_eq!(
            writer.run(&count).unwrap().unwrap(),
            1,
            "the writer recovered"
        );
    }

    #[test]
    fn a_refusal_carried_by_a_diesel_error_is_recovered_by_type() {
        let carried = WriteError::QueueFull.into_diesel();
        assert!(matches!(
            WriteError::carried_by(&carried),
            Some(WriteError::QueueFull)
        ));
        let plain = diesel::result::Error::QueryBuilderError("not ours".into());
        assert!(WriteError::carried_by(&plain).is_none());
    }
}
