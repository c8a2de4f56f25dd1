//! Token-signing secrets live in the database, so every process sharing it signs and
//! validates with the same keys, and a rotation reaches all of them.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::schema::jwt_keys;
use super::{now, DbConnection, WriteConn};

#[derive(Debug, Clone, Queryable)]
pub struct JwtKey {
    pub kid: String,
    #[diesel(deserialize_as = String)]
    pub secret: secrecy::SecretString,
    pub created_at: NaiveDateTime,
    pub retire_at: Option<NaiveDateTime>,
}

/// Keys that still validate tokens, newest first; the first one signs.
pub fn live(conn: &mut DbConnection) -> QueryResult<Vec<JwtKey>> {
    let at = now();
    jwt_keys::table
        .filter(jwt_keys::retire_at.is_null().or(jwt_keys::retire_at.gt(at)))
        .order((jwt_keys::created_at.desc(), jwt_keys::kid.desc()))
        .load(conn)
}

pub fn insert(conn: &mut WriteConn<'_>, kid: &str, secret: &str) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    diesel::insert_into(jwt_keys::table)
        .values((
            jwt_keys::kid.eq(kid),
            jwt_keys::secret.eq(secret),
            jwt_keys::created_at.eq(now()),
        ))
        .execute(conn)
        .map(drop)
}

/// Schedules every signing key but `kid` to stop validating after `grace`.
pub fn retire_all_but(conn: &mut WriteConn<'_>, kid: &str, grace: Duration) -> QueryResult<usize> {
    let conn: &mut DbConnection = conn;
    diesel::update(
        jwt_keys::table
            .filter(jwt_keys::kid.ne(kid))
            .filter(jwt_keys::retire_at.is_null()),
    )
    .set(jwt_keys::retire_at.eq(now() + grace))
    .execute(conn)
}
