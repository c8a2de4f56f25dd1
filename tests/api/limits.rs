use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_on_with, spawn_app_with, TestApp};

fn retry_after(reply: &crate::helpers::Reply) -> u64 {
    reply
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap()
}

#[actix_rt::test]
async fn token_requests_are_limited_per_client_ip_with_headers() {
    let app = spawn_app_with(|c| {
        c.limits.rate_token = std::num::NonZeroU32::new(3).unwrap();
        c.limits.rate_token_window = std::num::NonZeroU64::new(60).unwrap();
    })
    .await;
    // The harness already used one token request for the admin.
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.push(
            app.post("/v1/auth/token", "", json!({"api_key": "rk_wrong"}))
                .await,
        );
    }
    assert_eq!(replies[0].status, 401);
    assert_eq!(
        replies[0].header("ratelimit-policy").as_deref(),
        Some("\"token\";q=3;w=60")
    );
    assert_eq!(
        replies[0].header("ratelimit").unwrap().split(';').nth(1),
        Some("r=1")
    );
    assert_eq!(
        replies[1].header("ratelimit").unwrap().split(';').nth(1),
        Some("r=0")
    );
    let refused = &replies[2];
    refused.assert_problem(429, "rate_limited");
    assert_eq!(refused.body["policy"], "token");
    let wait = retry_after(refused);
    assert!((1..=20).contains(&wait), "one token every 20 s: {wait}");
    assert_eq!(refused.body["retry_after"], wait);
    assert!(refused
        .header("ratelimit")
        .unwrap()
        .starts_with("\"token\";r=0;t="));
}

#[actix_rt::test]
async fn a_forwarded_ip_counts_only_when_the_header_is_trusted() {
    async fn burst(app: &TestApp, ip: &str) -> Vec<u16> {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let reply = app
                .post_with(
                    "/v1/auth/token",
                    "",
                    json!({"api_key": "rk_wrong"}),
                    &[("X-Forwarded-For", ip)],
                )
                .await;
            statuses.push(reply.status.as_u16());
        }
        statuses
    }
    let untrusted =
        spawn_app_with(|c| c.limits.rate_token = std::num::NonZeroU32::new(3).unwrap()).await;
    // Spoofed headers do not buy a fresh quota: all share the peer address (1 used by the harness).
    assert_eq!(burst(&untrusted, "10.0.0.1").await, vec![401, 401, 429]);
    assert_eq!(burst(&untrusted, "10.0.0.2").await, vec![429, 429, 429]);

    let trusted = spawn_app_with(|c| {
        c.limits.rate_token = std::num::NonZeroU32::new(3).unwrap();
        c.limits.trusted_ip_header = Some("X-Forwarded-For".into());
    })
    .await;
    assert_eq!(
        burst(&trusted, "203.0.113.9, 10.0.0.1").await,
        vec![401, 401, 401]
    );
    assert_eq!(burst(&trusted, "10.0.0.2").await, vec![401, 401, 401]);
    assert_eq!(burst(&trusted, "10.0.0.2").await, vec![429, 429, 429]);
}

#[actix_rt::test]
async fn each_account_has_its_own_quota_over_the_whole_api() {
    let app =
        spawn_app_with(|c| c.limits.rate_account = std::num::NonZeroU32::new(5).unwrap()).await;
    let alice = app.funded_reseller("Alice", "10").await;
    let bob = app.create_reseller("Bob").await;
    let mut last = None;
    for i in 0..6 {
        let reply = app.get("/v1/account", &alice.token).await;
        if i < 5 {
            assert_eq!(reply.status, 200, "call {i}: {}", reply.text);
            assert_eq!(
                reply.header("ratelimit-policy").as_deref(),
                Some("\"account\";q=5;w=60")
            );
        }
        last = Some(reply);
    }
    let refused = last.unwrap();
    refused.assert_problem(429, "rate_limited");
    assert_eq!(refused.body["policy"], "account");
    assert!((1..=12).contains(&retry_after(&refused)));
    // A refused order changes nothing.
    let service = app.service("1").await;
    app.order(&alice.token, service, 1000)
        .await
        .assert_problem(429, "rate_limited");
    assert_eq!(app.order_count(), 0);
    // Bob is not throttled by Alice's traffic.
    assert_eq!(app.get("/v1/account", &bob.token).await.status, 200);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn an_honest_reseller_under_the_limits_is_never_throttled() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let service = app.service("1").await;
    for _ in 0..25 {
        let reply = app.order(&reseller.token, service, 1000).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        assert!(reply
            .header("ratelimit")
            .unwrap()
            .starts_with("\"account\";r="));
    }
    let order = app.order_id(&reseller.token, service, 1000).await;
    app.outcome(order, json!({"status": "completed"})).await;
    let reply = app
        .post(
            &format!("/v1/orders/{order}/refunds"),
            &reseller.token,
            json!({"reason": "dropped"}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["policy"]["outcome"], "review");
    assert_eq!(reply.body["policy"]["rule"], "manual_review");
    let policy = reply.header("ratelimit-policy").unwrap();
    assert!(
        policy.contains("\"account\";q=600;w=60")
            && policy.contains("\"refund_requests\";q=10;w=3600"),
        "{policy}"
    );
    app.assert_books_balance();
}

/// A reseller with `n` completed orders of 1.00 each.
async fn completed_orders(app: &TestApp, token: &str, n: usize) -> Vec<i64> {
    let service = app.service("1").await;
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = app.order_id(token, service, 1000).await;
        app.outcome(id, json!({"status": "completed"})).await;
        ids.push(id);
    }
    ids
}

#[actix_rt::test]
async fn the_dispute_quota_is_much_stricter_than_the_api_quota() {
    let app = spawn_app_with(|c| {
        c.limits.rate_dispute = std::num::NonZeroU32::new(2).unwrap();
        c.policy.disputes_per_hour = 100;
    })
    .await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let orders = completed_orders(&app, &reseller.token, 3).await;
    for (i, order) in orders.iter().enumerate() {
        let reply = app
            .post(
                &format!("/v1/orders/{order}/refunds"),
                &reseller.token,
                json!({"reason": "dropped"}),
            )
            .await;
        if i < 2 {
            assert_eq!(reply.status, 202, "{}", reply.text);
        } else {
            reply.assert_problem(429, "rate_limited");
            assert_eq!(reply.body["policy"], "refund_requests");
            assert!(retry_after(&reply) > 60);
        }
    }
}

#[actix_rt::test]
async fn dispute_velocity_refuses_with_the_rule_and_its_numbers() {
    let app = spawn_app_with(|c| c.policy.disputes_per_hour = 2).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let orders = completed_orders(&app, &reseller.token, 3).await;
    for order in &orders[..2] {
        let reply = app
            .post(
                &format!("/v1/orders/{order}/refunds"),
                &reseller.token,
                json!({"reason": "dropped"}),
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply.text);
    }
    let key = [("Idempotency-Key", "third")];
    let path = format!("/v1/orders/{}/refunds", orders[2]);
    let refused = app
        .post_with(&path, &reseller.token, json!({"reason": "dropped"}), &key)
        .await;
    refused.assert_problem(429, "refund_policy_refused");
    assert_eq!(refused.body["policy"], "velocity_hour");
    assert_eq!(refused.body["policy_detail"]["requests_last_hour"], 2);
    assert_eq!(refused.body["policy_detail"]["max_per_hour"], 2);
    let wait = retry_after(&refused);
    assert!(
        (3500..=3600).contains(&wait),
        "until the oldest request is an hour old: {wait}"
    );

    let standing = app
        .get(
            &format!("/v1/admin/accounts/{}/refund-standing", reseller.id),
            &app.admin_token,
        )
        .await;
    assert_eq!(standing.status, 200, "{}", standing.text);
    assert_eq!(standing.body["requests_last_hour"], 2);
    assert_eq!(standing.body["refusals_7d"], 1);
    assert_eq!(standing.body["next_request"]["outcome"], "refuse");
    assert_eq!(standing.body["next_request"]["rule"], "velocity_hour");

    // The operator allow-lists the account: the same request (same key) now goes through.
    let until = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let allow = app
        .post(
            &format!("/v1/admin/accounts/{}/refund-allowlist", reseller.id),
            &app.admin_token,
            json!({"until": until}),
        )
        .await;
    assert_eq!(allow.status, 200, "{}", allow.text);
    assert!(allow.body["allowlisted_until"].is_string());
    let reply = app
        .post_with(&path, &reseller.token, json!({"reason": "dropped"}), &key)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["policy"]["rule"], "allowlisted");
    let cleared = app
        .delete(
            &format!("/v1/admin/accounts/{}/refund-allowlist", reseller.id),
            &app.admin_token,
        )
        .await;
    assert!(cleared.body["allowlisted_until"].is_null());
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        7_000_000,
        "no money moved"
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_high_refund_rate_escalates_small_requests_and_then_refuses_but_never_blocks_automatic_refunds(
) {
    let app = spawn_app_with(|c| {
        c.policy.auto_approve_max = rust_decimal::Decimal::new(5, 1);
        c.policy.refund_rate_min_orders = 4;
        c.policy.refund_rate_escalate = rust_decimal::Decimal::new(2, 1);
        c.policy.refund_rate_refuse = rust_decimal::Decimal::new(5, 1);
    })
    .await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let orders = completed_orders(&app, &reseller.token, 4).await;

    // Good standing: a small request is approved and credited at once.
    let reply = app
        .post(
            &format!("/v1/orders/{}/refunds", orders[0]),
            &reseller.token,
            json!({"reason": "dropped", "amount": "0.4"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["status"], "succeeded");
    assert_eq!(reply.body["policy"]["outcome"], "auto_approve");
    assert_eq!(reply.body["policy"]["rule"], "auto_approve_small");
    assert_eq!(app.balance_micros(&reseller.token).await, 6_400_000);

    // 1 of 4 orders refunded (0.25 by count): the next small request goes to a person.
    let reply = app
        .post(
            &format!("/v1/orders/{}/refunds", orders[1]),
            &reseller.token,
            json!({"reason": "dropped", "amount": "0.1"}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["status"], "pending_review");
    assert_eq!(reply.body["policy"]["outcome"], "escalate");
    assert_eq!(reply.body["policy"]["rule"], "refund_rate_escalate");
    assert_eq!(reply.body["policy"]["detail"]["refund_rate_count"], "0.25");
    // The reviewer sees the same on the queue.
    let queue = app
        .get("/v1/admin/refunds?status=pending_review", &app.admin_token)
        .await;
    assert_eq!(
        queue.body["data"][0]["policy"]["rule"],
        "refund_rate_escalate"
    );

    // Provider cancellations are automatic and never blocked, whatever the rate.
    for order in &orders[2..] {
        let outcome = app
            .outcome(*order, json!({"status": "partial", "remains": 900}))
            .await;
        assert_eq!(outcome.status, 200, "{}", outcome.text);
        assert_eq!(outcome.body["refund"]["amount"], "0.9");
    }
    // Now 3 of 4 refunded: refused, and the reseller sees why.
    let refused = app
        .post(
            &format!("/v1/orders/{}/refunds", orders[3]),
            &reseller.token,
            json!({"reason": "other", "amount": "0.1"}),
        )
        .await;
    refused.assert_problem(429, "refund_policy_refused");
    assert_eq!(refused.body["policy"], "refund_rate_refuse");
    assert_eq!(refused.body["policy_detail"]["refund_rate_count"], "0.75");
    assert_eq!(retry_after(&refused), 86_400);
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        6_400_000 + 1_800_000
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn rejected_requests_start_a_cool_down() {
    let app = spawn_app_with(|c| {
        c.policy.cooldown_rejections = 1;
        c.policy.cooldown_hours = 24;
    })
    .await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let orders = completed_orders(&app, &reseller.token, 2).await;
    let dispute = app
        .post(
            &format!("/v1/orders/{}/refunds", orders[0]),
            &reseller.token,
            json!({"reason": "other"}),
        )
        .await;
    let id = dispute.body["id"].as_i64().unwrap();
    app.post(
        &format!("/v1/admin/refunds/{id}/reject"),
        &app.admin_token,
        json!({"reason": "delivered"}),
    )
    .await;
    let refused = app
        .post(
            &format!("/v1/orders/{}/refunds", orders[1]),
            &reseller.token,
            json!({"reason": "other"}),
        )
        .await;
    refused.assert_problem(429, "refund_policy_refused");
    assert_eq!(refused.body["policy"], "cooldown_after_rejections");
    let wait = retry_after(&refused);
    assert!((86_000..=86_400).contains(&wait), "{wait}");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn two_processes_on_one_database_enforce_one_dispute_velocity() {
    let first = spawn_app_with(|c| c.policy.disputes_per_hour = 3).await;
    let second = spawn_app_on_with(first.config.database_url.expose_secret(), |c| {
        c.policy.disputes_per_hour = 3
    })
    .await;
    let reseller = first.funded_reseller("Acme", "20").await;
    let orders = completed_orders(&first, &reseller.token, 8).await;
    let paths: Vec<String> = orders
        .iter()
        .map(|o| format!("/v1/orders/{o}/refunds"))
        .collect();
    let replies = join_all(paths.iter().enumerate().map(|(i, path)| {
        let server = if i % 2 == 0 { &first } else { &second };
        server.post(path, &reseller.token, json!({"reason": "dropped"}))
    }))
    .await;
    let accepted = replies.iter().filter(|r| r.status == 202).count();
    assert_eq!(
        accepted,
        3,
        "{:?}",
        replies.iter().map(|r| r.text.clone()).collect::<Vec<_>>()
    );
    for reply in replies.iter().filter(|r| r.status != 202) {
        reply.assert_problem(429, "refund_policy_refused");
        assert_eq!(reply.body["policy"], "velocity_hour");
    }
    first.assert_books_balance();
}

/// A response as the helpers read it.
async fn read(
    mut response: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
            + Unpin,
    >,
) -> crate::helpers::Reply {
    let bytes = response.body().await.expect("body");
    crate::helpers::Reply {
        status: response.status(),
        headers: response.headers().clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        text: String::from_utf8_lossy(&bytes).to_string(),
    }
}

/// An API v2 call from the client address `ip`, which the app trusts from
/// `X-Forwarded-For`.
async fn api_v2_from(app: &TestApp, ip: &str, fields: &[(&str, &str)]) -> crate::helpers::Reply {
    let response = app
        .client
        .post(app.url("/api/v2"))
        .insert_header(("X-Forwarded-For", ip))
        .send_form(&fields)
        .await
        .expect("request");
    read(response).await
}

#[actix_rt::test]
async fn failed_key_attempts_are_limited_per_client_address_in_each_dialect() {
    let app = spawn_app_with(|c| {
        c.limits.rate_auth_failures = std::num::NonZeroU32::new(5).unwrap();
        c.limits.trusted_ip_header = Some("X-Forwarded-For".into());
    })
    .await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let guesser = "203.0.113.7";
    for i in 0..5 {
        let key = format!("rk_guess_{i}");
        let reply = api_v2_from(&app, guesser, &[("key", &key), ("action", "balance")]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.body,
            json!({"error": "Invalid API key"}),
            "attempt {i}"
        );
    }
    // The sixth attempt, and every one after it, is refused unread: a valid key too.
    for key in ["rk_guess_5", reseller.key.as_str()] {
        let reply = api_v2_from(&app, guesser, &[("key", key), ("action", "balance")]).await;
        assert_eq!(reply.status, 200, "the dialect refuses with HTTP 200");
        let error = reply.body["error"].as_str().unwrap();
        assert!(error.starts_with("Too many failed key attempts"), "{error}");
        assert!(
            (1..=12).contains(&retry_after(&reply)),
            "one failure every 12 s"
        );
    }
    let exchange = app
        .post_with(
            "/v1/auth/token",
            "",
            json!({"api_key": reseller.key}),
            &[("X-Forwarded-For", guesser)],
        )
        .await;
    exchange.assert_problem(429, "rate_limited");
    assert_eq!(exchange.body["policy"], "auth_failures");
    assert!((1..=12).contains(&retry_after(&exchange)));
    let bearer = app
        .client
        .get(app.url("/v1/account"))
        .insert_header(("X-Forwarded-For", guesser))
        .bearer_auth(&reseller.token)
        .send()
        .await
        .unwrap();
    let bearer = read(bearer).await;
    bearer.assert_problem(429, "rate_limited");
    assert_eq!(bearer.body["policy"], "auth_failures");

    // Another address is unaffected: its valid key works in both dialects.
    let other = "198.51.100.20";
    let reply = api_v2_from(
        &app,
        other,
        &[("key", &reseller.key), ("action", "balance")],
    )
    .await;
    assert_eq!(reply.body["balance"], "10", "{}", reply.text);
    let exchange = app
        .post_with(
            "/v1/auth/token",
            "",
            json!({"api_key": reseller.key}),
            &[("X-Forwarded-For", other)],
        )
        .await;
    assert_eq!(exchange.status, 200, "{}", exchange.text);

    // Forged access tokens count as failures too.
    let forger = "192.0.2.44";
    for i in 0..5 {
        let reply = app
            .client
            .get(app.url("/v1/account"))
            .insert_header(("X-Forwarded-For", forger))
            .bearer_auth(format!("forged.token.{i}"))
            .send()
            .await
            .unwrap();
        let reply = read(reply).await;
        reply.assert_problem(401, "unauthorized");
    }
    let reply = app
        .client
        .get(app.url("/v1/account"))
        .insert_header(("X-Forwarded-For", forger))
        .bearer_auth(&reseller.token)
        .send()
        .await
        .unwrap();
    read(reply).await.assert_problem(429, "rate_limited");
    // Nothing was charged or changed by any of it.
    assert_eq!(app.balance_micros(&reseller.token).await, 10_000_000);
    assert_eq!(app.order_count(), 0);
    app.assert_books_balance();
}
