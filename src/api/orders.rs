use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::db::orders::OrderFilter;
use crate::db::refunds::{self, Trigger};
use crate::db::{
    self, accounts, idempotency, ledger, orders, provider_orders, services, DbConnection,
};
use crate::domain::account::{AccountStatus, Scope};
use crate::domain::ledger::LedgerKind;
use crate::domain::order::{plan_order, NewOrder, Order, OrderInput, OrderStatus};
use crate::domain::refund::{Change, RefundReason, RefundSource};
use crate::domain::FieldError;
use crate::error::{ApiError, ErrorCode};
use crate::http::auth::Admin;
use crate::http::auth::Caller;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::state::AppState;
use crate::http::wire::{page_limit, page_response, utc, Amount, Page};

#[derive(Serialize, ToSchema)]
pub struct OrderResponse {
    pub id: i64,
    pub service_id: i64,
    pub link: String,
    pub quantity: i64,
    /// Drip-feed runs; null for ordinary orders.
    pub runs: Option<i64>,
    /// Minutes between drip-feed runs; null for ordinary orders.
    pub interval: Option<i64>,
    pub charge: Amount,
    pub status: OrderStatus,
    /// The counter at the link when delivery started; null until known.
    pub start_count: Option<i64>,
    /// Units not delivered; null until known.
    pub remains: Option<i64>,
    /// Total refunded to the balance so far.
    pub refunded: Amount,
    /// The most that could still be refunded.
    pub refundable: Amount,
    pub external_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Order> for OrderResponse {
    fn from(order: Order) -> OrderResponse {
        OrderResponse {
            id: order.id,
            service_id: order.service_id,
            refundable: Amount::of(order.refundable()),
            link: order.link,
            quantity: order.quantity,
            runs: order.runs,
            interval: order.interval,
            charge: Amount::of(order.charge),
            status: order.status,
            start_count: order.start_count,
            remains: order.remains,
            refunded: Amount::of(order.refunded),
            external_ref: order.external_ref,
            created_at: utc(order.created_at),
            updated_at: utc(order.updated_at),
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    pub service_id: i64,
    #[schema(value_type = crate::http::input::Link)]
    pub link: String,
    /// Units to deliver; for custom-comment services it may be left out (one per comment).
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub quantity: Option<i64>,
    /// Drip-feed: how many runs of `quantity` each.
    #[schema(minimum = 2, maximum = 10_000)]
    pub runs: Option<i64>,
    /// Drip-feed: minutes between runs.
    #[schema(minimum = 1, maximum = 43_200)]
    pub interval: Option<i64>,
    /// Custom comments, one per line.
    pub comments: Option<String>,
    /// Your own reference, echoed back.
    #[schema(value_type = Option<crate::http::input::Text200>)]
    pub external_ref: Option<String>,
}

const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Reads the optional `Idempotency-Key`: 1 to 255 printable ASCII characters.
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .map(|k| Some(k.to_string()))
        .ok_or_else(|| {
            ApiError::invalid(
                IDEMPOTENCY_HEADER,
                "must be 1 to 255 printable ASCII characters",
            )
        })
}

/// A fingerprint of a JSON body that ignores key order and whitespace.
pub fn request_hash(body: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(body.to_string().as_bytes()))
}

/// A response stored with an idempotency key, or about to be.
pub struct Stored {
    pub status: u16,
    pub body: String,
    pub replayed: bool,
}

impl Stored {
    pub fn into_response(self) -> HttpResponse {
        let status = actix_web::http::StatusCode::from_u16(self.status)
            .unwrap_or(actix_web::http::StatusCode::OK);
        let mut response = HttpResponse::build(status);
        response.content_type("application/json");
        if self.replayed {
            response.insert_header(("Idempotent-Replayed", "true"));
        }
        response.body(self.body)
    }
}

/// Stores the response under the request's idempotency claim, inside the work's own
/// transaction; if the claim was taken over meanwhile, the work is rolled back with 409.
pub fn store_response(
    conn: &mut DbConnection,
    claim: idempotency::Held,
    status: u16,
    body: &str,
) -> Result<(), ApiError> {
    if idempotency::finish(conn, claim, status, body)? {
        Ok(())
    } else {
        Err(ApiError::Conflict {
            code: ErrorCode::IdempotencyKeyInFlight,
            detail:
                "another request with this Idempotency-Key took over; retry to get its response"
                    .into(),
        })
    }
}

/// Runs `work` at most once per idempotency key: claims the key, runs `work` (which must
/// call [`idempotency::finish`] inside its own transaction), and gives the claim back if
/// `work` fails, so a corrected retry with the same key can run.
pub fn with_idempotency(
    conn: &mut DbConnection,
    account_id: i64,
    scope: &str,
    key: Option<(String, String)>,
    work: impl FnOnce(&mut DbConnection, Option<idempotency::Held>) -> Result<Stored, ApiError>,
) -> Result<Stored, ApiError> {
    let claim = match &key {
        None => None,
        Some((key, hash)) => match idempotency::claim(conn, account_id, scope, key, hash)? {
            idempotency::Claim::Started(held) => Some(held),
            idempotency::Claim::Replay { status, body } => {
                return Ok(Stored {
                    status,
                    body,
                    replayed: true,
                })
            }
            idempotency::Claim::Mismatch => {
                return Err(ApiError::Unprocessable {
                    code: ErrorCode::IdempotencyKeyReused,
                    detail: "this Idempotency-Key was already used with a different request body"
                        .into(),
                    param: Some(IDEMPOTENCY_HEADER.into()),
                })
            }
            idempotency::Claim::InFlight => return Err(ApiError::Conflict {
                code: ErrorCode::IdempotencyKeyInFlight,
                detail:
                    "a request with this Idempotency-Key is still being processed; retry shortly"
                        .into(),
            }),
        },
    };
    let result = work(conn, claim);
    if let (Err(_), Some(id)) = (&result, claim) {
        if let Err(e) = idempotency::release(conn, id) {
            tracing::warn!(error = %e, "could not release an idempotency claim; it expires on its own");
        }
    }
    result
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
        (status = 409, description = "A request with this Idempotency-Key is in flight", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/orders")]
pub async fn create_order(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateOrderRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersWrite)?;
    let key = idempotency_key(&req)?.map(|k| (k, request_hash(&body.raw)));
    let request = body.value;
    let account_id = caller.account_id;
    let stored = state
        .db(move |conn| {
            with_idempotency(conn, account_id, "create_order", key, |conn, claim| {
                db::write_tx(conn, |conn| {
                    let order = place_order(conn, account_id, request)?;
                    let body = serde_json::to_string(&OrderResponse::from(order))
                        .map_err(ApiError::internal)?;
                    if let Some(claim) = claim {
                        store_response(conn, claim, 201, &body)?;
                    }
                    Ok(Stored {
                        status: 201,
                        body,
                        replayed: false,
                    })
                })
            })
        })
        .await?;
    if !stored.replayed {
        state.wake.notify();
    }
    let location = serde_json::from_str::<serde_json::Value>(&stored.body)
        .ok()
        .and_then(|v| v.get("id").and_then(|id| id.as_i64()))
        .map(|id| format!("/v1/orders/{id}"));
    let mut response = stored.into_response();
    if let Some(location) = location.and_then(|l| header::HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The order transaction's body: checks, prices, debits with one conditional statement,
/// records the order and its ledger entry. Call inside a write transaction.
pub fn place_order(
    conn: &mut DbConnection,
    account_id: i64,
    request: CreateOrderRequest,
) -> Result<Order, ApiError> {
    let account =
        accounts::find(conn, account_id)?.ok_or_else(|| ApiError::not_found("account"))?;
    if account.status != AccountStatus::Active {
        return Err(ApiError::Forbidden {
            code: ErrorCode::AccountSuspended,
            detail: "this account is suspended and cannot place orders".into(),
        });
    }
    let service = services::find_shared(conn, request.service_id)?.ok_or_else(|| {
        ApiError::Validation(vec![FieldError::new("service_id", "no such service")])
    })?;
    let planned = plan_order(
        account_id,
        &service,
        OrderInput {
            link: request.link,
            quantity: request.quantity,
            runs: request.runs,
            interval: request.interval,
            comments: request.comments,
            external_ref: request.external_ref,
        },
    )?;
    let order = place_order_planned(conn, planned)?;
    if let Some((provider_id, remote_service)) = &service.provider {
        // Sent by the worker once this transaction has committed, never inside it.
        let key = format!(
            "order-{}-{}",
            order.id,
            crate::domain::api_key::random_token(8)
        );
        provider_orders::enqueue(conn, order.id, *provider_id, remote_service, &key)?;
    }
    Ok(order)
}

/// Records a priced order and debits its charge with one conditional statement, so the
/// balance can never be overdrawn. Call inside a write transaction.
pub fn place_order_planned(conn: &mut DbConnection, planned: NewOrder) -> Result<Order, ApiError> {
    let order = orders::insert(conn, &planned)?;
    let refs = ledger::Refs {
        order_id: Some(order.id),
        ..Default::default()
    };
    let debited = ledger::post(
        conn,
        planned.account_id,
        LedgerKind::OrderCharge,
        -planned.charge.micros(),
        refs,
        ledger::Overdraft::Refuse,
    )?;
    if debited.is_none() {
        let balance = accounts::find(conn, planned.account_id)?.map_or(0, |a| a.balance_micros);
        return Err(ApiError::PaymentRequired {
            code: ErrorCode::InsufficientFunds,
            detail: format!(
                "the order costs {} but the balance is {}",
                planned.charge,
                crate::domain::money::format_micros(balance)
            ),
        });
    }
    Ok(order)
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
    let id = id.into_inner();
    let order = state
        .db(move |conn| {
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
    pub service_id: Option<i64>,
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
        |o| o.id,
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
    pub id: i64,
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
pub fn parse_id_list(raw: &str, param: &str) -> Result<Vec<i64>, ApiError> {
    let mut ids = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let id: i64 = part
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
        .db(move |conn| Ok(orders::find_owned_many(conn, caller.account_id, &wanted)?))
        .await?;
    let mut by_id: HashMap<i64, Order> = found.into_iter().map(|o| (o.id, o)).collect();
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

/// Cancel one of your pending orders of a cancellable service; the whole charge comes back.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Order id")),
    responses(
        (status = 200, description = "The canceled order and its refund", body = crate::api::refunds::SettlementResponse),
        (status = 404, description = "No such order among yours", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is no longer pending, or its service does not allow cancel", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/orders/{id}/cancel")]
pub async fn cancel_order(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersWrite)?;
    let order_id = id.into_inner();
    let account_id = caller.account_id;
    let settled = state
        .db(move |conn| db::write_tx(conn, |conn| cancel_owned_order(conn, account_id, order_id)))
        .await?;
    Ok(HttpResponse::Ok().json(crate::api::refunds::SettlementResponse::from(settled)))
}

/// A reseller's cancel of its own pending order, refunded in full. Call inside a write
/// transaction.
pub fn cancel_owned_order(
    conn: &mut DbConnection,
    account_id: i64,
    order_id: i64,
) -> Result<refunds::Settled, ApiError> {
    let order = orders::lock(conn, order_id, Some(account_id))?
        .ok_or_else(|| ApiError::not_found("order"))?;
    let service =
        services::find(conn, order.service_id)?.ok_or_else(|| ApiError::not_found("service"))?;
    if !service.cancel {
        return Err(ApiError::Conflict {
            code: ErrorCode::NotCancelable,
            detail: "this order's service does not allow cancel".into(),
        });
    }
    if order.status != OrderStatus::Pending {
        return Err(ApiError::Conflict {
            code: ErrorCode::NotCancelable,
            detail: format!(
                "only pending orders can be canceled; this one is {}",
                order.status
            ),
        });
    }
    if provider_orders::find(conn, order_id)?.is_some()
        && !provider_orders::withdraw(conn, order_id)?
    {
        return Err(ApiError::Conflict {
            code: ErrorCode::NotCancelable,
            detail: "this order was already sent to the provider".into(),
        });
    }
    let mut trigger = Trigger::new(
        Change {
            status: Some(OrderStatus::Canceled),
            ..Change::default()
        },
        RefundReason::CanceledByReseller,
        RefundSource::Reseller,
    );
    trigger.owner = Some(account_id);
    trigger.decided_by = Some(account_id);
    Ok(refunds::settle(conn, order_id, trigger)?)
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
    let order_id = id.into_inner();
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
    let admin_id = admin.0.account_id;
    let settled = state
        .db(move |conn| {
            db::write_tx(conn, |conn| {
                let mut remains = request.remains;
                if let Some(delivered) = request.runs_delivered {
                    let order = orders::lock(conn, order_id, None)?
                        .ok_or_else(|| ApiError::not_found("order"))?;
                    let runs = order.runs.ok_or_else(|| {
                        ApiError::invalid("runs_delivered", "this is not a drip-feed order")
                    })?;
                    remains = Some((runs - delivered).max(0) * order.quantity);
                }
                let mut trigger = Trigger::new(
                    Change {
                        status: Some(request.status),
                        remains,
                        approve: 0,
                    },
                    crate::domain::refund::reason_for(request.status),
                    RefundSource::Admin,
                );
                trigger.start_count = request.start_count;
                trigger.decided_by = Some(admin_id);
                trigger.note = note;
                Ok(refunds::settle(conn, order_id, trigger)?)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(crate::api::refunds::SettlementResponse::from(settled)))
}
