//! The read and dry-run endpoints the operator console relies on: the review queue and a
//! request's case file, the disable preview, order lookup with its ledger, provider health.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{micros, spawn_app, spawn_app_with, StandIn};

#[actix_rt::test]
async fn the_review_queue_is_oldest_first_and_a_case_carries_the_evidence() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("2").await;
    let mut disputes = Vec::new();
    for note in ["first", "second"] {
        let order = app.order_id(&reseller.token, service, 1000).await;
        app.outcome(order, json!({"status": "completed", "start_count": 40}))
            .await;
        let reply = app
            .post(
                &format!("/v1/orders/{order}/refunds"),
                &reseller.token,
                json!({"reason": "dropped", "note": note, "amount": "0.5"}),
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply.text);
        disputes.push((order, reply.body["id"].as_i64().unwrap()));
    }

    let queue = app.get("/v1/admin/review-queue", &app.admin_token).await;
    assert_eq!(queue.status, 200, "{}", queue.text);
    let ids: Vec<i64> = queue.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![disputes[0].1, disputes[1].1], "oldest first");
    let next = app
        .get(
            &format!("/v1/admin/review-queue?limit=1&starting_after={}", ids[0]),
            &app.admin_token,
        )
        .await;
    assert_eq!(next.body["data"][0]["id"], ids[1]);

    let (order, refund) = disputes[0];
    let case = app
        .get(
            &format!("/v1/admin/refunds/{refund}/case"),
            &app.admin_token,
        )
        .await;
    assert_eq!(case.status, 200, "{}", case.text);
    let body = &case.body;
    assert_eq!(body["refund"]["status"], "pending_review");
    assert_eq!(body["refund"]["policy"]["rule"], "manual_review");
    assert_eq!(body["order"]["id"], order);
    assert_eq!(body["order"]["charge"], "2");
    assert_eq!(body["order"]["refundable"], "2");
    assert_eq!(body["order"]["start_count"], 40);
    assert_eq!(body["service"]["id"], service);
    assert_eq!(body["account"]["id"], reseller.id);
    assert_eq!(body["account"]["balance"], "6");
    assert_eq!(body["standing"]["account_id"], reseller.id);
    assert_eq!(body["recent_requests"].as_array().unwrap().len(), 2);
    assert!(body["forwarding"].is_null(), "no provider delivers it");

    // Decided by one operator: the case shows the outcome to the next.
    app.post(
        &format!("/v1/admin/refunds/{refund}/approve"),
        &app.admin_token,
        json!({}),
    )
    .await;
    let case = app
        .get(
            &format!("/v1/admin/refunds/{refund}/case"),
            &app.admin_token,
        )
        .await;
    assert_eq!(case.body["refund"]["status"], "succeeded");
    assert_eq!(case.body["refund"]["amount"], "0.5");
    assert_eq!(case.body["account"]["balance"], "6.5");
    let queue = app.get("/v1/admin/review-queue", &app.admin_token).await;
    assert_eq!(queue.body["data"].as_array().unwrap().len(), 1);

    for path in [
        "/v1/admin/review-queue".to_string(),
        format!("/v1/admin/refunds/{refund}/case"),
        format!("/v1/admin/orders/{order}"),
        "/v1/admin/orders".to_string(),
        "/v1/admin/provider-health".to_string(),
        "/v1/admin/forwarding?state=ambiguous".to_string(),
    ] {
        app.get(&path, &reseller.token)
            .await
            .assert_problem(403, "admin_only");
    }
    app.get("/v1/admin/refunds/999/case", &app.admin_token)
        .await
        .assert_problem(404, "not_found");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_disable_dry_run_changes_nothing_and_previews_exactly_what_disabling_refunds() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let service = app.service("3").await;
    let untouched = app.order_id(&reseller.token, service, 1000).await; // 3, pending: all back
    let partial = app.order_id(&reseller.token, service, 1000).await;
    app.outcome(
        partial,
        json!({"status": "in_progress", "remains": 333, "start_count": 5}),
    )
    .await; // 333/1000 of 3 = 0.999 back
    let done = app.order_id(&reseller.token, service, 1000).await;
    app.outcome(done, json!({"status": "completed"})).await; // ended: nothing
    let before = app.balance_micros(&reseller.token).await;

    let path = format!("/v1/admin/services/{service}/disable");
    let preview = app
        .post(&format!("{path}?dry_run=true"), &app.admin_token, json!({}))
        .await;
    assert_eq!(preview.status, 200, "{}", preview.text);
    assert_eq!(preview.body["dry_run"], true);
    assert_eq!(preview.body["orders_in_flight"], 2);
    assert_eq!(preview.body["orders_refunded"], 2);
    assert_eq!(micros(&preview.body["amount_refunded"]), 3_999_000);
    assert_eq!(preview.body["service"]["status"], "active");
    assert_eq!(app.balance_micros(&reseller.token).await, before);
    assert_eq!(
        app.order_json(&reseller.token, untouched).await["status"],
        "pending"
    );

    let real = app.post(&path, &app.admin_token, json!({})).await;
    assert_eq!(real.status, 200, "{}", real.text);
    assert_eq!(real.body["dry_run"], false);
    assert_eq!(real.body["service"]["status"], "disabled");
    assert_eq!(
        real.body["orders_in_flight"],
        preview.body["orders_in_flight"]
    );
    assert_eq!(
        real.body["orders_refunded"],
        preview.body["orders_refunded"]
    );
    assert_eq!(
        real.body["amount_refunded"],
        preview.body["amount_refunded"]
    );
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        before + 3_999_000
    );
    let again = app
        .post(&format!("{path}?dry_run=true"), &app.admin_token, json!({}))
        .await;
    assert_eq!(again.body["orders_in_flight"], 0);
    assert_eq!(again.body["amount_refunded"], "0");
    app.post(
        "/v1/admin/services/999/disable?dry_run=true",
        &app.admin_token,
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn an_operator_looks_an_order_up_by_id_link_or_reseller_with_its_ledger() {
    let app = spawn_app().await;
    let acme = app.funded_reseller("Acme", "10").await;
    let other = app.funded_reseller("Other", "10").await;
    let service = app.service("1.5").await;
    let order = app.order_id(&acme.token, service, 2000).await; // 3
    app.order_id(&other.token, service, 1000).await;
    app.outcome(order, json!({"status": "partial", "remains": 500}))
        .await; // 0.75 back

    let found = app
        .get(&format!("/v1/admin/orders/{order}"), &app.admin_token)
        .await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.body["order"]["id"], order);
    assert_eq!(found.body["order"]["account_id"], acme.id);
    assert_eq!(found.body["order"]["refunded"], "0.75");
    let ledger = found.body["ledger"].as_array().unwrap();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[0]["kind"], "order_charge");
    assert_eq!(micros(&ledger[0]["amount"]), -3_000_000);
    assert_eq!(ledger[1]["kind"], "refund");
    assert_eq!(micros(&ledger[1]["amount"]), 750_000);
    assert_eq!(micros(&ledger[1]["balance_after"]), 7_750_000);
    assert_eq!(found.body["refunds"][0]["reason"], "partial_delivery");

    let by_reseller = app
        .get(
            &format!("/v1/admin/orders?account_id={}", acme.id),
            &app.admin_token,
        )
        .await;
    assert_eq!(by_reseller.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_reseller.body["data"][0]["id"], order);
    let by_link = app
        .get(
            "/v1/admin/orders?link=https%3A%2F%2Finstagram.com%2Fp%2Fabc",
            &app.admin_token,
        )
        .await;
    assert_eq!(by_link.body["data"].as_array().unwrap().len(), 2);
    let none = app
        .get(
            "/v1/admin/orders?link=https%3A%2F%2Fnowhere",
            &app.admin_token,
        )
        .await;
    assert_eq!(none.body["data"].as_array().unwrap().len(), 0);
    app.get("/v1/admin/orders?link=%20", &app.admin_token)
        .await
        .assert_problem(422, "validation_failed");
    app.get("/v1/admin/orders/999", &app.admin_token)
        .await
        .assert_problem(404, "not_found");
}

/// The order lookup's subscription view: subscriptions share the orders' ids, so the page
/// asks `GET /v1/admin/orders/{id}` first and, on its 404, the subscription; a child order
/// names its subscription (`subscription_id`), whose children carry the money the page shows;
/// an operator's post and end answer with exact amounts; none of it is a reseller's.
#[actix_rt::test]
async fn an_operator_looks_up_a_subscription_or_its_child_by_one_id() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Auto", "10").await;
    let service = app
        .create_service(json!({
            "name": "Auto likes", "category": "Instagram", "type": "subscriptions",
            "rate": "1.333333", "min": 50, "max": 1000
        }))
        .await;
    let created = app
        .post(
            "/v1/subscriptions",
            &reseller.token,
            json!({"service_id": service, "username": "acme", "min": 100, "max": 150, "posts": 3}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let sub = created.body["id"].as_i64().unwrap();

    // The id is a subscription's, not an order's.
    app.get(&format!("/v1/admin/orders/{sub}"), &app.admin_token)
        .await
        .assert_problem(404, "not_found");
    let found = app
        .get(&format!("/v1/admin/subscriptions/{sub}"), &app.admin_token)
        .await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(micros(&found.body["held"]), 600_000);
    assert_eq!(found.body["children"].as_array().unwrap().len(), 0);

    let posted = app
        .post(
            &format!("/v1/admin/subscriptions/{sub}/posts"),
            &app.admin_token,
            json!({"post_key": "p1", "link": "https://instagram.com/p/p1", "quantity": 100}),
        )
        .await;
    assert_eq!(posted.status, 201, "{}", posted.text);
    assert_eq!(posted.body["created"], true);
    assert_eq!(micros(&posted.body["order"]["charge"]), 133_333);
    assert_eq!(micros(&posted.body["subscription"]["hold_left"]), 466_667);
    let child = posted.body["order"]["id"].as_i64().unwrap();

    // The child is an order, naming its subscription and its reseller; the ledger has its
    // charge paid from the hold (nothing from the available balance).
    let order = app
        .get(&format!("/v1/admin/orders/{child}"), &app.admin_token)
        .await;
    assert_eq!(order.status, 200, "{}", order.text);
    assert_eq!(order.body["order"]["subscription_id"], sub);
    assert_eq!(order.body["order"]["account_id"], reseller.id);
    let entries = order.body["ledger"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["kind"], "order_charge");
    assert_eq!(micros(&entries[0]["amount"]), 0);
    let found = app
        .get(&format!("/v1/admin/subscriptions/{sub}"), &app.admin_token)
        .await;
    assert_eq!(found.body["orders"], json!([child]));
    assert_eq!(found.body["children"][0]["id"], child);
    assert_eq!(micros(&found.body["children"][0]["charge"]), 133_333);
    assert_eq!(micros(&found.body["captured"]), 133_333);

    let ended = app
        .post(
            &format!("/v1/admin/subscriptions/{sub}/end"),
            &app.admin_token,
            json!({"reason": "asked by phone"}),
        )
        .await;
    assert_eq!(ended.status, 200, "{}", ended.text);
    assert_eq!(ended.body["status"], "canceled");
    assert_eq!(micros(&ended.body["released"]), 466_667);
    // The reseller's page, opened before, asks to cancel: refused, nothing moves.
    let late = app
        .post(
            &format!("/v1/subscriptions/{sub}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    late.assert_problem(409, "invalid_transition");
    let account = app.get("/v1/account", &reseller.token).await;
    // 10 − 0.6 + 0.466667
    assert_eq!(micros(&account.body["balance"]), 9_866_667);
    assert_eq!(micros(&account.body["held"]), 0);

    for path in [
        format!("/v1/admin/subscriptions/{sub}"),
        format!("/v1/admin/orders/{child}"),
    ] {
        app.get(&path, &reseller.token)
            .await
            .assert_problem(403, "admin_only");
    }
    app.get("/v1/admin/subscriptions/999", &app.admin_token)
        .await
        .assert_problem(404, "not_found");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn provider_health_counts_ambiguous_sends_and_lists_them_with_their_attempts() {
    let upstream = StandIn::start(|_| {
        (
            200,
            r#"{"order":5}"#.to_string(),
            Duration::from_millis(1500),
        )
    })
    .await;
    let app = spawn_app_with(|c| {
        c.worker.sync_interval_secs = 0;
        c.worker.max_backoff_secs = 0;
    })
    .await;
    let (provider, service) = app.provider_service(&upstream.url, false, 300).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    app.worker_pass().await;

    let health = app.get("/v1/admin/provider-health", &app.admin_token).await;
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.body["data"][0]["provider_id"], provider);
    assert_eq!(health.body["data"][0]["orders"]["ambiguous"], 1);
    assert_eq!(health.body["data"][0]["orders"]["sent"], 0);

    let waiting = app
        .get("/v1/admin/forwarding?state=ambiguous", &app.admin_token)
        .await;
    assert_eq!(waiting.status, 200, "{}", waiting.text);
    assert_eq!(waiting.body["data"][0]["order_id"], order);
    assert_eq!(waiting.body["data"][0]["state"], "ambiguous");
    app.get("/v1/admin/forwarding?state=lost", &app.admin_token)
        .await
        .assert_problem(422, "invalid_query");

    let found = app
        .get(&format!("/v1/admin/orders/{order}"), &app.admin_token)
        .await;
    assert_eq!(found.body["forwarding"]["state"], "ambiguous");
    assert_eq!(found.body["attempts"][0]["action"], "add");

    let reconciled = app
        .post(
            &format!("/v1/admin/orders/{order}/forwarding"),
            &app.admin_token,
            json!({"provider_order_id": "5"}),
        )
        .await;
    assert_eq!(reconciled.body["state"], "sent", "{}", reconciled.text);
    let health = app.get("/v1/admin/provider-health", &app.admin_token).await;
    assert_eq!(health.body["data"][0]["orders"]["ambiguous"], 0);
    assert_eq!(health.body["data"][0]["orders"]["sent"], 1);
}

#[actix_rt::test]
async fn the_console_loads_only_its_own_files_under_a_strict_csp_outside_the_api_spec() {
    let app = spawn_app().await;
    let page = app.get("/dashboard", "").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self';",
        "style-src 'self';",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");

    // Every script is a file of the console's own; none is inline.
    let files: Vec<&str> = page
        .text
        .split("src=\"/dashboard/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert!(files.len() >= 7, "{files:?}");
    assert_eq!(page.text.matches("<script").count(), files.len());
    assert!(page.text.contains("href=\"/dashboard/console.css\""));
    let mut all = page.text.clone();
    for file in files.iter().copied().chain(["console.css"]) {
        let reply = app.get(&format!("/dashboard/{file}"), "").await;
        assert_eq!(reply.status, 200, "{file}");
        let expected = if file.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(reply.header("content-type").as_deref(), Some(expected));
        assert_eq!(
            reply.header("content-security-policy").as_deref(),
            Some(csp.as_str())
        );
        assert_eq!(
            reply.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        all.push_str(&reply.text);
    }
    for external in [
        "src=\"http",
        "href=\"http",
        "url(",
        "@import",
        "//cdn",
        "fonts.",
    ] {
        assert!(
            !all.contains(external),
            "the console must load nothing from elsewhere ({external})"
        );
    }
    assert!(
        !all.contains("location.search") && !all.contains("localStorage"),
        "the token stays in sessionStorage, never in a URL or long-lived storage"
    );
    assert!(all.contains("/v1/admin/reports/refunds"));
    assert!(all.contains("/v1/reports/refunds"));
    app.get("/dashboard/secrets.js", "")
        .await
        .assert_problem(404, "not_found");
    let spec = reseller_api::api::api_doc();
    assert!(!spec.paths.paths.keys().any(|p| p.starts_with("/dashboard")));
}
