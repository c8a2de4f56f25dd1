//! Secrets at rest: provider API keys, webhook signing secrets (current and previous) and
//! token-signing keys are stored sealed under a master key, never in clear.
//!
//! A sealed value is a versioned text envelope, `enc:v1:<key id>:<base64(nonce ‖ ciphertext)>`:
//! XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`) with a random 192-bit nonce per
//! value, and associated data that binds the value to its place (table, column, row), so a
//! sealed value copied into another row or column does not open. The key id is a
//! fingerprint of the master key (16 hex digits of a SHA-256), so a value sealed under
//! another key is named as such instead of failing as "corrupt".
//!
//! The master key (32 random bytes, written as base64) comes from `RESELLER_MASTER_KEY`
//! (`--master-key`) or a file (`--master-key-file`, `RESELLER_MASTER_KEY_FILE`). The
//! embedded SQLite default, given none, uses `<database file>.key` beside the database and
//! creates it (owner-only, 0600) on the first start; PostgreSQL requires one and never
//! makes one, so two hosts sharing a database cannot each make their own.
//!
//! The database records that its secrets are sealed, and under which key (the table
//! `secret_seal`: the key id and a check value sealed under the key).
//! `application::master_key::setup`, run by every command that opens the database, seals
//! the plaintext secrets of a database that has none of that yet, in one transaction, and
//! refuses to go on when the key is missing or is not the one the database was sealed
//! under; `keys rotate-master` re-seals everything under a new key in one transaction.
//!
//! This module is the cipher, the key files and the process's keyring: it uses nothing of
//! ours, and `db` uses it where it reads and writes the secret columns.
//!
//! Values are opened in `db` where the rows are read into their domain types, which keep
//! them as [`secrecy::SecretString`] (never shown by `Debug`) until the provider client,
//! the webhook signer or the token signer uses them. A value that does not open (another
//! key, another place, tampered, or not sealed at all) is an error, never read as plaintext.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};

/// The envelope's prefix and version.
const PREFIX: &str = "enc:v1:";
const NONCE_BYTES: usize = 24;
const KEY_BYTES: usize = 32;
/// What the check value of `secret_seal` holds, sealed.
const CHECK_TEXT: &str = "reseller-api master key check";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("no master key is loaded in this process, so secrets cannot be sealed or opened")]
    NoKey,
    #[error(
        "a stored secret ({0}) is not sealed (expected `enc:v1:…`); it is not read as plaintext"
    )]
    NotSealed(String),
    #[error("a stored secret ({place}) is sealed under master key {key_id}, which this process does not have")]
    UnknownKey { place: String, key_id: String },
    #[error("a stored secret ({0}) does not open under its master key: tampered with, or moved from another row")]
    Undecryptable(String),
    #[error("the master key must be {KEY_BYTES} bytes written as base64 (e.g. `head -c 32 /dev/urandom | base64`): {0}")]
    BadKey(String),
    #[error("master key file {path}: {error}")]
    KeyFile {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl From<SecretsError> for diesel::result::Error {
    fn from(error: SecretsError) -> diesel::result::Error {
        diesel::result::Error::DeserializationError(Box::new(error))
    }
}

/// Where a sealed value lives: its associated data.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub table: &'static str,
    pub column: &'static str,
    pub row: &'a str,
}

impl Place<'_> {
    fn aad(&self) -> String {
        format!("reseller-api:{}.{}:{}", self.table, self.column, self.row)
    }

    fn name(&self) -> String {
        format!("{}.{} of {}", self.table, self.column, self.row)
    }
}

/// A provider's API key.
pub fn provider_api_key(row: &str) -> Place<'_> {
    Place {
        table: "providers",
        column: "api_key",
        row,
    }
}

/// A webhook endpoint's signing secret. Its current and previous secrets share the binding
/// (both sign during a rotation's grace), so a rotation moves the sealed value as it is.
pub fn webhook_secret(row: &str) -> Place<'_> {
    Place {
        table: "webhook_endpoints",
        column: "secret",
        row,
    }
}

/// A token-signing key, by its kid.
pub fn jwt_secret(row: &str) -> Place<'_> {
    Place {
        table: "jwt_keys",
        column: "secret",
        row,
    }
}

/// The check value of `secret_seal`.
pub fn check_place() -> Place<'static> {
    Place {
        table: "secret_seal",
        column: "key_check",
        row: "1",
    }
}

/// A master key and its id.
pub struct MasterKey {
    bytes: SecretBox<[u8; KEY_BYTES]>,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

impl MasterKey {
    fn from_bytes(bytes: [u8; KEY_BYTES]) -> MasterKey {
        let mut hasher = Sha256::new();
        hasher.update(b"reseller-api master key id v1\0");
        hasher.update(bytes);
        let id = hex::encode(&hasher.finalize()[..8]);
        MasterKey {
            bytes: SecretBox::new(Box::new(bytes)),
            id,
        }
    }

    /// A fresh random key.
    pub fn generate() -> MasterKey {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        MasterKey::from_bytes(bytes)
    }

    /// A key written as base64 (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<MasterKey, SecretsError> {
        let decoded = BASE64
            .decode(text.trim())
            .map_err(|e| SecretsError::BadKey(e.to_string()))?;
        let bytes: [u8; KEY_BYTES] = decoded
            .try_into()
            .map_err(|v: Vec<u8>| SecretsError::BadKey(format!("it holds {} bytes", v.len())))?;
        Ok(MasterKey::from_bytes(bytes))
    }

    /// The key as written in a key file.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.bytes.expose_secret())
    }

    /// The key's fingerprint, as envelopes and `secret_seal` name it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Reads a key file.
    pub fn read_file(path: &Path) -> Result<MasterKey, SecretsError> {
        let text = std::fs::read_to_string(path).map_err(|error| SecretsError::KeyFile {
            path: path.to_path_buf(),
            error,
        })?;
        MasterKey::from_base64(&text)
    }

    /// Writes a fresh key to `path`, which must not exist, readable by its owner only,
    /// and makes the file and its folder entry durable before returning it.
    pub fn create_file(path: &Path) -> Result<MasterKey, SecretsError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let failed = |error| SecretsError::KeyFile {
            path: path.to_path_buf(),
            error,
        };
        let key = MasterKey::generate();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(failed)?;
        file.write_all(format!("{}\n", key.to_base64()).as_bytes())
            .map_err(failed)?;
        file.sync_all().map_err(failed)?;
        let folder = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::File::open(&folder)
            .and_then(|f| f.sync_all())
            .map_err(failed)?;
        Ok(key)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.bytes.expose_secret().into())
    }

    /// Seals `plaintext` for `place`.
    pub fn seal(&self, place: Place<'_>, plaintext: &str) -> Result<String, SecretsError> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let aad = place.aad();
        let sealed = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Undecryptable(place.name()))?;
        let mut joined = nonce.to_vec();
        joined.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}:{}", self.id, BASE64.encode(joined)))
    }

    /// Opens a value this key sealed for `place`.
    pub fn open(&self, place: Place<'_>, envelope: &str) -> Result<SecretString, SecretsError> {
        let (key_id, body) = split(place, envelope)?;
        if key_id != self.id {
            return Err(SecretsError::UnknownKey {
                place: place.name(),
                key_id: key_id.to_string(),
            });
        }
        let undecryptable = || SecretsError::Undecryptable(place.name());
        let joined = BASE64.decode(body).map_err(|_| undecryptable())?;
        if joined.len() < NONCE_BYTES {
            return Err(undecryptable());
        }
        let (nonce, sealed) = joined.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| undecryptable())?;
        let aad = place.aad();
        let plain = self
            .cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| undecryptable())?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| undecryptable())
    }
}

/// True when `value` is an envelope (whether or not it opens).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX)
}

/// The key id and body of an envelope.
fn split<'v>(place: Place<'_>, envelope: &'v str) -> Result<(&'v str, &'v str), SecretsError> {
    envelope
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .ok_or_else(|| SecretsError::NotSealed(place.name()))
}

/// The keys this process holds: the one that seals, and every one it may open with.
#[derive(Default)]
struct Keyring {
    current: Option<Arc<MasterKey>>,
    by_id: HashMap<String, Arc<MasterKey>>,
}

static KEYRING: RwLock<Option<Keyring>> = RwLock::new(None);

/// Makes `key` the one this process seals with (and keeps it to open with).
pub fn install(key: MasterKey) {
    let key = Arc::new(key);
    let mut ring = KEYRING.write().unwrap_or_else(|p| p.into_inner());
    let ring = ring.get_or_insert_with(Keyring::default);
    ring.by_id.insert(key.id.clone(), key.clone());
    ring.current = Some(key);
}

fn current() -> Result<Arc<MasterKey>, SecretsError> {
    let ring = KEYRING.read().unwrap_or_else(|p| p.into_inner());
    ring.as_ref()
        .and_then(|r| r.current.clone())
        .ok_or(SecretsError::NoKey)
}

/// Seals `plaintext` for `place` under this process's master key.
pub fn seal(place: Place<'_>, plaintext: &str) -> Result<String, SecretsError> {
    current()?.seal(place, plaintext)
}

/// Opens a stored value of `place` with the key that sealed it.
pub fn open(place: Place<'_>, envelope: &str) -> Result<SecretString, SecretsError> {
    let (key_id, _) = split(place, envelope)?;
    let key = {
        let ring = KEYRING.read().unwrap_or_else(|p| p.into_inner());
        ring.as_ref().and_then(|r| r.by_id.get(key_id).cloned())
    };
    match key {
        Some(key) => key.open(place, envelope),
        None => Err(SecretsError::UnknownKey {
            place: place.name(),
            key_id: key_id.to_string(),
        }),
    }
}

/// The check value recorded in `secret_seal` for `key`.
pub fn check_value(key: &MasterKey) -> Result<String, SecretsError> {
    key.seal(check_place(), CHECK_TEXT)
}

/// True when `value` is a check value [`check_value`] made under `key`.
pub fn check_opens(key: &MasterKey, value: &str) -> bool {
    key.open(check_place(), value)
        .is_ok_and(|text| text.expose_secret() == CHECK_TEXT)
}

/// The key this process seals with, if one is installed.
pub fn current_key() -> Option<Arc<MasterKey>> {
    current().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_in_its_place_and_under_its_key() {
        let key = MasterKey::generate();
        let sealed = key.seal(provider_api_key("7"), "pk-live-1").unwrap();
        assert!(sealed.starts_with(&format!("enc:v1:{}:", key.id())));
        assert!(!sealed.contains("pk-live-1"));
        let opened = key.open(provider_api_key("7"), &sealed).unwrap();
        assert_eq!(opened.expose_secret(), "pk-live-1");
        // Another row, another column, another key, a plaintext value: refused.
        assert!(key.open(provider_api_key("8"), &sealed).is_err());
        assert!(key.open(webhook_secret("7"), &sealed).is_err());
        assert!(MasterKey::generate()
            .open(provider_api_key("7"), &sealed)
            .is_err());
        assert!(matches!(
            key.open(provider_api_key("7"), "pk-live-1"),
            Err(SecretsError::NotSealed(_))
        ));
        // Two seals of one value differ (a fresh nonce each).
        assert_ne!(
            sealed,
            key.seal(provider_api_key("7"), "pk-live-1").unwrap()
        );
        let again = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(again.id(), key.id());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
