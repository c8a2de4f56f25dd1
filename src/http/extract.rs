//! Request extractors whose failures are problem documents naming the field at fault.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::http::state::AppState;

/// A JSON body: `application/json`, within the size limit, no unknown fields. Failures
/// become problem documents naming the field at fault.
pub struct ApiJson<T, S: BodySize = AnyBody> {
    pub value: T,
    /// The body as parsed, for idempotency fingerprints.
    pub raw: serde_json::Value,
    size: std::marker::PhantomData<S>,
}

/// The limit where the app's state is missing (never in the server; a bare test app).
const FALLBACK_LIMIT: usize = 65_536;

/// How large a body an endpoint reads.
pub trait BodySize {
    fn limit(config: &Config) -> usize;
}

/// Any request body: `--max-body-bytes`.
pub struct AnyBody;

impl BodySize for AnyBody {
    fn limit(config: &Config) -> usize {
        config.max_body_bytes
    }
}

/// An order's body, which may carry two full lists: `--max-order-body-bytes`.
pub struct OrderBody;

impl BodySize for OrderBody {
    fn limit(config: &Config) -> usize {
        config.max_order_body_bytes
    }
}

/// A mass order's body: `--max-batch-body-bytes`.
pub struct BatchBody;

impl BodySize for BatchBody {
    fn limit(config: &Config) -> usize {
        config.max_batch_body_bytes
    }
}

/// [`ApiJson`] for an order's body.
pub type OrderJson<T> = ApiJson<T, OrderBody>;

impl<T: DeserializeOwned + 'static, S: BodySize + 'static> FromRequest for ApiJson<T, S> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<ApiJson<T, S>, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(FALLBACK_LIMIT, |state| S::limit(&state.config));
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
        let payload = web::Payload::from_request(req, payload);
        Box::pin(async move {
            let payload = payload.await.map_err(|_| ApiError::Refused {
                code: ErrorCode::UnreadableBody,
                detail: "the request body could not be read".into(),
            })?;
            let bytes = match payload.to_bytes_limited(limit).await {
                Ok(Ok(bytes)) => bytes,
                Err(_) => {
                    return Err(ApiError::PayloadTooLarge(format!(
                        "the request body is larger than allowed ({limit} bytes)"
                    )))
                }
                Ok(Err(_)) => {
                    return Err(ApiError::Refused {
                        code: ErrorCode::UnreadableBody,
                        detail: "the request body could not be read".into(),
                    })
                }
            };
            // No body at all stands for `{}`, so calls whose fields are all optional need none;
            // anything else, whitespace included, must be JSON.
            let raw: serde_json::Value = if bytes.is_empty() {
                serde_json::Value::Object(Default::default())
            } else if !is_json {
                return Err(ApiError::UnsupportedMediaType(
                    "send the body as `Content-Type: application/json`".into(),
                ));
            } else {
                parse_strict(&bytes)?
            };
            // Every request body is an object; serde would also take a struct from an array.
            if !raw.is_object() {
                return Err(ApiError::Invalid {
                    code: ErrorCode::ValidationFailed,
                    detail: "the body must be a JSON object".into(),
                    param: None,
                });
            }
            let raw = integral_numbers_as_integers(raw);
            let value = serde_path_to_error::deserialize(&raw).map_err(|e| {
                let (param, inner) = field_at_fault(e);
                ApiError::Invalid {
                    code: ErrorCode::ValidationFailed,
                    detail: inner,
                    param,
                }
            })?;
            Ok(ApiJson {
                value,
                raw,
                size: std::marker::PhantomData,
            })
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
                let (param, inner) = field_at_fault(e);
                ApiError::Invalid {
                    code: ErrorCode::InvalidQuery,
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

/// Parses a JSON body, refusing an object that names a key twice: `{"quantity":100,
/// "quantity":100000}` is not a request we can read one way only (a proxy in front of us
/// may read the first, serde the last), so it is refused with the key at fault (422).
fn parse_strict(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    read_strict(bytes).map_err(|e| match e {
        StrictJsonError::Repeated(key) => ApiError::Invalid {
            code: ErrorCode::ValidationFailed,
            detail: format!("the field `{key}` appears more than once in the body"),
            param: Some(key),
        },
        StrictJsonError::Malformed(e) => ApiError::Refused {
            code: ErrorCode::MalformedJson,
            detail: format!("the body is not valid JSON: {e}"),
        },
    })
}

/// Why [`read_strict`] refused a body.
#[derive(Debug)]
pub enum StrictJsonError {
    /// Well-formed JSON whose object names this key twice.
    Repeated(String),
    /// Not JSON (serde_json's message).
    Malformed(String),
}

/// Parses JSON like `serde_json::from_slice::<Value>`, except that an object naming a key
/// twice is refused (serde_json keeps the last): every API reads each field one way only.
pub fn read_strict(bytes: &[u8]) -> Result<serde_json::Value, StrictJsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde::Deserialize::deserialize(&mut de).and_then(|Strict(value)| {
        de.end()?;
        Ok(value)
    });
    parsed.map_err(|e| match e.classify() {
        // Only `Strict` raises data errors: the JSON is well formed, a key repeats.
        serde_json::error::Category::Data => {
            let key = e.to_string();
            StrictJsonError::Repeated(key.split('`').nth(1).unwrap_or_default().to_string())
        }
        _ => StrictJsonError::Malformed(e.to_string()),
    })
}

/// A JSON value read like `serde_json::Value`, except that an object naming a key twice is
/// an error (serde_json keeps the last).
struct Strict(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Strict, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<serde_json::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E>(self, v: &str) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_none<E>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<serde_json::Value, D::Error> {
        serde::Deserialize::deserialize(deserializer).map(|Strict(v)| v)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<serde_json::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<serde_json::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key `{key}`"
                )));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// JSON has one number type, and JSON Schema counts `100.0` (or `1e2`) as the integer 100:
/// a generated client may send either for an `integer` field. Such numbers become integers
/// before typed parsing, so `quantity: 100.0` means 100 while `100.5` is still refused.
/// Money is never a JSON number, so no amount is affected.
fn integral_numbers_as_integers(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    /// Integers up to 2^53 are exact in a double; beyond that `1e300` is no integer we take.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() <= EXACT => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(integral_numbers_as_integers)
                .collect(),
        ),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, integral_numbers_as_integers(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The field a deserialization error is about, and serde's message.
fn field_at_fault<E: std::fmt::Display>(
    error: serde_path_to_error::Error<E>,
) -> (Option<String>, String) {
    let path = error.path().to_string();
    let inner = error.into_inner().to_string();
    let param = if path == "." {
        // serde names missing and unknown fields in its message.
        inner.split('`').nth(1).map(str::to_string)
    } else {
        Some(path)
    };
    (param, inner)
}
