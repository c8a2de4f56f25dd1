//! Cancels of orders already sent: a request forwarded upstream; the refund comes only from
//! the provider's next status, by the one refund rule.

use serde_json::json;

use reseller_api::domain::provider::ForwardingState;

use crate::helpers::{micros, spawn_app_with, Panel, StandIn, TestApp};

async fn app() -> TestApp {
    spawn_app_with(|c| {
        c.worker.sync_interval_secs = 0;
        c.worker.max_backoff_secs = 0;
        c.worker.forward_max_failures = 3;
    })
    .await
}

fn set_status(panel: &Panel, remote: &str, status: &str, remains: &str) {
    panel.lock().unwrap().statuses.insert(
        remote.to_string(),
        json!({"charge": "1", "start_count": "5", "status": status, "remains": remains}),
    );
}

async fn cancel(app: &TestApp, token: &str, order: i64) -> crate::helpers::Reply {
    app.post(&format!("/v1/orders/{order}/cancel"), token, json!({}))
        .await
}

async fn cancel_requests(app: &TestApp, token: &str, order: i64) -> Vec<serde_json::Value> {
    let listed = app
        .get(&format!("/v1/orders/{order}/cancel-requests"), token)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    listed.body["data"].as_array().unwrap().clone()
}

#[actix_rt::test]
async fn cancel_of_a_sent_order_is_forwarded_and_canceled_refunds_in_full() {
    let (upstream, panel) = StandIn::panel().await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (order, remote) = app.sent_order(&reseller, service).await;
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);

    let requested = cancel(&app, &reseller.token, order).await;
    assert_eq!(requested.status, 202, "{}", requested.text);
    assert_eq!(requested.body["status"], "pending");
    assert_eq!(requested.body["source"], "reseller");
    assert_eq!(
        requested.header("location").as_deref(),
        Some(format!("/v1/orders/{order}/cancel-requests").as_str())
    );
    // Asked again before the provider answers: the same request.
    let again = cancel(&app, &reseller.token, order).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.body["id"], requested.body["id"]);
    // Recorded, not yet sent, and no money moved.
    assert!(upstream.calls_of("cancel").is_empty());
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);

    let pass = app.worker_pass().await;
    assert_eq!(pass.cancels_answered, 1);
    let sent = upstream.calls_of("cancel");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["orders"], remote);
    assert_eq!(
        cancel_requests(&app, &reseller.token, order).await[0]["status"],
        "accepted"
    );
    // Accepted is not canceled: the refund waits for the provider's status.
    assert_eq!(
        app.order_json(&reseller.token, order).await["status"],
        "pending"
    );
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);

    set_status(&panel, &remote, "Canceled", "1000");
    let pass = app.worker_pass().await;
    assert_eq!(pass.refunds, 1);
    let body = app.order_json(&reseller.token, order).await;
    assert_eq!(body["status"], "canceled");
    assert_eq!(micros(&body["refunded"]), 1_000_000);
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, order).await,
        1_000_000
    );
    assert_eq!(app.balance_micros(&reseller.token).await, 10_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn cancel_answered_partial_refunds_the_undelivered_share() {
    let (upstream, panel) = StandIn::panel().await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (order, remote) = app.sent_order(&reseller, service).await;
    // Through API v2, as panel tooling cancels.
    let v2 = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "cancel"),
            ("orders", &order.to_string()),
        ])
        .await;
    assert_eq!(
        v2.body,
        json!([{"order": order, "cancel": 1}]),
        "{}",
        v2.text
    );
    app.worker_pass().await;
    set_status(&panel, &remote, "Partial", "250");
    app.worker_pass().await;
    let body = app.order_json(&reseller.token, order).await;
    assert_eq!(body["status"], "partial");
    assert_eq!(micros(&body["refunded"]), 250_000);
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, order).await,
        250_000
    );
    assert_eq!(app.balance_micros(&reseller.token).await, 9_250_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn cancel_refused_upstream_leaves_the_order_running_and_says_why() {
    let (upstream, panel) = StandIn::panel().await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (order, remote) = app.sent_order(&reseller, service).await;
    panel
        .lock()
        .unwrap()
        .cancels
        .insert(remote.clone(), json!({"error": "Order cannot be canceled"}));
    assert_eq!(cancel(&app, &reseller.token, order).await.status, 202);
    app.worker_pass().await;
    let requests = cancel_requests(&app, &reseller.token, order).await;
    assert_eq!(requests[0]["status"], "refused");
    assert_eq!(requests[0]["reason"], "Order cannot be canceled");
    assert_eq!(
        app.order_json(&reseller.token, order).await["status"],
        "pending"
    );
    assert_eq!(
        app.provider_order(order).state,
        ForwardingState::Sent,
        "still polled"
    );

    // The provider delivers after all: nothing is refunded.
    set_status(&panel, &remote, "Completed", "0");
    app.worker_pass().await;
    let body = app.order_json(&reseller.token, order).await;
    assert_eq!(body["status"], "completed");
    assert_eq!(micros(&body["refunded"]), 0);
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    // A final order is not cancelable any more.
    cancel(&app, &reseller.token, order)
        .await
        .assert_problem(409, "not_cancelable");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn cancel_without_a_certain_answer_is_retried_then_fails_visibly() {
    let script = std::sync::Arc::new(std::sync::Mutex::new(0));
    let count = script.clone();
    let upstream = StandIn::start(
        move |fields| match fields.get("action").map(String::as_str) {
            Some("add") => (200, r#"{"order":4242}"#.into(), std::time::Duration::ZERO),
            Some("cancel") => {
                *count.lock().unwrap() += 1;
                (
                    500,
                    "<html>Internal Server Error</html>".into(),
                    std::time::Duration::ZERO,
                )
            }
            _ => (
                200,
                r#"{"4242":{"status":"In progress","remains":"500"}}"#.into(),
                std::time::Duration::ZERO,
            ),
        },
    )
    .await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (order, _) = app.sent_order(&reseller, service).await;
    assert_eq!(cancel(&app, &reseller.token, order).await.status, 202);
    for _ in 0..3 {
        app.worker_pass().await;
    }
    assert_eq!(
        *script.lock().unwrap(),
        3,
        "sent again after each unreadable reply"
    );
    let requests = cancel_requests(&app, &reseller.token, order).await;
    assert_eq!(requests[0]["status"], "failed");
    app.worker_pass().await;
    assert_eq!(*script.lock().unwrap(), 3, "not after it failed");
    assert_eq!(
        app.order_json(&reseller.token, order).await["status"],
        "in_progress"
    );
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    // The reseller may ask again.
    assert_eq!(cancel(&app, &reseller.token, order).await.status, 202);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn disabling_a_service_sends_cancels_for_orders_already_sent() {
    let (upstream, panel) = StandIn::panel().await;
    let app = app().await;
    let (_, service) = app.provider_service(&upstream.url, false, 2000).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (sent, remote) = app.sent_order(&reseller, service).await;
    set_status(&panel, &remote, "In progress", "400");
    app.worker_pass().await;
    let queued = app.order_id(&reseller.token, service, 1000).await;

    let disabled = app
        .post(
            &format!("/v1/admin/services/{service}/disable"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    assert_eq!(disabled.body["orders_refunded"], 2);
    // Refunds as before: the sent one by its last known progress, the queued one in full.
    assert_eq!(
        micros(&app.order_json(&reseller.token, sent).await["refunded"]),
        400_000
    );
    assert_eq!(
        micros(&app.order_json(&reseller.token, queued).await["refunded"]),
        1_000_000
    );
    let requests = cancel_requests(&app, &reseller.token, sent).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["source"], "service_disabled");
    assert!(cancel_requests(&app, &reseller.token, queued)
        .await
        .is_empty());

    app.worker_pass().await;
    let cancels = upstream.calls_of("cancel");
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0]["orders"], remote);
    assert_eq!(
        upstream.calls_of("add").len(),
        1,
        "the queued order is never sent"
    );
    assert_eq!(
        cancel_requests(&app, &reseller.token, sent).await[0]["status"],
        "accepted"
    );
    // Disabling again sends nothing more and refunds nothing more.
    let again = app
        .post(
            &format!("/v1/admin/services/{service}/disable"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(again.body["orders_refunded"], 0);
    set_status(&panel, &remote, "Canceled", "1000");
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("cancel").len(), 1);
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        10_000_000 - 600_000
    );
    app.assert_books_balance();
}
