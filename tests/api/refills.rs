//! Refills: recorded before they are sent, sent by the worker after commit, followed with
//! `refill_status`; the window and the 24-hour rule; operators decide the rest.

use diesel::prelude::*;
use serde_json::json;

use reseller_api::domain::provider::ForwardingState;
use reseller_api::domain::refill::RefillStatus;

use crate::helpers::{spawn_app_with, Panel, Reseller, StandIn, TestApp};

async fn app() -> TestApp {
    spawn_app_with(|c| {
        c.worker.sync_interval_secs = 0;
        c.worker.max_backoff_secs = 0;
        c.worker.forward_max_failures = 3;
    })
    .await
}

/// A refill service (30 days) routed to `url`, rate 1 per 1000.
async fn refill_service(app: &TestApp, url: &str) -> i64 {
    let provider = app
        .post(
            "/v1/admin/providers",
            &app.admin_token,
            json!({"allow_private_network": true, "name": "Upstream", "url": url, "key": "upstream-key", "timeout_ms": 2000}),
        )
        .await;
    assert_eq!(provider.status, 201, "{}", provider.text);
    app.create_service(json!({
        "name": "Followers", "category": "Instagram", "type": "default", "rate": "1",
        "min": 10, "max": 100000, "refill": true, "refill_days": 30, "cancel": true,
        "provider_id": provider.body["id"], "provider_service_id": "77"
    }))
    .await
}

/// An order of `service` that the panel delivered in full.
async fn completed_order(
    app: &TestApp,
    panel: &Panel,
    reseller: &Reseller,
    service: i64,
) -> (i64, String) {
    let order = app.order_id(&reseller.token, service, 1000).await;
    app.worker_pass().await;
    let remote = app.provider_order(order).provider_order_id.unwrap();
    panel.lock().unwrap().statuses.insert(
        remote.clone(),
        json!({"charge": "1", "start_count": "10", "status": "Completed", "remains": "0"}),
    );
    app.worker_pass().await;
    assert_eq!(
        app.order_json(&reseller.token, order).await["status"],
        "completed"
    );
    (order, remote)
}

async fn request_refill(app: &TestApp, token: &str, order: i64) -> crate::helpers::Reply {
    app.post(&format!("/v1/orders/{order}/refills"), token, json!({}))
        .await
}

#[actix_rt::test]
async fn refill_is_sent_after_commit_and_followed_to_completed() {
    let (upstream, panel) = StandIn::panel().await;
    let app = app().await;
    let service = refill_service(&app, &upstream.url).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (order, remote) = completed_order(&app, &panel, &reseller, service).await;
    let balance = app.balance_micros(&reseller.token).await;

    let created = request_refill(&app, &reseller.token, order).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["status"], "pending");
    assert_eq!(created.body["upstream"], true);
    let refill = created.body["id"].as_i64().unwrap();
    // Recorded and committed, not yet sent: the worker sends it.
    assert!(upstream.calls_of("refill").is_empty());
    assert_eq!(app.refill_row(refill).state, Some(ForwardingState::Queued));

    let pass = app.worker_pass().await;
    assert_eq!(pass.refills_sent, 1);
    let sent = upstream.calls_of("refill");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["order"], remote);
    let row = app.refill_row(refill);
    assert_eq!(row.provider_refill_id.as_deref(), Some("501"));
    assert_eq!(row.state, Some(ForwardingState::Sent));

    panel
        .lock()
        .unwrap()
        .refills
        .insert("501".into(), json!("In progress"));
    app.worker_pass().await;
    assert_eq!(app.refill_row(refill).status, RefillStatus::InProgress);
    let v2 = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "refill_status"),
            ("refill", &refill.to_string()),
        ])
        .await;
    assert_eq!(v2.text, r#"{"status":"In progress"}"#);

    panel
        .lock()
        .unwrap()
        .refills
        .insert("501".into(), json!("completed"));
    app.worker_pass().await;
    let row = app.refill_row(refill);
    assert_eq!(row.status, RefillStatus::Completed);
    assert_eq!(row.state, Some(ForwardingState::Done));
    let listed = app
        .get(&format!("/v1/orders/{order}/refills"), &reseller.token)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body["data"][0]["status"], "completed");
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    let v2 = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "refill_status"),
            ("refill", &refill.to_string()),
        ])
        .await;
    assert_eq!(v2.text, r#"{"status":"Completed"}"#);
    // A final refill is asked no more; refills cost nothing.
    let asked = upstream.calls_of("refill_status").len();
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("refill_status").len(), asked);
    assert_eq!(app.balance_micros(&reseller.token).await, balance);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn refill_rejected_upstream_shows_why_and_unknown_words_are_quarantined() {
    let (upstream, panel) = StandIn::panel().await;
    let app = app().await;
    let service = refill_service(&app, &upstream.url).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (first, _) = completed_order(&app, &panel, &reseller, service).await;
    let (second, _) = completed_order(&app, &panel, &reseller, service).await;

    // Taken, then an unknown word, then rejected.
    let refill = request_refill(&app, &reseller.token, first).await.body["id"]
        .as_i64()
        .unwrap();
    app.worker_pass().await;
    let remote = app.refill_row(refill).provider_refill_id.unwrap();
    panel
        .lock()
        .unwrap()
        .refills
        .insert(remote.clone(), json!("Awaiting"));
    app.worker_pass().await;
    let row = app.refill_row(refill);
    assert_eq!(
        row.status,
        RefillStatus::Pending,
        "an unknown word is never guessed"
    );
    assert_eq!(row.quarantined_status.as_deref(), Some("Awaiting"));
    assert_eq!(row.state, Some(ForwardingState::Sent));
    panel
        .lock()
        .unwrap()
        .refills
        .insert(remote, json!("Rejected"));
    app.worker_pass().await;
    let row = app.refill_row(refill);
    assert_eq!(row.status, RefillStatus::Rejected);
    assert_eq!(row.quarantined_status, None);

    // Refused when sent: final at once, in the provider's words.
    panel.lock().unwrap().refill_reply =
        Some(r#"{"error":"Order not eligible for refill."}"#.into());
    let refused = request_refill(&app, &reseller.token, second).await.body["id"]
        .as_i64()
        .unwrap();
    app.worker_pass().await;
    let listed = app
        .get(&format!("/v1/orders/{second}/refills"), &reseller.token)
        .await;
    assert_eq!(listed.body["data"][0]["id"], refused);
    assert_eq!(listed.body["data"][0]["status"], "rejected");
    assert!(listed.body["data"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("Order not eligible for refill."));
    let list = format!("{refill},{refused}");
    let v2 = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "refill_status"),
            ("refills", &list),
        ])
        .await;
    assert_eq!(
        v2.text,
        format!(
            r#"[{{"refill":{refill},"status":"Rejected"}},{{"refill":{refused},"status":"Rejected"}}]"#
        )
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn refill_status_is_batched_where_the_provider_answers_batches_else_one_by_one() {
    for batch in [true, false] {
        let (upstream, panel) = StandIn::panel().await;
        panel.lock().unwrap().batch_refill_status = batch;
        let app = app().await;
        let service = refill_service(&app, &upstream.url).await;
        let reseller = app.funded_reseller("Acme", "10").await;
        let mut orders = Vec::new();
        for _ in 0..3 {
            orders.push(completed_order(&app, &panel, &reseller, service).await.0);
        }
        let mut refills = Vec::new();
        for order in orders {
            let created = request_refill(&app, &reseller.token, order).await;
            refills.push(created.body["id"].as_i64().unwrap());
        }
        // One worker throughout: it learns once that a provider answers no batches.
        let worker = std::sync::Arc::new(reseller_api::providers::worker::Worker::new(
            app.pool.clone(),
            app.config.worker.clone(),
            Default::default(),
        ));
        let pass = || {
            let worker = worker.clone();
            actix_web::web::block(move || worker.run_once().unwrap())
        };
        pass().await.unwrap();
        for status in panel.lock().unwrap().refills.values_mut() {
            *status = json!("Completed");
        }
        pass().await.unwrap();
        pass().await.unwrap();
        for refill in &refills {
            assert_eq!(
                app.refill_row(*refill).status,
                RefillStatus::Completed,
                "batch {batch}"
            );
        }
        let calls = upstream.calls_of("refill_status");
        let batched = calls.iter().filter(|c| c.contains_key("refills")).count();
        let single = calls.iter().filter(|c| c.contains_key("refill")).count();
        if batch {
            assert_eq!(single, 0);
            assert!(
                calls.iter().any(|c| c["refills"].split(',').count() == 3),
                "{calls:?}"
            );
        } else {
            assert_eq!(batched, 1, "asked as a batch once: {calls:?}");
            assert!(single >= 3, "{calls:?}");
        }
        app.assert_books_balance();
    }
}

/// Moves an order's placement (or a refill's request) back in time.
fn backdate(app: &TestApp, order: Option<i64>, refill: Option<i64>, hours: i64) {
    use reseller_api::db::schema::{orders, refills};
    let mut conn = app.pool.get().unwrap();
    let at = reseller_api::db::now() - chrono::Duration::hours(hours);
    if let Some(order) = order {
        diesel::update(orders::table.find(order))
            .set(orders::created_at.eq(at))
            .execute(&mut *conn)
            .unwrap();
    }
    if let Some(refill) = refill {
        diesel::update(refills::table.find(refill))
            .set(refills::created_at.eq(at))
            .execute(&mut *conn)
            .unwrap();
    }
}

#[actix_rt::test]
async fn refill_is_refused_outside_the_window_and_twice_in_24_hours() {
    let app = app().await;
    let service = app
        .create_service(
            json!({"name": "Followers", "category": "C", "type": "default", "rate": "1",
            "min": 10, "max": 10000, "refill": true, "refill_days": 7}),
        )
        .await;
    let plain = app.service("1").await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let key = reseller.key.clone();
    let order = app.order_id(&reseller.token, service, 1000).await;

    // Not delivered yet; a service without refills.
    request_refill(&app, &reseller.token, order)
        .await
        .assert_problem(409, "not_refillable");
    let other = app.order_id(&reseller.token, plain, 1000).await;
    app.outcome(other, json!({"status": "completed", "remains": 0}))
        .await;
    request_refill(&app, &reseller.token, other)
        .await
        .assert_problem(409, "not_refillable");

    assert_eq!(
        app.outcome(order, json!({"status": "partial", "remains": 100}))
            .await
            .status,
        200
    );
    let first = request_refill(&app, &reseller.token, order).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.body["upstream"], false);
    let first = first.body["id"].as_i64().unwrap();
    request_refill(&app, &reseller.token, order)
        .await
        .assert_problem(409, "refill_too_soon");
    let v2 = app
        .api_v2(&[
            ("key", &key),
            ("action", "refill"),
            ("order", &order.to_string()),
        ])
        .await;
    assert_eq!(
        v2.body,
        json!({"error": "Refill already requested. Try again 24 hours after the last refill."})
    );

    // A day later it may be asked again; after the window, never.
    backdate(&app, Some(order), Some(first), 25);
    let v2 = app
        .api_v2(&[
            ("key", &key),
            ("action", "refill"),
            ("order", &order.to_string()),
        ])
        .await;
    assert!(v2.body["refill"].is_string(), "{}", v2.text);
    let second = v2.body["refill"].as_str().unwrap().parse::<i64>().unwrap();
    backdate(&app, Some(order), Some(second), 8 * 24);
    request_refill(&app, &reseller.token, order)
        .await
        .assert_problem(409, "refill_window_closed");
    let v2 = app
        .api_v2(&[
            ("key", &key),
            ("action", "refill"),
            ("order", &order.to_string()),
        ])
        .await;
    assert_eq!(
        v2.body,
        json!({"error": "Order not eligible for refill. The refill period has expired."})
    );
    // The operator widens the window.
    let patched = app
        .patch(
            &format!("/v1/admin/services/{service}"),
            &app.admin_token,
            json!({"refill_days": 30}),
        )
        .await;
    assert_eq!(patched.body["refill_days"], 30, "{}", patched.text);
    assert_eq!(
        request_refill(&app, &reseller.token, order).await.status,
        201
    );
    let bad = app
        .patch(
            &format!("/v1/admin/services/{service}"),
            &app.admin_token,
            json!({"refill_days": -1}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn operator_completes_or_rejects_a_refill_no_provider_works() {
    let app = app().await;
    let service = app
        .create_service(
            json!({"name": "Followers", "category": "C", "type": "default", "rate": "1",
            "min": 10, "max": 10000, "refill": true}),
        )
        .await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let mut refills = Vec::new();
    for _ in 0..2 {
        let order = app.order_id(&reseller.token, service, 1000).await;
        app.outcome(order, json!({"status": "completed", "remains": 0}))
            .await;
        refills.push(
            request_refill(&app, &reseller.token, order).await.body["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let done = app
        .post(
            &format!("/v1/admin/refills/{}/complete", refills[0]),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["status"], "completed");
    app.post(
        &format!("/v1/admin/refills/{}/reject", refills[0]),
        &app.admin_token,
        json!({}),
    )
    .await
    .assert_problem(409, "refill_not_open");
    let rejected = app
        .post(
            &format!("/v1/admin/refills/{}/reject", refills[1]),
            &app.admin_token,
            json!({"reason": "the drop is within the guarantee's tolerance"}),
        )
        .await;
    assert_eq!(rejected.body["status"], "rejected", "{}", rejected.text);
    assert_eq!(
        rejected.body["reason"],
        "the drop is within the guarantee's tolerance"
    );
    let v2 = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "refill_status"),
            ("refill", &refills[1].to_string()),
        ])
        .await;
    assert_eq!(v2.text, r#"{"status":"Rejected"}"#);
    // Only operators decide; a missing refill is a 404.
    app.post(
        &format!("/v1/admin/refills/{}/complete", refills[1]),
        &reseller.token,
        json!({}),
    )
    .await
    .assert_problem(403, "admin_only");
    app.post(
        "/v1/admin/refills/999999/complete",
        &app.admin_token,
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_provider_refill_is_not_decided_by_an_operator() {
    let (upstream, panel) = StandIn::panel().await;
    let app = app().await;
    let service = refill_service(&app, &upstream.url).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (order, _) = completed_order(&app, &panel, &reseller, service).await;
    let refill = request_refill(&app, &reseller.token, order).await.body["id"]
        .as_i64()
        .unwrap();
    app.post(
        &format!("/v1/admin/refills/{refill}/complete"),
        &app.admin_token,
        json!({}),
    )
    .await
    .assert_problem(409, "refill_not_open");
    app.assert_books_balance();
}
