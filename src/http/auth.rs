//! API keys, access tokens and the `Caller`/`Admin` extractors that protect handlers.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::db::{api_keys, jwt_keys, revocations, DbConnection, DbPool};
use crate::domain::account::{scopes_from_str, scopes_to_string, Role, Scope};
use crate::domain::api_key::random_token;
use crate::domain::audit::Actor;
use crate::domain::ids::{AccountId, ApiKeyId};
use crate::error::{ApiError, ErrorCode};
use crate::http::state::AppState;
use crate::http::token_cache::{self, TokenCache};

/// The one signing algorithm accepted; anything else in a token header is refused.
const ALGORITHM: Algorithm = Algorithm::HS256;
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 30;
/// How often a process re-reads the key set, so rotations by another process reach it.
const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// How often a process re-reads the revocation generation, so a key revoked through any
/// process stops its tokens here within this (plus one request's time) — well inside 5 s.
pub const REVOCATION_POLL_EVERY: Duration = Duration::from_secs(1);

/// How long a process trusts an API key it checked, at most, when no revocation moves the
/// generation meanwhile.
const API_KEY_TRUST_SECS: i64 = 3600;

/// Who an API key of the panel dialect (`/api/v2`) stands for, as far as a call needs
/// before it reads anything fresh: the account, its currency (fixed at creation) and the
/// key's scopes (fixed at creation; a key is revoked, never edited).
#[derive(Debug, Clone)]
pub struct KeyHolder {
    pub account_id: AccountId,
    pub currency: String,
    pub scopes: Vec<Scope>,
}

/// The claims of an access token; every one is required on the way in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub role: Role,
    pub scope: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    /// The id of the API key the token was issued from: revoking that key refuses it.
    pub akid: ApiKeyId,
}

struct KeySet {
    signing: Option<(String, EncodingKey)>,
    verifying: HashMap<String, DecodingKey>,
    loaded_at: Instant,
}

/// Signs and validates access tokens with the keys stored in the database.
pub struct TokenKeys {
    keys: RwLock<KeySet>,
    issuer: String,
    audience: String,
    ttl_secs: i64,
    /// Tokens validated already, by digest, with the revocation generation they were
    /// checked under.
    cache: Mutex<TokenCache>,
    /// API keys of the panel dialect checked already, by the digest of the key, under
    /// the same revocation generation.
    api_keys: Mutex<TokenCache<KeyHolder>>,
    /// API keys found unknown or revoked, by digest, for `miss_ttl_secs`: a flood of one
    /// wrong key is not a database read each time.
    misses: Mutex<TokenCache<()>>,
    miss_ttl_secs: i64,
    /// When the revocation generation was last read.
    polled_at: Mutex<Option<Instant>>,
}

/// How a refused token of ours ends when it is no guess: expired, not yet valid (a clock
/// apart), or its API key revoked ([`TokenKeys::validate`]'s words). Failed-key limits
/// count every other refusal.
const NOT_GUESSES: [&str; 3] = [": expired", ": not yet valid", "its API key was revoked"];

impl TokenKeys {
    /// Loads the key set, creating the first signing key when the database has none.
    pub fn load(
        conn: &mut DbConnection,
        config: &Config,
    ) -> Result<TokenKeys, diesel::result::Error> {
        let mut live = jwt_keys::live(conn)?;
        if live.is_empty() {
            let (kid, secret) = (random_token(8), random_token(32));
            crate::db::write_tx(conn, |conn| jwt_keys::insert(conn, &kid, &secret))?;
            live = jwt_keys::live(conn)?;
        }
        Ok(TokenKeys {
            keys: RwLock::new(key_set(live)),
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            ttl_secs: config.token_ttl_secs,
            cache: Mutex::new(TokenCache::new(token_cache::DEFAULT_CAPACITY)),
            api_keys: Mutex::new(TokenCache::new(token_cache::DEFAULT_CAPACITY)),
            misses: Mutex::new(TokenCache::new(token_cache::DEFAULT_CAPACITY)),
            miss_ttl_secs: config.limits.auth_miss_cache_secs,
            polled_at: Mutex::new(None),
        })
    }

    /// Starts signing with a fresh key; older keys validate until their tokens expire.
    pub fn rotate(
        conn: &mut DbConnection,
        by: &Actor,
        config: &Config,
    ) -> Result<String, diesel::result::Error> {
        let grace = chrono::Duration::seconds(config.token_ttl_secs + LEEWAY_SECS as i64 + 60);
        crate::application::signing_keys::rotate(conn, by, grace)
    }

    fn is_stale(&self, after: Duration) -> bool {
        self.keys
            .read()
            .map(|k| k.loaded_at.elapsed() >= after)
            .unwrap_or(true)
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// Issues an access token for an account from its API key `api_key_id`.
    pub fn issue(
        &self,
        account_id: AccountId,
        api_key_id: ApiKeyId,
        role: Role,
        scopes: &[Scope],
    ) -> Result<String, ApiError> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let (kid, key) = keys
            .signing
            .as_ref()
            .ok_or_else(|| ApiError::internal("no signing key"))?;
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: account_id.to_string(),
            role,
            scope: scopes_to_string(scopes),
            iat: now,
            nbf: now,
            exp: now + self.ttl_secs,
            jti: random_token(16),
            akid: api_key_id,
        };
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, &claims, key).map_err(ApiError::internal)
    }

    fn decode(&self, token: &str) -> Result<Option<Claims>, ApiError> {
        let unauthorized =
            |why: &str| ApiError::Unauthorized(format!("invalid access token: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| unauthorized("malformed"))?;
        if header.alg != ALGORITHM {
            return Err(unauthorized("algorithm not allowed"));
        }
        let kid = header.kid.ok_or_else(|| unauthorized("no key id"))?;
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let Some(key) = keys.verifying.get(&kid) else {
            return Ok(None);
        };
        let mut validation = Validation::new(ALGORITHM);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| Some(data.claims))
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => unauthorized("expired"),
                    ErrorKind::ImmatureSignature => unauthorized("not yet valid"),
                    ErrorKind::InvalidAudience => unauthorized("wrong audience"),
                    ErrorKind::InvalidIssuer => unauthorized("wrong issuer"),
                    ErrorKind::InvalidSignature => unauthorized("bad signature"),
                    _ => unauthorized("malformed"),
                }
            })
    }

    /// Validates a token. A token this process validated before (the cache is keyed by
    /// the token's digest) costs no HMAC and no parse; a new one is verified, then checked
    /// against the database (its API key still live, one primary-key read) and remembered
    /// for the rest of its lifetime. About once a second one request re-reads the
    /// revocation generation; when a revocation moved it, every remembered token is
    /// forgotten and checked again on its next use.
    pub async fn validate(&self, state: &AppState, token: &str) -> Result<Claims, ApiError> {
        self.poll_revocations(state).await?;
        let digest = token_cache::digest(token);
        let now = chrono::Utc::now().timestamp();
        if let Some(claims) = self.cache().get(&digest, now) {
            return Ok(claims);
        }
        let claims = self.verify(&state.pool, token).await?;
        let account_id = subject(&claims)?;
        let key_id = claims.akid;
        let (generation, live) = state
            .read(move |conn| {
                // The generation first: a revocation that commits after the key read moves
                // it past this value, and the next poll forgets the entry.
                let generation = revocations::generation(conn)?;
                let live = api_keys::is_live_for(conn, key_id, account_id)?;
                Ok((generation, live))
            })
            .await?;
        if !live {
            return Err(ApiError::Unauthorized(
                "invalid access token: its API key was revoked".into(),
            ));
        }
        self.cache().insert(
            digest,
            claims.clone(),
            claims.exp + LEEWAY_SECS as i64,
            generation,
        );
        Ok(claims)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, TokenCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key_cache(&self) -> std::sync::MutexGuard<'_, TokenCache<KeyHolder>> {
        self.api_keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn miss_cache(&self) -> std::sync::MutexGuard<'_, TokenCache<()>> {
        self.misses.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the API key with this digest was found unknown or revoked within the last
    /// `--auth-miss-cache-secs`.
    pub fn is_known_miss(&self, digest: &token_cache::TokenDigest) -> bool {
        let now = chrono::Utc::now().timestamp();
        self.miss_ttl_secs > 0 && self.miss_cache().get(digest, now).is_some()
    }

    /// Remembers an API key found unknown or revoked (bounded: the oldest goes first).
    pub fn remember_miss(&self, digest: token_cache::TokenDigest) {
        if self.miss_ttl_secs > 0 {
            let until = chrono::Utc::now().timestamp() + self.miss_ttl_secs;
            self.miss_cache().insert(digest, (), until, i64::MIN);
        }
    }

    /// Forgets every key remembered as unknown: called when this process creates a key.
    pub fn forget_misses(&self) {
        let mut misses = self.miss_cache();
        *misses = TokenCache::new(token_cache::DEFAULT_CAPACITY);
    }

    /// The holder of a live API key (`None`: no such key, or revoked). A key this process
    /// checked before costs no database read; like tokens, every remembered key is
    /// forgotten when the revocation generation moves (read about once a second), so a
    /// revocation through any process reaches this one within that, and a key is checked
    /// again at least every [`API_KEY_TRUST_SECS`]. A key found unknown is remembered as
    /// such for `--auth-miss-cache-secs` ([`TokenKeys::is_known_miss`]).
    pub async fn api_key(
        &self,
        state: &AppState,
        key: &str,
    ) -> Result<Option<KeyHolder>, ApiError> {
        self.poll_revocations(state).await?;
        let digest = token_cache::digest(key);
        let now = chrono::Utc::now().timestamp();
        if let Some(holder) = self.key_cache().get(&digest, now) {
            return Ok(Some(holder));
        }
        if self.is_known_miss(&digest) {
            return Ok(None);
        }
        crate::metrics::AUTH_KEY_READS.inc(&["api_v2"]);
        let hash = crate::domain::api_key::hash_api_key(key);
        let (generation, found) = state
            .read(move |conn| {
                // The generation first, as for tokens: a revocation committed after the
                // key read moves it past this value.
                let generation = revocations::generation(conn)?;
                let found = crate::db::accounts::find_by_live_key(conn, &hash)?;
                Ok((generation, found))
            })
            .await?;
        let Some((account, scopes)) = found else {
            self.remember_miss(digest);
            return Ok(None);
        };
        let holder = KeyHolder {
            account_id: account.id,
            currency: account.currency,
            scopes,
        };
        self.key_cache()
            .insert(digest, holder.clone(), now + API_KEY_TRUST_SECS, generation);
        Ok(Some(holder))
    }

    /// Re-reads the revocation generation when the last read is older than
    /// [`REVOCATION_POLL_EVERY`]; one request does it, the others go on.
    async fn poll_revocations(&self, state: &AppState) -> Result<(), ApiError> {
        {
            let Ok(mut polled_at) = self.polled_at.try_lock() else {
                return Ok(());
            };
            if polled_at.is_some_and(|at| at.elapsed() < REVOCATION_POLL_EVERY) {
                return Ok(());
            }
            *polled_at = Some(Instant::now());
        }
        let generation = state
            .read(|conn| Ok(revocations::generation(conn)?))
            .await?;
        self.cache().observe(generation);
        self.key_cache().observe(generation);
        Ok(())
    }

    /// Verifies signature and claims, re-reading the key set when the token names a key
    /// this process has not seen yet (another process rotated) or the set is old.
    async fn verify(&self, pool: &DbPool, token: &str) -> Result<Claims, ApiError> {
        if self.is_stale(REFRESH_EVERY) {
            self.reload_blocking(pool).await?;
        }
        if let Some(claims) = self.decode(token)? {
            return Ok(claims);
        }
        // An unknown kid may come from a rotation by another process. The key table
        // holds a handful of rows, so re-reading it costs no more than any
        // authenticated call's own query; request rate limits bound forged-kid floods.
        self.reload_blocking(pool).await?;
        if let Some(claims) = self.decode(token)? {
            return Ok(claims);
        }
        Err(ApiError::Unauthorized(
            "invalid access token: unknown key".into(),
        ))
    }

    async fn reload_blocking(&self, pool: &DbPool) -> Result<(), ApiError> {
        let pool = pool.clone();
        let fresh = web::block(move || -> Result<KeySet, ApiError> {
            let mut conn = pool.get().map_err(ApiError::internal)?;
            Ok(key_set(jwt_keys::live(&mut conn)?))
        })
        .await
        .map_err(ApiError::internal)??;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }
}

fn subject(claims: &Claims) -> Result<AccountId, ApiError> {
    claims
        .sub
        .parse()
        .map_err(|_| ApiError::Unauthorized("invalid access token: bad subject".into()))
}

fn key_set(live: Vec<jwt_keys::JwtKey>) -> KeySet {
    let signing = live
        .iter()
        .find(|k| k.retire_at.is_none())
        .or(live.first())
        .map(|k| {
            (
                k.kid.clone(),
                EncodingKey::from_secret(k.secret.expose_secret().as_bytes()),
            )
        });
    let verifying = live
        .into_iter()
        .map(|k| {
            let key = DecodingKey::from_secret(k.secret.expose_secret().as_bytes());
            (k.kid, key)
        })
        .collect();
    KeySet {
        signing,
        verifying,
        loaded_at: Instant::now(),
    }
}

/// The authenticated caller of a `/v1` call. Taking it as a handler parameter is what
/// makes the handler protected.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: AccountId,
    pub role: Role,
    pub scopes: Vec<Scope>,
    /// The API key the token was issued from.
    pub api_key_id: ApiKeyId,
    /// The client's address (`Limits::client_ip`: the trusted proxy header when set).
    pub client_ip: std::net::IpAddr,
    /// The request's id (`X-Request-Id`), for the audit log.
    pub request_id: String,
}

impl Caller {
    /// Who this caller is, for the audit log of the change it makes.
    pub fn actor(&self) -> Actor {
        Actor::operator(
            self.account_id,
            self.api_key_id,
            self.role,
            self.client_ip.to_string(),
            Some(self.request_id.clone()),
        )
    }

    /// [`Caller::actor`] when the caller is an operator, whose changes are audited; a
    /// reseller's own changes are in its event log instead.
    pub fn operator_actor(&self) -> Option<Actor> {
        (self.role == Role::Admin && self.scopes.contains(&Scope::Admin)).then(|| self.actor())
    }

    /// Refuses with 403 unless the token carries `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::Refused {
                code: ErrorCode::InsufficientScope,
                detail: format!("this call needs the `{scope}` scope"),
            })
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let req = req.clone();
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_string());
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("app state missing"))?;
            let token = token.ok_or_else(|| {
                ApiError::Unauthorized("send `Authorization: Bearer <access token>`".into())
            })?;
            // A client address that failed too often is refused before any check.
            let ip = state.limits.client_ip(&req);
            state.limits.failures.admit(ip, "bearer")?;
            let claims = match state.tokens.validate(&state, &token).await {
                Ok(claims) => claims,
                Err(ApiError::Unauthorized(detail)) => {
                    // A token of ours that expired, or whose key was revoked, is a client
                    // that must log in again, not a guess: only a token we did not sign
                    // (forged, malformed, another issuer's) counts against the address.
                    if !NOT_GUESSES.iter().any(|reason| detail.ends_with(reason)) {
                        state.limits.failures.fail(ip, "bearer");
                    }
                    return Err(ApiError::Unauthorized(detail));
                }
                Err(error) => return Err(error),
            };
            let account_id = subject(&claims)?;
            state.limits.check_account(&state, account_id, &req).await?;
            Ok(Caller {
                account_id,
                role: claims.role,
                scopes: scopes_from_str(&claims.scope),
                api_key_id: claims.akid,
                client_ip: ip,
                request_id: crate::http::problem::current_request_id(),
            })
        })
    }
}

/// An authenticated operator: role `admin` with the `admin` scope.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl Admin {
    /// The operator, for the audit log of the change it makes.
    pub fn actor(&self) -> Actor {
        self.0.actor()
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Admin, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        Box::pin(async move {
            let caller = caller.await?;
            if caller.role != Role::Admin || !caller.scopes.contains(&Scope::Admin) {
                return Err(ApiError::Refused {
                    code: ErrorCode::AdminOnly,
                    detail: "this call is for operators (role admin, scope admin)".into(),
                });
            }
            Ok(Admin(caller))
        })
    }
}
