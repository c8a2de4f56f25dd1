//! The keys access tokens are signed with.

use super::audit::{self, Target};
use crate::db::{self, jwt_keys, DbConnection};
use crate::domain::api_key::random_token;
use crate::domain::audit::{Actor, AuditAction, AuditChange, AuditTarget};

/// Starts signing with a fresh key and retires the others after `grace`, in one
/// transaction: a rotation never leaves the set with no signing key or with two.
pub fn rotate(
    conn: &mut DbConnection,
    by: &Actor,
    grace: chrono::Duration,
) -> Result<String, diesel::result::Error> {
    let kid = random_token(8);
    db::write_tx(conn, |conn| {
        jwt_keys::insert(conn, &kid, &random_token(32))?;
        let retired = jwt_keys::retire_all_but(conn, &kid, grace)?;
        // The key id is public (it is in every token's header); the key is not.
        let change = AuditChange::new(
            None,
            Some(serde_json::json!({"kid": kid, "others_retire_in_secs": grace.num_seconds()})),
        )
        .with_secret("key");
        audit::record(
            conn,
            by,
            AuditAction::SigningKeyRotate,
            Target::only(AuditTarget::SigningKey),
            &change,
        )?;
        Ok::<_, diesel::result::Error>(retired)
    })?;
    Ok(kid)
}
