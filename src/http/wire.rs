//! Shapes shared by many endpoints on the wire: money amounts, times, pages of lists.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::money::{Money, Percent};
use crate::error::ApiError;
pub use crate::resources::{utc, Amount};

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

/// Parses a percentage field (a markup) by the rules of a money field, recording a field
/// error instead of failing on the first.
pub fn parse_percent(
    field: &'static str,
    raw: &str,
    errors: &mut Vec<crate::domain::FieldError>,
) -> Option<Percent> {
    match Percent::parse(raw) {
        Ok(percent) => Some(percent),
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
