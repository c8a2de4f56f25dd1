//! The audit log for operators: who changed what, when, from where. Read only: nothing in
//! the API edits or deletes an entry.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::reports::{csv_writer, ReportFormat};
use crate::db::audit::{self, ActorFilter, AuditFilter};
use crate::domain::account::Role;
use crate::domain::audit::{ActorKind, AuditAction, AuditEntry, AuditTarget};
use crate::domain::ids::AccountId;
use crate::domain::report::{parse_bound, parse_timezone, spreadsheet_safe};
use crate::domain::FieldError;
use crate::error::ApiError;
use crate::http::auth::Admin;
use crate::http::extract::ApiQuery;
use crate::http::state::AppState;
use crate::http::wire::{page_limit, page_response, utc};

/// Who made a change.
#[derive(Serialize, ToSchema)]
pub struct AuditActorResponse {
    /// `operator` (through the API) or `cli` (the command line on the server).
    pub kind: ActorKind,
    /// The operator's account; null for `cli`.
    #[schema(value_type = Option<i64>)]
    pub account_id: Option<AccountId>,
    /// The API key the operator's token was issued from; null for `cli`.
    #[schema(value_type = Option<i64>)]
    pub api_key_id: Option<i64>,
    pub role: Option<Role>,
}

/// What a change was about.
#[derive(Serialize, ToSchema)]
pub struct AuditTargetResponse {
    #[serde(rename = "type")]
    pub target_type: AuditTarget,
    /// Null for an object of which there is one (`master_key`, `signing_key`).
    pub id: Option<i64>,
}

/// One entry of the audit log.
#[derive(Serialize, ToSchema)]
pub struct AuditEntryResponse {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub actor: AuditActorResponse,
    /// The client's address; null for `cli`.
    pub client_addr: Option<String>,
    /// The request's `X-Request-Id`; null for `cli`.
    pub request_id: Option<String>,
    pub action: AuditAction,
    pub target: AuditTargetResponse,
    /// The account the change concerns (the target's owner), when there is one.
    #[schema(value_type = Option<i64>)]
    pub account_id: Option<AccountId>,
    /// The changed fields as they were; null for a creation.
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// The changed fields as they became; null for a deletion.
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    /// Secrets the change set or replaced (`key`, `api_key`, `secret`, `master_key`),
    /// named only: their values are never recorded.
    pub secrets: Vec<String>,
}

impl From<AuditEntry> for AuditEntryResponse {
    fn from(entry: AuditEntry) -> AuditEntryResponse {
        AuditEntryResponse {
            id: entry.id.get(),
            created_at: utc(entry.created_at),
            actor: AuditActorResponse {
                kind: entry.actor.kind,
                account_id: entry.actor.account_id,
                api_key_id: entry.actor.api_key_id.map(|id| id.get()),
                role: entry.actor.role,
            },
            client_addr: entry.actor.client_addr,
            request_id: entry.actor.request_id,
            action: entry.action,
            target: AuditTargetResponse {
                target_type: entry.target_type,
                id: entry.target_id,
            },
            account_id: entry.account_id,
            before: entry.before,
            after: entry.after,
            secrets: entry.secrets,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListAuditQuery {
    /// `cli`, or the account id of the operator who acted.
    #[param(pattern = "^(cli|[1-9][0-9]{0,18})$", example = "cli")]
    pub actor: Option<String>,
    #[param(value_type = Option<AuditAction>)]
    pub action: Option<AuditAction>,
    /// The kind of object changed; with `target_id`, one object's history.
    #[param(value_type = Option<AuditTarget>)]
    pub target_type: Option<AuditTarget>,
    /// The changed object's id (needs `target_type`).
    pub target_id: Option<i64>,
    /// Changes concerning this account: its own, and its keys', top-ups', orders' and
    /// refunds'.
    #[param(value_type = Option<i64>)]
    pub account_id: Option<AccountId>,
    /// Entries at or after this time: an RFC 3339 time, or a date (`2026-11-01`) meaning
    /// its midnight in `timezone`.
    pub from: Option<String>,
    /// Entries before this time, in the same forms.
    pub to: Option<String>,
    /// How date bounds are read: `UTC` (the default) or a fixed offset such as `+03:00`.
    #[param(value_type = Option<crate::http::input::TimeZone>, inline)]
    pub timezone: Option<String>,
    /// Page size, 1 to 100 (default 20). A CSV export ignores it and holds up to 10000
    /// entries, with a `Link: rel="next"` header when more follow.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Return entries older than this entry id.
    pub starting_after: Option<i64>,
    /// `json` (the default) or `csv`; without it, `Accept: text/csv` asks for CSV.
    #[param(inline)]
    pub format: Option<ReportFormat>,
}

/// Entries in one CSV export at most.
const CSV_ROWS: i64 = 10_000;

/// The audit log, newest first: every operator's and the CLI's writes, with who, when,
/// from where, and the fields before and after. Operators only; nothing edits it.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(ListAuditQuery),
    responses(
        (status = 200, description = "A page of entries, or (with `format=csv` or `Accept: text/csv`) a formula-safe RFC 4180 CSV export of up to 10000", content(
            (crate::http::wire::Page<AuditEntryResponse> = "application/json"),
            (String = "text/csv"),
        )),
    )
)]
#[get("/v1/admin/audit")]
pub async fn list_audit(
    req: HttpRequest,
    state: web::Data<AppState>,
    _admin: Admin,
    query: ApiQuery<ListAuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    let (filter, csv) = parse_query(&req, &query)?;
    let page = page_limit(query.limit)?;
    let limit = if csv { CSV_ROWS } else { page };
    let rows = state
        .db(move |conn| Ok(audit::list(conn, &filter, limit + 1)?))
        .await?;
    if !csv {
        return Ok(page_response(
            &req,
            rows,
            limit,
            |e| e.id.get(),
            AuditEntryResponse::from,
        ));
    }
    let mut rows: Vec<AuditEntryResponse> = rows.into_iter().map(Into::into).collect();
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let body = to_csv(&rows).map_err(ApiError::internal)?;
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"audit.csv\"",
        ));
    if let (true, Some(last)) = (more, rows.last()) {
        let mut pairs: Vec<(String, String)> =
            form_urlencoded::parse(req.query_string().as_bytes())
                .into_owned()
                .filter(|(k, _)| k != "starting_after")
                .collect();
        pairs.push(("starting_after".into(), last.id.to_string()));
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        if let Ok(value) =
            HeaderValue::from_str(&format!("<{}?{}>; rel=\"next\"", req.path(), encoded))
        {
            response.insert_header((header::LINK, value));
        }
    }
    Ok(response.body(body))
}

/// Reads the filters; every failing parameter is reported at once.
fn parse_query(req: &HttpRequest, query: &ListAuditQuery) -> Result<(AuditFilter, bool), ApiError> {
    let mut errors = Vec::new();
    // Exactly the spec's pattern: `cli`, or an id without sign, spaces or leading zeros.
    let actor = match query.actor.as_deref() {
        None => None,
        Some("cli") => Some(ActorFilter::Cli),
        Some(raw) => match raw.parse::<i64>() {
            Ok(id)
                if id > 0 && !raw.starts_with('0') && raw.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(ActorFilter::Account(AccountId(id)))
            }
            _ => {
                errors.push(FieldError::new(
                    "actor",
                    "must be `cli` or an operator's account id",
                ));
                None
            }
        },
    };
    if query.target_id.is_some() && query.target_type.is_none() {
        errors.push(FieldError::new("target_id", "needs `target_type`"));
    }
    let offset = match query.timezone.as_deref().map(parse_timezone) {
        None => chrono::Offset::fix(&Utc),
        Some(Ok(offset)) => offset,
        Some(Err(message)) => {
            errors.push(FieldError::new("timezone", message));
            chrono::Offset::fix(&Utc)
        }
    };
    let mut bound = |field: &'static str, raw: Option<&str>| -> Option<NaiveDateTime> {
        match raw.map(|raw| parse_bound(raw, offset)) {
            Some(Ok(at)) => Some(at),
            Some(Err(message)) => {
                errors.push(FieldError::new(field, message));
                None
            }
            None => None,
        }
    };
    let from = bound("from", query.from.as_deref());
    let to = bound("to", query.to.as_deref());
    if let (Some(from), Some(to)) = (from, to) {
        if from >= to {
            errors.push(FieldError::new("to", "must be later than `from`"));
        }
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let csv = match query.format {
        Some(format) => format == ReportFormat::Csv,
        None => req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| {
                accept
                    .split(',')
                    .any(|part| part.trim().to_ascii_lowercase().starts_with("text/csv"))
            }),
    };
    Ok((
        AuditFilter {
            actor,
            action: query.action,
            target_type: query.target_type,
            target_id: query.target_id,
            account_id: query.account_id,
            created_from: from,
            created_to: to,
            starting_after: query.starting_after,
        },
        csv,
    ))
}

/// The columns of the CSV export.
pub const CSV_COLUMNS: [&str; 15] = [
    "id",
    "created_at",
    "actor_kind",
    "actor_account_id",
    "actor_api_key_id",
    "actor_role",
    "client_addr",
    "request_id",
    "action",
    "target_type",
    "target_id",
    "account_id",
    "before",
    "after",
    "secrets",
];

/// The reports' CSV form: every cell guarded against spreadsheet formula injection (a
/// client's request id or an account's name can start with `=`); times in UTC.
fn to_csv(rows: &[AuditEntryResponse]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv_writer();
    writer.write_record(CSV_COLUMNS)?;
    let text = |v: Option<String>| v.unwrap_or_default();
    let json =
        |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
    for row in rows {
        let cells = [
            row.id.to_string(),
            row.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            row.actor.kind.to_string(),
            text(row.actor.account_id.map(|id| id.to_string())),
            text(row.actor.api_key_id.map(|id| id.to_string())),
            text(row.actor.role.map(|r| r.to_string())),
            text(row.client_addr.clone()),
            text(row.request_id.clone()),
            row.action.to_string(),
            row.target.target_type.to_string(),
            text(row.target.id.map(|id| id.to_string())),
            text(row.account_id.map(|id| id.to_string())),
            json(&row.before),
            json(&row.after),
            row.secrets.join(","),
        ];
        writer.write_record(cells.iter().map(|c| spreadsheet_safe(c).into_owned()))?;
    }
    writer.flush()?;
    writer.into_inner().map_err(|e| e.into_error().into())
}
