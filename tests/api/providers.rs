use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reseller_api::domain::provider::ForwardingState;
use serde_json::json;

use crate::helpers::{spawn_app_with, write, StandIn, TestApp};

fn ok(body: &str) -> (u16, String, Duration) {
    (200, body.to_string(), Duration::ZERO)
}

async fn app() -> TestApp {
    spawn_app_with(|c| {
        c.worker.sync_interval_secs = 0;
        c.worker.max_backoff_secs = 0;
        c.worker.forward_max_failures = 3;
    })
    .await
}

/// A provider that takes every order under ids from 9001, and answers status from `statuses`.
async fn provider(statuses: Arc<std::sync::Mutex<HashMap<String, serde_json::Value>>>) -> StandIn {
    let next = Arc::new(AtomicI64::new(9001));
    StandIn::start(
        move |fields| match fields.get("action").map(String::as_str) {
            Some("add") => ok(&format!(
                "{{\"order\":{}}}",
                next.fetch_add(1, Ordering::SeqCst)
            )),
            Some("status") => {
                let statuses = statuses.lock().unwrap();
                let mut reply = serde_json::Map::new();
                for id in fields["orders"].split(',') {
                    reply.insert(
                        id.to_string(),
                        statuses
                            .get(id)
                            .cloned()
                            .unwrap_or(json!({"error": "Incorrect order ID"})),
                    );
                }
                ok(&serde_json::to_string_pretty(&reply).unwrap())
            }
            _ => ok(r#"{"error":"This action is Invalid"}"#),
        },
    )
    .await
}

#[actix_rt::test]
async fn an_order_is_sent_after_its_debit_and_a_partial_delivery_is_refunded_by_the_sync() {
    let app = app().await;
    let statuses = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let upstream = provider(statuses.clone()).await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, service, 2000).await;
    assert!(
        upstream.calls_of("add").is_empty(),
        "nothing is sent inside the order request"
    );
    assert_eq!(app.provider_order(order).state, ForwardingState::Queued);

    let pass = app.worker_pass().await;
    assert_eq!(pass.sent, 1);
    let adds = upstream.calls_of("add");
    assert_eq!(adds.len(), 1);
    assert_eq!(adds[0]["key"], "upstream-key");
    assert_eq!(adds[0]["service"], "77");
    assert_eq!(adds[0]["quantity"], "2000");
    assert_eq!(adds[0]["link"], "https://instagram.com/p/abc");
    let forwarded = app.provider_order(order);
    assert_eq!(forwarded.state, ForwardingState::Sent);
    assert_eq!(forwarded.provider_order_id.as_deref(), Some("9001"));

    // The same pass polled it once; the provider did not know it yet.
    assert_eq!(forwarded.failures, 1);
    assert_eq!(forwarded.last_error.as_deref(), Some("Incorrect order ID"));
    statuses.lock().unwrap().insert("9001".into(), json!({"charge":"2.0000","start_count":"120","status":"In progress","remains":"1500","currency":"USD"}));
    app.worker_pass().await;
    let json = app.order_json(&reseller.token, order).await;
    assert_eq!(json["status"], "in_progress");
    assert_eq!(json["start_count"], 120);

    statuses.lock().unwrap().insert("9001".into(), json!({"charge":"2","start_count":"120","status":"Partial","remains":"500","currency":"USD"}));
    let pass = app.worker_pass().await;
    assert_eq!(pass.refunds, 1);
    let json = app.order_json(&reseller.token, order).await;
    assert_eq!(json["status"], "partial");
    assert_eq!(json["refunded"], "0.5");
    assert_eq!(app.provider_order(order).state, ForwardingState::Done);
    let refunds = app
        .get(&format!("/v1/refunds?order_id={order}"), &reseller.token)
        .await;
    assert_eq!(refunds.body["data"][0]["source"], "automatic");
    assert_eq!(refunds.body["data"][0]["reason"], "partial_delivery");
    // Polling again changes nothing: the order is done upstream.
    app.worker_pass().await;
    assert_eq!(app.balance_micros(&reseller.token).await, 8_500_000);
    assert_eq!(upstream.calls_of("status").len(), 3);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_batch_reply_is_handled_item_by_item() {
    let app = app().await;
    let statuses = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let upstream = provider(statuses.clone()).await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(app.order_id(&reseller.token, service, 1000).await);
    }
    {
        let mut s = statuses.lock().unwrap();
        // 9001: over-delivered; 9002: unknown status word; 9003: canceled; 9004: missing → per-item error.
        s.insert(
            "9001".into(),
            json!({"status":"Partial","remains":"+40","start_count":null}),
        );
        s.insert("9002".into(), json!({"status":"Refunded","remains":"0"}));
        s.insert(
            "9003".into(),
            json!({"status":"Cancelled","remains":"1000"}),
        );
    }
    // One pass sends the four orders, then polls them in one batch.
    let pass = app.worker_pass().await;
    assert_eq!(pass.sent, 4);
    assert_eq!(pass.polled, 4);
    assert_eq!(
        upstream.calls_of("status").len(),
        1,
        "one request for the whole batch"
    );
    assert_eq!(
        upstream.calls_of("status")[0]["orders"],
        "9001,9002,9003,9004"
    );

    let over = app.order_json(&reseller.token, ids[0]).await;
    assert_eq!(over["status"], "partial");
    assert_eq!(over["refunded"], "0", "over-delivery owes nothing");
    let unknown = app.order_json(&reseller.token, ids[1]).await;
    assert_eq!(
        unknown["status"], "pending",
        "an unknown status is never mapped to a default"
    );
    assert_eq!(
        app.provider_order(ids[1]).quarantined_status.as_deref(),
        Some("Refunded")
    );
    let canceled = app.order_json(&reseller.token, ids[2]).await;
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["refunded"], "1");
    let missing = app.provider_order(ids[3]);
    assert_eq!(missing.state, ForwardingState::Sent);
    assert_eq!(missing.failures, 1);
    assert_eq!(missing.last_error.as_deref(), Some("Incorrect order ID"));
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        100_000_000 - 4_000_000 + 1_000_000
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn unreadable_status_replies_change_nothing_and_back_off() {
    let replies = Arc::new(std::sync::Mutex::new(vec![
        (
            500,
            "<html><body>Internal Server Error</body></html>".to_string(),
        ),
        (200, String::new()),
        (200, "{\"1\": {\"status\": ".to_string()),
    ]));
    let script = replies.clone();
    let upstream = StandIn::start(
        move |fields| match fields.get("action").map(String::as_str) {
            Some("add") => ok(r#"{"order":"1","status":"success"}"#),
            _ => {
                let (status, body) = script.lock().unwrap().remove(0);
                (status, body, Duration::ZERO)
            }
        },
    )
    .await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    app.worker_pass().await;
    assert_eq!(
        app.provider_order(order).provider_order_id.as_deref(),
        Some("1")
    );
    for round in 1..=3 {
        if round > 1 {
            app.worker_pass().await;
        }
        let job = app.provider_order(order);
        assert_eq!(job.state, ForwardingState::Sent);
        assert_eq!(job.failures, round);
        assert_eq!(
            app.order_json(&reseller.token, order).await["status"],
            "pending"
        );
    }
    assert!(replies.lock().unwrap().is_empty());
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_timed_out_send_is_never_repeated_to_a_provider_that_cannot_deduplicate() {
    let upstream = StandIn::start(|_| {
        (
            200,
            r#"{"order":5}"#.to_string(),
            Duration::from_millis(1500),
        )
    })
    .await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 300).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    let pass = app.worker_pass().await;
    assert_eq!(pass.send_failures, 1);
    let job = app.provider_order(order);
    assert_eq!(job.state, ForwardingState::Ambiguous);
    assert!(job.last_error.unwrap().contains("no certain answer"));
    app.make_due();
    app.worker_pass().await;
    app.worker_pass().await;
    assert_eq!(
        upstream.calls_of("add").len(),
        1,
        "no second order upstream"
    );
    assert_eq!(
        app.order_json(&reseller.token, order).await["refunded"],
        "0"
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_timed_out_send_is_retried_with_the_same_key_where_the_provider_deduplicates() {
    let slow_first = Arc::new(AtomicI64::new(0));
    let counter = slow_first.clone();
    let upstream = StandIn::start(move |_| {
        let delay = if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Duration::from_millis(1500)
        } else {
            Duration::ZERO
        };
        (200, r#"{"order":5}"#.to_string(), delay)
    })
    .await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, true, 300).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    app.worker_pass().await;
    assert_eq!(app.provider_order(order).state, ForwardingState::Queued);
    app.worker_pass().await;
    let job = app.provider_order(order);
    assert_eq!(job.state, ForwardingState::Sent);
    assert_eq!(job.attempts, 2);
    let adds = upstream.calls_of("add");
    assert_eq!(adds.len(), 2);
    assert_eq!(
        adds[0]["idempotency_key"], adds[1]["idempotency_key"],
        "the retry carries the same key"
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn an_order_the_provider_keeps_refusing_is_canceled_and_refunded() {
    let upstream = StandIn::start(|_| ok(r#"{"error":"Not enough funds on balance"}"#)).await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, service, 3000).await;
    for _ in 0..3 {
        app.worker_pass().await;
    }
    let job = app.provider_order(order);
    assert_eq!(job.state, ForwardingState::Failed);
    assert_eq!(job.failures, 3);
    let json = app.order_json(&reseller.token, order).await;
    assert_eq!(json["status"], "canceled");
    assert_eq!(json["refunded"], "3");
    let refunds = app
        .get(&format!("/v1/refunds?order_id={order}"), &reseller.token)
        .await;
    let refund = &refunds.body["data"][0];
    assert_eq!(refund["reason"], "provider_canceled");
    assert!(refund["note"]
        .as_str()
        .unwrap()
        .contains("Not enough funds on balance"));
    assert_eq!(app.balance_micros(&reseller.token).await, 10_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_queued_order_can_still_be_canceled_and_is_then_never_sent() {
    let upstream = StandIn::start(|_| ok(r#"{"order":1}"#)).await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let queued = app.order_id(&reseller.token, service, 1000).await;
    let reply = app
        .post(
            &format!("/v1/orders/{queued}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let sent = app.order_id(&reseller.token, service, 1000).await;
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("add").len(), 1);
    // Once sent, a cancel is a request to the provider and refunds nothing by itself.
    let requested = app
        .post(
            &format!("/v1/orders/{sent}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(requested.status, 202, "{}", requested.text);
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn two_workers_never_send_the_same_order_twice() {
    let upstream = StandIn::start({
        let next = Arc::new(AtomicI64::new(1));
        move |_| {
            (
                200,
                format!("{{\"order\":{}}}", next.fetch_add(1, Ordering::SeqCst)),
                Duration::from_millis(5),
            )
        }
    })
    .await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "100").await;
    for _ in 0..40 {
        app.order_id(&reseller.token, service, 1000).await;
    }
    let (a, b) = futures_util::join!(app.worker_pass(), app.worker_pass());
    let (c, d) = futures_util::join!(app.worker_pass(), app.worker_pass());
    assert_eq!(a.sent + b.sent + c.sent + d.sent, 40);
    let adds = upstream.calls_of("add");
    assert_eq!(adds.len(), 40, "each order sent exactly once");
    let keys: std::collections::HashSet<_> =
        adds.iter().map(|a| a["idempotency_key"].clone()).collect();
    assert_eq!(keys.len(), 40);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn providers_are_managed_by_operators_and_their_keys_never_shown() {
    let app = app().await;
    let reply = app
        .post(
            "/v1/admin/providers",
            &app.admin_token,
            json!({"name": "P", "url": "ftp://x", "key": "", "batch_size": 500}),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    let params: Vec<_> = reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["param"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(params, vec!["url", "key", "batch_size"]);
    let (provider, _) = app
        .provider_service("http://127.0.0.1:9/api/v2", false, 1000)
        .await;
    let patched = app
        .patch(
            &format!("/v1/admin/providers/{provider}"),
            &app.admin_token,
            json!({"enabled": false, "key": "rotated"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["enabled"], false);
    assert!(patched.body.get("key").is_none());
    let list = app.get("/v1/admin/providers", &app.admin_token).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    assert!(!list.text.contains("rotated") && !list.text.contains("upstream-key"));
    let reply = app
        .post("/v1/admin/services", &app.admin_token, json!({"name": "x", "category": "y", "type": "default", "rate": "1", "min": 1, "max": 2, "provider_id": 999, "provider_service_id": "1"}))
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.body["param"], "provider_id");
}

#[actix_rt::test]
async fn one_instance_is_the_provider_of_another_end_to_end() {
    // B is the upstream panel; A forwards its orders to B's API v2 as one of B's resellers.
    let b = app().await;
    let b_service = b.service("0.5").await;
    let a_on_b = b.funded_reseller("Panel A", "100").await;
    let a = app().await;
    let provider = a
        .post(
            "/v1/admin/providers",
            &a.admin_token,
            json!({"allow_private_network": true, "name": "Panel B", "url": b.url("/api/v2"), "key": a_on_b.key, "idempotent_add": true}),
        )
        .await;
    let provider_id = provider.body["id"].as_i64().unwrap();
    let a_service = a
        .create_service(json!({
            "name": "Likes via B", "category": "Instagram", "type": "default", "rate": "1",
            "min": 10, "max": 100000, "provider_id": provider_id, "provider_service_id": b_service.to_string()
        }))
        .await;
    let reseller = a.funded_reseller("End customer", "10").await;
    let order = a.order_id(&reseller.token, a_service, 4000).await;

    a.worker_pass().await;
    let remote: i64 = a
        .provider_order(order)
        .provider_order_id
        .unwrap()
        .parse()
        .unwrap();
    // The order reached B, charged to A's account there at B's price.
    let on_b = b.order_json(&a_on_b.token, remote).await;
    assert_eq!(on_b["quantity"], 4000);
    assert_eq!(on_b["charge"], "2");
    assert_eq!(b.balance_micros(&a_on_b.token).await, 98_000_000);

    // B's operator records a partial delivery: 1000 of 4000 undelivered.
    let outcome = b
        .outcome(
            remote,
            json!({"status": "partial", "remains": 1000, "start_count": 77}),
        )
        .await;
    assert_eq!(outcome.body["refund"]["amount"], "0.5");
    // A's sync picks it up and refunds A's reseller the exact undelivered share.
    let pass = a.worker_pass().await;
    assert_eq!(pass.refunds, 1);
    let json = a.order_json(&reseller.token, order).await;
    assert_eq!(json["status"], "partial");
    assert_eq!(json["remains"], 1000);
    assert_eq!(json["start_count"], 77);
    assert_eq!(json["refunded"], "1");
    assert_eq!(
        a.balance_micros(&reseller.token).await,
        10_000_000 - 4_000_000 + 1_000_000
    );
    a.assert_books_balance();
    b.assert_books_balance();
}

#[actix_rt::test]
async fn an_unknown_stored_forwarding_state_is_an_error_not_a_default() {
    use diesel::prelude::*;
    use reseller_api::db::schema::provider_orders;
    let statuses = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let upstream = provider(statuses).await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    let forwarding = app
        .get(
            &format!("/v1/admin/orders/{order}/forwarding"),
            &app.admin_token,
        )
        .await;
    assert_eq!(forwarding.body["state"], "queued");
    let mut conn = app.pool.get().unwrap();
    // The schema's CHECK refuses unknown words; lift it (each statement fails harmlessly
    // on the other backend) to see what decoding does with one.
    let _ = diesel::sql_query("PRAGMA ignore_check_constraints = ON").execute(&mut *conn);
    let _ = diesel::sql_query(
        "ALTER TABLE provider_orders DROP CONSTRAINT provider_orders_state_check",
    )
    .execute(&mut *conn);
    diesel::update(provider_orders::table.find(order))
        .set(provider_orders::state.eq("lost"))
        .execute(&mut *conn)
        .unwrap();
    let found = reseller_api::db::provider_orders::find(
        &mut conn,
        reseller_api::domain::ids::OrderId(order),
    );
    let error = found.expect_err("an unknown state does not decode");
    assert!(
        error
            .to_string()
            .contains("unknown ForwardingState \"lost\""),
        "{error}"
    );
}

/// Counts the provider rows of the app's database in `state`.
fn rows_in(app: &TestApp, state: ForwardingState) -> Vec<i64> {
    use diesel::prelude::*;
    use reseller_api::db::schema::provider_orders;
    let mut conn = app.pool.get().unwrap();
    provider_orders::table
        .filter(provider_orders::state.eq(state.as_str()))
        .select(provider_orders::order_id)
        .load(&mut *conn)
        .unwrap()
}

#[actix_rt::test]
async fn two_workers_with_a_slow_provider_track_every_accepted_order_and_send_each_once() {
    // Each `add` takes 200 ms: a pass over 50 orders outlasts a 5 s lease many times over.
    let next = Arc::new(AtomicI64::new(1));
    let upstream = StandIn::start(
        move |fields| match fields.get("action").map(String::as_str) {
            Some("add") => (
                200,
                format!("{{\"order\":{}}}", next.fetch_add(1, Ordering::SeqCst)),
                Duration::from_millis(200),
            ),
            Some("status") => {
                let items: serde_json::Map<String, serde_json::Value> = fields["orders"]
                    .split(',')
                    .map(|id| {
                        let item =
                            json!({"status": "Completed", "remains": "0", "start_count": "3"});
                        (id.to_string(), item)
                    })
                    .collect();
                ok(&serde_json::Value::Object(items).to_string())
            }
            _ => ok(r#"{"error":"This action is Invalid"}"#),
        },
    )
    .await;
    let app = spawn_app_with(|c| {
        c.worker.lease_secs = 5;
        c.worker.worker_interval_ms = 50;
        c.worker.sync_interval_secs = 0;
        c.worker.max_backoff_secs = 0;
    })
    .await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let mut placed = Vec::new();
    for _ in 0..80 {
        placed.push(app.order_id(&reseller.token, service, 1000).await);
    }
    // Two workers on one database, each on its own thread, as two processes would run them.
    let workers: Vec<_> = (0..2)
        .map(|_| {
            reseller_api::providers::worker::spawn(
                app.pool.clone(),
                app.config.worker.clone(),
                app.config.retention.clone(),
                Default::default(),
            )
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let ambiguous = rows_in(&app, ForwardingState::Ambiguous);
        assert!(
            ambiguous.is_empty(),
            "orders marked ambiguous while their own send was in flight: {:?}",
            ambiguous
                .iter()
                .map(|id| app.provider_order(*id))
                .collect::<Vec<_>>()
        );
        if rows_in(&app, ForwardingState::Done).len() == placed.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every order was sent and synced: {} of {} done",
            rows_in(&app, ForwardingState::Done).len(),
            placed.len()
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    for worker in workers {
        actix_web::web::block(move || worker.shutdown())
            .await
            .unwrap();
    }

    let adds = upstream.calls_of("add");
    assert_eq!(
        adds.len(),
        placed.len(),
        "each order sent upstream exactly once"
    );
    let keys: std::collections::HashSet<_> =
        adds.iter().map(|a| a["idempotency_key"].clone()).collect();
    assert_eq!(
        keys.len(),
        placed.len(),
        "each order sent upstream exactly once"
    );
    let mut remote_ids = std::collections::HashSet::new();
    for id in &placed {
        let job = app.provider_order(*id);
        assert_eq!(job.state, ForwardingState::Done, "order {id}: {job:?}");
        let remote = job
            .provider_order_id
            .clone()
            .expect("tracked under the provider's id");
        assert!(remote_ids.insert(remote), "one provider order per order");
        assert_eq!(job.failures, 0, "order {id}: {job:?}");
        assert!(job.lease_owner.is_none(), "order {id}: {job:?}");
        let mut conn = app.pool.get().unwrap();
        let adds: i64 = {
            use diesel::prelude::*;
            use reseller_api::db::schema::provider_attempts;
            provider_attempts::table
                .filter(provider_attempts::order_id.eq(*id))
                .filter(provider_attempts::action.eq("add"))
                .count()
                .get_result(&mut *conn)
                .unwrap()
        };
        assert_eq!(adds, 1, "order {id}: one add on record");
        let json = app.order_json(&reseller.token, *id).await;
        assert_eq!(json["status"], "completed", "order {id}: {json}");
        assert_eq!(json["start_count"], 3);
    }
    assert_eq!(app.balance_micros(&reseller.token).await, 20_000_000);
    app.assert_books_balance();
}

/// Makes `order_id`'s lease run out now, as if its holder had stalled past it.
fn expire_lease(app: &TestApp, order_id: i64) {
    use diesel::prelude::*;
    use reseller_api::db::schema::provider_orders;
    let mut conn = app.pool.get().unwrap();
    diesel::update(provider_orders::table.find(order_id))
        .set(
            provider_orders::lease_until.eq(reseller_api::db::now() - chrono::Duration::seconds(1)),
        )
        .execute(&mut *conn)
        .unwrap();
}

/// Another worker's claim of `order_id`, after its lease ran out.
fn claim_as(
    app: &TestApp,
    owner: &str,
    states: &[ForwardingState],
) -> reseller_api::db::provider_orders::ProviderOrder {
    let mut conn = app.pool.get().unwrap();
    let mut claimed = write(&mut conn, |conn| {
        reseller_api::db::provider_orders::claim(
            conn,
            owner,
            states,
            None,
            1,
            reseller_api::db::now(),
            chrono::Duration::seconds(60),
        )
    });
    assert_eq!(claimed.len(), 1, "{owner} claims the order");
    claimed.pop().unwrap()
}

#[actix_rt::test]
async fn a_write_with_a_stale_lease_token_changes_nothing() {
    use reseller_api::db::provider_orders::{adopt_acceptance, begin_send, finish, AttemptOutcome};
    let app = app().await;
    let (_, service) = app
        .provider_service("http://127.0.0.1:9/api/v2", false, 1000)
        .await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    let lease = chrono::Duration::seconds(60);

    let first = claim_as(&app, "worker-a", &[ForwardingState::Queued]);
    let mut conn = app.pool.get().unwrap();
    assert!(write(&mut conn, |conn| begin_send(
        conn,
        first.fence("worker-a"),
        lease
    )));
    // The lease runs out; the same worker claims again, then another one does.
    expire_lease(&app, order);
    let again = claim_as(&app, "worker-a", &[ForwardingState::Sending]);
    assert!(again.lease_token > first.lease_token);
    expire_lease(&app, order);
    let second = claim_as(&app, "worker-b", &[ForwardingState::Sending]);
    assert!(second.lease_token > again.lease_token);
    let before = app.provider_order(order);

    // Every write of the earlier claims, the same owner's included, changes nothing.
    for stale in [first.fence("worker-a"), again.fence("worker-a")] {
        assert!(!write(&mut conn, |conn| begin_send(conn, stale, lease)));
        let accepted = AttemptOutcome {
            provider_order_id: Some("77".into()),
            synced: true,
            ..AttemptOutcome::to(ForwardingState::Sent)
        };
        assert!(!write(&mut conn, |conn| finish(
            conn,
            stale,
            accepted.clone()
        )));
        let refused = AttemptOutcome {
            failed: true,
            error: Some("refused".into()),
            ..AttemptOutcome::to(ForwardingState::Queued)
        };
        assert!(!write(&mut conn, |conn| finish(
            conn,
            stale,
            refused.clone()
        )));
    }
    let after = app.provider_order(order);
    assert_eq!(
        format!("{after:?}"),
        format!("{before:?}"),
        "not one column changed"
    );
    assert_eq!(after.lease_owner.as_deref(), Some("worker-b"));

    // The holder's write applies, all of it in one statement.
    let interrupted = AttemptOutcome {
        failed: true,
        error: Some("an earlier send was interrupted".into()),
        ..AttemptOutcome::to(ForwardingState::Ambiguous)
    };
    assert!(write(&mut conn, |conn| finish(
        conn,
        second.fence("worker-b"),
        interrupted.clone()
    )));
    let job = app.provider_order(order);
    assert_eq!(job.state, ForwardingState::Ambiguous);
    assert_eq!(job.failures, 1);
    assert!(job.lease_owner.is_none() && job.lease_until.is_none());

    // A clear acceptance that lost its claim is adopted, once, never dropped.
    assert!(write(&mut conn, |conn| adopt_acceptance(
        conn,
        reseller_api::domain::ids::OrderId(order),
        "77"
    )));
    let job = app.provider_order(order);
    assert_eq!(job.state, ForwardingState::Sent);
    assert_eq!(job.provider_order_id.as_deref(), Some("77"));
    assert_eq!(job.failures, 0);
    assert_eq!(job.last_error, None);
    assert!(job.lease_token > second.lease_token);
    assert!(!write(&mut conn, |conn| adopt_acceptance(
        conn,
        reseller_api::domain::ids::OrderId(order),
        "78"
    )));
    assert_eq!(
        app.provider_order(order).provider_order_id.as_deref(),
        Some("77")
    );
}

#[actix_rt::test]
async fn an_acceptance_that_arrives_after_the_order_was_taken_over_is_kept_and_polled() {
    let statuses = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let slow = StandIn::start({
        let statuses = statuses.clone();
        move |fields| match fields.get("action").map(String::as_str) {
            Some("add") => (
                200,
                r#"{"order":4242}"#.to_string(),
                Duration::from_millis(1500),
            ),
            _ => {
                let statuses: &HashMap<String, serde_json::Value> = &statuses.lock().unwrap();
                ok(&json!({"4242": statuses.get("4242").cloned().unwrap_or(json!({"error": "Incorrect order ID"}))}).to_string())
            }
        }
    })
    .await;
    statuses.lock().unwrap().insert(
        "4242".into(),
        json!({"status": "In progress", "remains": "1000"}),
    );
    let app = app().await;
    let (_, service) = app.provider_service(&slow.url, false, 5000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    let worker = reseller_api::providers::worker::Worker::new(
        app.pool.clone(),
        app.config.worker.clone(),
        Default::default(),
    );
    let pass = actix_web::web::block(move || worker.run_once());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while slow.calls_of("add").is_empty() {
        assert!(std::time::Instant::now() < deadline, "never sent");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    // Mid-send, the lease runs out (the process stalled): another worker takes the order
    // over, finds it `sending` and marks it ambiguous, as it must for a dead sender.
    expire_lease(&app, order);
    let other = claim_as(&app, "worker-b", &[ForwardingState::Sending]);
    let mut conn = app.pool.get().unwrap();
    let interrupted = reseller_api::db::provider_orders::AttemptOutcome {
        failed: true,
        error: Some("an earlier send was interrupted".into()),
        ..reseller_api::db::provider_orders::AttemptOutcome::to(ForwardingState::Ambiguous)
    };
    assert!(write(&mut conn, |conn| {
        reseller_api::db::provider_orders::finish(
            conn,
            other.fence("worker-b"),
            interrupted.clone(),
        )
    }));
    drop(conn);
    // The first worker's clear answer then arrives: it is not thrown away.
    let pass = pass.await.unwrap().unwrap();
    assert_eq!(pass.sent, 1);
    let job = app.provider_order(order);
    assert_eq!(job.state, ForwardingState::Sent, "{job:?}");
    assert_eq!(job.provider_order_id.as_deref(), Some("4242"));
    assert_eq!(job.failures, 0);
    assert_eq!(job.last_error, None);
    // Tracked: the same pass polled it, and the next one polls it to its final status.
    let json = app.order_json(&reseller.token, order).await;
    assert_eq!(json["status"], "in_progress", "{json}");
    statuses.lock().unwrap().insert(
        "4242".into(),
        json!({"status": "Completed", "remains": "0", "start_count": "9"}),
    );
    app.make_due();
    app.worker_pass().await;
    let json = app.order_json(&reseller.token, order).await;
    assert_eq!(json["status"], "completed", "{json}");
    assert_eq!(app.provider_order(order).state, ForwardingState::Done);
    assert_eq!(slow.calls_of("add").len(), 1);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_late_status_reply_changes_nothing_once_another_worker_holds_the_order() {
    let cancel_slowly = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let upstream = StandIn::start({
        let cancel_slowly = cancel_slowly.clone();
        move |fields| match fields.get("action").map(String::as_str) {
            Some("add") => ok(r#"{"order":31}"#),
            _ if cancel_slowly.load(Ordering::SeqCst) => (
                200,
                json!({"31": {"status": "Canceled", "remains": "1000"}}).to_string(),
                Duration::from_millis(1500),
            ),
            _ => ok(&json!({"31": {"status": "In progress", "remains": "1000"}}).to_string()),
        }
    })
    .await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 5000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    app.worker_pass().await;
    assert_eq!(
        app.order_json(&reseller.token, order).await["status"],
        "in_progress"
    );
    cancel_slowly.store(true, Ordering::SeqCst);
    app.make_due();
    let worker = reseller_api::providers::worker::Worker::new(
        app.pool.clone(),
        app.config.worker.clone(),
        Default::default(),
    );
    let pass = actix_web::web::block(move || worker.run_once());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while upstream.calls_of("status").len() < 2 {
        assert!(std::time::Instant::now() < deadline, "never polled");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    // While the poll is in flight its lease runs out and another worker takes the order.
    expire_lease(&app, order);
    let other = claim_as(&app, "worker-b", &[ForwardingState::Sent]);
    let pass = pass.await.unwrap().unwrap();
    assert_eq!(pass.refunds, 0, "the late reply refunds nothing");
    let json = app.order_json(&reseller.token, order).await;
    assert_eq!(json["status"], "in_progress", "{json}");
    assert_eq!(json["refunded"], "0");
    let job = app.provider_order(order);
    assert_eq!(job.state, ForwardingState::Sent);
    assert_eq!(job.lease_owner.as_deref(), Some("worker-b"));
    assert_eq!(job.lease_token, other.lease_token);
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    app.assert_books_balance();
}

#[test]
fn the_lease_token_migration_is_the_same_in_both_trees_and_in_schema_rs() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |tree: &str, file: &str| {
        std::fs::read_to_string(format!(
            "{root}/migrations/{tree}/2026-12-01-000040_lease_fencing/{file}"
        ))
        .unwrap()
    };
    for file in ["up.sql", "down.sql"] {
        assert_eq!(read("sqlite", file), read("postgres", file), "{file}");
    }
    assert!(read("sqlite", "up.sql").contains("ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0;"));
    let schema = std::fs::read_to_string(format!("{root}/src/db/schema.rs")).unwrap();
    let table = &schema[schema.find("provider_orders (order_id)").unwrap()..];
    let table = &table[..table.find('}').unwrap()];
    assert!(table.contains("lease_token -> BigInt,"), "{table}");
    // Every test that reads a provider row (all columns of schema.rs) checks the migrated
    // database of its backend against schema.rs.
}

#[actix_rt::test]
async fn a_hanging_provider_holds_only_its_own_lane() {
    // Answers nothing for a minute; the provider's timeout is half that. A worker that
    // runs providers one after another waits here for 30 s before it gets to anyone else.
    let hanging = StandIn::start(|_| {
        (
            200,
            r#"{"order":1,"balance":"100","currency":"USD"}"#.to_string(),
            Duration::from_secs(60),
        )
    })
    .await;
    let (healthy, panel) = StandIn::panel().await;
    let app = spawn_app_with(|c| {
        c.worker.worker_interval_ms = 50;
        c.worker.sync_interval_secs = 0;
        c.worker.max_backoff_secs = 0;
        c.webhooks.webhook_interval_ms = 50;
    })
    .await;
    // The hanging provider comes first: lower id, and its order is due first.
    let (_, stuck_service) = app.provider_service(&hanging.url, false, 30_000).await;
    let (healthy_provider, healthy_service) =
        app.provider_service(&healthy.url, false, 2_000).await;
    let patched = app
        .patch(
            &format!("/v1/admin/providers/{healthy_provider}"),
            &app.admin_token,
            json!({"min_balance": "5"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let reseller = app.funded_reseller("Acme", "10").await;
    let stuck = app.order_id(&reseller.token, stuck_service, 1000).await;
    let order = app.order_id(&reseller.token, healthy_service, 1000).await;

    let worker = reseller_api::providers::worker::spawn(
        app.pool.clone(),
        app.config.worker.clone(),
        app.config.retention.clone(),
        Default::default(),
    );
    // A correctness bound, not a speed target: far below the hanging provider's timeout.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while healthy.calls_of("add").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the healthy provider's order was not sent while the other provider hung"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    panel.lock().unwrap().statuses.insert(
        "9001".into(),
        json!({"charge": "1", "start_count": "10", "status": "Partial", "remains": "400", "currency": "USD"}),
    );
    loop {
        let json = app.order_json(&reseller.token, order).await;
        if json["status"] == "partial" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the healthy provider's order was not synced while the other provider hung: {json}"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        std::time::Instant::now() < deadline,
        "the healthy provider's work was late"
    );
    // The hanging provider's exchange is still in flight: its order is still `sending`.
    assert!(!hanging.calls.lock().unwrap().is_empty(), "never asked");
    let job = app.provider_order(stuck);
    assert_eq!(job.state, ForwardingState::Sending, "{job:?}");
    assert!(job.provider_order_id.is_none(), "{job:?}");
    // The healthy provider's balance was read on its own schedule too.
    assert_eq!(healthy.calls_of("balance").len(), 1);
    let listed = app.get("/v1/admin/providers", &app.admin_token).await;
    let provider = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == healthy_provider)
        .unwrap();
    assert_eq!(crate::helpers::micros(&provider["balance"]), 1_000_000_000);

    // 1000 ordered at 1 per 1000, 400 remaining: 0.4 back, exactly, once.
    let json = app.order_json(&reseller.token, order).await;
    assert_eq!(crate::helpers::micros(&json["charge"]), 1_000_000);
    assert_eq!(crate::helpers::micros(&json["refunded"]), 400_000, "{json}");
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, order).await,
        400_000
    );
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, stuck).await,
        0,
        "nothing settled for the order whose send is in flight"
    );
    app.assert_books_balance();

    // Shutdown lets the hanging exchange end at its timeout and records it: the order may
    // have reached the provider, which does not deduplicate, so an operator decides.
    actix_web::web::block(move || worker.shutdown())
        .await
        .unwrap();
    let job = app.provider_order(stuck);
    assert_eq!(job.state, ForwardingState::Ambiguous, "{job:?}");
    assert!(job.lease_owner.is_none(), "{job:?}");
    assert_eq!(hanging.calls_of("add").len(), 1);
}

/// A lane gives its pooled connection back while its provider answers: with a pool of one
/// connection and a provider that hangs past the pool's checkout timeout (10 s), the API
/// still reads and writes. (Before, the lane held the connection for the whole exchange,
/// and the API's requests waited for it until they were refused 503.)
#[actix_rt::test]
async fn a_hanging_provider_holds_no_database_connection() {
    let hanging = StandIn::start(|_| {
        (
            200,
            r#"{"order":1,"balance":"100","currency":"USD"}"#.to_string(),
            Duration::from_secs(60),
        )
    })
    .await;
    let app = spawn_app_with(|c| {
        c.db_pool_size = 1;
        c.worker.worker_interval_ms = 50;
    })
    .await;
    let (_, service) = app.provider_service(&hanging.url, false, 25_000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let stuck = app.order_id(&reseller.token, service, 1000).await;
    let worker = reseller_api::providers::worker::spawn(
        app.pool.clone(),
        app.config.worker.clone(),
        app.config.retention.clone(),
        Default::default(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while hanging.calls_of("add").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the order was never sent"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    // The exchange is in flight for the next 25 s; the API needs the pool's one connection.
    let listed = app.get("/v1/orders", &reseller.token).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body["data"][0]["id"], stuck);
    let placed = app
        .post(
            "/v1/orders",
            &reseller.token,
            json!({"service_id": service, "link": "https://example.com/p/2", "quantity": 1000}),
        )
        .await;
    assert_eq!(placed.status, 201, "{}", placed.text);
    assert_eq!(crate::helpers::micros(&placed.body["charge"]), 1_000_000);
    assert_eq!(app.provider_order(stuck).state, ForwardingState::Sending);
    app.assert_books_balance();
    actix_web::web::block(move || worker.shutdown())
        .await
        .unwrap();
    assert_eq!(hanging.calls_of("add").len(), 1);
}

/// A provider that answers with a redirect cannot steer the worker elsewhere: the redirect
/// is not followed (the target never hears from us), its Location is what the operator and
/// the attempt log see, and the send is not known to have failed, so it is not refunded.
#[actix_rt::test]
async fn a_provider_redirect_is_never_followed() {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let (target, _) = StandIn::panel().await;
    let location = target.url.clone();
    let redirecting = HttpServer::new(move || {
        let location = location.clone();
        App::new().default_service(web::to(move || {
            let location = location.clone();
            async move {
                HttpResponse::Found()
                    .insert_header(("Location", location))
                    .body("moved")
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let url = format!("http://{}/api/v2", redirecting.addrs()[0]);
    let server = redirecting.run();
    let handle = server.handle();
    actix_rt::spawn(server);

    let app = spawn_app_with(|_| {}).await;
    let (_, service) = app.provider_service(&url, false, 2_000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    app.worker_pass().await;

    assert!(
        target.calls.lock().unwrap().is_empty(),
        "the redirect was followed"
    );
    let case = app
        .get(&format!("/v1/admin/orders/{order}"), &app.admin_token)
        .await;
    assert_eq!(case.status, 200, "{}", case.text);
    let error = case.body["forwarding"]["last_error"].as_str().unwrap();
    assert!(error.contains("HTTP 302"), "{error}");
    assert!(error.contains(&target.url), "{error}");
    assert_eq!(case.body["attempts"][0]["action"], "add");
    assert!(case.body["attempts"][0]["body"]
        .as_str()
        .unwrap()
        .contains(&format!("a redirect to {}", target.url)));
    // The provider may have taken the order before redirecting: it waits for an operator,
    // charged and not refunded.
    assert_eq!(app.provider_order(order).state, ForwardingState::Ambiguous);
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    app.assert_books_balance();
    handle.stop(false).await;
}
