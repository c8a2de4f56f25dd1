//! Order lookup for operators: any account's orders by reseller or link, and one order
//! with its ledger entries, refunds and exchanges with its provider.

use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ledger::LedgerEntryResponse;
use super::orders::OrderResponse;
use super::provider_money::OrderMoneyResponse;
use super::providers::ForwardingResponse;
use super::refunds::RefundResponse;
use crate::db::orders::{self, LookupFilter};
use crate::db::{costs, ledger, provider_orders, refunds};
use crate::domain::ids::{AccountId, OrderId, ProviderId};
use crate::domain::order::{Order, MAX_LINK_CHARS};
use crate::domain::parse_text;
use crate::error::ApiError;
use crate::http::auth::Admin;
use crate::http::extract::ApiQuery;
use crate::http::state::AppState;
use crate::http::wire::{page_limit, page_response, utc, Page};

/// Exchanges with the provider shown with an order.
const ATTEMPTS_SHOWN: i64 = 20;

/// An order as operators see it: with the account that placed it.
#[derive(Serialize, ToSchema)]
pub struct AdminOrderResponse {
    #[schema(value_type = i64)]
    pub account_id: AccountId,
    #[serde(flatten)]
    pub order: OrderResponse,
}

impl From<Order> for AdminOrderResponse {
    fn from(order: Order) -> AdminOrderResponse {
        AdminOrderResponse {
            account_id: order.account_id,
            order: order.into(),
        }
    }
}

/// One exchange with a provider, as recorded before and after it was sent.
#[derive(Serialize, ToSchema)]
pub struct AttemptResponse {
    pub id: i64,
    #[schema(value_type = i64)]
    pub provider_id: ProviderId,
    #[schema(value_type = Option<i64>)]
    pub order_id: Option<OrderId>,
    /// `add` or `status`.
    pub action: String,
    /// How the reply was read (`accepted`, `rejected`, `unreadable`, `read`, …).
    pub outcome: String,
    pub http_status: Option<i32>,
    /// The provider's raw reply, truncated to 2 KiB; null once the retention period passed.
    pub body: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<provider_orders::Attempt> for AttemptResponse {
    fn from(a: provider_orders::Attempt) -> AttemptResponse {
        AttemptResponse {
            id: a.id,
            provider_id: a.provider_id,
            order_id: a.order_id,
            action: a.action,
            outcome: a.outcome,
            http_status: a.http_status,
            body: a.body,
            created_at: utc(a.created_at),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LookupOrdersQuery {
    /// One reseller's orders.
    #[param(value_type = Option<i64>)]
    pub account_id: Option<AccountId>,
    /// Orders placed for exactly this link (surrounding white space is trimmed).
    #[param(value_type = Option<crate::http::input::Link>)]
    pub link: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Return orders older than this order id.
    pub starting_after: Option<i64>,
}

/// Every account's orders, newest first, by reseller or by link.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(LookupOrdersQuery),
    responses((status = 200, description = "A page of orders", body = Page<AdminOrderResponse>))
)]
#[get("/v1/admin/orders")]
pub async fn list_admin_orders(
    req: HttpRequest,
    state: web::Data<AppState>,
    _admin: Admin,
    query: ApiQuery<LookupOrdersQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.0;
    let limit = page_limit(query.limit)?;
    // The rule links are placed under: no order has any other link.
    let link = match query.link.as_deref().map(|l| parse_text(l, MAX_LINK_CHARS)) {
        Some(Err(message)) => return Err(ApiError::invalid("link", message)),
        Some(Ok(link)) if link.chars().any(char::is_whitespace) => {
            return Err(ApiError::invalid("link", "must not contain spaces"))
        }
        Some(Ok(link)) => Some(link),
        None => None,
    };
    let filter = LookupFilter {
        account_id: query.account_id,
        link,
    };
    let after = query.starting_after;
    let rows = state
        .db(move |conn| Ok(orders::lookup(conn, &filter, after, limit + 1)?))
        .await?;
    Ok(page_response(
        &req,
        rows,
        limit,
        |o| o.id.get(),
        AdminOrderResponse::from,
    ))
}

#[derive(Serialize, ToSchema)]
pub struct OrderCaseResponse {
    pub order: AdminOrderResponse,
    /// Every balance change of this order (its charge, its refunds), oldest first.
    pub ledger: Vec<LedgerEntryResponse>,
    /// Its refunds and refund requests, oldest first.
    pub refunds: Vec<RefundResponse>,
    /// Where the order stands upstream; null when no provider delivers it.
    pub forwarding: Option<ForwardingResponse>,
    /// The latest exchanges with the provider about it, newest first.
    pub attempts: Vec<AttemptResponse>,
    /// What it cost us and earned (operators only); null for an order no provider took.
    pub money: Option<OrderMoneyResponse>,
}

/// Any order, with its ledger entries, refunds and provider exchanges.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order and its books", body = OrderCaseResponse),
        (status = 404, description = "No such order", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/admin/orders/{id}")]
pub async fn find_admin_order(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = OrderId(id.into_inner());
    let response = state
        .db(move |conn| {
            let order = orders::find(conn, id)?.ok_or_else(|| ApiError::not_found("order"))?;
            let money = costs::find(conn, id)?
                .map(|cost| OrderMoneyResponse::of(cost, order.charge, order.refunded));
            Ok(OrderCaseResponse {
                money,
                order: order.into(),
                ledger: ledger::for_order(conn, id)?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
                refunds: refunds::for_order(conn, id)?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
                forwarding: provider_orders::find(conn, id)?.map(Into::into),
                attempts: provider_orders::attempts_for(conn, id, ATTEMPTS_SHOWN)?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(response))
}
