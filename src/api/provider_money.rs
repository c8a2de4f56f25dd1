//! Provider money for operators: the panel's currency, a provider's exchange-rate history,
//! and an order's cost, margin and refund recovery (`domain::cost`). Resellers never see
//! any of it.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{get, patch, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::reports::{self, ReportFormat};
use crate::db::reports as report_rows;
use crate::domain::cost::MoneyMetrics;
use crate::domain::report::{spreadsheet_safe, time_label, ReportGroup};
use crate::http::extract::ApiQuery;

use crate::application;
use crate::db::{costs, providers, rollups};
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
    admin: Admin,
    body: ApiJson<UpdateSettingsRequest>,
) -> Result<HttpResponse, ApiError> {
    let by = admin.actor();
    let currency = match body.value.currency.as_deref().map(parse_currency) {
        Some(Err(m)) => return Err(ApiError::invalid("currency", m)),
        Some(Ok(c)) => Some(c),
        None => None,
    };
    let currency = state
        .db(move |conn| application::costs::update_panel_currency(conn, &by, currency.as_deref()))
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
    /// The operator's account; null when set from the command line (or before the
    /// history named who set it).
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
    /// When the provider's charge was first reported or last changed (a reply repeating
    /// the same charge leaves it).
    pub charge_reported_at: Option<DateTime<Utc>>,
    /// The provider's charge before the first refund its status made us pay (its
    /// currency); null when it reported none before. A recovery is measured from it, else
    /// from the expected cost.
    pub baseline_charge_provider: Option<Amount>,
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
            baseline_charge_provider: cost.baseline_charge_provider.map(Amount::of),
            revenue: Amount::of(margin.revenue),
            cost: margin.cost.map(Amount::of),
            margin: margin.margin.map(Amount::of),
            recovery,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProviderMoneyReportQuery {
    /// Start of the window, inclusive: an RFC 3339 time, or a date (`2026-11-01`) meaning
    /// its midnight in `timezone`. Default: 30 days before `to`.
    pub from: Option<String>,
    /// End of the window, exclusive, in the same forms. Default: the end of the current
    /// second. At most 366 days after `from`.
    pub to: Option<String>,
    /// Rows by `provider` (the default), by `service`, or by order date (`day`, `week`
    /// starting Monday).
    #[param(value_type = Option<String>, pattern = "^(provider|service|day|week)$")]
    pub group_by: Option<ReportGroup>,
    /// Where days and weeks start, and how date bounds are read: `UTC` (the default) or a
    /// fixed offset such as `+05:30`.
    #[param(value_type = Option<crate::http::input::TimeZone>, inline)]
    pub timezone: Option<String>,
    /// `json` (the default) or `csv`; without it, `Accept: text/csv` asks for CSV.
    #[param(inline)]
    pub format: Option<ReportFormat>,
    /// Only this provider's orders.
    #[param(value_type = Option<i64>)]
    pub provider_id: Option<ProviderId>,
}

/// The sums of a row or of the totals, in the panel's currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderMoneyMetrics {
    /// Forwarded orders placed in the bucket (orders the provider took).
    pub orders_count: i64,
    /// Our charges minus every refund of those orders.
    pub revenue: Amount,
    /// The providers' latest reported charges, converted (the expected cost until one is
    /// reported).
    pub provider_cost: Amount,
    /// Revenue minus provider cost; may be negative.
    pub margin: Amount,
    /// Orders whose cost is unknown (not counted in `provider_cost`).
    pub orders_without_cost: i64,
    /// Refunds we paid because the provider reported Partial or Canceled (or accepted
    /// our cancel).
    pub refunds_paid: Amount,
    /// The matching share of the expected cost those refunds should bring back.
    pub expected_credits: Amount,
    /// What the providers credited back: the drop in their charges from the expected cost.
    pub credits_recovered: Amount,
    /// The shortfall of orders whose watch window ended short.
    pub unrecovered: Amount,
    /// The shortfall of orders still watched.
    pub awaiting_credit: Amount,
    /// `credits_recovered / expected_credits`, 6 decimals; "1" when nothing is expected.
    #[schema(value_type = String, example = "0.75")]
    pub recovery_rate: String,
    /// The expected credit of refunds whose provider credits its balance instead of
    /// lowering `charge` (`credit_mode` `balance`): owed through its balance, to check
    /// against its balance readings; not in `expected_credits` nor the recovery rate.
    pub credited_to_balance: Amount,
}

impl From<&MoneyMetrics> for ProviderMoneyMetrics {
    fn from(m: &MoneyMetrics) -> ProviderMoneyMetrics {
        ProviderMoneyMetrics {
            orders_count: m.orders,
            revenue: Amount::of(m.revenue),
            provider_cost: Amount::of(m.provider_cost),
            margin: Amount::of(m.margin()),
            orders_without_cost: m.orders_without_cost,
            refunds_paid: Amount::of(m.refunds_paid),
            expected_credits: Amount::of(m.expected_credits),
            credits_recovered: Amount::of(m.credits_recovered),
            unrecovered: Amount::of(m.unrecovered),
            awaiting_credit: Amount::of(m.awaiting_credit),
            recovery_rate: m.recovery_rate().to_string(),
            credited_to_balance: Amount::of(m.credited_to_balance),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderMoneyRow {
    /// A provider or service id, or the first day of a day or week bucket.
    pub group: String,
    /// For people: a provider or service name, the date or `2026-W48`.
    pub label: String,
    /// Time groupings: the bucket's bounds in UTC within the window; null otherwise.
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub metrics: ProviderMoneyMetrics,
}

/// The provider money report: rows and totals by **order date**, like the refund reports.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderMoneyReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: ReportGroup,
    #[schema(example = "+05:30")]
    pub timezone: String,
    /// The panel's currency, which every amount is in.
    pub currency: String,
    #[schema(value_type = Option<i64>)]
    pub provider_id: Option<ProviderId>,
    pub rows: Vec<ProviderMoneyRow>,
    pub totals: ProviderMoneyMetrics,
}

/// What providers cost us and gave back: orders, revenue, provider cost, margin, refunds
/// paid, credits recovered, unrecovered refunds and the recovery rate, by provider, by
/// service or by day or week of order date.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(ProviderMoneyReportQuery),
    responses(
        (status = 200, description = "The report, as JSON or (with `format=csv` or `Accept: text/csv`) as RFC 4180 CSV with a header row and a final `total` row", content(
            (ProviderMoneyReport = "application/json"),
            (String = "text/csv"),
        )),
    )
)]
#[get("/v1/admin/reports/provider-money")]
pub async fn find_provider_money_report(
    req: HttpRequest,
    state: web::Data<AppState>,
    _admin: Admin,
    query: ApiQuery<ProviderMoneyReportQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    let group = query.group_by.unwrap_or(ReportGroup::Provider);
    if !matches!(
        group,
        ReportGroup::Provider | ReportGroup::Service | ReportGroup::Day | ReportGroup::Week
    ) {
        return Err(ApiError::invalid(
            "group_by",
            "must be `provider`, `service`, `day` or `week`",
        ));
    }
    let provider_id = query.provider_id;
    let (window, _, format) = reports::parse_params(
        &req,
        &reports::AdminRefundReportQuery {
            from: query.from,
            to: query.to,
            group_by: Some(group),
            timezone: query.timezone,
            format: query.format,
            account_id: None,
        },
    )?;
    let (rows, totals, labels, currency) = state
        .db(move |conn| {
            let (rows, totals) = rollups::money_sums(conn, group, &window, provider_id)?;
            let ids: Vec<i64> = rows.keys().filter_map(|k| k.parse().ok()).collect();
            let labels: HashMap<String, String> = match group {
                ReportGroup::Service => report_rows::service_names(conn, &ids)?,
                ReportGroup::Provider => report_rows::provider_names(conn, &ids)?,
                _ => Vec::new(),
            }
            .into_iter()
            .map(|(id, name)| (id.to_string(), name))
            .collect();
            Ok((rows, totals, labels, costs::panel_currency(conn)?))
        })
        .await?;
    let mut rows: Vec<(String, MoneyMetrics)> = rows.into_iter().collect();
    if matches!(group, ReportGroup::Provider | ReportGroup::Service) {
        // Most unrecovered first, then by id.
        rows.sort_by(|a, b| {
            b.1.unrecovered
                .cmp(&a.1.unrecovered)
                .then_with(|| a.0.parse::<i64>().ok().cmp(&b.0.parse::<i64>().ok()))
        });
    }
    let report = ProviderMoneyReport {
        from: utc(window.from),
        to: utc(window.to),
        group_by: group,
        timezone: reports::format_offset(&window),
        currency,
        provider_id,
        rows: rows
            .iter()
            .map(|(key, metrics)| {
                let bounds = window.bucket_bounds(group, key);
                let label = match group {
                    ReportGroup::Day | ReportGroup::Week => time_label(group, key),
                    ReportGroup::Provider => labels
                        .get(key)
                        .cloned()
                        .unwrap_or_else(|| format!("Provider {key}")),
                    _ => labels
                        .get(key)
                        .cloned()
                        .unwrap_or_else(|| format!("Service {key}")),
                };
                ProviderMoneyRow {
                    group: key.clone(),
                    label,
                    start: bounds.map(|(start, _)| utc(start)),
                    end: bounds.map(|(_, end)| utc(end)),
                    metrics: metrics.into(),
                }
            })
            .collect(),
        totals: (&totals).into(),
    };
    match format {
        ReportFormat::Json => Ok(HttpResponse::Ok().json(report)),
        ReportFormat::Csv => {
            let body = money_csv(&report).map_err(ApiError::internal)?;
            let stamp = |at: DateTime<Utc>| at.format("%Y%m%dT%H%M%SZ").to_string();
            let filename = format!(
                "provider-money-{}-{}-{}.csv",
                group,
                stamp(report.from),
                stamp(report.to)
            );
            Ok(HttpResponse::Ok()
                .content_type("text/csv; charset=utf-8")
                .insert_header((
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{filename}\""),
                ))
                .body(body))
        }
    }
}

/// The columns of the provider money report's CSV form.
pub const MONEY_CSV_COLUMNS: [&str; 16] = [
    "group",
    "label",
    "start",
    "end",
    "orders_count",
    "revenue",
    "provider_cost",
    "margin",
    "orders_without_cost",
    "refunds_paid",
    "expected_credits",
    "credits_recovered",
    "unrecovered",
    "awaiting_credit",
    "recovery_rate",
    "credited_to_balance",
];

/// RFC 4180 as the refund reports write it. A negative margin is written as it is (a
/// number, never quoted): it is the one cell a spreadsheet must read as a number.
fn money_csv(report: &ProviderMoneyReport) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    writer.write_record(MONEY_CSV_COLUMNS)?;
    let mut record = |group: &str,
                      label: &str,
                      start: Option<DateTime<Utc>>,
                      end: Option<DateTime<Utc>>,
                      m: &ProviderMoneyMetrics|
     -> Result<(), csv::Error> {
        let text = [group, label].map(|c| spreadsheet_safe(c).into_owned());
        let cells = [
            text[0].clone(),
            text[1].clone(),
            reports::rfc3339(start),
            reports::rfc3339(end),
            m.orders_count.to_string(),
            m.revenue.0.clone(),
            m.provider_cost.0.clone(),
            m.margin.0.clone(),
            m.orders_without_cost.to_string(),
            m.refunds_paid.0.clone(),
            m.expected_credits.0.clone(),
            m.credits_recovered.0.clone(),
            m.unrecovered.0.clone(),
            m.awaiting_credit.0.clone(),
            m.recovery_rate.clone(),
            m.credited_to_balance.0.clone(),
        ];
        writer.write_record(cells)
    };
    for row in &report.rows {
        record(&row.group, &row.label, row.start, row.end, &row.metrics)?;
    }
    record(
        "total",
        "Total",
        Some(report.from),
        Some(report.to),
        &report.totals,
    )?;
    writer.flush()?;
    writer.into_inner().map_err(|e| e.into_error().into())
}
