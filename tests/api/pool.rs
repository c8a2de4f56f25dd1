//! A PostgreSQL that drops every pooled connection (a restart, an operator's
//! `pg_terminate_backend`) costs at most one failed request per dropped connection,
//! answered 503 `unavailable` (never 500), and the pool heals: r2d2 tests each connection
//! on checkout and replaces the dead ones.

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::PgConnection;

use crate::helpers::spawn_app;

#[derive(QueryableByName)]
struct Terminated {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[actix_rt::test]
async fn connections_the_server_dropped_cost_at_most_one_503_each_and_are_replaced() {
    let app = spawn_app().await;
    if !app
        .config
        .database_url
        .expose_secret()
        .starts_with("postgres")
    {
        eprintln!("PostgreSQL only: set TEST_DATABASE_URL");
        return;
    }
    let reseller = app.funded_reseller("pool", "10").await;
    let service = app.service("1").await;
    let placed = app.order(&reseller.token, service, 1000).await;
    assert_eq!(placed.status, 201, "{}", placed.text);
    let order_id = placed.body["id"].as_i64().unwrap();
    // Warm the pool: reads on several connections at once.
    let path = format!("/v1/orders/{order_id}");
    let warm =
        futures_util::future::join_all((0..8).map(|_| app.get(&path, &reseller.token))).await;
    assert!(warm.iter().all(|r| r.status == 200));

    // The server drops every connection of this database but the one asking.
    let mut admin = PgConnection::establish(app.config.database_url.expose_secret()).unwrap();
    let killed = diesel::sql_query(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .get_result::<Terminated>(&mut admin)
    .unwrap();
    assert!(killed.n > 0, "no pooled connection to drop");
    std::thread::sleep(std::time::Duration::from_millis(200));

    let pool_size = app.pool.state().connections as i64;
    let mut failed = 0;
    let mut ok_in_a_row = 0;
    for _ in 0..(pool_size * 3 + 10) {
        let reply = app.get(&path, &reseller.token).await;
        if reply.status == 200 {
            ok_in_a_row += 1;
            assert_eq!(reply.body["id"].as_i64(), Some(order_id));
        } else {
            reply.assert_problem(503, "unavailable");
            assert!(!reply.text.contains("postgres://"), "{}", reply.text);
            failed += 1;
            ok_in_a_row = 0;
        }
    }
    eprintln!(
        "{failed} failed requests for {} dropped connections",
        killed.n
    );
    assert!(
        failed <= killed.n,
        "{failed} failures for {} dropped connections",
        killed.n
    );
    assert!(
        ok_in_a_row >= pool_size + 10,
        "the pool did not heal: {ok_in_a_row} ok in a row"
    );

    // Writes work again too, and the books hold: one more order, charged once.
    let again = app.order(&reseller.token, service, 1000).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(app.balance_micros(&reseller.token).await, 8_000_000);
    app.assert_books_balance();
}
