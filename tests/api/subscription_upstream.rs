//! Provider-backed subscriptions over HTTP against the scripted panel stand-in: the `add`
//! forwarded after the create committed, children reported by the provider made into
//! child orders exactly once and paid from the hold, Partial children refunded from the
//! provider's final charge, upstream ends releasing the rest, forwarded cancels, and the
//! books balanced after each step.

use serde_json::{json, Value};

use crate::helpers::*;

/// A provider whose catalog offers one Subscriptions service (rate 1.333333 per 1000,
/// posts of 50 to 1000), synced into ours: (provider id, our service id).
async fn synced_service(app: &TestApp, upstream: &StandIn, panel: &Panel) -> (i64, i64) {
    panel.lock().unwrap().services = json!([
        {"service": 31, "name": "Auto likes", "type": "Subscriptions", "category": "Instagram",
         "rate": "1.333333", "min": "50", "max": "1000", "cancel": true}
    ]);
    let provider = app
        .post(
            "/v1/admin/providers",
            &app.admin_token,
            json!({"allow_private_network": true, "name": "Upstream", "url": upstream.url,
                   "key": "k"}),
        )
        .await;
    assert_eq!(provider.status, 201, "{}", provider.text);
    let provider_id = provider.body["id"].as_i64().unwrap();
    let synced = app
        .post(
            &format!("/v1/admin/providers/{provider_id}/sync-services"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(synced.status, 200, "{}", synced.text);
    assert_eq!(synced.body["skipped"], json!([]), "{}", synced.text);
    let service = synced.body["created"][0]["service_id"].as_i64().unwrap();
    let listed = app.get("/v1/admin/services", &app.admin_token).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let shown = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == service)
        .unwrap()
        .clone();
    assert_eq!(shown["type"], "subscriptions");
    assert_eq!(shown["provider_service_id"], "31");
    // The catalog says nothing of the terms: the defaults.
    assert_eq!(
        shown["subscription"],
        json!({ "posts_max": 100, "delays": [0, 5, 10, 15, 30, 60, 90], "old_posts": false })
    );
    (provider_id, service)
}

async fn setup() -> (TestApp, StandIn, Panel, i64) {
    let (upstream, panel) = StandIn::panel().await;
    let app = spawn_app_with(|c| {
        c.worker.sync_interval_secs = 0;
        c.worker.max_backoff_secs = 0;
    })
    .await;
    let (_, service) = synced_service(&app, &upstream, &panel).await;
    (app, upstream, panel, service)
}

/// min 100, max 150 (a post of 150 costs 0.200000), `posts` posts, delay 30.
fn body(service: i64, posts: i64) -> Value {
    json!({
        "service_id": service, "username": "@alice", "min": 100, "max": 150,
        "posts": posts, "delay": 30
    })
}

async fn account(app: &TestApp, token: &str) -> (i64, i64) {
    let reply = app.get("/v1/account", token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    (micros(&reply.body["balance"]), micros(&reply.body["held"]))
}

async fn subscription(app: &TestApp, token: &str, id: i64) -> Value {
    let reply = app.get(&format!("/v1/subscriptions/{id}"), token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

/// Creates a subscription and lets the worker forward it: (our id, the provider's id).
async fn active(app: &TestApp, upstream: &StandIn, token: &str, body: Value) -> (i64, String) {
    let created = app.post("/v1/subscriptions", token, body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["status"], "pending");
    let id = created.body["id"].as_i64().unwrap();
    let sent_before = upstream.calls_of("add").len();
    app.worker_pass().await;
    let adds = upstream.calls_of("add");
    assert_eq!(adds.len(), sent_before + 1);
    let sub = subscription(app, token, id).await;
    assert_eq!(sub["status"], "active", "{sub}");
    let remote = (9001 + i64::try_from(sent_before).unwrap()).to_string();
    (id, remote)
}

/// The ledger entries of one order (newest first).
async fn entries_of(app: &TestApp, token: &str, order: i64) -> Vec<Value> {
    app.ledger(token)
        .await
        .into_iter()
        .filter(|e| e["order_id"] == order)
        .collect()
}

#[actix_rt::test]
async fn children_are_paid_from_the_hold_refunded_by_the_providers_charge_and_the_rest_released() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;

    // Four posts: 4 × 0.200000 held at once, nothing sent inside the create.
    let mut with_expiry = body(service, 4);
    let expiry = chrono::Utc::now().date_naive() + chrono::Duration::days(40);
    with_expiry["expiry"] = json!(expiry.to_string());
    let created = app
        .post("/v1/subscriptions", &reseller.token, with_expiry)
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["status"], "pending");
    assert_eq!(micros(&created.body["held"]), 800_000);
    assert!(upstream.calls_of("add").is_empty());
    assert_eq!(account(&app, &reseller.token).await, (9_200_000, 800_000));
    let id = created.body["id"].as_i64().unwrap();

    app.worker_pass().await;
    let adds = upstream.calls_of("add");
    assert_eq!(adds.len(), 1);
    let add = &adds[0];
    assert_eq!(add["service"], "31");
    assert_eq!(add["username"], "alice");
    assert_eq!(
        (
            &add["min"][..],
            &add["max"][..],
            &add["posts"][..],
            &add["delay"][..]
        ),
        ("100", "150", "4", "30")
    );
    assert_eq!(add["expiry"], expiry.format("%d/%m/%Y").to_string());
    for absent in ["link", "quantity", "old_posts"] {
        assert!(!add.contains_key(absent), "{absent} sent: {add:?}");
    }
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(sub["status"], "active");
    let remote = "9001";

    // The provider serves three posts; one poll makes three child orders.
    let children: Vec<String> = {
        let mut panel = panel.lock().unwrap();
        (0..3).map(|_| panel.child(remote, "0.2")).collect()
    };
    let pass = app.worker_pass().await;
    assert_eq!(pass.subscription_children, 3, "{pass:?}");
    // Polled again: nothing new.
    let pass = app.worker_pass().await;
    assert_eq!(pass.subscription_children, 0);
    let sub = subscription(&app, &reseller.token, id).await;
    let ids: Vec<i64> = sub["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(micros(&sub["captured"]), 600_000);
    assert_eq!(micros(&sub["hold_left"]), 200_000);
    assert_eq!(sub["posts_served"], 3);
    assert_eq!(account(&app, &reseller.token).await, (9_200_000, 200_000));
    for (order, remote_child) in ids.iter().zip(&children) {
        let json = app.order_json(&reseller.token, *order).await;
        assert_eq!(json["quantity"], 150, "booked at max: {json}");
        assert_eq!(micros(&json["charge"]), 200_000);
        assert_eq!(json["subscription_id"], id);
        let entries = entries_of(&app, &reseller.token, *order).await;
        assert_eq!(entries.len(), 1, "one charge entry: {entries:?}");
        assert_eq!(entries[0]["kind"], "order_charge");
        assert_eq!(micros(&entries[0]["amount"]), 0);
        assert_eq!(micros(&entries[0]["held_amount"]), -200_000);
        // Tracked upstream under the provider's child id, never sent with `add`.
        let job = app.provider_order(*order);
        assert_eq!(
            job.provider_order_id.as_deref(),
            Some(remote_child.as_str())
        );
    }
    assert_eq!(upstream.calls_of("add").len(), 1);
    app.assert_books_balance();

    // The first child ends Partial, billed 0.08 of 0.20 for 150: 90 units undelivered,
    // refunded floor(0.200000 × 90 / 150) = 0.120000. The second completes; the third is
    // canceled (refunded whole).
    {
        let mut panel = panel.lock().unwrap();
        panel.report_child(&children[0], "Partial", "0.08");
        panel.report_child(&children[1], "Completed", "0.2");
        panel.report_child(&children[2], "Canceled", "0");
    }
    app.worker_pass().await;
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, ids[0]).await,
        120_000
    );
    assert_eq!(app.refunded_in_ledger(&reseller.token, ids[1]).await, 0);
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, ids[2]).await,
        200_000
    );
    let first = app.order_json(&reseller.token, ids[0]).await;
    assert_eq!(first["status"], "partial");
    assert_eq!(first["remains"], 90);
    assert_eq!(account(&app, &reseller.token).await, (9_520_000, 200_000));

    // The provider completes it: the rest of the hold is released, same transaction.
    panel.lock().unwrap().set_subscription(remote, "Completed");
    app.worker_pass().await;
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(sub["status"], "completed");
    assert_eq!(micros(&sub["released"]), 200_000);
    assert_eq!(micros(&sub["hold_left"]), 0);
    // 10 − 3 × 0.2 + 0.12 + 0.2 = 9.72.
    assert_eq!(account(&app, &reseller.token).await, (9_720_000, 0));
    let release = &app.ledger(&reseller.token).await[0];
    assert_eq!(release["kind"], "subscription_release");
    assert_eq!(micros(&release["amount"]), 200_000);
    assert_eq!(micros(&release["held_amount"]), -200_000);
    // Ended: no more polls of it.
    let polls = upstream.calls_of("status").len();
    app.worker_pass().await;
    let asked_again = upstream.calls_of("status")[polls..]
        .iter()
        .any(|c| c["orders"].split(',').any(|o| o == remote));
    assert!(!asked_again);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_cancel_is_forwarded_and_released_only_when_the_provider_confirms() {
    let (app, upstream, _panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    let (id, remote) = active(&app, &upstream, &reseller.token, body(service, 3)).await;

    let reply = app
        .post(
            &format!("/v1/subscriptions/{id}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["status"], "active");
    assert!(reply.body["status_reason"]
        .as_str()
        .unwrap()
        .contains("waiting for the provider"));
    // Nothing released before the provider confirms.
    assert_eq!(account(&app, &reseller.token).await, (9_400_000, 600_000));
    // Asked again: still one request.
    let again = app
        .post(
            &format!("/v1/subscriptions/{id}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(again.status, 202, "{}", again.text);

    app.worker_pass().await;
    let cancels = upstream.calls_of("cancel");
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0]["orders"], remote);
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(sub["status"], "canceled");
    assert_eq!(micros(&sub["released"]), 600_000);
    assert_eq!(account(&app, &reseller.token).await, (10_000_000, 0));
    // Ended: a cancel now is refused and nothing is sent.
    let late = app
        .post(
            &format!("/v1/subscriptions/{id}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    late.assert_problem(409, "invalid_transition");
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("cancel").len(), 1);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_refused_cancel_leaves_it_active_with_the_reason_and_an_operator_can_end_it() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    let (id, remote) = active(&app, &upstream, &reseller.token, body(service, 3)).await;
    panel.lock().unwrap().cancels.insert(
        remote.clone(),
        json!({"error": "Cancel is not available for this subscription"}),
    );

    let reply = app
        .post(
            &format!("/v1/subscriptions/{id}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("cancel").len(), 1);
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(sub["status"], "active");
    assert_eq!(
        sub["status_reason"],
        "the provider refused the cancel: Cancel is not available for this subscription"
    );
    assert_eq!(account(&app, &reseller.token).await, (9_400_000, 600_000));
    // Not asked again by itself.
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("cancel").len(), 1);

    // An operator ends it here: the hold released, the upstream left as it is.
    let ended = app
        .post(
            &format!("/v1/admin/subscriptions/{id}/end"),
            &app.admin_token,
            json!({"reason": "the provider would not cancel"}),
        )
        .await;
    assert_eq!(ended.status, 200, "{}", ended.text);
    assert_eq!(ended.body["status"], "canceled");
    assert_eq!(account(&app, &reseller.token).await, (10_000_000, 0));
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("cancel").len(), 1);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn expiry_and_pause_reported_upstream() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    let (id, remote) = active(&app, &upstream, &reseller.token, body(service, 3)).await;

    // Paused upstream: reported, nothing moves; a child while paused is booked as usual.
    panel.lock().unwrap().set_subscription(&remote, "Paused");
    app.worker_pass().await;
    assert_eq!(
        subscription(&app, &reseller.token, id).await["status"],
        "paused"
    );
    panel.lock().unwrap().child(&remote, "0.2");
    app.worker_pass().await;
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(sub["status"], "paused");
    assert_eq!(micros(&sub["captured"]), 200_000);
    panel.lock().unwrap().set_subscription(&remote, "Active");
    app.worker_pass().await;
    assert_eq!(
        subscription(&app, &reseller.token, id).await["status"],
        "active"
    );

    // Expired upstream: ends ours and releases what is left.
    panel.lock().unwrap().set_subscription(&remote, "Expired");
    app.worker_pass().await;
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(sub["status"], "expired");
    assert_eq!(micros(&sub["released"]), 400_000);
    assert_eq!(account(&app, &reseller.token).await, (9_800_000, 0));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_refused_add_ends_it_error_and_releases_the_hold() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    panel.lock().unwrap().subscription_add_reply =
        Some(json!({"error": "Incorrect username"}).to_string());
    let created = app
        .post("/v1/subscriptions", &reseller.token, body(service, 3))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_i64().unwrap();
    app.worker_pass().await;
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(sub["status"], "error");
    assert!(sub["status_reason"]
        .as_str()
        .unwrap()
        .contains("Incorrect username"));
    assert_eq!(micros(&sub["released"]), 600_000);
    assert_eq!(account(&app, &reseller.token).await, (10_000_000, 0));
    // Never sent again.
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("add").len(), 1);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn an_unclear_add_reply_is_not_a_refusal() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    panel.lock().unwrap().subscription_add_reply = Some("<html>502 Bad Gateway</html>".into());
    let created = app
        .post("/v1/subscriptions", &reseller.token, body(service, 3))
        .await;
    let id = created.body["id"].as_i64().unwrap();
    app.worker_pass().await;
    // The provider may have it: not sent again (it does not deduplicate), still held.
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("add").len(), 1);
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(sub["status"], "pending");
    assert_eq!(account(&app, &reseller.token).await, (9_400_000, 600_000));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_cancel_before_the_add_was_sent_ends_it_at_once() {
    let (app, upstream, _panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    let created = app
        .post("/v1/subscriptions", &reseller.token, body(service, 3))
        .await;
    let id = created.body["id"].as_i64().unwrap();
    let reply = app
        .post(
            &format!("/v1/subscriptions/{id}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "canceled");
    assert_eq!(account(&app, &reseller.token).await, (10_000_000, 0));
    app.worker_pass().await;
    assert!(upstream.calls_of("add").is_empty());
    assert!(upstream.calls_of("cancel").is_empty());
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_child_after_the_hold_is_spent_is_paid_from_the_balance_and_the_subscription_canceled_upstream(
) {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    let (id, remote) = active(&app, &upstream, &reseller.token, body(service, 1)).await;
    // One post held (0.2); the provider makes two.
    {
        let mut panel = panel.lock().unwrap();
        panel.child(&remote, "0.2");
        panel.child(&remote, "0.2");
    }
    app.worker_pass().await;
    let sub = subscription(&app, &reseller.token, id).await;
    let ids: Vec<i64> = sub["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    // Never beyond the hold: the second is paid from the available balance.
    assert_eq!(micros(&sub["captured"]), 200_000);
    let second = entries_of(&app, &reseller.token, ids[1]).await;
    assert_eq!(second.len(), 1);
    assert_eq!(micros(&second[0]["amount"]), -200_000);
    assert_eq!(micros(&second[0]["held_amount"]), 0);
    // And the subscription is canceled upstream (forwarded by the next pass).
    app.worker_pass().await;
    let cancels = upstream.calls_of("cancel");
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    assert_eq!(cancels[0]["orders"], remote);
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(sub["status"], "canceled");
    assert_eq!(account(&app, &reseller.token).await, (9_600_000, 0));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_child_past_the_hold_the_balance_does_not_cover_is_recorded_and_queued_for_review() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "0.25").await;
    let (id, remote) = active(&app, &upstream, &reseller.token, body(service, 1)).await;
    assert_eq!(account(&app, &reseller.token).await, (50_000, 200_000));
    {
        let mut panel = panel.lock().unwrap();
        panel.child(&remote, "0.2");
        panel.child(&remote, "0.2");
    }
    app.worker_pass().await;
    app.worker_pass().await;
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(sub["orders"].as_array().unwrap().len(), 2);
    assert_eq!(sub["status"], "canceled");
    // The provider delivered it: charged all the same, the balance below zero.
    assert_eq!(account(&app, &reseller.token).await, (-150_000, 0));
    assert_eq!(upstream.calls_of("cancel").len(), 1);
    app.assert_books_balance();

    // Unpaid: on the operators' review queue, as a waiver to decide.
    let second = sub["orders"][1].as_i64().unwrap();
    let queue = app.get("/v1/admin/review-queue", &app.admin_token).await;
    assert_eq!(queue.status, 200, "{}", queue.text);
    let items = queue.body["data"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", queue.text);
    assert_eq!(items[0]["order_id"], second);
    assert_eq!(micros(&items[0]["amount"]), 200_000);
    assert_eq!(items[0]["status"], "pending_review");
    assert!(items[0]["note"].as_str().unwrap().starts_with("unpaid:"));
    // Approved: the charge forgiven, the balance back where the hold left it.
    let refund = items[0]["id"].as_i64().unwrap();
    let approved = app
        .post(
            &format!("/v1/admin/refunds/{refund}/approve"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    assert_eq!(account(&app, &reseller.token).await, (50_000, 0));
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, second).await,
        200_000
    );
    // The child ending Canceled later refunds nothing more (the one refund rule).
    let remote_second = app.provider_order(second).provider_order_id.unwrap();
    panel
        .lock()
        .unwrap()
        .report_child(&remote_second, "Canceled", "0");
    app.worker_pass().await;
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, second).await,
        200_000
    );
    assert_eq!(account(&app, &reseller.token).await, (50_000, 0));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn the_same_child_reported_twice_makes_one_child_order() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    let (id, remote) = active(&app, &upstream, &reseller.token, body(service, 3)).await;
    {
        let mut panel = panel.lock().unwrap();
        let child = panel.child(&remote, "0.2");
        // The provider lists the same id twice.
        panel.subscriptions.get_mut(&remote).unwrap()["orders"]
            .as_array_mut()
            .unwrap()
            .push(json!(child.parse::<i64>().unwrap()));
    }
    app.worker_pass().await;
    app.worker_pass().await;
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(sub["orders"].as_array().unwrap().len(), 1);
    assert_eq!(micros(&sub["captured"]), 200_000);
    app.assert_books_balance();

    // The database itself refuses a second child for one provider order id, whatever
    // the code above it does.
    let child = sub["orders"][0].as_i64().unwrap();
    let remote_child = app.provider_order(child).provider_order_id.unwrap();
    let provider =
        reseller_api::domain::ids::ProviderId(app.provider_order(child).provider_id.get());
    let mut conn = app.pool.get().unwrap();
    let again = reseller_api::db::write_tx(&mut conn, |conn| {
        reseller_api::db::subscriptions::insert_upstream_child(
            conn,
            provider,
            &remote_child,
            reseller_api::domain::ids::SubscriptionId(id),
            reseller_api::domain::ids::OrderId(child),
        )
    });
    assert!(again.is_err(), "a second row for one provider order id");
}

#[actix_rt::test]
async fn two_workers_polling_at_once_make_one_child() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    let (id, remote) = active(&app, &upstream, &reseller.token, body(service, 3)).await;
    {
        let mut panel = panel.lock().unwrap();
        panel.child(&remote, "0.2");
        panel.child(&remote, "0.2");
    }
    let (a, b) = futures_util::future::join(app.worker_pass(), app.worker_pass()).await;
    assert_eq!(a.subscription_children + b.subscription_children, 2);
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(sub["orders"].as_array().unwrap().len(), 2);
    assert_eq!(micros(&sub["captured"]), 400_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn api_v2_forwards_reads_and_cancels_a_provider_backed_subscription() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    let service = service.to_string();
    let added = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "add"),
            ("service", &service),
            ("username", "alice"),
            ("min", "100"),
            ("max", "150"),
            ("posts", "2"),
            ("delay", "0"),
        ])
        .await;
    assert_eq!(added.status, 200, "{}", added.text);
    let id = added.body["order"].as_i64().unwrap().to_string();
    app.worker_pass().await;
    let remote = "9001";
    panel.lock().unwrap().child(remote, "0.2");
    app.worker_pass().await;
    let status = app
        .api_v2(&[("key", &reseller.key), ("action", "status"), ("order", &id)])
        .await;
    assert_eq!(status.body["status"], "Active", "{}", status.text);
    assert_eq!(status.body["posts"], "1");
    assert_eq!(status.body["orders"].as_array().unwrap().len(), 1);
    let cancel = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "cancel"),
            ("orders", &id),
        ])
        .await;
    assert_eq!(cancel.body[0]["cancel"], 1, "{}", cancel.text);
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("cancel").len(), 1);
    let status = app
        .api_v2(&[("key", &reseller.key), ("action", "status"), ("order", &id)])
        .await;
    assert_eq!(status.body["status"], "Canceled", "{}", status.text);
    // 10 − 0.2 (the child), the rest released.
    assert_eq!(account(&app, &reseller.token).await, (9_800_000, 0));
    app.assert_books_balance();
}

/// Two server processes with their workers on one database poll the same provider; one is
/// killed with SIGKILL while children are being made. A child's order, its charge from the
/// hold and the subscription's count are one transaction (under the subscription row's
/// claim), so the kill can cut only between children: the survivor (and a restarted
/// process) make every child exactly once, taking over the killed one's claims when their
/// leases run out, and the books balance.
#[actix_rt::test]
async fn two_worker_processes_one_killed_mid_poll_make_each_child_once() {
    use crate::processes::{assert_books_balance, books, call, funded_service, Server};

    let (upstream, panel) = StandIn::panel().await;
    panel.lock().unwrap().services = json!([
        {"service": 31, "name": "Auto likes", "type": "Subscriptions", "category": "Instagram",
         "rate": "1.333333", "min": "50", "max": "1000", "cancel": true}
    ]);
    let (url, _db) = fresh_database();
    let books = books(&url);
    // Short leases: the rows the killed process held are free again once their lease
    // (at least the provider's timeout + 30 s) runs out.
    let flags = [
        "--worker-interval-ms",
        "20",
        "--sync-interval-secs",
        "0",
        "--lease-secs",
        "5",
    ];
    let first = Server::start(&url, &flags).await;
    let second = Server::start(&url, &flags).await;
    let (admin, reseller, _) = funded_service(&first.base, &books).await;
    let (status, provider) = call(
        &first.base,
        "POST",
        "/v1/admin/providers",
        &admin,
        Some(
            json!({"allow_private_network": true, "name": "Upstream", "url": upstream.url,
                    "key": "k", "batch_size": 5, "timeout_ms": 1000}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{provider}");
    let (status, synced) = call(
        &first.base,
        "POST",
        &format!("/v1/admin/providers/{}/sync-services", provider["id"]),
        &admin,
        Some(json!({})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{synced}");
    let service = synced["created"][0]["service_id"].as_i64().unwrap();

    // Twelve subscriptions of 5 posts (hold 1.000000 each).
    let mut ours = Vec::new();
    for _ in 0..12 {
        let (status, sub) = call(
            &first.base,
            "POST",
            "/v1/subscriptions",
            &reseller,
            Some(body(service, 5)),
        )
        .await
        .unwrap();
        assert_eq!(status, 201, "{sub}");
        ours.push(sub["id"].as_i64().unwrap());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while panel.lock().unwrap().subscriptions.len() < ours.len() {
        assert!(std::time::Instant::now() < deadline, "not all sent");
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Each subscription sent once, by one of the two workers.
    assert_eq!(upstream.calls_of("add").len(), ours.len());
    // Every subscription active before the provider makes its children.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for id in &ours {
        loop {
            let (_, sub) = call(
                &second.base,
                "GET",
                &format!("/v1/subscriptions/{id}"),
                &reseller,
                None,
            )
            .await
            .unwrap();
            if sub["status"] == "active" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{sub}");
            actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    {
        let mut panel = panel.lock().unwrap();
        let remotes: Vec<String> = panel.subscriptions.keys().cloned().collect();
        for remote in &remotes {
            for _ in 0..5 {
                panel.child(remote, "0.2");
            }
        }
    }
    let children = |pool: &reseller_api::db::DbPool| -> i64 {
        use diesel::prelude::*;
        use reseller_api::db::schema::orders;
        let mut conn = pool.get().unwrap();
        orders::table
            .filter(orders::subscription_id.is_not_null())
            .count()
            .get_result(&mut *conn)
            .unwrap()
    };
    // Kill one process as soon as the first children exist.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while children(&books.pool) == 0 {
        assert!(std::time::Instant::now() < deadline, "no child made");
        actix_rt::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    // Dropping a server kills it with SIGKILL.
    drop(first);
    let made_at_kill = children(&books.pool);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while children(&books.pool) < 60 {
        assert!(
            std::time::Instant::now() < deadline,
            "the survivor made {} of 60 children (made at the kill: {made_at_kill}): {}",
            children(&books.pool),
            second.log_tail()
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A restarted process finds nothing more to make.
    let restarted = Server::start(&url, &flags).await;
    actix_rt::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(children(&books.pool), 60);
    for id in &ours {
        let (_, sub) = call(
            &restarted.base,
            "GET",
            &format!("/v1/subscriptions/{id}"),
            &reseller,
            None,
        )
        .await
        .unwrap();
        assert_eq!(sub["orders"].as_array().unwrap().len(), 5, "{sub}");
        assert_eq!(micros(&sub["captured"]), 1_000_000, "{sub}");
        assert_eq!(micros(&sub["hold_left"]), 0, "{sub}");
    }
    let (_, account) = call(&restarted.base, "GET", "/v1/account", &reseller, None)
        .await
        .unwrap();
    assert_eq!(micros(&account["balance"]), 100_000_000_000 - 12_000_000);
    assert_eq!(micros(&account["held"]), 0);
    assert_books_balance(&books.pool);
}

#[actix_rt::test]
async fn disabling_the_service_ends_its_subscriptions_and_cancels_them_upstream() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    let (id, remote) = active(&app, &upstream, &reseller.token, body(service, 3)).await;
    panel.lock().unwrap().child(&remote, "0.2");
    app.worker_pass().await;
    // A second one whose `add` is not sent yet.
    let queued = app
        .post("/v1/subscriptions", &reseller.token, body(service, 3))
        .await;
    assert_eq!(queued.status, 201, "{}", queued.text);
    let disabled = app
        .post(
            &format!("/v1/admin/services/{service}/disable"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    let ended = subscription(&app, &reseller.token, id).await;
    assert_eq!(ended["status"], "canceled");
    assert_eq!(micros(&ended["released"]), 400_000);
    app.worker_pass().await;
    // The sent one is canceled upstream; the queued one is never sent.
    let cancels = upstream.calls_of("cancel");
    assert!(cancels.iter().any(|c| c["orders"] == remote), "{cancels:?}");
    assert_eq!(upstream.calls_of("add").len(), 1);
    // Not asked again.
    let polls = upstream.calls_of("status").len();
    app.worker_pass().await;
    assert!(upstream.calls_of("status")[polls..]
        .iter()
        .all(|c| c["orders"].split(',').all(|o| o != remote)));
    // The child in flight is refunded like every order of the service.
    assert_eq!(account(&app, &reseller.token).await, (10_000_000, 0));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_sync_fills_what_the_catalog_says_and_leaves_the_terms_an_operator_set() {
    let (app, upstream, panel, service) = setup().await;
    let patched = app
        .patch(
            &format!("/v1/admin/services/{service}"),
            &app.admin_token,
            json!({ "posts_max": 20, "delays": [0, 30], "old_posts": true }),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    // The provider changes its rate and window.
    panel.lock().unwrap().services = json!([
        {"service": 31, "name": "Auto likes", "type": "Subscriptions", "category": "Instagram",
         "rate": "2", "min": "100", "max": "2000", "cancel": true}
    ]);
    let provider = app.get("/v1/admin/providers", &app.admin_token).await;
    let provider = provider.body["data"][0]["id"].as_i64().unwrap();
    let synced = app
        .post(
            &format!("/v1/admin/providers/{provider}/sync-services"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(synced.status, 200, "{}", synced.text);
    let listed = app.get("/v1/admin/services", &app.admin_token).await;
    let shown = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == service)
        .unwrap()
        .clone();
    assert_eq!(micros(&shown["rate"]), 2_000_000);
    assert_eq!(
        (shown["min"].clone(), shown["max"].clone()),
        (json!(100), json!(2000))
    );
    assert_eq!(
        shown["subscription"],
        json!({ "posts_max": 20, "delays": [0, 30], "old_posts": true })
    );
    // Forwarded with old posts now that the service offers them.
    let reseller = app.funded_reseller("subs", "10").await;
    let mut with_old = body(service, 2);
    with_old["old_posts"] = json!(1);
    let (_, _) = active(&app, &upstream, &reseller.token, with_old).await;
    let add = upstream.calls_of("add").pop().unwrap();
    assert_eq!(add["old_posts"], "1");
    assert!(!add.contains_key("expiry"));
    // 3 posts of 150 at rate 2: 0.300000 each.
    assert_eq!(account(&app, &reseller.token).await, (9_100_000, 900_000));
    app.assert_books_balance();
}

/// The orders of a subscription as its JSON lists them.
fn child_ids(sub: &Value) -> Vec<i64> {
    sub["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_i64().unwrap())
        .collect()
}

#[actix_rt::test]
async fn a_child_made_between_the_last_poll_and_a_confirmed_cancel_is_booked_from_the_hold() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    let (id, remote) = active(&app, &upstream, &reseller.token, body(service, 3)).await;
    // Polled: nothing yet. Then the provider makes a child, and the reseller cancels
    // before the next poll.
    app.worker_pass().await;
    let child = panel.lock().unwrap().child(&remote, "0.2");
    let reply = app
        .post(
            &format!("/v1/subscriptions/{id}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);

    app.worker_pass().await;
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("cancel").len(), 1);
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(sub["status"], "canceled", "{sub}");
    let ids = child_ids(&sub);
    assert_eq!(ids.len(), 1, "the child the provider made is booked: {sub}");
    // Paid from the hold, the rest released: 0.6 − 0.2.
    assert_eq!(micros(&sub["captured"]), 200_000);
    assert_eq!(micros(&sub["released"]), 400_000);
    assert_eq!(account(&app, &reseller.token).await, (9_800_000, 0));
    let entries = entries_of(&app, &reseller.token, ids[0]).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(micros(&entries[0]["held_amount"]), -200_000);
    assert_eq!(
        app.provider_order(ids[0]).provider_order_id.as_deref(),
        Some(child.as_str())
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn children_of_a_subscription_ended_here_are_still_booked_and_it_is_canceled_upstream() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    let (id, remote) = active(&app, &upstream, &reseller.token, body(service, 3)).await;
    app.worker_pass().await;
    // An operator ends it here (the upstream left as it is); the provider goes on.
    let ended = app
        .post(
            &format!("/v1/admin/subscriptions/{id}/end"),
            &app.admin_token,
            json!({"reason": "ended here"}),
        )
        .await;
    assert_eq!(ended.status, 200, "{}", ended.text);
    assert_eq!(account(&app, &reseller.token).await, (10_000_000, 0));
    panel.lock().unwrap().child(&remote, "0.2");

    app.worker_pass().await;
    app.worker_pass().await;
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(sub["status"], "canceled");
    let ids = child_ids(&sub);
    assert_eq!(ids.len(), 1, "{sub}");
    // The hold is gone: paid from the available balance.
    assert_eq!(account(&app, &reseller.token).await, (9_800_000, 0));
    let entries = entries_of(&app, &reseller.token, ids[0]).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(micros(&entries[0]["amount"]), -200_000);
    // It made a child past the hold: canceled upstream, then no longer polled.
    let cancels = upstream.calls_of("cancel");
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0]["orders"], remote);
    let polls = upstream.calls_of("status").len();
    app.worker_pass().await;
    assert!(!upstream.calls_of("status")[polls..]
        .iter()
        .any(|c| c["orders"].split(',').any(|o| o == remote)));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn an_acceptance_that_cannot_be_applied_keeps_the_providers_id_and_is_never_sent_again() {
    use diesel::connection::SimpleConnection;
    let (app, upstream, _panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    // The acceptance's transaction fails (as a full write queue or a database error would):
    // making a subscription Active is refused for now.
    let postgres = app
        .config
        .database_url
        .expose_secret()
        .starts_with("postgres");
    let (refuse, allow) = if postgres {
        (
            "CREATE FUNCTION refuse_active() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$; \
             CREATE TRIGGER refuse_active BEFORE UPDATE ON subscriptions FOR EACH ROW \
             WHEN (NEW.status = 'active') EXECUTE FUNCTION refuse_active();",
            "DROP TRIGGER refuse_active ON subscriptions;",
        )
    } else {
        (
            "CREATE TRIGGER refuse_active BEFORE UPDATE ON subscriptions \
             WHEN NEW.status = 'active' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
            "DROP TRIGGER refuse_active;",
        )
    };
    app.pool.get().unwrap().batch_execute(refuse).unwrap();
    let created = app
        .post("/v1/subscriptions", &reseller.token, body(service, 3))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_i64().unwrap();
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("add").len(), 1);
    let row = {
        let mut conn = app.pool.get().unwrap();
        reseller_api::db::subscriptions::find_upstream(
            &mut conn,
            reseller_api::domain::ids::SubscriptionId(id),
        )
        .unwrap()
        .unwrap()
    };
    assert_eq!(row.provider_subscription_id.as_deref(), Some("9001"));
    assert_eq!(
        row.state,
        reseller_api::domain::provider::ForwardingState::Sent
    );
    assert_eq!(
        subscription(&app, &reseller.token, id).await["status"],
        "pending"
    );

    app.pool.get().unwrap().batch_execute(allow).unwrap();
    app.worker_pass().await;
    app.worker_pass().await;
    // Never sent again; the poll makes it Active.
    assert_eq!(upstream.calls_of("add").len(), 1);
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(sub["status"], "active", "{sub}");
    assert_eq!(account(&app, &reseller.token).await, (9_400_000, 600_000));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn children_listed_beside_an_unknown_status_word_are_booked() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    let (id, remote) = active(&app, &upstream, &reseller.token, body(service, 3)).await;
    {
        let mut panel = panel.lock().unwrap();
        panel.child(&remote, "0.2");
        panel.set_subscription(&remote, "Holiday");
    }
    let pass = app.worker_pass().await;
    assert_eq!(pass.subscription_children, 1, "{pass:?}");
    let sub = subscription(&app, &reseller.token, id).await;
    // The word is quarantined, never mapped: the status stays.
    assert_eq!(sub["status"], "active");
    assert_eq!(child_ids(&sub).len(), 1);
    assert_eq!(micros(&sub["captured"]), 200_000);
    assert_eq!(account(&app, &reseller.token).await, (9_400_000, 400_000));
    let row = {
        let mut conn = app.pool.get().unwrap();
        reseller_api::db::subscriptions::find_upstream(
            &mut conn,
            reseller_api::domain::ids::SubscriptionId(id),
        )
        .unwrap()
        .unwrap()
    };
    assert_eq!(row.quarantined_status.as_deref(), Some("Holiday"));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_child_billed_under_max_is_refunded_by_its_final_charge_whatever_its_status() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    let (id, remote) = active(&app, &upstream, &reseller.token, body(service, 3)).await;
    let children: Vec<String> = {
        let mut panel = panel.lock().unwrap();
        (0..3).map(|_| panel.child(&remote, "0.2")).collect()
    };
    app.worker_pass().await;
    let ids = child_ids(&subscription(&app, &reseller.token, id).await);
    assert_eq!(ids.len(), 3);
    assert_eq!(account(&app, &reseller.token).await, (9_400_000, 0));
    {
        let mut panel = panel.lock().unwrap();
        // Completed, but billed 0.133333 of 0.200000 for 150: floor(150 × 0.066667 / 0.2)
        // = 50 undelivered, refunded floor(0.2 × 50 / 150) = 0.066666.
        panel.report_child(&children[0], "Completed", "0.133333");
        // Partial with the provider's own remains (50 of its 100): our booking was 150, its
        // charge 0.066667 says about 50 delivered: floor(150 × 0.133333 / 0.2) = 99
        // undelivered, refunded 0.2 × 99 / 150 = 0.132000 (not 50/150 of it).
        panel.report(&children[1], "Partial", 50, "0.066667");
        // Completed and billed for max: nothing refunded.
        panel.report_child(&children[2], "Completed", "0.2");
    }
    app.worker_pass().await;
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, ids[0]).await,
        66_666
    );
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, ids[1]).await,
        132_000
    );
    assert_eq!(app.refunded_in_ledger(&reseller.token, ids[2]).await, 0);
    let first = app.order_json(&reseller.token, ids[0]).await;
    assert_eq!(first["status"], "partial", "{first}");
    assert_eq!(first["remains"], 50);
    let second = app.order_json(&reseller.token, ids[1]).await;
    assert_eq!(second["remains"], 99, "{second}");
    let third = app.order_json(&reseller.token, ids[2]).await;
    assert_eq!(third["status"], "completed");
    assert_eq!(
        account(&app, &reseller.token).await,
        (9_400_000 + 66_666 + 132_000, 0)
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_child_past_the_hold_asks_the_upstream_cancel_again_after_a_refused_one() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    let (id, remote) = active(&app, &upstream, &reseller.token, body(service, 1)).await;
    panel.lock().unwrap().cancels.insert(
        remote.clone(),
        json!({"error": "Cancel is not available for this subscription"}),
    );
    let reply = app
        .post(
            &format!("/v1/subscriptions/{id}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("cancel").len(), 1);

    // The provider goes on: one child from the hold, one past it.
    {
        let mut panel = panel.lock().unwrap();
        panel.child(&remote, "0.2");
        panel.child(&remote, "0.2");
    }
    app.worker_pass().await;
    app.worker_pass().await;
    // Past the hold: the cancel is asked again, though refused before.
    assert_eq!(upstream.calls_of("cancel").len(), 2);
    let sub = subscription(&app, &reseller.token, id).await;
    assert_eq!(child_ids(&sub).len(), 2);
    assert_eq!(sub["status"], "active");
    // Refused again: the reseller sees why.
    assert_eq!(
        sub["status_reason"],
        "the provider refused the cancel: Cancel is not available for this subscription"
    );
    assert_eq!(account(&app, &reseller.token).await, (9_600_000, 0));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_partial_child_its_charge_cannot_settle_goes_to_review_instead_of_being_polled_forever() {
    let (app, upstream, panel, service) = setup().await;
    let reseller = app.funded_reseller("subs", "10").await;
    let (id, remote) = active(&app, &upstream, &reseller.token, body(service, 2)).await;
    let child = panel.lock().unwrap().child(&remote, "0.2");
    app.worker_pass().await;
    let order = child_ids(&subscription(&app, &reseller.token, id).await)[0];
    // Partial, no remains, and a charge above the one for max: nothing tells the share.
    panel
        .lock()
        .unwrap()
        .report_child(&child, "Partial", "0.25");
    app.worker_pass().await;
    let queue = app.get("/v1/admin/review-queue", &app.admin_token).await;
    assert_eq!(queue.status, 200, "{}", queue.text);
    let items = queue.body["data"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", queue.text);
    assert_eq!(items[0]["order_id"], order);
    assert_eq!(micros(&items[0]["amount"]), 200_000);
    assert!(items[0]["note"].as_str().unwrap().starts_with("partial:"));
    assert_eq!(
        app.provider_order(order).state,
        reseller_api::domain::provider::ForwardingState::Done
    );
    // No longer polled; nothing refunded until an operator decides.
    let polls = upstream.calls_of("status").len();
    app.make_due();
    app.worker_pass().await;
    assert!(!upstream.calls_of("status")[polls..]
        .iter()
        .any(|c| c["orders"].split(',').any(|o| o == child)));
    assert_eq!(app.refunded_in_ledger(&reseller.token, order).await, 0);
    // Approved with the share the operator found: refunded through the one rule.
    let refund = items[0]["id"].as_i64().unwrap();
    let approved = app
        .post(
            &format!("/v1/admin/refunds/{refund}/approve"),
            &app.admin_token,
            json!({"amount": "0.05"}),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    assert_eq!(app.refunded_in_ledger(&reseller.token, order).await, 50_000);
    assert_eq!(account(&app, &reseller.token).await, (9_650_000, 200_000));
    app.assert_books_balance();
}
