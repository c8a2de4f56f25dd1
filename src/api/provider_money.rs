//! Provider money for operators: the panel's currency, a provider's exchange-rate history,
//! and an order's cost, margin and refund recovery (`domain::cost`). Resellers never see
//! any of it.

use actix_web::{get, patch, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::application;
use crate::db::{costs, providers};
use crate::domain::account::parse_currency;
use crate::domain::cost::{OrderCost, Recovery};
use crate::domain::ids::{AccountId, ProviderId};
use crate::domain::money::Money;
use crate::error::ApiError;
use crate::http::auth::Admin;
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::http::wire::{utc, Amount};

/// The panel's settings.
#[derive(Serialize, ToSchema)]
pub struct SettingsResponse {
    /// The currency services are priced in. Accounts in another currency cannot place
    /// orders (409 `currency_mismatch`); providers in another need an `exchange_rate`.
    #[schema(example = "USD")]
    pub currency: String,
}

#[derive(Deserialize, ToSchema, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettingsRequest {
    /// Three uppercase letters. Existing prices are not converted: set it before the
    /// catalog is built.
    #[schema(value_type = Option<crate::http::input::CurrencyCode>)]
    pub currency: Option<String>,
}

/// The panel's settings.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "The settings", body = SettingsResponse))
)]
#[get("/v1/admin/settings")]
pub async fn find_settings(
    state: web::Data<AppState>,
    _admin: Admin,
) -> Result<HttpResponse, ApiError> {
    let currency = state.db(|conn| Ok(costs::panel_currency(conn)?)).await?;
    Ok(HttpResponse::Ok().json(SettingsResponse { currency }))
}

/// Change the panel's settings; fields left out keep their value.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = Option<UpdateSettingsRequest>,
    responses((status = 200, description = "The settings", body = SettingsResponse))
)]
#[patch("/v1/admin/settings")]
pub async fn update_settings(
    state: web::Data<AppState>,
    _admin: Admin,
    body: ApiJson<UpdateSettingsRequest>,
) -> Result<HttpResponse, ApiError> {
    let currency = match body.value.currency.as_deref().map(parse_currency) {
        Some(Err(m)) => return Err(ApiError::invalid("currency", m)),
        Some(Ok(c)) => Some(c),
        None => None,
    };
    let currency = state
        .db(move |conn| application::costs::update_panel_currency(conn, currency.as_deref()))
        .await?;
    Ok(HttpResponse::Ok().json(SettingsResponse { currency }))
}

/// One exchange rate as an operator set it.
#[derive(Serialize, ToSchema)]
pub struct ExchangeRateResponse {
    pub currency: String,
    /// Panel units per one provider unit; null while the provider billed in the panel's
    /// currency.
    pub exchange_rate: Option<Amount>,
    #[schema(value_type = Option<i64>)]
    pub set_by: Option<AccountId>,
    pub set_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct ExchangeRateList {
    /// Newest first.
    pub data: Vec<ExchangeRateResponse>,
}

/// A provider's currencies and exchange rates as they were set, newest first.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Provider id")),
    responses(
        (status = 200, description = "The history", body = ExchangeRateList),
        (status = 404, description = "No such provider", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/admin/providers/{id}/exchange-rates")]
pub async fn list_exchange_rates(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = ProviderId(id.into_inner());
    let history = state
        .db(move |conn| {
            providers::find(conn, id)?.ok_or_else(|| ApiError::not_found("provider"))?;
            Ok(providers::exchange_rate_history(conn, id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ExchangeRateList {
        data: history
            .into_iter()
            .map(|h| ExchangeRateResponse {
                currency: h.currency,
                exchange_rate: h.rate.map(|r| Amount(r.to_string())),
                set_by: h.set_by,
                set_at: utc(h.set_at),
            })
            .collect(),
    }))
}

/// What a forwarded order cost and earned, for operators only.
#[derive(Serialize, ToSchema)]
pub struct OrderMoneyResponse {
    /// The provider's currency, and the exchange rate the order was priced with (panel
    /// units per provider unit, at send time).
    pub currency: String,
    pub exchange_rate: Amount,
    /// The provider's rate × the quantity at send time, in its currency and converted;
    /// null when no sync priced the service.
    pub expected_cost_provider: Option<Amount>,
    pub expected_cost: Option<Amount>,
    /// The provider's `charge` in its first and latest status reply (in its currency and
    /// converted); null until one is reported.
    pub first_charge_provider: Option<Amount>,
    pub first_charge: Option<Amount>,
    pub latest_charge_provider: Option<Amount>,
    pub latest_charge: Option<Amount>,
    pub charge_reported_at: Option<DateTime<Utc>>,
    /// Our charge minus our refunds.
    pub revenue: Amount,
    /// The provider's latest charge, the expected cost until one is reported.
    pub cost: Option<Amount>,
    /// Revenue minus cost; may be negative.
    pub margin: Option<Amount>,
    /// The refund recovery; null when we refunded nothing because of the provider.
    pub recovery: Option<RecoveryResponse>,
}

/// What we refunded because the provider reported Partial or Canceled, and what it gave
/// back (the drop in its charge from the expected cost), converted to the panel's currency.
#[derive(Serialize, ToSchema)]
pub struct RecoveryResponse {
    pub state: Recovery,
    pub refunded: Amount,
    /// The matching share of the expected cost.
    pub expected_credit: Amount,
    pub credited: Amount,
    /// What is missing beyond the provider's rounding (0.0001 of its currency).
    pub shortfall: Amount,
    /// Until when the provider's correction is watched for.
    pub watch_until: Option<DateTime<Utc>>,
}

impl OrderMoneyResponse {
    pub fn of(cost: OrderCost, charge: Money, refunded: Money) -> OrderMoneyResponse {
        let margin = cost.margin(charge, refunded);
        let recovery = cost.recovery.and_then(|state| {
            cost.recovery_figures(charge).map(|f| RecoveryResponse {
                state,
                refunded: Amount::of(f.refunded),
                expected_credit: Amount::of(f.expected_credit),
                credited: Amount::of(f.credited),
                shortfall: Amount::of(f.shortfall),
                watch_until: cost.watch_until.map(utc),
            })
        });
        OrderMoneyResponse {
            currency: cost.currency,
            exchange_rate: Amount(cost.exchange_rate.to_string()),
            expected_cost_provider: cost.expected_cost_provider.map(Amount::of),
            expected_cost: cost.expected_cost.map(Amount::of),
            first_charge_provider: cost.first_charge_provider.map(Amount::of),
            first_charge: cost.first_charge.map(Amount::of),
            latest_charge_provider: cost.latest_charge_provider.map(Amount::of),
            latest_charge: cost.latest_charge.map(Amount::of),
            charge_reported_at: cost.charge_reported_at.map(utc),
            revenue: Amount::of(margin.revenue),
            cost: margin.cost.map(Amount::of),
            margin: margin.margin.map(Amount::of),
            recovery,
        }
    }
}
