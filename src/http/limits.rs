//! Request rate limits: a quota per account over the whole API, a stricter one per client
//! IP for the token exchange, a much stricter one for refund requests, and a limit on
//! failed key attempts per client address.
//! Each request quota's response carries `RateLimit-Policy` and `RateLimit` (IETF httpapi
//! rate-limit header fields, structured form); a refusal is 429 with `Retry-After`.
//!
//! **The account quota holds across processes on PostgreSQL.** Each account has a GCRA
//! cell in the database (`account_quota_cells`: its theoretical arrival time, on the
//! database's clock). A process does not write the cell per request: it takes a *lease*
//! of a small share of the quota at once (`--rate-account-lease`, by default a fiftieth,
//! 1 to 50 requests), spends it in memory, and takes the next lease when it is used up. The
//! database grants no more than the quota allows, so all processes together accept at most
//! the quota (plus the refill over time), and at most one unspent lease per process more
//! in any window: leased requests may be spent later than they were granted. A refused
//! lease is remembered until its `Retry-After`, so requests over the quota cost no
//! database write either. The `RateLimit` remaining count is this process's view: what
//! the cell had left at its last lease, refilled since at the quota's pace, plus its own
//! unspent lease. On SQLite (one process, the embedded default) the quota lives in memory
//! (governor), as do the token-exchange, refund-request and failed-key limits on both
//! backends: behind several processes each enforces those on its share of the traffic.
//! What must hold exactly across processes (the refund-abuse policy) is decided in the
//! database.
//!
//! **Failed key attempts** ([`FailureLimiter`]): an unknown or revoked API key (API v2
//! `key`, the token exchange) or an access token we did not sign (not one of ours that
//! expired or whose key was revoked) counts one failure against the
//! client's address (IPv6: its /64, which one host usually holds whole). Past
//! `--rate-auth-failures` per window, every key attempt from that address is refused
//! until the allowance refills, valid keys included: a guesser that finds a key gains
//! nothing while limited, and a client sharing the address with one waits at most the
//! `Retry-After`. Successes never count. The refusal is 429 with `Retry-After` (policy
//! `auth_failures`), or on API v2 the dialect's `{"error": ...}` with HTTP 200.
//! Concurrent attempts are checked before their outcome is known, so an address may get
//! up to its allowance plus the attempts it has in flight.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpMessage, HttpRequest};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::LimitConfig;
use crate::db::quota_cells;
use crate::domain::ids::AccountId;
use crate::error::ApiError;
use crate::http::state::AppState;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// One quota: `quota` requests per `window`, refilled evenly.
pub struct Limiter<K: Hash + Eq + Clone> {
    name: &'static str,
    quota: NonZeroU32,
    window: Duration,
    limiter: Keyed<K>,
    checks: AtomicU64,
}

/// A quota's state after a check, for the response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub policy: &'static str,
    pub quota: u32,
    pub window_secs: u64,
    pub remaining: u32,
    /// Seconds until the quota is full again.
    pub reset_secs: u64,
}

/// Every quota applied to one request, in the order they were checked.
#[derive(Debug, Clone, Default)]
pub struct AppliedLimits(pub Vec<Applied>);

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(name: &'static str, quota: NonZeroU32, window_secs: NonZeroU64) -> Limiter<K> {
        let window = Duration::from_secs(window_secs.get());
        let per_cell = window / quota.get();
        // Over a billion requests a second the period rounds to zero, which governor refuses.
        let rule = Quota::with_period(per_cell.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(quota);
        Limiter {
            name,
            quota,
            window,
            limiter: RateLimiter::keyed(rule).with_middleware::<StateInformationMiddleware>(),
            checks: AtomicU64::new(0),
        }
    }

    fn per_cell(&self) -> Duration {
        self.window / self.quota.get()
    }

    /// Counts one request for `key`; records the quota's state on the request, and
    /// refuses with 429 once the quota is spent.
    pub fn check(&self, key: &K, req: &HttpRequest) -> Result<(), ApiError> {
        // Forget idle keys now and then, so memory follows active callers only.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 10_000 == 9_999 {
            self.limiter.retain_recent();
        }
        let result = self.limiter.check_key(key);
        let (remaining, retry_after) = match &result {
            Ok(snapshot) => (snapshot.remaining_burst_capacity(), None),
            Err(not_until) => (
                0,
                Some(not_until.wait_time_from(DefaultClock::default().now())),
            ),
        };
        let used = u64::from(self.quota.get().saturating_sub(remaining));
        let reset = self.per_cell().as_secs_f64() * used as f64;
        let applied = Applied {
            policy: self.name,
            quota: self.quota.get(),
            window_secs: self.window.as_secs(),
            remaining,
            reset_secs: reset.ceil() as u64,
        };
        record(req, applied);
        match retry_after {
            None => Ok(()),
            Some(wait) => Err(ApiError::RateLimited {
                policy: self.name.to_string(),
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                detail: format!(
                    "rate limit `{}` exceeded: at most {} requests per {} s",
                    self.name,
                    self.quota,
                    self.window.as_secs()
                ),
            }),
        }
    }
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// Counts `extra` more requests for `key` at once, all or none: a request that stands
    /// for several (a batch of orders counts one per line; [`Limiter::check`] counted the
    /// first). Refuses with 429 when the quota cannot take them now, or ever.
    pub fn check_more(&self, key: &K, extra: u32) -> Result<(), ApiError> {
        let Some(extra) = NonZeroU32::new(extra) else {
            return Ok(());
        };
        let refused = |retry_after_secs: u64| {
            ApiError::RateLimited {
            policy: self.name.to_string(),
            retry_after_secs,
            detail: format!(
                "rate limit `{}` exceeded: this request counts as {} of at most {} requests per {} s",
                self.name,
                extra.get() + 1,
                self.quota,
                self.window.as_secs()
            ),
        }
        };
        match self.limiter.check_key_n(key, extra) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(refused(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)))
            }
            Err(_) => Err(refused(self.window.as_secs())),
        }
    }
}

/// The process's quotas.
pub struct Limits {
    pub account: AccountQuota,
    pub token: Limiter<IpAddr>,
    pub dispute: Limiter<AccountId>,
    pub failures: FailureLimiter,
    trusted_ip_header: Option<String>,
}

impl Limits {
    /// `shared`: the database is PostgreSQL, where the account quota lives in the database
    /// so that every process enforces the one quota.
    pub fn new(config: &LimitConfig, shared: bool) -> Limits {
        let account = if shared {
            AccountQuota::Shared(SharedQuota::new(
                config.rate_account,
                config.rate_account_window,
                config.rate_account_lease,
            ))
        } else {
            AccountQuota::Local(Limiter::new(
                "account",
                config.rate_account,
                config.rate_account_window,
            ))
        };
        Limits {
            account,
            token: Limiter::new("token", config.rate_token, config.rate_token_window),
            dispute: Limiter::new(
                "refund_requests",
                config.rate_dispute,
                config.rate_dispute_window,
            ),
            failures: FailureLimiter::new(
                config.rate_auth_failures,
                config.rate_auth_failures_window,
            ),
            trusted_ip_header: config.trusted_ip_header.clone(),
        }
    }

    /// The client's IP: the peer address, unless a trusted proxy header is configured.
    pub fn client_ip(&self, req: &HttpRequest) -> IpAddr {
        let forwarded = self.trusted_ip_header.as_deref().and_then(|name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|ip| ip.trim().parse().ok())
        });
        forwarded
            .or_else(|| req.peer_addr().map(|a| a.ip()))
            .unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    /// Counts one request against the account's quota (see [`AccountQuota`]).
    pub async fn check_account(
        &self,
        state: &AppState,
        account_id: AccountId,
        req: &HttpRequest,
    ) -> Result<(), ApiError> {
        match &self.account {
            AccountQuota::Local(limiter) => limiter.check(&account_id, req),
            AccountQuota::Shared(shared) => {
                let applied = shared.take(state, account_id, 1).await;
                let applied = match applied {
                    Ok(applied) => applied,
                    Err(Refusal::Error(e)) => return Err(e),
                    Err(Refusal::Limited(applied, error)) => {
                        record(req, applied);
                        return Err(error);
                    }
                };
                record(req, applied);
                Ok(())
            }
        }
    }

    /// Counts `extra` more requests against the account's quota at once, all or none (a
    /// batch counts one per line; [`Limits::check_account`] counted the first).
    pub async fn check_account_more(
        &self,
        state: &AppState,
        account_id: AccountId,
        extra: u32,
    ) -> Result<(), ApiError> {
        match &self.account {
            AccountQuota::Local(limiter) => limiter.check_more(&account_id, extra),
            AccountQuota::Shared(shared) => {
                if extra == 0 {
                    return Ok(());
                }
                match shared.take(state, account_id, extra).await {
                    Ok(_) => Ok(()),
                    Err(Refusal::Error(e) | Refusal::Limited(_, e)) => Err(e),
                }
            }
        }
    }
}

/// Records a quota's state on the request, for the response headers.
fn record(req: &HttpRequest, applied: Applied) {
    let mut extensions = req.extensions_mut();
    match extensions.get_mut::<AppliedLimits>() {
        Some(all) => all.0.push(applied),
        None => {
            extensions.insert(AppliedLimits(vec![applied]));
        }
    }
}

/// The account quota: in memory on SQLite, shared through the database on PostgreSQL.
pub enum AccountQuota {
    Local(Limiter<AccountId>),
    Shared(SharedQuota),
}

/// Why [`SharedQuota::take`] did not take.
enum Refusal {
    /// Over the quota: the state for the headers and the 429.
    Limited(Applied, ApiError),
    /// The database could not be asked.
    Error(ApiError),
}

/// What this process holds of one account's quota cell.
struct Lease {
    /// Requests granted by the database and not spent yet.
    left: u32,
    /// What the cell had left after the last lease, and when that was.
    cell_remaining: u32,
    leased_at: Instant,
    /// The cell had nothing to grant: refused without asking again until then.
    refused_until: Option<Instant>,
    used_at: Instant,
    /// Held while asking the database, so one request per account asks at a time.
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl Lease {
    /// An account this process has leased nothing for yet.
    fn empty(now: Instant, gate: Arc<tokio::sync::Mutex<()>>) -> Lease {
        Lease {
            left: 0,
            cell_remaining: 0,
            leased_at: now,
            refused_until: None,
            used_at: now,
            gate,
        }
    }
}

/// The account quota over several processes: leases from a GCRA cell per account in
/// PostgreSQL (see the module comment).
pub struct SharedQuota {
    quota: NonZeroU32,
    window: Duration,
    lease: u32,
    leases: Mutex<HashMap<AccountId, Lease>>,
    checks: AtomicU64,
}

impl SharedQuota {
    pub fn new(quota: NonZeroU32, window_secs: NonZeroU64, lease: u32) -> SharedQuota {
        let lease = match lease {
            0 => (quota.get() / 50).clamp(1, 50),
            n => n.min(quota.get()),
        };
        SharedQuota {
            quota,
            window: Duration::from_secs(window_secs.get()),
            lease,
            leases: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
        }
    }

    /// Requests this process takes from the database at once.
    pub fn lease_size(&self) -> u32 {
        self.lease
    }

    fn per_cell(&self) -> Duration {
        self.window / self.quota.get()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, Lease>> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn applied(&self, lease: &Lease, now: Instant) -> Applied {
        let per_cell = self.per_cell().as_secs_f64().max(f64::MIN_POSITIVE);
        let refilled = (now.duration_since(lease.leased_at).as_secs_f64() / per_cell) as u64;
        let remaining = (u64::from(lease.cell_remaining) + refilled + u64::from(lease.left))
            .min(u64::from(self.quota.get())) as u32;
        let used = u64::from(self.quota.get() - remaining);
        Applied {
            policy: "account",
            quota: self.quota.get(),
            window_secs: self.window.as_secs(),
            remaining,
            reset_secs: (per_cell * used as f64).ceil() as u64,
        }
    }

    fn refused(&self, lease: &Lease, now: Instant, wait: Duration, n: u32) -> Refusal {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let detail = if n > 1 {
            format!(
                "rate limit `account` exceeded: this request counts as {} of at most {} requests per {} s",
                n + 1,
                self.quota,
                self.window.as_secs()
            )
        } else {
            format!(
                "rate limit `account` exceeded: at most {} requests per {} s",
                self.quota,
                self.window.as_secs()
            )
        };
        let mut applied = self.applied(lease, now);
        applied.remaining = 0;
        Refusal::Limited(
            applied,
            ApiError::RateLimited {
                policy: "account".into(),
                retry_after_secs: secs.max(1),
                detail,
            },
        )
    }

    /// Spends `n` requests of this process's lease, or refuses; `None`: the lease cannot
    /// tell (it is spent and no refusal stands), the database must be asked.
    fn spend(&self, account_id: AccountId, n: u32) -> Option<Result<Applied, Refusal>> {
        let now = Instant::now();
        let mut leases = self.lock();
        let lease = leases.get_mut(&account_id)?;
        lease.used_at = now;
        if let Some(until) = lease.refused_until {
            if until > now {
                return Some(Err(self.refused(lease, now, until - now, n)));
            }
            lease.refused_until = None;
        }
        if lease.left >= n {
            lease.left -= n;
            return Some(Ok(self.applied(lease, now)));
        }
        None
    }

    async fn take(
        &self,
        state: &AppState,
        account_id: AccountId,
        n: u32,
    ) -> Result<Applied, Refusal> {
        if n > self.quota.get() {
            let now = Instant::now();
            let lease = Lease {
                left: 0,
                cell_remaining: 0,
                leased_at: now,
                refused_until: None,
                used_at: now,
                gate: Arc::default(),
            };
            return Err(self.refused(&lease, now, self.window, n));
        }
        if let Some(answer) = self.spend(account_id, n) {
            return answer;
        }
        // Forget idle accounts now and then (an unspent lease is given up, never more).
        if self.checks.fetch_add(1, Ordering::Relaxed) % 1_000 == 999 {
            let window = self.window;
            self.lock()
                .retain(|_, lease| lease.used_at.elapsed() < window.max(Duration::from_secs(60)));
        }
        let gate = {
            let now = Instant::now();
            let mut leases = self.lock();
            let lease = leases
                .entry(account_id)
                .or_insert_with(|| Lease::empty(now, Arc::default()));
            lease.gate.clone()
        };
        let _asking = gate.lock().await;
        // Another request may have taken a lease while this one waited.
        if let Some(answer) = self.spend(account_id, n) {
            return answer;
        }
        let left = self.lock().get(&account_id).map_or(0, |l| l.left);
        let want = self.lease.max(n.saturating_sub(left)).min(self.quota.get());
        let (quota, window) = (self.quota.get(), self.window);
        let grant = state
            .db(move |conn| {
                Ok(crate::db::write_tx(conn, |conn| {
                    quota_cells::lease(conn, account_id, want, quota, window)
                })?)
            })
            .await
            .map_err(Refusal::Error)?;
        crate::metrics::QUOTA_LEASES.inc(&[if grant.granted > 0 {
            "granted"
        } else {
            "exhausted"
        }]);
        let now = Instant::now();
        let mut leases = self.lock();
        let lease = leases
            .entry(account_id)
            .or_insert_with(|| Lease::empty(now, gate.clone()));
        lease.left += grant.granted;
        lease.cell_remaining = grant.remaining;
        lease.leased_at = now;
        lease.used_at = now;
        if lease.left >= n {
            lease.left -= n;
            return Ok(self.applied(lease, now));
        }
        let wait = grant.wait.max(Duration::from_millis(1));
        lease.refused_until = Some(now + wait);
        Err(self.refused(lease, now, wait, n))
    }
}

/// Failed key attempts per client address: a GCRA over failures only. An address may
/// fail `quota` times at once, then once per `window / quota`; while it has no allowance
/// left, [`FailureLimiter::admit`] refuses every key attempt from it.
pub struct FailureLimiter {
    quota: NonZeroU32,
    window: Duration,
    /// The theoretical arrival time of each address's next failure.
    cells: Mutex<HashMap<IpAddr, Instant>>,
    failures: AtomicU64,
}

/// Addresses remembered at most; past it, the lapsed ones are dropped, then any.
const FAILURE_ADDRESSES: usize = 100_000;

impl FailureLimiter {
    pub fn new(quota: NonZeroU32, window_secs: NonZeroU64) -> FailureLimiter {
        FailureLimiter {
            quota,
            window: Duration::from_secs(window_secs.get()),
            cells: Mutex::new(HashMap::new()),
            failures: AtomicU64::new(0),
        }
    }

    fn per_failure(&self) -> Duration {
        self.window / self.quota.get()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        self.cells.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses (429, policy `auth_failures`) a key attempt from an address that has no
    /// failure left; `kind` names the attempt in `/metrics`.
    pub fn admit(&self, ip: IpAddr, kind: &str) -> Result<(), ApiError> {
        let Some(tat) = self.lock().get(&address_key(ip)).copied() else {
            return Ok(());
        };
        let now = Instant::now();
        let limit = now + self.window.saturating_sub(self.per_failure());
        if tat <= limit {
            return Ok(());
        }
        crate::metrics::AUTH_REFUSED.inc(&[kind]);
        let wait = tat - limit;
        Err(ApiError::RateLimited {
            policy: "auth_failures".into(),
            retry_after_secs: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
            detail: format!(
                "too many failed key attempts from this address: at most {} per {} s",
                self.quota,
                self.window.as_secs()
            ),
        })
    }

    /// Counts one failed key attempt from `ip`.
    pub fn fail(&self, ip: IpAddr, kind: &str) {
        crate::metrics::AUTH_FAILURES.inc(&[kind]);
        let now = Instant::now();
        let mut cells = self.lock();
        if self.failures.fetch_add(1, Ordering::Relaxed) % 10_000 == 9_999
            || cells.len() >= FAILURE_ADDRESSES
        {
            cells.retain(|_, tat| *tat > now);
            // Down to nine tenths, so a table full of live addresses is swept once per
            // tenth of its size, not at every failure.
            while cells.len() >= FAILURE_ADDRESSES / 10 * 9 {
                let Some(any) = cells.keys().next().copied() else {
                    break;
                };
                cells.remove(&any);
            }
        }
        let tat = cells.entry(address_key(ip)).or_insert(now);
        // Never further ahead than a full window: an address waits at most that.
        *tat = ((*tat).max(now) + self.per_failure()).min(now + self.window);
    }
}

/// The address a failure counts against: IPv4 as is (an IPv4-mapped IPv6 address as its
/// IPv4), IPv6 by its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
    }
}

/// `RateLimit-Policy` and `RateLimit` values for the quotas applied to a request.
pub fn header_values(applied: &AppliedLimits) -> (String, String) {
    let policy = applied
        .0
        .iter()
        .map(|a| format!("\"{}\";q={};w={}", a.policy, a.quota, a.window_secs))
        .collect::<Vec<_>>()
        .join(", ");
    let state = applied
        .0
        .iter()
        .map(|a| format!("\"{}\";r={};t={}", a.policy, a.remaining, a.reset_secs))
        .collect::<Vec<_>>()
        .join(", ");
    (policy, state)
}
