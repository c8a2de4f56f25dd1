//! Request rate limits (governor): a quota per account over the whole API, a stricter one
//! per client IP for the token exchange, and a much stricter one for refund requests.
//! Each limited response carries `RateLimit-Policy` and `RateLimit` (IETF httpapi
//! rate-limit header fields, structured form); a refusal is 429 with `Retry-After`.
//!
//! These quotas live in each process's memory: behind several processes, each one
//! enforces them on its share of the traffic. What must hold across processes (the
//! refund-abuse policy) is decided in the database instead.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{HttpMessage, HttpRequest};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::LimitConfig;
use crate::domain::ids::AccountId;
use crate::error::ApiError;

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
        {
            let mut extensions = req.extensions_mut();
            match extensions.get_mut::<AppliedLimits>() {
                Some(all) => all.0.push(applied),
                None => {
                    extensions.insert(AppliedLimits(vec![applied]));
                }
            }
        }
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
    pub account: Limiter<AccountId>,
    pub token: Limiter<IpAddr>,
    pub dispute: Limiter<AccountId>,
    trusted_ip_header: Option<String>,
}

impl Limits {
    pub fn new(config: &LimitConfig) -> Limits {
        Limits {
            account: Limiter::new("account", config.rate_account, config.rate_account_window),
            token: Limiter::new("token", config.rate_token, config.rate_token_window),
            dispute: Limiter::new(
                "refund_requests",
                config.rate_dispute,
                config.rate_dispute_window,
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
