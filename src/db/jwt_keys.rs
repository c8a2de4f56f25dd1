//! Token-signing secrets live in the database, so every process sharing it signs and
//! validates with the same keys, and a rotation reaches all of them. They are stored
//! sealed under the master key (`crate::secrets`), each bound to its kid.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::schema::jwt_keys;
use super::{now, DbConnection, WriteConn};

#[derive(Debug, Clone)]
pub struct JwtKey {
    pub kid: String,
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
        .select((
            jwt_keys::kid,
            jwt_keys::secret,
            jwt_keys::created_at,
            jwt_keys::retire_at,
        ))
        .load::<(String, String, NaiveDateTime, Option<NaiveDateTime>)>(conn)?
        .into_iter()
        .map(|(kid, sealed, created_at, retire_at)| {
            let secret = crate::secrets::open(crate::secrets::jwt_secret(&kid), &sealed)?;
            Ok(JwtKey {
                kid,
                secret,
                created_at,
                retire_at,
            })
        })
        .collect()
}

pub fn insert(conn: &mut WriteConn<'_>, kid: &str, secret: &str) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    let sealed = crate::secrets::seal(crate::secrets::jwt_secret(kid), secret)?;
    diesel::insert_into(jwt_keys::table)
        .values((
            jwt_keys::kid.eq(kid),
            jwt_keys::secret.eq(sealed),
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
