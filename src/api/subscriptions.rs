//! Subscriptions over REST: a reseller's create, list, read and cancel; an operator's
//! recorded post and local end.

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::application;
use crate::application::idempotency::{Answer, Dialect};
use crate::application::subscriptions::{Created, Post, SubscriptionError, SubscriptionRequest};
use crate::db::subscriptions;
use crate::domain::account::Scope;
use crate::domain::ids::{ServiceId, SubscriptionId};
use crate::domain::subscription::SubscriptionInput;
use crate::domain::FieldError;
use crate::error::ApiError;
use crate::http::auth::{Admin, Caller};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::idempotency::{answered, replayed, rest_key};
use crate::http::state::AppState;
use crate::http::wire::{page_limit, page_response, Page};
use crate::resources::{OrderResponse, SubscriptionResponse};

/// How REST words a subscription's refusal: one problem per variant, its status from its
/// code.
impl From<SubscriptionError> for ApiError {
    fn from(error: SubscriptionError) -> ApiError {
        let code = error.code();
        match error {
            SubscriptionError::UnknownService => {
                ApiError::Validation(vec![FieldError::new("service_id", "no such service")])
            }
            SubscriptionError::UnknownAccount => ApiError::not_found("account"),
            SubscriptionError::NotFound => ApiError::not_found("subscription"),
            SubscriptionError::Invalid(errors) => ApiError::Validation(
                errors
                    .into_iter()
                    .map(|e| FieldError::new(e.field, e.message))
                    .collect(),
            ),
            SubscriptionError::Idempotency(error) => error.into(),
            SubscriptionError::Database(error) => error,
            SubscriptionError::AccountSuspended
            | SubscriptionError::ServicePaused
            | SubscriptionError::ForeignCurrency { .. }
            | SubscriptionError::InsufficientFunds { .. }
            | SubscriptionError::Ended { .. } => ApiError::Refused {
                code,
                detail: error.to_string(),
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscriptionRequest {
    /// A service of type `subscriptions`.
    #[schema(value_type = i64)]
    pub service_id: ServiceId,
    /// The account whose new posts are served (`@` optional), or its profile's link; no
    /// spaces.
    #[schema(value_type = crate::http::input::Text255)]
    pub username: String,
    /// The fewest units per post: at least the service's `min`.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub min: i64,
    /// The most units per post: at most the service's `max`, at least `min`. The hold is
    /// priced at this.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub max: i64,
    /// New posts to serve: 1 to the service's `subscription.posts_max` (required: an
    /// unbounded subscription cannot be held).
    #[schema(minimum = 1, maximum = 10_000)]
    pub posts: i64,
    /// Posts already made to serve too, where the service's `subscription.old_posts` is
    /// true (0 to `posts_max`); left out: 0.
    #[schema(minimum = 0, maximum = 10_000)]
    pub old_posts: Option<i64>,
    /// Minutes after a post: one of the service's `subscription.delays`; left out: 0,
    /// where offered.
    #[schema(minimum = 0, maximum = 10_080)]
    pub delay: Option<i64>,
    /// The date it expires as it begins (UTC), `YYYY-MM-DD`, after today; left out: none.
    pub expiry: Option<NaiveDate>,
}

impl From<CreateSubscriptionRequest> for SubscriptionRequest {
    fn from(request: CreateSubscriptionRequest) -> SubscriptionRequest {
        SubscriptionRequest {
            service_id: request.service_id,
            input: SubscriptionInput {
                username: request.username,
                min: Some(request.min),
                max: Some(request.max),
                posts: Some(request.posts),
                old_posts: request.old_posts,
                delay: request.delay,
                expiry: request.expiry,
            },
        }
    }
}

/// Create a subscription: holds (posts + old_posts) × the charge of one order of `max`
/// units from the balance; each post served is a child order paid from the hold; what is
/// left is released when it ends.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    request_body = CreateSubscriptionRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body replay the first response. 1 to 255 printable ASCII characters, no spaces", pattern = r"^[!-~]{1,255}$", min_length = 1, max_length = 255)),
    responses(
        (status = 201, description = "The subscription, its hold taken", body = SubscriptionResponse, headers(
            ("Location" = String, description = "The subscription's URL"),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored reply to an earlier request with the same Idempotency-Key"),
        )),
        (status = 402, description = "The balance does not cover the hold", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Account suspended, or scope missing", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this Idempotency-Key is in flight, new orders to the service are paused, or the account's currency is not the panel's", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/subscriptions")]
pub async fn create_subscription(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateSubscriptionRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersWrite)?;
    let key = rest_key(&req, &body.raw, &state.config)?;
    let request = SubscriptionRequest::from(body.value);
    let account_id = caller.account_id;
    let created = state
        .db(move |conn| {
            Ok(application::subscriptions::create(
                conn, account_id, request, key,
            )?)
        })
        .await?;
    let (id, mut response) = match created {
        Created::New(sub) => {
            let body = serde_json::to_string(&SubscriptionResponse::new(&sub, Vec::new()))
                .map_err(ApiError::internal)?;
            (
                Some(sub.id),
                answered(Dialect::Rest, Answer::SubscriptionCreated, body),
            )
        }
        Created::Replayed(replay) => (
            serde_json::from_str::<serde_json::Value>(&replay.body)
                .ok()
                .and_then(|v| v.get("id").and_then(|id| id.as_i64()).map(SubscriptionId)),
            replayed(replay),
        ),
    };
    let location = id.map(|id| format!("/v1/subscriptions/{id}"));
    if let Some(location) = location.and_then(|l| header::HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListSubscriptionsQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Return subscriptions older than this id.
    pub starting_after: Option<i64>,
}

/// Your subscriptions, newest first (their children: `GET /v1/subscriptions/{id}`, or
/// `GET /v1/orders?subscription_id=`).
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(ListSubscriptionsQuery),
    responses((status = 200, description = "A page of subscriptions", body = Page<SubscriptionResponse>))
)]
#[get("/v1/subscriptions")]
pub async fn list_subscriptions(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListSubscriptionsQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersRead)?;
    let query = query.0;
    let limit = page_limit(query.limit)?;
    let rows = state
        .read(move |conn| {
            Ok(subscriptions::page(
                conn,
                caller.account_id,
                query.starting_after,
                limit + 1,
            )?)
        })
        .await?;
    Ok(page_response(
        &req,
        rows,
        limit,
        |s| s.id.get(),
        |s| SubscriptionResponse::new(&s, Vec::new()),
    ))
}

/// A subscription with its children.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionDetail {
    #[serde(flatten)]
    pub subscription: SubscriptionResponse,
    /// Its child orders, oldest first.
    pub children: Vec<OrderResponse>,
}

/// One of your subscriptions, with its child orders.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "The subscription and its children", body = SubscriptionDetail),
        (status = 404, description = "No such subscription among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/subscriptions/{id}")]
pub async fn find_subscription(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersRead)?;
    let id = SubscriptionId(id.into_inner());
    let detail = state
        .db(move |conn| {
            let sub = subscriptions::find_owned(conn, caller.account_id, id)?
                .ok_or_else(|| ApiError::not_found("subscription"))?;
            detail(conn, sub)
        })
        .await?;
    Ok(HttpResponse::Ok().json(detail))
}

fn detail(
    conn: &mut crate::db::DbConnection,
    sub: crate::domain::subscription::Subscription,
) -> Result<SubscriptionDetail, ApiError> {
    let ids = subscriptions::children(conn, sub.id)?;
    let mut children = Vec::with_capacity(ids.len());
    for id in &ids {
        if let Some(order) = crate::db::orders::find(conn, *id)? {
            children.push(OrderResponse::from(order));
        }
    }
    Ok(SubscriptionDetail {
        subscription: SubscriptionResponse::new(&sub, ids),
        children,
    })
}

/// Cancel your subscription. Without a provider it ends at once and what is still held
/// is released to the balance. One whose expiry date has already come ends as `expired`
/// instead (released the same way). A provider-backed one is forwarded to its provider
/// (202, still open, `status_reason` saying so): the hold is released when the provider
/// confirms; a provider that refuses leaves it open with its words in `status_reason`. One
/// not yet sent to its provider ends at once.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "The ended subscription (`canceled`, or `expired` when its expiry date had come), its hold released", body = SubscriptionResponse),
        (status = 202, description = "Forwarded to the provider: still open until it confirms", body = SubscriptionResponse),
        (status = 404, description = "No such subscription among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "It has already ended (`invalid_transition`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/subscriptions/{id}/cancel")]
pub async fn cancel_subscription(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersWrite)?;
    let id = SubscriptionId(id.into_inner());
    let account_id = caller.account_id;
    let sub = state
        .db(move |conn| Ok(application::subscriptions::cancel(conn, account_id, id)?))
        .await?;
    let body = SubscriptionResponse::new(&sub, Vec::new());
    Ok(if sub.status.is_terminal() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::Accepted().json(body)
    })
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordPostRequest {
    /// Names the post (its id or URL): the same key again records nothing new and answers
    /// the child already made.
    #[schema(value_type = crate::http::input::Text200)]
    pub post_key: String,
    /// The post's link, sent as the child order's link.
    #[schema(value_type = crate::http::input::Link)]
    pub link: String,
    /// Units for this post, the subscription's `min` to `max`; left out: `max`.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub quantity: Option<i64>,
}

/// A recorded post: its child order and the subscription after it.
#[derive(Serialize, ToSchema)]
pub struct RecordedPost {
    /// False when the post key was recorded before: nothing new was made.
    pub created: bool,
    pub order: OrderResponse,
    pub subscription: SubscriptionResponse,
}

/// Record a post of a subscription without a provider: creates its child order, paid from
/// the hold (once per post key). The last post completes the subscription and releases
/// what is left.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Subscription id")),
    request_body = RecordPostRequest,
    responses(
        (status = 201, description = "The post's child order, just made", body = RecordedPost),
        (status = 200, description = "The post key was recorded before: its child order", body = RecordedPost),
        (status = 402, description = "The hold is spent and the balance does not cover the child", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "It has ended or served every post (`invalid_transition`); one found past its expiry date is ended as `expired` (its hold released) and the post refused", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/subscriptions/{id}/posts")]
pub async fn record_post(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<RecordPostRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = SubscriptionId(id.into_inner());
    let request = body.value;
    let post = Post {
        key: request.post_key,
        link: request.link,
        quantity: request.quantity,
    };
    let by = admin.actor();
    let recorded = state
        .db(move |conn| {
            Ok(application::subscriptions::record_post(
                conn,
                &by,
                id,
                post.clone(),
            )?)
        })
        .await?;
    let body = RecordedPost {
        created: recorded.new,
        order: OrderResponse::from(recorded.order),
        subscription: SubscriptionResponse::new(&recorded.subscription, Vec::new()),
    };
    Ok(if body.created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndSubscriptionRequest {
    /// Why, kept on the subscription and in the audit log.
    #[schema(value_type = Option<crate::http::input::Text2000>)]
    pub reason: Option<String>,
}

/// End a subscription here (canceled): what is still held is released to the reseller's
/// balance. An upstream, when there is one, is left as it is.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Subscription id")),
    request_body = Option<EndSubscriptionRequest>,
    responses(
        (status = 200, description = "The ended subscription, its hold released", body = SubscriptionResponse),
        (status = 404, description = "No such subscription", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "It has already ended (`invalid_transition`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/admin/subscriptions/{id}/end")]
pub async fn end_subscription(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    body: ApiJson<EndSubscriptionRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = SubscriptionId(id.into_inner());
    let mut errors = Vec::new();
    let reason =
        crate::api::refunds::optional_text("reason", body.value.reason.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let by = admin.actor();
    let sub = state
        .db(move |conn| {
            Ok(application::subscriptions::end_by_operator(
                conn,
                &by,
                id,
                reason.clone(),
            )?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(SubscriptionResponse::new(&sub, Vec::new())))
}

/// Any subscription, with its children (operators).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "The subscription and its children", body = SubscriptionDetail),
        (status = 404, description = "No such subscription", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/admin/subscriptions/{id}")]
pub async fn find_admin_subscription(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = SubscriptionId(id.into_inner());
    let detail = state
        .db(move |conn| {
            let sub = subscriptions::find(conn, id)?
                .ok_or_else(|| ApiError::not_found("subscription"))?;
            detail(conn, sub)
        })
        .await?;
    Ok(HttpResponse::Ok().json(detail))
}
