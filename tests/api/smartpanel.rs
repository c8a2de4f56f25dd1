//! A provider that answers as a real SmartPanel did when it was connected to us: string
//! numbers, lower-case `default` types, no `refill`/`cancel` keys in its catalog, `{"error":
//! "This action is Invalid"}` to `refill` and `cancel`, `Refunded` as a status word, and an
//! HTML 403 page at the wrong API path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::prelude::*;
use serde_json::{json, Value};

use reseller_api::db::schema::provider_attempts;
use reseller_api::domain::provider::ForwardingState;

use crate::helpers::{micros, spawn_app_with, StandIn, TestApp};

/// What the panel answers `status` with, by its order id, and the services it lists.
#[derive(Default)]
struct SmartPanel {
    next_order: i64,
    statuses: HashMap<String, Value>,
    services: Value,
}

type Shared = Arc<Mutex<SmartPanel>>;

/// The panel at its API path, answering as SmartPanel 4 does.
async fn smartpanel() -> (StandIn, Shared) {
    let state: Shared = Arc::new(Mutex::new(SmartPanel {
        next_order: 700,
        services: json!([]),
        ..SmartPanel::default()
    }));
    let panel = state.clone();
    let stand_in = StandIn::start(move |fields| {
        let ok = |value: Value| (200, value.to_string(), Duration::ZERO);
        let mut panel = panel.lock().unwrap();
        match fields.get("action").map(String::as_str) {
            Some("add") => {
                panel.next_order += 1;
                let id = panel.next_order.to_string();
                panel.statuses.insert(
                    id.clone(),
                    json!({"charge": "1.00000", "start_count": "0", "status": "Pending", "remains": "1000", "currency": "USD"}),
                );
                ok(json!({"status": "success", "order": id}))
            }
            Some("status") => {
                let mut reply = serde_json::Map::new();
                for id in fields.get("orders").map_or("", String::as_str).split(',') {
                    let item = panel.statuses.get(id).cloned();
                    reply.insert(id.to_string(), item.unwrap_or(json!({"error": "Incorrect order ID"})));
                }
                ok(Value::Object(reply))
            }
            Some("services") => ok(panel.services.clone()),
            Some("balance") => ok(json!({"status": "success", "balance": "100.0000", "currency": "USD"})),
            // SmartPanel knows only add, status, services and balance.
            _ => ok(json!({"error": "This action is Invalid"})),
        }
    })
    .await;
    (stand_in, state)
}

async fn app() -> TestApp {
    spawn_app_with(|c| {
        c.worker.sync_interval_secs = 0;
        c.worker.max_backoff_secs = 0;
        c.worker.forward_max_failures = 3;
    })
    .await
}

/// The status calls that asked about `remote`.
fn polls_of(upstream: &StandIn, remote: &str) -> usize {
    upstream
        .calls_of("status")
        .iter()
        .filter(|c| c["orders"].split(',').any(|id| id == remote))
        .count()
}

fn attempt_bodies(app: &TestApp, action: &str) -> Vec<(String, Option<String>)> {
    let mut conn = app.pool.get().unwrap();
    provider_attempts::table
        .filter(provider_attempts::action.eq(action))
        .select((provider_attempts::outcome, provider_attempts::body))
        .order(provider_attempts::id)
        .load(&mut *conn)
        .unwrap()
}

#[actix_rt::test]
async fn an_order_settled_by_an_operator_is_no_longer_polled() {
    let (upstream, panel) = smartpanel().await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (order, remote) = app.sent_order(&reseller, service).await;
    assert_eq!(remote, "701", "a string id is read");

    // The panel answers a word we do not know: quarantined, still polled.
    panel.lock().unwrap().statuses.insert(
        remote.clone(),
        json!({"charge": "1.00000", "start_count": "0", "status": "Refunded", "remains": "1000", "currency": "USD"}),
    );
    app.make_due();
    app.worker_pass().await;
    let row = app.provider_order(order);
    assert_eq!(row.state, ForwardingState::Sent);
    assert_eq!(row.quarantined_status.as_deref(), Some("Refunded"));
    let polls = polls_of(&upstream, &remote);
    assert!(polls >= 1, "asked at least once: {polls}");

    // The operator settles it: refunded in full, and out of the poll.
    let settled = app
        .outcome(
            order,
            json!({"status": "canceled", "note": "the panel refunded it"}),
        )
        .await;
    assert_eq!(settled.status, 200, "{}", settled.text);
    assert_eq!(micros(&settled.body["refund"]["amount"]), 1_000_000);
    assert_eq!(app.provider_order(order).state, ForwardingState::Done);
    for _ in 0..3 {
        app.make_due();
        app.worker_pass().await;
    }
    assert_eq!(
        polls_of(&upstream, &remote),
        polls,
        "a settled order is never asked about again"
    );
    assert_eq!(app.balance_micros(&reseller.token).await, 10_000_000);
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, order).await,
        1_000_000
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn an_order_completed_by_the_provider_is_no_longer_polled_either() {
    let (upstream, panel) = smartpanel().await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (order, remote) = app.sent_order(&reseller, service).await;
    panel.lock().unwrap().statuses.insert(
        remote.clone(),
        json!({"charge": "1.00000", "start_count": "12", "status": "Partial", "remains": "250", "currency": "USD"}),
    );
    app.make_due();
    app.worker_pass().await;
    let polls = polls_of(&upstream, &remote);
    assert_eq!(app.provider_order(order).state, ForwardingState::Done);
    app.make_due();
    app.worker_pass().await;
    assert_eq!(polls_of(&upstream, &remote), polls);
    // 250 of 1000 undelivered at 1 per 1000: 0.25 back.
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, order).await,
        250_000
    );
    assert_eq!(app.balance_micros(&reseller.token).await, 9_250_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_cancel_the_panel_does_not_offer_is_refused_in_its_words_at_once() {
    let (upstream, _panel) = smartpanel().await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (order, _) = app.sent_order(&reseller, service).await;

    let requested = app
        .post(
            &format!("/v1/orders/{order}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(requested.status, 202, "{}", requested.text);
    app.worker_pass().await;
    assert_eq!(
        upstream.calls_of("cancel").len(),
        1,
        "asked once, not retried"
    );
    let listed = app
        .get(
            &format!("/v1/orders/{order}/cancel-requests"),
            &reseller.token,
        )
        .await;
    assert_eq!(
        listed.body["data"][0]["status"], "refused",
        "{}",
        listed.text
    );
    assert_eq!(listed.body["data"][0]["reason"], "This action is Invalid");
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("cancel").len(), 1);
    // The order runs on, charged in full.
    assert_eq!(
        app.order_json(&reseller.token, order).await["status"],
        "pending"
    );
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    assert_eq!(app.provider_order(order).state, ForwardingState::Sent);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_cancel_answered_with_words_about_our_account_is_retried_then_fails() {
    let asked = Arc::new(Mutex::new(0));
    let count = asked.clone();
    let upstream = StandIn::start(move |fields| {
        let reply = match fields.get("action").map(String::as_str) {
            Some("add") => r#"{"order":"31"}"#.to_string(),
            Some("cancel") => {
                *count.lock().unwrap() += 1;
                r#"{"error":"Invalid API key"}"#.to_string()
            }
            _ => r#"{"31":{"status":"In progress","remains":"400"}}"#.to_string(),
        };
        (200, reply, Duration::ZERO)
    })
    .await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (order, _) = app.sent_order(&reseller, service).await;
    let requested = app
        .post(
            &format!("/v1/orders/{order}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(requested.status, 202, "{}", requested.text);
    for _ in 0..4 {
        app.worker_pass().await;
    }
    assert_eq!(
        *asked.lock().unwrap(),
        3,
        "retried up to forward_max_failures"
    );
    let listed = app
        .get(
            &format!("/v1/orders/{order}/cancel-requests"),
            &reseller.token,
        )
        .await;
    let request = &listed.body["data"][0];
    assert_eq!(request["status"], "failed", "{}", listed.text);
    let reason = request["reason"].as_str().unwrap();
    assert!(
        !reason.contains("API key"),
        "our account's trouble is not the reseller's: {reason}"
    );
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_refill_the_panel_does_not_offer_is_refused_in_its_words() {
    let (upstream, panel) = smartpanel().await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let patched = app
        .patch(
            &format!("/v1/admin/services/{service}"),
            &app.admin_token,
            json!({"refill": true}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let reseller = app.funded_reseller("Acme", "10").await;
    let (order, remote) = app.sent_order(&reseller, service).await;
    panel.lock().unwrap().statuses.insert(
        remote,
        json!({"charge": "1.00000", "start_count": "0", "status": "Completed", "remains": "0", "currency": "USD"}),
    );
    app.make_due();
    app.worker_pass().await;
    let asked = app
        .post(
            &format!("/v1/orders/{order}/refills"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(asked.status, 201, "{}", asked.text);
    app.worker_pass().await;
    let refills = app
        .get(&format!("/v1/orders/{order}/refills"), &reseller.token)
        .await;
    let refill = &refills.body["data"][0];
    assert_eq!(refill["status"], "rejected", "{}", refills.text);
    assert_eq!(upstream.calls_of("refill").len(), 1);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn flags_an_operator_set_survive_a_catalog_that_omits_them() {
    let (upstream, panel) = smartpanel().await;
    panel.lock().unwrap().services = json!([
        {"service": "11", "name": "Followers", "type": "default", "category": "Instagram",
         "rate": "0.9000", "min": "10", "max": "10000"},
        {"service": "12", "name": "Likes", "type": "default", "category": "Instagram",
         "rate": "1.5000", "min": "10", "max": "5000", "refill": false, "cancel": false}
    ]);
    let app = app().await;
    let provider = app
        .post(
            "/v1/admin/providers",
            &app.admin_token,
            json!({"allow_private_network": true, "name": "SmartPanel", "url": upstream.url, "key": "k"}),
        )
        .await;
    assert_eq!(provider.status, 201, "{}", provider.text);
    let path = format!("/v1/admin/providers/{}/sync-services", provider.body["id"]);
    let synced = app.post(&path, &app.admin_token, json!({})).await;
    assert_eq!(synced.status, 200, "{}", synced.text);
    let created = synced.body["created"].as_array().unwrap().clone();
    assert_eq!(
        created.len(),
        2,
        "lower-case default types are read: {}",
        synced.text
    );
    let id_of = |remote: &str| {
        created
            .iter()
            .find(|c| c["provider_service_id"] == remote)
            .unwrap()["service_id"]
            .as_i64()
            .unwrap()
    };
    let (followers, likes) = (id_of("11"), id_of("12"));
    let flags = |body: &Value| (body["refill"].clone(), body["cancel"].clone());
    let service = |id: i64| {
        let app = &app;
        async move {
            let listed = app.get("/v1/services?limit=100", &app.admin_token).await;
            listed.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == id)
                .unwrap()
                .clone()
        }
    };
    assert_eq!(
        flags(&service(followers).await),
        (json!(false), json!(false)),
        "new: off"
    );

    // The operator knows the panel refills and cancels these, and says so.
    for id in [followers, likes] {
        let patched = app
            .patch(
                &format!("/v1/admin/services/{id}"),
                &app.admin_token,
                json!({"refill": true, "cancel": true}),
            )
            .await;
        assert_eq!(patched.status, 200, "{}", patched.text);
    }

    // A dry run says which flags it keeps and why; a sync keeps them.
    let dry = app
        .post(&path, &app.admin_token, json!({"dry_run": true}))
        .await;
    assert_eq!(dry.status, 200, "{}", dry.text);
    let kept = dry.body["kept"].as_array().unwrap();
    assert_eq!(kept.len(), 2, "{}", dry.text);
    for (entry, flag) in kept.iter().zip(["refill", "cancel"]) {
        assert_eq!(entry["service_id"], followers);
        assert_eq!(entry["provider_service_id"], "11");
        assert_eq!(entry["flag"], flag);
        assert!(entry["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("no {flag} key")));
    }
    let updated = dry.body["updated"].as_array().unwrap();
    assert_eq!(
        updated.len(),
        1,
        "only the explicit false changes: {}",
        dry.text
    );
    assert_eq!(updated[0]["service_id"], likes);
    assert_eq!(updated[0]["changes"], json!(["refill", "cancel"]));

    let synced = app.post(&path, &app.admin_token, json!({})).await;
    assert_eq!(synced.status, 200, "{}", synced.text);
    assert_eq!(
        flags(&service(followers).await),
        (json!(true), json!(true)),
        "absent is not false"
    );
    assert_eq!(
        flags(&service(likes).await),
        (json!(false), json!(false)),
        "an explicit false is"
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_provider_url_that_answers_an_html_page_says_so_plainly() {
    let page = "<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>\
                <body><h1>Forbidden</h1><p>cf-ray 8a1b2c secret-internal-host</p></body></html>";
    let wrong_path = StandIn::start(move |_| (403, page.to_string(), Duration::ZERO)).await;
    let app = app().await;
    let (provider, service) = app.provider_service(&wrong_path.url, false, 2000).await;

    // The catalog sync: 409 with a plain sentence, the page only in the attempt log.
    let synced = app
        .post(
            &format!("/v1/admin/providers/{provider}/sync-services"),
            &app.admin_token,
            json!({}),
        )
        .await;
    synced.assert_problem(409, "provider_unavailable");
    let detail = synced.body["detail"].as_str().unwrap();
    assert_eq!(
        detail,
        "the provider answered an HTML page (HTTP 403), not the panel API: check the URL's path (often /api/v2 or /api/v1)"
    );
    assert!(!synced.text.contains("secret-internal-host"));
    let logged = attempt_bodies(&app, "services");
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].0, "unreadable");
    assert!(logged[0].1.as_deref().unwrap().contains("403 Forbidden"));

    // An order's send: the forwarding error says the same, and the order waits for an
    // operator (the page is no certain answer).
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    app.worker_pass().await;
    let case = app
        .get(&format!("/v1/admin/orders/{order}"), &app.admin_token)
        .await;
    assert_eq!(case.status, 200, "{}", case.text);
    let error = case.body["forwarding"]["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("the provider answered an HTML page (HTTP 403)"),
        "{error}"
    );
    assert!(!case.body["forwarding"]
        .to_string()
        .contains("secret-internal-host"));
    assert!(case.body["attempts"][0]["body"]
        .as_str()
        .unwrap()
        .contains("secret-internal-host"));
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_refill_answered_with_words_about_our_account_is_retried_not_refused() {
    let (upstream, panel) = crate::helpers::StandIn::panel().await;
    panel.lock().unwrap().refill_reply = Some(r#"{"error":"Not enough funds on balance"}"#.into());
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let patched = app
        .patch(
            &format!("/v1/admin/services/{service}"),
            &app.admin_token,
            json!({"refill": true}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let reseller = app.funded_reseller("Acme", "10").await;
    let (order, remote) = app.sent_order(&reseller, service).await;
    panel.lock().unwrap().statuses.insert(
        remote,
        json!({"charge": "1", "start_count": "0", "status": "Completed", "remains": "0"}),
    );
    app.make_due();
    app.worker_pass().await;
    let asked = app
        .post(
            &format!("/v1/orders/{order}/refills"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(asked.status, 201, "{}", asked.text);
    let refills_path = format!("/v1/orders/{order}/refills");
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("refill").len(), 1);
    assert_eq!(
        app.get(&refills_path, &reseller.token).await.body["data"][0]["status"],
        "pending",
        "not a refusal: asked again later"
    );
    // The panel has funds again: the refill is taken.
    panel.lock().unwrap().refill_reply = None;
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("refill").len(), 2);
    assert_ne!(
        app.get(&refills_path, &reseller.token).await.body["data"][0]["status"],
        "rejected"
    );
    assert!(app
        .refill_row(asked.body["id"].as_i64().unwrap())
        .provider_refill_id
        .is_some());
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn orders_left_in_the_poll_before_the_fix_are_taken_out_by_the_migration() {
    use reseller_api::db::schema::provider_orders;
    let (upstream, _panel) = smartpanel().await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (settled, running) = (
        app.order_id(&reseller.token, service, 1000).await,
        app.order_id(&reseller.token, service, 1000).await,
    );
    app.worker_pass().await;
    let settled_reply = app.outcome(settled, json!({"status": "completed"})).await;
    assert_eq!(settled_reply.status, 200, "{}", settled_reply.text);
    // As an earlier release left it: final, yet still `sent`.
    let mut conn = app.pool.get().unwrap();
    diesel::update(provider_orders::table.find(settled))
        .set(provider_orders::state.eq("sent"))
        .execute(&mut *conn)
        .unwrap();
    let tree = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => "postgres",
        _ => "sqlite",
    };
    let up = std::fs::read_to_string(format!(
        "{}/migrations/{tree}/2026-12-06-000100_settled_orders_leave_polling/up.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    diesel::sql_query(up).execute(&mut *conn).unwrap();
    drop(conn);
    assert_eq!(app.provider_order(settled).state, ForwardingState::Done);
    assert_eq!(
        app.provider_order(running).state,
        ForwardingState::Sent,
        "still polled"
    );
    app.assert_books_balance();
}
