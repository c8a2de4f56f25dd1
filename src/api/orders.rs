use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::application;
use crate::application::cancels::{CancelError, Canceled};
use crate::application::idempotency::{Answer, Dialect};
use crate::application::orders::{OrderRequest, Outcome, PlaceOrderError, Placed};
use crate::db::orders::{self, OrderFilter};
use crate::domain::account::Scope;
use crate::domain::ids::{AccountId, OrderId, ServiceId, SubscriptionId};
use crate::domain::order::{Order, OrderInput, OrderStatus};
use crate::domain::order_fields::OrderFields;
use crate::domain::FieldError;
use crate::error::{ApiError, ErrorCode};
use crate::http::auth::Admin;
use crate::http::auth::Caller;
use crate::http::extract::{ApiJson, ApiQuery, OrderJson};
use crate::http::idempotency::{answered, replayed, rest_key};
use crate::http::state::AppState;
use crate::http::wire::{page_limit, page_response, Page};
pub use crate::resources::OrderResponse;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    #[schema(value_type = i64)]
    pub service_id: ServiceId,
    #[schema(value_type = crate::http::input::Link)]
    pub link: String,
    /// Units to deliver (per run with drip-feed). Where the service's `quantity_from` names
    /// a list, it may be left out (one per line) and must equal the count when sent; for a
    /// flat-price service it may be left out and must be 1 when sent.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub quantity: Option<i64>,
    /// Drip-feed: how many runs of `quantity` each.
    #[schema(minimum = 2, maximum = 10_000)]
    pub runs: Option<i64>,
    /// Drip-feed: minutes between runs.
    #[schema(minimum = 1, maximum = 43_200)]
    pub interval: Option<i64>,
    /// Comment lines (custom_comments, custom_comments_package, comment_replies): an array
    /// of strings, or one text with a line per comment. The service's `fields` say which
    /// fields its type takes; any other is refused.
    #[schema(value_type = Option<crate::http::input::CommentLines>)]
    pub comments: Option<CommentLines>,
    /// Usernames to mention, `@` optional (mentions, mentions_with_hashtags,
    /// mentions_custom_list).
    #[schema(value_type = Option<crate::http::input::Lines>)]
    pub usernames: Option<Vec<String>>,
    /// Hashtags, `#` optional (mentions_with_hashtags).
    #[schema(value_type = Option<crate::http::input::Lines>)]
    pub hashtags: Option<Vec<String>>,
    /// One hashtag, `#` optional (mentions_hashtag).
    #[schema(value_type = Option<crate::http::input::Text255>)]
    pub hashtag: Option<String>,
    /// One username, `@` optional (mentions_user_followers, which also takes the profile's
    /// URL; comment_likes: the comment's author; comment_replies).
    #[schema(value_type = Option<crate::http::input::Text255>)]
    pub username: Option<String>,
    /// The media whose likers are mentioned (mentions_media_likers).
    #[schema(value_type = Option<crate::http::input::HttpUrl255>)]
    pub media: Option<String>,
    /// The poll answer to vote for (poll).
    #[schema(minimum = 1, maximum = 1000)]
    pub answer_number: Option<i64>,
    /// Groups to invite from (invites_from_groups).
    #[schema(value_type = Option<crate::http::input::Lines>)]
    pub groups: Option<Vec<String>>,
    /// Search keywords (seo); a line may hold several, comma-separated.
    #[schema(value_type = Option<crate::http::input::Lines>)]
    pub keywords: Option<Vec<String>>,
    /// Country code or name (web_traffic).
    #[schema(value_type = Option<crate::http::input::Text255>)]
    pub country: Option<String>,
    /// 1 desktop, 2 Android, 3 iOS, 4 mixed mobile, 5 mixed all (web_traffic).
    #[schema(minimum = 1, maximum = 5)]
    pub device: Option<i64>,
    /// 1 Google keyword (with `google_keyword`), 2 custom referrer (with
    /// `referring_url`), 3 blank (web_traffic).
    #[schema(minimum = 1, maximum = 3)]
    pub type_of_traffic: Option<i64>,
    /// The keyword searched (web_traffic with type_of_traffic 1).
    #[schema(value_type = Option<crate::http::input::Text255>)]
    pub google_keyword: Option<String>,
    /// The referrer (web_traffic with type_of_traffic 2).
    #[schema(value_type = Option<crate::http::input::HttpUrl255>)]
    pub referring_url: Option<String>,
    /// Your own reference, echoed back.
    #[schema(value_type = Option<crate::http::input::Text200>)]
    pub external_ref: Option<String>,
}

/// `comments` on REST: an array of lines, or one text with a line per comment.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CommentLines {
    Lines(Vec<String>),
    Text(String),
}

impl CommentLines {
    fn into_lines(self) -> Vec<String> {
        match self {
            CommentLines::Lines(lines) => lines,
            CommentLines::Text(text) => vec![text],
        }
    }
}

impl From<CreateOrderRequest> for OrderRequest {
    fn from(request: CreateOrderRequest) -> OrderRequest {
        OrderRequest {
            service_id: request.service_id,
            input: OrderInput {
                link: request.link,
                quantity: request.quantity,
                runs: request.runs,
                interval: request.interval,
                fields: OrderFields {
                    comments: request.comments.map(CommentLines::into_lines),
                    usernames: request.usernames,
                    hashtags: request.hashtags,
                    hashtag: request.hashtag,
                    username: request.username,
                    media: request.media,
                    answer_number: request.answer_number,
                    groups: request.groups,
                    keywords: request.keywords,
                    country: request.country,
                    device: request.device,
                    type_of_traffic: request.type_of_traffic,
                    google_keyword: request.google_keyword,
                    referring_url: request.referring_url,
                },
                external_ref: request.external_ref,
            },
        }
    }
}

/// Place an order: prices it, debits the balance and records the charge in one transaction.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    request_body = CreateOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body replay the first response. 1 to 255 printable ASCII characters, no spaces", pattern = r"^[!-~]{1,255}$", min_length = 1, max_length = 255)),
    responses(
        (status = 201, description = "The order, charged", body = OrderResponse, headers(
            ("Location" = String, description = "The order's URL"),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored reply to an earlier request with the same Idempotency-Key"),
        ), links(
            ("FindOrder" = (operation_id = "find_order", parameters(("id" = "$response.body#/id")), description = "The order just placed")),
            ("CancelOrder" = (operation_id = "cancel_order", parameters(("id" = "$response.body#/id")), description = "Cancel it while it is pending")),
            ("CreateDispute" = (operation_id = "create_dispute", parameters(("id" = "$response.body#/id")), description = "Ask for a refund on it")),
            ("RecordOutcome" = (operation_id = "record_outcome", parameters(("id" = "$response.body#/id")), description = "Record its delivery outcome (operators)")),
        )),
        (status = 402, description = "The balance does not cover the charge", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Account suspended, or scope missing", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this Idempotency-Key is in flight, new orders to the service are paused (`service_paused`), or the account's currency is not the panel's (`currency_mismatch`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/orders")]
pub async fn create_order(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: OrderJson<CreateOrderRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersWrite)?;
    let key = rest_key(&req, &body.raw, &state.config)?;
    let request = OrderRequest::from(body.value);
    let account_id = caller.account_id;
    let placed = state
        .db(move |conn| Ok(application::orders::place(conn, account_id, request, key)?))
        .await?;
    let (id, mut response) = match placed {
        Placed::New(order) => {
            state.wake.notify();
            let id = order.id;
            let body =
                serde_json::to_string(&OrderResponse::from(*order)).map_err(ApiError::internal)?;
            (Some(id), answered(Dialect::Rest, Answer::OrderPlaced, body))
        }
        // The stored order's id, read back for `Location` only: the body goes as stored.
        Placed::Replayed(replay) => (
            serde_json::from_str::<serde_json::Value>(&replay.body)
                .ok()
                .and_then(|v| v.get("id").and_then(|id| id.as_i64()).map(OrderId)),
            replayed(replay),
        ),
    };
    let location = id.map(|id| format!("/v1/orders/{id}"));
    if let Some(location) = location.and_then(|l| header::HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// How REST words a cancel's refusal: one problem per variant, its status from its code.
impl From<CancelError> for ApiError {
    fn from(error: CancelError) -> ApiError {
        match error {
            CancelError::OrderNotFound => ApiError::not_found("order"),
            CancelError::ServiceNotFound => ApiError::not_found("service"),
            CancelError::Failed(error) => error,
            CancelError::NotOffered
            | CancelError::NotPending { .. }
            | CancelError::AlreadyFinal { .. }
            | CancelError::AlreadySent => ApiError::Refused {
                code: error.code(),
                detail: error.to_string(),
            },
        }
    }
}

/// How REST words an order's refusal: one problem per variant, its status from its code.
impl From<PlaceOrderError> for ApiError {
    fn from(error: PlaceOrderError) -> ApiError {
        let code = error.code();
        match error {
            PlaceOrderError::UnknownService => {
                ApiError::Validation(vec![FieldError::new("service_id", "no such service")])
            }
            PlaceOrderError::UnknownAccount => ApiError::not_found("account"),
            PlaceOrderError::Invalid(errors) if code == ErrorCode::ChargeTooSmall => {
                let first = &errors[0];
                ApiError::Invalid {
                    code,
                    detail: first.to_string(),
                    param: Some(first.field().to_string()),
                }
            }
            PlaceOrderError::Invalid(errors) => {
                ApiError::Validation(errors.iter().map(FieldError::from).collect())
            }
            PlaceOrderError::Idempotency(error) => error.into(),
            PlaceOrderError::Database(error) => error,
            PlaceOrderError::AccountSuspended
            | PlaceOrderError::ServicePaused
            | PlaceOrderError::ForeignCurrency { .. }
            | PlaceOrderError::InsufficientFunds { .. } => ApiError::Refused {
                code,
                detail: error.to_string(),
            },
        }
    }
}

/// One of your orders.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderResponse),
        (status = 404, description = "No such order among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/orders/{id}")]
pub async fn find_order(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersRead)?;
    let id = OrderId(id.into_inner());
    let order = state
        .read(move |conn| {
            orders::find_owned(conn, caller.account_id, id)?
                .ok_or_else(|| ApiError::not_found("order"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(OrderResponse::from(order)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListOrdersQuery {
    pub status: Option<OrderStatus>,
    #[param(value_type = Option<i64>)]
    pub service_id: Option<ServiceId>,
    /// Only the child orders of this subscription of yours.
    #[param(value_type = Option<i64>)]
    pub subscription_id: Option<SubscriptionId>,
    /// Orders created at or after this time (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Orders created before this time (RFC 3339).
    pub created_to: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Return orders older than this order id.
    pub starting_after: Option<i64>,
}

/// Your orders, newest first.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(ListOrdersQuery),
    responses((status = 200, description = "A page of orders", body = Page<OrderResponse>))
)]
#[get("/v1/orders")]
pub async fn list_orders(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListOrdersQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersRead)?;
    let query = query.0;
    let limit = page_limit(query.limit)?;
    let filter = OrderFilter {
        status: query.status,
        service_id: query.service_id,
        created_from: query.created_from.map(|t| t.naive_utc()),
        created_to: query.created_to.map(|t| t.naive_utc()),
        subscription_id: query.subscription_id,
    };
    let rows = state
        .db(move |conn| {
            Ok(orders::page(
                conn,
                caller.account_id,
                &filter,
                query.starting_after,
                limit + 1,
            )?)
        })
        .await?;
    Ok(page_response(
        &req,
        rows,
        limit,
        |o| o.id.get(),
        OrderResponse::from,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BatchStatusQuery {
    /// Comma-separated order ids, at most 100.
    #[param(example = "1,2,3")]
    #[param(value_type = crate::http::input::OrderIdList, inline)]
    pub ids: String,
}

#[derive(Serialize, ToSchema)]
pub struct ItemError {
    pub code: ErrorCode,
    pub detail: String,
}

#[derive(Serialize, ToSchema)]
pub struct OrderStatusItem {
    #[schema(value_type = i64)]
    pub id: OrderId,
    /// The order, when found; null otherwise.
    pub order: Option<OrderResponse>,
    /// Why this id has no order; null when found.
    pub error: Option<ItemError>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchStatusResponse {
    /// One item per requested id, in the order asked.
    pub data: Vec<OrderStatusItem>,
}

pub const MAX_BATCH: usize = 100;

/// Parses `1,2,3` into distinct ids, keeping their order.
pub fn parse_id_list(raw: &str, param: &str) -> Result<Vec<OrderId>, ApiError> {
    let mut ids = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let id: OrderId = part
            .parse()
            .map_err(|_| ApiError::invalid(param, format!("`{part}` is not an order id")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Err(ApiError::invalid(param, "name at least one order id"));
    }
    if ids.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            param,
            format!("at most {MAX_BATCH} ids at once"),
        ));
    }
    Ok(ids)
}

/// The status of up to 100 of your orders at once, with a per-id error for ids not found.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(BatchStatusQuery),
    responses((status = 200, description = "One result per id", body = BatchStatusResponse))
)]
#[get("/v1/orders/status")]
pub async fn batch_order_status(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<BatchStatusQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersRead)?;
    let ids = parse_id_list(&query.0.ids, "ids")?;
    let wanted = ids.clone();
    let found = state
        .read(move |conn| Ok(orders::find_owned_many(conn, caller.account_id, &wanted)?))
        .await?;
    let mut by_id: HashMap<OrderId, Order> = found.into_iter().map(|o| (o.id, o)).collect();
    let data = ids
        .into_iter()
        .map(|id| match by_id.remove(&id) {
            Some(order) => OrderStatusItem {
                id,
                order: Some(order.into()),
                error: None,
            },
            None => OrderStatusItem {
                id,
                order: None,
                error: Some(ItemError {
                    code: ErrorCode::NotFound,
                    detail: "order not found".into(),
                }),
            },
        })
        .collect();
    Ok(HttpResponse::Ok().json(BatchStatusResponse { data }))
}

/// Cancel one of your orders of a cancellable service. Not yet sent to its provider: it is
/// canceled and the whole charge comes back (200). Already with its provider: a cancel
/// request is sent upstream (202); the refund comes with the provider's next status
/// (canceled: in full; partial: the undelivered share), and a refusal leaves the order
/// running, with the provider's words on the request (`GET /v1/orders/{id}/cancel-requests`).
/// Asking again while the provider has not answered returns the same request.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Order id")),
    responses(
        (status = 200, description = "The canceled order and its refund", body = crate::api::refunds::SettlementResponse),
        (status = 202, description = "The order is with its provider: the cancel request sent upstream", body = crate::api::cancels::CancelRequestResponse, headers(
            ("Location" = String, description = "The order's cancel requests"),
        )),
        (status = 404, description = "No such order among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order has ended or is being sent, or its service does not allow cancel", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/orders/{id}/cancel")]
pub async fn cancel_order(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersWrite)?;
    let order_id = OrderId(id.into_inner());
    let account_id = caller.account_id;
    let canceled = state
        .db(move |conn| {
            Ok(application::cancels::cancel_order(
                conn, account_id, order_id,
            )?)
        })
        .await?;
    Ok(match canceled {
        Canceled::Refunded(settled) => {
            HttpResponse::Ok().json(crate::api::refunds::SettlementResponse::from(*settled))
        }
        Canceled::Requested(request) => {
            state.wake.notify();
            HttpResponse::Accepted()
                .insert_header((
                    actix_web::http::header::LOCATION,
                    format!("/v1/orders/{order_id}/cancel-requests"),
                ))
                .json(crate::api::cancels::CancelRequestResponse::from(request))
        }
    })
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequest {
    /// What the provider reported.
    pub status: OrderStatus,
    #[schema(minimum = 0)]
    pub start_count: Option<i64>,
    /// Units not delivered (over all runs of a drip-feed order). Negative means
    /// over-delivery and counts as zero. Required for `partial`.
    pub remains: Option<i64>,
    /// Drip-feed only: runs delivered in full; sets `remains` to the undelivered runs' units.
    #[schema(minimum = 0)]
    pub runs_delivered: Option<i64>,
    /// Recorded on the refund.
    #[schema(value_type = Option<crate::http::input::Text2000>)]
    pub note: Option<String>,
}

/// Record a delivery outcome by hand; refunds follow the same rule as the provider sync.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Order id")),
    request_body = OutcomeRequest,
    responses(
        (status = 200, description = "The order and the refund it produced, if any", body = crate::api::refunds::SettlementResponse),
        (status = 404, description = "No such order", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The outcome cannot apply to this order", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/orders/{id}/outcome")]
pub async fn record_outcome(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<OutcomeRequest>,
) -> Result<HttpResponse, ApiError> {
    let order_id = OrderId(id.into_inner());
    let request = body.value;
    let mut errors = Vec::new();
    if request.start_count.is_some_and(|c| c < 0) {
        errors.push(FieldError::new("start_count", "must not be negative"));
    }
    if request.runs_delivered.is_some_and(|r| r < 0) {
        errors.push(FieldError::new("runs_delivered", "must not be negative"));
    }
    if request.remains.is_some() && request.runs_delivered.is_some() {
        errors.push(FieldError::new(
            "runs_delivered",
            "give either remains or runs_delivered",
        ));
    }
    let note = crate::api::refunds::optional_text("note", request.note.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let outcome = Outcome {
        status: request.status,
        start_count: request.start_count,
        remains: request.remains,
        runs_delivered: request.runs_delivered,
        note,
    };
    let (admin_id, by) = (admin.0.account_id, admin.actor());
    let settled = state
        .db(move |conn| application::orders::record_outcome(conn, &by, admin_id, order_id, outcome))
        .await?;
    Ok(HttpResponse::Ok().json(crate::api::refunds::SettlementResponse::from(settled)))
}

/// A page query of what was asked for one order: (order id, after this id, at most).
type PageOfOrder<R> =
    fn(&mut crate::db::DbConnection, OrderId, Option<i64>, i64) -> diesel::QueryResult<Vec<R>>;

/// Up to `limit + 1` rows of what was asked for one of `account_id`'s orders (its refills,
/// its cancel requests), in id order after `starting_after`, for [`page_response`]; 404
/// unless the order is the account's.
pub(crate) async fn rows_of_order<R: Send + 'static>(
    state: &AppState,
    account_id: AccountId,
    order_id: OrderId,
    starting_after: Option<i64>,
    limit: i64,
    page: PageOfOrder<R>,
) -> Result<Vec<R>, ApiError> {
    state
        .db(move |conn| {
            orders::find_owned(conn, account_id, order_id)?
                .ok_or_else(|| ApiError::not_found("order"))?;
            Ok(page(conn, order_id, starting_after, limit + 1)?)
        })
        .await
}
