//! The audit log: every operator write leaves exactly one entry, written with the change
//! (none when the change fails), with actor, target, before and after and never a secret;
//! read by operators only, with filters, pages and a formula-safe CSV; `verify` finds a
//! money-moving action whose entry is gone; the retention sweep keeps younger entries.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::helpers::{micros, spawn_app, spawn_app_with, StandIn, TestApp};

/// Every entry matching `query` (a query string without `limit`), newest first, read
/// page by page through the cursor.
async fn entries(app: &TestApp, query: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let mut path = format!("/v1/admin/audit?limit=100&{query}");
        if let Some(after) = cursor {
            path.push_str(&format!("&starting_after={after}"));
        }
        let page = app.get(&path, &app.admin_token).await;
        assert_eq!(page.status, 200, "{path}: {}", page.text);
        all.extend(page.body["data"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_i64() {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
}

/// The one entry of `action` on `target_type`/`target_id`; fails unless there is exactly one.
async fn the_entry(app: &TestApp, action: &str, target_type: &str, target_id: i64) -> Value {
    let found = entries(
        app,
        &format!("action={action}&target_type={target_type}&target_id={target_id}"),
    )
    .await;
    assert_eq!(
        found.len(),
        1,
        "{action} on {target_type} {target_id}: {found:#?}"
    );
    found[0].clone()
}

/// An entry made by the test's operator through the API.
fn assert_by_operator(app: &TestApp, entry: &Value) {
    assert_eq!(entry["actor"]["kind"], "operator", "{entry}");
    assert_eq!(entry["actor"]["account_id"], app.admin_id, "{entry}");
    assert!(entry["actor"]["api_key_id"].as_i64().is_some(), "{entry}");
    assert_eq!(entry["actor"]["role"], "admin", "{entry}");
    assert_eq!(entry["client_addr"], "127.0.0.1", "{entry}");
    assert!(!entry["request_id"].as_str().unwrap().is_empty(), "{entry}");
}

async fn put(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let mut response = app
        .client
        .put(app.url(path))
        .bearer_auth(&app.admin_token)
        .send_json(&body)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body)
}

fn count_by_action(all: &[Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for entry in all {
        *counts
            .entry(entry["action"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    counts
}

#[actix_rt::test]
async fn every_operator_action_writes_one_entry_with_its_actor_target_and_change() {
    let (upstream, panel) = StandIn::panel().await;
    let app = spawn_app_with(|c| c.webhooks.webhook_allow_private = true).await;

    // Accounts: create, suspend, reactivate, allow-list and its end.
    let reseller = app
        .post_with(
            "/v1/admin/accounts",
            &app.admin_token,
            json!({"name": "Acme", "role": "reseller"}),
            &[("X-Request-Id", "req-create-acme")],
        )
        .await;
    assert_eq!(reseller.status, 201, "{}", reseller.text);
    let account = reseller.body["account"]["id"].as_i64().unwrap();
    let token = app
        .token_for(reseller.body["api_key"].as_str().unwrap())
        .await;
    let created = the_entry(&app, "account.create", "account", account).await;
    assert_by_operator(&app, &created);
    assert_eq!(created["request_id"], "req-create-acme");
    assert_eq!(created["account_id"], account);
    assert!(created["before"].is_null());
    assert_eq!(created["after"]["name"], "Acme");
    assert_eq!(created["after"]["status"], "active");
    let first_key = reseller.body["key"]["id"].as_i64().unwrap();
    let key_entry = the_entry(&app, "api_key.create", "api_key", first_key).await;
    assert_eq!(key_entry["secrets"], json!(["key"]));

    for (path, action) in [
        ("suspend", "account.suspend"),
        ("reactivate", "account.reactivate"),
    ] {
        let reply = app
            .post(
                &format!("/v1/admin/accounts/{account}/{path}"),
                &app.admin_token,
                json!({}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let entry = the_entry(&app, action, "account", account).await;
        assert_by_operator(&app, &entry);
    }
    let suspended = the_entry(&app, "account.suspend", "account", account).await;
    assert_eq!(suspended["before"], json!({"status": "active"}));
    assert_eq!(suspended["after"], json!({"status": "suspended"}));
    // Suspending an active account twice is one change, not two.
    let again = app
        .post(
            &format!("/v1/admin/accounts/{account}/reactivate"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(again.status, 200);
    the_entry(&app, "account.reactivate", "account", account).await;

    let until = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let allow = format!("/v1/admin/accounts/{account}/refund-allowlist");
    let reply = app
        .post(&allow, &app.admin_token, json!({"until": until}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let set = the_entry(&app, "account.refund_allowlist_set", "account", account).await;
    assert!(set["before"]["refund_allowlisted_until"].is_null());
    assert!(set["after"]["refund_allowlisted_until"].is_string());
    assert_eq!(app.delete(&allow, &app.admin_token).await.status, 200);
    the_entry(&app, "account.refund_allowlist_end", "account", account).await;

    // API keys: create and revoke (revoking again changes nothing).
    let key = app
        .post(
            &format!("/v1/admin/accounts/{account}/api-keys"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(key.status, 201, "{}", key.text);
    let key_id = key.body["key"]["id"].as_i64().unwrap();
    for _ in 0..2 {
        let revoked = app
            .delete(&format!("/v1/admin/api-keys/{key_id}"), &app.admin_token)
            .await;
        assert_eq!(revoked.status, 200, "{}", revoked.text);
    }
    let revoked = the_entry(&app, "api_key.revoke", "api_key", key_id).await;
    assert!(revoked["before"]["revoked_at"].is_null());
    assert!(revoked["after"]["revoked_at"].is_string());
    assert_eq!(revoked["account_id"], account);

    // Money: a top-up, its refund and the gateway's answers, a chargeback.
    let top_up = app.top_up(account, "50").await.body["id"].as_i64().unwrap();
    let entry = the_entry(&app, "top_up.create", "top_up", top_up).await;
    assert_by_operator(&app, &entry);
    assert_eq!(entry["after"]["amount"], "50");
    assert_eq!(entry["account_id"], account);
    let mut refunds = Vec::new();
    for amount in ["5", "4"] {
        let reply = app
            .post(
                &format!("/v1/admin/top-ups/{top_up}/refund"),
                &app.admin_token,
                json!({"amount": amount, "reason": "duplicate_top_up"}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        refunds.push(reply.body["id"].as_i64().unwrap());
    }
    let refunded = entries(
        &app,
        &format!("action=top_up.refund&target_type=top_up&target_id={top_up}"),
    )
    .await;
    assert_eq!(refunded.len(), 2);
    assert_eq!(refunded[0]["after"]["refund"]["amount"], "4");
    assert_eq!(refunded[0]["after"]["top_up"]["refunded"], "9");
    let ok = app
        .post(
            &format!("/v1/admin/refunds/{}/succeed", refunds[0]),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let entry = the_entry(&app, "refund.gateway_succeed", "refund", refunds[0]).await;
    assert_eq!(entry["before"]["status"], "pending");
    assert_eq!(entry["after"]["status"], "succeeded");
    let failed = app
        .post(
            &format!("/v1/admin/refunds/{}/fail", refunds[1]),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(failed.status, 200, "{}", failed.text);
    let entry = the_entry(&app, "refund.gateway_fail", "refund", refunds[1]).await;
    assert_eq!(entry["after"]["status"], "failed");

    // The catalog: create, update, a provider with its sync and alert rule.
    let provider = app
        .post(
            "/v1/admin/providers",
            &app.admin_token,
            json!({"allow_private_network": true, "name": "Upstream", "url": upstream.url, "key": "upstream-key-s3cr3t"}),
        )
        .await;
    assert_eq!(provider.status, 201, "{}", provider.text);
    let provider = provider.body["id"].as_i64().unwrap();
    let entry = the_entry(&app, "provider.create", "provider", provider).await;
    assert_eq!(entry["after"]["name"], "Upstream");
    assert_eq!(entry["secrets"], json!(["api_key"]));
    let reply = app
        .patch(
            &format!("/v1/admin/providers/{provider}"),
            &app.admin_token,
            json!({"min_balance": "25", "markup_percent": "10"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let entry = the_entry(&app, "provider.update", "provider", provider).await;
    assert_eq!(
        entry["before"],
        json!({"min_balance": null, "markup_percent": "0"})
    );
    assert_eq!(
        entry["after"],
        json!({"min_balance": "25", "markup_percent": "10"})
    );
    assert_eq!(entry["secrets"], json!([]), "the key did not change");

    panel.lock().unwrap().services = json!([
        {"service": 1, "name": "Followers", "type": "Default", "category": "Instagram",
         "rate": "1.00", "min": "10", "max": "10000", "refill": true, "cancel": true}
    ]);
    let sync = format!("/v1/admin/providers/{provider}/sync-services");
    let dry = app
        .post(&sync, &app.admin_token, json!({"dry_run": true}))
        .await;
    assert_eq!(dry.status, 200, "{}", dry.text);
    assert!(
        entries(&app, "action=provider.catalog_sync")
            .await
            .is_empty(),
        "a dry run changes nothing"
    );
    let synced = app.post(&sync, &app.admin_token, json!({})).await;
    assert_eq!(synced.status, 200, "{}", synced.text);
    let followers = synced.body["created"][0]["service_id"].as_i64().unwrap();
    let entry = the_entry(&app, "provider.catalog_sync", "provider", provider).await;
    assert_eq!(entry["after"]["created"], json!([followers]));

    let (status, body) = put(
        &app,
        &format!("/v1/admin/alert-rules/provider/{provider}"),
        json!({"warning_rate": "0.2", "min_orders": 5}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let entry = the_entry(&app, "alert_rule.set", "provider", provider).await;
    assert_eq!(entry["before"]["min_orders"], Value::Null);
    assert_eq!(entry["after"]["min_orders"], 5);

    let service = app.service("2").await;
    let entry = the_entry(&app, "service.create", "service", service).await;
    assert_eq!(entry["after"]["rate"], "2");
    let reply = app
        .patch(
            &format!("/v1/admin/services/{service}"),
            &app.admin_token,
            json!({"rate": "3"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let entry = the_entry(&app, "service.update", "service", service).await;
    assert_eq!(entry["before"], json!({"rate": "2"}));
    assert_eq!(entry["after"], json!({"rate": "3"}));

    // Orders: an outcome, a dispute approved and one rejected.
    let order = app.order_id(&token, service, 1000).await;
    let outcome = app
        .outcome(
            order,
            json!({"status": "partial", "remains": 500, "start_count": 1}),
        )
        .await;
    assert_eq!(outcome.status, 200, "{}", outcome.text);
    let entry = the_entry(&app, "order.outcome", "order", order).await;
    assert_by_operator(&app, &entry);
    assert_eq!(entry["before"]["status"], "pending");
    assert_eq!(entry["after"]["status"], "partial");
    assert_eq!(entry["after"]["refund"]["amount"], "1.5");
    assert_eq!(entry["account_id"], account);

    let disputed = app.order_id(&token, service, 1000).await;
    app.outcome(disputed, json!({"status": "completed", "start_count": 1}))
        .await;
    let mut disputes = Vec::new();
    for _ in 0..2 {
        let dispute = app
            .post(
                &format!("/v1/orders/{disputed}/refunds"),
                &token,
                json!({"reason": "dropped", "amount": "1"}),
            )
            .await;
        assert_eq!(dispute.status, 202, "{}", dispute.text);
        let id = dispute.body["id"].as_i64().unwrap();
        disputes.push(id);
        if disputes.len() == 1 {
            let approved = app
                .post(
                    &format!("/v1/admin/refunds/{id}/approve"),
                    &app.admin_token,
                    json!({}),
                )
                .await;
            assert_eq!(approved.status, 200, "{}", approved.text);
        }
    }
    let entry = the_entry(&app, "refund.approve", "refund", disputes[0]).await;
    assert_eq!(entry["before"]["status"], "pending_review");
    assert_eq!(entry["after"]["status"], "succeeded");
    let rejected = app
        .post(
            &format!("/v1/admin/refunds/{}/reject", disputes[1]),
            &app.admin_token,
            json!({"reason": "delivered in full"}),
        )
        .await;
    assert_eq!(rejected.status, 200, "{}", rejected.text);
    let entry = the_entry(&app, "refund.reject", "refund", disputes[1]).await;
    assert_eq!(entry["after"]["status"], "rejected");

    // Forwarding: an ambiguous send attached to the provider's id, another sent again.
    let routed = app
        .create_service(json!({
            "name": "Upstream Likes", "category": "Instagram", "type": "default", "rate": "1",
            "min": 10, "max": 100000, "cancel": true,
            "provider_id": provider, "provider_service_id": "1"
        }))
        .await;
    let mut ambiguous = Vec::new();
    for _ in 0..2 {
        let order = app.order_id(&token, routed, 1000).await;
        {
            use diesel::prelude::*;
            use reseller_api::db::schema::provider_orders;
            let mut conn = app.pool.get().unwrap();
            diesel::update(provider_orders::table.find(order))
                .set(provider_orders::state.eq("ambiguous"))
                .execute(&mut *conn)
                .unwrap();
        }
        ambiguous.push(order);
    }
    let forwarding = |order: i64| format!("/v1/admin/orders/{order}/forwarding");
    let attach = app
        .post(
            &forwarding(ambiguous[0]),
            &app.admin_token,
            json!({"provider_order_id": "777"}),
        )
        .await;
    assert_eq!(attach.status, 200, "{}", attach.text);
    let entry = the_entry(&app, "order.forwarding_attach", "order", ambiguous[0]).await;
    assert_eq!(entry["before"]["state"], "ambiguous");
    assert_eq!(entry["after"]["provider_order_id"], "777");
    let resend = app
        .post(&forwarding(ambiguous[1]), &app.admin_token, json!({}))
        .await;
    assert_eq!(resend.status, 200, "{}", resend.text);
    let entry = the_entry(&app, "order.forwarding_resend", "order", ambiguous[1]).await;
    assert_eq!(entry["after"]["state"], "queued");

    // Disabling a service records the dry run's numbers.
    let in_flight = app.order_id(&token, service, 2000).await;
    let preview = app
        .post(
            &format!("/v1/admin/services/{service}/disable?dry_run=true"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(preview.status, 200, "{}", preview.text);
    assert!(
        entries(&app, "action=service.disable").await.is_empty(),
        "a dry run changes nothing"
    );
    let disabled = app
        .post(
            &format!("/v1/admin/services/{service}/disable"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    let entry = the_entry(&app, "service.disable", "service", service).await;
    assert_eq!(entry["after"]["status"], "disabled");
    assert_eq!(
        entry["after"]["dry_run"]["orders_in_flight"],
        preview.body["orders_in_flight"]
    );
    assert_eq!(entry["after"]["dry_run"]["orders_refunded"], 1);
    assert_eq!(
        micros(&entry["after"]["dry_run"]["amount_refunded"]),
        6_000_000
    );
    assert_eq!(
        app.order_json(&token, in_flight).await["status"],
        "canceled"
    );

    // Webhook endpoints: an operator's changes are audited, a reseller's are not.
    let endpoint = app
        .post(
            "/v1/webhook-endpoints",
            &app.admin_token,
            json!({"url": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(endpoint.status, 201, "{}", endpoint.text);
    let endpoint = endpoint.body["id"].as_i64().unwrap();
    let path = format!("/v1/webhook-endpoints/{endpoint}");
    let reply = app
        .patch(&path, &app.admin_token, json!({"description": "ops"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = app
        .post(
            &format!("{path}/rotate-secret"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(app.delete(&path, &app.admin_token).await.status, 200);
    for action in ["create", "update", "rotate_secret", "delete"] {
        let entry = the_entry(
            &app,
            &format!("webhook_endpoint.{action}"),
            "webhook_endpoint",
            endpoint,
        )
        .await;
        assert_by_operator(&app, &entry);
    }
    let own = app
        .post(
            "/v1/webhook-endpoints",
            &token,
            json!({"url": "http://127.0.0.1:9/mine"}),
        )
        .await;
    assert_eq!(own.status, 201, "{}", own.text);
    let own = own.body["id"].as_i64().unwrap();
    assert!(entries(
        &app,
        &format!("target_type=webhook_endpoint&target_id={own}")
    )
    .await
    .is_empty());

    // A chargeback, last: it suspends the account.
    let charged = app
        .post(
            &format!("/v1/admin/top-ups/{top_up}/chargeback"),
            &app.admin_token,
            json!({"amount": "1"}),
        )
        .await;
    assert_eq!(charged.status, 201, "{}", charged.text);
    let entry = the_entry(&app, "top_up.chargeback", "top_up", top_up).await;
    assert_eq!(entry["after"]["refund"]["amount"], "1");
    assert_eq!(entry["after"]["account_status"], "suspended");

    // Exactly one entry per action taken (two top-up refunds; two top-ups, one by the
    // test helper's own account creation being the CLI's).
    let all = entries(&app, "").await;
    let counts = count_by_action(&all);
    let expected: HashMap<String, usize> = [
        ("account.create", 2),
        ("api_key.create", 3),
        ("account.suspend", 1),
        ("account.reactivate", 1),
        ("account.refund_allowlist_set", 1),
        ("account.refund_allowlist_end", 1),
        ("api_key.revoke", 1),
        ("top_up.create", 1),
        ("top_up.refund", 2),
        ("refund.gateway_succeed", 1),
        ("refund.gateway_fail", 1),
        ("provider.create", 1),
        ("provider.update", 1),
        ("provider.catalog_sync", 1),
        ("alert_rule.set", 1),
        ("service.create", 2),
        ("service.update", 1),
        ("service.disable", 1),
        ("order.outcome", 2),
        ("refund.approve", 1),
        ("refund.reject", 1),
        ("order.forwarding_attach", 1),
        ("order.forwarding_resend", 1),
        ("webhook_endpoint.create", 1),
        ("webhook_endpoint.update", 1),
        ("webhook_endpoint.rotate_secret", 1),
        ("webhook_endpoint.delete", 1),
        ("top_up.chargeback", 1),
    ]
    .into_iter()
    .map(|(a, n)| (a.to_string(), n))
    .collect();
    assert_eq!(counts, expected);
    // The operator's own account came from the command line.
    let cli = entries(&app, "actor=cli").await;
    assert_eq!(cli.len(), 2, "{cli:#?}");
    assert!(cli
        .iter()
        .all(|e| e["actor"]["kind"] == "cli" && e["client_addr"].is_null()));
    assert!(cli
        .iter()
        .any(|e| e["action"] == "account.create" && e["target"]["id"] == app.admin_id));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_change_that_fails_writes_no_entry() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let top_up = app.top_up(reseller.id, "10").await;
    let top_up_id = top_up.body["id"].as_i64().unwrap();
    let before = entries(&app, "").await.len();

    // A refused top-up: the same gateway reference twice.
    let path = format!("/v1/admin/accounts/{}/top-ups", reseller.id);
    let body = json!({"amount": "5", "gateway": "test", "gateway_ref": top_up.body["gateway_ref"]});
    app.post(&path, &app.admin_token, body)
        .await
        .assert_problem(409, "duplicate_gateway_ref");
    // More returned than the top-up holds; a top-up of an account that does not exist.
    app.post(
        &format!("/v1/admin/top-ups/{top_up_id}/refund"),
        &app.admin_token,
        json!({"amount": "10.000001", "reason": "manual"}),
    )
    .await
    .assert_problem(422, "amount_exceeds_refundable");
    app.post(
        "/v1/admin/accounts/999999/top-ups",
        &app.admin_token,
        json!({"amount": "5", "gateway": "test", "gateway_ref": "nobody"}),
    )
    .await
    .assert_problem(404, "not_found");
    // A conflict: a decided dispute decided again; an outcome that would take a refund back.
    let service = app.service("1").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    app.outcome(order, json!({"status": "canceled"})).await;
    let entries_now = entries(&app, "").await.len();
    app.outcome(order, json!({"status": "completed"}))
        .await
        .assert_problem(409, "order_final");
    assert_eq!(entries(&app, "").await.len(), entries_now);
    // A payment refund settled twice.
    let refund = app
        .post(
            &format!("/v1/admin/top-ups/{top_up_id}/refund"),
            &app.admin_token,
            json!({"amount": "1", "reason": "manual"}),
        )
        .await;
    let refund = refund.body["id"].as_i64().unwrap();
    let succeed = format!("/v1/admin/refunds/{refund}/succeed");
    assert_eq!(
        app.post(&succeed, &app.admin_token, json!({})).await.status,
        200
    );
    let settled = entries(&app, "").await.len();
    app.post(&succeed, &app.admin_token, json!({}))
        .await
        .assert_problem(409, "refund_not_pending");
    assert_eq!(entries(&app, "").await.len(), settled);
    // Only the service, the order's outcome, the refund and its answer were added since:
    // the refused calls wrote nothing (and a reseller's order is no operator action).
    assert_eq!(settled, before + 4);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn secrets_are_named_never_shown() {
    let (upstream, _panel) = StandIn::panel().await;
    let app = spawn_app_with(|c| c.webhooks.webhook_allow_private = true).await;
    let reseller = app
        .post(
            "/v1/admin/accounts",
            &app.admin_token,
            json!({"name": "Acme", "role": "reseller"}),
        )
        .await;
    let account = reseller.body["account"]["id"].as_i64().unwrap();
    let key = app
        .post(
            &format!("/v1/admin/accounts/{account}/api-keys"),
            &app.admin_token,
            json!({}),
        )
        .await;
    let provider_key = "prov-key-7f3a9c1e2b";
    let provider = app
        .post(
            "/v1/admin/providers",
            &app.admin_token,
            json!({"allow_private_network": true, "name": "Upstream", "url": upstream.url, "key": provider_key}),
        )
        .await;
    let provider = provider.body["id"].as_i64().unwrap();
    let new_provider_key = "prov-key-rotated-55aa";
    let reply = app
        .patch(
            &format!("/v1/admin/providers/{provider}"),
            &app.admin_token,
            json!({"key": new_provider_key}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let endpoint = app
        .post(
            "/v1/webhook-endpoints",
            &app.admin_token,
            json!({"url": "http://127.0.0.1:9/hook"}),
        )
        .await;
    let endpoint_id = endpoint.body["id"].as_i64().unwrap();
    let rotated = app
        .post(
            &format!("/v1/webhook-endpoints/{endpoint_id}/rotate-secret"),
            &app.admin_token,
            json!({}),
        )
        .await;
    let secrets = [
        reseller.body["api_key"].as_str().unwrap().to_string(),
        key.body["api_key"].as_str().unwrap().to_string(),
        provider_key.to_string(),
        new_provider_key.to_string(),
        endpoint.body["secret"].as_str().unwrap().to_string(),
        rotated.body["secret"].as_str().unwrap().to_string(),
    ];
    let json = app.get("/v1/admin/audit?limit=100", &app.admin_token).await;
    let csv = app
        .get("/v1/admin/audit?format=csv", &app.admin_token)
        .await;
    assert_eq!(csv.status, 200);
    for secret in &secrets {
        assert!(secret.len() >= 16, "{secret}");
        assert!(
            !json.text.contains(secret.as_str()),
            "{secret} in {}",
            json.text
        );
        assert!(
            !csv.text.contains(secret.as_str()),
            "{secret} in {}",
            csv.text
        );
        // Nor any recognisable part of it.
        assert!(
            !json.text.contains(&secret[secret.len() - 10..]),
            "{secret}"
        );
    }
    let update = the_entry(&app, "provider.update", "provider", provider).await;
    assert_eq!(update["secrets"], json!(["api_key"]));
    let rotation = the_entry(
        &app,
        "webhook_endpoint.rotate_secret",
        "webhook_endpoint",
        endpoint_id,
    )
    .await;
    assert_eq!(rotation["secrets"], json!(["secret"]));
    let created = the_entry(
        &app,
        "webhook_endpoint.create",
        "webhook_endpoint",
        endpoint_id,
    )
    .await;
    assert_eq!(created["secrets"], json!(["secret"]));
}

#[actix_rt::test]
async fn filters_and_pages_return_what_they_should() {
    let app = spawn_app().await;
    let a = app.create_reseller("A").await;
    let b = app.create_reseller("B").await;
    let mut top_ups = Vec::new();
    for amount in ["1", "2", "3", "4", "5"] {
        top_ups.push(app.top_up(a.id, amount).await.body["id"].as_i64().unwrap());
    }
    app.top_up(b.id, "9").await;

    // By action, newest first.
    let found = entries(&app, "action=top_up.create").await;
    assert_eq!(found.len(), 6);
    assert_eq!(found[5]["target"]["id"], top_ups[0]);
    // By the account concerned: its creation, its first key and its five top-ups.
    let of_a = entries(&app, &format!("account_id={}", a.id)).await;
    assert_eq!(of_a.len(), 7, "{of_a:#?}");
    // One object's history.
    let one = entries(
        &app,
        &format!("target_type=top_up&target_id={}", top_ups[2]),
    )
    .await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["after"]["amount"], "3");
    // By actor: the operator through the API, or the command line.
    let by_admin = entries(&app, &format!("actor={}", app.admin_id)).await;
    assert_eq!(by_admin.len(), 2 + 2 + 6);
    assert_eq!(entries(&app, "actor=cli").await.len(), 2);
    assert!(entries(&app, &format!("actor={}", a.id)).await.is_empty());

    // Pages of two through the cursor, with the `Link` to the next.
    let first = app
        .get(
            "/v1/admin/audit?action=top_up.create&limit=2",
            &app.admin_token,
        )
        .await;
    assert_eq!(first.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(first.body["has_more"], true);
    let link = first.header("link").unwrap();
    assert!(link.contains("starting_after="), "{link}");
    let mut seen: Vec<i64> = Vec::new();
    let mut cursor = None;
    loop {
        let path = match cursor {
            None => "/v1/admin/audit?action=top_up.create&limit=2".to_string(),
            Some(c) => format!("/v1/admin/audit?action=top_up.create&limit=2&starting_after={c}"),
        };
        let page = app.get(&path, &app.admin_token).await;
        for e in page.body["data"].as_array().unwrap() {
            seen.push(e["id"].as_i64().unwrap());
        }
        match page.body["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats: {seen:?}"
    );

    // A time window, with dates read in a time zone.
    let now = chrono::Utc::now();
    let today_in_kiribati = (now + chrono::Duration::hours(14)).date_naive();
    let tomorrow = today_in_kiribati + chrono::Duration::days(1);
    let all = entries(&app, "").await.len();
    let window = format!("from={today_in_kiribati}&timezone=%2B14:00");
    assert_eq!(entries(&app, &window).await.len(), all);
    assert!(entries(&app, &format!("from={tomorrow}&timezone=%2B14:00"))
        .await
        .is_empty());
    let past = (now - chrono::Duration::days(1)).to_rfc3339();
    let to = format!("to={}", urlencode(&past));
    assert!(entries(&app, &to).await.is_empty());
    let from = format!("from={}", urlencode(&past));
    assert_eq!(entries(&app, &from).await.len(), all);

    // Bad filters are refused, naming the parameter.
    for (query, param) in [
        ("actor=someone", "actor"),
        ("actor=0", "actor"),
        ("actor=007", "actor"),
        ("actor=%20cli", "actor"),
        ("actor=%2B5", "actor"),
        ("timezone=Mars", "timezone"),
        ("from=yesterday", "from"),
        ("from=2026-12-02&to=2026-12-01", "to"),
        ("target_id=3", "target_id"),
        ("limit=101", "limit"),
        ("action=account.delete", "action"),
        ("target_type=planet", "target_type"),
    ] {
        let reply = app
            .get(&format!("/v1/admin/audit?{query}"), &app.admin_token)
            .await;
        assert_eq!(reply.status, 422, "{query}: {}", reply.text);
        let named = reply.body["param"] == param
            || reply.body["errors"]
                .as_array()
                .is_some_and(|errors| errors.iter().any(|e| e["param"] == param));
        assert!(named, "{query}: {}", reply.text);
    }
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[actix_rt::test]
async fn the_csv_export_is_formula_safe() {
    let app = spawn_app().await;
    let account = app
        .post_with(
            "/v1/admin/accounts",
            &app.admin_token,
            json!({"name": "=HYPERLINK(\"http://x\")", "role": "reseller"}),
            &[("X-Request-Id", "=1+2")],
        )
        .await;
    assert_eq!(account.status, 201, "{}", account.text);
    let csv = app
        .client
        .get(app.url("/v1/admin/audit?action=account.create"))
        .bearer_auth(&app.admin_token)
        .insert_header(("Accept", "text/csv"))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    let text = String::from_utf8(csv.to_vec()).unwrap();
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(header.get(0), Some("id"));
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "{text}");
    let newest = &rows[0];
    assert_eq!(&newest[column("request_id")], "'=1+2");
    assert_eq!(&newest[column("action")], "account.create");
    assert!(newest[column("after")].contains("=HYPERLINK"));
    for row in &rows {
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "a cell a spreadsheet would evaluate: {cell}"
            );
        }
    }
}

#[actix_rt::test]
async fn resellers_see_none_of_it() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    app.get("/v1/admin/audit", &reseller.token)
        .await
        .assert_problem(403, "admin_only");
    app.get("/v1/admin/audit?format=csv", &reseller.token)
        .await
        .assert_problem(403, "admin_only");
    app.get("/v1/admin/audit", "")
        .await
        .assert_problem(401, "unauthorized");
}

#[actix_rt::test]
async fn verify_reports_a_top_up_whose_audit_entry_was_removed() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let kept = app.top_up(reseller.id, "3").await.body["id"]
        .as_i64()
        .unwrap();
    let top_up = app.top_up(reseller.id, "7").await.body["id"]
        .as_i64()
        .unwrap();
    app.assert_books_balance();
    let entry = the_entry(&app, "top_up.create", "top_up", top_up).await;
    {
        use diesel::prelude::*;
        use reseller_api::db::schema::audit_entries;
        let mut conn = app.pool.get().unwrap();
        let removed = diesel::delete(audit_entries::table.find(entry["id"].as_i64().unwrap()))
            .execute(&mut *conn)
            .unwrap();
        assert_eq!(removed, 1);
    }
    let mut conn = app.pool.get().unwrap();
    let report = reseller_api::db::verify::run(&mut conn).unwrap();
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    let problem = &report.problems[0];
    assert!(
        problem.contains(&format!("top_up.create top_up {top_up}")),
        "{problem}"
    );
    assert!(!problem.contains(&format!("top_up {kept} ")), "{problem}");
    assert_eq!(report.audited, 2);
}

#[actix_rt::test]
async fn money_moved_before_the_log_began_needs_no_entry() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let top_up = app.top_up(reseller.id, "7").await.body["id"]
        .as_i64()
        .unwrap();
    let entry = the_entry(&app, "top_up.create", "top_up", top_up).await;
    use diesel::prelude::*;
    use reseller_api::db::schema::{audit_entries, audit_log_start};
    let mut conn = app.pool.get().unwrap();
    diesel::delete(audit_entries::table.find(entry["id"].as_i64().unwrap()))
        .execute(&mut *conn)
        .unwrap();
    // As if the upgrade that began the log came after the top-up.
    diesel::update(audit_log_start::table)
        .set(audit_log_start::began_at.eq(reseller_api::db::now()))
        .execute(&mut *conn)
        .unwrap();
    let report = reseller_api::db::verify::run(&mut conn).unwrap();
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert_eq!(report.audited, 0);
}

#[actix_rt::test]
async fn the_retention_sweep_removes_only_entries_past_the_limit() {
    let app = spawn_app().await;
    assert_eq!(app.config.retention.audit_retention_days, 400);
    let old = app.service("1").await;
    let young = app.service("2").await;
    let old_entry = the_entry(&app, "service.create", "service", old).await;
    let young_entry = the_entry(&app, "service.create", "service", young).await;
    {
        use diesel::prelude::*;
        use reseller_api::db::schema::audit_entries;
        let mut conn = app.pool.get().unwrap();
        for (entry, days) in [(&old_entry, 401), (&young_entry, 399)] {
            diesel::update(audit_entries::table.find(entry["id"].as_i64().unwrap()))
                .set(
                    audit_entries::created_at
                        .eq(reseller_api::db::now() - chrono::Duration::days(days)),
                )
                .execute(&mut *conn)
                .unwrap();
        }
    }
    let before = entries(&app, "").await.len();
    let swept = {
        let mut conn = app.pool.get().unwrap();
        let mut config = app.config.retention.clone();
        config.retention_batch = 1;
        reseller_api::application::retention::sweep(&mut conn, &config).unwrap()
    };
    assert_eq!(swept.audit_entries, 1);
    let after = entries(&app, "").await;
    assert_eq!(after.len(), before - 1);
    assert!(after.iter().any(|e| e["id"] == young_entry["id"]));
    assert!(!after.iter().any(|e| e["id"] == old_entry["id"]));
    // The log now covers what it keeps: the books still balance with their entries.
    app.assert_books_balance();
}

#[actix_rt::test]
async fn an_operators_refill_decision_is_audited() {
    let app = spawn_app().await;
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
        let refill = app
            .post(
                &format!("/v1/orders/{order}/refills"),
                &reseller.token,
                json!({}),
            )
            .await;
        assert_eq!(refill.status, 201, "{}", refill.text);
        refills.push(refill.body["id"].as_i64().unwrap());
    }
    assert!(
        entries(&app, "target_type=refill").await.is_empty(),
        "a reseller's request is not audited"
    );
    let path = |id: i64, decision: &str| format!("/v1/admin/refills/{id}/{decision}");
    let done = app
        .post(&path(refills[0], "complete"), &app.admin_token, json!({}))
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    app.post(&path(refills[0], "reject"), &app.admin_token, json!({}))
        .await
        .assert_problem(409, "refill_not_open");
    let rejected = app
        .post(
            &path(refills[1], "reject"),
            &app.admin_token,
            json!({"reason": "within tolerance"}),
        )
        .await;
    assert_eq!(rejected.status, 200, "{}", rejected.text);
    let completed = the_entry(&app, "refill.complete", "refill", refills[0]).await;
    assert_by_operator(&app, &completed);
    assert_eq!(completed["before"]["status"], "pending");
    assert_eq!(completed["after"]["status"], "completed");
    assert_eq!(completed["account_id"], reseller.id);
    let entry = the_entry(&app, "refill.reject", "refill", refills[1]).await;
    assert_eq!(entry["after"]["reason"], "within tolerance");
    assert_eq!(entries(&app, "target_type=refill").await.len(), 2);
}

/// Runs the binary on the app's database.
fn cli(app: &TestApp, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_reseller-api"))
        .args(args)
        .env("DATABASE_URL", app.config.database_url.expose_secret())
        .env("RESELLER_MASTER_KEY", crate::helpers::TEST_MASTER_KEY)
        .env_remove("RESELLER_MASTER_KEY_FILE")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[actix_rt::test]
async fn the_command_lines_writes_are_audited_as_cli() {
    let app = spawn_app().await;
    let created = cli(
        &app,
        &[
            "accounts",
            "create",
            "--name",
            "night-ops",
            "--role",
            "admin",
        ],
    );
    let key = created.lines().last().unwrap().trim().to_string();
    assert!(key.starts_with("rk_"), "{created}");
    cli(&app, &["keys", "rotate"]);
    let by_cli = entries(&app, "actor=cli").await;
    let actions: Vec<&str> = by_cli
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Newest first: the rotation, then the new account and its key, then the test's own
    // operator account (also made by the command line).
    assert_eq!(
        actions,
        [
            "signing_key.rotate",
            "api_key.create",
            "account.create",
            "api_key.create",
            "account.create"
        ]
    );
    for entry in &by_cli {
        assert_eq!(
            entry["actor"],
            json!({"kind": "cli", "account_id": null, "api_key_id": null, "role": null})
        );
        assert!(
            entry["client_addr"].is_null() && entry["request_id"].is_null(),
            "{entry}"
        );
    }
    assert_eq!(by_cli[0]["secrets"], json!(["key"]));
    assert_eq!(by_cli[2]["after"]["name"], "night-ops");
    let all = app.get("/v1/admin/audit?limit=100", &app.admin_token).await;
    assert!(!all.text.contains(&key), "the new key is never recorded");

    // The master key's rotation, from the command line too.
    let dir = tempfile::tempdir().unwrap();
    let new_file = dir.path().join("new.key");
    cli(
        &app,
        &[
            "keys",
            "rotate-master",
            "--new-key-file",
            new_file.to_str().unwrap(),
        ],
    );
    let mut conn = app.pool.get().unwrap();
    let filter = reseller_api::db::audit::AuditFilter {
        action: Some(reseller_api::domain::audit::AuditAction::MasterKeyRotate),
        ..Default::default()
    };
    let rotated = reseller_api::db::audit::list(&mut conn, &filter, 10).unwrap();
    assert_eq!(rotated.len(), 1);
    assert_eq!(rotated[0].actor, reseller_api::domain::audit::Actor::cli());
    assert_eq!(rotated[0].secrets, ["master_key"]);
    let after = rotated[0].after.as_ref().unwrap();
    let new_key = std::fs::read_to_string(&new_file).unwrap();
    assert!(!after.to_string().contains(new_key.trim()), "{after}");
    assert!(after["resealed"].as_u64().unwrap() > 0, "{after}");
}

#[actix_rt::test]
async fn a_change_of_the_panels_currency_is_audited_and_a_no_change_is_not() {
    let app = spawn_app().await;
    let changed = app
        .patch(
            "/v1/admin/settings",
            &app.admin_token,
            json!({"currency": "EUR"}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let found = entries(&app, "action=panel_settings.update").await;
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_by_operator(&app, &found[0]);
    assert_eq!(found[0]["target"]["type"], "panel_settings", "{}", found[0]);
    assert_eq!(found[0]["before"], json!({"currency": "USD"}));
    assert_eq!(found[0]["after"], json!({"currency": "EUR"}));
    // The same currency again changes nothing, and records nothing.
    let again = app
        .patch(
            "/v1/admin/settings",
            &app.admin_token,
            json!({"currency": "EUR"}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(entries(&app, "action=panel_settings.update").await.len(), 1);
}
