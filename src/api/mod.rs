//! HTTP: extract, authorize, parse into domain types, call the database, map errors.
//! Every route is mounted here, so the whole surface is one screen.

pub mod accounts;
pub mod api_keys;
pub mod api_v2;
pub mod dashboard;
pub mod ledger;
pub mod ops;
pub mod orders;
pub mod providers;
pub mod refund_standing;
pub mod refunds;
pub mod reports;
pub mod services;
pub mod tokens;
pub mod top_ups;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::money::{format_micros, Money};
use crate::error::ApiError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(ops::healthz)
        .service(ops::readyz)
        .service(ops::metrics)
        .service(ops::openapi_json)
        .service(tokens::create_token)
        .service(accounts::find_account)
        .service(accounts::create_account)
        .service(accounts::suspend_account)
        .service(accounts::reactivate_account)
        .service(refund_standing::find_refund_standing)
        .service(refund_standing::create_refund_allowlist)
        .service(refund_standing::delete_refund_allowlist)
        .service(api_keys::create_api_key)
        .service(api_keys::revoke_api_key)
        .service(ledger::list_ledger)
        .service(top_ups::create_top_up)
        .service(top_ups::refund_top_up)
        .service(top_ups::chargeback_top_up)
        .service(top_ups::succeed_refund)
        .service(top_ups::fail_refund)
        .service(services::list_services)
        .service(services::create_service)
        .service(services::update_service)
        .service(services::disable_service)
        // `/v1/orders/status` before `/v1/orders/{id}`.
        .service(orders::batch_order_status)
        .service(orders::find_order)
        .service(orders::list_orders)
        .service(orders::create_order)
        .service(orders::cancel_order)
        .service(orders::record_outcome)
        .service(refunds::create_dispute)
        .service(refunds::list_refunds)
        .service(refunds::find_refund)
        .service(refunds::list_admin_refunds)
        .service(refunds::approve_refund)
        .service(refunds::reject_refund)
        .service(providers::create_provider)
        .service(providers::list_providers)
        .service(providers::update_provider)
        .service(providers::find_forwarding)
        .service(providers::reconcile_forwarding)
        .service(api_v2::api_v2)
        .service(reports::find_refund_report)
        .service(reports::find_admin_refund_report)
        .service(dashboard::show_dashboard);
}

/// A JSON body: `application/json`, within the size limit, no unknown fields. Failures
/// become problem documents naming the field at fault.
pub struct ApiJson<T> {
    pub value: T,
    /// The body as parsed, for idempotency fingerprints.
    pub raw: serde_json::Value,
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<ApiJson<T>, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| {
                if e.as_response_error().status_code()
                    == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE
                {
                    ApiError::PayloadTooLarge("the request body is larger than allowed".into())
                } else {
                    ApiError::BadRequest {
                        code: "unreadable_body",
                        detail: "the request body could not be read".into(),
                    }
                }
            })?;
            // No body at all stands for `{}`, so calls whose fields are all optional need none;
            // anything else, whitespace included, must be JSON.
            let raw: serde_json::Value = if bytes.is_empty() {
                serde_json::Value::Object(Default::default())
            } else if !is_json {
                return Err(ApiError::UnsupportedMediaType(
                    "send the body as `Content-Type: application/json`".into(),
                ));
            } else {
                serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest {
                    code: "malformed_json",
                    detail: format!("the body is not valid JSON: {e}"),
                })?
            };
            // Every request body is an object; serde would also take a struct from an array.
            if !raw.is_object() {
                return Err(ApiError::Unprocessable {
                    code: "validation_failed",
                    detail: "the body must be a JSON object".into(),
                    param: None,
                });
            }
            let value = serde_path_to_error::deserialize(&raw).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                let param = if path == "." {
                    // serde names missing and unknown fields in its message.
                    inner.split('`').nth(1).map(str::to_string)
                } else {
                    Some(path)
                };
                ApiError::Unprocessable {
                    code: "validation_failed",
                    detail: inner,
                    param,
                }
            })?;
            Ok(ApiJson { value, raw })
        })
    }
}

/// Query parameters, with unknown ones refused and bad values named.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequest for ApiQuery<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<ApiQuery<T>, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pairs = form_urlencoded::parse(req.query_string().as_bytes());
        let deserializer = serde_urlencoded::Deserializer::new(pairs);
        let result = serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                let param = if path == "." {
                    inner.split('`').nth(1).map(str::to_string)
                } else {
                    Some(path)
                };
                ApiError::Unprocessable {
                    code: "invalid_query",
                    detail: match &param {
                        Some(p) => format!("query parameter `{p}`: {inner}"),
                        None => inner,
                    },
                    param,
                }
            });
        std::future::ready(result)
    }
}

/// A money amount on the wire: a decimal string, at most 6 fractional digits.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(value_type = String, pattern = r"^-?[0-9]+(\.[0-9]{1,6})?$", example = "12.5")]
pub struct Amount(pub String);

impl Amount {
    pub fn of(money: Money) -> Amount {
        Amount(money.to_string())
    }

    pub fn micros(micros: i64) -> Amount {
        Amount(format_micros(micros))
    }
}

/// Parses a money field, recording a field error instead of failing on the first.
pub fn parse_money(
    field: &'static str,
    raw: &str,
    errors: &mut Vec<crate::domain::FieldError>,
) -> Option<Money> {
    match Money::parse(raw) {
        Ok(money) => Some(money),
        Err(e) => {
            errors.push(crate::domain::FieldError::new(field, e.to_string()));
            None
        }
    }
}

/// Parses a money field that must be more than zero.
pub fn parse_positive_money(
    field: &'static str,
    raw: &str,
    errors: &mut Vec<crate::domain::FieldError>,
) -> Option<Money> {
    let money = parse_money(field, raw, errors)?;
    if money.is_zero() {
        errors.push(crate::domain::FieldError::new(
            field,
            "must be more than zero",
        ));
        return None;
    }
    Some(money)
}

/// Parses an optional money field that, when present, must be more than zero.
pub fn parse_optional_positive_money(
    field: &'static str,
    raw: Option<&str>,
    errors: &mut Vec<crate::domain::FieldError>,
) -> Option<Money> {
    raw.and_then(|raw| parse_positive_money(field, raw, errors))
}

/// Stored times are UTC; on the wire they are RFC 3339.
pub fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    at.and_utc()
}

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// The page size asked for, checked against 1..=100.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// A page of a list: `data`, whether more follow, and the cursor to ask for them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub data: Vec<T>,
    pub has_more: bool,
    /// Pass as `starting_after` to get the next page; null on the last page.
    pub next_cursor: Option<i64>,
}

/// Renders a page fetched with `limit + 1` rows, adding the `Link: rel="next"` header.
pub fn page_response<R, T: Serialize + ToSchema>(
    req: &HttpRequest,
    mut rows: Vec<R>,
    limit: i64,
    id_of: impl Fn(&R) -> i64,
    render: impl Fn(R) -> T,
) -> HttpResponse {
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if has_more {
        rows.last().map(&id_of)
    } else {
        None
    };
    let page = Page {
        data: rows.into_iter().map(render).collect(),
        has_more,
        next_cursor,
    };
    let mut response = HttpResponse::Ok();
    if let Some(cursor) = next_cursor {
        let mut query: Vec<(String, String)> =
            form_urlencoded::parse(req.query_string().as_bytes())
                .into_owned()
                .filter(|(k, _)| k != "starting_after")
                .collect();
        query.push(("starting_after".into(), cursor.to_string()));
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        if let Ok(value) =
            HeaderValue::from_str(&format!("<{}?{}>; rel=\"next\"", req.path(), encoded))
        {
            response.insert_header((header::LINK, value));
        }
    }
    response.json(page)
}
