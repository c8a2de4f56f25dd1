//! Configuration, read once from flags with environment fallbacks.

use clap::{Args, FromArgMatches};

/// The defaults exactly as the flags declare them, with no environment read: the one place
/// defaults are written is the `#[arg(default_value…)]` of each flag, so tests, tools and
/// the server cannot drift apart.
fn declared_defaults<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults")).mut_args(|arg| arg.env(None));
    #[expect(
        clippy::expect_used,
        reason = "every flag has a default or is optional, and each default passes its own parser (the config tests parse them all)"
    )]
    let matches = command
        .try_get_matches_from(["defaults"])
        .expect("every flag has a default or is optional");
    #[expect(
        clippy::expect_used,
        reason = "the matches come from the declared flags just above"
    )]
    let defaults = T::from_arg_matches(&matches).expect("the declared defaults parse");
    defaults
}

/// A database URL. A PostgreSQL URL may carry a password (`postgres://user:pass@host/db`
/// or `?password=`): `Debug` and `Display` show the URL with the password replaced, so a
/// config in a log or an error names the database and never the password. The driver
/// gets the URL through [`DatabaseUrl::expose_secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL with its password, for the database driver only.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    fn redacted(&self) -> String {
        const HIDDEN: &str = "***";
        let Ok(mut url) = url::Url::parse(&self.0) else {
            // Not a URL (a bare SQLite path, or a libpq `key=value` string): shown only
            // when nothing in it can be a password.
            let lower = self.0.to_ascii_lowercase();
            return if self.0.contains('@') || lower.contains("password") {
                "<redacted>".into()
            } else {
                self.0.clone()
            };
        };
        if url.password().is_some() && url.set_password(Some(HIDDEN)).is_err() {
            return "<redacted>".into();
        }
        let is_password = |key: &str| key.eq_ignore_ascii_case("password");
        if url.query_pairs().any(|(key, _)| is_password(&key)) {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(key, value)| {
                    let value = if is_password(&key) {
                        HIDDEN.into()
                    } else {
                        value.into_owned()
                    };
                    (key.into_owned(), value)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.to_string()
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> DatabaseUrl {
        DatabaseUrl(url)
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> DatabaseUrl {
        DatabaseUrl(url.to_string())
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A flag's parser that refuses values below `min` with a message naming the floor. Each
/// flag is checked here, once, when it is read (from the command line, the environment or
/// its default), so the code using a value never clamps it and a mistyped value stops the
/// process at start instead of being quietly replaced.
fn at_least<T>(min: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    move |raw| {
        let value: T = raw.parse().map_err(|e| format!("{e}"))?;
        if value < min {
            return Err(format!("must be at least {min}, not {value}"));
        }
        Ok(value)
    }
}

/// A count or a window that cannot be zero, typed so: the rate limiter divides by it.
fn positive_u32(raw: &str) -> Result<std::num::NonZeroU32, String> {
    std::num::NonZeroU32::new(at_least(1u32)(raw)?).ok_or_else(|| "must be at least 1".into())
}

/// As [`positive_u32`], for windows in seconds.
fn positive_u64(raw: &str) -> Result<std::num::NonZeroU64, String> {
    std::num::NonZeroU64::new(at_least(1u64)(raw)?).ok_or_else(|| "must be at least 1".into())
}

/// A secret flag's value, kept out of `Debug`.
fn parse_secret(raw: &str) -> Result<secrecy::SecretString, String> {
    Ok(raw.to_string().into())
}

/// A rate flag: a fraction from 0 to 1.
fn parse_rate(raw: &str) -> Result<rust_decimal::Decimal, String> {
    let rate: rust_decimal::Decimal = raw.parse().map_err(|e| format!("{e}"))?;
    rate_ppm(rate)?;
    Ok(rate)
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// `sqlite://path` (the default) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/reseller-api.db",
        global = true
    )]
    pub database_url: DatabaseUrl,
    /// Database connections in the pool.
    #[arg(
        long,
        env = "RESELLER_API_DB_POOL",
        default_value_t = 10,
        value_parser = at_least(1u32),
        global = true
    )]
    pub db_pool_size: u32,
    /// SQLite: write transactions that may wait for the database's writer besides the
    /// batch it is committing; one more is refused with 503 and `Retry-After`.
    #[arg(
        long,
        env = "RESELLER_API_WRITE_QUEUE",
        default_value_t = 1024,
        global = true
    )]
    pub write_queue: usize,
    /// `iss` of issued tokens, and the only issuer accepted.
    #[arg(
        long,
        env = "RESELLER_API_JWT_ISSUER",
        default_value = "reseller-api",
        global = true
    )]
    pub jwt_issuer: String,
    /// `aud` of issued tokens, and the only audience accepted.
    #[arg(
        long,
        env = "RESELLER_API_JWT_AUDIENCE",
        default_value = "reseller-api",
        global = true
    )]
    pub jwt_audience: String,
    /// Access token lifetime in seconds.
    #[arg(
        long,
        env = "RESELLER_API_TOKEN_TTL",
        default_value_t = 900,
        global = true
    )]
    pub token_ttl_secs: i64,
    /// Largest request body accepted, in bytes.
    #[arg(
        long,
        env = "RESELLER_API_MAX_BODY",
        default_value_t = 65_536,
        global = true
    )]
    pub max_body_bytes: usize,
    /// Largest body of an order (`POST /v1/orders`, API v2), in bytes: room for two full
    /// lists (60000 characters each, even as `\uXXXX\uXXXX` escapes of 12 bytes a
    /// character). Never below `--max-body-bytes`.
    #[arg(
        long,
        env = "RESELLER_API_MAX_ORDER_BODY",
        default_value_t = 2_097_152,
        global = true
    )]
    pub max_order_body_bytes: usize,
    /// Largest body of a mass order (`POST /v1/orders/batch`, up to 100 orders), in bytes.
    /// Orders with long lists go one by one or in smaller batches. Never below
    /// `--max-body-bytes`.
    #[arg(
        long,
        env = "RESELLER_API_MAX_BATCH_BODY",
        default_value_t = 8_388_608,
        global = true
    )]
    pub max_batch_body_bytes: usize,
    /// Browser origins (dashboards) allowed to call the API, comma-separated, e.g.
    /// `https://panel.example.com,http://localhost:3000`. None by default: no CORS headers.
    #[arg(
        long,
        env = "RESELLER_API_CORS_ORIGINS",
        value_delimiter = ',',
        value_parser = parse_origin,
        global = true
    )]
    pub cors_origins: Vec<String>,
    /// File holding the master key that encrypts secrets at rest (32 random bytes as
    /// base64). SQLite default: `<database file>.key`, created (0600) on the first start;
    /// PostgreSQL requires a key. Keep it out of the database's backups.
    #[arg(long, env = "RESELLER_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<std::path::PathBuf>,
    /// The master key itself, as base64, instead of a file (prefer the variable: a flag's
    /// value shows in the process list).
    #[arg(
        long,
        env = "RESELLER_MASTER_KEY",
        hide_env_values = true,
        value_parser = parse_secret,
        global = true
    )]
    pub master_key: Option<secrecy::SecretString>,
    #[command(flatten)]
    pub limits: LimitConfig,
    #[command(flatten)]
    pub policy: PolicyConfig,
    #[command(flatten)]
    pub worker: WorkerConfig,
    #[command(flatten)]
    pub retention: RetentionConfig,
    #[command(flatten)]
    pub webhooks: WebhookConfig,
    #[command(flatten)]
    pub alerts: AlertConfig,
}

impl Default for Config {
    fn default() -> Config {
        declared_defaults()
    }
}

/// An origin as a browser sends it: `scheme://host[:port]`, nothing after. Browsers compare
/// origins exactly, so `https://panel.example.com/` would never match and is refused here.
fn parse_origin(raw: &str) -> Result<String, String> {
    // Browsers send origins in lower case, and the match is exact.
    let origin = raw.trim().to_ascii_lowercase();
    let (scheme, rest) = origin
        .split_once("://")
        .ok_or_else(|| format!("`{origin}` is not an origin like https://panel.example.com"))?;
    let host_ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if !["http", "https"].contains(&scheme) || !host_ok {
        return Err(format!(
            "`{origin}` is not an origin: use scheme://host[:port] with no path or trailing slash"
        ));
    }
    Ok(origin)
}

/// Request quotas: `N` requests per `W` seconds each (see `http::limits`: the account quota
/// holds across processes on PostgreSQL, the others are per process).
#[derive(Debug, Clone, Args)]
pub struct LimitConfig {
    /// Requests per window for each authenticated account, over the whole API.
    #[arg(
        long,
        env = "RESELLER_API_RATE_ACCOUNT",
        default_value = "600",
        value_parser = positive_u32,
        global = true
    )]
    pub rate_account: std::num::NonZeroU32,
    /// Window of `--rate-account`, in seconds.
    #[arg(
        long,
        env = "RESELLER_API_RATE_ACCOUNT_WINDOW",
        default_value = "60",
        value_parser = positive_u64,
        global = true
    )]
    pub rate_account_window: std::num::NonZeroU64,
    /// Token requests per window for each client IP (deters key guessing).
    #[arg(
        long,
        env = "RESELLER_API_RATE_TOKEN",
        default_value = "20",
        value_parser = positive_u32,
        global = true
    )]
    pub rate_token: std::num::NonZeroU32,
    /// Window of `--rate-token`, in seconds.
    #[arg(
        long,
        env = "RESELLER_API_RATE_TOKEN_WINDOW",
        default_value = "60",
        value_parser = positive_u64,
        global = true
    )]
    pub rate_token_window: std::num::NonZeroU64,
    /// Refund requests (disputes) per window for each account.
    #[arg(
        long,
        env = "RESELLER_API_RATE_DISPUTE",
        default_value = "10",
        value_parser = positive_u32,
        global = true
    )]
    pub rate_dispute: std::num::NonZeroU32,
    /// Window of `--rate-dispute`, in seconds.
    #[arg(
        long,
        env = "RESELLER_API_RATE_DISPUTE_WINDOW",
        default_value = "3600",
        value_parser = positive_u64,
        global = true
    )]
    pub rate_dispute_window: std::num::NonZeroU64,
    /// Failed key attempts (an unknown or revoked API key on API v2 or the token
    /// exchange, an invalid access token) per window for each client address (IPv6: per
    /// /64). Past it, every key attempt from that address is refused until it refills.
    #[arg(
        long,
        env = "RESELLER_API_RATE_AUTH_FAILURES",
        default_value = "30",
        value_parser = positive_u32,
        global = true
    )]
    pub rate_auth_failures: std::num::NonZeroU32,
    /// Window of `--rate-auth-failures`, in seconds.
    #[arg(
        long,
        env = "RESELLER_API_RATE_AUTH_FAILURES_WINDOW",
        default_value = "60",
        value_parser = positive_u64,
        global = true
    )]
    pub rate_auth_failures_window: std::num::NonZeroU64,
    /// Seconds a process remembers an API key it found unknown or revoked, answering it
    /// again without a database read (0: never). A key created through this process is
    /// never answered from it; one created through another process is, for at most this
    /// long, only if this exact key was tried before it existed.
    #[arg(
        long,
        env = "RESELLER_API_AUTH_MISS_CACHE_SECS",
        default_value_t = 10,
        value_parser = at_least(0i64),
        global = true
    )]
    pub auth_miss_cache_secs: i64,
    /// Share of `--rate-account` a process takes at once from an account's quota cell in
    /// PostgreSQL (a lease), so several processes enforce one quota and most requests
    /// need no database write. 0: one fiftieth of the quota (at least 1, at most 50).
    /// Unused on SQLite, whose single process keeps the quota in memory.
    #[arg(
        long,
        env = "RESELLER_API_RATE_ACCOUNT_LEASE",
        default_value_t = 0,
        global = true
    )]
    pub rate_account_lease: u32,
    /// Header naming the client IP, set by a trusted reverse proxy (e.g. `X-Forwarded-For`,
    /// whose last entry is used). Unset: the peer address, and forwarded headers are ignored.
    #[arg(long, env = "RESELLER_API_TRUSTED_IP_HEADER", global = true)]
    pub trusted_ip_header: Option<String>,
}

impl Default for LimitConfig {
    fn default() -> LimitConfig {
        declared_defaults()
    }
}

/// The refund-abuse policy's thresholds (see `domain::policy`).
#[derive(Debug, Clone, Args)]
pub struct PolicyConfig {
    /// Refund requests an account may make per hour.
    #[arg(
        long,
        env = "RESELLER_API_DISPUTES_PER_HOUR",
        default_value_t = 5,
        global = true
    )]
    pub disputes_per_hour: i64,
    /// Refund requests an account may make per day.
    #[arg(
        long,
        env = "RESELLER_API_DISPUTES_PER_DAY",
        default_value_t = 20,
        global = true
    )]
    pub disputes_per_day: i64,
    /// Orders in 30 days before the refund-rate rules apply.
    #[arg(
        long,
        env = "RESELLER_API_REFUND_RATE_MIN_ORDERS",
        default_value_t = 20,
        global = true
    )]
    pub refund_rate_min_orders: i64,
    /// 30-day refund rate (by amount or by count) from which requests are escalated to review.
    #[arg(
        long,
        env = "RESELLER_API_REFUND_RATE_ESCALATE",
        default_value = "0.2",
        global = true
    )]
    pub refund_rate_escalate: rust_decimal::Decimal,
    /// 30-day refund rate from which requests are refused.
    #[arg(
        long,
        env = "RESELLER_API_REFUND_RATE_REFUSE",
        default_value = "0.5",
        global = true
    )]
    pub refund_rate_refuse: rust_decimal::Decimal,
    /// Rejected requests within 7 days that start a cool-down.
    #[arg(
        long,
        env = "RESELLER_API_COOLDOWN_REJECTIONS",
        default_value_t = 2,
        global = true
    )]
    pub cooldown_rejections: i64,
    /// Cool-down after the last rejection, in hours.
    #[arg(
        long,
        env = "RESELLER_API_COOLDOWN_HOURS",
        default_value_t = 24,
        global = true
    )]
    pub cooldown_hours: i64,
    /// Requests up to this amount are approved without review when no rule objects;
    /// 0 means every request is reviewed by a person.
    #[arg(
        long,
        env = "RESELLER_API_AUTO_APPROVE_MAX",
        default_value = "0",
        global = true
    )]
    pub auto_approve_max: rust_decimal::Decimal,
}

impl Default for PolicyConfig {
    fn default() -> PolicyConfig {
        declared_defaults()
    }
}

impl PolicyConfig {
    /// The policy these thresholds describe.
    pub fn policy(&self) -> Result<crate::domain::policy::Policy, String> {
        let auto = crate::domain::money::Money::parse(&self.auto_approve_max.to_string())
            .map_err(|e| format!("--auto-approve-max {e}"))?;
        Ok(crate::domain::policy::Policy {
            max_per_hour: self.disputes_per_hour,
            max_per_day: self.disputes_per_day,
            rate_min_orders: self.refund_rate_min_orders,
            rate_escalate: self.refund_rate_escalate,
            rate_refuse: self.refund_rate_refuse,
            cooldown_rejections: self.cooldown_rejections,
            cooldown: chrono::Duration::hours(self.cooldown_hours),
            auto_approve_max: auto,
        })
    }
}

/// The provider worker: forwarding orders upstream and syncing their statuses.
#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    /// Do not run the provider worker inside `serve` (run `reseller-api worker` instead).
    #[arg(long, env = "RESELLER_API_NO_WORKER", global = true)]
    pub no_worker: bool,
    /// How often the worker looks for due work, in milliseconds.
    #[arg(
        long,
        env = "RESELLER_API_WORKER_INTERVAL_MS",
        default_value_t = 1000,
        value_parser = at_least(10u64),
        global = true
    )]
    pub worker_interval_ms: u64,
    /// How often an open order's status is polled, in seconds.
    #[arg(
        long,
        env = "RESELLER_API_SYNC_INTERVAL",
        default_value_t = 60,
        value_parser = at_least(0i64),
        global = true
    )]
    pub sync_interval_secs: i64,
    /// Failed sends after which an order is canceled and refunded.
    #[arg(
        long,
        env = "RESELLER_API_FORWARD_MAX_FAILURES",
        default_value_t = 5,
        global = true
    )]
    pub forward_max_failures: i64,
    /// Hours after which an order without a final status stops being polled.
    #[arg(
        long,
        env = "RESELLER_API_GIVE_UP_HOURS",
        default_value_t = 168,
        value_parser = at_least(1i64),
        global = true
    )]
    pub give_up_hours: i64,
    /// Seconds a worker holds an order it is sending or polling; never less than the
    /// provider's timeout plus 30 s, so a lease outlasts the exchange it covers.
    #[arg(
        long,
        env = "RESELLER_API_LEASE_SECS",
        default_value_t = 120,
        value_parser = at_least(5i64),
        global = true
    )]
    pub lease_secs: i64,
    /// Longest wait between retries after provider errors, in seconds.
    #[arg(
        long,
        env = "RESELLER_API_MAX_BACKOFF",
        default_value_t = 3600,
        value_parser = at_least(0i64),
        global = true
    )]
    pub max_backoff_secs: i64,
    /// How often each provider's balance is read (`action=balance`), in seconds.
    #[arg(
        long,
        env = "RESELLER_API_BALANCE_INTERVAL",
        default_value_t = 300,
        value_parser = at_least(0i64),
        global = true
    )]
    pub balance_interval_secs: i64,
    /// How often the catalogs of providers with `auto_sync` are synced, in seconds (one
    /// process per interval; 0 syncs on every worker pass).
    #[arg(
        long,
        env = "RESELLER_API_SERVICE_SYNC_INTERVAL_SECS",
        default_value_t = 3600,
        global = true
    )]
    pub service_sync_interval_secs: u64,
    /// How long, in seconds, a refund we paid because a provider reported Partial or
    /// Canceled waits for the provider's lowered `charge` before it counts as unrecovered
    /// (default 72 hours).
    #[arg(
        long,
        env = "RESELLER_API_RECOVERY_WINDOW_SECS",
        default_value_t = 259_200,
        value_parser = at_least(0i64),
        global = true
    )]
    pub recovery_window_secs: i64,
    /// How often, in seconds, the recovery watch asks a provider for the orders it still
    /// watches (`action=status`, those orders only; separate from the status sync).
    #[arg(
        long,
        env = "RESELLER_API_RECOVERY_POLL_SECS",
        default_value_t = 3600,
        value_parser = at_least(0i64),
        global = true
    )]
    pub recovery_poll_secs: i64,
    /// Report zones whose local days the rollups keep, as offsets (`+05:30,-03:00`): a
    /// day, week or month series in one of them reads one rollup row a day; in any other
    /// zone it reads the UTC quarters, hours and six hours at each local day's edges
    /// (exact either way, slower over long windows). Whole quarters of an hour only; UTC
    /// needs none. A zone added is filled from the history by the worker, a week per
    /// second; one left out is dropped. Every process of a panel lists the same zones.
    #[arg(
        long,
        env = "RESELLER_API_REPORT_ZONES",
        value_delimiter = ',',
        value_parser = report_zone,
        global = true
    )]
    pub report_zones: Vec<chrono::FixedOffset>,
}

impl WorkerConfig {
    /// The phases of [`WorkerConfig::report_zones`] (`domain::report::phase_of`), once each.
    pub fn report_phases(&self) -> Vec<i64> {
        let mut phases: Vec<i64> = self
            .report_zones
            .iter()
            .filter_map(|zone| crate::domain::report::phase_of(*zone))
            .collect();
        phases.sort_unstable();
        phases.dedup();
        phases
    }
}

/// A report zone: `UTC` or an offset in whole quarters of an hour (`+05:45`).
fn report_zone(raw: &str) -> Result<chrono::FixedOffset, String> {
    let zone = crate::domain::report::parse_timezone(raw)?;
    if zone.local_minus_utc() % 900 != 0 {
        return Err(format!(
            "{raw}: a report zone must be a whole number of quarters of an hour from UTC"
        ));
    }
    Ok(zone)
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        declared_defaults()
    }
}

/// How long records nobody needs after a while are kept. Money records (orders, ledger,
/// refunds, top-ups) are never deleted.
#[derive(Debug, Clone, Args)]
pub struct RetentionConfig {
    /// Hours an `Idempotency-Key` is remembered; a request with an older key is a new request.
    #[arg(
        long,
        env = "RESELLER_API_IDEMPOTENCY_TTL_HOURS",
        default_value_t = 24,
        value_parser = at_least(1i64),
        global = true
    )]
    pub idempotency_ttl_hours: i64,
    /// Days the raw bodies of provider replies are kept on their attempt records.
    #[arg(
        long,
        env = "RESELLER_API_ATTEMPT_BODY_DAYS",
        default_value_t = 30,
        value_parser = at_least(1i64),
        global = true
    )]
    pub attempt_body_days: i64,
    /// Days events (and their webhook deliveries and attempt log) are kept; never fewer
    /// than 30, the event log's promise.
    #[arg(
        long,
        env = "RESELLER_API_EVENT_RETENTION_DAYS",
        default_value_t = 90,
        value_parser = at_least(30i64),
        global = true
    )]
    pub event_retention_days: i64,
    /// Days audit-log entries are kept; never fewer than 365, a year of "who did this".
    #[arg(
        long,
        env = "RESELLER_API_AUDIT_RETENTION_DAYS",
        default_value_t = 400,
        value_parser = at_least(crate::domain::audit::MIN_RETENTION_DAYS),
        global = true
    )]
    pub audit_retention_days: i64,
    /// Seconds between the worker's retention passes.
    #[arg(
        long,
        env = "RESELLER_API_RETENTION_INTERVAL_SECS",
        default_value_t = 300,
        value_parser = at_least(1u64),
        global = true
    )]
    pub retention_interval_secs: u64,
    /// Rows removed per statement, so a pass never holds the write lock for long.
    #[arg(
        long,
        env = "RESELLER_API_RETENTION_BATCH",
        default_value_t = 500,
        value_parser = at_least(1i64),
        global = true
    )]
    pub retention_batch: i64,
}

impl Default for RetentionConfig {
    fn default() -> RetentionConfig {
        declared_defaults()
    }
}

impl RetentionConfig {
    /// How long a stored idempotent response can be replayed.
    pub fn idempotency_ttl(&self) -> chrono::Duration {
        chrono::Duration::hours(self.idempotency_ttl_hours)
    }
}

/// Webhook delivery (Standard Webhooks 1.0).
#[derive(Debug, Clone, Args)]
pub struct WebhookConfig {
    /// Allow webhook URLs on loopback, private, link-local and metadata addresses, and
    /// plain `http` (for development and tests); off, only public `https` targets.
    #[arg(
        long,
        env = "RESELLER_API_WEBHOOK_ALLOW_PRIVATE",
        default_value_t = false,
        global = true
    )]
    pub webhook_allow_private: bool,
    /// The wait before each attempt, in seconds: the first is the immediate one. The
    /// default is the Standard Webhooks schedule (0 s, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
    /// 14 h, 20 h, 24 h); each wait after the first is jittered by up to ±10 %.
    #[arg(
        long,
        env = "RESELLER_API_WEBHOOK_RETRY_SCHEDULE",
        default_value = "0,5,300,1800,7200,18000,36000,50400,72000,86400",
        value_parser = crate::domain::event::parse_schedule,
        global = true
    )]
    pub webhook_retry_schedule: std::vec::Vec<u64>,
    /// Seconds a receiver has to answer an attempt with a 2xx.
    #[arg(
        long,
        env = "RESELLER_API_WEBHOOK_TIMEOUT_SECS",
        default_value_t = 15,
        value_parser = at_least(1u64),
        global = true
    )]
    pub webhook_timeout_secs: u64,
    /// Hours the previous secret keeps signing (beside the new one) after a rotation.
    #[arg(
        long,
        env = "RESELLER_API_WEBHOOK_ROTATION_GRACE_HOURS",
        default_value_t = 24,
        value_parser = at_least(0i64),
        global = true
    )]
    pub webhook_rotation_grace_hours: i64,
    /// Days an endpoint may fail every attempt before it is disabled.
    #[arg(
        long,
        env = "RESELLER_API_WEBHOOK_DISABLE_AFTER_DAYS",
        default_value_t = 5,
        value_parser = at_least(1i64),
        global = true
    )]
    pub webhook_disable_after_days: i64,
    /// How often the webhook worker looks for events to deliver, in milliseconds.
    #[arg(
        long,
        env = "RESELLER_API_WEBHOOK_INTERVAL_MS",
        default_value_t = 500,
        value_parser = at_least(10u64),
        global = true
    )]
    pub webhook_interval_ms: u64,
    /// Endpoints one account may have; creating more is refused (`webhook_endpoint_limit`).
    /// Accounts already above it keep theirs. It also bounds an event's fan-out.
    #[arg(
        long,
        env = "RESELLER_API_WEBHOOK_ENDPOINTS_PER_ACCOUNT",
        default_value_t = 16,
        value_parser = at_least(1i64),
        global = true
    )]
    pub webhook_endpoints_per_account: i64,
    /// Deliveries a worker process sends at once, each on a sender thread of its own; at
    /// most one per endpoint is in flight, so a slow endpoint holds one sender, not a batch.
    #[arg(
        long,
        env = "RESELLER_API_WEBHOOK_SENDERS",
        default_value_t = 16,
        value_parser = at_least(1u64),
        global = true
    )]
    pub webhook_senders: u64,
    /// Deliveries to one account's endpoints in flight at once (over every process): an
    /// account whose endpoints hang holds at most this many senders.
    #[arg(
        long,
        env = "RESELLER_API_WEBHOOK_SENDS_PER_ACCOUNT",
        default_value_t = 4,
        value_parser = at_least(1u64),
        global = true
    )]
    pub webhook_sends_per_account: u64,
    /// Failed attempts in a row (errors, timeouts, non-2xx) that open an endpoint's circuit
    /// breaker: its deliveries are parked (kept pending, not dropped) while it is open.
    #[arg(
        long,
        env = "RESELLER_API_WEBHOOK_BREAKER_FAILURES",
        default_value_t = 5,
        value_parser = at_least(1i64),
        global = true
    )]
    pub webhook_breaker_failures: i64,
    /// Seconds an endpoint's breaker stays open the first time; then one probe is sent
    /// (half-open). Each failed probe doubles it, up to an hour; a success closes it.
    #[arg(
        long,
        env = "RESELLER_API_WEBHOOK_BREAKER_OPEN_SECS",
        default_value_t = 60,
        value_parser = at_least(1u64),
        global = true
    )]
    pub webhook_breaker_open_secs: u64,
    /// Seconds the check of a new webhook URL waits for DNS; a name that has not resolved
    /// by then is judged again at every delivery. The wait holds no database connection.
    #[arg(
        long,
        env = "RESELLER_API_WEBHOOK_RESOLVE_TIMEOUT_SECS",
        default_value_t = 5,
        value_parser = at_least(1u64),
        global = true
    )]
    pub webhook_resolve_timeout_secs: u64,
    /// How webhook URL checks resolve host names (the system resolver; tests stand in a
    /// slow one). Not a flag.
    #[arg(skip)]
    pub webhook_resolver: HostResolver,
}

/// A host name and port to the addresses it resolves to (none when it does not).
type ResolveFn = dyn Fn(&str, u16) -> Vec<std::net::IpAddr> + Send + Sync;

/// Resolves a host name to its addresses for the webhook URL check, with a bound on the
/// resolutions waiting at once (each holds a blocking thread until DNS answers).
#[derive(Clone)]
pub struct HostResolver {
    resolve: std::sync::Arc<ResolveFn>,
    waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Resolutions of webhook hosts waiting at once, per process; beyond it a host is left
/// unresolved at registration (every delivery resolves it again under the guard).
pub const RESOLUTIONS_AT_ONCE: usize = 16;

impl HostResolver {
    /// A resolver that answers with `resolve` (tests).
    pub fn new(
        resolve: impl Fn(&str, u16) -> Vec<std::net::IpAddr> + Send + Sync + 'static,
    ) -> HostResolver {
        HostResolver {
            resolve: std::sync::Arc::new(resolve),
            waiting: std::sync::Arc::default(),
        }
    }

    /// The addresses of `host`, or none when it does not resolve; `None` when
    /// [`RESOLUTIONS_AT_ONCE`] are already waiting.
    pub fn resolve(&self, host: &str, port: u16) -> Option<Vec<std::net::IpAddr>> {
        use std::sync::atomic::Ordering;
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= RESOLUTIONS_AT_ONCE {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let addresses = (self.resolve)(host, port);
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        Some(addresses)
    }
}

impl Default for HostResolver {
    fn default() -> HostResolver {
        HostResolver::new(|host, port| {
            use std::net::ToSocketAddrs;
            (host, port)
                .to_socket_addrs()
                .map(|addrs| addrs.map(|a| a.ip()).collect())
                .unwrap_or_default()
        })
    }
}

impl std::fmt::Debug for HostResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostResolver")
    }
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        declared_defaults()
    }
}

/// Refund-rate alerts per service and per provider over rolling 1 h, 24 h and 7 d windows.
#[derive(Debug, Clone, Args)]
pub struct AlertConfig {
    /// Refund rate (by amount or by count, as a fraction) that raises a warning.
    #[arg(
        long,
        env = "RESELLER_API_ALERT_WARNING_RATE",
        default_value = "0.1",
        value_parser = parse_rate,
        global = true
    )]
    pub alert_warning_rate: rust_decimal::Decimal,
    /// Refund rate that makes an alert critical.
    #[arg(
        long,
        env = "RESELLER_API_ALERT_CRITICAL_RATE",
        default_value = "0.25",
        value_parser = parse_rate,
        global = true
    )]
    pub alert_critical_rate: rust_decimal::Decimal,
    /// Orders a window must hold before its rate counts.
    #[arg(
        long,
        env = "RESELLER_API_ALERT_MIN_ORDERS",
        default_value_t = 20,
        value_parser = at_least(1i64),
        global = true
    )]
    pub alert_min_orders: i64,
    /// An active alert clears only when the rate falls below this share of the warning
    /// rate (the hysteresis that keeps a rate hovering at the threshold from flapping).
    #[arg(
        long,
        env = "RESELLER_API_ALERT_CLEAR_RATIO",
        default_value = "0.8",
        value_parser = parse_rate,
        global = true
    )]
    pub alert_clear_ratio: rust_decimal::Decimal,
    /// Seconds between evaluations (one process evaluates per interval, whichever takes
    /// the turn); 0 evaluates on every webhook worker pass.
    #[arg(
        long,
        env = "RESELLER_API_ALERT_INTERVAL_SECS",
        default_value_t = 60,
        global = true
    )]
    pub alert_interval_secs: u64,
    /// Refuse new orders to a service, or a provider's services, while a critical alert
    /// on it is active (off by default).
    #[arg(
        long,
        env = "RESELLER_API_ALERT_PAUSE_ORDERS",
        default_value_t = false,
        global = true
    )]
    pub alert_pause_orders: bool,
    /// Share of the credits a provider should have given back (for refunds its Partial or
    /// Canceled caused) that it did not, within an alert window by order date, that
    /// raises a provider's `unrecovered` warning.
    #[arg(
        long,
        env = "RESELLER_API_ALERT_UNRECOVERED_WARNING_RATE",
        default_value = "0.2",
        value_parser = parse_rate,
        global = true
    )]
    pub alert_unrecovered_warning_rate: rust_decimal::Decimal,
    /// The share that makes it critical.
    #[arg(
        long,
        env = "RESELLER_API_ALERT_UNRECOVERED_CRITICAL_RATE",
        default_value = "0.5",
        value_parser = parse_rate,
        global = true
    )]
    pub alert_unrecovered_critical_rate: rust_decimal::Decimal,
    /// Refunds to recover a window must hold before its unrecovered share counts.
    #[arg(
        long,
        env = "RESELLER_API_ALERT_UNRECOVERED_MIN_REFUNDS",
        default_value_t = 5,
        value_parser = at_least(1i64),
        global = true
    )]
    pub alert_unrecovered_min_refunds: i64,
    /// Stop sending orders to a provider while a critical `unrecovered` alert on it is
    /// active, like a balance below its minimum: they wait queued (off by default).
    #[arg(
        long,
        env = "RESELLER_API_ALERT_PAUSE_FORWARDING",
        default_value_t = false,
        global = true
    )]
    pub alert_pause_forwarding: bool,
}

impl Default for AlertConfig {
    fn default() -> AlertConfig {
        declared_defaults()
    }
}

/// A rate flag in millionths, checked to lie in 0..=1.
pub fn rate_ppm(rate: rust_decimal::Decimal) -> Result<i64, String> {
    use rust_decimal::prelude::ToPrimitive;
    if rate < rust_decimal::Decimal::ZERO || rate > rust_decimal::Decimal::ONE {
        return Err(format!("a rate is a fraction from 0 to 1, not {rate}"));
    }
    (rate * rust_decimal::Decimal::from(1_000_000))
        .trunc()
        .to_i64()
        .ok_or_else(|| format!("{rate} is out of range"))
}

impl AlertConfig {
    /// The global thresholds, in millionths.
    pub fn thresholds(&self) -> Result<crate::domain::alert::Thresholds, String> {
        let t = crate::domain::alert::Thresholds {
            warning_ppm: rate_ppm(self.alert_warning_rate)?,
            critical_ppm: rate_ppm(self.alert_critical_rate)?,
            min_orders: self.alert_min_orders,
            clear_ratio_ppm: rate_ppm(self.alert_clear_ratio)?,
        };
        if t.critical_ppm < t.warning_ppm {
            return Err("--alert-critical-rate must be at least --alert-warning-rate".into());
        }
        Ok(t)
    }

    /// The thresholds of providers' `unrecovered` alerts, in millionths (the clearing
    /// ratio is the refund-rate alerts').
    pub fn unrecovered_thresholds(&self) -> Result<crate::domain::alert::Thresholds, String> {
        let t = crate::domain::alert::Thresholds {
            warning_ppm: rate_ppm(self.alert_unrecovered_warning_rate)?,
            critical_ppm: rate_ppm(self.alert_unrecovered_critical_rate)?,
            min_orders: self.alert_unrecovered_min_refunds,
            clear_ratio_ppm: rate_ppm(self.alert_clear_ratio)?,
        };
        if t.critical_ppm < t.warning_ppm {
            return Err("--alert-unrecovered-critical-rate must be at least \
                        --alert-unrecovered-warning-rate"
                .into());
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_debugged_or_displayed_shows_no_database_password() {
        for (url, shown) in [
            (
                "postgres://app:hunter2pw@db.internal:5432/reseller",
                "postgres://app:***@db.internal:5432/reseller",
            ),
            (
                "postgresql://app@db.internal/reseller?sslmode=require&password=hunter2pw",
                "postgresql://app@db.internal/reseller?sslmode=require&password=***",
            ),
            ("host=db.internal password=hunter2pw", "<redacted>"),
            (
                "sqlite://data/reseller-api.db",
                "sqlite://data/reseller-api.db",
            ),
        ] {
            let config = parse(&["--database-url", url]).unwrap();
            let debug = format!("{config:?}");
            assert!(!debug.contains("hunter2pw"), "{debug}");
            assert!(debug.contains(shown), "{shown} not in {debug}");
            assert_eq!(config.database_url.to_string(), shown);
            assert_eq!(config.database_url.expose_secret(), url);
        }
    }

    /// Parses `args` as the flags alone, with no environment read.
    fn parse(args: &[&str]) -> Result<Config, String> {
        let command =
            Config::augment_args(clap::Command::new("reseller-api")).mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from(std::iter::once("reseller-api").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Config::from_arg_matches(&matches).map_err(|e| e.to_string())
    }

    fn refused(args: &[&str]) -> String {
        match parse(args) {
            Ok(_) => panic!("{args:?} was accepted"),
            Err(message) => message,
        }
    }

    #[test]
    fn report_zones_are_whole_quarters_and_name_their_phases_once() {
        let config = parse(&["--report-zones", "+05:30,UTC,-03:30,+05:30"]).unwrap();
        assert_eq!(config.worker.report_zones.len(), 4);
        // UTC needs no days of its own; +05:30 starts at 18:30 UTC (74 quarters), -03:30
        // at 03:30 (14).
        assert_eq!(config.worker.report_phases(), vec![14, 74]);
        assert!(Config::default().worker.report_phases().is_empty());
        let message = refused(&["--report-zones", "+05:30,+03:20"]);
        assert!(message.contains("whole number of quarters"), "{message}");
        let message = refused(&["--report-zones", "Asia/Kolkata"]);
        assert!(message.contains("fixed offset"), "{message}");
    }

    #[test]
    fn defaults_are_the_declared_ones_and_ignore_the_environment() {
        std::env::set_var("RESELLER_API_DB_POOL", "77");
        let config = Config::default();
        std::env::remove_var("RESELLER_API_DB_POOL");
        assert_eq!(config.db_pool_size, 10);
        assert_eq!(
            config.database_url.expose_secret(),
            "sqlite://data/reseller-api.db"
        );
        assert_eq!(config.limits.rate_account.get(), 600);
        assert_eq!(
            config.policy.refund_rate_escalate,
            rust_decimal::Decimal::new(2, 1)
        );
        assert_eq!(config.worker.lease_secs, 120);
        assert_eq!(config.retention.idempotency_ttl_hours, 24);
        assert!(config.cors_origins.is_empty());
    }

    #[test]
    fn the_checked_flags_keep_their_defaults() {
        let c = parse(&[]).unwrap();
        let limits = [
            c.limits.rate_account.get(),
            c.limits.rate_token.get(),
            c.limits.rate_dispute.get(),
        ];
        assert_eq!(limits, [600, 20, 10]);
        let windows = [
            c.limits.rate_account_window.get(),
            c.limits.rate_token_window.get(),
            c.limits.rate_dispute_window.get(),
        ];
        assert_eq!(windows, [60, 60, 3600]);
        assert_eq!(c.db_pool_size, 10);
        let w = &c.worker;
        assert_eq!(w.worker_interval_ms, 1000);
        let worker = [
            w.sync_interval_secs,
            w.give_up_hours,
            w.lease_secs,
            w.max_backoff_secs,
            w.balance_interval_secs,
        ];
        assert_eq!(worker, [60, 168, 120, 3600, 300]);
        let r = &c.retention;
        let retention = [
            r.idempotency_ttl_hours,
            r.attempt_body_days,
            r.event_retention_days,
            r.retention_batch,
            r.audit_retention_days,
        ];
        assert_eq!(retention, [24, 30, 90, 500, 400]);
        assert_eq!(r.retention_interval_secs, 300);
        let h = &c.webhooks;
        assert_eq!([h.webhook_timeout_secs, h.webhook_interval_ms], [15, 500]);
        let hooks = [h.webhook_rotation_grace_hours, h.webhook_disable_after_days];
        assert_eq!(hooks, [24, 5]);
        let a = &c.alerts;
        assert_eq!(a.alert_min_orders, 20);
        let rates = [
            a.alert_warning_rate,
            a.alert_critical_rate,
            a.alert_clear_ratio,
        ];
        let expected = ["0.1", "0.25", "0.8"].map(|r| r.parse().unwrap());
        assert_eq!(rates, expected);
    }

    #[test]
    fn values_below_a_floor_are_refused_with_the_floor_named() {
        for (flag, value, message) in [
            ("--db-pool-size", "0", "must be at least 1, not 0"),
            ("--rate-account", "0", "must be at least 1, not 0"),
            ("--rate-token-window", "0", "must be at least 1, not 0"),
            ("--worker-interval-ms", "9", "must be at least 10, not 9"),
            ("--sync-interval-secs", "-1", "must be at least 0, not -1"),
            ("--give-up-hours", "0", "must be at least 1, not 0"),
            ("--lease-secs", "4", "must be at least 5, not 4"),
            ("--max-backoff-secs", "-5", "must be at least 0, not -5"),
            (
                "--balance-interval-secs",
                "-1",
                "must be at least 0, not -1",
            ),
            ("--idempotency-ttl-hours", "0", "must be at least 1, not 0"),
            ("--attempt-body-days", "0", "must be at least 1, not 0"),
            (
                "--event-retention-days",
                "29",
                "must be at least 30, not 29",
            ),
            (
                "--audit-retention-days",
                "364",
                "must be at least 365, not 364",
            ),
            (
                "--retention-interval-secs",
                "0",
                "must be at least 1, not 0",
            ),
            ("--retention-batch", "0", "must be at least 1, not 0"),
            ("--webhook-timeout-secs", "0", "must be at least 1, not 0"),
            (
                "--webhook-rotation-grace-hours",
                "-1",
                "must be at least 0, not -1",
            ),
            (
                "--webhook-disable-after-days",
                "0",
                "must be at least 1, not 0",
            ),
            ("--webhook-interval-ms", "5", "must be at least 10, not 5"),
            ("--alert-min-orders", "0", "must be at least 1, not 0"),
            (
                "--alert-warning-rate",
                "1.5",
                "a rate is a fraction from 0 to 1, not 1.5",
            ),
            (
                "--alert-critical-rate",
                "-0.1",
                "a rate is a fraction from 0 to 1, not -0.1",
            ),
            (
                "--alert-clear-ratio",
                "2",
                "a rate is a fraction from 0 to 1, not 2",
            ),
        ] {
            // `=` so a negative value reaches the parser rather than reading as a flag,
            // as it does from the environment.
            let error = refused(&[&format!("{flag}={value}")]);
            assert!(error.contains(flag), "{flag}: {error}");
            assert!(error.contains(message), "{flag}: {error}");
        }
        assert!(refused(&["--lease-secs", "ten"]).contains("invalid digit"));
    }

    #[test]
    fn each_floor_itself_is_accepted() {
        let c = parse(&[
            "--worker-interval-ms=10",
            "--lease-secs=5",
            "--sync-interval-secs=0",
            "--max-backoff-secs=0",
            "--event-retention-days=30",
            "--webhook-interval-ms=10",
            "--webhook-rotation-grace-hours=0",
            "--rate-dispute=1",
            "--alert-warning-rate=0",
            "--alert-critical-rate=1",
        ])
        .unwrap();
        assert_eq!(c.worker.worker_interval_ms, 10);
        assert_eq!(c.worker.lease_secs, 5);
        assert_eq!(c.retention.event_retention_days, 30);
        assert_eq!(c.limits.rate_dispute.get(), 1);
    }

    #[test]
    fn an_environment_value_below_its_floor_is_refused_too() {
        // clap reads the variable when the flag is declared.
        std::env::set_var("RESELLER_API_WEBHOOK_INTERVAL_MS", "1");
        let command = Config::augment_args(clap::Command::new("reseller-api"));
        let result = command.try_get_matches_from(["reseller-api"]);
        std::env::remove_var("RESELLER_API_WEBHOOK_INTERVAL_MS");
        let error = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("must be at least 10, not 1"), "{error}");
    }
}
