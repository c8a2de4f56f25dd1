//! PostgreSQL round trips of one order: every statement `POST /v1/orders`'s transaction
//! sends, counted with diesel's instrumentation on the connection that runs it (the same
//! `application::orders::place` the handler calls), then the order checked through
//! HTTP and the books. On SQLite the transaction runs on the writer thread's connection
//! (and a round trip is a function call), so there is nothing to count there.

use std::sync::{Arc, Mutex};

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::Connection;
use reseller_api::application::idempotency::{request_hash, Dialect, IdempotencyKey};
use reseller_api::application::orders::{place, OrderRequest, Placed};
use reseller_api::db::{Backend, DbConnection};
use reseller_api::domain::order::OrderInput;
use serde_json::json;

use crate::helpers::*;

/// The statements a connection sends, in order.
#[derive(Clone, Default)]
struct Statements(Arc<Mutex<Vec<String>>>);

impl Instrumentation for Statements {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            self.0.lock().unwrap().push(query.to_string());
        }
    }
}

/// What the order transaction costs today, statement by statement (BEGIN and COMMIT
/// included). Lower it when a change saves one; never raise it without a reason.
const STATEMENTS_PER_ORDER: usize = 9;

#[actix_rt::test]
async fn an_order_on_postgresql_costs_a_fixed_small_number_of_statements() {
    let app = spawn_app().await;
    if !matches!(
        Backend::from_url(app.config.database_url.expose_secret()),
        Backend::Postgres(_)
    ) {
        return;
    }
    let reseller = app.funded_reseller("rt", "10").await;
    let service = app.service("2.5").await;
    let mut pooled = app.pool.get().unwrap();
    let conn: &mut DbConnection = &mut pooled;
    let seen = Statements::default();
    conn.set_instrumentation(seen.clone());
    let request = OrderRequest {
        service_id: reseller_api::domain::ids::ServiceId(service),
        input: OrderInput {
            link: "https://example.com/p/1".into(),
            quantity: Some(1000),
            runs: None,
            interval: None,
            fields: Default::default(),
            external_ref: None,
        },
    };
    let key = IdempotencyKey {
        key: "rt-1".into(),
        request_hash: request_hash(&json!({"n": 1})),
        ttl: chrono::Duration::hours(24),
        dialect: Dialect::Rest,
        status_of: reseller_api::http::idempotency::status_of,
    };
    let placed = place(
        conn,
        reseller_api::domain::ids::AccountId(reseller.id),
        request,
        Some(key),
    )
    .map_err(|e| format!("{e:?}"))
    .expect("order placed");
    let statements = seen.0.lock().unwrap().clone();
    assert_eq!(
        statements.len(),
        STATEMENTS_PER_ORDER,
        "the order's statements:\n{}",
        statements.join("\n")
    );
    drop(pooled);

    // The order is there, charged to the micro-unit, and the books balance.
    let Placed::New(order) = placed else {
        panic!("a new key placed a new order")
    };
    let id = order.id.get();
    let order = app.order_json(&reseller.token, id).await;
    assert_eq!(micros(&order["charge"]), 2_500_000);
    assert_eq!(app.balance_micros(&reseller.token).await, 7_500_000);
    app.assert_books_balance();
}
