//! The record that a database's secrets are sealed, and under which master key
//! (`secret_seal`, one row), and the pass that (re-)seals every secret column in place.
//! The cipher and the keys are `crate::secrets`'.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{jwt_keys, providers, secret_seal, webhook_endpoints};
use super::{now, DbConnection, WriteConn};
use crate::domain::ids::{EndpointId, ProviderId};
use crate::secrets::{self, MasterKey, Place};

/// What `secret_seal` says: the id of the master key every secret is sealed under, and a
/// check value sealed under it.
#[derive(Debug, Clone)]
pub struct SealState {
    pub key_id: String,
    pub key_check: String,
    pub sealed_at: NaiveDateTime,
}

/// The database's seal record; `None` while its secrets are in clear (before the first
/// start with a master key).
pub fn state(conn: &mut DbConnection) -> QueryResult<Option<SealState>> {
    secret_seal::table
        .find(1i64)
        .select((
            secret_seal::key_id,
            secret_seal::key_check,
            secret_seal::sealed_at,
        ))
        .get_result::<(String, String, NaiveDateTime)>(conn)
        .optional()
        .map(|row| {
            row.map(|(key_id, key_check, sealed_at)| SealState {
                key_id,
                key_check,
                sealed_at,
            })
        })
}

/// Seals every secret column under `to`: values in clear when `from` is `None` (the first
/// start with a key: a value already sealed is an error then), else values sealed under
/// `from` (a rotation: one that does not open is an error). Records `to` in `secret_seal`
/// first, so two processes sealing at once conflict on its key and one of them rolls back
/// whole. Returns how many values it sealed.
pub fn seal_all(
    conn: &mut WriteConn<'_>,
    from: Option<&MasterKey>,
    to: &MasterKey,
) -> QueryResult<usize> {
    let check = secrets::check_value(to)?;
    {
        let conn: &mut DbConnection = conn;
        match from {
            None => diesel::insert_into(secret_seal::table)
                .values((
                    secret_seal::id.eq(1i64),
                    secret_seal::key_id.eq(to.id()),
                    secret_seal::key_check.eq(&check),
                    secret_seal::sealed_at.eq(now()),
                ))
                .execute(conn)?,
            Some(_) => diesel::update(secret_seal::table.find(1i64))
                .set((
                    secret_seal::key_id.eq(to.id()),
                    secret_seal::key_check.eq(&check),
                    secret_seal::sealed_at.eq(now()),
                ))
                .execute(conn)?,
        };
    }
    let reseal = |place: Place<'_>, value: &str| -> QueryResult<String> {
        let plain = match from {
            None if secrets::is_sealed(value) => {
                return Err(secrets::SecretsError::UnknownKey {
                    place: format!("{}.{} of {}", place.table, place.column, place.row),
                    key_id: "(a key the database has no record of)".into(),
                }
                .into())
            }
            None => value.to_string(),
            Some(key) => {
                use secrecy::ExposeSecret;
                key.open(place, value)?.expose_secret().to_string()
            }
        };
        Ok(to.seal(place, &plain)?)
    };
    let mut count = 0;

    let conn: &mut DbConnection = conn;
    let rows: Vec<(ProviderId, String)> = providers::table
        .select((providers::id, providers::api_key))
        .load(conn)?;
    for (id, value) in rows {
        let row = id.get().to_string();
        let sealed = reseal(secrets::provider_api_key(&row), &value)?;
        diesel::update(providers::table.find(id))
            .set(providers::api_key.eq(sealed))
            .execute(conn)?;
        count += 1;
    }

    let rows: Vec<(EndpointId, String, Option<String>)> = webhook_endpoints::table
        .select((
            webhook_endpoints::id,
            webhook_endpoints::secret,
            webhook_endpoints::previous_secret,
        ))
        .load(conn)?;
    for (id, value, previous) in rows {
        let row = id.get().to_string();
        let place = secrets::webhook_secret(&row);
        let sealed = reseal(place, &value)?;
        let previous = previous.map(|p| reseal(place, &p)).transpose()?;
        count += 1 + usize::from(previous.is_some());
        diesel::update(webhook_endpoints::table.find(id))
            .set((
                webhook_endpoints::secret.eq(sealed),
                webhook_endpoints::previous_secret.eq(previous),
            ))
            .execute(conn)?;
    }

    let rows: Vec<(String, String)> = jwt_keys::table
        .select((jwt_keys::kid, jwt_keys::secret))
        .load(conn)?;
    for (kid, value) in rows {
        let sealed = reseal(secrets::jwt_secret(&kid), &value)?;
        diesel::update(jwt_keys::table.find(&kid))
            .set(jwt_keys::secret.eq(sealed))
            .execute(conn)?;
        count += 1;
    }
    Ok(count)
}
