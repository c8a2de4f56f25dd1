use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::backend::lock_row;
use super::columns;
use super::schema::services;
use super::{now, DbConnection, WriteConn};
use crate::domain::account::AccountStatus;
use crate::domain::ids::{AccountId, ProviderId, ServiceId};
use crate::domain::money::Money;
use crate::domain::service::{Service, ServiceStatus, ServiceType};
use crate::domain::subscription::SubscriptionTerms;

/// Named columns: each field binds the column of its name (`super::columns`).
#[derive(Queryable, Selectable)]
#[diesel(table_name = services, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ServiceRow {
    id: ServiceId,
    name: String,
    category: String,
    #[diesel(deserialize_as = String)]
    kind: ServiceType,
    rate_micros: Money,
    min_quantity: i64,
    max_quantity: i64,
    refill: bool,
    cancel: bool,
    #[diesel(deserialize_as = String)]
    status: ServiceStatus,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    provider_id: Option<ProviderId>,
    provider_service_id: Option<String>,
    refill_days: i64,
    dripfeed: bool,
    description: Option<String>,
    subscription_posts_max: i64,
    #[diesel(deserialize_as = String)]
    subscription_delays: StoredDelays,
    subscription_old_posts: bool,
}

/// A service's allowed delays as stored (comma-separated minutes); text that is not such
/// a list is a decoding error, never a default.
struct StoredDelays(Vec<i64>);

impl TryFrom<String> for StoredDelays {
    type Error = crate::domain::UnknownName;

    fn try_from(text: String) -> Result<StoredDelays, Self::Error> {
        SubscriptionTerms::parse_delays(&text)
            .map(StoredDelays)
            .ok_or(crate::domain::UnknownName {
                kind: "subscription delays",
                text,
            })
    }
}

impl From<ServiceRow> for Service {
    fn from(row: ServiceRow) -> Service {
        Service {
            id: row.id,
            name: row.name,
            category: row.category,
            kind: row.kind,
            dripfeed: row.dripfeed,
            rate: row.rate_micros,
            min_quantity: row.min_quantity,
            max_quantity: row.max_quantity,
            refill: row.refill,
            refill_days: row.refill_days,
            cancel: row.cancel,
            status: row.status,
            created_at: row.created_at,
            updated_at: row.updated_at,
            provider: row.provider_id.zip(row.provider_service_id),
            description: row.description,
            subscription: SubscriptionTerms {
                posts_max: row.subscription_posts_max,
                delays: row.subscription_delays.0,
                old_posts: row.subscription_old_posts,
            },
        }
    }
}

/// Every editable field of a service, validated.
#[derive(Debug, Clone)]
pub struct ServiceFields {
    pub name: String,
    pub category: String,
    pub kind: ServiceType,
    /// Drip-feed offered (Default and Web Traffic only: `check_type_shape`).
    pub dripfeed: bool,
    pub rate: Money,
    pub min_quantity: i64,
    pub max_quantity: i64,
    pub refill: bool,
    /// Days after an order is placed during which a refill may be asked for.
    pub refill_days: i64,
    pub cancel: bool,
    /// The upstream provider and its service id, for provider-backed services.
    pub provider: Option<(ProviderId, String)>,
    pub description: Option<String>,
    /// What a subscriptions service offers (the defaults on other types).
    pub subscription: SubscriptionTerms,
}

pub fn insert(conn: &mut WriteConn<'_>, fields: &ServiceFields) -> QueryResult<Service> {
    let conn: &mut DbConnection = conn;
    let at = now();
    diesel::insert_into(services::table)
        .values((
            services::name.eq(&fields.name),
            services::category.eq(&fields.category),
            services::kind.eq(fields.kind.as_str()),
            services::dripfeed.eq(fields.dripfeed),
            services::description.eq(&fields.description),
            services::subscription_posts_max.eq(fields.subscription.posts_max),
            services::subscription_delays.eq(fields.subscription.delays_text()),
            services::subscription_old_posts.eq(fields.subscription.old_posts),
            services::rate_micros.eq(fields.rate.micros()),
            services::min_quantity.eq(fields.min_quantity),
            services::max_quantity.eq(fields.max_quantity),
            services::refill.eq(fields.refill),
            services::refill_days.eq(fields.refill_days),
            services::cancel.eq(fields.cancel),
            services::provider_id.eq(fields.provider.as_ref().map(|p| p.0)),
            services::provider_service_id.eq(fields.provider.as_ref().map(|p| p.1.clone())),
            services::status.eq(ServiceStatus::Active.as_str()),
            services::created_at.eq(at),
            services::updated_at.eq(at),
        ))
        .returning(columns::<ServiceRow>())
        .get_result::<ServiceRow>(conn)
        .map(Service::from)
}

pub fn update(
    conn: &mut WriteConn<'_>,
    id: ServiceId,
    fields: &ServiceFields,
) -> QueryResult<Option<Service>> {
    let conn: &mut DbConnection = conn;
    diesel::update(services::table.find(id))
        .set((
            services::name.eq(&fields.name),
            services::category.eq(&fields.category),
            services::kind.eq(fields.kind.as_str()),
            services::dripfeed.eq(fields.dripfeed),
            services::description.eq(&fields.description),
            services::subscription_posts_max.eq(fields.subscription.posts_max),
            services::subscription_delays.eq(fields.subscription.delays_text()),
            services::subscription_old_posts.eq(fields.subscription.old_posts),
            services::rate_micros.eq(fields.rate.micros()),
            services::min_quantity.eq(fields.min_quantity),
            services::max_quantity.eq(fields.max_quantity),
            services::refill.eq(fields.refill),
            services::refill_days.eq(fields.refill_days),
            services::cancel.eq(fields.cancel),
            services::provider_id.eq(fields.provider.as_ref().map(|p| p.0)),
            services::provider_service_id.eq(fields.provider.as_ref().map(|p| p.1.clone())),
            services::updated_at.eq(now()),
        ))
        .returning(columns::<ServiceRow>())
        .get_result::<ServiceRow>(conn)
        .optional()
        .map(|row| row.map(Service::from))
}

pub fn find(conn: &mut DbConnection, id: ServiceId) -> QueryResult<Option<Service>> {
    // By its key, so no `LIMIT` (see "one row by its key" in `db`).
    services::table
        .find(id)
        .select(columns::<ServiceRow>())
        .get_result::<ServiceRow>(conn)
        .optional()
        .map(|row| row.map(Service::from))
}

/// One page of the catalog in id order, strictly after `starting_after`.
pub fn page(
    conn: &mut DbConnection,
    starting_after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Service>> {
    services::table
        .filter(services::id.gt(starting_after.unwrap_or(0)))
        .order(services::id.asc())
        .limit(limit)
        .select(columns::<ServiceRow>())
        .load::<ServiceRow>(conn)
        .map(|rows| rows.into_iter().map(Service::from).collect())
}

pub fn set_status(
    conn: &mut WriteConn<'_>,
    id: ServiceId,
    status: ServiceStatus,
) -> QueryResult<Option<Service>> {
    let conn: &mut DbConnection = conn;
    diesel::update(services::table.find(id))
        .set((
            services::status.eq(status.as_str()),
            services::updated_at.eq(now()),
        ))
        .returning(columns::<ServiceRow>())
        .get_result::<ServiceRow>(conn)
        .optional()
        .map(|row| row.map(Service::from))
}

/// Reads a service and holds a shared lock on its row until the transaction ends
/// (PostgreSQL `FOR SHARE`), so it cannot be disabled while an order for it commits.
pub fn find_shared(conn: &mut DbConnection, id: ServiceId) -> QueryResult<Option<Service>> {
    lock_row(
        conn,
        services::table.find(id).select(columns::<ServiceRow>()),
        QueryDsl::for_share,
    )
    .map(|row: Option<ServiceRow>| row.map(Service::from))
}

/// Every service routed to a provider, in id order.
pub fn for_provider(conn: &mut DbConnection, provider_id: ProviderId) -> QueryResult<Vec<Service>> {
    services::table
        .filter(services::provider_id.eq(provider_id))
        .order(services::id.asc())
        .select(columns::<ServiceRow>())
        .load::<ServiceRow>(conn)
        .map(|rows| rows.into_iter().map(Service::from).collect())
}

/// What placing an order reads, in one statement: the service with the shared lock of
/// [`find_shared`], the ordering account's status (`None`: no such account), whether
/// an active alert pauses new orders to the service or its provider
/// (`alerts::pauses_service`), and the account's currency with the panel's when they
/// differ (`costs::panel_currency`). `None` when there is no such service.
pub fn find_shared_for_order(
    conn: &mut DbConnection,
    id: ServiceId,
    account_id: AccountId,
) -> QueryResult<Option<ForOrder>> {
    use super::schema::{accounts, panel_settings};
    let query = services::table.find(id).select((
        columns::<ServiceRow>(),
        accounts::table
            .find(account_id)
            .select(accounts::status)
            .single_value(),
        super::alerts::pauses_service(),
        accounts::table
            .find(account_id)
            .select(accounts::currency)
            .single_value(),
        panel_settings::table
            .find(1_i64)
            .select(panel_settings::currency)
            .single_value(),
    ));
    type Row = (
        ServiceRow,
        Option<String>,
        bool,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = lock_row(conn, query, QueryDsl::for_share)?;
    row.map(
        |(service, status, paused, account_currency, panel_currency)| {
            let status = status
                .map(|s| {
                    AccountStatus::try_from(s)
                        .map_err(|e| diesel::result::Error::DeserializationError(e.into()))
                })
                .transpose()?;
            let foreign_currency = match (account_currency, panel_currency) {
                (Some(account), Some(panel)) if account != panel => Some((account, panel)),
                _ => None,
            };
            Ok(ForOrder {
                service: Service::from(service),
                status,
                paused,
                foreign_currency,
            })
        },
    )
    .transpose()
}

/// What [`find_shared_for_order`] reads.
#[derive(Debug, Clone)]
pub struct ForOrder {
    pub service: Service,
    /// The ordering account's status; `None`: no such account.
    pub status: Option<AccountStatus>,
    /// An active alert pauses new orders to the service or its provider.
    pub paused: bool,
    /// The account's currency and the panel's, when they differ.
    pub foreign_currency: Option<(String, String)>,
}
