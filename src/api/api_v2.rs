//! The panel API v2, served to resellers: `GET` or `POST /api/v2` (and `/api/v2/`), fields
//! in the query string or the body (form, JSON, multipart: see [`super::api_v2_input`]),
//! `key` + `action`. Replies follow the de facto dialect: numbers as strings, panel status
//! spellings, `{"error": "..."}` with HTTP 200, per-item errors inside batch replies.
//! The same rules as the REST API apply: the order transaction, idempotency (an
//! `idempotency_key` field or `Idempotency-Key` header), quotas and refunds.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::api_v2_input::{self as input, Fields};
use super::orders::MAX_BATCH;
use crate::application;
use crate::application::cancels::CancelError;
use crate::application::idempotency::{request_hash, Dialect, IdempotencyKey};
use crate::application::orders::{OrderRequest, PlaceOrderError, Placed};
use crate::application::refills::RefillError;
use crate::application::subscriptions::{Created, SubscriptionError, SubscriptionRequest};
use crate::db::{accounts, orders, refills, services, subscriptions};
use crate::domain::account::Scope;
use crate::domain::ids::{AccountId, OrderId, RefillId, ServiceId, SubscriptionId};
use crate::domain::order::{Order, OrderFieldError, OrderInput};
use crate::domain::order_fields::{OrderField, OrderFields};
use crate::domain::refill::RefillRefusal;
use crate::domain::service::{ServiceStatus, ServiceType};
use crate::domain::subscription::{panel_date, parse_panel_date, SubscriptionInput};
use crate::error::ApiError;
use crate::http::auth::KeyHolder;
use crate::http::extract::{BodySize, OrderBody};
use crate::http::idempotency::status_of;
use crate::http::state::AppState;
use crate::resources::PanelOrderPlaced;

/// The fields API v2 clients send. Every one is a string on the wire (a JSON body's
/// numbers are read as their text) and every one may be missing: what a call lacks is
/// refused in the dialect, `{"error": ...}` with HTTP 200, never by the schema.
#[derive(Debug, Default, Deserialize, ToSchema, IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
pub struct ApiV2Request {
    /// The reseller's API key.
    pub key: String,
    /// `services`, `add`, `status`, `cancel`, `refill`, `refill_status` or `balance`, in
    /// any case. Without it, the fields say the call (see the replies).
    pub action: String,
    /// `add`: the service id.
    pub service: String,
    pub link: String,
    /// `add`: units (per run for drip-feed).
    pub quantity: String,
    /// `add`, drip-feed: how many runs.
    pub runs: String,
    /// `add`, drip-feed: minutes between runs.
    pub interval: String,
    /// `add`, custom comments: one per line. The other type fields of `add` (`usernames`,
    /// `hashtags`, `hashtag`, `username`, `media`, `answer_number`, `groups`, `keywords`,
    /// `country`, `device`, `type_of_traffic`, `google_keyword`, `referring_url`; lists one
    /// item per line) are read the same way: see the REST order's fields.
    pub comments: String,
    pub usernames: String,
    pub hashtags: String,
    pub hashtag: String,
    pub username: String,
    pub media: String,
    pub answer_number: String,
    pub groups: String,
    pub keywords: String,
    pub country: String,
    pub device: String,
    pub type_of_traffic: String,
    pub google_keyword: String,
    pub referring_url: String,
    /// One order id (`status`, `cancel`, `refill`); a comma list is a batch.
    pub order: String,
    /// Comma-joined order ids, at most 100, for batch `status`, `cancel` and `refill`.
    pub orders: String,
    /// One refill id, for `refill_status`.
    pub refill: String,
    /// Comma-joined refill ids, for batch refill status.
    pub refills: String,
    /// `add`: makes retries safe, like the `Idempotency-Key` header.
    pub idempotency_key: String,
    /// `add` to a Subscriptions service (with `username`, no `link` or `quantity`): the
    /// fewest units per new post. The service's type decides whether an `add` is a
    /// subscription: to a service of another type, `min`, `max`, `posts`, `old_posts`,
    /// `delay` and `expiry` are ignored when empty or `0`, and refused otherwise
    /// (`Incorrect request: <field> is only for subscription services`).
    pub min: String,
    /// `add`, subscriptions: the most units per new post (the hold is priced at it).
    pub max: String,
    /// `add`, subscriptions: new posts to serve, 1 to the service's bound (required).
    pub posts: String,
    /// `add`, subscriptions: posts already made to serve too, where the service offers it.
    pub old_posts: String,
    /// `add`, subscriptions: minutes after a post, one of the service's delays (default 0).
    pub delay: String,
    /// `add`, subscriptions: the expiry date, `dd/mm/YYYY` (UTC), after today.
    pub expiry: String,
}

/// Every refusal in the dialect: HTTP 200 with this body (a batch reply carries it per
/// item instead).
#[derive(Serialize, ToSchema)]
pub struct ApiV2Error {
    #[schema(example = "Incorrect order ID")]
    pub error: String,
}

/// The body of every API v2 answer: an action's reply, whose shape is the action's (an
/// object or a list), or a refusal, [`ApiV2Error`].
pub struct ApiV2Reply;

impl utoipa::PartialSchema for ApiV2Reply {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::AnyOfBuilder;
        use utoipa::openapi::Ref;
        AnyOfBuilder::new()
            .item(Ref::from_schema_name("ApiV2Error"))
            .item(<Value as utoipa::PartialSchema>::schema())
            .description(Some(
                "An action's reply (an object or a list, per action), or `{\"error\": \"...\"}`",
            ))
            .into()
    }
}

impl ToSchema for ApiV2Reply {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "ApiV2Error".to_string(),
            <ApiV2Error as utoipa::PartialSchema>::schema(),
        ));
        <ApiV2Error as ToSchema>::schemas(schemas);
    }
}

fn reply(value: Value) -> HttpResponse {
    HttpResponse::Ok().json(value)
}

fn error(text: &str) -> HttpResponse {
    HttpResponse::Ok().json(ApiV2Error {
        error: text.to_string(),
    })
}

// Replies are structs, not maps, so fields keep the dialect's order byte for byte.

#[derive(Serialize)]
struct StatusReply {
    charge: String,
    start_count: String,
    status: &'static str,
    remains: String,
    /// Drip-feed only: runs delivered. Client panels refund a drip-feed partial by runs;
    /// without it they refund the whole charge.
    #[serde(skip_serializing_if = "Option::is_none")]
    runs: Option<String>,
    currency: String,
}

/// A subscription's `status`, as panels answer it.
#[derive(Serialize)]
struct SubscriptionStatusReply {
    status: &'static str,
    expiry: Option<String>,
    posts: String,
    orders: Vec<OrderId>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum StatusItem {
    Found(StatusReply),
    Subscription(SubscriptionStatusReply),
    Missing { error: &'static str },
}

#[derive(Serialize)]
struct ServiceItem {
    service: ServiceId,
    name: String,
    r#type: &'static str,
    category: String,
    rate: String,
    min: String,
    max: String,
    dripfeed: bool,
    refill: bool,
    cancel: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    desc: Option<String>,
}

#[derive(Serialize)]
struct Balance {
    balance: String,
    currency: String,
}

#[derive(Serialize)]
struct CancelItem {
    order: Value,
    cancel: Value,
}

#[derive(Serialize)]
struct RefillItem {
    order: Value,
    refill: Value,
}

/// A JSON object whose keys keep the order they were asked in.
struct Ordered<T>(Vec<(String, T)>);

impl<T: Serialize> Serialize for Ordered<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

fn reply_of(value: impl Serialize) -> HttpResponse {
    HttpResponse::Ok().json(value)
}

fn status_json(order: &Order, currency: &str) -> StatusReply {
    StatusReply {
        charge: order.charge.to_string(),
        start_count: order.start_count.unwrap_or(0).to_string(),
        status: order.status.panel_name(),
        remains: order.remains_or_total().to_string(),
        runs: order.runs_delivered().map(|runs| runs.to_string()),
        currency: currency.to_string(),
    }
}

/// The dialect's words for a failure of the service's own (the database, the writer).
fn dialect_error(error: &ApiError) -> String {
    match error {
        ApiError::Internal(_) | ApiError::Database(_) => "Internal error, try again later".into(),
        other => other.to_string(),
    }
}

/// The dialect's words for an order that was not placed: one per refusal.
fn add_error(error: &PlaceOrderError) -> String {
    match error {
        PlaceOrderError::UnknownService => "Service ID does not exists".into(),
        PlaceOrderError::InsufficientFunds { .. } => "Not enough funds on balance".into(),
        PlaceOrderError::AccountSuspended => "Your account is suspended".into(),
        // The first field at fault, as panels word it.
        PlaceOrderError::Invalid(fields) => fields
            .first()
            .map_or_else(|| "Incorrect request".into(), field_error),
        PlaceOrderError::Database(error) => dialect_error(error),
        PlaceOrderError::UnknownAccount
        | PlaceOrderError::ServicePaused
        | PlaceOrderError::ForeignCurrency { .. }
        | PlaceOrderError::Idempotency(_) => error.to_string(),
    }
}

/// The dialect's words for a field of an `add` that the service's rules refuse.
fn field_error(error: &OrderFieldError) -> String {
    use OrderFieldError::*;
    match error {
        BadLink { .. } | LinkHasSpaces => "Bad Link".into(),
        Field { field, problem } => format!("Incorrect {field}: {field} {problem}"),
        QuantityNotCount { .. }
        | QuantityNotOne
        | QuantityRequired
        | QuantityOutOfRange { .. }
        | TotalTooLarge => format!("Quantity {error}"),
        ChargeTooSmall { least, .. } => {
            format!("Quantity too small: at this rate it costs nothing; order at least {least}")
        }
        SubscriptionsOnly => "Incorrect request: this service takes subscriptions (username, min, max, posts, delay, expiry), not link and quantity".into(),
        ServiceDisabled
        | DripFeedNotOffered
        | RunsOutOfRange
        | IntervalOutOfRange
        | IntervalRequired
        | RunsRequired
        | BadExternalRef { .. } => format!("{}: {error}", error.field()),
    }
}

/// The type fields of an `add`, each read by its shape: lists as text with one item per
/// line, numbers as integers (`Incorrect answer_number` otherwise).
fn type_fields(map: &Fields) -> Result<OrderFields, String> {
    let mut fields = OrderFields::default();
    for &field in OrderField::ALL {
        let name = field.as_str();
        let Some(text) = map.get(name).filter(|t| !t.trim().is_empty()) else {
            continue;
        };
        let list = || Some(vec![text.clone()]);
        let text = || Some(text.clone());
        match field {
            OrderField::Comments => fields.comments = list(),
            OrderField::Usernames => fields.usernames = list(),
            OrderField::Hashtags => fields.hashtags = list(),
            OrderField::Groups => fields.groups = list(),
            OrderField::Keywords => fields.keywords = list(),
            OrderField::Hashtag => fields.hashtag = text(),
            OrderField::Username => fields.username = text(),
            OrderField::Media => fields.media = text(),
            OrderField::Country => fields.country = text(),
            OrderField::GoogleKeyword => fields.google_keyword = text(),
            OrderField::ReferringUrl => fields.referring_url = text(),
            OrderField::AnswerNumber => fields.answer_number = parse_int(map, name)?,
            OrderField::Device => fields.device = parse_int(map, name)?,
            OrderField::TypeOfTraffic => fields.type_of_traffic = parse_int(map, name)?,
        }
    }
    Ok(fields)
}

fn parse_int(map: &Fields, name: &str) -> Result<Option<i64>, String> {
    match map.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| format!("Incorrect {name}")),
    }
}

/// Panel API v2 for reseller tooling, `POST`: fields in the body (form, JSON or
/// multipart) and/or the query string.
#[utoipa::path(
    tag = "api-v2",
    operation_id = "api_v2",
    // Not required: clients send every field in the query string too, even on a POST.
    request_body(content(
        (Option<ApiV2Request> = "application/x-www-form-urlencoded"),
        (Option<ApiV2Request> = "application/json"),
        (Option<ApiV2Request> = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "The action's reply in the API v2 dialect, or any refusal as `{\"error\": \"...\"}` (`ApiV2Error`). \
            add: `{\"order\":23501}`; status: `{\"charge\":\"0.27819\",\"start_count\":\"3572\",\"status\":\"Partial\",\"remains\":\"157\",\"currency\":\"USD\"}`, \
            `remains` in all units (quantity × runs): `0` once completed, the total while pending or once canceled, \
            and a drip-feed order's also has `runs`, the runs delivered (`\"runs\":\"3\"`); \
            status of a subscription (its id is from the orders' sequence): `{\"status\":\"Active\",\"expiry\":\"31/12/2026\",\"posts\":\"2\",\"orders\":[101,102]}` \
            (`posts` served so far, `orders` the child orders' ids, `expiry` null for none); \
            multi status: `{\"1\":{...},\"10\":{\"error\":\"Incorrect order ID\"}}`; balance (the available balance, without what subscriptions hold): `{\"balance\":\"100.84292\",\"currency\":\"USD\"}`; \
            cancel: `[{\"order\":9,\"cancel\":{\"error\":\"Incorrect order ID\"}},{\"order\":2,\"cancel\":1}]`; \
            refill status of `refills=1,2`: `[{\"refill\":1,\"status\":\"Completed\"},{\"refill\":2,\"status\":{\"error\":\"Refill not found\"}}]`. \
            Without `action`, the fields say the call: `order`/`orders` refill, `refill`/`refills` refill status. \
            Also served at `/api/v2/`.",
            body = ApiV2Reply),
        (status = 429, description = "Over the account's request quota: `{\"error\": \"...\"}` with `Retry-After`", body = ApiV2Error),
    )
)]
#[post("/api/v2")]
pub async fn api_v2(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    serve(req, state, payload).await
}

/// Panel API v2 for reseller tooling, `GET`: every field in the query string, as clients
/// that only send GET do.
#[utoipa::path(
    tag = "api-v2",
    operation_id = "api_v2_get",
    params(ApiV2Request),
    responses(
        (status = 200, description = "The same replies as `POST /api/v2`, or `{\"error\": \"...\"}`. Also served at `/api/v2/`.",
            body = ApiV2Reply),
        (status = 429, description = "Over the account's request quota: `{\"error\": \"...\"}` with `Retry-After`", body = ApiV2Error),
    )
)]
#[get("/api/v2")]
pub async fn api_v2_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    serve(req, state, payload).await
}

/// Whether a path belongs to API v2, where every refusal is `{"error": ...}` with HTTP 200.
pub fn owns_path(path: &str) -> bool {
    path == "/api/v2" || path.starts_with("/api/v2/")
}

/// What no route matched under API v2: `/api/v2/` serves the calls, anything else (another
/// method, another sub-path) is refused in the dialect, never with a problem document.
pub async fn fallback(req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let method = req.method().clone();
    let served = matches!(method.as_str(), "GET" | "POST");
    if !served {
        return error(&format!(
            "Method {} is not supported, use GET or POST",
            method.as_str().chars().take(16).collect::<String>()
        ));
    }
    if req.path() != "/api/v2/" {
        return error("Incorrect request");
    }
    match req.app_data::<web::Data<AppState>>().cloned() {
        Some(state) => serve(req, state, payload).await,
        None => error("Internal error, try again later"),
    }
}

async fn serve(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    let map = match input::read_fields(&req, payload, OrderBody::limit(&state.config)).await {
        Ok(map) => map,
        Err(text) => return error(&text),
    };
    let account = match authenticate(&req, &state, &map).await {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    let action = input::action(&map);
    let needs = match action.as_str() {
        "add" | "cancel" | "refill" => Scope::OrdersWrite,
        _ => Scope::OrdersRead,
    };
    if !account.scopes.contains(&needs) {
        return error("This action is not allowed for this key");
    }
    let result = match action.as_str() {
        "services" => list(&state).await,
        "add" => add(&req, &state, &account, &map).await,
        "status" => status(&state, &account, &map).await,
        "cancel" => cancel(&state, &account, &map).await,
        "refill" => refill(&state, &account, &map).await,
        "refill_status" => refill_status(&state, &account, &map).await,
        "balance" => balance(&state, &account).await,
        _ => Ok(error("Incorrect request")),
    };
    result.unwrap_or_else(|e| error(&dialect_error(&e)))
}

/// The holder of the call's `key`, within its request quota; `Err` is the reply.
async fn authenticate(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    map: &Fields,
) -> Result<KeyHolder, HttpResponse> {
    let Some(key) = map.get("key") else {
        return Err(error("Invalid API key"));
    };
    // An address that failed too often is refused before the key is looked at.
    let ip = state.limits.client_ip(req);
    if let Err(ApiError::RateLimited {
        retry_after_secs, ..
    }) = state.limits.failures.admit(ip, "api_v2")
    {
        return Err(HttpResponse::Ok()
            .insert_header((header::RETRY_AFTER, retry_after_secs.to_string()))
            .json(json!({ "error": format!("Too many failed key attempts, retry in {retry_after_secs} seconds") })));
    }
    let account = match state.tokens.api_key(state, key).await {
        Ok(Some(holder)) => holder,
        Ok(None) => {
            state.limits.failures.fail(ip, "api_v2");
            return Err(error("Invalid API key"));
        }
        Err(e) => return Err(error(&dialect_error(&e))),
    };
    match state
        .limits
        .check_account(state, account.account_id, req)
        .await
    {
        Ok(()) => {}
        Err(ApiError::RateLimited {
            retry_after_secs, ..
        }) => {
            return Err(HttpResponse::TooManyRequests()
                .insert_header((header::RETRY_AFTER, retry_after_secs.max(1).to_string()))
                .json(json!({ "error": format!("Too many requests, retry in {retry_after_secs} seconds") })));
        }
        Err(e) => return Err(error(&dialect_error(&e))),
    }
    Ok(account)
}

/// The balance, read fresh (the holder is remembered; the balance never is).
async fn balance(
    state: &web::Data<AppState>,
    account: &KeyHolder,
) -> Result<HttpResponse, ApiError> {
    let account_id = account.account_id;
    let found = state
        .read(move |conn| Ok(accounts::find(conn, account_id)?))
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    Ok(reply_of(Balance {
        balance: found.balance.to_string(),
        currency: found.currency,
    }))
}

async fn list(state: &web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let all = state
        .db(|conn| {
            let mut all = Vec::new();
            let mut after = None;
            loop {
                let page = services::page(conn, after, 500)?;
                let Some(last) = page.last() else { break };
                after = Some(last.id.get());
                all.extend(page);
            }
            Ok(all)
        })
        .await?;
    let items: Vec<ServiceItem> = all
        .into_iter()
        .filter(|s| s.status == ServiceStatus::Active)
        .map(|s| ServiceItem {
            service: s.id,
            dripfeed: s.dripfeed,
            r#type: s.kind.panel_name(),
            desc: s.description.clone(),
            rate: s.rate.to_string(),
            min: s.min_quantity.to_string(),
            max: s.max_quantity.to_string(),
            refill: s.refill,
            cancel: s.cancel,
            name: s.name,
            category: s.category,
        })
        .collect();
    Ok(reply_of(items))
}

async fn add(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    account: &KeyHolder,
    map: &Fields,
) -> Result<HttpResponse, ApiError> {
    // The service's type decides: a client library may send the subscription fields
    // empty or zero with every ordinary order.
    let kind = match parse_int(map, "service") {
        Ok(Some(id)) => {
            state
                .db(move |conn| Ok(services::find(conn, ServiceId(id))?.map(|s| s.kind)))
                .await?
        }
        Ok(None) | Err(_) => None,
    };
    match kind {
        Some(ServiceType::Subscriptions) => {
            return add_subscription(req, state, account, map).await;
        }
        Some(_) => {
            if let Some(field) = meaningless_subscription_field(map) {
                return Ok(error(&format!(
                    "Incorrect request: {field} is only for subscription services"
                )));
            }
        }
        None => {}
    }
    let request = match order_request(map) {
        Ok(request) => request,
        Err(e) => return Ok(error(&e)),
    };
    let key = add_key(req, map, &request, state.config.retention.idempotency_ttl());
    let account_id = account.account_id;
    let placed = state
        .db(move |conn| Ok(application::orders::place(conn, account_id, request, key)))
        .await?;
    match placed {
        Ok(Placed::New(order)) => {
            state.wake.notify();
            Ok(reply_of(PanelOrderPlaced { order: order.id }))
        }
        Ok(Placed::Replayed(replay)) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(replay.body)),
        Err(e) => Ok(error(&add_error(&e))),
    }
}

/// The first of a subscription's own fields that an `add` of another service type
/// carries with a value: empty or `0` means nothing and is ignored.
fn meaningless_subscription_field(map: &Fields) -> Option<&'static str> {
    SUBSCRIPTION_FIELDS.into_iter().find(|name| {
        map.get(*name)
            .map(|v| v.trim())
            .is_some_and(|v| !v.is_empty() && v != "0")
    })
}

/// The fields only a subscription `add` reads.
const SUBSCRIPTION_FIELDS: [&str; 6] = ["posts", "old_posts", "delay", "expiry", "min", "max"];

/// An `add` of a subscription: `{"order": id}`, the id from the orders' sequence.
async fn add_subscription(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    account: &KeyHolder,
    map: &Fields,
) -> Result<HttpResponse, ApiError> {
    let request = match subscription_request(map) {
        Ok(request) => request,
        Err(e) => return Ok(error(&e)),
    };
    let key = subscription_key(req, map, &request, state.config.retention.idempotency_ttl());
    let account_id = account.account_id;
    let created = state
        .db(move |conn| {
            Ok(application::subscriptions::create(
                conn, account_id, request, key,
            ))
        })
        .await?;
    match created {
        Ok(Created::New(sub)) => Ok(reply_of(PanelOrderPlaced {
            order: OrderId(sub.id.get()),
        })),
        Ok(Created::Replayed(replay)) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(replay.body)),
        Err(e) => Ok(error(&subscription_error(&e))),
    }
}

/// The subscription an `add` asks for; `Err` is the dialect's reply to a field it cannot
/// read.
fn subscription_request(map: &Fields) -> Result<SubscriptionRequest, String> {
    let service_id = match parse_int(map, "service") {
        Ok(Some(id)) => ServiceId(id),
        Ok(None) | Err(_) => return Err("Service ID does not exists".into()),
    };
    if ["link", "quantity"]
        .iter()
        .any(|name| map.get(*name).is_some_and(|v| !v.trim().is_empty()))
    {
        return Err(
            "Incorrect request: a subscription takes username, min, max, posts, old_posts, delay and expiry, not link or quantity"
                .into(),
        );
    }
    let expiry = match map
        .get("expiry")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    {
        None => None,
        Some(text) => Some(
            parse_panel_date(text)
                .ok_or("Incorrect expiry: expiry must be a date as dd/mm/YYYY")?,
        ),
    };
    Ok(SubscriptionRequest {
        service_id,
        input: SubscriptionInput {
            username: map.get("username").cloned().unwrap_or_default(),
            min: parse_int(map, "min")?,
            max: parse_int(map, "max")?,
            posts: parse_int(map, "posts")?,
            old_posts: parse_int(map, "old_posts")?,
            delay: parse_int(map, "delay")?,
            expiry,
        },
    })
}

/// A subscription `add`'s idempotency key, with a fingerprint of what it asks for.
fn subscription_key(
    req: &HttpRequest,
    map: &Fields,
    request: &SubscriptionRequest,
    ttl: chrono::Duration,
) -> Option<IdempotencyKey> {
    let key = map
        .get("idempotency_key")
        .cloned()
        .or_else(|| {
            req.headers()
                .get("Idempotency-Key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .map(|k| k.trim().chars().take(255).collect::<String>())
        .filter(|k| !k.is_empty())?;
    let input = &request.input;
    let hash = format!(
        "subscription|{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        request.service_id,
        input.username,
        input.min,
        input.max,
        input.posts,
        input.old_posts,
        input.delay,
        input.expiry
    );
    Some(IdempotencyKey {
        key,
        request_hash: request_hash(&Value::String(hash)),
        ttl,
        dialect: Dialect::PanelV2,
        status_of,
    })
}

/// The dialect's words for a subscription that was not created or canceled.
fn subscription_error(error: &SubscriptionError) -> String {
    match error {
        SubscriptionError::UnknownService => "Service ID does not exists".into(),
        SubscriptionError::InsufficientFunds { .. } => "Not enough funds on balance".into(),
        SubscriptionError::AccountSuspended => "Your account is suspended".into(),
        SubscriptionError::NotFound => "Incorrect order ID".into(),
        SubscriptionError::Invalid(fields) => fields.first().map_or_else(
            || "Incorrect request".into(),
            |f| format!("Incorrect {}: {} {}", f.field, f.field, f.message),
        ),
        SubscriptionError::Database(error) => dialect_error(error),
        SubscriptionError::UnknownAccount
        | SubscriptionError::ServicePaused
        | SubscriptionError::ForeignCurrency { .. }
        | SubscriptionError::Ended { .. }
        | SubscriptionError::Idempotency(_) => error.to_string(),
    }
}

/// The subscriptions among `ids` (those that are not orders), as `status` answers them.
async fn owned_subscriptions(
    state: &web::Data<AppState>,
    account_id: AccountId,
    ids: Vec<SubscriptionId>,
) -> Result<HashMap<i64, SubscriptionStatusReply>, ApiError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    state
        .read(move |conn| {
            let mut found = HashMap::new();
            for id in ids {
                if let Some(sub) = subscriptions::find_owned(conn, account_id, id)? {
                    let orders = subscriptions::children(conn, id)?;
                    found.insert(
                        id.get(),
                        SubscriptionStatusReply {
                            status: sub.status.panel_name(),
                            expiry: sub.expiry_date().map(panel_date),
                            posts: sub.posts_served.to_string(),
                            orders,
                        },
                    );
                }
            }
            Ok(found)
        })
        .await
}

/// The order an `add` asks for; `Err` is the dialect's reply to a field it cannot read.
fn order_request(map: &Fields) -> Result<OrderRequest, String> {
    let service_id = match parse_int(map, "service") {
        Ok(Some(id)) => ServiceId(id),
        Ok(None) | Err(_) => return Err("Service ID does not exists".into()),
    };
    Ok(OrderRequest {
        service_id,
        input: OrderInput {
            link: map.get("link").cloned().unwrap_or_default(),
            quantity: parse_int(map, "quantity")?,
            runs: parse_int(map, "runs")?,
            interval: parse_int(map, "interval")?,
            fields: type_fields(map)?,
            external_ref: None,
        },
    })
}

/// The `add`'s idempotency key (the `idempotency_key` field or the header) with a
/// fingerprint of the order it asks for.
fn add_key(
    req: &HttpRequest,
    map: &Fields,
    request: &OrderRequest,
    ttl: chrono::Duration,
) -> Option<IdempotencyKey> {
    let key = map
        .get("idempotency_key")
        .cloned()
        .or_else(|| {
            req.headers()
                .get("Idempotency-Key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .map(|k| k.trim().chars().take(255).collect::<String>())
        .filter(|k| !k.is_empty())?;
    let input = &request.input;
    // The comments as sent (one text on API v2), then the other type fields only when
    // there are any: an `add` stored before they existed keeps its fingerprint.
    let comments = input.fields.comments.as_ref().map(|lines| lines.join("\n"));
    let mut hash = format!(
        "{}|{}|{:?}|{:?}|{:?}|{:?}",
        request.service_id, input.link, input.quantity, input.runs, input.interval, comments
    );
    let others = OrderFields {
        comments: None,
        ..input.fields.clone()
    };
    if !others.is_empty() {
        hash.push_str(&format!(
            "|{}",
            serde_json::to_string(&others).unwrap_or_default()
        ));
    }
    Some(IdempotencyKey {
        key,
        request_hash: request_hash(&Value::String(hash)),
        ttl,
        dialect: Dialect::PanelV2,
        status_of,
    })
}

/// Parses `orders=1,2,3` (at most 100), keeping the order asked.
fn id_list(raw: &str) -> Result<Vec<String>, String> {
    let ids: Vec<String> = raw
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if ids.is_empty() {
        return Err("Incorrect order ID".into());
    }
    if ids.len() > MAX_BATCH {
        return Err(format!("Too many orders, at most {MAX_BATCH}"));
    }
    Ok(ids)
}

async fn owned_orders(
    state: &web::Data<AppState>,
    account_id: AccountId,
    ids: &[String],
) -> Result<HashMap<OrderId, Order>, ApiError> {
    let numeric: Vec<OrderId> = ids.iter().filter_map(|id| id.parse().ok()).collect();
    let found = state
        .read(move |conn| match numeric[..] {
            // One id: the by-key query, which SQLite keeps prepared (an `IN` list is
            // prepared anew on every call).
            [id] => Ok(orders::find_owned(conn, account_id, id)?
                .into_iter()
                .collect()),
            _ => Ok(orders::find_owned_many(conn, account_id, &numeric)?),
        })
        .await?;
    Ok(found.into_iter().map(|o| (o.id, o)).collect())
}

async fn status(
    state: &web::Data<AppState>,
    account: &KeyHolder,
    map: &Fields,
) -> Result<HttpResponse, ApiError> {
    let Some((raw, batch)) = input::ids(map, "order", "orders") else {
        return Ok(error("Incorrect order ID"));
    };
    if batch {
        let ids = match id_list(raw) {
            Ok(ids) => ids,
            Err(e) => return Ok(error(&e)),
        };
        let found = owned_orders(state, account.account_id, &ids).await?;
        let others: Vec<SubscriptionId> = ids
            .iter()
            .filter_map(|id| id.parse::<i64>().ok())
            .filter(|id| !found.contains_key(&OrderId(*id)))
            .map(SubscriptionId)
            .collect();
        let mut subs = owned_subscriptions(state, account.account_id, others).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let number = id.parse::<i64>().ok();
            let item = number
                .and_then(|n| found.get(&OrderId(n)))
                .map(|o| StatusItem::Found(status_json(o, &account.currency)))
                .or_else(|| {
                    number
                        .and_then(|n| subs.remove(&n))
                        .map(StatusItem::Subscription)
                })
                .unwrap_or(StatusItem::Missing {
                    error: "Incorrect order ID",
                });
            if !out.iter().any(|(seen, _)| *seen == id) {
                out.push((id, item));
            }
        }
        return Ok(reply_of(Ordered(out)));
    }
    let id = raw.to_string();
    let found = owned_orders(state, account.account_id, std::slice::from_ref(&id)).await?;
    if let Some(order) = id.parse::<OrderId>().ok().and_then(|n| found.get(&n)) {
        return Ok(reply_of(status_json(order, &account.currency)));
    }
    let asked: Vec<SubscriptionId> = id
        .parse::<i64>()
        .ok()
        .map(SubscriptionId)
        .into_iter()
        .collect();
    let mut subs = owned_subscriptions(state, account.account_id, asked).await?;
    Ok(match id.parse::<i64>().ok().and_then(|n| subs.remove(&n)) {
        Some(sub) => reply_of(sub),
        None => error("Incorrect order ID"),
    })
}

async fn cancel(
    state: &web::Data<AppState>,
    account: &KeyHolder,
    map: &Fields,
) -> Result<HttpResponse, ApiError> {
    let raw = input::ids(map, "order", "orders").map_or("", |(raw, _)| raw);
    let ids = match id_list(raw) {
        Ok(ids) => ids,
        Err(e) => return Ok(error(&e)),
    };
    let account_id = account.account_id;
    let results = state
        .db(move |conn| {
            let mut results = Vec::new();
            for id in ids {
                let outcome = match id.parse::<OrderId>() {
                    Err(_) => json!({ "error": "Incorrect order ID" }),
                    Ok(order_id) => {
                        match application::cancels::cancel_order(conn, account_id, order_id) {
                            Ok(_) => json!(1),
                            // Not an order of the account's: it may be its subscription
                            // (one id space).
                            Err(CancelError::OrderNotFound)
                                if subscriptions::find_owned(
                                    conn,
                                    account_id,
                                    SubscriptionId(order_id.get()),
                                )?
                                .is_some() =>
                            {
                                match application::subscriptions::cancel(
                                    conn,
                                    account_id,
                                    SubscriptionId(order_id.get()),
                                ) {
                                    Ok(_) => json!(1),
                                    Err(e) => json!({ "error": subscription_error(&e) }),
                                }
                            }
                            Err(e) => json!({ "error": cancel_error(&e) }),
                        }
                    }
                };
                let order = id
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or(Value::String(id));
                results.push(CancelItem {
                    order,
                    cancel: outcome,
                });
            }
            Ok(results)
        })
        .await?;
    // A cancel of an order the provider has is a request for the worker to send.
    state.wake.notify();
    Ok(reply_of(results))
}

/// The dialect's words for a cancel that was refused: one per refusal.
fn cancel_error(error: &CancelError) -> String {
    match error {
        CancelError::OrderNotFound
        | CancelError::ServiceNotFound
        | CancelError::Failed(ApiError::NotFound(_)) => "Incorrect order ID".into(),
        CancelError::Failed(error) => dialect_error(error),
        CancelError::NotOffered
        | CancelError::NotPending { .. }
        | CancelError::AlreadyFinal { .. }
        | CancelError::AlreadySent => error.to_string(),
    }
}

/// The dialect's words for a refill that was not requested.
fn refill_error(error: RefillError) -> String {
    match error {
        RefillError::OrderNotFound => "Incorrect order ID".into(),
        RefillError::Refused(RefillRefusal::NotOffered | RefillRefusal::NotDelivered) => {
            "Order not eligible for refill.".into()
        }
        RefillError::Refused(RefillRefusal::WindowClosed { .. }) => {
            "Order not eligible for refill. The refill period has expired.".into()
        }
        RefillError::Refused(RefillRefusal::TooSoon { .. }) => {
            "Refill already requested. Try again 24 hours after the last refill.".into()
        }
        RefillError::Db(e) => {
            tracing::error!(error = %e, "refill failed");
            "Internal error, try again later".into()
        }
    }
}

async fn refill(
    state: &web::Data<AppState>,
    account: &KeyHolder,
    map: &Fields,
) -> Result<HttpResponse, ApiError> {
    let account_id = account.account_id;
    let Some((raw, batch)) = input::ids(map, "order", "orders") else {
        return Ok(error("Incorrect order ID"));
    };
    if batch {
        let ids = match id_list(raw) {
            Ok(ids) => ids,
            Err(e) => return Ok(error(&e)),
        };
        let results = state
            .db(move |conn| {
                Ok(ids
                    .into_iter()
                    .map(|id| {
                        let outcome = match id.parse::<OrderId>() {
                            Ok(order_id) => {
                                application::refills::request_refill(conn, account_id, order_id)
                                    .map(|refill| refill.id)
                                    .map_err(refill_error)
                            }
                            Err(_) => Err("Incorrect order ID".to_string()),
                        };
                        let order = id
                            .parse::<i64>()
                            .map(Value::from)
                            .unwrap_or(Value::String(id));
                        RefillItem {
                            order,
                            refill: match outcome {
                                Ok(refill) => json!(refill),
                                Err(e) => json!({ "error": e }),
                            },
                        }
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
        return Ok(reply_of(results));
    }
    let Ok(order_id) = raw.parse::<OrderId>() else {
        return Ok(error("Incorrect order ID"));
    };
    let outcome = state
        .db(move |conn| {
            Ok(application::refills::request_refill(
                conn, account_id, order_id,
            ))
        })
        .await?;
    Ok(match outcome {
        Ok(refill) => reply(json!({ "refill": refill.id.to_string() })),
        Err(e) => error(&refill_error(e)),
    })
}

async fn refill_status(
    state: &web::Data<AppState>,
    account: &KeyHolder,
    map: &Fields,
) -> Result<HttpResponse, ApiError> {
    let Some((raw, batch)) = input::ids(map, "refill", "refills") else {
        return Ok(error("Refill not found"));
    };
    if batch {
        return batch_refill_status(state, account, raw).await;
    }
    let Ok(refill_id) = raw.parse::<RefillId>() else {
        return Ok(error("Refill not found"));
    };
    let account_id = account.account_id;
    let found = state
        .db(move |conn| Ok(refills::find_owned(conn, refill_id, account_id)?))
        .await?;
    Ok(match found {
        Some(refill) => reply(json!({ "status": refill.status.panel_name() })),
        None => error("Refill not found"),
    })
}

#[derive(Serialize)]
struct RefillStatusItem {
    refill: Value,
    status: Value,
}

/// `refills=1,2`: one item per id asked, in order, a missing one with its own error.
async fn batch_refill_status(
    state: &web::Data<AppState>,
    account: &KeyHolder,
    raw: &str,
) -> Result<HttpResponse, ApiError> {
    let ids = match id_list(raw) {
        Ok(ids) => ids,
        Err(_) => return Ok(error("Refill not found")),
    };
    let account_id = account.account_id;
    let items = state
        .db(move |conn| {
            let mut items = Vec::with_capacity(ids.len());
            for id in ids {
                let found = match id.parse::<RefillId>() {
                    Ok(refill_id) => refills::find_owned(conn, refill_id, account_id)?
                        .map(|refill| refill.status.panel_name()),
                    Err(_) => None,
                };
                items.push(RefillStatusItem {
                    refill: id
                        .parse::<i64>()
                        .map(Value::from)
                        .unwrap_or(Value::String(id)),
                    status: found
                        .map_or_else(|| json!({ "error": "Refill not found" }), Value::from),
                });
            }
            Ok(items)
        })
        .await?;
    Ok(reply_of(items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::application::idempotency::IdempotencyError;
    use crate::domain::money::{Money, SignedMoney};

    #[test]
    fn every_refusal_of_an_add_has_its_dialect_text() {
        let cases = [
            (
                PlaceOrderError::UnknownService,
                "Service ID does not exists",
            ),
            (
                PlaceOrderError::InsufficientFunds {
                    charge: Money::try_from_micros(2_000_000).unwrap(),
                    balance: SignedMoney::from_micros(1_000_000),
                },
                "Not enough funds on balance",
            ),
            (
                PlaceOrderError::AccountSuspended,
                "Your account is suspended",
            ),
            (PlaceOrderError::UnknownAccount, "account not found"),
            (
                PlaceOrderError::ServicePaused,
                "new orders to this service are paused by a critical refund-rate alert",
            ),
            (
                PlaceOrderError::Idempotency(IdempotencyError::Reused),
                "this Idempotency-Key was already used with a different request body",
            ),
            (
                PlaceOrderError::Idempotency(IdempotencyError::InFlight),
                "a request with this Idempotency-Key is still being processed; retry shortly",
            ),
            (
                PlaceOrderError::Database(ApiError::internal("boom")),
                "Internal error, try again later",
            ),
            (
                PlaceOrderError::Database(ApiError::Unavailable("the database is away".into())),
                "the database is away",
            ),
            (PlaceOrderError::Invalid(Vec::new()), "Incorrect request"),
        ];
        for (error, text) in cases {
            assert_eq!(add_error(&error), text, "{error:?}");
        }
    }

    #[test]
    fn every_refusal_of_a_cancel_has_its_dialect_text() {
        use crate::domain::order::OrderStatus;
        let cases = [
            (CancelError::OrderNotFound, "Incorrect order ID"),
            (CancelError::ServiceNotFound, "Incorrect order ID"),
            (
                CancelError::Failed(ApiError::not_found("order")),
                "Incorrect order ID",
            ),
            (
                CancelError::NotOffered,
                "this order's service does not allow cancel",
            ),
            (
                CancelError::NotPending {
                    status: OrderStatus::Completed,
                },
                "only pending orders can be canceled; this one is completed",
            ),
            (
                CancelError::AlreadyFinal {
                    status: OrderStatus::Partial,
                },
                "this order is already partial",
            ),
            (
                CancelError::AlreadySent,
                "this order was already sent to the provider",
            ),
            (
                CancelError::Failed(ApiError::internal("boom")),
                "Internal error, try again later",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(cancel_error(&error), text, "{error:?}");
        }
    }

    #[test]
    fn every_refused_field_of_an_add_has_its_dialect_text() {
        use crate::domain::order_fields::FieldProblem;
        use crate::domain::service::ServiceType;
        use OrderFieldError::*;
        let cases = [
            (
                BadLink {
                    reason: "must not be empty".into(),
                },
                "Bad Link",
            ),
            (LinkHasSpaces, "Bad Link"),
            (
                QuantityOutOfRange { min: 10, max: 500 },
                "Quantity must be between 10 and 500 for this service",
            ),
            (QuantityRequired, "Quantity is required"),
            (
                QuantityNotCount {
                    field: OrderField::Comments,
                    count: 3,
                },
                "Quantity must equal the number of comments lines (3) or be omitted",
            ),
            (
                QuantityNotOne,
                "Quantity must be 1 or omitted: this service sells one package at a flat price",
            ),
            (
                TotalTooLarge,
                "Quantity the order total is larger than any balance can hold",
            ),
            (
                ServiceDisabled,
                "service_id: service is disabled and takes no new orders",
            ),
            (
                Field {
                    field: OrderField::Comments,
                    problem: FieldProblem::Required {
                        kind: ServiceType::CustomComments,
                    },
                },
                "Incorrect comments: comments is required for a custom_comments service",
            ),
            (
                Field {
                    field: OrderField::Usernames,
                    problem: FieldProblem::NotTaken {
                        kind: ServiceType::Poll,
                    },
                },
                "Incorrect usernames: usernames is not taken by a poll service",
            ),
            (
                DripFeedNotOffered,
                "runs: this service does not offer drip-feed",
            ),
            (RunsOutOfRange, "runs: must be between 2 and 10000"),
            (
                IntervalOutOfRange,
                "interval: must be between 1 and 43200 minutes",
            ),
            (IntervalRequired, "interval: is required with runs"),
            (RunsRequired, "runs: is required with interval"),
            (
                ChargeTooSmall {
                    units: 10,
                    least: 500,
                },
                "Quantity too small: at this rate it costs nothing; order at least 500",
            ),
        ];
        for (field, text) in cases {
            assert_eq!(field_error(&field), text, "{field:?}");
        }
        // The first field at fault speaks for the request.
        let both = PlaceOrderError::Invalid(vec![LinkHasSpaces, QuantityRequired]);
        assert_eq!(add_error(&both), "Bad Link");
    }
}
