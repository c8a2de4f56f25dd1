//! What the process counts for `/metrics`, and the Prometheus text exposition format
//! (version 0.0.4) it is served in.
//!
//! The counters and histograms are process-wide statics, not fields of `AppState`: the
//! provider worker runs on its own thread without an `AppState`, and handlers, the
//! application layer and the worker bump the same counters. That is what Prometheus
//! expects of a counter: each process exposes what it counted since it started, the
//! server adds up the processes, and `rate()` absorbs restarts. Gauges that describe the
//! database (the review queue, forwarding states) are not kept here: the `/metrics`
//! handler reads them at scrape time, so every process reports the same truth.
//!
//! Our own code rather than a client crate: amounts are counted in integer micro-units
//! and exposed as exact decimals in the currency unit (`12.345678`), which the crates'
//! `f64` counters cannot promise, and the text format is a few lines.
//!
//! An event inside a write transaction (a refund credited) is recorded with
//! [`on_commit`] and counted only once the transaction has committed, so a rollback never
//! leaves a refund in the counters that is not in the books.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// HTTP request durations: 1 ms to 10 s (bounds in microseconds).
const HTTP_BUCKETS: &[u64] = &[
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];
/// Provider round trips: 10 ms to 60 s, up to the longest provider timeout.
const PROVIDER_BUCKETS: &[u64] = &[
    10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
    30_000_000, 60_000_000,
];
/// Waiting for a pooled connection: 10 µs to 10 s (the pool's own timeout).
const POOL_WAIT_BUCKETS: &[u64] = &[
    10, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000, 10_000_000,
];

pub static HTTP_REQUESTS: Counter = Counter::new(
    "http_requests_total",
    "HTTP requests served, by status code.",
    &["status"],
);
pub static HTTP_REQUEST_DURATION: Histogram = Histogram::new(
    "http_request_duration_seconds",
    "Time spent serving a request, by method and route pattern (`unmatched` when no route matched).",
    &["method", "route"],
    HTTP_BUCKETS,
);
pub static ORDERS_PLACED: Counter = Counter::new(
    "orders_placed_total",
    "Orders placed and charged (REST and API v2; idempotent replays not counted).",
    &[],
);
pub static ORDERS_REFUSED: Counter = Counter::new(
    "orders_refused_total",
    "Orders not placed, by the problem code of the refusal.",
    &["reason"],
);
pub static REFUNDS: Counter = Counter::new(
    "refunds_total",
    "Refunds of orders credited to a balance, by refund reason.",
    &["reason"],
);
pub static REFUNDS_AMOUNT: Counter = Counter::amount(
    "refunds_amount_total",
    "Amount of order refunds credited, in the currency unit, by refund reason and currency.",
    &["reason", "currency"],
);
pub static TOP_UP_REFUNDS: Counter = Counter::new(
    "top_up_refunds_total",
    "Top-ups returned to the payment method (confirmed by the gateway) or charged back, by reason.",
    &["reason"],
);
pub static TOP_UP_REFUNDS_AMOUNT: Counter = Counter::amount(
    "top_up_refunds_amount_total",
    "Amount of top-ups returned or charged back, in the currency unit, by reason and currency.",
    &["reason", "currency"],
);
pub static PROVIDER_REQUESTS: Counter = Counter::new(
    "provider_requests_total",
    "Requests to upstream providers, by provider id, action and outcome as the worker read it.",
    &["provider", "action", "outcome"],
);
pub static PROVIDER_REQUEST_DURATION: Histogram = Histogram::new(
    "provider_request_duration_seconds",
    "Round trip of a request to an upstream provider, by provider id and action.",
    &["provider", "action"],
    PROVIDER_BUCKETS,
);
pub static DB_POOL_WAIT: Histogram = Histogram::new(
    "db_pool_wait_seconds",
    "Time a request waited for a pooled database connection.",
    &[],
    POOL_WAIT_BUCKETS,
);
pub static DB_POOL_TIMEOUTS: Counter = Counter::new(
    "db_pool_timeouts_total",
    "Requests that gave up waiting for a pooled database connection (answered 503).",
    &[],
);

pub static DB_WRITE_BATCHES: Counter = Counter::new(
    "db_write_batches_total",
    "SQLite group commits: batches of write transactions the writer committed at once.",
    &[],
);
pub static DB_WRITE_BATCHED: Counter = Counter::new(
    "db_write_batched_transactions_total",
    "Write transactions committed in those batches (their ratio is the mean batch size).",
    &[],
);
pub static WEBHOOK_ATTEMPTS: Counter = Counter::new(
    "webhook_attempts_total",
    "Webhook delivery attempts this process made, by outcome (`delivered`, `failed`, `timeout`).",
    &["outcome"],
);
pub static WEBHOOK_BREAKER_OPENED: Counter = Counter::new(
    "webhook_breaker_opened_total",
    "Times an endpoint's circuit breaker opened (or a failed probe reopened it) in this process.",
    &[],
);

pub static STORAGE_FULL: Counter = Counter::new(
    "db_storage_full_total",
    "Writes the database refused for lack of disk space (answered 503 storage_full).",
    &[],
);
pub static AUTH_FAILURES: Counter = Counter::new(
    "auth_failures_total",
    "Failed key attempts (unknown or revoked API key, invalid access token), by kind: api_v2, token_exchange, bearer.",
    &["kind"],
);
pub static AUTH_REFUSED: Counter = Counter::new(
    "auth_refused_total",
    "Key attempts refused unread because their client address failed too often, by kind.",
    &["kind"],
);
pub static AUTH_KEY_READS: Counter = Counter::new(
    "auth_key_reads_total",
    "API key lookups that read the database (answered by neither the valid-key nor the unknown-key cache), by kind.",
    &["kind"],
);
pub static QUOTA_LEASES: Counter = Counter::new(
    "quota_leases_total",
    "Account quota cells read and updated in PostgreSQL (one per lease of requests), by outcome: granted, exhausted.",
    &["outcome"],
);
pub static PROVIDER_MONEY: Counter = Counter::amount(
    "provider_money_amount_total",
    "Provider money in the panel's currency unit, by provider id and kind: `provider_cost` (the expected cost of orders the provider took, converted at send time), `refunds_paid` (refunds we paid because the provider reported Partial or Canceled) and `credits_recovered` (what the provider credited back of them, counted when recovered).",
    &["provider", "kind"],
);

/// Writes every process-wide counter and histogram.
pub fn render(out: &mut Exposition) {
    for counter in [
        &HTTP_REQUESTS,
        &ORDERS_PLACED,
        &ORDERS_REFUSED,
        &REFUNDS,
        &REFUNDS_AMOUNT,
        &TOP_UP_REFUNDS,
        &TOP_UP_REFUNDS_AMOUNT,
        &PROVIDER_REQUESTS,
        &DB_POOL_TIMEOUTS,
        &DB_WRITE_BATCHES,
        &DB_WRITE_BATCHED,
        &STORAGE_FULL,
        &AUTH_FAILURES,
        &AUTH_REFUSED,
        &AUTH_KEY_READS,
        &QUOTA_LEASES,
        &WEBHOOK_ATTEMPTS,
        &WEBHOOK_BREAKER_OPENED,
        &PROVIDER_MONEY,
    ] {
        counter.render(out);
    }
    for histogram in [
        &HTTP_REQUEST_DURATION,
        &PROVIDER_REQUEST_DURATION,
        &DB_POOL_WAIT,
    ] {
        histogram.render(out);
    }
}

/// An order refund credited in the current write transaction; counted when it commits.
pub fn refund_credited(reason: &str, currency: &str, amount_micros: i64) {
    let (reason, currency) = (reason.to_string(), currency.to_string());
    on_commit(move || {
        REFUNDS.inc(&[&reason]);
        REFUNDS_AMOUNT.add(&[&reason, &currency], amount_micros.max(0).unsigned_abs());
    });
}

/// Provider money (`PROVIDER_MONEY`) moved in the current write transaction; counted when
/// it commits.
pub fn provider_money(provider: i64, kind: &'static str, amount_micros: i64) {
    on_commit(move || {
        PROVIDER_MONEY.add(
            &[&provider.to_string(), kind],
            amount_micros.max(0).unsigned_abs(),
        );
    });
}

/// A top-up returned or charged back in the current write transaction; counted when it
/// commits.
pub fn top_up_refunded(reason: &str, currency: &str, amount_micros: i64) {
    let (reason, currency) = (reason.to_string(), currency.to_string());
    on_commit(move || {
        TOP_UP_REFUNDS.inc(&[&reason]);
        TOP_UP_REFUNDS_AMOUNT.add(&[&reason, &currency], amount_micros.max(0).unsigned_abs());
    });
}

type Deferred = Box<dyn FnOnce()>;

/// The events recorded by the transactions open on this thread (diesel is synchronous:
/// a transaction runs start to end on one thread).
struct Uncommitted {
    depth: usize,
    events: Vec<Deferred>,
}

thread_local! {
    static UNCOMMITTED: RefCell<Uncommitted> = const {
        RefCell::new(Uncommitted { depth: 0, events: Vec::new() })
    };
}

/// Runs `event` when the outermost transaction around it (see [`in_transaction`])
/// commits, never if it rolls back; at once outside any transaction.
pub fn on_commit(event: impl FnOnce() + 'static) {
    let now = UNCOMMITTED.with(|u| {
        let mut u = u.borrow_mut();
        if u.depth == 0 {
            Some(event)
        } else {
            u.events.push(Box::new(event));
            None
        }
    });
    if let Some(event) = now {
        event();
    }
}

/// Runs `transaction` (which commits when it returns `Ok`) and settles the events
/// recorded inside it: counted if it committed and is the outermost, dropped if it failed
/// or panicked. A nested transaction that fails drops only its own events.
pub fn in_transaction<T, E>(transaction: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    struct Scope {
        mark: usize,
        committed: bool,
    }
    impl Drop for Scope {
        fn drop(&mut self) {
            let due = UNCOMMITTED.with(|u| {
                let mut u = u.borrow_mut();
                u.depth -= 1;
                if !self.committed {
                    u.events.truncate(self.mark);
                    Vec::new()
                } else if u.depth == 0 {
                    std::mem::take(&mut u.events)
                } else {
                    Vec::new()
                }
            });
            for event in due {
                event();
            }
        }
    }
    let mark = UNCOMMITTED.with(|u| {
        let mut u = u.borrow_mut();
        u.depth += 1;
        u.events.len()
    });
    let mut scope = Scope {
        mark,
        committed: false,
    };
    let result = transaction();
    scope.committed = result.is_ok();
    result
}

/// What the samples of a counter count.
#[derive(Clone, Copy)]
enum Unit {
    Count,
    /// Micro-units of a currency, exposed as exact decimals in the currency unit.
    Micros,
}

/// A counter family: one monotonic value per combination of label values.
pub struct Counter {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    unit: Unit,
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl Counter {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Counter {
        Counter::of(name, help, labels, Unit::Count)
    }

    /// A counter of money: [`Counter::add`] takes micro-units.
    pub const fn amount(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Counter {
        Counter::of(name, help, labels, Unit::Micros)
    }

    const fn of(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        unit: Unit,
    ) -> Counter {
        Counter {
            name,
            help,
            labels,
            unit,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1);
    }

    pub fn add(&self, labels: &[&str], by: u64) {
        debug_assert_eq!(labels.len(), self.labels.len(), "{}", self.name);
        let key = labels.iter().map(|l| l.to_string()).collect();
        let mut values = lock(&self.values);
        let value = values.entry(key).or_default();
        *value = value.saturating_add(by);
    }

    /// The value for these label values (0 if never counted).
    pub fn get(&self, labels: &[&str]) -> u64 {
        let key: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        lock(&self.values).get(&key).copied().unwrap_or(0)
    }

    fn render(&self, out: &mut Exposition) {
        out.family(self.name, "counter", self.help);
        let mut values = lock(&self.values).clone();
        if values.is_empty() && self.labels.is_empty() {
            values.insert(Vec::new(), 0);
        }
        for (key, value) in values {
            let labels: Vec<(&str, &str)> = self
                .labels
                .iter()
                .copied()
                .zip(key.iter().map(String::as_str))
                .collect();
            let value = match self.unit {
                Unit::Count => value.to_string(),
                Unit::Micros => decimal_micros(value),
            };
            out.sample(self.name, "", &labels, &value);
        }
    }
}

#[derive(Clone)]
struct Buckets {
    /// Observations at or below each bound (not cumulative; summed when rendered).
    counts: Vec<u64>,
    count: u64,
    sum_micros: u64,
}

/// A histogram family: observations in buckets with fixed upper bounds, per label values.
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    /// Upper bounds in microseconds, ascending; `+Inf` is implied.
    bounds: &'static [u64],
    values: Mutex<BTreeMap<Vec<String>, Buckets>>,
}

impl Histogram {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [u64],
    ) -> Histogram {
        Histogram {
            name,
            help,
            labels,
            bounds,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    fn empty(&self) -> Buckets {
        Buckets {
            counts: vec![0; self.bounds.len()],
            count: 0,
            sum_micros: 0,
        }
    }

    pub fn observe(&self, labels: &[&str], elapsed: Duration) {
        debug_assert_eq!(labels.len(), self.labels.len(), "{}", self.name);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let key = labels.iter().map(|l| l.to_string()).collect();
        let mut values = lock(&self.values);
        let buckets = values.entry(key).or_insert_with(|| self.empty());
        if let Some(at) = self.bounds.iter().position(|&bound| micros <= bound) {
            buckets.counts[at] += 1;
        }
        buckets.count += 1;
        buckets.sum_micros = buckets.sum_micros.saturating_add(micros);
    }

    /// How many observations these label values have (0 if none).
    pub fn count(&self, labels: &[&str]) -> u64 {
        let key: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        lock(&self.values).get(&key).map_or(0, |b| b.count)
    }

    fn render(&self, out: &mut Exposition) {
        out.family(self.name, "histogram", self.help);
        let mut values = lock(&self.values).clone();
        if values.is_empty() && self.labels.is_empty() {
            values.insert(Vec::new(), self.empty());
        }
        for (key, buckets) in values {
            let mut labels: Vec<(&str, &str)> = self
                .labels
                .iter()
                .copied()
                .zip(key.iter().map(String::as_str))
                .collect();
            let mut cumulative = 0;
            let bounds = self.bounds.iter().map(|b| decimal_micros(*b));
            let counts = buckets.counts.iter().map(|count| {
                cumulative += count;
                cumulative
            });
            let finite: Vec<(String, u64)> = bounds.zip(counts).collect();
            let all = finite
                .iter()
                .map(|(le, n)| (le.as_str(), *n))
                .chain([("+Inf", buckets.count)]);
            for (le, n) in all {
                labels.push(("le", le));
                out.sample(self.name, "_bucket", &labels, &n.to_string());
                labels.pop();
            }
            out.sample(
                self.name,
                "_sum",
                &labels,
                &decimal_micros(buckets.sum_micros),
            );
            out.sample(self.name, "_count", &labels, &buckets.count.to_string());
        }
    }
}

/// A metric never takes the process down: a poisoned lock still holds valid counts.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Micro-units as an exact decimal of the unit: `1500000` → `1.5`, `7` → `0.000007`.
pub fn decimal_micros(micros: u64) -> String {
    let (whole, fraction) = (micros / 1_000_000, micros % 1_000_000);
    if fraction == 0 {
        whole.to_string()
    } else {
        let digits = format!("{fraction:06}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// A document in the Prometheus text format, written family by family.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

/// The content type of [`Exposition`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Exposition {
    /// Starts a family: its `# HELP` and `# TYPE` lines (`counter`, `gauge`, `histogram`).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of the family started last; `suffix` is `_bucket`, `_sum`, … or empty.
    pub fn sample(&mut self, name: &str, suffix: &str, labels: &[(&str, &str)], value: &str) {
        self.text.push_str(name);
        self.text.push_str(suffix);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let value = value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.text, "{label}=\"{value}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    pub fn into_string(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_decimals_of_the_unit() {
        assert_eq!(decimal_micros(0), "0");
        assert_eq!(decimal_micros(7), "0.000007");
        assert_eq!(decimal_micros(1_500_000), "1.5");
        assert_eq!(decimal_micros(123_456_789_012), "123456.789012");
        assert_eq!(decimal_micros(u64::MAX), "18446744073709.551615");
    }

    #[test]
    fn a_counter_renders_its_labels_escaped_and_its_amounts_exact() {
        static C: Counter = Counter::amount("x_amount_total", "Help with \\ and\nline.", &["r"]);
        C.add(&["a\"b\\c\nd"], 100_000);
        C.add(&["a\"b\\c\nd"], 200_000);
        let mut out = Exposition::default();
        C.render(&mut out);
        assert_eq!(
            out.into_string(),
            "# HELP x_amount_total Help with \\\\ and\\nline.\n# TYPE x_amount_total counter\n\
             x_amount_total{r=\"a\\\"b\\\\c\\nd\"} 0.3\n"
        );
    }

    #[test]
    fn an_unlabelled_family_shows_zero_before_anything_is_counted() {
        static C: Counter = Counter::new("y_total", "Y.", &[]);
        static H: Histogram = Histogram::new("y_seconds", "Y.", &[], &[1_000]);
        let mut out = Exposition::default();
        C.render(&mut out);
        H.render(&mut out);
        let text = out.into_string();
        assert!(text.contains("\ny_total 0\n"), "{text}");
        assert!(
            text.contains(
                "\ny_seconds_bucket{le=\"+Inf\"} 0\ny_seconds_sum 0\ny_seconds_count 0\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_an_exact_sum() {
        static H: Histogram = Histogram::new("z_seconds", "Z.", &["a"], &[1_000, 10_000]);
        H.observe(&["x"], Duration::from_micros(500));
        H.observe(&["x"], Duration::from_micros(1_000));
        H.observe(&["x"], Duration::from_micros(5_000));
        H.observe(&["x"], Duration::from_secs(2));
        let mut out = Exposition::default();
        H.render(&mut out);
        assert_eq!(
            out.into_string(),
            "# HELP z_seconds Z.\n# TYPE z_seconds histogram\n\
             z_seconds_bucket{a=\"x\",le=\"0.001\"} 2\n\
             z_seconds_bucket{a=\"x\",le=\"0.01\"} 3\n\
             z_seconds_bucket{a=\"x\",le=\"+Inf\"} 4\n\
             z_seconds_sum{a=\"x\"} 2.0065\n\
             z_seconds_count{a=\"x\"} 4\n"
        );
    }

    #[test]
    fn events_count_when_the_outermost_transaction_commits_and_never_on_rollback() {
        static C: Counter = Counter::new("w_total", "W.", &["k"]);
        let ok: Result<(), ()> = in_transaction(|| {
            on_commit(|| C.inc(&["committed"]));
            let inner: Result<(), ()> = in_transaction(|| {
                on_commit(|| C.inc(&["inner_rolled_back"]));
                Err(())
            });
            assert!(inner.is_err());
            let _: Result<(), ()> = in_transaction(|| {
                on_commit(|| C.inc(&["inner_committed"]));
                Ok(())
            });
            assert_eq!(
                C.get(&["inner_committed"]),
                0,
                "held until the outermost commits"
            );
            Ok(())
        });
        assert!(ok.is_ok());
        let _: Result<(), ()> = in_transaction(|| {
            on_commit(|| C.inc(&["rolled_back"]));
            Err(())
        });
        let panicked = std::panic::catch_unwind(|| {
            let _: Result<(), ()> = in_transaction(|| {
                on_commit(|| C.inc(&["panicked"]));
                panic!("mid-transaction")
            });
        });
        assert!(panicked.is_err());
        on_commit(|| C.inc(&["outside"]));
        assert_eq!(C.get(&["committed"]), 1);
        assert_eq!(C.get(&["inner_committed"]), 1);
        assert_eq!(C.get(&["inner_rolled_back"]), 0);
        assert_eq!(C.get(&["rolled_back"]), 0);
        assert_eq!(C.get(&["panicked"]), 0);
        assert_eq!(C.get(&["outside"]), 1);
    }
}
