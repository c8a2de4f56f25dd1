//! Short reads (`AppState::read`): inline on SQLite on each worker's read-only connection,
//! on the pool on PostgreSQL. They must see every write acknowledged before them, answer
//! the same as before, and never write.

use diesel::prelude::*;
use futures_util::future::join_all;
use reseller_api::db::{self, Backend};

use crate::helpers::*;

/// Each order is read back (v1 and API v2) right after its 201, while other orders are
/// being placed: every read sees its order, charged to the micro-unit.
#[actix_rt::test]
async fn a_read_right_after_an_acknowledged_order_sees_it_under_concurrent_writes() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("reader", "100").await;
    let service = app.service("1.5").await;
    let clients = (0..8).map(|_| async {
        for _ in 0..5 {
            let id = app.order_id(&reseller.token, service, 1000).await;
            let order = app.order_json(&reseller.token, id).await;
            assert_eq!(order["id"], id);
            assert_eq!(micros(&order["charge"]), 1_500_000);
            let id = id.to_string();
            let v2 = app
                .api_v2(&[("key", &reseller.key), ("action", "status"), ("order", &id)])
                .await;
            assert_eq!(v2.body["charge"], "1.5", "{}", v2.text);
            assert_eq!(v2.body["status"], "Pending", "{}", v2.text);
        }
    });
    join_all(clients).await;
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        100_000_000 - 40 * 1_500_000
    );
    app.assert_books_balance();
}

/// Someone else's order and a missing one read the same through the inline path: 404 on
/// v1, API v2's "Incorrect order ID".
#[actix_rt::test]
async fn an_order_of_another_account_is_not_found_on_either_api() {
    let app = spawn_app().await;
    let owner = app.funded_reseller("owner", "10").await;
    let other = app.funded_reseller("other", "10").await;
    let service = app.service("1").await;
    let id = app.order_id(&owner.token, service, 1000).await;
    app.get(&format!("/v1/orders/{id}"), &other.token)
        .await
        .assert_problem(404, "not_found");
    let id = id.to_string();
    let v2 = app
        .api_v2(&[("key", &other.key), ("action", "status"), ("order", &id)])
        .await;
    assert_eq!(v2.body["error"], "Incorrect order ID", "{}", v2.text);
    app.assert_books_balance();
}

/// The inline reader's connection cannot write: a write through it fails and changes
/// nothing (SQLite; PostgreSQL has no such connection).
#[actix_rt::test]
async fn the_sqlite_reader_connection_refuses_writes() {
    let app = spawn_app().await;
    let Some(mut reader) =
        db::reader::open(app.config.database_url.expose_secret()).expect("reader")
    else {
        assert!(matches!(
            Backend::from_url(app.config.database_url.expose_secret()),
            Backend::Postgres(_)
        ));
        return;
    };
    let reseller = app.funded_reseller("ro", "10").await;
    let written = diesel::sql_query("UPDATE accounts SET balance_micros = 0").execute(&mut reader);
    let error = written.expect_err("a write through the reader");
    assert!(error.to_string().contains("readonly"), "{error}");
    assert_eq!(app.balance_micros(&reseller.token).await, 10_000_000);
    app.assert_books_balance();
}
