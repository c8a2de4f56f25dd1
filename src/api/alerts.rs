use actix_web::{get, put, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::application;
use crate::config::rate_ppm;
use crate::db::alerts::{self, Rule};
use crate::domain::alert::AlertScope;
use crate::domain::FieldError;
use crate::error::ApiError;
use crate::http::auth::Admin;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::state::AppState;
use crate::http::wire::{page_limit, page_response, Page};
use crate::resources::{ppm_rate, AlertResponse};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListAlertsQuery {
    /// `true`: only alerts still active; `false` or absent: current and past.
    pub active: Option<bool>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Return alerts older than this alert id.
    pub starting_after: Option<i64>,
}

/// Refund-rate alerts, current and past, newest first.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(ListAlertsQuery),
    responses((status = 200, description = "A page of alerts", body = Page<AlertResponse>))
)]
#[get("/v1/admin/alerts")]
pub async fn list_alerts(
    req: HttpRequest,
    state: web::Data<AppState>,
    _admin: Admin,
    query: ApiQuery<ListAlertsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    let limit = page_limit(query.limit)?;
    let only_active = query.active.unwrap_or(false);
    let rows = state
        .db(move |conn| {
            Ok(alerts::list(
                conn,
                only_active,
                query.starting_after,
                limit + 1,
            )?)
        })
        .await?;
    Ok(page_response(
        &req,
        rows,
        limit,
        |a| a.id.get(),
        AlertResponse::from,
    ))
}

/// One service's or provider's own thresholds; null or missing fields use the global
/// flags (an empty body removes the rule).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleBody {
    /// A fraction from 0 to 1, e.g. `"0.1"`.
    #[schema(value_type = Option<String>, pattern = r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$", example = "0.1")]
    pub warning_rate: Option<String>,
    #[schema(value_type = Option<String>, pattern = r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$", example = "0.25")]
    pub critical_rate: Option<String>,
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub min_orders: Option<i64>,
}

/// The thresholds now set for one service or provider; null fields use the global flags.
#[derive(Serialize, ToSchema)]
pub struct AlertRuleResponse {
    pub scope: AlertScope,
    pub subject_id: i64,
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]{1,6})?$", example = "0.1")]
    pub warning_rate: Option<String>,
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]{1,6})?$", example = "0.25")]
    pub critical_rate: Option<String>,
    pub min_orders: Option<i64>,
}

fn parse_rate(field: &'static str, raw: Option<&str>, errors: &mut Vec<FieldError>) -> Option<i64> {
    let raw = raw?;
    let parsed = raw
        .parse::<rust_decimal::Decimal>()
        .map_err(|e| e.to_string())
        .and_then(|d| {
            if d.scale() > 6 {
                return Err("at most 6 fractional digits".into());
            }
            rate_ppm(d)
        });
    match parsed {
        Ok(ppm) => Some(ppm),
        Err(message) => {
            errors.push(FieldError::new(field, message));
            None
        }
    }
}

/// Set one service's or provider's alert thresholds (all null: back to the global flags).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(
        ("scope" = AlertScope, Path, description = "`service` or `provider`"),
        ("id" = i64, Path, description = "The service's or provider's id"),
    ),
    request_body = Option<AlertRuleBody>,
    responses(
        (status = 200, description = "The rule", body = AlertRuleResponse),
        (status = 404, description = "No such service or provider", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[put("/v1/admin/alert-rules/{scope}/{id}")]
pub async fn set_alert_rule(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<(AlertScope, i64)>,
    body: ApiJson<AlertRuleBody>,
) -> Result<HttpResponse, ApiError> {
    let (scope, subject_id) = path.into_inner();
    let request = body.value;
    let mut errors = Vec::new();
    let rule = Rule {
        warning_ppm: parse_rate("warning_rate", request.warning_rate.as_deref(), &mut errors),
        critical_ppm: parse_rate(
            "critical_rate",
            request.critical_rate.as_deref(),
            &mut errors,
        ),
        min_orders: request.min_orders,
    };
    if request
        .min_orders
        .is_some_and(|m| !(1..=1_000_000).contains(&m))
    {
        errors.push(FieldError::new("min_orders", "must be from 1 to 1000000"));
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let by = admin.actor();
    state
        .db(move |conn| application::alerts::set_rule(conn, &by, scope, subject_id, rule))
        .await?;
    Ok(HttpResponse::Ok().json(AlertRuleResponse {
        scope,
        subject_id,
        warning_rate: rule.warning_ppm.map(ppm_rate),
        critical_rate: rule.critical_ppm.map(ppm_rate),
        min_orders: rule.min_orders,
    }))
}
