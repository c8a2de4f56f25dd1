//! Events and webhooks through HTTP: the event log written with each change, endpoints,
//! signed deliveries to a receiver in the test, retries on the (compressed) schedule,
//! `Retry-After`, 410 Gone, secret rotation, isolation between resellers, and refund-rate
//! alerts raised, escalated and cleared by a burst of partial refunds.
//!
//! Signatures are checked here with HMAC-SHA256 computed by the test itself; the
//! independent check with the `standardwebhooks` package is `tests/webhooks/run.sh`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{micros, spawn_app_with, TestApp};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: String,
    pub at: std::time::Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// How the receiver answers its n-th request (0-based): status, extra headers, delay.
pub type Script = dyn Fn(usize) -> (u16, Vec<(&'static str, String)>, Duration) + Send + Sync;

/// A webhook receiver on a loopback port that records every request.
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    pub async fn start(
        script: impl Fn(usize) -> (u16, Vec<(&'static str, String)>, Duration) + Send + Sync + 'static,
    ) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let recorded = got.clone();
        let server = HttpServer::new(move || {
            let recorded = recorded.clone();
            let script = script.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let recorded = recorded.clone();
                let script = script.clone();
                async move {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| {
                            (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                        })
                        .collect();
                    let n = {
                        let mut got = recorded.lock().unwrap();
                        got.push(Received {
                            headers,
                            body: String::from_utf8_lossy(&body).into_owned(),
                            at: std::time::Instant::now(),
                        });
                        got.len() - 1
                    };
                    let (status, extra, delay) = script(n);
                    if !delay.is_zero() {
                        actix_rt::time::sleep(delay).await;
                    }
                    let mut response = HttpResponse::build(StatusCode::from_u16(status).unwrap());
                    for (name, value) in extra {
                        response.insert_header((name, value));
                    }
                    response.body("thanks")
                }
            }))
        })
        .workers(2)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Receiver {
            url: format!("http://{addr}/hooks"),
            got,
            handle,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    pub fn types(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| r.json()["type"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_rt::spawn(async move { handle.stop(false).await });
    }
}

/// Verifies a `webhook-signature` header against `secret`, as a receiver would.
pub fn signed_by(received: &Received, secret: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let id = &received.headers["webhook-id"];
    let ts = &received.headers["webhook-timestamp"];
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{}", received.body).as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    received.headers["webhook-signature"]
        .split(' ')
        .any(|s| s == expected)
}

fn always(status: u16) -> impl Fn(usize) -> (u16, Vec<(&'static str, String)>, Duration) {
    move |_| (status, vec![], Duration::ZERO)
}

async fn app_with_hooks(schedule: &str) -> TestApp {
    let schedule = reseller_api::domain::event::parse_schedule(schedule).unwrap();
    spawn_app_with(move |c| {
        c.webhooks.webhook_allow_private = true;
        c.webhooks.webhook_retry_schedule = schedule;
        c.webhooks.webhook_timeout_secs = 1;
        c.alerts.alert_interval_secs = 0;
    })
    .await
}

impl TestApp {
    /// One pass of a webhook worker over this app's database, off the async runtime.
    pub async fn webhook_pass(&self) -> reseller_api::webhooks::worker::WebhookPass {
        let worker = reseller_api::webhooks::worker::WebhookWorker::new(
            self.pool.clone(),
            self.config.webhooks.clone(),
            self.config.alerts.clone(),
        );
        actix_web::web::block(move || worker.run_once())
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn endpoint(&self, token: &str, url: &str, events: Value) -> (i64, String) {
        let reply = self
            .post(
                "/v1/webhook-endpoints",
                token,
                json!({"url": url, "events": events}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let secret = reply.body["secret"].as_str().unwrap().to_string();
        assert!(secret.starts_with("whsec_"));
        (reply.body["id"].as_i64().unwrap(), secret)
    }

    pub async fn events_of(&self, token: &str, query: &str) -> Vec<Value> {
        let reply = self
            .get(&format!("/v1/events?limit=100{query}"), token)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body["data"].as_array().unwrap().clone()
    }

    pub fn event_count(&self) -> i64 {
        let mut conn = self.pool.get().unwrap();
        reseller_api::db::events::count(&mut conn).unwrap()
    }
}

#[actix_rt::test]
async fn every_change_writes_its_event_and_a_failed_change_writes_none() {
    let app = app_with_hooks("0").await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    app.outcome(order, json!({"status": "partial", "remains": 250}))
        .await;
    // A refused order (1000 units × 1 per 1000 × 100 = 100 > balance) writes nothing.
    let before = app.event_count();
    let refused = app.order(&reseller.token, service, 100_000).await;
    assert_eq!(refused.status, 402, "{}", refused.text);
    assert_eq!(
        app.event_count(),
        before,
        "a rolled-back order writes no event"
    );

    let events = app.events_of(&reseller.token, "").await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    // Newest first.
    assert_eq!(
        types,
        [
            "refund.succeeded",
            "order.status_changed",
            "order.created",
            "top_up.succeeded"
        ]
    );
    let created = &events[2];
    assert_eq!(created["account_id"], reseller.id);
    assert_eq!(created["data"]["order"]["id"], order);
    assert_eq!(created["data"]["order"]["status"], "pending");
    assert_eq!(micros(&created["data"]["order"]["charge"]), 1_000_000);
    let changed = &events[1]["data"];
    assert_eq!(
        (changed["from"].as_str(), changed["to"].as_str()),
        (Some("pending"), Some("partial"))
    );
    assert_eq!(changed["remains"], 250);
    let refund = &events[0]["data"];
    assert_eq!(micros(&refund["refund"]["amount"]), 250_000);
    assert_eq!(refund["refund"]["reason"], "partial_delivery");
    assert_eq!(refund["order"]["id"], order);
    // 10 − 1 + 0.25
    assert_eq!(micros(&refund["balance_after"]), 9_250_000);
    assert_eq!(micros(&events[3]["data"]["balance_after"]), 10_000_000);

    // Filters and one event by id.
    let only = app.events_of(&reseller.token, "&type=order.created").await;
    assert_eq!(only.len(), 1);
    let one = app
        .get(&format!("/v1/events/{}", created["id"]), &reseller.token)
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["data"], created["data"]);
    let bad = app
        .get("/v1/events?type=order.deleted", &reseller.token)
        .await;
    bad.assert_problem(422, "invalid_query");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn disputes_top_up_refunds_chargebacks_and_suspensions_have_their_events() {
    let app = app_with_hooks("0").await;
    let reseller = app.funded_reseller("Acme", "50").await;
    let service = app.service("1").await;
    let order = app.order_id(&reseller.token, service, 2000).await;
    app.outcome(order, json!({"status": "completed"})).await;
    let filed = app
        .post(
            &format!("/v1/orders/{order}/refunds"),
            &reseller.token,
            json!({"reason": "not_delivered", "amount": "1.5", "note": "half never came"}),
        )
        .await;
    assert_eq!(filed.status, 202, "{}", filed.text);
    let refund_id = filed.body["id"].as_i64().unwrap();
    let approved = app
        .post(
            &format!("/v1/admin/refunds/{refund_id}/approve"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    let order2 = app.order_id(&reseller.token, service, 1000).await;
    app.outcome(order2, json!({"status": "completed"})).await;
    let filed = app
        .post(
            &format!("/v1/orders/{order2}/refunds"),
            &reseller.token,
            json!({"reason": "not_delivered"}),
        )
        .await;
    let rejected = app
        .post(
            &format!("/v1/admin/refunds/{}/reject", filed.body["id"]),
            &app.admin_token,
            json!({"reason": "delivered, see screenshot"}),
        )
        .await;
    assert_eq!(rejected.status, 200, "{}", rejected.text);
    // A top-up refunded to the card, then one charged back.
    let top_up = app.top_up(reseller.id, "5").await.body["id"]
        .as_i64()
        .unwrap();
    let back = app
        .post(
            &format!("/v1/admin/top-ups/{top_up}/refund"),
            &app.admin_token,
            json!({"amount": "2", "reason": "manual"}),
        )
        .await;
    assert_eq!(back.status, 201, "{}", back.text);
    let ok = app
        .post(
            &format!("/v1/admin/refunds/{}/succeed", back.body["id"]),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let charged = app
        .post(
            &format!("/v1/admin/top-ups/{top_up}/chargeback"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(charged.status, 201, "{}", charged.text);
    let reactivated = app
        .post(
            &format!("/v1/admin/accounts/{}/reactivate", reseller.id),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(reactivated.status, 200);

    let events = app.events_of(&reseller.token, "").await;
    let types: Vec<&str> = events
        .iter()
        .rev()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for expected in [
        "refund.pending_review",
        "refund.approved",
        "refund.succeeded",
        "refund.rejected",
        "top_up_refund.succeeded",
        "chargeback.created",
        "account.suspended",
        "account.reactivated",
    ] {
        assert!(
            types.contains(&expected),
            "{expected} missing from {types:?}"
        );
    }
    let approved_event = events
        .iter()
        .find(|e| e["type"] == "refund.approved")
        .unwrap();
    assert_eq!(
        micros(&approved_event["data"]["refund"]["amount"]),
        1_500_000
    );
    assert_eq!(approved_event["data"]["refund"]["status"], "succeeded");
    let rejected_event = events
        .iter()
        .find(|e| e["type"] == "refund.rejected")
        .unwrap();
    assert_eq!(
        rejected_event["data"]["refund"]["decision_reason"],
        "delivered, see screenshot"
    );
    let charge_event = events
        .iter()
        .find(|e| e["type"] == "chargeback.created")
        .unwrap();
    assert_eq!(micros(&charge_event["data"]["refund"]["amount"]), 3_000_000);
    assert_eq!(charge_event["data"]["account"]["status"], "suspended");
    // The operator sees the reseller's events too, and its own alerts would be there.
    let all = app.events_of(&app.admin_token, "").await;
    assert!(all.len() >= events.len());
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_delivery_is_signed_per_standard_webhooks_and_logged() {
    let app = app_with_hooks("0").await;
    let receiver = Receiver::start(always(204)).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (endpoint, secret) = app
        .endpoint(&reseller.token, &receiver.url, json!([]))
        .await;
    let service = app.service("1").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    let pass = app.webhook_pass().await;
    assert_eq!(pass.delivered, 1, "{pass:?}");
    let got = receiver.received();
    // The top-up happened before the endpoint existed: not delivered.
    assert_eq!(got.len(), 1);
    let hook = &got[0];
    let body = hook.json();
    assert_eq!(body["type"], "order.created");
    assert_eq!(body["data"]["order"]["id"], order);
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    let event = app.events_of(&reseller.token, "&type=order.created").await[0].clone();
    assert_eq!(hook.headers["webhook-id"], event["id"].to_string());
    let ts: i64 = hook.headers["webhook-timestamp"].parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    assert!(
        signed_by(hook, &secret),
        "signature {:?}",
        hook.headers["webhook-signature"]
    );
    assert!(!signed_by(hook, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    // Nothing more to send.
    assert_eq!(app.webhook_pass().await.delivered, 0);
    let log = app
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
            &reseller.token,
        )
        .await;
    assert_eq!(log.status, 200, "{}", log.text);
    let attempts = log.body["data"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["status_code"], 204);
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["event_id"], event["id"]);
    // The secret is shown only at creation.
    let found = app
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}"),
            &reseller.token,
        )
        .await;
    assert!(found.body.get("secret").is_none());
    assert!(!found.text.contains(&secret));
}

#[actix_rt::test]
async fn failures_are_retried_on_the_schedule_and_timeouts_count_as_failures() {
    let app = app_with_hooks("0,1,2").await;
    // 500, then a timeout (2 s > the 1 s timeout), then 200.
    let receiver = Receiver::start(|n| match n {
        0 => (500, vec![], Duration::ZERO),
        1 => (200, vec![], Duration::from_secs(2)),
        _ => (200, vec![], Duration::ZERO),
    })
    .await;
    let reseller = app.create_reseller("Acme").await;
    let (endpoint, _) = app
        .endpoint(&reseller.token, &receiver.url, json!(["top_up.succeeded"]))
        .await;
    app.top_up(reseller.id, "3").await;
    assert_eq!(app.webhook_pass().await.failed_attempts, 1);
    // Not due again before its 1 s wait (±10 %).
    assert_eq!(app.webhook_pass().await, Default::default());
    actix_rt::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.webhook_pass().await.failed_attempts, 1, "the timeout");
    actix_rt::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        app.webhook_pass().await,
        Default::default(),
        "2 s wait not over"
    );
    actix_rt::time::sleep(Duration::from_millis(1400)).await;
    assert_eq!(app.webhook_pass().await.delivered, 1);
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    // The same webhook-id on every attempt.
    assert!(got
        .iter()
        .all(|r| r.headers["webhook-id"] == got[0].headers["webhook-id"]));
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(gap1 >= Duration::from_millis(900), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(1800), "{gap2:?}");
    let log = app
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
            &reseller.token,
        )
        .await;
    let attempts: Vec<&Value> = log.body["data"].as_array().unwrap().iter().rev().collect();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["status_code"], 500);
    assert!(attempts[1]["status_code"].is_null());
    assert!(
        attempts[1]["error"].as_str().unwrap().len() > 3,
        "{}",
        attempts[1]
    );
    assert_eq!(attempts[2]["status_code"], 200);
    assert_eq!(attempts[2]["response_body"], "thanks");
    let found = app
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}"),
            &reseller.token,
        )
        .await;
    assert!(
        found.body["failing_since"].is_null(),
        "a success ends the failing streak"
    );
}

#[actix_rt::test]
async fn after_the_last_attempt_the_delivery_fails_and_replay_sends_it_again() {
    let app = app_with_hooks("0,0").await;
    let receiver = Receiver::start(|n| {
        if n < 2 {
            (500, vec![], Duration::ZERO)
        } else {
            (200, vec![], Duration::ZERO)
        }
    })
    .await;
    let reseller = app.create_reseller("Acme").await;
    let (endpoint, _) = app
        .endpoint(&reseller.token, &receiver.url, json!([]))
        .await;
    app.top_up(reseller.id, "3").await;
    app.webhook_pass().await;
    app.webhook_pass().await;
    app.webhook_pass().await;
    assert_eq!(receiver.received().len(), 2, "two attempts, then failed");
    let event = app.events_of(&reseller.token, "").await[0]["id"]
        .as_i64()
        .unwrap();
    let found = app
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}"),
            &reseller.token,
        )
        .await;
    assert!(found.body["failing_since"].is_string());
    let replay = app
        .post(
            &format!("/v1/events/{event}/redeliver"),
            &reseller.token,
            json!({"endpoint_id": endpoint}),
        )
        .await;
    assert_eq!(replay.status, 202, "{}", replay.text);
    assert_eq!(replay.body["endpoint_ids"], json!([endpoint]));
    assert_eq!(app.webhook_pass().await.delivered, 1);
    assert_eq!(receiver.received().len(), 3);
    // A test ping to the endpoint.
    let ping = app
        .post(
            &format!("/v1/webhook-endpoints/{endpoint}/test"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(ping.status, 202, "{}", ping.text);
    assert_eq!(ping.body["type"], "ping");
    app.webhook_pass().await;
    let last = receiver.received().last().unwrap().json();
    assert_eq!(last["type"], "ping");
    assert_eq!(last["data"]["endpoint_id"], endpoint);
}

#[actix_rt::test]
async fn retry_after_is_honoured_and_410_disables_the_endpoint() {
    let app = app_with_hooks("0,1,1").await;
    let receiver = Receiver::start(|n| match n {
        0 => (503, vec![("retry-after", "3".to_string())], Duration::ZERO),
        _ => (410, vec![], Duration::ZERO),
    })
    .await;
    let reseller = app.create_reseller("Acme").await;
    let (endpoint, _) = app
        .endpoint(&reseller.token, &receiver.url, json!([]))
        .await;
    app.top_up(reseller.id, "3").await;
    app.webhook_pass().await;
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    // The schedule says 1 s, the receiver said 3 s: nothing yet.
    assert_eq!(app.webhook_pass().await, Default::default());
    actix_rt::time::sleep(Duration::from_millis(1700)).await;
    app.webhook_pass().await;
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert!(got[1].at - got[0].at >= Duration::from_millis(2900));
    let found = app
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}"),
            &reseller.token,
        )
        .await;
    assert_eq!(found.body["status"], "disabled");
    assert!(found.body["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("410"));
    // Disabled: new events are not queued for it, and a ping is refused.
    app.top_up(reseller.id, "1").await;
    app.webhook_pass().await;
    assert_eq!(receiver.received().len(), 2);
    let ping = app
        .post(
            &format!("/v1/webhook-endpoints/{endpoint}/test"),
            &reseller.token,
            json!({}),
        )
        .await;
    ping.assert_problem(409, "endpoint_disabled");
    // Enabled again by its owner.
    let enabled = app
        .patch(
            &format!("/v1/webhook-endpoints/{endpoint}"),
            &reseller.token,
            json!({"status": "enabled"}),
        )
        .await;
    assert_eq!(enabled.body["status"], "enabled", "{}", enabled.text);
    assert!(enabled.body["disabled_reason"].is_null());
}

#[actix_rt::test]
async fn a_rotated_secret_signs_beside_the_old_one() {
    let app = app_with_hooks("0").await;
    let receiver = Receiver::start(always(200)).await;
    let reseller = app.create_reseller("Acme").await;
    let (endpoint, old) = app
        .endpoint(&reseller.token, &receiver.url, json!([]))
        .await;
    let rotated = app
        .post(
            &format!("/v1/webhook-endpoints/{endpoint}/rotate-secret"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new = rotated.body["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(rotated.body["previous_secret_expires_at"].is_string());
    app.top_up(reseller.id, "1").await;
    app.webhook_pass().await;
    let hook = receiver.received()[0].clone();
    assert_eq!(hook.headers["webhook-signature"].split(' ').count(), 2);
    assert!(signed_by(&hook, &old));
    assert!(signed_by(&hook, &new));
}

#[actix_rt::test]
async fn a_reseller_cannot_see_or_replay_another_resellers_events_or_endpoints() {
    let app = app_with_hooks("0").await;
    let a = app.funded_reseller("A", "5").await;
    let b = app.create_reseller("B").await;
    let receiver = Receiver::start(always(200)).await;
    let (a_endpoint, _) = app.endpoint(&a.token, &receiver.url, json!([])).await;
    let (b_endpoint, _) = app.endpoint(&b.token, &receiver.url, json!([])).await;
    let service = app.service("1").await;
    app.order_id(&a.token, service, 1000).await;
    let a_event = app.events_of(&a.token, "").await[0]["id"].as_i64().unwrap();
    assert!(app.events_of(&b.token, "").await.is_empty());
    app.get(&format!("/v1/events/{a_event}"), &b.token)
        .await
        .assert_problem(404, "not_found");
    app.post(
        &format!("/v1/events/{a_event}/redeliver"),
        &b.token,
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
    app.post(
        &format!("/v1/events/{a_event}/redeliver"),
        &b.token,
        json!({"endpoint_id": b_endpoint}),
    )
    .await
    .assert_problem(404, "not_found");
    app.get(&format!("/v1/webhook-endpoints/{a_endpoint}"), &b.token)
        .await
        .assert_problem(404, "not_found");
    app.get(
        &format!("/v1/webhook-endpoints/{a_endpoint}/deliveries"),
        &b.token,
    )
    .await
    .assert_problem(404, "not_found");
    app.delete(&format!("/v1/webhook-endpoints/{a_endpoint}"), &b.token)
        .await
        .assert_problem(404, "not_found");
    // B's endpoint gets none of A's events.
    app.webhook_pass().await;
    assert_eq!(receiver.received().len(), 1);
    // A reseller cannot subscribe to operator alerts.
    app.post(
        "/v1/webhook-endpoints",
        &b.token,
        json!({"url": receiver.url, "events": ["alert.raised"]}),
    )
    .await
    .assert_problem(422, "validation_failed");
}

#[actix_rt::test]
async fn private_and_plain_http_targets_are_refused_without_the_flag() {
    let app = spawn_app_with(|_| {}).await;
    let reseller = app.create_reseller("Acme").await;
    for url in [
        "http://example.com/hooks",
        "https://127.0.0.1/hooks",
        "https://localhost:8443/hooks",
        "https://10.0.0.7/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "https://[::ffff:192.168.0.1]/hooks",
        // IPv6 forms that carry an internal IPv4 address, and site-local.
        "https://[::127.0.0.1]/hooks",
        "https://[::ffff:0:169.254.169.254]/hooks",
        "https://[64:ff9b::10.0.0.1]/hooks",
        "https://[2002:7f00:1::1]/hooks",
        "https://[2001:0:5db8:d822::f5ff:fffe]/hooks",
        "https://[fec0::1]/hooks",
        "https://user:pass@example.com/hooks",
        "ftp://example.com/",
        "not a url",
    ] {
        let reply = app
            .post(
                "/v1/webhook-endpoints",
                &reseller.token,
                json!({"url": url}),
            )
            .await;
        reply.assert_problem(422, "webhook_url_refused");
        assert!(!reply.text.contains("pass@"), "{}", reply.text);
    }
    let ok = app
        .post(
            "/v1/webhook-endpoints",
            &reseller.token,
            json!({"url": "https://hooks.example.com/in", "events": ["order.created"]}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(ok.body["events"], json!(["order.created"]));
    // An update to a private target is refused the same way.
    let id = ok.body["id"].as_i64().unwrap();
    app.patch(
        &format!("/v1/webhook-endpoints/{id}"),
        &reseller.token,
        json!({"url": "https://192.168.1.1/x"}),
    )
    .await
    .assert_problem(422, "webhook_url_refused");
    let listed = app.get("/v1/webhook-endpoints", &reseller.token).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    let deleted = app
        .delete(&format!("/v1/webhook-endpoints/{id}"), &reseller.token)
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    app.get(&format!("/v1/webhook-endpoints/{id}"), &reseller.token)
        .await
        .assert_problem(404, "not_found");
}

#[actix_rt::test]
async fn a_burst_of_partial_refunds_raises_escalates_and_clears_a_provider_alert() {
    let app = spawn_app_with(|c| {
        c.webhooks.webhook_allow_private = true;
        c.alerts.alert_interval_secs = 0;
        c.alerts.alert_min_orders = 10;
        c.alerts.alert_warning_rate = "0.1".parse().unwrap();
        c.alerts.alert_critical_rate = "0.3".parse().unwrap();
        c.alerts.alert_pause_orders = true;
    })
    .await;
    let receiver = Receiver::start(always(200)).await;
    let (_, secret) = app
        .endpoint(
            &app.admin_token,
            &receiver.url,
            json!(["alert.raised", "alert.escalated", "alert.cleared"]),
        )
        .await;
    let upstream =
        crate::helpers::StandIn::start(|_| (200, r#"{"order": 1}"#.into(), Duration::ZERO)).await;
    let (provider, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "1000").await;
    let mut orders = Vec::new();
    for _ in 0..10 {
        orders.push(app.order_id(&reseller.token, service, 1000).await);
    }
    // 2 of 10 orders half delivered: 10 % by amount, 20 % by count.
    for order in &orders[..2] {
        app.outcome(*order, json!({"status": "partial", "remains": 500}))
            .await;
    }
    app.webhook_pass().await;
    let alerts = app
        .get("/v1/admin/alerts?active=true", &app.admin_token)
        .await;
    assert_eq!(alerts.status, 200, "{}", alerts.text);
    let provider_alerts: Vec<&Value> = alerts.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] == "provider" && a["subject_id"] == provider && a["window"] == "1h")
        .collect();
    assert_eq!(provider_alerts.len(), 2, "{}", alerts.text);
    let by_count = provider_alerts
        .iter()
        .find(|a| a["measure"] == "count")
        .unwrap();
    assert_eq!(by_count["level"], "warning");
    assert_eq!(by_count["rate"], "0.2");
    assert_eq!(by_count["orders"], 10);
    assert_eq!(by_count["refunded_orders"], 2);
    let by_amount = provider_alerts
        .iter()
        .find(|a| a["measure"] == "amount")
        .unwrap();
    assert_eq!(by_amount["rate"], "0.1");
    assert_eq!(micros(&by_amount["refunded"]), 1_000_000);
    // Two more: 40 % by count → critical; orders to this provider pause.
    for order in &orders[2..4] {
        app.outcome(*order, json!({"status": "partial", "remains": 500}))
            .await;
    }
    app.webhook_pass().await;
    let paused = app.order(&reseller.token, service, 1000).await;
    paused.assert_problem(409, "service_paused");
    // While paused, no new order arrives; in production the window empties and the alert
    // clears (fewer than the minimum orders). Here the pause is lifted by hand, so that
    // many clean orders can bring every rate under the clearing threshold (8 %).
    let mut conn = app.pool.get().unwrap();
    {
        use diesel::prelude::*;
        use reseller_api::db::schema::alerts;
        diesel::update(alerts::table)
            .set(alerts::pauses_orders.eq(false))
            .execute(&mut *conn)
            .unwrap();
    }
    drop(conn);
    for _ in 0..60 {
        let id = app.order_id(&reseller.token, service, 1000).await;
        app.outcome(id, json!({"status": "completed"})).await;
    }
    app.webhook_pass().await;
    let active = app
        .get("/v1/admin/alerts?active=true", &app.admin_token)
        .await;
    assert!(
        active.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["window"] != "1h" || a["scope"] != "provider"),
        "{}",
        active.text
    );
    let types = receiver.types();
    for expected in ["alert.raised", "alert.escalated", "alert.cleared"] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} not delivered: {types:?}"
        );
    }
    assert!(receiver.received().iter().all(|r| signed_by(r, &secret)));
    let escalated = receiver
        .received()
        .into_iter()
        .map(|r| r.json())
        .find(|b| b["type"] == "alert.escalated" && b["data"]["alert"]["scope"] == "provider")
        .unwrap();
    assert_eq!(escalated["data"]["alert"]["level"], "critical");
    assert_eq!(escalated["data"]["alert"]["threshold"], "0.3");
    // The reseller sees none of it.
    let theirs = app.events_of(&reseller.token, "&type=alert.raised").await;
    assert!(theirs.is_empty());
    app.assert_books_balance();
}

#[actix_rt::test]
async fn an_endpoint_failing_for_days_is_disabled_and_replay_reaches_every_subscriber() {
    let app = app_with_hooks("0,0,0").await;
    let failing = Receiver::start(always(500)).await;
    let healthy = Receiver::start(always(200)).await;
    let reseller = app.create_reseller("Acme").await;
    let (bad, _) = app.endpoint(&reseller.token, &failing.url, json!([])).await;
    let (good, _) = app
        .endpoint(&reseller.token, &healthy.url, json!(["top_up.succeeded"]))
        .await;
    app.top_up(reseller.id, "1").await;
    app.webhook_pass().await;
    let found = app
        .get(&format!("/v1/webhook-endpoints/{bad}"), &reseller.token)
        .await;
    assert_eq!(found.body["status"], "enabled");
    assert!(found.body["failing_since"].is_string());
    // Its failing streak began six days ago (the default limit is five).
    {
        use diesel::prelude::*;
        use reseller_api::db::schema::webhook_endpoints;
        let mut conn = app.pool.get().unwrap();
        diesel::update(webhook_endpoints::table.find(bad))
            .set(
                webhook_endpoints::failing_since
                    .eq(Some(reseller_api::db::now() - chrono::Duration::days(6))),
            )
            .execute(&mut *conn)
            .unwrap();
    }
    // The next failed attempt disables it.
    app.top_up(reseller.id, "1").await;
    app.webhook_pass().await;
    let found = app
        .get(&format!("/v1/webhook-endpoints/{bad}"), &reseller.token)
        .await;
    assert_eq!(found.body["status"], "disabled", "{}", found.text);
    assert_eq!(
        found.body["disabled_reason"],
        "every delivery failed for 5 days"
    );
    let tried = failing.received().len();
    app.webhook_pass().await;
    assert_eq!(
        failing.received().len(),
        tried,
        "a disabled endpoint gets nothing more"
    );
    // Replay to all: only the enabled subscriber gets it again.
    let event = app
        .events_of(&reseller.token, "&type=top_up.succeeded")
        .await[0]["id"]
        .clone();
    let replay = app
        .post(
            &format!("/v1/events/{event}/redeliver"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(replay.status, 202, "{}", replay.text);
    assert_eq!(replay.body["endpoint_ids"], json!([good]));
    app.webhook_pass().await;
    // The newest top-up's event, delivered second, arrives again with the same id.
    let got = healthy.received();
    assert_eq!(got.len(), 3);
    assert_eq!(got[1].headers["webhook-id"], got[2].headers["webhook-id"]);
}

#[actix_rt::test]
async fn refills_have_their_events() {
    let app = app_with_hooks("0").await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app
        .create_service(json!({
            "name": "Followers", "category": "IG", "type": "default", "rate": "1",
            "min": 10, "max": 100000, "refill": true, "refill_days": 30
        }))
        .await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    app.outcome(order, json!({"status": "completed"})).await;
    let refill = app
        .post(
            &format!("/v1/orders/{order}/refills"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(refill.status, 201, "{}", refill.text);
    let id = refill.body["id"].as_i64().unwrap();
    let done = app
        .post(
            &format!("/v1/admin/refills/{id}/complete"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    let created = app.events_of(&reseller.token, "&type=refill.created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["data"]["refill"]["id"], id);
    assert_eq!(created[0]["data"]["refill"]["status"], "pending");
    let changed = app
        .events_of(&reseller.token, "&type=refill.status_changed")
        .await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["data"]["from"], "pending");
    assert_eq!(changed[0]["data"]["to"], "completed");
    assert_eq!(changed[0]["data"]["refill"]["order_id"], order);
}

#[actix_rt::test]
async fn events_older_than_the_retention_go_with_their_deliveries_and_newer_ones_stay() {
    let app = app_with_hooks("0").await;
    let receiver = Receiver::start(always(200)).await;
    let reseller = app.create_reseller("Acme").await;
    let (endpoint, _) = app
        .endpoint(&reseller.token, &receiver.url, json!([]))
        .await;
    app.top_up(reseller.id, "1").await;
    app.top_up(reseller.id, "2").await;
    app.webhook_pass().await;
    let events = app.events_of(&reseller.token, "").await;
    assert_eq!(events.len(), 2);
    let (newer, older) = (
        events[0]["id"].as_i64().unwrap(),
        events[1]["id"].as_i64().unwrap(),
    );
    // The older event is 91 days old (the default keeps 90).
    {
        use diesel::prelude::*;
        use reseller_api::db::schema::events;
        let mut conn = app.pool.get().unwrap();
        diesel::update(events::table.find(older))
            .set(events::created_at.eq(reseller_api::db::now() - chrono::Duration::days(91)))
            .execute(&mut *conn)
            .unwrap();
    }
    let swept = {
        let mut conn = app.pool.get().unwrap();
        reseller_api::application::retention::sweep(&mut conn, &app.config.retention).unwrap()
    };
    assert_eq!(swept.events, 1);
    let left = app.events_of(&reseller.token, "").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], newer);
    app.get(&format!("/v1/events/{older}"), &reseller.token)
        .await
        .assert_problem(404, "not_found");
    let log = app
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
            &reseller.token,
        )
        .await;
    let attempts = log.body["data"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{}", log.text);
    assert_eq!(attempts[0]["event_id"], newer);
    // Money records are untouched: the balance and the ledger still hold both top-ups.
    assert_eq!(app.balance_micros(&reseller.token).await, 3_000_000);
    app.assert_books_balance();
}

impl TestApp {
    /// An endpoint's deliveries (one per event), newest first.
    async fn event_deliveries(&self, token: &str, endpoint: i64, query: &str) -> Vec<Value> {
        let reply = self
            .get(
                &format!("/v1/webhook-endpoints/{endpoint}/event-deliveries{query}"),
                token,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body["data"].as_array().unwrap().clone()
    }
}

fn at(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a time, got {value}"))
        .parse()
        .unwrap()
}

#[actix_rt::test]
async fn a_delivery_is_pending_with_its_next_attempt_then_failed_after_its_last_retry() {
    // Two attempts in all: now, and 1 s later.
    let app = app_with_hooks("0,1").await;
    let failing = Receiver::start(always(500)).await;
    let good = Receiver::start(always(204)).await;
    let reseller = app.create_reseller("Acme").await;
    let (bad_endpoint, _) = app.endpoint(&reseller.token, &failing.url, json!([])).await;
    let (good_endpoint, _) = app.endpoint(&reseller.token, &good.url, json!([])).await;
    app.top_up(reseller.id, "3").await;
    let event = app.events_of(&reseller.token, "").await[0].clone();
    // Not yet matched to the endpoints by the worker: nothing to show.
    assert!(app
        .event_deliveries(&reseller.token, bad_endpoint, "")
        .await
        .is_empty());

    let pass = app.webhook_pass().await;
    assert_eq!((pass.delivered, pass.failed_attempts), (1, 1), "{pass:?}");
    let pending = app
        .event_deliveries(&reseller.token, bad_endpoint, "")
        .await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let d = &pending[0];
    assert_eq!(d["state"], "pending", "{d}");
    assert_eq!(d["attempts"], 1, "{d}");
    assert_eq!(d["event_id"], event["id"]);
    assert_eq!(d["event_type"], "top_up.succeeded");
    assert_eq!(d["endpoint_id"], bad_endpoint);
    let last = at(&d["last_attempt_at"]);
    let next = at(&d["next_attempt_at"]);
    // The schedule's 1 s, give or take its 10 % jitter.
    let wait = next - last;
    assert!(
        wait >= chrono::Duration::milliseconds(850) && wait <= chrono::Duration::milliseconds(1150),
        "{d}"
    );
    assert!(at(&d["created_at"]) <= last, "{d}");
    let delivery = d["id"].as_i64().unwrap();

    let done = app
        .event_deliveries(&reseller.token, good_endpoint, "")
        .await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["state"], "succeeded", "{}", done[0]);
    assert_eq!(done[0]["attempts"], 1);
    assert!(done[0]["next_attempt_at"].is_null(), "{}", done[0]);
    assert!(done[0]["last_attempt_at"].is_string(), "{}", done[0]);
    assert_eq!(done[0]["event_id"], event["id"]);
    assert_ne!(
        done[0]["id"], d["id"],
        "one delivery per event and endpoint"
    );

    actix_rt::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(app.webhook_pass().await.failed_attempts, 1);
    let failed = app
        .event_deliveries(&reseller.token, bad_endpoint, "")
        .await;
    let d = &failed[0];
    assert_eq!(d["id"], delivery);
    assert_eq!(d["state"], "failed", "{d}");
    assert_eq!(d["attempts"], 2, "the schedule's length: {d}");
    assert!(d["next_attempt_at"].is_null(), "{d}");
    assert!(at(&d["last_attempt_at"]) > last, "{d}");
    // Given up: no more attempts however long one waits.
    actix_rt::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.webhook_pass().await, Default::default());
    assert_eq!(failing.received().len(), 2);

    // The state filter, and the attempt log naming its delivery and that delivery's state.
    for (state, expected) in [("failed", 1), ("pending", 0), ("succeeded", 0)] {
        let only = app
            .event_deliveries(&reseller.token, bad_endpoint, &format!("?state={state}"))
            .await;
        assert_eq!(only.len(), expected, "{state}: {only:?}");
    }
    let log = app
        .get(
            &format!("/v1/webhook-endpoints/{bad_endpoint}/deliveries"),
            &reseller.token,
        )
        .await;
    assert_eq!(log.status, 200, "{}", log.text);
    let attempts = log.body["data"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    for a in attempts {
        assert_eq!(a["delivery_id"], delivery, "{a}");
        assert_eq!(a["delivery_state"], "failed", "{a}");
    }

    // A redelivery makes it pending again from its first attempt, due now.
    let replay = app
        .post(
            &format!("/v1/events/{}/redeliver", event["id"]),
            &reseller.token,
            json!({"endpoint_id": bad_endpoint}),
        )
        .await;
    assert_eq!(replay.status, 202, "{}", replay.text);
    let again = app
        .event_deliveries(&reseller.token, bad_endpoint, "")
        .await;
    let d = &again[0];
    assert_eq!(d["id"], delivery);
    assert_eq!(
        (&d["state"], &d["attempts"]),
        (&json!("pending"), &json!(0)),
        "{d}"
    );
    assert!(
        at(&d["next_attempt_at"]) <= chrono::Utc::now(),
        "due now: {d}"
    );
    assert!(
        d["last_attempt_at"].is_string(),
        "the earlier attempts stay: {d}"
    );
}

#[actix_rt::test]
async fn event_deliveries_are_paged_newest_first() {
    let app = app_with_hooks("0").await;
    let receiver = Receiver::start(always(200)).await;
    let reseller = app.create_reseller("Acme").await;
    let (endpoint, _) = app
        .endpoint(&reseller.token, &receiver.url, json!([]))
        .await;
    for amount in ["1", "2", "3"] {
        app.top_up(reseller.id, amount).await;
    }
    assert_eq!(app.webhook_pass().await.delivered, 3);
    let events: Vec<Value> = app
        .events_of(&reseller.token, "")
        .await
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    let first = app
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}/event-deliveries?limit=2"),
            &reseller.token,
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let page: Vec<Value> = first.body["data"].as_array().unwrap().clone();
    assert_eq!(page.len(), 2);
    assert_eq!(first.body["has_more"], true, "{}", first.text);
    let after = page[1]["id"].as_i64().unwrap();
    let rest = app
        .event_deliveries(
            &reseller.token,
            endpoint,
            &format!("?limit=2&starting_after={after}"),
        )
        .await;
    let seen: Vec<Value> = page
        .iter()
        .chain(&rest)
        .map(|d| d["event_id"].clone())
        .collect();
    assert_eq!(seen, events, "newest first, every one once");
    assert!(page[0]["id"].as_i64() > page[1]["id"].as_i64());
}

#[actix_rt::test]
async fn event_deliveries_are_the_endpoint_owners_only_and_a_bad_state_is_422() {
    let app = app_with_hooks("0").await;
    let receiver = Receiver::start(always(200)).await;
    let a = app.create_reseller("A").await;
    let b = app.create_reseller("B").await;
    let (a_endpoint, _) = app.endpoint(&a.token, &receiver.url, json!([])).await;
    app.top_up(a.id, "1").await;
    app.webhook_pass().await;
    assert_eq!(
        app.event_deliveries(&a.token, a_endpoint, "").await.len(),
        1
    );
    let path = format!("/v1/webhook-endpoints/{a_endpoint}/event-deliveries");
    app.get(&path, &b.token)
        .await
        .assert_problem(404, "not_found");
    // An operator sees the endpoints it owns, as on every endpoint route.
    app.get(&path, &app.admin_token)
        .await
        .assert_problem(404, "not_found");
    app.get("/v1/webhook-endpoints/999999/event-deliveries", &a.token)
        .await
        .assert_problem(404, "not_found");
    app.get(&path, "not-a-token")
        .await
        .assert_problem(401, "unauthorized");
    for query in [
        "state=given_up",
        "state=Pending",
        "state=",
        "limit=0",
        "limit=101",
        "status=failed",
    ] {
        let reply = app.get(&format!("{path}?{query}"), &a.token).await;
        assert_eq!(reply.status, 422, "{query}: {}", reply.text);
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{query}"
        );
    }
    let reply = app.get(&format!("{path}?state=retrying"), &a.token).await;
    reply.assert_problem(422, "invalid_query");
    assert_eq!(reply.body["param"], "state", "{}", reply.text);
}

#[actix_rt::test]
async fn an_unknown_stored_delivery_state_is_a_server_error_not_a_default() {
    use diesel::connection::SimpleConnection;
    use reseller_api::db::DbConnection;

    let app = app_with_hooks("0").await;
    let receiver = Receiver::start(always(200)).await;
    let reseller = app.create_reseller("Acme").await;
    let (endpoint, _) = app
        .endpoint(&reseller.token, &receiver.url, json!([]))
        .await;
    app.top_up(reseller.id, "1").await;
    app.webhook_pass().await;
    let tamper = "UPDATE webhook_deliveries SET state = 'parked'";
    let mut conn = app.pool.get().unwrap();
    match &mut *conn {
        DbConnection::Sqlite(conn) => conn.batch_execute(&format!(
            "PRAGMA ignore_check_constraints = ON; {tamper}; PRAGMA ignore_check_constraints = OFF;"
        )),
        DbConnection::Pg(conn) => conn.batch_execute(&format!(
            "ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_state_check; {tamper};"
        )),
    }
    .unwrap();
    drop(conn);
    for path in ["event-deliveries", "deliveries"] {
        let reply = app
            .get(
                &format!("/v1/webhook-endpoints/{endpoint}/{path}"),
                &reseller.token,
            )
            .await;
        reply.assert_problem(500, "internal_error");
        assert!(!reply.text.contains("parked"), "{}", reply.text);
    }
}
