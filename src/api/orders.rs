use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::{page_limit, page_response, utc, Amount, ApiJson, ApiQuery, Page};
use crate::app::AppState;
use crate::auth::Caller;
use crate::db::orders::OrderFilter;
use crate::db::{self, accounts, idempotency, ledger, orders, services, DbConnection};
use crate::domain::account::{AccountStatus, Scope};
use crate::domain::ledger::LedgerKind;
use crate::domain::order::{plan_order, Order, OrderInput, OrderStatus};
use crate::domain::FieldError;
use crate::error::ApiError;

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
    pub link: String,
    /// Units to deliver; for custom-comment services it may be left out (one per comment).
    pub quantity: Option<i64>,
    /// Drip-feed: how many runs of `quantity` each.
    pub runs: Option<i64>,
    /// Drip-feed: minutes between runs.
    pub interval: Option<i64>,
    /// Custom comments, one per line.
    pub comments: Option<String>,
    /// Your own reference, echoed back.
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

/// Runs `work` at most once per idempotency key: claims the key, runs `work` (which must
/// call [`idempotency::finish`] inside its own transaction), and gives the claim back if
/// `work` fails, so a corrected retry with the same key can run.
pub fn with_idempotency(
    conn: &mut DbConnection,
    account_id: i64,
    scope: &str,
    key: Option<(String, String)>,
    work: impl FnOnce(&mut DbConnection, Option<i64>) -> Result<Stored, ApiError>,
) -> Result<Stored, ApiError> {
    let claim = match &key {
        None => None,
        Some((key, hash)) => match idempotency::claim(conn, account_id, scope, key, hash)? {
            idempotency::Claim::Started(id) => Some(id),
            idempotency::Claim::Replay { status, body } => {
                return Ok(Stored {
                    status,
                    body,
                    replayed: true,
                })
            }
            idempotency::Claim::Mismatch => {
                return Err(ApiError::Unprocessable {
                    code: "idempotency_key_reused",
                    detail: "this Idempotency-Key was already used with a different request body"
                        .into(),
                    param: Some(IDEMPOTENCY_HEADER.into()),
                })
            }
            idempotency::Claim::InFlight => return Err(ApiError::Conflict {
                code: "idempotency_key_in_flight",
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
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body replay the first response")),
    responses(
        (status = 201, description = "The order, charged", body = OrderResponse, headers(("Location" = String, description = "The order's URL"))),
        (status = 402, description = "The balance does not cover the charge", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Account suspended, or scope missing", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this Idempotency-Key is in flight", body = crate::error::Problem, content_type = "application/problem+json"),
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
                        idempotency::finish(conn, claim, 201, &body)?;
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
            code: "account_suspended",
            detail: "this account is suspended and cannot place orders".into(),
        });
    }
    let service = services::find(conn, request.service_id)?.ok_or_else(|| {
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
    let order = orders::insert(conn, &planned)?;
    let refs = ledger::Refs {
        order_id: Some(order.id),
        ..Default::default()
    };
    ledger::post(
        conn,
        account_id,
        LedgerKind::OrderCharge,
        -planned.charge.micros(),
        refs,
        ledger::Overdraft::Refuse,
    )?
    .ok_or_else(|| ApiError::PaymentRequired {
        code: "insufficient_funds",
        detail: format!(
            "the order costs {} but the balance is {}",
            planned.charge,
            crate::domain::money::format_micros(account.balance_micros)
        ),
    })?;
    Ok(order)
}

/// One of your orders.
#[utoipa::path(
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderResponse),
        (status = 404, description = "No such order among yours", body = crate::error::Problem, content_type = "application/problem+json"),
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
    pub ids: String,
}

#[derive(Serialize, ToSchema)]
pub struct ItemError {
    #[schema(example = "not_found")]
    pub code: String,
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
                    code: "not_found".into(),
                    detail: "order not found".into(),
                }),
            },
        })
        .collect();
    Ok(HttpResponse::Ok().json(BatchStatusResponse { data }))
}
