//! The panel API v2 as upstream providers speak it: reading their replies, with every
//! variant `docs/API-V2-DIALECTS.md` lists. A reply that cannot be read with certainty is
//! `Unreadable`, and changes nothing.

use std::collections::HashMap;

use serde_json::Value;

use crate::domain::money::{Money, SignedMoney};
use crate::domain::order::OrderStatus;
use crate::domain::refill::{parse_refill_status, RefillStatus};
use crate::domain::service::{CatalogEntry, CatalogType};
use crate::domain::subscription::{parse_upstream_status, SubscriptionStatus};

/// A provider's status word, mapped to ours; anything else is kept verbatim and never
/// guessed at.
pub fn parse_status(raw: &str) -> Result<OrderStatus, String> {
    let folded: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .collect();
    match folded.as_str() {
        "pending" => Ok(OrderStatus::Pending),
        "processing" => Ok(OrderStatus::Processing),
        "inprogress" => Ok(OrderStatus::InProgress),
        "completed" | "complete" => Ok(OrderStatus::Completed),
        "partial" => Ok(OrderStatus::Partial),
        "canceled" | "cancelled" => Ok(OrderStatus::Canceled),
        _ => Err(raw.trim().to_string()),
    }
}

/// A count as providers send it: `"157"`, `157`, `"-12"`, `"+12"` (over-delivery),
/// `"1.0000"`; `null`, `""` and `"Unknown"` are unknown.
pub fn parse_count(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => {
            let s = s.trim();
            let (negative, digits) = match s.strip_prefix('+') {
                // "+N" means N delivered beyond the order: remains below zero.
                Some(rest) => (true, rest),
                None => (false, s),
            };
            let digits = digits
                .strip_suffix(".0000")
                .or_else(|| digits.strip_suffix(".00"))
                .or_else(|| digits.strip_suffix(".0"))
                .unwrap_or(digits);
            let n: i64 = digits.parse().ok()?;
            Some(if negative { -n } else { n })
        }
        _ => None,
    }
}

fn as_id(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => n.as_i64().map(|n| n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// A child order id in a subscription's `orders`: a positive whole number (as a number or
/// digits). Anything else (`"N/A"`, `"0"`, `"none"`) is provider text, never a child to
/// charge: the item is unreadable.
fn child_id(value: &Value) -> Option<String> {
    let id = match value {
        Value::Number(n) => n.as_u64()?.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    let positive = id.bytes().all(|b| b.is_ascii_digit()) && id.bytes().any(|b| b != b'0');
    positive.then_some(id)
}

/// Parses a body that may be pretty-printed, sent as text/html, or empty.
fn json(body: &str) -> Option<Value> {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return None;
    }
    serde_json::from_str(trimmed).ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddReply {
    /// The provider took the order under this id.
    Accepted(String),
    /// The provider said no, in words; it did not take the order.
    Rejected(String),
    /// Nothing certain could be read.
    Unreadable,
}

pub fn parse_add(body: &str) -> AddReply {
    let Some(value) = json(body) else {
        return AddReply::Unreadable;
    };
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        return AddReply::Rejected(error.to_string());
    }
    match value.get("order").and_then(as_id) {
        Some(id) => AddReply::Accepted(id),
        None => AddReply::Unreadable,
    }
}

/// Reads the reply to `action=refill`: `{"refill":"1"}` (or an integer id), an error in
/// words (`{"error":...}`, or `{"refill":{"error":...}}`), or nothing certain.
pub fn parse_refill(body: &str) -> AddReply {
    let Some(value) = json(body) else {
        return AddReply::Unreadable;
    };
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        return AddReply::Rejected(error.to_string());
    }
    let refill = value.get("refill");
    if let Some(error) = refill.and_then(|r| r.get("error")).and_then(Value::as_str) {
        return AddReply::Rejected(error.to_string());
    }
    match refill.and_then(as_id) {
        Some(id) => AddReply::Accepted(id),
        None => AddReply::Unreadable,
    }
}

/// What a provider says of one refill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefillItem {
    Known(RefillStatus),
    /// A status word we do not know: quarantined, never mapped to a default.
    UnknownStatus(String),
    /// A per-item error, such as `Refill not found`.
    Error(String),
}

fn refill_item(status: &Value) -> Option<RefillItem> {
    match status {
        Value::String(word) => Some(match parse_refill_status(word) {
            Ok(status) => RefillItem::Known(status),
            Err(word) => RefillItem::UnknownStatus(word),
        }),
        Value::Object(fields) => fields
            .get("error")
            .and_then(Value::as_str)
            .map(|error| RefillItem::Error(error.to_string())),
        _ => None,
    }
}

/// Reads the reply to `action=refill_status&refill=ID`: `{"status":"Completed"}` or
/// `{"error":...}`; `None` when nothing certain can be read.
pub fn parse_refill_status_one(body: &str) -> Option<RefillItem> {
    let value = json(body)?;
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        return Some(RefillItem::Error(error.to_string()));
    }
    refill_item(value.get("status")?)
}

/// Reads the reply to `action=refill_status&refills=1,2`:
/// `[{"refill":1,"status":"Completed"},{"refill":2,"status":{"error":"Refill not found"}}]`,
/// or an object keyed by refill id. `None` when the provider did not answer as a batch
/// (an error object, a single status): ask it one refill at a time.
pub fn parse_refill_status_batch(body: &str) -> Option<HashMap<String, RefillItem>> {
    let value = json(body)?;
    let mut items = HashMap::new();
    match &value {
        Value::Array(list) => {
            for entry in list {
                let (Some(id), Some(item)) = (
                    entry.get("refill").and_then(as_id),
                    entry.get("status").and_then(refill_item),
                ) else {
                    continue;
                };
                items.insert(id, item);
            }
        }
        Value::Object(fields)
            if !fields.contains_key("error") && !fields.contains_key("status") =>
        {
            for (id, entry) in fields {
                let item = entry
                    .get("status")
                    .and_then(refill_item)
                    .or_else(|| refill_item(entry));
                if let Some(item) = item {
                    items.insert(id.trim().to_string(), item);
                }
            }
        }
        _ => return None,
    }
    Some(items)
}

fn as_flag(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64() == Some(1),
        Value::String(s) => matches!(s.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"),
        _ => false,
    }
}

/// Reads the reply to `action=services`: a list of services with their id, name, type,
/// category, rate (per 1000; digits past the sixth rounded half-up), min, max and the
/// refill, cancel and dripfeed flags (`true`/`1`/`"1"`; refill and cancel `None` when the
/// key is absent, as many panels send them). An entry without an id, a rate
/// or its limits is left out; `None` when the reply is not a list.
pub fn parse_services(body: &str) -> Option<Vec<CatalogEntry>> {
    let value = json(body)?;
    let list = value.as_array()?;
    let mut entries = Vec::with_capacity(list.len());
    for item in list {
        let Some(id) = item.get("service").and_then(as_id) else {
            continue;
        };
        let rate = match item.get("rate") {
            Some(Value::String(s)) => s.trim().parse::<rust_decimal::Decimal>().ok(),
            Some(Value::Number(n)) => n.to_string().parse::<rust_decimal::Decimal>().ok(),
            _ => None,
        }
        .map(|d| d.round_dp_with_strategy(6, rust_decimal::RoundingStrategy::MidpointAwayFromZero))
        .and_then(SignedMoney::from_decimal_truncated)
        .and_then(SignedMoney::non_negative);
        let (Some(rate), Some(min), Some(max)) = (
            rate,
            item.get("min").and_then(parse_count),
            item.get("max").and_then(parse_count),
        ) else {
            continue;
        };
        let text = |name: &str| {
            item.get(name)
                .and_then(Value::as_str)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let type_word = text("type");
        let (kind, dripfeed_word) = CatalogType::read(&type_word);
        let description = ["desc", "description"]
            .into_iter()
            .map(text)
            .find(|d| !d.is_empty());
        entries.push(CatalogEntry {
            provider_service_id: id,
            name: text("name"),
            category: text("category"),
            kind,
            type_word,
            dripfeed: dripfeed_word || item.get("dripfeed").is_some_and(as_flag),
            description,
            rate,
            min_quantity: min,
            max_quantity: max,
            refill: item.get("refill").map(as_flag),
            cancel: item.get("cancel").map(as_flag),
        });
    }
    Some(entries)
}

/// Reads the reply to `action=balance`: `{"balance":"100.84292","currency":"USD"}` (the
/// balance as a string or a number, beside an extra `"status":"success"` or not) into
/// an amount, digits past the sixth dropped; `None` when there is no balance in it.
pub fn parse_balance(body: &str) -> Option<(SignedMoney, Option<String>)> {
    let value = json(body)?;
    let text = match value.get("balance")? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let amount: rust_decimal::Decimal = text.parse().ok()?;
    let balance = SignedMoney::from_decimal_truncated(amount)?;
    let currency = value
        .get("currency")
        .and_then(Value::as_str)
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    Some((balance, currency))
}

/// A provider's answer to cancelling one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelItem {
    /// `"cancel": 1` (or `true`, `"1"`): the provider will cancel it.
    Accepted,
    /// `"cancel": {"error": ...}` (or a bare error string): it will not.
    Refused(String),
}

fn cancel_item(value: &Value) -> Option<CancelItem> {
    match value {
        Value::Number(n) if n.as_i64() == Some(1) => Some(CancelItem::Accepted),
        Value::Bool(true) => Some(CancelItem::Accepted),
        Value::String(s) if s.trim() == "1" => Some(CancelItem::Accepted),
        Value::String(s) if !s.trim().is_empty() => Some(CancelItem::Refused(s.trim().to_string())),
        Value::Object(fields) => fields
            .get("error")
            .and_then(Value::as_str)
            .map(|e| CancelItem::Refused(e.to_string())),
        _ => None,
    }
}

/// What a provider's reply to `action=cancel&orders=...` says, as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelReply {
    /// One answer per provider order id it names.
    Items(HashMap<String, CancelItem>),
    /// One `{"error": ...}` about the request or its orders (a panel without cancel answers
    /// `This action is Invalid`): every order of the request is refused with these words.
    RefusedAll(String),
    /// One `{"error": ...}` about our account or the provider's state: nothing was decided,
    /// so the request is retried like a network failure.
    Failed(String),
}

/// Reads the reply to `action=cancel&orders=1,2`:
/// `[{"order":9,"cancel":{"error":"Incorrect order ID"}},{"order":2,"cancel":1}]`, or an
/// object keyed by order id; one item per provider order id it answers. A top-level
/// `{"error": ...}` refuses or fails the whole request by [`error_topic`]. `None` when the
/// reply cannot be read (HTML, an empty body, an error that is not words).
pub fn parse_cancel_batch(body: &str) -> Option<CancelReply> {
    let value = json(body)?;
    let mut items = HashMap::new();
    match &value {
        Value::Array(list) => {
            for entry in list {
                if let (Some(id), Some(item)) = (
                    entry.get("order").and_then(as_id),
                    entry.get("cancel").and_then(cancel_item),
                ) {
                    items.insert(id, item);
                }
            }
        }
        Value::Object(fields) if fields.contains_key("error") => {
            let words = fields.get("error").and_then(Value::as_str)?.trim();
            if words.is_empty() {
                return None;
            }
            return Some(match error_topic(words) {
                ErrorTopic::Request => CancelReply::RefusedAll(words.to_string()),
                ErrorTopic::Transient => CancelReply::Failed(words.to_string()),
            });
        }
        Value::Object(fields) => {
            for (id, entry) in fields {
                let item = entry
                    .get("cancel")
                    .and_then(cancel_item)
                    .or_else(|| cancel_item(entry));
                if let Some(item) = item {
                    items.insert(id.trim().to_string(), item);
                }
            }
        }
        _ => return None,
    }
    Some(CancelReply::Items(items))
}

/// What a provider's `{"error": ...}` words are about, which decides whether they refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorTopic {
    /// The request or its order (`This action is Invalid`, `Incorrect order ID`, `Order not
    /// eligible for refill.`, `Cancel is not available for this order`): a refusal, final,
    /// shown to the reseller in the provider's words.
    Request,
    /// Our account with the provider or the provider's own state (`Invalid API key`, `Not
    /// enough funds on balance`, rate limits, `temporarily unavailable`): asking again later
    /// may succeed, so it is retried like a network failure and never shown as a refusal.
    Transient,
}

/// The words that make an error about our account or the provider's state (matched in
/// lower case, anywhere in the text); any other error is about the request. The list
/// lives here, beside the dialect reference's "Error words" (docs/API-V2-DIALECTS.md),
/// and grows with what providers are seen to answer.
const TRANSIENT_ERROR_WORDS: &[&str] = &[
    "api key",
    "invalid key",
    "wrong key",
    "not enough funds",
    "insufficient funds",
    "insufficient balance",
    "low balance",
    "account is",
    "account has been",
    "banned",
    "suspended",
    "rate limit",
    "too many",
    "slow down",
    "temporarily",
    "unavailable",
    "maintenance",
    "try again",
    "later",
    "timeout",
    "timed out",
    "busy",
    "overloaded",
    "internal error",
    "server error",
];

/// Whether a provider's error words refuse the request or are worth asking again.
pub fn error_topic(words: &str) -> ErrorTopic {
    let folded = words.to_lowercase();
    if TRANSIENT_ERROR_WORDS.iter().any(|w| folded.contains(w)) {
        ErrorTopic::Transient
    } else {
        ErrorTopic::Request
    }
}

/// What a provider says of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusItem {
    Known {
        status: OrderStatus,
        remains: Option<i64>,
        start_count: Option<i64>,
        /// What the provider charges us for the order, in `currency` (digits past the
        /// sixth rounded half-up); `None` when absent, negative or unreadable.
        charge: Option<Money>,
        /// The reply's `currency`; `None` when absent (taken as the provider's configured one).
        currency: Option<String>,
    },
    /// A status word we do not know: quarantined, never mapped to a default.
    UnknownStatus(String),
    /// A per-item error, such as `Incorrect order ID`.
    Error(String),
}

fn status_item(value: &Value) -> Option<StatusItem> {
    match value {
        Value::String(error) => Some(StatusItem::Error(error.clone())),
        Value::Object(fields) => {
            if let Some(error) = fields.get("error").and_then(Value::as_str) {
                return Some(StatusItem::Error(error.to_string()));
            }
            let raw = fields.get("status").and_then(Value::as_str)?;
            Some(match parse_status(raw) {
                Ok(status) => StatusItem::Known {
                    status,
                    remains: fields.get("remains").and_then(parse_count),
                    start_count: fields.get("start_count").and_then(parse_count),
                    charge: fields.get("charge").and_then(parse_amount),
                    currency: fields
                        .get("currency")
                        .and_then(Value::as_str)
                        .map(|c| c.trim().to_ascii_uppercase())
                        .filter(|c| !c.is_empty()),
                },
                Err(word) => StatusItem::UnknownStatus(word),
            })
        }
        _ => None,
    }
}

/// An amount as providers send it (`"0.27819"`, `1.44`), digits past the sixth rounded
/// half-up; `None` when it is not a non-negative decimal.
pub fn parse_amount(value: &Value) -> Option<Money> {
    match value {
        Value::String(s) => s.trim().parse::<rust_decimal::Decimal>().ok(),
        Value::Number(n) => n.to_string().parse::<rust_decimal::Decimal>().ok(),
        _ => None,
    }
    .map(|d| d.round_dp_with_strategy(6, rust_decimal::RoundingStrategy::MidpointAwayFromZero))
    .and_then(SignedMoney::from_decimal_truncated)
    .and_then(SignedMoney::non_negative)
}

/// Reads a multi-status reply (`orders=1,2,3`) into one item per provider order id;
/// `None` when the reply as a whole cannot be read.
pub fn parse_multi_status(body: &str) -> Option<HashMap<String, StatusItem>> {
    let value = json(body)?;
    let object = value.as_object()?;
    if object.len() == 1 {
        if let Some(Value::String(_)) = object.get("error") {
            return None;
        }
    }
    let mut items = HashMap::new();
    for (id, item) in object {
        if let Some(item) = status_item(item) {
            items.insert(id.trim().to_string(), item);
        }
    }
    Some(items)
}

/// What a provider says of one of its subscriptions (`status` of the id its `add`
/// answered): `{"status":"Active","expiry":"31/12/2026","posts":"2","orders":[101,102]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionItem {
    Known {
        status: SubscriptionStatus,
        /// The child order ids it made so far (`orders`), in its order.
        children: Vec<String>,
    },
    /// A status word we do not know: quarantined, never mapped to a default; the children
    /// listed beside it are real all the same.
    UnknownStatus { word: String, children: Vec<String> },
    /// A per-item error, such as `Incorrect order ID`.
    Error(String),
}

fn subscription_item(value: &Value) -> Option<SubscriptionItem> {
    match value {
        Value::String(error) => Some(SubscriptionItem::Error(error.clone())),
        Value::Object(fields) => {
            if let Some(error) = fields.get("error").and_then(Value::as_str) {
                return Some(SubscriptionItem::Error(error.to_string()));
            }
            let raw = fields.get("status").and_then(Value::as_str)?;
            let children = match fields.get("orders") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(ids)) => ids.iter().map(child_id).collect::<Option<Vec<_>>>()?,
                // Some panels send the ids as one comma-separated string.
                Some(Value::String(ids)) => ids
                    .split(',')
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(|id| child_id(&Value::String(id.to_string())))
                    .collect::<Option<Vec<_>>>()?,
                Some(_) => return None,
            };
            Some(match parse_upstream_status(raw) {
                Ok(status) => SubscriptionItem::Known { status, children },
                Err(word) => SubscriptionItem::UnknownStatus { word, children },
            })
        }
        _ => None,
    }
}

/// Reads a multi-status reply about subscriptions (`orders=1,2`, keyed by id) into one
/// item per provider subscription id; `None` when the reply as a whole cannot be read. An
/// item whose `orders` list cannot be read is left out (asked again), never half-read.
pub fn parse_subscription_statuses(body: &str) -> Option<HashMap<String, SubscriptionItem>> {
    let value = json(body)?;
    let object = value.as_object()?;
    if object.len() == 1 {
        if let Some(Value::String(_)) = object.get("error") {
            return None;
        }
    }
    let mut items = HashMap::new();
    for (id, item) in object {
        if let Some(item) = subscription_item(item) {
            items.insert(id.trim().to_string(), item);
        }
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_in_every_spelling() {
        for (raw, status) in [
            ("In progress", OrderStatus::InProgress),
            ("in progress", OrderStatus::InProgress),
            ("In Progress", OrderStatus::InProgress),
            ("processing", OrderStatus::Processing),
            ("Cancelled", OrderStatus::Canceled),
            ("canceled", OrderStatus::Canceled),
            ("Partial", OrderStatus::Partial),
        ] {
            assert_eq!(parse_status(raw), Ok(status), "{raw}");
        }
        for raw in ["Refunded", "Active", "Awaiting", "Error", "Fail"] {
            assert_eq!(parse_status(raw), Err(raw.to_string()));
        }
    }

    #[test]
    fn counts_in_every_shape() {
        assert_eq!(parse_count(&Value::from("157")), Some(157));
        assert_eq!(parse_count(&Value::from(157)), Some(157));
        assert_eq!(parse_count(&Value::from("-12")), Some(-12));
        assert_eq!(parse_count(&Value::from("+12")), Some(-12));
        assert_eq!(parse_count(&Value::from("10.0000")), Some(10));
        assert_eq!(parse_count(&Value::from("Unknown")), None);
        assert_eq!(parse_count(&Value::Null), None);
    }

    #[test]
    fn refill_replies() {
        assert_eq!(
            parse_refill(r#"{"refill":"1"}"#),
            AddReply::Accepted("1".into())
        );
        assert_eq!(
            parse_refill(r#"{"refill":12}"#),
            AddReply::Accepted("12".into())
        );
        assert_eq!(
            parse_refill(r#"{"error":"Order not eligible for refill."}"#),
            AddReply::Rejected("Order not eligible for refill.".into())
        );
        assert_eq!(parse_refill("<html>500</html>"), AddReply::Unreadable);
        assert_eq!(
            parse_refill_status_one(r#"{"status":"In progress"}"#),
            Some(RefillItem::Known(RefillStatus::InProgress))
        );
        assert_eq!(
            parse_refill_status_one(r#"{"status":"Awaiting"}"#),
            Some(RefillItem::UnknownStatus("Awaiting".into()))
        );
        assert_eq!(
            parse_refill_status_one(r#"{"error":"Refill not found"}"#),
            Some(RefillItem::Error("Refill not found".into()))
        );
        assert_eq!(parse_refill_status_one(""), None);
        let batch = parse_refill_status_batch(
            r#"[{"refill":1,"status":"Completed"},{"refill":"2","status":{"error":"Refill not found"}}]"#,
        )
        .unwrap();
        assert_eq!(batch["1"], RefillItem::Known(RefillStatus::Completed));
        assert_eq!(batch["2"], RefillItem::Error("Refill not found".into()));
        let keyed = parse_refill_status_batch(r#"{"7":{"status":"rejected"}}"#).unwrap();
        assert_eq!(keyed["7"], RefillItem::Known(RefillStatus::Rejected));
        assert_eq!(parse_refill_status_batch(r#"{"status":"Completed"}"#), None);
        assert_eq!(
            parse_refill_status_batch(r#"{"error":"Incorrect request"}"#),
            None
        );
    }

    use crate::domain::service::ServiceType;

    #[test]
    fn services_replies() {
        let body = r#"[{"service":1,"name":"Followers","type":"Default","category":"First Category","rate":"0.90","min":"50","max":"10000","refill":true,"cancel":true},
            {"service":"2","name":"Drip","type":"Default","dripfeed":1,"category":"C","rate":1.2345675,"min":10,"max":100,"refill":"0","cancel":false},
            {"service":3,"name":"Poll","type":"Poll","category":"C","rate":"1","min":"1","max":"2"},
            {"name":"no id","rate":"1","min":"1","max":"2"},
            {"service":4,"type":" custom_comments ","desc":"Real comments","rate":"1","min":"1","max":"2"},
            {"service":5,"type":"Mentions with Hashtags","rate":"1","min":"1","max":"2"},
            {"service":6,"type":"subscriptions","rate":"1","min":"1","max":"2"},
            {"service":7,"type":"Story Views","description":"x","rate":"1","min":"1","max":"2"},
            {"service":8,"type":"drip-feed","rate":"1","min":"1","max":"2"},
            {"service":9,"type":"web traffic","dripfeed":"1","rate":"1","min":"1","max":"2"}]"#;
        let entries = parse_services(body).unwrap();
        assert_eq!(entries.len(), 9);
        assert_eq!(entries[0].kind, CatalogType::Offered(ServiceType::Default));
        assert!(!entries[0].dripfeed);
        assert_eq!(entries[0].rate.micros(), 900_000);
        assert_eq!(
            (entries[0].refill, entries[0].cancel),
            (Some(true), Some(true))
        );
        assert_eq!(
            (entries[1].kind, entries[1].dripfeed),
            (CatalogType::Offered(ServiceType::Default), true)
        );
        assert_eq!(entries[1].rate.micros(), 1_234_568);
        assert_eq!(
            (entries[1].refill, entries[1].cancel),
            (Some(false), Some(false))
        );
        assert_eq!(entries[2].kind, CatalogType::Offered(ServiceType::Poll));
        assert_eq!((entries[2].refill, entries[2].cancel), (None, None));
        assert_eq!(entries[2].type_word, "Poll");
        let kinds: Vec<_> = entries[3..].iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                CatalogType::Offered(ServiceType::CustomComments),
                CatalogType::Offered(ServiceType::MentionsWithHashtags),
                CatalogType::Subscriptions,
                CatalogType::Unknown,
                CatalogType::Offered(ServiceType::Default),
                CatalogType::Offered(ServiceType::WebTraffic),
            ]
        );
        assert_eq!(entries[3].description.as_deref(), Some("Real comments"));
        assert_eq!(entries[6].description.as_deref(), Some("x"));
        assert!(entries[7].dripfeed && entries[8].dripfeed);
        assert_eq!(parse_services(r#"{"error":"Invalid API key"}"#), None);
    }

    #[test]
    fn balance_replies() {
        assert_eq!(
            parse_balance(r#"{"balance":"100.84292","currency":"USD"}"#)
                .map(|(b, c)| (b.micros(), c)),
            Some((100_842_920, Some("USD".into())))
        );
        assert_eq!(
            parse_balance(r#"{"balance":12.5,"currency":"EUR","status":"success"}"#)
                .map(|(b, c)| (b.micros(), c)),
            Some((12_500_000, Some("EUR".into())))
        );
        assert_eq!(
            parse_balance(r#"{"balance":"1.12345678"}"#).map(|(b, c)| (b.micros(), c)),
            Some((1_123_456, None))
        );
        assert_eq!(parse_balance(r#"{"error":"Invalid API key"}"#), None);
        assert_eq!(parse_balance("<html></html>"), None);
    }

    #[test]
    fn cancel_replies() {
        let items = |body: &str| match parse_cancel_batch(body) {
            Some(CancelReply::Items(items)) => items,
            other => panic!("not items: {other:?}"),
        };
        let items = items(
            r#"[{"order":9,"cancel":{"error":"Incorrect order ID"}},{"order":"2","cancel":1},{"order":3,"cancel":true}]"#,
        );
        assert_eq!(items["9"], CancelItem::Refused("Incorrect order ID".into()));
        assert_eq!(items["2"], CancelItem::Accepted);
        assert_eq!(items["3"], CancelItem::Accepted);
        let Some(CancelReply::Items(keyed)) =
            parse_cancel_batch(r#"{"4":{"cancel":"1"},"5":"Order cannot be canceled"}"#)
        else {
            panic!("not items")
        };
        assert_eq!(keyed["4"], CancelItem::Accepted);
        assert_eq!(
            keyed["5"],
            CancelItem::Refused("Order cannot be canceled".into())
        );
        for words in [
            "This action is Invalid",
            "Incorrect order ID",
            "Order not eligible for cancel.",
            "Cancel is not available for this order",
        ] {
            assert_eq!(
                parse_cancel_batch(&serde_json::json!({ "error": words }).to_string()),
                Some(CancelReply::RefusedAll(words.into())),
                "{words}"
            );
        }
        for words in [
            "Invalid API key",
            "Not enough funds on balance",
            "Rate limit exceeded",
            "Too many requests",
            "Service temporarily unavailable",
        ] {
            assert_eq!(
                parse_cancel_batch(&serde_json::json!({ "error": words }).to_string()),
                Some(CancelReply::Failed(words.into())),
                "{words}"
            );
        }
        assert_eq!(parse_cancel_batch(r#"{"error":""}"#), None);
        assert_eq!(parse_cancel_batch(r#"{"error":{"code":1}}"#), None);
        assert_eq!(parse_cancel_batch("<html>500</html>"), None);
    }

    #[test]
    fn add_replies() {
        assert_eq!(
            parse_add(r#"{"order":23501}"#),
            AddReply::Accepted("23501".into())
        );
        assert_eq!(
            parse_add("{\n  \"order\": \"77\",\n  \"status\": \"success\"\n}"),
            AddReply::Accepted("77".into())
        );
        assert_eq!(
            parse_add(r#"{"error":"Not enough funds on balance"}"#),
            AddReply::Rejected("Not enough funds on balance".into())
        );
        assert_eq!(parse_add(""), AddReply::Unreadable);
        assert_eq!(parse_add("<html>500</html>"), AddReply::Unreadable);
        assert_eq!(parse_add(r#"{"status":"success"}"#), AddReply::Unreadable);
    }

    #[test]
    fn multi_status_with_per_item_errors_and_bare_strings() {
        let body = r#"{"1":{"charge":"0.27819","start_count":"3572","status":"Partial","remains":"157","currency":"USD"},
            "10":{"error":"Incorrect order ID"},"11":"Incorrect order ID",
            "100":{"charge":1.44,"start_count":null,"status":"In progress","remains":10},
            "7":{"status":"Refunded","remains":"0"}}"#;
        let items = parse_multi_status(body).unwrap();
        assert_eq!(
            items["1"],
            StatusItem::Known {
                status: OrderStatus::Partial,
                remains: Some(157),
                start_count: Some(3572),
                charge: Some(Money::parse("0.27819").unwrap()),
                currency: Some("USD".into()),
            }
        );
        assert_eq!(items["10"], StatusItem::Error("Incorrect order ID".into()));
        assert_eq!(items["11"], StatusItem::Error("Incorrect order ID".into()));
        assert_eq!(
            items["100"],
            StatusItem::Known {
                status: OrderStatus::InProgress,
                remains: Some(10),
                start_count: None,
                charge: Some(Money::parse("1.44").unwrap()),
                currency: None,
            }
        );
        assert_eq!(items["7"], StatusItem::UnknownStatus("Refunded".into()));
        assert_eq!(parse_multi_status(r#"{"error":"Invalid API key"}"#), None);
        assert_eq!(parse_multi_status(""), None);
    }

    #[test]
    fn subscription_statuses() {
        let items = parse_subscription_statuses(
            r#"{"9001":{"status":"Active","expiry":"31/12/2026","posts":"2","orders":[101,"102"]},
               "9002":{"status":"Cancelled","orders":"7, 8"},
               "9003":{"status":"Refunded","orders":[]},
               "9004":{"error":"Incorrect order ID"},
               "9005":{"status":"Active","orders":[{"id":1}]},
               "9006":{"status":"Active","orders":["N/A"]},
               "9007":{"status":"Active","orders":[0]},
               "9008":{"status":"Active","orders":"12,none"},
               "9009":{"status":"Active","orders":[-3]},
               "9010":{"status":"Paused","orders":["0"]},
               "9011":{"status":"Holiday","orders":[55]}}"#,
        )
        .unwrap();
        assert_eq!(
            items["9001"],
            SubscriptionItem::Known {
                status: SubscriptionStatus::Active,
                children: vec!["101".into(), "102".into()]
            }
        );
        assert_eq!(
            items["9002"],
            SubscriptionItem::Known {
                status: SubscriptionStatus::Canceled,
                children: vec!["7".into(), "8".into()]
            }
        );
        assert_eq!(
            items["9003"],
            SubscriptionItem::UnknownStatus {
                word: "Refunded".into(),
                children: vec![]
            }
        );
        assert_eq!(
            items["9004"],
            SubscriptionItem::Error("Incorrect order ID".into())
        );
        // Provider text in `orders` is never a child to charge: the item is unreadable.
        for unreadable in ["9005", "9006", "9007", "9008", "9009", "9010"] {
            assert!(!items.contains_key(unreadable), "{unreadable}");
        }
        assert_eq!(
            items["9011"],
            SubscriptionItem::UnknownStatus {
                word: "Holiday".into(),
                children: vec!["55".into()]
            }
        );
        assert_eq!(
            parse_subscription_statuses(r#"{"error":"Invalid API key"}"#),
            None
        );
    }
}
