use chrono::NaiveDateTime;
use diesel::prelude::*;
use secrecy::ExposeSecret;

use super::schema::providers;
use super::{now, DbConnection, WriteConn};
use crate::domain::ids::ProviderId;
use crate::domain::money::{ExchangeRate, Money, Percent, SignedMoney};
use crate::domain::provider::{CreditMode, Provider};

#[derive(Queryable)]
struct ProviderRow {
    id: ProviderId,
    name: String,
    url: String,
    api_key: String,
    enabled: bool,
    timeout_ms: i64,
    batch_size: i64,
    idempotent_add: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    min_balance_micros: Option<Money>,
    balance_micros: Option<SignedMoney>,
    balance_currency: Option<String>,
    balance_checked_at: Option<NaiveDateTime>,
    balance_error: Option<String>,
    markup_percent_micros: Percent,
    auto_sync: bool,
    allow_private_network: Option<bool>,
    currency: String,
    exchange_rate_micros: Option<i64>,
    exchange_rate_set_at: Option<NaiveDateTime>,
    currency_mismatch: Option<String>,
    currency_mismatch_at: Option<NaiveDateTime>,
    credit_mode: String,
}

impl ProviderRow {
    /// The provider, its API key opened (it is stored sealed, `crate::secrets`).
    fn open(self) -> QueryResult<Provider> {
        let row = self;
        let api_key = crate::secrets::open(
            crate::secrets::provider_api_key(&row.id.to_string()),
            &row.api_key,
        )?;
        let exchange_rate = row
            .exchange_rate_micros
            .map(ExchangeRate::try_from_micros)
            .transpose()
            .map_err(|e| diesel::result::Error::DeserializationError(e.into()))?;
        Ok(Provider {
            id: row.id,
            name: row.name,
            url: row.url,
            api_key,
            enabled: row.enabled,
            timeout_ms: row.timeout_ms,
            batch_size: row.batch_size,
            idempotent_add: row.idempotent_add,
            created_at: row.created_at,
            updated_at: row.updated_at,
            min_balance: row.min_balance_micros,
            balance: row.balance_micros,
            balance_currency: row.balance_currency,
            balance_checked_at: row.balance_checked_at,
            balance_error: row.balance_error,
            markup_percent: row.markup_percent_micros,
            auto_sync: row.auto_sync,
            // Unchecked (made before the opt-in existed): it keeps working as it did.
            allow_private_network: row.allow_private_network.unwrap_or(true),
            currency: row.currency,
            exchange_rate,
            exchange_rate_set_at: row.exchange_rate_set_at,
            currency_mismatch: row.currency_mismatch,
            currency_mismatch_at: row.currency_mismatch_at,
            // An unknown stored word fails the read, never defaults.
            credit_mode: CreditMode::try_from(row.credit_mode)
                .map_err(|e| diesel::result::Error::DeserializationError(e.into()))?,
        })
    }
}

/// The provider's API key sealed for its row.
fn sealed_key(id: ProviderId, fields: &ProviderFields) -> QueryResult<String> {
    Ok(crate::secrets::seal(
        crate::secrets::provider_api_key(&id.to_string()),
        fields.api_key.expose_secret(),
    )?)
}

/// Every editable field of a provider, validated.
#[derive(Debug, Clone)]
pub struct ProviderFields {
    pub name: String,
    pub url: String,
    pub api_key: secrecy::SecretString,
    pub enabled: bool,
    pub timeout_ms: i64,
    pub batch_size: i64,
    pub idempotent_add: bool,
    /// Below this balance upstream, forwarding to the provider pauses.
    pub min_balance: Option<Money>,
    /// The markup on synced rates.
    pub markup_percent: Percent,
    /// The worker syncs this provider's catalog on its own.
    pub auto_sync: bool,
    /// The operator allows calls to a loopback, private, link-local or metadata address;
    /// `None` on a change that does not set it: the stored value stays (a provider not yet
    /// checked since the upgrade stays unchecked).
    pub allow_private_network: Option<bool>,
    /// The currency the provider bills in; `None` on a new provider: the panel's.
    pub currency: Option<String>,
    /// Panel units per provider unit; set only for a provider in another currency.
    pub exchange_rate: Option<ExchangeRate>,
    /// How it gives back the money of a Partial or Canceled.
    pub credit_mode: CreditMode,
}

pub fn insert(conn: &mut WriteConn<'_>, fields: &ProviderFields) -> QueryResult<Provider> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let id = diesel::insert_into(providers::table)
        .values((
            providers::name.eq(&fields.name),
            providers::url.eq(&fields.url),
            // The key is sealed for the row, whose id the insert makes: sealed just below.
            providers::api_key.eq(""),
            providers::enabled.eq(fields.enabled),
            providers::timeout_ms.eq(fields.timeout_ms),
            providers::batch_size.eq(fields.batch_size),
            providers::idempotent_add.eq(fields.idempotent_add),
            providers::min_balance_micros.eq(fields.min_balance.map(Money::micros)),
            providers::markup_percent_micros.eq(fields.markup_percent.micros()),
            providers::auto_sync.eq(fields.auto_sync),
            providers::allow_private_network
                .eq(Some(fields.allow_private_network.unwrap_or(false))),
            providers::currency.eq(fields.currency.as_deref().unwrap_or("USD")),
            providers::exchange_rate_micros.eq(fields.exchange_rate.map(ExchangeRate::micros)),
            providers::exchange_rate_set_at.eq(fields.exchange_rate.map(|_| at)),
            providers::credit_mode.eq(fields.credit_mode.as_str()),
            providers::created_at.eq(at),
            providers::updated_at.eq(at),
        ))
        .returning(providers::id)
        .get_result::<ProviderId>(conn)?;
    diesel::update(providers::table.find(id))
        .set(providers::api_key.eq(sealed_key(id, fields)?))
        .returning(providers::all_columns)
        .get_result::<ProviderRow>(conn)?
        .open()
}

pub fn update(
    conn: &mut WriteConn<'_>,
    id: ProviderId,
    fields: &ProviderFields,
) -> QueryResult<Option<Provider>> {
    let conn: &mut DbConnection = conn;
    if let Some(allowed) = fields.allow_private_network {
        diesel::update(providers::table.find(id))
            .set(providers::allow_private_network.eq(Some(allowed)))
            .execute(conn)?;
    }
    diesel::update(providers::table.find(id))
        .set((
            providers::name.eq(&fields.name),
            providers::url.eq(&fields.url),
            providers::api_key.eq(sealed_key(id, fields)?),
            providers::enabled.eq(fields.enabled),
            providers::timeout_ms.eq(fields.timeout_ms),
            providers::batch_size.eq(fields.batch_size),
            providers::idempotent_add.eq(fields.idempotent_add),
            providers::min_balance_micros.eq(fields.min_balance.map(Money::micros)),
            providers::markup_percent_micros.eq(fields.markup_percent.micros()),
            providers::auto_sync.eq(fields.auto_sync),
            providers::credit_mode.eq(fields.credit_mode.as_str()),
            providers::updated_at.eq(now()),
        ))
        .returning(providers::all_columns)
        .get_result::<ProviderRow>(conn)
        .optional()?
        .map(ProviderRow::open)
        .transpose()
}

pub fn find(conn: &mut DbConnection, id: ProviderId) -> QueryResult<Option<Provider>> {
    providers::table
        .find(id)
        .first::<ProviderRow>(conn)
        .optional()?
        .map(ProviderRow::open)
        .transpose()
}

pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<Provider>> {
    providers::table
        .order(providers::id)
        .load::<ProviderRow>(conn)?
        .into_iter()
        .map(ProviderRow::open)
        .collect()
}

/// Claims the provider's next balance read: true for the one caller that finds the last
/// claim at or before `due_before` (or none), which then asks the provider.
pub fn claim_balance_check(
    conn: &mut WriteConn<'_>,
    id: ProviderId,
    due_before: NaiveDateTime,
) -> QueryResult<bool> {
    let conn: &mut DbConnection = conn;
    let changed = diesel::update(
        providers::table.find(id).filter(
            providers::balance_checked_at
                .is_null()
                .or(providers::balance_checked_at.le(due_before)),
        ),
    )
    .set(providers::balance_checked_at.eq(now()))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Stores a balance read: the balance and currency, or why there was none (the last
/// balance is kept then).
pub fn record_balance(
    conn: &mut WriteConn<'_>,
    id: ProviderId,
    read: Result<(SignedMoney, Option<String>), String>,
) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    let target = providers::table.find(id);
    match read {
        Ok((balance, currency)) => diesel::update(target)
            .set((
                providers::balance_micros.eq(balance.micros()),
                providers::balance_currency.eq(currency),
                providers::balance_error.eq(None::<String>),
            ))
            .execute(conn),
        Err(error) => diesel::update(target)
            .set(providers::balance_error.eq(error))
            .execute(conn),
    }
    .map(drop)
}

/// Providers made before the private-network opt-in existed and not yet checked: their id
/// and URL.
pub fn unchecked_network(conn: &mut DbConnection) -> QueryResult<Vec<(ProviderId, String)>> {
    providers::table
        .filter(providers::allow_private_network.is_null())
        .order(providers::id)
        .select((providers::id, providers::url))
        .load(conn)
}

/// Records what the start-up check found for a provider still unchecked (a provider an
/// operator changed meanwhile keeps the operator's choice).
pub fn settle_network(
    conn: &mut WriteConn<'_>,
    id: ProviderId,
    allow_private_network: bool,
) -> QueryResult<usize> {
    let conn: &mut DbConnection = conn;
    diesel::update(
        providers::table
            .find(id)
            .filter(providers::allow_private_network.is_null()),
    )
    .set(providers::allow_private_network.eq(Some(allow_private_network)))
    .execute(conn)
}

/// Records that a status reply of the provider named `currency`, not its configured one.
pub fn record_currency_mismatch(
    conn: &mut WriteConn<'_>,
    id: ProviderId,
    currency: &str,
) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    diesel::update(providers::table.find(id))
        .set((
            providers::currency_mismatch.eq(Some(currency)),
            providers::currency_mismatch_at.eq(Some(now())),
        ))
        .execute(conn)
        .map(drop)
}

/// Clears the recorded mismatch (the operator changed the provider's currency).
pub fn clear_currency_mismatch(conn: &mut WriteConn<'_>, id: ProviderId) -> QueryResult<()> {
    let conn: &mut DbConnection = conn;
    diesel::update(providers::table.find(id))
        .set((
            providers::currency_mismatch.eq(None::<String>),
            providers::currency_mismatch_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
        .map(drop)
}

/// Sets the provider's currency and exchange rate (stamped now) and keeps the change in
/// its history; call only when either changes.
pub fn set_exchange_rate(
    conn: &mut WriteConn<'_>,
    id: ProviderId,
    currency: &str,
    rate: Option<ExchangeRate>,
    set_by: Option<crate::domain::ids::AccountId>,
) -> QueryResult<()> {
    use super::schema::provider_exchange_rates as history;
    let conn: &mut DbConnection = conn;
    let at = now();
    diesel::update(providers::table.find(id))
        .set((
            providers::currency.eq(currency),
            providers::exchange_rate_micros.eq(rate.map(ExchangeRate::micros)),
            providers::exchange_rate_set_at.eq(Some(at)),
        ))
        .execute(conn)?;
    diesel::insert_into(history::table)
        .values((
            history::provider_id.eq(id),
            history::currency.eq(currency),
            history::rate_micros.eq(rate.map(ExchangeRate::micros)),
            history::set_by.eq(set_by),
            history::set_at.eq(at),
        ))
        .execute(conn)
        .map(drop)
}

/// One exchange rate an operator set.
#[derive(Debug, Clone)]
pub struct ExchangeRateChange {
    pub currency: String,
    /// `None`: the provider bills in the panel's currency.
    pub rate: Option<ExchangeRate>,
    pub set_by: Option<crate::domain::ids::AccountId>,
    pub set_at: NaiveDateTime,
}

/// The provider's exchange rates as they were set, newest first.
pub fn exchange_rate_history(
    conn: &mut DbConnection,
    id: ProviderId,
) -> QueryResult<Vec<ExchangeRateChange>> {
    use super::schema::provider_exchange_rates as history;
    let rows: Vec<(
        String,
        Option<i64>,
        Option<crate::domain::ids::AccountId>,
        NaiveDateTime,
    )> = history::table
        .filter(history::provider_id.eq(id))
        .order(history::id.desc())
        .select((
            history::currency,
            history::rate_micros,
            history::set_by,
            history::set_at,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(currency, rate, set_by, set_at)| {
            let rate = rate
                .map(ExchangeRate::try_from_micros)
                .transpose()
                .map_err(|e| diesel::result::Error::DeserializationError(e.into()))?;
            Ok(ExchangeRateChange {
                currency,
                rate,
                set_by,
                set_at,
            })
        })
        .collect()
}
