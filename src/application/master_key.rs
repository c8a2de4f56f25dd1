//! The master key that seals secrets at rest (`crate::secrets`), against the database:
//! found or (SQLite only) made at start, checked against the database's record of it, the
//! first seal of a database whose secrets are in clear, and `keys rotate-master`.

use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use crate::config::Config;
use crate::db::{self, Backend, DbConnection};
use crate::secrets::{self, MasterKey};

/// Where the SQLite default keeps its key: `<database file>.key`.
pub fn default_key_file(database_url: &str) -> Option<PathBuf> {
    match Backend::from_url(database_url) {
        Backend::Sqlite(path) if !path.starts_with(':') && !path.is_empty() => {
            Some(PathBuf::from(format!("{path}.key")))
        }
        _ => None,
    }
}

/// The master key the configuration gives, if any: the key itself, else its file.
fn configured_key(config: &Config) -> Result<Option<MasterKey>, String> {
    if let Some(text) = &config.master_key {
        return MasterKey::from_base64(text.expose_secret())
            .map(Some)
            .map_err(|e| format!("RESELLER_MASTER_KEY: {e}"));
    }
    match &config.master_key_file {
        Some(path) => MasterKey::read_file(path)
            .map(Some)
            .map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

const HOW_TO_GIVE: &str = "give it with --master-key-file PATH (or RESELLER_MASTER_KEY_FILE), or as base64 in RESELLER_MASTER_KEY";

/// Loads the master key for the database `conn` is on, checks it against the database,
/// seals the secrets of a database that holds them in clear (in one transaction), and
/// installs the key in this process. Run by every command that opens the database, before
/// anything reads a secret. Fails, with what to do, when the key is missing, wrong, or
/// (SQLite) cannot be created.
pub fn setup(config: &Config, conn: &mut DbConnection) -> Result<(), String> {
    let url = config.database_url.expose_secret();
    let state = db::sealed::state(conn).map_err(|e| e.to_string())?;
    let key = match configured_key(config)? {
        Some(key) => key,
        None => match (default_key_file(url), &state) {
            (None, _) => {
                return Err(format!(
                    "PostgreSQL needs the master key that encrypts secrets at rest, and never makes one (so two hosts cannot each make their own): {HOW_TO_GIVE}; create one with `umask 077; head -c 32 /dev/urandom | base64 > master.key`"
                ))
            }
            (Some(path), _) if path.exists() => {
                MasterKey::read_file(&path).map_err(|e| e.to_string())?
            }
            (Some(path), Some(state)) => {
                return Err(format!(
                    "the database's secrets are encrypted under master key {}, and no master key was given (no {}): {HOW_TO_GIVE}",
                    state.key_id,
                    path.display()
                ))
            }
            (Some(path), None) => {
                let key = MasterKey::create_file(&path).map_err(|e| e.to_string())?;
                tracing::info!(
                    path = %path.display(),
                    key_id = key.id(),
                    "created the master key that encrypts secrets at rest; keep it, apart from the database's backups"
                );
                key
            }
        },
    };
    let sealed_now = match state {
        Some(state) => {
            check(&key, &state)?;
            None
        }
        None => {
            match db::write_tx(conn, |conn| db::sealed::seal_all(conn, None, &key)) {
                Ok(counts) => Some(counts),
                // Another process sealed it meanwhile: its key must be this one.
                Err(e) if db::is_unique_violation(&e) => {
                    let state = db::sealed::state(conn)
                        .map_err(|e| e.to_string())?
                        .ok_or("the database's seal record vanished")?;
                    check(&key, &state)?;
                    None
                }
                Err(e) => return Err(format!("sealing the secrets at rest: {e}")),
            }
        }
    };
    if let Some(counts) = sealed_now {
        tracing::info!(
            key_id = key.id(),
            sealed = counts,
            "secrets at rest are now encrypted under the master key"
        );
    }
    secrets::install(key);
    Ok(())
}

fn check(key: &MasterKey, state: &db::sealed::SealState) -> Result<(), String> {
    if state.key_id != key.id() {
        return Err(format!(
            "wrong master key: the database's secrets are encrypted under master key {}, and the key given is {}; {HOW_TO_GIVE}",
            state.key_id,
            key.id()
        ));
    }
    if secrets::check_opens(key, &state.key_check) {
        Ok(())
    } else {
        Err(format!(
            "the database's record of master key {} does not open under that key: the record was altered",
            state.key_id
        ))
    }
}

/// `keys rotate-master`: re-seals every secret under the key in `new_key_file` (created,
/// owner-only, when it does not exist) in one transaction, after [`setup`] loaded and
/// checked the current key. Returns the new key's id and how many values were re-sealed.
pub fn rotate_master(
    config: &Config,
    conn: &mut DbConnection,
    new_key_file: &Path,
) -> Result<(String, usize), String> {
    setup(config, conn)?;
    let old = secrets::current_key().ok_or("no master key is loaded")?;
    let new = if new_key_file.exists() {
        MasterKey::read_file(new_key_file).map_err(|e| e.to_string())?
    } else {
        MasterKey::create_file(new_key_file).map_err(|e| e.to_string())?
    };
    if new.id() == old.id() {
        return Err(format!(
            "{} holds the current master key {}; give a new key file",
            new_key_file.display(),
            new.id()
        ));
    }
    let count = db::write_tx(conn, |conn| {
        let count = db::sealed::seal_all(conn, Some(old.as_ref()), &new)?;
        // Key ids name keys without revealing them; the keys themselves are never recorded.
        let change = crate::domain::audit::AuditChange::new(
            Some(serde_json::json!({"key_id": old.id()})),
            Some(serde_json::json!({"key_id": new.id(), "resealed": count})),
        )
        .with_secret("master_key");
        super::audit::record(
            conn,
            &crate::domain::audit::Actor::cli(),
            crate::domain::audit::AuditAction::MasterKeyRotate,
            super::audit::Target::only(crate::domain::audit::AuditTarget::MasterKey),
            &change,
        )?;
        Ok::<_, diesel::result::Error>(count)
    })
    .map_err(|e| format!("re-sealing the secrets: {e}"))?;
    let id = new.id().to_string();
    secrets::install(new);
    Ok((id, count))
}
