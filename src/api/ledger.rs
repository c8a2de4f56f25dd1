use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::ledger;
use crate::domain::account::Scope;
use crate::domain::ids::{OrderId, RefundId, SubscriptionId, TopUpId};
use crate::domain::ledger::{LedgerEntry, LedgerKind};
use crate::error::ApiError;
use crate::http::auth::Caller;
use crate::http::extract::ApiQuery;
use crate::http::state::AppState;
use crate::http::wire::{page_limit, page_response, utc, Amount, Page};

#[derive(Serialize, ToSchema)]
pub struct LedgerEntryResponse {
    pub id: i64,
    pub kind: LedgerKind,
    /// The change of the available balance, signed: credits positive, debits negative.
    pub amount: Amount,
    pub balance_after: Amount,
    /// The change of the held balance (money held for subscriptions), signed: a
    /// `subscription_hold` moves `-amount` into it, a child order's `order_charge` is paid
    /// from it, a `subscription_release` moves it back. "0.000000" when it is not moved.
    pub held_amount: Amount,
    /// The held balance after this entry, where it moves it ("0.000000" otherwise).
    pub held_after: Amount,
    /// The subscription a hold, a release or a charge paid from the hold is for.
    #[schema(value_type = Option<i64>)]
    pub subscription_id: Option<SubscriptionId>,
    #[schema(value_type = Option<i64>)]
    pub order_id: Option<OrderId>,
    #[schema(value_type = Option<i64>)]
    pub refund_id: Option<RefundId>,
    #[schema(value_type = Option<i64>)]
    pub top_up_id: Option<TopUpId>,
    pub created_at: DateTime<Utc>,
}

impl From<LedgerEntry> for LedgerEntryResponse {
    fn from(entry: LedgerEntry) -> LedgerEntryResponse {
        LedgerEntryResponse {
            id: entry.id,
            kind: entry.kind,
            amount: Amount::of(entry.amount),
            balance_after: Amount::of(entry.balance_after),
            held_amount: Amount::of(entry.held_amount),
            held_after: Amount::of(entry.held_after),
            subscription_id: entry.subscription_id,
            order_id: entry.order_id,
            refund_id: entry.refund_id,
            top_up_id: entry.top_up_id,
            created_at: utc(entry.created_at),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListLedgerQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Return entries older than this entry id.
    pub starting_after: Option<i64>,
}

/// The account's balance history, newest first.
#[utoipa::path(
    tag = "account",
    security(("bearer" = [])),
    params(ListLedgerQuery),
    responses((status = 200, description = "A page of ledger entries", body = Page<LedgerEntryResponse>))
)]
#[get("/v1/ledger")]
pub async fn list_ledger(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<ListLedgerQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::OrdersRead)?;
    let query = query.0;
    let limit = page_limit(query.limit)?;
    let rows = state
        .db(move |conn| {
            Ok(ledger::page(
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
        |e| e.id,
        LedgerEntryResponse::from,
    ))
}
