//! API keys: `rk_` + 256 random bits, stored only as a hash.

use rand::RngCore;
use sha2::{Digest, Sha256};

const KEY_PREFIX: &str = "rk_";

/// A random hex string of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    random_hex(bytes)
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A new API key: the plaintext (shown once), its hash (stored) and a display prefix.
pub struct NewApiKey {
    pub plaintext: String,
    pub hash: String,
    pub prefix: String,
}

pub fn generate_api_key() -> NewApiKey {
    let plaintext = format!("{KEY_PREFIX}{}", random_hex(32));
    NewApiKey {
        hash: hash_api_key(&plaintext),
        prefix: plaintext[..KEY_PREFIX.len() + 8].to_string(),
        plaintext,
    }
}

/// Keys carry 256 random bits, so one SHA-256 is enough to store them safely and lets
/// the token exchange find a key with an indexed lookup instead of a slow password hash.
pub fn hash_api_key(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}
