//! PostgreSQL conflicts never reach the client: a request whose transaction the database
//! rolls back as a deadlock victim (40P01) or for a serialization failure (40001) runs
//! again, and is charged exactly once. Each conflict is real: a second connection takes
//! row locks against the request's own transaction.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::PgConnection;
use serde_json::{json, Value};

use crate::helpers::{fresh_database, spawn_app, spawn_app_on, Reseller, TestApp};

fn on_postgres(app: &TestApp) -> bool {
    let yes = app
        .config
        .database_url
        .expose_secret()
        .starts_with("postgres");
    if !yes {
        eprintln!("PostgreSQL only: set TEST_DATABASE_URL");
    }
    yes
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::select(diesel::dsl::sql::<BigInt>(&format!("({sql})")))
        .get_result(conn)
        .unwrap()
}

/// Waits until a session of this database (the request's) waits for a row lock.
async fn until_a_session_waits_for_a_lock(url: &str) {
    let mut watcher = PgConnection::establish(url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(
        &mut watcher,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    ) == 0
    {
        assert!(
            Instant::now() < deadline,
            "the request never waited for the lock"
        );
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn order_with_key(app: &TestApp, reseller: &Reseller, service: i64, key: &str) -> Value {
    let reply = app
        .post_with(
            "/v1/orders",
            &reseller.token,
            json!({"service_id": service, "link": "https://instagram.com/p/abc", "quantity": 1500}),
            &[("Idempotency-Key", key)],
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body
}

/// One order of 1.5 on an account funded with 100: exactly one charge, verify passes, and
/// the key replays the same order without a second charge.
async fn assert_charged_once(app: &TestApp, reseller: &Reseller, service: i64, order: &Value) {
    assert_eq!(order["charge"], "1.5");
    assert_eq!(app.order_count(), 1);
    assert_eq!(app.balance_micros(&reseller.token).await, 98_500_000);
    let charges: Vec<Value> = app
        .ledger(&reseller.token)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "order_charge")
        .collect();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0]["order_id"], order["id"]);
    assert_eq!(charges[0]["amount"], "-1.5");
    assert_eq!(charges[0]["balance_after"], "98.5");
    let replay = order_with_key(app, reseller, service, "conflict-1").await;
    assert_eq!(replay["id"], order["id"]);
    assert_eq!(app.balance_micros(&reseller.token).await, 98_500_000);
    app.assert_books_balance();
}

/// The order's transaction takes its service `FOR SHARE`, then updates the account row,
/// which a second connection holds; that connection then updates the service: a cycle.
/// The request waits the default `deadlock_timeout` (1 s), the other connection 30 s, so
/// PostgreSQL's check finds the cycle in the request's session and rolls it back (40P01).
#[actix_rt::test]
async fn an_order_chosen_as_a_deadlock_victim_runs_again_and_is_charged_once() {
    let app = spawn_app().await;
    if !on_postgres(&app) {
        return;
    }
    let url = app.config.database_url.expose_secret().to_string();
    let reseller = app.funded_reseller("Acme", "100").await;
    let service = app.service("1").await;
    let deadlocks_before = count(
        &mut PgConnection::establish(&url).unwrap(),
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    );

    let mut other = PgConnection::establish(&url).unwrap();
    other
        .batch_execute(&format!(
            "SET deadlock_timeout = '30s'; BEGIN; \
             UPDATE accounts SET balance_micros = balance_micros WHERE id = {}",
            reseller.id
        ))
        .unwrap();
    let close_the_cycle = async {
        until_a_session_waits_for_a_lock(&url).await;
        actix_rt::task::spawn_blocking(move || {
            // Blocks on the request's share lock until the request is the victim.
            other
                .batch_execute(&format!(
                    "UPDATE services SET name = 'Instagram Likes (renamed)' WHERE id = {service}; \
                     COMMIT"
                ))
                .unwrap();
        })
        .await
        .unwrap();
    };
    let (order, ()) = futures_util::join!(
        order_with_key(&app, &reseller, service, "conflict-1"),
        close_the_cycle
    );

    // The deadlock happened (PostgreSQL counts it), the other side committed, and the
    // client saw only its order.
    let mut watcher = PgConnection::establish(&url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        watcher
            .batch_execute("SELECT pg_stat_clear_snapshot()")
            .unwrap();
        let deadlocks = count(
            &mut watcher,
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        );
        if deadlocks > deadlocks_before {
            break;
        }
        assert!(Instant::now() < deadline, "PostgreSQL recorded no deadlock");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(
            &mut watcher,
            &format!(
                "SELECT count(*) FROM services WHERE id = {service} \
                 AND name = 'Instagram Likes (renamed)'"
            )
        ),
        1
    );
    assert_charged_once(&app, &reseller, service, &order).await;
}

/// With `REPEATABLE READ` as the database's default, the order's transaction reads the
/// account, then waits to update the row a second connection has updated; that one
/// commits, and PostgreSQL refuses the order's update (40001: could not serialize access
/// due to concurrent update). The whole transaction runs again on a fresh snapshot.
#[actix_rt::test]
async fn an_order_refused_for_a_serialization_failure_runs_again_and_is_charged_once() {
    let (url, _db) = fresh_database();
    if !url.starts_with("postgres") {
        eprintln!("PostgreSQL only: set TEST_DATABASE_URL");
        return;
    }
    {
        let mut conn = PgConnection::establish(&url).unwrap();
        let name = url.rsplit_once('/').unwrap().1;
        conn.batch_execute(&format!(
            "ALTER DATABASE {name} SET default_transaction_isolation = 'repeatable read'"
        ))
        .unwrap();
    }
    // Every pooled connection opens after the change.
    let app = spawn_app_on(&url).await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let service = app.service("1").await;

    let mut other = PgConnection::establish(&url).unwrap();
    other
        .batch_execute(&format!(
            "BEGIN; UPDATE accounts SET balance_micros = balance_micros WHERE id = {}",
            reseller.id
        ))
        .unwrap();
    let commit_under_it = async {
        until_a_session_waits_for_a_lock(&url).await;
        other.batch_execute("COMMIT").unwrap();
    };
    let (order, ()) = futures_util::join!(
        order_with_key(&app, &reseller, service, "conflict-1"),
        commit_under_it
    );
    assert_charged_once(&app, &reseller, service, &order).await;
    drop(app);
}

/// The retry is bounded and only for conflicts: a transaction that keeps conflicting runs
/// five times and then fails with the conflict; any other error fails at once. On both
/// databases (the conflict here is an error the closure returns, not one the server made).
#[actix_rt::test]
async fn write_tx_runs_a_conflicting_transaction_at_most_five_times_and_nothing_else_twice() {
    use diesel::result::{DatabaseErrorKind, Error};
    use reseller_api::db::{self, TxError};
    use std::sync::atomic::{AtomicI32, Ordering};

    let app = spawn_app().await;
    let mut conn = app.pool.get().unwrap();
    let mut fail_with = |kind: DatabaseErrorKind, message: &str| {
        let runs = AtomicI32::new(0);
        let started = Instant::now();
        let result = db::write_tx(&mut conn, |conn| -> Result<(), Error> {
            runs.fetch_add(1, Ordering::Relaxed);
            // Something written in each attempt, rolled back with it.
            conn.batch_execute("UPDATE accounts SET balance_micros = balance_micros + 1")?;
            Err(Error::DatabaseError(kind, Box::new(message.to_string())))
        });
        (
            runs.load(Ordering::Relaxed),
            result.unwrap_err(),
            started.elapsed(),
        )
    };
    let (runs, error, took) = fail_with(
        DatabaseErrorKind::SerializationFailure,
        "could not serialize access due to concurrent update",
    );
    assert_eq!(runs, 5);
    assert!(error.is_conflict());
    // Four pauses of 5–10, 5–20, 5–40 and 5–50 ms.
    assert!(took >= Duration::from_millis(20), "{took:?}");
    let (runs, error, _) = fail_with(DatabaseErrorKind::Unknown, "deadlock detected");
    assert_eq!(runs, 5);
    assert!(error.is_conflict());
    let (runs, error, _) = fail_with(DatabaseErrorKind::UniqueViolation, "duplicate key");
    assert_eq!(runs, 1);
    assert!(!error.is_conflict());
    drop(conn);
    // Nothing of any attempt committed.
    app.assert_books_balance();
}
