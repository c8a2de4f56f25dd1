//! Where log lines go: a shared buffer that one thread writes to stderr every
//! [`WRITE_EVERY`], so the thread that logs (an actix worker writing a request's line)
//! neither waits on a write nor wakes another thread for each line.
//!
//! The line is formatted by the caller (`tracing_subscriber::fmt`) and appended whole to
//! the buffer under a mutex (a copy, no system call). The log thread takes the buffer as
//! it is and writes it out, so lines reach stderr within about [`WRITE_EVERY`] (a process
//! killed with SIGKILL loses at most those). When the buffer is at its bound (stderr
//! slower than the lines come) a line is dropped rather than holding up the request; the
//! log thread then writes how many were dropped. [`LogGuard`] writes what is buffered
//! when the process ends. Uses nothing of ours.
//!
//! Why not `tracing_appender::non_blocking`: it copies each line into a `Vec` of its own
//! and sends it down a channel; its thread wakes for each line when idle and makes one
//! `write` to stderr (unbuffered) per line. Here a line is one copy under a mutex, and
//! the log thread makes one `write` per 20 ms. Measured with `bench/run.sh` (SQLite,
//! 10 s per point, release build, the same 2-core shared machine, runs alternated),
//! requests per second, and in brackets the share of the same run's bare-handler ceiling:
//!
//! | 64 connections                   | ours            | tracing-appender |
//! |----------------------------------|-----------------|------------------|
//! | bare handler (ceiling 2)         | 62,955          | 63,065           |
//! | `GET /v1/orders/{id}`            | 25,254 (40 %)   | 22,085 (35 %)    |
//! | `POST /api/v2` status            | 24,375 (39 %)   | 19,248 (31 %)    |
//! | `POST /v1/orders`                | 3,622           | 3,214            |
//!
//! Over two runs of each, the reads above (at 8 and 64 connections) reached 31–43 % of
//! the ceiling here and 14–35 % with tracing-appender, each point higher in both runs of
//! ours than in both of theirs. The machine is shared, so single numbers move by tens of
//! percent between runs (the ceiling itself did): the comparison at equal ceilings above,
//! and that direction at every read point, is what keeps ours.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Bytes of lines that may wait for the log thread; a line beyond is dropped (and counted).
pub const BUFFER_BYTES: usize = 4 << 20;
/// How often the log thread writes what is buffered.
pub const WRITE_EVERY: Duration = Duration::from_millis(20);
/// How long the process waits at exit for buffered lines to be written.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    dropped: u64,
    /// Flushes asked for, and done: a flush is done once `written` reaches its number.
    asked: u64,
    written: u64,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the log thread early, for a flush.
    asked: Condvar,
    /// Wakes those waiting for a flush.
    written: Condvar,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Makes the per-event writers of `tracing_subscriber::fmt().with_writer(..)`.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Writes the buffered lines when dropped: keep it until the process ends.
pub struct LogGuard {
    shared: Arc<Shared>,
}

/// Starts the log thread writing to `out`, buffering at most `capacity` bytes; returns the
/// writer to install and its guard.
pub fn spawn(out: impl Write + Send + 'static, capacity: usize) -> (LogWriter, LogGuard) {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        asked: Condvar::new(),
        written: Condvar::new(),
        capacity,
    });
    let thread = shared.clone();
    #[expect(
        clippy::expect_used,
        reason = "at start, before any line is logged: a process that cannot start a thread cannot serve"
    )]
    std::thread::Builder::new()
        .name("log".into())
        .spawn(move || write_lines(&thread, out))
        .expect("spawn the log thread");
    (
        LogWriter {
            shared: shared.clone(),
        },
        LogGuard { shared },
    )
}

fn write_lines(shared: &Shared, mut out: impl Write) {
    let mut lines = Vec::new();
    loop {
        let (dropped, asked) = {
            let mut pending = shared.lock();
            if pending.asked == pending.written {
                pending = shared
                    .asked
                    .wait_timeout(pending, WRITE_EVERY)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            // Take the lines, leave an empty buffer of the same capacity behind.
            std::mem::swap(&mut pending.lines, &mut lines);
            (std::mem::take(&mut pending.dropped), pending.asked)
        };
        if !lines.is_empty() {
            let _ = out.write_all(&lines);
            lines.clear();
        }
        if dropped > 0 {
            let _ = writeln!(
                out,
                "{{\"level\":\"WARN\",\"fields\":{{\"message\":\"log lines dropped: the log buffer was full\",\"dropped\":{dropped}}},\"target\":\"reseller_api::log\"}}"
            );
        }
        let _ = out.flush();
        let mut pending = shared.lock();
        if pending.written != asked {
            pending.written = asked;
            shared.written.notify_all();
        }
    }
}

impl LogWriter {
    fn append(&self, line: &[u8]) {
        let mut pending = self.shared.lock();
        if pending.lines.len() + line.len() > self.shared.capacity {
            pending.dropped += 1;
        } else {
            pending.lines.extend_from_slice(line);
        }
    }
}

/// One event's line, appended to the buffer when the formatter is done with it.
pub struct Line<'a> {
    writer: &'a LogWriter,
    buf: Vec<u8>,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.writer.append(&self.buf);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            writer: self,
            buf: Vec::with_capacity(256),
        }
    }
}

impl LogGuard {
    /// Waits (at most [`FLUSH_WAIT`]) until every line buffered before this call is written.
    pub fn flush(&self) {
        let shared = &self.shared;
        let mut pending = shared.lock();
        pending.asked += 1;
        let mine = pending.asked;
        shared.asked.notify_one();
        let deadline = std::time::Instant::now() + FLUSH_WAIT;
        while pending.written < mine {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            pending = shared
                .written
                .wait_timeout(pending, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_and_in_order_by_the_flush() {
        let out = Shared::default();
        let (writer, guard) = spawn(out.clone(), 1 << 16);
        for i in 0..100 {
            let mut line = writer.make_writer();
            write!(line, "line ").unwrap();
            writeln!(line, "{i}").unwrap();
        }
        guard.flush();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
    }

    /// A writer that blocks until told to go on, like a stderr pipe nobody reads.
    struct Stuck {
        gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
        entered: Arc<AtomicBool>,
        out: Shared,
    }

    impl Write for Stuck {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.entered.store(true, Ordering::SeqCst);
            let (open, moved) = &*self.gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = moved.wait(open).unwrap();
            }
            self.out.write(bytes)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_buffer_drops_lines_instead_of_waiting_and_says_so() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let entered = Arc::new(AtomicBool::new(false));
        let out = Shared::default();
        let stuck = Stuck {
            gate: gate.clone(),
            entered: entered.clone(),
            out: out.clone(),
        };
        // Room for four lines of seven bytes ("line N\n").
        let (writer, guard) = spawn(stuck, 28);
        // The log thread takes the first line and blocks writing it out...
        writeln!(writer.make_writer(), "line 0").unwrap();
        while !entered.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // ... so four more fill the buffer, and the other 45 must not block this thread.
        for i in 1..50 {
            writeln!(writer.make_writer(), "line {i}").unwrap();
        }
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        guard.flush();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let kept: Vec<&str> = text.lines().filter(|l| l.starts_with("line ")).collect();
        assert_eq!(
            kept,
            ["line 0", "line 1", "line 2", "line 3", "line 4"],
            "{text}"
        );
        let lost: u64 = text
            .lines()
            .filter_map(|l| l.split("\"dropped\":").nth(1))
            .map(|n| {
                let digits: String = n.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u64>().unwrap()
            })
            .sum();
        assert_eq!(lost, 45, "{text}");
    }
}

/// Repeated identical error lines, logged once per interval with a count: when the same
/// failure hits every request (a full disk answered 34,000 requests in 20 s), the log
/// (often on the same disk) gets one line per interval, not one per request.
pub struct Repeats {
    interval: Duration,
    seen: Mutex<Option<std::collections::HashMap<String, (std::time::Instant, u64)>>>,
}

/// Kinds of line [`Repeats`] remembers at most; past it, it forgets them all (the next of
/// each is logged again).
const REPEATS_KINDS: usize = 1024;

impl Repeats {
    pub const fn new(interval: Duration) -> Repeats {
        Repeats {
            interval,
            seen: Mutex::new(None),
        }
    }

    /// Whether a line of this `kind` is logged now: `Some(n)` with the number of its
    /// lines left out since the last one logged, or `None` when it is only counted.
    pub fn admit(&self, kind: &str) -> Option<u64> {
        let now = std::time::Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let seen = seen.get_or_insert_with(Default::default);
        if let Some((logged_at, skipped)) = seen.get_mut(kind) {
            if now.duration_since(*logged_at) < self.interval {
                *skipped += 1;
                return None;
            }
            let left_out = *skipped;
            *logged_at = now;
            *skipped = 0;
            return Some(left_out);
        }
        if seen.len() >= REPEATS_KINDS {
            seen.clear();
        }
        seen.insert(kind.to_string(), (now, 0));
        Some(0)
    }
}

#[cfg(test)]
mod repeats_tests {
    use super::*;

    #[test]
    fn a_repeated_line_is_logged_once_per_interval_with_the_count_left_out() {
        let repeats = Repeats::new(Duration::from_millis(200));
        assert_eq!(repeats.admit("disk full"), Some(0));
        for _ in 0..999 {
            assert_eq!(repeats.admit("disk full"), None);
        }
        // Another kind is its own.
        assert_eq!(repeats.admit("other"), Some(0));
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(repeats.admit("disk full"), Some(999));
        assert_eq!(repeats.admit("disk full"), None);
    }
}
