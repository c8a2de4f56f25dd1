//! What API v2 clients send, read the way they send it: `GET` or `POST`, fields in the
//! query string and in the body (form, JSON or multipart; a missing or odd content type is
//! read as a form), with the placeholders sample code leaves in omitted fields dropped.
//! See docs/API-V2-DIALECTS.md, "What clients send".

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use serde_json::Value;

use crate::http::extract::{read_strict, StrictJsonError};

/// The fields of one call, by name, each sent once (or with one value in the query string
/// and the body).
pub type Fields = HashMap<String, String>;

/// Why a request could not be read; the text is the dialect's error.
pub const UNREADABLE: &str = "Incorrect request";
pub const TOO_LARGE: &str = "Request body too large";

/// A field the call names twice: in the query string, or in the body, twice; or in both
/// with different values. Anything in front of us that reads the first value would see
/// another request than the one we run, so it is refused. (The same value in the query
/// string and the body is how many clients send every call: that is one field.)
fn sent_twice(name: &str) -> String {
    format!("Incorrect request: the field {name} is sent twice")
}

/// Reads every field of the call, the body bounded by `limit` bytes; the error is the
/// dialect's text.
pub async fn read_fields(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Fields, String> {
    let body = match payload.to_bytes_limited(limit).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return Err(UNREADABLE.into()),
        Err(_) => return Err(TOO_LARGE.into()),
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let query: Vec<(String, String)> = form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let lower = content_type.to_ascii_lowercase();
    let looks_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let body: Vec<(String, String)> = if lower.starts_with("multipart/") {
        multipart_fields(&content_type, body)
            .await
            .ok_or(UNREADABLE)?
    } else if lower.contains("json") || (looks_json && !lower.contains("form-urlencoded")) {
        json_fields(&body)?
    } else {
        form_urlencoded::parse(&body).into_owned().collect()
    };
    let mut fields = one_each(query)?;
    for (name, value) in one_each(body)? {
        match fields.get(&name) {
            Some(earlier) if *earlier != value => return Err(sent_twice(&name)),
            _ => {
                fields.insert(name, value);
            }
        }
    }
    Ok(fields)
}

/// The meaningful fields of one source (the query string or the body), refusing a name
/// that comes twice.
fn one_each(pairs: Vec<(String, String)>) -> Result<Fields, String> {
    let mut fields = Fields::with_capacity(pairs.len());
    let mut seen = std::collections::HashSet::with_capacity(pairs.len());
    for (name, value) in pairs {
        if !seen.insert(name.clone()) {
            return Err(sent_twice(&name));
        }
        if let Some((name, value)) = meaningful((name, value)) {
            fields.insert(name, value);
        }
    }
    Ok(fields)
}

/// Drops what stands for "not given": an empty value, `None`, `undefined`, `null`.
fn meaningful((name, value): (String, String)) -> Option<(String, String)> {
    let trimmed = value.trim();
    let placeholder = ["none", "undefined", "null"]
        .iter()
        .any(|p| trimmed.eq_ignore_ascii_case(p));
    if trimmed.is_empty() || placeholder {
        return None;
    }
    // Lists keep their inner line breaks; every other field is one token.
    let is_list = crate::domain::order_fields::OrderField::parse(&name)
        .is_some_and(|f| f.shape() == crate::domain::order_fields::FieldShape::List);
    let value = if is_list { value } else { trimmed.to_string() };
    Some((name, value))
}

/// A JSON object's fields; numbers and booleans become their text.
fn json_fields(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let object = match read_strict(body) {
        Ok(Value::Object(object)) => object,
        Ok(_) | Err(StrictJsonError::Malformed(_)) => return Err(UNREADABLE.into()),
        Err(StrictJsonError::Repeated(name)) => return Err(sent_twice(&name)),
    };
    Ok(object
        .into_iter()
        .filter_map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => u8::from(b).to_string(),
                _ => return None,
            };
            Some((k, text))
        })
        .collect())
}

/// The text fields of a `multipart/form-data` body (already bounded in size).
async fn multipart_fields(content_type: &str, body: web::Bytes) -> Option<Vec<(String, String)>> {
    let boundary = multer::parse_boundary(content_type).ok()?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut fields = Vec::new();
    while let Some(field) = multipart.next_field().await.ok()? {
        let Some(name) = field.name().map(str::to_string) else {
            continue;
        };
        fields.push((name, field.text().await.ok()?));
    }
    Some(fields)
}

/// The action asked for, lower-cased; without one, the fields present say which call it
/// is, as in older copies of the example client.
pub fn action(fields: &Fields) -> String {
    if let Some(action) = fields.get("action") {
        return action.to_ascii_lowercase();
    }
    let inferred = [
        ("order", "refill"),
        ("orders", "refill"),
        ("refill", "refill_status"),
        ("refills", "refill_status"),
    ]
    .into_iter()
    .find(|(field, _)| fields.contains_key(*field));
    inferred.map(|(_, a)| a.to_string()).unwrap_or_default()
}

/// The ids asked about under a singular or plural name (`order`/`orders`,
/// `refill`/`refills`): `Some((raw, batch))`, batch when the plural was sent or the
/// singular holds a comma list.
pub fn ids<'a>(fields: &'a Fields, single: &str, plural: &str) -> Option<(&'a str, bool)> {
    if let Some(list) = fields.get(plural) {
        return Some((list.as_str(), true));
    }
    let one = fields.get(single)?;
    Some((one.as_str(), one.contains(',')))
}
