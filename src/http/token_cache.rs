//! Access tokens (and API keys) this process has already validated, for the rest of their
//! lifetime.
//!
//! Keyed by the SHA-256 of the token or key: neither is ever stored (nor logged).
//! Bounded: at most `capacity` entries, the oldest inserted evicted first (expired ones
//! are dropped as they are met). Tagged with the revocation generation the entries were
//! checked under: when a newer generation is observed, every entry is forgotten.

use std::collections::{HashMap, VecDeque};

use sha2::{Digest, Sha256};

use crate::http::auth::Claims;

/// How many validated tokens a process remembers.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// The cache key of a token: its SHA-256 digest.
pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

struct Entry<V> {
    claims: V,
    /// Unix seconds after which the entry is no longer used (`exp` plus the leeway).
    valid_until: i64,
}

/// What a validated token or key stands for: the token's claims by default; for an API
/// key of the panel dialect, its holder (`http::auth::KeyHolder`).
pub struct TokenCache<V = Claims> {
    capacity: usize,
    generation: i64,
    entries: HashMap<TokenDigest, Entry<V>>,
    /// Insertion order, for eviction; may name digests already removed.
    order: VecDeque<TokenDigest>,
}

impl<V: Clone> TokenCache<V> {
    pub fn new(capacity: usize) -> TokenCache<V> {
        TokenCache {
            capacity: capacity.max(1),
            generation: i64::MIN,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether an entry is held under this digest.
    pub fn contains(&self, digest: &TokenDigest) -> bool {
        self.entries.contains_key(digest)
    }

    /// The digests held, to prove no token is.
    pub fn digests(&self) -> impl Iterator<Item = &TokenDigest> {
        self.entries.keys()
    }

    /// Records the revocation generation read from the database; a newer one than the
    /// entries were checked under forgets them all.
    pub fn observe(&mut self, generation: i64) {
        if generation > self.generation {
            self.entries.clear();
            self.order.clear();
            self.generation = generation;
        }
    }

    /// The claims of a token validated before, unless it has expired since.
    pub fn get(&mut self, digest: &TokenDigest, now: i64) -> Option<V> {
        let entry = self.entries.get(digest)?;
        if now > entry.valid_until {
            self.entries.remove(digest);
            return None;
        }
        Some(entry.claims.clone())
    }

    /// Remembers a token checked against the database under `generation` (read before
    /// the check). A check under an older generation than the one observed may predate a
    /// revocation, so it is not remembered.
    pub fn insert(&mut self, digest: TokenDigest, claims: V, valid_until: i64, generation: i64) {
        self.observe(generation);
        if generation < self.generation {
            return;
        }
        if !self.entries.contains_key(&digest) {
            while self.entries.len() >= self.capacity {
                let Some(oldest) = self.order.pop_front() else {
                    break;
                };
                self.entries.remove(&oldest);
            }
            self.order.push_back(digest);
        }
        self.entries.insert(
            digest,
            Entry {
                claims,
                valid_until,
            },
        );
        // Keep the order queue from growing without bound with digests already gone.
        if self.order.len() > self.capacity * 2 {
            let entries = &self.entries;
            self.order.retain(|d| entries.contains_key(d));
        }
    }
}
