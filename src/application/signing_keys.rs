//! The keys access tokens are signed with.

use crate::db::{self, jwt_keys, DbConnection};
use crate::domain::api_key::random_token;

/// Starts signing with a fresh key and retires the others after `grace`, in one
/// transaction: a rotation never leaves the set with no signing key or with two.
pub fn rotate(
    conn: &mut DbConnection,
    grace: chrono::Duration,
) -> Result<String, diesel::result::Error> {
    let kid = random_token(8);
    db::write_tx(conn, |conn| {
        jwt_keys::insert(conn, &kid, &random_token(32))?;
        jwt_keys::retire_all_but(conn, &kid, grace)
    })?;
    Ok(kid)
}
