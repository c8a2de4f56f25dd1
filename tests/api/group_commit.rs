//! Write transactions that run together: on SQLite one writer runs every queued write
//! transaction of a batch in its own savepoint under one commit, so one request's failure
//! (insufficient funds, a unique violation) rolls back only itself; a full queue is a 503.
//! On PostgreSQL the same requests race for real; every assertion holds there too.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::SqliteConnection;
use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{micros, spawn_app, spawn_app_with, Reply, TestApp};
use reseller_api::db::{self, Backend};

/// On SQLite, a connection of the test's holding the database's write lock: the server's
/// writer waits behind it, and the requests sent meanwhile queue up and then run as one
/// batch once it is released with [`release`]. On PostgreSQL, nothing to hold.
fn hold_write_lock(app: &TestApp) -> Option<SqliteConnection> {
    let Backend::Sqlite(path) = Backend::from_url(app.config.database_url.expose_secret()) else {
        return None;
    };
    let mut conn = SqliteConnection::establish(&path).expect("open the test database");
    conn.batch_execute("PRAGMA busy_timeout = 30000; BEGIN IMMEDIATE")
        .expect("take the write lock");
    Some(conn)
}

/// Releases the write lock after `after`, once the requests have queued.
async fn release(lock: Option<SqliteConnection>, after: Duration) {
    actix_rt::time::sleep(after).await;
    if let Some(mut conn) = lock {
        conn.batch_execute("COMMIT")
            .expect("release the write lock");
    }
}

async fn place(
    app: &TestApp,
    token: &str,
    service: i64,
    quantity: i64,
    link: &str,
    key: &str,
) -> Reply {
    app.post_with(
        "/v1/orders",
        token,
        json!({ "service_id": service, "link": link, "quantity": quantity }),
        &[("Idempotency-Key", key)],
    )
    .await
}

fn order_charges(ledger: &[serde_json::Value]) -> Vec<i64> {
    ledger
        .iter()
        .filter(|e| e["kind"] == "order_charge")
        .map(|e| micros(&e["amount"]))
        .collect()
}

#[actix_rt::test]
async fn orders_in_one_batch_are_charged_while_the_balance_lasts_and_the_rest_refused_alone() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "1").await;
    // 10 per 1000: 10 units cost 0.1, 30 units 0.3.
    let service = app.service("10").await;
    let lock = hold_write_lock(&app);
    let requests = (0..16).map(|n| {
        let (app, token) = (&app, &reseller.token);
        async move {
            let quantity = if n % 2 == 0 { 10 } else { 30 };
            let reply = place(
                app,
                token,
                service,
                quantity,
                &format!("https://x/{n}"),
                &format!("k-{n}"),
            )
            .await;
            (quantity, reply)
        }
    });
    let (replies, ()) = futures_util::join!(
        join_all(requests),
        release(lock, Duration::from_millis(500))
    );

    let mut charged = 0;
    let mut placed = 0;
    let mut refused_charges = Vec::new();
    for (quantity, reply) in &replies {
        let charge = quantity * 10_000;
        if reply.status == 201 {
            assert_eq!(micros(&reply.body["charge"]), charge);
            charged += charge;
            placed += 1;
        } else {
            reply.assert_problem(402, "insufficient_funds");
            refused_charges.push(charge);
        }
    }
    assert!(
        placed > 0 && !refused_charges.is_empty(),
        "some placed, some refused"
    );
    assert!(charged <= 1_000_000);
    let balance = app.balance_micros(&reseller.token).await;
    assert_eq!(
        balance,
        1_000_000 - charged,
        "charged exactly what was acknowledged"
    );
    // Orders ran one after another: each refused order cost more than what was left then,
    // which is at least what is left now.
    for charge in refused_charges {
        assert!(
            charge > balance,
            "an order of {charge} refused with {balance} left"
        );
    }
    let ledger = app.ledger(&reseller.token).await;
    let charges = order_charges(&ledger);
    assert_eq!(charges.len(), placed);
    assert_eq!(charges.iter().sum::<i64>(), -charged);
    assert_eq!(app.order_count(), placed as i64);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn one_key_sent_many_times_in_one_batch_places_one_order_and_replays_it_to_the_rest() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "5").await;
    let service = app.service("10").await;
    let lock = hold_write_lock(&app);
    let requests = (0..6).map(|_| {
        place(
            &app,
            &reseller.token,
            service,
            20,
            "https://x/same",
            "same-key",
        )
    });
    let (replies, ()) = futures_util::join!(
        join_all(requests),
        release(lock, Duration::from_millis(500))
    );

    let id = replies[0].body["id"].as_i64().expect("an order");
    let mut replayed = 0;
    for reply in &replies {
        assert_eq!(reply.status, 201, "{}", reply.text);
        assert_eq!(reply.body["id"], id);
        assert_eq!(micros(&reply.body["charge"]), 200_000);
        replayed += usize::from(reply.header("Idempotent-Replayed").is_some());
    }
    assert_eq!(replayed, 5, "one ran, five replayed it");
    assert_eq!(app.order_count(), 1);
    assert_eq!(app.balance_micros(&reseller.token).await, 4_800_000);
    assert_eq!(
        order_charges(&app.ledger(&reseller.token).await),
        vec![-200_000]
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_duplicate_payment_in_a_batch_is_refused_and_the_other_payments_are_credited() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let refs = ["pi-a", "pi-dup", "pi-b", "pi-dup", "pi-c"];
    let lock = hold_write_lock(&app);
    let path = format!("/v1/admin/accounts/{}/top-ups", reseller.id);
    let requests = refs.iter().map(|gateway_ref| {
        app.post(
            &path,
            &app.admin_token,
            json!({ "amount": "1.25", "gateway": "stripe", "gateway_ref": gateway_ref }),
        )
    });
    let (replies, ()) = futures_util::join!(
        join_all(requests),
        release(lock, Duration::from_millis(500))
    );

    let credited = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(credited, 4, "every distinct payment is credited");
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status != 201).collect();
    assert_eq!(refused.len(), 1);
    refused[0].assert_problem(409, "duplicate_gateway_ref");
    assert_eq!(app.balance_micros(&reseller.token).await, 5_000_000);
    app.assert_books_balance();
}

/// A real unique-index violation inside one transaction of a batch (an index the test adds,
/// which the code does not expect: a 500) rolls back that transaction alone, its
/// idempotency claim with it, so the same key runs once the index is gone.
#[actix_rt::test]
async fn a_unique_violation_in_one_order_of_a_batch_rolls_back_only_that_order_and_its_claim() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("10").await;
    app.pool
        .get()
        .unwrap()
        .batch_execute("CREATE UNIQUE INDEX test_one_order_per_link ON orders (link)")
        .unwrap();
    let lock = hold_write_lock(&app);
    let links = ["https://x/1", "https://x/2", "https://x/1", "https://x/3"];
    let requests = links.iter().enumerate().map(|(n, link)| {
        let (app, token) = (&app, &reseller.token);
        async move { place(app, token, service, 10, link, &format!("u-{n}")).await }
    });
    let (replies, ()) = futures_util::join!(
        join_all(requests),
        release(lock, Duration::from_millis(500))
    );

    let placed = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(placed, 3, "every order but the duplicate link is placed");
    let failed: Vec<usize> = (0..4).filter(|&n| replies[n].status != 201).collect();
    assert_eq!(failed.len(), 1);
    let failed = failed[0];
    assert!(links[failed] == "https://x/1");
    replies[failed].assert_problem(500, "internal_error");
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        10_000_000 - 3 * 100_000
    );
    app.assert_books_balance();

    app.pool
        .get()
        .unwrap()
        .batch_execute("DROP INDEX test_one_order_per_link")
        .unwrap();
    let retry = place(
        &app,
        &reseller.token,
        service,
        10,
        links[failed],
        &format!("u-{failed}"),
    )
    .await;
    assert_eq!(
        retry.status, 201,
        "no claim was left behind: {}",
        retry.text
    );
    assert!(retry.header("Idempotent-Replayed").is_none());
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        10_000_000 - 4 * 100_000
    );
    assert_eq!(order_charges(&app.ledger(&reseller.token).await).len(), 4);
    app.assert_books_balance();
}

/// SQLite only: PostgreSQL has no writer queue (each transaction runs on its own
/// connection).
#[actix_rt::test]
async fn a_full_write_queue_is_refused_at_once_with_503_and_retry_after_and_nothing_done() {
    let app = spawn_app_with(|config| config.write_queue = 1).await;
    if !matches!(
        db::Backend::from_url(app.config.database_url.expose_secret()),
        Backend::Sqlite(_)
    ) {
        return;
    }
    let reseller = app.funded_reseller("Acme", "1").await;
    let service = app.service("10").await;
    let lock = hold_write_lock(&app);
    let pause = Duration::from_millis(300);
    // The first is taken by the writer, which waits for the lock; the second fills the
    // queue; the third finds it full.
    let first = place(&app, &reseller.token, service, 10, "https://x/1", "q-1");
    let second = async {
        actix_rt::time::sleep(pause).await;
        place(&app, &reseller.token, service, 10, "https://x/2", "q-2").await
    };
    let third = async {
        actix_rt::time::sleep(pause * 2).await;
        let started = std::time::Instant::now();
        let reply = place(&app, &reseller.token, service, 10, "https://x/3", "q-3").await;
        (reply, started.elapsed())
    };
    let (first, second, (third, waited), ()) =
        futures_util::join!(first, second, third, release(lock, pause * 4));

    third.assert_problem(503, "write_queue_full");
    assert_eq!(third.header("Retry-After").as_deref(), Some("1"));
    assert_eq!(third.body["retry_after"], 1);
    assert!(
        waited < pause,
        "refused at once, not after the lock: {waited:?}"
    );
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(app.order_count(), 2);
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        1_000_000 - 2 * 100_000
    );
    // The refused request left no claim: its key runs now.
    let retry = place(&app, &reseller.token, service, 10, "https://x/3", "q-3").await;
    assert_eq!(retry.status, 201, "{}", retry.text);
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        1_000_000 - 3 * 100_000
    );
    app.assert_books_balance();
}

/// The admin writes that once ran on a pooled connection of their own (registering a
/// provider, adding a service, allow-listing an account) queue for the writer like every
/// other write: with the queue full they are refused at once, where a write of their own
/// would have waited for the file's lock and then gone through. SQLite only, as above.
#[actix_rt::test]
async fn admin_writes_queue_for_the_writer_and_are_refused_with_it_when_it_is_full() {
    let app = spawn_app_with(|config| config.write_queue = 1).await;
    if !matches!(
        db::Backend::from_url(app.config.database_url.expose_secret()),
        Backend::Sqlite(_)
    ) {
        return;
    }
    let reseller = app.funded_reseller("Acme", "1").await;
    let service = app.service("10").await;
    let admin = &app.admin_token;
    let allowlist = format!("/v1/admin/accounts/{}/refund-allowlist", reseller.id);
    let until = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let provider = json!({"allow_private_network": true, "name": "Upstream", "url": "http://127.0.0.1:9/api/v2", "key": "k"});
    let new_service = json!({
        "name": "Views", "category": "YT", "type": "default", "rate": "1", "min": 10, "max": 1000
    });
    let lock = hold_write_lock(&app);
    let pause = Duration::from_millis(300);
    // As above: the first waits in the writer for the lock, the second fills the queue.
    let first = place(&app, &reseller.token, service, 10, "https://x/1", "q-1");
    let second = async {
        actix_rt::time::sleep(pause).await;
        place(&app, &reseller.token, service, 10, "https://x/2", "q-2").await
    };
    let admin_writes = async {
        actix_rt::time::sleep(pause * 2).await;
        let started = std::time::Instant::now();
        let replies = [
            app.post("/v1/admin/providers", admin, provider.clone())
                .await,
            app.post("/v1/admin/services", admin, new_service.clone())
                .await,
            app.post(&allowlist, admin, json!({ "until": until })).await,
            app.delete(&allowlist, admin).await,
        ];
        (replies, started.elapsed())
    };
    let (first, second, (replies, waited), ()) =
        futures_util::join!(first, second, admin_writes, release(lock, pause * 4));

    for reply in &replies {
        reply.assert_problem(503, "write_queue_full");
        assert_eq!(reply.header("Retry-After").as_deref(), Some("1"));
    }
    assert!(
        waited < pause,
        "refused at once, not after the lock: {waited:?}"
    );
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(second.status, 201, "{}", second.text);
    let providers = app.get("/v1/admin/providers", admin).await;
    assert_eq!(
        providers.body["data"],
        json!([]),
        "no provider was registered"
    );
    let services = app.get("/v1/services", &reseller.token).await;
    assert_eq!(
        services.body["data"].as_array().map(Vec::len),
        Some(1),
        "no service was added: {}",
        services.text
    );
    let standing = app
        .get(
            &format!("/v1/admin/accounts/{}/refund-standing", reseller.id),
            admin,
        )
        .await;
    assert!(standing.body["allowlisted_until"].is_null());

    // With the queue free again, each goes through.
    let registered = app.post("/v1/admin/providers", admin, provider).await;
    assert_eq!(registered.status, 201, "{}", registered.text);
    let added = app.post("/v1/admin/services", admin, new_service).await;
    assert_eq!(added.status, 201, "{}", added.text);
    let allowed = app.post(&allowlist, admin, json!({ "until": until })).await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    assert!(allowed.body["allowlisted_until"].is_string());
}
