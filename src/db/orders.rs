use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::backend::{get_result_native, lock_row};
use super::columns;
use super::schema::orders;
use super::{now, DbConnection, WriteConn};
use crate::domain::ids::{AccountId, OrderId, ServiceId, SubscriptionId};
use crate::domain::money::Money;
use crate::domain::order::{NewOrder, Order, OrderStatus};
use crate::domain::order_fields::OrderFields;
use crate::domain::refund::OrderBook;
use crate::domain::service::ServiceType;

/// Named columns: each field binds the column of its name (`super::columns`).
#[derive(Queryable, Selectable)]
#[diesel(table_name = orders, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct OrderRow {
    id: OrderId,
    account_id: AccountId,
    service_id: ServiceId,
    link: String,
    quantity: i64,
    runs: Option<i64>,
    run_interval: Option<i64>,
    comments: Option<String>,
    charge_micros: Money,
    refunded_micros: Money,
    #[diesel(deserialize_as = String)]
    status: OrderStatus,
    start_count: Option<i64>,
    remains: Option<i64>,
    external_ref: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    approved_dispute_micros: Money,
    #[diesel(deserialize_as = String)]
    service_type: ServiceType,
    #[diesel(deserialize_as = Option<String>)]
    order_fields: FieldsJson,
    subscription_id: Option<SubscriptionId>,
}

/// The type fields as stored: JSON of [`OrderFields`] without the comments, which have
/// their own column (one per line). A stored key the code does not know is an error.
struct FieldsJson(OrderFields);

impl TryFrom<Option<String>> for FieldsJson {
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn try_from(text: Option<String>) -> Result<FieldsJson, Self::Error> {
        let Some(text) = text else {
            return Ok(FieldsJson(OrderFields::default()));
        };
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)?;
        if let Some(unknown) = object.keys().find(|key| {
            key.as_str() == "comments"
                || crate::domain::order_fields::OrderField::parse(key).is_none()
        }) {
            return Err(format!("unknown order field {unknown:?} in stored order_fields").into());
        }
        Ok(FieldsJson(serde_json::from_value(
            serde_json::Value::Object(object),
        )?))
    }
}

/// The two columns the type fields are stored in: comments, and the JSON of the others.
fn stored_fields(fields: &OrderFields) -> (Option<String>, Option<String>) {
    let comments = fields.comments.as_ref().map(|lines| lines.join("\n"));
    let others = OrderFields {
        comments: None,
        ..fields.clone()
    };
    // Serializing a struct of strings and numbers cannot fail.
    let json = (!others.is_empty()).then(|| serde_json::to_string(&others).unwrap_or_default());
    (comments, json)
}

impl From<OrderRow> for Order {
    fn from(row: OrderRow) -> Order {
        let mut fields = row.order_fields.0;
        fields.comments = row
            .comments
            .map(|text| text.split('\n').map(str::to_string).collect());
        Order {
            kind: row.service_type,
            fields,
            id: row.id,
            account_id: row.account_id,
            service_id: row.service_id,
            link: row.link,
            quantity: row.quantity,
            runs: row.runs,
            interval: row.run_interval,
            charge: row.charge_micros,
            refunded: row.refunded_micros,
            status: row.status,
            start_count: row.start_count,
            remains: row.remains,
            external_ref: row.external_ref,
            created_at: row.created_at,
            updated_at: row.updated_at,
            approved_disputes: row.approved_dispute_micros,
            subscription_id: row.subscription_id,
        }
    }
}

fn to_orders(rows: Vec<OrderRow>) -> Vec<Order> {
    rows.into_iter().map(Order::from).collect()
}

/// Records a new pending order. Only its id comes back from the database: the rest is
/// what was written.
pub fn insert(conn: &mut WriteConn<'_>, order: &NewOrder) -> QueryResult<Order> {
    let conn: &mut DbConnection = conn;
    let at = now();
    let (comments, fields_json) = stored_fields(&order.fields);
    let id = diesel::insert_into(orders::table)
        .values((
            orders::account_id.eq(order.account_id),
            orders::service_id.eq(order.service_id),
            orders::link.eq(&order.link),
            orders::quantity.eq(order.quantity),
            orders::runs.eq(order.runs),
            orders::run_interval.eq(order.interval),
            orders::comments.eq(comments),
            orders::service_type.eq(order.kind.as_str()),
            orders::order_fields.eq(fields_json),
            orders::charge_micros.eq(order.charge.micros()),
            orders::refunded_micros.eq(0),
            orders::status.eq(OrderStatus::Pending.as_str()),
            orders::external_ref.eq(&order.external_ref),
            orders::created_at.eq(at),
            orders::updated_at.eq(at),
            orders::approved_dispute_micros.eq(0),
            orders::subscription_id.eq(order.subscription.as_ref().map(|s| s.0)),
            orders::subscription_post_key.eq(order.subscription.as_ref().map(|s| s.1.clone())),
        ))
        .returning(orders::id);
    let id = get_result_native(conn, id)?;
    Ok(Order {
        id,
        account_id: order.account_id,
        service_id: order.service_id,
        link: order.link.clone(),
        quantity: order.quantity,
        runs: order.runs,
        interval: order.interval,
        kind: order.kind,
        fields: order.fields.clone(),
        charge: order.charge,
        refunded: Money::ZERO,
        status: OrderStatus::Pending,
        start_count: None,
        remains: None,
        external_ref: order.external_ref.clone(),
        created_at: at,
        updated_at: at,
        approved_disputes: Money::ZERO,
        subscription_id: order.subscription.as_ref().map(|s| s.0),
    })
}

/// The order with this id, if it belongs to `account_id`.
pub fn find_owned(
    conn: &mut DbConnection,
    account_id: AccountId,
    id: OrderId,
) -> QueryResult<Option<Order>> {
    // By its key, so no `LIMIT` (see "one row by its key" in `db`); on the backend's
    // connection, so the statement is found by its type (`get_result_native`).
    let query = orders::table
        .find(id)
        .filter(orders::account_id.eq(account_id))
        .select(columns::<OrderRow>());
    get_result_native::<_, OrderRow>(conn, query)
        .optional()
        .map(|row| row.map(Order::from))
}

/// Those of `ids` that belong to `account_id`, in no particular order.
pub fn find_owned_many(
    conn: &mut DbConnection,
    account_id: AccountId,
    ids: &[OrderId],
) -> QueryResult<Vec<Order>> {
    orders::table
        .filter(orders::account_id.eq(account_id))
        .filter(orders::id.eq_any(ids))
        .select(columns::<OrderRow>())
        .load::<OrderRow>(conn)
        .map(to_orders)
}

/// Filters of the order list; every one optional.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub service_id: Option<ServiceId>,
    pub created_from: Option<NaiveDateTime>,
    pub created_to: Option<NaiveDateTime>,
    /// Only the child orders of this subscription.
    pub subscription_id: Option<SubscriptionId>,
}

/// One page of an account's orders, newest first, strictly older than `starting_after`.
pub fn page(
    conn: &mut DbConnection,
    account_id: AccountId,
    filter: &OrderFilter,
    starting_after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Order>> {
    let mut query = orders::table
        .filter(orders::account_id.eq(account_id))
        .order(orders::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(cursor) = starting_after {
        query = query.filter(orders::id.lt(cursor));
    }
    if let Some(status) = filter.status {
        query = query.filter(orders::status.eq(status.as_str()));
    }
    if let Some(service_id) = filter.service_id {
        query = query.filter(orders::service_id.eq(service_id));
    }
    if let Some(subscription_id) = filter.subscription_id {
        query = query.filter(orders::subscription_id.eq(subscription_id));
    }
    if let Some(from) = filter.created_from {
        query = query.filter(orders::created_at.ge(from));
    }
    if let Some(to) = filter.created_to {
        query = query.filter(orders::created_at.lt(to));
    }
    query
        .select(columns::<OrderRow>())
        .load::<OrderRow>(conn)
        .map(to_orders)
}

/// Every order's (id, account, charge, refunded) in id order after `after_id`, for `verify`.
pub fn scan_amounts(
    conn: &mut DbConnection,
    after_id: i64,
    limit: i64,
) -> QueryResult<Vec<(i64, i64, i64, i64)>> {
    orders::table
        .filter(orders::id.gt(after_id))
        .select((
            orders::id,
            orders::account_id,
            orders::charge_micros,
            orders::refunded_micros,
        ))
        .order(orders::id.asc())
        .limit(limit)
        .load(conn)
}

/// Reads an order and locks its row until the transaction ends (`FOR UPDATE` on
/// PostgreSQL; SQLite's immediate transaction already holds the database's write lock).
pub fn lock(
    conn: &mut DbConnection,
    id: OrderId,
    owner: Option<AccountId>,
) -> QueryResult<Option<Order>> {
    let row: Option<OrderRow> = lock_row(
        conn,
        orders::table.find(id).select(columns::<OrderRow>()),
        QueryDsl::for_update,
    )?;
    Ok(row
        .map(Order::from)
        .filter(|order| owner.is_none_or(|owner| order.account_id == owner)))
}

/// Writes the rule's new state of an order.
pub fn store_book(
    conn: &mut WriteConn<'_>,
    id: OrderId,
    book: &OrderBook,
    start_count: Option<i64>,
) -> QueryResult<Order> {
    let conn: &mut DbConnection = conn;
    diesel::update(orders::table.find(id))
        .set((
            orders::status.eq(book.status.as_str()),
            orders::remains.eq(book.remains),
            orders::start_count.eq(start_count),
            orders::approved_dispute_micros.eq(book.approved_disputes.micros()),
            orders::refunded_micros.eq(book.refunded.micros()),
            orders::updated_at.eq(now()),
        ))
        .returning(columns::<OrderRow>())
        .get_result::<OrderRow>(conn)
        .map(Order::from)
}

/// Ids of a service's orders still in flight (pending, processing, in progress), after `after_id`.
pub fn open_for_service(
    conn: &mut DbConnection,
    service_id: ServiceId,
    after_id: i64,
    limit: i64,
) -> QueryResult<Vec<OrderId>> {
    orders::table
        .filter(orders::service_id.eq(service_id))
        .filter(orders::status.eq_any([
            OrderStatus::Pending.as_str(),
            OrderStatus::Processing.as_str(),
            OrderStatus::InProgress.as_str(),
        ]))
        .filter(orders::id.gt(after_id))
        .select(orders::id)
        .order(orders::id.asc())
        .limit(limit)
        .load(conn)
}

/// The order with this id, whoever owns it (operators).
pub fn find(conn: &mut DbConnection, id: OrderId) -> QueryResult<Option<Order>> {
    orders::table
        .find(id)
        .select(columns::<OrderRow>())
        .first::<OrderRow>(conn)
        .optional()
        .map(|row| row.map(Order::from))
}

/// What an operator looks orders up by; every one optional.
#[derive(Debug, Clone, Default)]
pub struct LookupFilter {
    pub account_id: Option<AccountId>,
    /// The exact link the order was placed for.
    pub link: Option<String>,
}

/// One page of every account's orders, newest first, strictly older than `starting_after`.
pub fn lookup(
    conn: &mut DbConnection,
    filter: &LookupFilter,
    starting_after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Order>> {
    let mut query = orders::table
        .order(orders::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(cursor) = starting_after {
        query = query.filter(orders::id.lt(cursor));
    }
    if let Some(account_id) = filter.account_id {
        query = query.filter(orders::account_id.eq(account_id));
    }
    if let Some(link) = &filter.link {
        query = query.filter(orders::link.eq(link.clone()));
    }
    query
        .select(columns::<OrderRow>())
        .load::<OrderRow>(conn)
        .map(to_orders)
}

/// The orders with these ids, in id order.
pub fn find_many(conn: &mut DbConnection, ids: &[OrderId]) -> QueryResult<Vec<Order>> {
    orders::table
        .filter(orders::id.eq_any(ids))
        .order(orders::id.asc())
        .select(columns::<OrderRow>())
        .load::<OrderRow>(conn)
        .map(to_orders)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_fields_round_trip_and_an_unknown_key_is_an_error() {
        let fields = OrderFields {
            comments: Some(vec!["a".into(), "b".into()]),
            usernames: Some(vec!["ann".into()]),
            answer_number: Some(2),
            ..OrderFields::default()
        };
        let (comments, json) = stored_fields(&fields);
        assert_eq!(comments.as_deref(), Some("a\nb"));
        let read = FieldsJson::try_from(json).unwrap().0;
        assert_eq!(read.usernames, fields.usernames);
        assert_eq!(read.answer_number, Some(2));
        assert_eq!(read.comments, None);
        for stored in [
            r#"{"votes":3}"#,
            r#"{"comments":["a"]}"#,
            r#"{"answer_number":"x"}"#,
            "[]",
        ] {
            assert!(
                FieldsJson::try_from(Some(stored.to_string())).is_err(),
                "{stored}"
            );
        }
        assert_eq!(
            FieldsJson::try_from(None).unwrap().0,
            OrderFields::default()
        );
    }
}
