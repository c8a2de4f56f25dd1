use actix_web::{get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::application;
use crate::db::provider_orders;
use crate::db::providers::{self, ProviderFields};
use crate::domain::account::parse_currency;
use crate::domain::ids::{OrderId, ProviderId, ServiceId};
use crate::domain::money::{ExchangeRate, Percent};
use crate::domain::provider::{CreditMode, ForwardingState, Provider};
use crate::domain::service::ServiceType;
use crate::domain::{parse_text, FieldError};
use crate::error::{ApiError, ErrorCode};
use crate::http::auth::Admin;
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::http::wire::{parse_money, parse_percent, utc, Amount};

/// A provider as operators see it; its key is never returned.
#[derive(Serialize, ToSchema)]
pub struct ProviderResponse {
    #[schema(value_type = i64)]
    pub id: ProviderId,
    pub name: String,
    /// The provider's API v2 endpoint.
    #[schema(example = "https://provider.example/api/v2")]
    pub url: String,
    pub enabled: bool,
    pub timeout_ms: i64,
    /// Orders per `status` request, at most 100.
    pub batch_size: i64,
    /// The provider honours `idempotency_key` on `add`, so an unanswered send may be retried.
    pub idempotent_add: bool,
    /// Below this balance upstream, no new order is sent to the provider (they wait queued).
    pub min_balance: Option<Amount>,
    /// The provider's balance as the worker last read it (`action=balance`).
    pub balance: Option<Amount>,
    pub balance_currency: Option<String>,
    /// When the worker last asked for the balance.
    pub balance_checked_at: Option<DateTime<Utc>>,
    /// Why the last balance read gave none, if it did not.
    pub balance_error: Option<String>,
    /// Why forwarding to this provider is paused; null while it forwards.
    pub paused_because: Option<String>,
    /// Percent added to the provider's rates when its catalog is synced.
    pub markup_percent: Amount,
    /// The worker syncs this provider's catalog on its own every
    /// `--service-sync-interval-secs`, as `POST …/sync-services` does.
    pub auto_sync: bool,
    /// The provider may be on a loopback, private, link-local or metadata address (the
    /// panel's own network). Otherwise every call refuses such an address, however the
    /// provider's host resolves.
    pub allow_private_network: bool,
    /// The currency the provider bills in: its rates, `charge`s, balance and `min_balance`.
    #[schema(example = "EUR")]
    pub currency: String,
    /// Panel-currency units per one provider-currency unit (`"1.1"`: 1 EUR = 1.10 USD);
    /// null while the provider bills in the panel's currency.
    pub exchange_rate: Option<Amount>,
    /// When the currency or exchange rate was last set.
    pub exchange_rate_set_at: Option<DateTime<Utc>>,
    /// The currency a status reply last named instead of `currency`: its `charge` was not
    /// used as cost (statuses and remains still applied). Null while none did.
    pub currency_mismatch: Option<String>,
    pub currency_mismatch_at: Option<DateTime<Utc>>,
    /// How the provider gives back the money of a Partial or Canceled it reported:
    /// `charge` (it lowers the order's `charge`: each refund's recovery is read from its
    /// replies) or `balance` (it credits its balance and leaves `charge`: those refunds
    /// show as `to_balance`, to check against its balance, never as unrecovered).
    pub credit_mode: CreditMode,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Provider> for ProviderResponse {
    fn from(p: Provider) -> ProviderResponse {
        let paused_because = p.paused_because();
        ProviderResponse {
            id: p.id,
            name: p.name,
            url: p.url,
            enabled: p.enabled,
            timeout_ms: p.timeout_ms,
            batch_size: p.batch_size,
            idempotent_add: p.idempotent_add,
            paused_because,
            markup_percent: Amount(p.markup_percent.to_string()),
            auto_sync: p.auto_sync,
            allow_private_network: p.allow_private_network,
            min_balance: p.min_balance.map(Amount::of),
            balance: p.balance.map(Amount::of),
            balance_currency: p.balance_currency,
            balance_checked_at: p.balance_checked_at.map(utc),
            balance_error: p.balance_error,
            currency: p.currency,
            exchange_rate: p.exchange_rate.map(|r| Amount(r.to_string())),
            exchange_rate_set_at: p.exchange_rate_set_at.map(utc),
            currency_mismatch: p.currency_mismatch,
            currency_mismatch_at: p.currency_mismatch_at.map(utc),
            credit_mode: p.credit_mode,
            created_at: utc(p.created_at),
            updated_at: utc(p.updated_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProviderRequest {
    #[schema(value_type = crate::http::input::Text200)]
    pub name: String,
    #[schema(value_type = crate::http::input::HttpUrl)]
    pub url: String,
    /// The key this panel uses at the provider; stored, never returned.
    #[schema(value_type = crate::http::input::Text500)]
    pub key: String,
    pub enabled: Option<bool>,
    /// Per-request timeout, 100 to 120000 ms (default 10000).
    #[schema(minimum = 100, maximum = 120_000)]
    pub timeout_ms: Option<i64>,
    /// Orders per status request, 1 to 100 (default 100).
    #[schema(minimum = 1, maximum = 100)]
    pub batch_size: Option<i64>,
    /// Default false: only set for providers known to honour `idempotency_key` on `add`.
    pub idempotent_add: Option<bool>,
    /// Pause forwarding while the provider's balance is below this (a decimal string).
    #[schema(value_type = Option<crate::http::input::NonNegativeAmount>)]
    pub min_balance: Option<String>,
    /// Percent added to the provider's rates by a catalog sync (a decimal string, default 0).
    #[schema(value_type = Option<crate::http::input::NonNegativeAmount>)]
    pub markup_percent: Option<String>,
    /// Default false: when true the worker syncs the catalog on a schedule.
    pub auto_sync: Option<bool>,
    /// Default false: set true only for a provider on the panel's own network (a
    /// loopback, private, link-local or metadata address). Without it such a URL is
    /// refused (422, `param` `url`), and every call refuses a host that resolves there.
    pub allow_private_network: Option<bool>,
    /// The currency the provider bills in, three uppercase letters (default: the panel's,
    /// `GET /v1/admin/settings`).
    #[schema(value_type = Option<crate::http::input::CurrencyCode>)]
    pub currency: Option<String>,
    /// Panel-currency units per one provider-currency unit (`"1.1"`: 1 EUR = 1.10 USD),
    /// above zero, six decimals at most. Required when `currency` is
    /// not the panel's; not kept for a provider in the panel's currency.
    #[schema(value_type = Option<crate::http::input::PositiveAmount>)]
    pub exchange_rate: Option<String>,
    /// How the provider gives back the money of a Partial or Canceled (default `charge`;
    /// `balance` for a panel that credits its balance and leaves the order's `charge`).
    pub credit_mode: Option<CreditMode>,
}

#[derive(Deserialize, ToSchema, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct UpdateProviderRequest {
    #[schema(value_type = Option<crate::http::input::Text200>)]
    pub name: Option<String>,
    #[schema(value_type = Option<crate::http::input::HttpUrl>)]
    pub url: Option<String>,
    #[schema(value_type = Option<crate::http::input::Text500>)]
    pub key: Option<String>,
    pub enabled: Option<bool>,
    #[schema(minimum = 100, maximum = 120_000)]
    pub timeout_ms: Option<i64>,
    #[schema(minimum = 1, maximum = 100)]
    pub batch_size: Option<i64>,
    pub idempotent_add: Option<bool>,
    /// A decimal string; null to forward whatever the provider's balance.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<crate::http::input::NonNegativeAmount>)]
    pub min_balance: Option<Option<String>>,
    #[schema(value_type = Option<crate::http::input::NonNegativeAmount>)]
    pub markup_percent: Option<String>,
    pub auto_sync: Option<bool>,
    pub allow_private_network: Option<bool>,
    #[schema(value_type = Option<crate::http::input::CurrencyCode>)]
    pub currency: Option<String>,
    /// A decimal string; null to clear it (a provider back in the panel's currency).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<crate::http::input::PositiveAmount>)]
    pub exchange_rate: Option<Option<String>>,
    pub credit_mode: Option<CreditMode>,
}

/// Tells a field left out (`None`) from one set to null (`Some(None)`).
fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn provider_fields(request: CreateProviderRequest) -> Result<ProviderFields, ApiError> {
    let mut errors = Vec::new();
    let name = parse_text(&request.name, 200)
        .map_err(|m| errors.push(FieldError::new("name", m)))
        .ok();
    let url = match parse_text(&request.url, 2000) {
        Ok(url) if url.starts_with("https://") || url.starts_with("http://") => Some(url),
        Ok(_) => {
            errors.push(FieldError::new("url", "must be an http:// or https:// URL"));
            None
        }
        Err(m) => {
            errors.push(FieldError::new("url", m));
            None
        }
    };
    let key = parse_text(&request.key, 500)
        .map_err(|m| errors.push(FieldError::new("key", m)))
        .ok();
    let timeout_ms = request.timeout_ms.unwrap_or(10_000);
    if !(100..=120_000).contains(&timeout_ms) {
        errors.push(FieldError::new(
            "timeout_ms",
            "must be between 100 and 120000",
        ));
    }
    let batch_size = request.batch_size.unwrap_or(100);
    if !(1..=100).contains(&batch_size) {
        errors.push(FieldError::new("batch_size", "must be between 1 and 100"));
    }
    let min_balance = request
        .min_balance
        .as_deref()
        .map(|raw| parse_money("min_balance", raw, &mut errors));
    let markup = parse_percent(
        "markup_percent",
        request.markup_percent.as_deref().unwrap_or("0"),
        &mut errors,
    );
    let currency = match request.currency.as_deref().map(parse_currency) {
        Some(Err(m)) => {
            errors.push(FieldError::new("currency", m));
            None
        }
        Some(Ok(c)) => Some(c),
        None => None,
    };
    let exchange_rate = match request.exchange_rate.as_deref().map(ExchangeRate::parse) {
        Some(Err(m)) => {
            errors.push(FieldError::new("exchange_rate", m));
            None
        }
        Some(Ok(rate)) => Some(rate),
        None => None,
    };
    match (name, url, key) {
        (Some(name), Some(url), Some(api_key)) if errors.is_empty() => Ok(ProviderFields {
            name,
            url,
            api_key: api_key.into(),
            enabled: request.enabled.unwrap_or(true),
            timeout_ms,
            batch_size,
            idempotent_add: request.idempotent_add.unwrap_or(false),
            min_balance: min_balance.flatten(),
            markup_percent: markup.unwrap_or(Percent::ZERO),
            auto_sync: request.auto_sync.unwrap_or(false),
            allow_private_network: request.allow_private_network,
            currency,
            exchange_rate,
            credit_mode: request.credit_mode.unwrap_or(CreditMode::Charge),
        }),
        _ => Err(errors.into()),
    }
}

/// Refuses a provider whose URL is (or resolves to) a private address unless it is opted
/// in; `private` is what resolving the URL found (`None`: it did not resolve, so every
/// call judges it again).
/// `stored` is the provider's opt-in as it stands (false for a new provider).
fn check_network(
    fields: &ProviderFields,
    private: Option<bool>,
    stored: bool,
) -> Result<ProviderFields, ApiError> {
    if private == Some(true) && !fields.allow_private_network.unwrap_or(stored) {
        return Err(ApiError::invalid(
            "url",
            "the URL's host is a loopback, private, link-local or metadata address; set `allow_private_network` to call a provider on the panel's own network",
        ));
    }
    Ok(fields.clone())
}

/// Register an upstream API v2 provider.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = CreateProviderRequest,
    responses((status = 201, description = "The provider (without its key)", body = ProviderResponse))
)]
#[post("/v1/admin/providers")]
pub async fn create_provider(
    state: web::Data<AppState>,
    admin: Admin,
    body: ApiJson<CreateProviderRequest>,
) -> Result<HttpResponse, ApiError> {
    let (fields, by) = (provider_fields(body.value)?, admin.actor());
    // Resolved before a database connection is taken.
    let private = crate::net::reaches_private_off_thread(fields.url.clone()).await;
    let mut fields = check_network(&fields, private, false)?;
    fields.allow_private_network.get_or_insert(false);
    let provider = state
        .db(move |conn| application::providers::create_provider(conn, &by, &fields))
        .await?;
    Ok(HttpResponse::Created().json(ProviderResponse::from(provider)))
}

#[derive(Serialize, ToSchema)]
pub struct ProviderList {
    pub data: Vec<ProviderResponse>,
}

/// Every provider.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "All providers", body = ProviderList))
)]
#[get("/v1/admin/providers")]
pub async fn list_providers(
    state: web::Data<AppState>,
    _admin: Admin,
) -> Result<HttpResponse, ApiError> {
    let all = state.db(|conn| Ok(providers::all(conn)?)).await?;
    Ok(HttpResponse::Ok().json(ProviderList {
        data: all.into_iter().map(Into::into).collect(),
    }))
}

/// Change a provider; fields left out keep their value.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Provider id")),
    request_body = Option<UpdateProviderRequest>,
    responses(
        (status = 200, description = "The updated provider", body = ProviderResponse),
        (status = 404, description = "No such provider", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/v1/admin/providers/{id}")]
pub async fn update_provider(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<UpdateProviderRequest>,
) -> Result<HttpResponse, ApiError> {
    let (id, by) = (ProviderId(id.into_inner()), admin.actor());
    let patch = body.value;
    let sets_key = patch.key.is_some();
    // The address the provider will have, resolved before the transaction: the new URL,
    // or the current one when the opt-in is being turned off.
    let checked_url = match (&patch.url, patch.allow_private_network) {
        (Some(url), _) => Some(url.clone()),
        (None, Some(false)) => state
            .read(move |conn| Ok(providers::find(conn, id)?))
            .await?
            .map(|p| p.url),
        (None, _) => None,
    };
    let private = match checked_url {
        Some(url) => crate::net::reaches_private_off_thread(url).await,
        None => None,
    };
    // Called once per attempt of the transaction, which may run again on a conflict.
    let merge = move |current: Provider| {
        let patch = patch.clone();
        provider_fields(CreateProviderRequest {
            name: patch.name.unwrap_or(current.name),
            url: patch.url.unwrap_or(current.url),
            // The kept key goes through the same checks as a new one.
            key: patch
                .key
                .unwrap_or_else(|| current.api_key.expose_secret().to_string()),
            enabled: Some(patch.enabled.unwrap_or(current.enabled)),
            timeout_ms: Some(patch.timeout_ms.unwrap_or(current.timeout_ms)),
            batch_size: Some(patch.batch_size.unwrap_or(current.batch_size)),
            idempotent_add: Some(patch.idempotent_add.unwrap_or(current.idempotent_add)),
            min_balance: patch
                .min_balance
                .unwrap_or(current.min_balance.map(|m| m.to_string())),
            markup_percent: Some(
                patch
                    .markup_percent
                    .unwrap_or_else(|| current.markup_percent.to_string()),
            ),
            auto_sync: Some(patch.auto_sync.unwrap_or(current.auto_sync)),
            allow_private_network: patch.allow_private_network,
            currency: Some(patch.currency.unwrap_or(current.currency)),
            exchange_rate: patch
                .exchange_rate
                .unwrap_or(current.exchange_rate.map(|r| r.to_string())),
            credit_mode: Some(patch.credit_mode.unwrap_or(current.credit_mode)),
        })
        .and_then(|fields| check_network(&fields, private, current.allow_private_network))
    };
    let provider = state
        .db(move |conn| application::providers::update_provider(conn, &by, sets_key, id, merge))
        .await?;
    Ok(HttpResponse::Ok().json(ProviderResponse::from(provider)))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    /// The provider's order id, when the provider has the order; leave out to send it again.
    #[schema(value_type = Option<crate::http::input::Text100>)]
    pub provider_order_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ForwardingResponse {
    #[schema(value_type = i64)]
    pub order_id: OrderId,
    pub state: ForwardingState,
    #[schema(value_type = i64)]
    pub provider_id: ProviderId,
    pub provider_order_id: Option<String>,
    pub attempts: i64,
    pub failures: i64,
    pub last_error: Option<String>,
    /// A provider status word we did not recognise, kept for the operator.
    pub quarantined_status: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
}

impl From<provider_orders::ProviderOrder> for ForwardingResponse {
    fn from(p: provider_orders::ProviderOrder) -> ForwardingResponse {
        ForwardingResponse {
            order_id: p.order_id,
            state: p.state,
            provider_id: p.provider_id,
            provider_order_id: p.provider_order_id,
            attempts: p.attempts,
            failures: p.failures,
            last_error: p.last_error,
            quarantined_status: p.quarantined_status,
            last_synced_at: p.last_synced_at.map(utc),
        }
    }
}

/// Where a provider-backed order stands upstream.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order's forwarding state", body = ForwardingResponse),
        (status = 404, description = "No such provider-backed order", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/admin/orders/{id}/forwarding")]
pub async fn find_forwarding(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = OrderId(id.into_inner());
    let found = state
        .db(move |conn| {
            provider_orders::find(conn, id)?
                .ok_or_else(|| ApiError::not_found("provider-backed order"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(ForwardingResponse::from(found)))
}

/// Reconcile an order whose send got no certain answer (state `ambiguous`) or was given
/// up (`failed`, before any refund): attach the provider's order id if the provider has
/// it, or leave it out to send the order again.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Order id")),
    request_body = Option<ReconcileRequest>,
    responses(
        (status = 200, description = "The order's new forwarding state", body = ForwardingResponse),
        (status = 404, description = "No such provider-backed order", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is not waiting for reconciliation", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/orders/{id}/forwarding")]
pub async fn reconcile_forwarding(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<ReconcileRequest>,
) -> Result<HttpResponse, ApiError> {
    let (id, by) = (OrderId(id.into_inner()), admin.actor());
    let remote = match body
        .value
        .provider_order_id
        .as_deref()
        .map(|r| parse_text(r, 100))
    {
        Some(Err(m)) => return Err(ApiError::invalid("provider_order_id", m)),
        Some(Ok(r)) => Some(r),
        None => None,
    };
    let found = state
        .db(move |conn| {
            application::providers::reconcile_forwarding(conn, &by, id, remote.as_deref())
        })
        .await?;
    state.wake.notify();
    Ok(HttpResponse::Ok().json(ForwardingResponse::from(found)))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SyncServicesRequest {
    /// Only say what would change (default false).
    pub dry_run: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct SyncedServiceResponse {
    /// Ours; null for one a dry run would create.
    #[schema(value_type = Option<i64>)]
    pub service_id: Option<ServiceId>,
    pub provider_service_id: String,
    pub name: String,
    /// Our rate per 1000 (for a flat-price type, per package): the provider's, converted
    /// to the panel's currency (half-up to the micro-unit), plus the markup.
    pub rate: Amount,
    /// The provider's rate in its currency; null for a service disabled.
    pub provider_rate: Option<Amount>,
    /// `provider_rate` in the panel's currency (× the provider's `exchange_rate`), before
    /// the markup.
    pub converted_rate: Option<Amount>,
    /// Our rate is at or below the converted provider rate: the service sells at a loss
    /// (raise the provider's `markup_percent`).
    pub at_loss: bool,
    /// The service's type after the sync.
    pub r#type: ServiceType,
    /// The type before the sync, when the sync changes it; else null.
    pub previous_type: Option<ServiceType>,
    /// The fields that change.
    pub changes: Vec<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct SkippedServiceResponse {
    pub provider_service_id: String,
    pub reason: String,
}

/// A flag of ours the provider's catalog says nothing about, kept as it is.
#[derive(Serialize, ToSchema)]
pub struct KeptFlagResponse {
    #[schema(value_type = i64)]
    pub service_id: ServiceId,
    pub provider_service_id: String,
    /// The flag kept on.
    #[schema(value_type = String, example = "refill")]
    pub flag: &'static str,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct SyncServicesResponse {
    pub dry_run: bool,
    pub created: Vec<SyncedServiceResponse>,
    pub updated: Vec<SyncedServiceResponse>,
    /// Ours whose provider service is gone: disabled, their orders in flight refunded and
    /// canceled upstream.
    pub disabled: Vec<SyncedServiceResponse>,
    pub unchanged: i64,
    /// Provider services left out (a type we do not offer, impossible limits).
    pub skipped: Vec<SkippedServiceResponse>,
    /// Our refill and cancel flags left on because the provider's entry has no such key
    /// (many panels send none): an absent key never turns a flag off, an explicit false does.
    pub kept: Vec<KeptFlagResponse>,
}

fn synced(s: application::catalog::SyncedService) -> SyncedServiceResponse {
    SyncedServiceResponse {
        service_id: s.service_id,
        provider_service_id: s.provider_service_id,
        name: s.name,
        rate: Amount::of(s.rate),
        provider_rate: s.provider_rate.map(Amount::of),
        converted_rate: s.converted_rate.map(Amount::of),
        at_loss: s.at_loss,
        r#type: s.kind,
        previous_type: s.previous_kind,
        changes: s.changes,
    }
}

/// Sync our catalog with the provider's (`action=services`): create the services it has
/// that we do not, update ours where name, category, type, rate (the provider's plus its
/// `markup_percent`), min, max, refill or cancel differ, and disable ours that it no
/// longer lists (refunding their orders in flight and canceling them upstream). Existing
/// orders keep their charge. `dry_run` only reports.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Provider id")),
    request_body = Option<SyncServicesRequest>,
    responses(
        (status = 200, description = "What changed (or would)", body = SyncServicesResponse),
        (status = 404, description = "No such provider", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The provider's catalog could not be read (`provider_unavailable`), or the provider bills in another currency than the panel's and has no `exchange_rate` (`currency_mismatch`); nothing changed", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/providers/{id}/sync-services")]
pub async fn sync_provider_services(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<SyncServicesRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = ProviderId(id.into_inner());
    let dry_run = body.value.dry_run.unwrap_or(false);
    let (admin_id, by) = (admin.0.account_id, admin.actor());
    let provider = state
        .db(move |conn| providers::find(conn, id)?.ok_or_else(|| ApiError::not_found("provider")))
        .await?;
    let fetched = web::block(move || crate::providers::catalog::fetch_services(&provider))
        .await
        .map_err(ApiError::internal)?;
    let fetched = state
        .db(move |conn| {
            fetched.record(conn, id)?;
            Ok(fetched)
        })
        .await?;
    let catalog = fetched.catalog.map_err(|detail| ApiError::Refused {
        code: ErrorCode::ProviderUnavailable,
        detail,
    })?;
    let report = state
        .db(move |conn| {
            application::catalog::sync_services(
                conn,
                Some(&by),
                Some(admin_id),
                id,
                &catalog,
                dry_run,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(SyncServicesResponse {
        dry_run: report.dry_run,
        created: report.created.into_iter().map(synced).collect(),
        updated: report.updated.into_iter().map(synced).collect(),
        disabled: report.disabled.into_iter().map(synced).collect(),
        unchanged: report.unchanged,
        skipped: report
            .skipped
            .into_iter()
            .map(|s| SkippedServiceResponse {
                provider_service_id: s.provider_service_id,
                reason: s.reason,
            })
            .collect(),
        kept: report
            .kept
            .into_iter()
            .map(|k| KeptFlagResponse {
                service_id: k.service_id,
                provider_service_id: k.provider_service_id,
                flag: k.flag,
                reason: k.reason,
            })
            .collect(),
    }))
}
