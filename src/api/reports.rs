//! Refund reports as JSON or CSV, for a reseller's own orders and for operators.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, NaiveDateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::reports::{self, ReportScope};
use crate::domain::account::Scope;
use crate::domain::ids::AccountId;
use crate::domain::report::{
    parse_bound, parse_timezone, reason_label, spreadsheet_safe, summarize, time_label, Metrics,
    ReportGroup, Summary, Window, NO_PROVIDER,
};
use crate::error::ApiError;
use crate::http::auth::{Admin, Caller};
use crate::http::extract::ApiQuery;
use crate::http::state::AppState;
use crate::http::wire::{utc, Amount};

/// How a report is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    Json,
    Csv,
}

/// The window a report covers when none is given.
const DEFAULT_WINDOW_DAYS: i64 = 30;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RefundReportQuery {
    /// Start of the window, inclusive: an RFC 3339 time, or a date (`2026-11-01`) meaning
    /// its midnight in `timezone`. Default: 30 days before `to`.
    pub from: Option<String>,
    /// End of the window, exclusive, in the same forms. Default: the end of the current
    /// second (now rounded up to a whole second), so every order placed so far counts.
    /// At most 366 days after `from`.
    pub to: Option<String>,
    /// Rows by order date (`day`, `week` starting Monday, `month`), by `service`,
    /// `provider` or refund `reason`. Default `day`. (`account` is for operators.)
    pub group_by: Option<ReportGroup>,
    /// Where days, weeks and months start, and how date bounds are read: `UTC` (the
    /// default) or a fixed offset such as `+03:00`.
    #[param(value_type = Option<crate::http::input::TimeZone>, inline)]
    pub timezone: Option<String>,
    /// `json` (the default) or `csv`; without it, `Accept: text/csv` asks for CSV.
    #[param(inline)]
    pub format: Option<ReportFormat>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdminRefundReportQuery {
    /// Start of the window, inclusive: an RFC 3339 time, or a date (`2026-11-01`) meaning
    /// its midnight in `timezone`. Default: 30 days before `to`.
    pub from: Option<String>,
    /// End of the window, exclusive, in the same forms. Default: the end of the current
    /// second (now rounded up to a whole second), so every order placed so far counts.
    /// At most 366 days after `from`.
    pub to: Option<String>,
    /// Rows by order date (`day`, `week` starting Monday, `month`), by `service`,
    /// `provider`, refund `reason` or `account`. Default `day`.
    pub group_by: Option<ReportGroup>,
    /// Where days, weeks and months start, and how date bounds are read: `UTC` (the
    /// default) or a fixed offset such as `+03:00`.
    #[param(value_type = Option<crate::http::input::TimeZone>, inline)]
    pub timezone: Option<String>,
    /// `json` (the default) or `csv`; without it, `Accept: text/csv` asks for CSV.
    #[param(inline)]
    pub format: Option<ReportFormat>,
    /// Only this account's orders.
    #[param(value_type = Option<i64>)]
    pub account_id: Option<AccountId>,
}

impl From<RefundReportQuery> for AdminRefundReportQuery {
    fn from(q: RefundReportQuery) -> AdminRefundReportQuery {
        AdminRefundReportQuery {
            from: q.from,
            to: q.to,
            group_by: q.group_by,
            timezone: q.timezone,
            format: q.format,
            account_id: None,
        }
    }
}

/// Count and amount of the refunds given for one reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReasonSumsResponse {
    pub count: i64,
    pub amount: Amount,
}

/// The metrics of a row, or of the whole report.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundReportMetrics {
    /// Orders placed in the row's bucket (for `group_by=reason`: in the whole window).
    pub orders_count: i64,
    /// What those orders were charged.
    pub charged_amount: Amount,
    /// Those of the orders with anything refunded.
    pub refunded_orders_count: i64,
    /// Succeeded refunds of those orders (an order can have several).
    pub refunds_count: i64,
    /// What those refunds credited.
    pub refunded_amount: Amount,
    /// `refunded_orders_count / orders_count`, 6 decimals, "0" without orders.
    #[schema(value_type = String, example = "0.0425")]
    pub refund_rate_count: String,
    /// `refunded_amount / charged_amount`, 6 decimals, "0" when nothing was charged.
    #[schema(value_type = String, example = "0.031287")]
    pub refund_rate_amount: String,
    /// The refunds by reason: reason → count and amount.
    pub by_reason: BTreeMap<String, ReasonSumsResponse>,
}

impl From<&Metrics> for RefundReportMetrics {
    fn from(m: &Metrics) -> RefundReportMetrics {
        RefundReportMetrics {
            orders_count: m.orders,
            charged_amount: Amount::of(m.charged),
            refunded_orders_count: m.refunded_orders,
            refunds_count: m.refunds,
            refunded_amount: Amount::of(m.refunded),
            refund_rate_count: m.rate_count().to_string(),
            refund_rate_amount: m.rate_amount().to_string(),
            by_reason: m
                .by_reason
                .iter()
                .map(|(reason, sums)| {
                    (
                        reason.clone(),
                        ReasonSumsResponse {
                            count: sums.count,
                            amount: Amount::of(sums.amount),
                        },
                    )
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundReportRow {
    /// The bucket: its first day (`2026-11-23`) for time groupings, a service, provider
    /// or account id, or a refund reason. Orders of services without a provider are `none`.
    pub group: String,
    /// For people: the date, `2026-W48`, `2026-11`, a service or account name, a reason.
    pub label: String,
    /// Time groupings: where the bucket starts in UTC, within the window; null otherwise.
    pub start: Option<DateTime<Utc>>,
    /// Time groupings: where the bucket ends in UTC (exclusive), within the window; null otherwise.
    pub end: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub metrics: RefundReportMetrics,
}

/// A refund report. Rows and totals are by **order date**: each covers the orders
/// placed in its bucket and every succeeded refund of those orders, whenever it came.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundReportResponse {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: ReportGroup,
    /// The offset time buckets are cut in, `UTC` or `±HH:MM`.
    #[schema(example = "+03:00")]
    pub timezone: String,
    /// The one account the report covers; null for an operator's report over all accounts.
    #[schema(value_type = Option<i64>)]
    pub account_id: Option<AccountId>,
    /// Refund requests awaiting an operator's review now, of the accounts covered
    /// (not limited to the window).
    pub pending_review_count: i64,
    pub rows: Vec<RefundReportRow>,
    pub totals: RefundReportMetrics,
}

/// Your refund report: orders, charges and refunds of your own orders, grouped.
#[utoipa::path(
    tag = "reports",
    security(("bearer" = [])),
    params(RefundReportQuery),
    responses(
        (status = 200, description = "The report, as JSON or (with `format=csv` or `Accept: text/csv`) as RFC 4180 CSV with a header row and a final `total` row", content(
            (RefundReportResponse = "application/json"),
            (String = "text/csv"),
        )),
    )
)]
#[get("/v1/reports/refunds")]
pub async fn find_refund_report(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<RefundReportQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::ReportsRead)?;
    if query.0.group_by == Some(ReportGroup::Account) {
        return Err(ApiError::invalid(
            "group_by",
            "`account` is for operators; your report covers your own account",
        ));
    }
    let account_id = caller.account_id;
    refund_report(
        &req,
        state,
        query.0.into(),
        ReportScope::Account(account_id),
    )
    .await
}

/// The refund report over every account (or one, with `account_id`), for operators.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(AdminRefundReportQuery),
    responses(
        (status = 200, description = "The report, as JSON or (with `format=csv` or `Accept: text/csv`) as RFC 4180 CSV with a header row and a final `total` row", content(
            (RefundReportResponse = "application/json"),
            (String = "text/csv"),
        )),
    )
)]
#[get("/v1/admin/reports/refunds")]
pub async fn find_admin_refund_report(
    req: HttpRequest,
    state: web::Data<AppState>,
    _admin: Admin,
    query: ApiQuery<AdminRefundReportQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = match query.0.account_id {
        Some(id) => ReportScope::Account(id),
        None => ReportScope::All,
    };
    refund_report(&req, state, query.0, scope).await
}

/// Reads the window, grouping and format; every failing parameter is reported at once.
pub(super) fn parse_params(
    req: &HttpRequest,
    query: &AdminRefundReportQuery,
) -> Result<(Window, ReportGroup, ReportFormat), ApiError> {
    let mut errors = Vec::new();
    let offset = match query.timezone.as_deref().map(parse_timezone) {
        None => Some(chrono::Offset::fix(&chrono::Utc)),
        Some(Ok(offset)) => Some(offset),
        Some(Err(message)) => {
            errors.push(crate::domain::FieldError::new("timezone", message));
            None
        }
    };
    let offset = offset.unwrap_or_else(|| chrono::Offset::fix(&chrono::Utc));
    let mut bound = |field: &'static str, raw: Option<&str>| -> Option<Option<NaiveDateTime>> {
        match raw.map(|raw| parse_bound(raw, offset)) {
            None => Some(None),
            Some(Ok(at)) => Some(Some(at)),
            Some(Err(message)) => {
                errors.push(crate::domain::FieldError::new(field, message));
                None
            }
        }
    };
    let from = bound("from", query.from.as_deref());
    let to = bound("to", query.to.as_deref());
    if !errors.is_empty() {
        return Err(errors.into());
    }
    // The window is half-open and shown in whole seconds: the end of the current second
    // is the first whole-second bound that still counts an order placed just now.
    let to = to
        .flatten()
        .unwrap_or_else(|| Utc::now().naive_utc().trunc_subsecs(0) + Duration::seconds(1));
    let from = from
        .flatten()
        .unwrap_or_else(|| to - Duration::days(DEFAULT_WINDOW_DAYS));
    let window = Window::new(from, to, offset)
        .map_err(|(param, message)| ApiError::invalid(param, message))?;
    let format = query.format.unwrap_or_else(|| {
        let wants_csv = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| {
                accept
                    .split(',')
                    .any(|part| part.trim().to_ascii_lowercase().starts_with("text/csv"))
            });
        if wants_csv {
            ReportFormat::Csv
        } else {
            ReportFormat::Json
        }
    });
    Ok((window, query.group_by.unwrap_or(ReportGroup::Day), format))
}

pub(super) fn format_offset(window: &Window) -> String {
    let minutes = window.offset_minutes();
    if minutes == 0 {
        "UTC".into()
    } else {
        let sign = if minutes < 0 { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60)
    }
}

async fn refund_report(
    req: &HttpRequest,
    state: web::Data<AppState>,
    query: AdminRefundReportQuery,
    scope: ReportScope,
) -> Result<HttpResponse, ApiError> {
    let (window, group, format) = parse_params(req, &query)?;
    let (summary, labels, pending) = state
        .db(move |conn| {
            let (orders, refunds) = reports::sums(conn, group, &window, scope)?;
            let summary = summarize(group, orders, refunds);
            let ids: Vec<i64> = summary
                .rows
                .iter()
                .filter_map(|r| r.key.parse().ok())
                .collect();
            let labels: HashMap<String, String> = match group {
                ReportGroup::Service => reports::service_names(conn, &ids)?,
                ReportGroup::Account => reports::account_names(conn, &ids)?,
                ReportGroup::Provider => reports::provider_names(conn, &ids)?,
                _ => Vec::new(),
            }
            .into_iter()
            .map(|(id, name)| (id.to_string(), name))
            .collect();
            let pending = reports::pending_review_count(conn, scope)?;
            Ok((summary, labels, pending))
        })
        .await?;
    let report = render(&window, group, scope, summary, &labels, pending);
    match format {
        ReportFormat::Json => Ok(HttpResponse::Ok().json(report)),
        ReportFormat::Csv => {
            let body = to_csv(&report).map_err(ApiError::internal)?;
            let stamp = |at: DateTime<Utc>| at.format("%Y%m%dT%H%M%SZ").to_string();
            let filename = format!(
                "refunds-{}-{}-{}.csv",
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

fn render(
    window: &Window,
    group: ReportGroup,
    scope: ReportScope,
    summary: Summary,
    labels: &HashMap<String, String>,
    pending: i64,
) -> RefundReportResponse {
    let rows = summary
        .rows
        .iter()
        .map(|row| {
            let bounds = window.bucket_bounds(group, &row.key);
            let label = match group {
                ReportGroup::Day | ReportGroup::Week | ReportGroup::Month => {
                    time_label(group, &row.key)
                }
                ReportGroup::Reason => reason_label(&row.key),
                ReportGroup::Provider if row.key == NO_PROVIDER => "No provider".into(),
                ReportGroup::Provider => labels
                    .get(&row.key)
                    .cloned()
                    .unwrap_or_else(|| format!("Provider {}", row.key)),
                ReportGroup::Service => labels
                    .get(&row.key)
                    .cloned()
                    .unwrap_or_else(|| format!("Service {}", row.key)),
                ReportGroup::Account => labels
                    .get(&row.key)
                    .cloned()
                    .unwrap_or_else(|| format!("Account {}", row.key)),
            };
            RefundReportRow {
                group: row.key.clone(),
                label,
                start: bounds.map(|(start, _)| utc(start)),
                end: bounds.map(|(_, end)| utc(end)),
                metrics: (&row.metrics).into(),
            }
        })
        .collect();
    RefundReportResponse {
        from: utc(window.from),
        to: utc(window.to),
        group_by: group,
        timezone: format_offset(window),
        account_id: match scope {
            ReportScope::Account(id) => Some(id),
            ReportScope::All => None,
        },
        pending_review_count: pending,
        rows,
        totals: (&summary.totals).into(),
    }
}

/// The fixed columns of the CSV form; one `<reason>_count` and `<reason>_amount` pair
/// follows for every reason that occurs in the report.
pub const CSV_COLUMNS: [&str; 11] = [
    "group",
    "label",
    "start",
    "end",
    "orders_count",
    "charged_amount",
    "refunded_orders_count",
    "refunds_count",
    "refunded_amount",
    "refund_rate_count",
    "refund_rate_amount",
];

pub(super) fn rfc3339(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The CSV writer of every export: RFC 4180, CRLF line ends, fields quoted when they hold
/// a comma, quote, CR or LF, quotes doubled. Each cell goes through `spreadsheet_safe`.
pub fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new())
}

/// RFC 4180: CRLF line ends, fields quoted when they hold a comma, quote, CR or LF, quotes
/// doubled; every cell guarded against spreadsheet formula injection; times in UTC.
fn to_csv(report: &RefundReportResponse) -> Result<Vec<u8>, csv::Error> {
    let reasons: BTreeSet<&String> = report.totals.by_reason.keys().collect();
    let mut writer = csv_writer();
    let mut header: Vec<String> = CSV_COLUMNS.iter().map(|c| c.to_string()).collect();
    for reason in &reasons {
        header.push(format!("{reason}_count"));
        header.push(format!("{reason}_amount"));
    }
    writer.write_record(&header)?;
    let mut record = |group: &str,
                      label: &str,
                      start: Option<DateTime<Utc>>,
                      end: Option<DateTime<Utc>>,
                      m: &RefundReportMetrics|
     -> Result<(), csv::Error> {
        let mut cells = vec![
            group.to_string(),
            label.to_string(),
            rfc3339(start),
            rfc3339(end),
            m.orders_count.to_string(),
            m.charged_amount.0.clone(),
            m.refunded_orders_count.to_string(),
            m.refunds_count.to_string(),
            m.refunded_amount.0.clone(),
            m.refund_rate_count.clone(),
            m.refund_rate_amount.clone(),
        ];
        for reason in &reasons {
            match m.by_reason.get(*reason) {
                Some(sums) => {
                    cells.push(sums.count.to_string());
                    cells.push(sums.amount.0.clone());
                }
                None => {
                    cells.push("0".into());
                    cells.push("0".into());
                }
            }
        }
        writer.write_record(cells.iter().map(|c| spreadsheet_safe(c).into_owned()))
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
