//! Mass orders: up to 100 lines, each its own transaction, per-line results in order.

use serde_json::{json, Value};

use crate::helpers::{micros, spawn_app};

#[actix_rt::test]
async fn a_batch_of_100_with_failing_lines_charges_only_the_accepted_ones() {
    let app = spawn_app().await;
    let service = app.service("1").await;
    // 80 valid lines of 1.000000 each; the balance covers 75 of them.
    let reseller = app.funded_reseller("Acme", "75.5").await;
    let lines: Vec<Value> = (0..100)
        .map(|i| match i % 10 {
            3 => json!({"service_id": service, "link": "https://instagram.com/p/x", "quantity": 5}),
            7 => json!({"service_id": 999_999, "link": "https://instagram.com/p/x", "quantity": 1000}),
            _ => json!({"service_id": service, "link": "https://instagram.com/p/x", "quantity": 1000, "external_ref": format!("line-{i}")}),
        })
        .collect();
    let body = json!({ "orders": lines });
    let reply = app
        .post_with(
            "/v1/orders/batch",
            &reseller.token,
            body.clone(),
            &[("Idempotency-Key", "batch-1")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let results = reply.body["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 100);
    let mut valid = 0;
    for (i, item) in results.iter().enumerate() {
        if i % 10 == 3 || i % 10 == 7 {
            assert_eq!(item["error"]["code"], "validation_failed", "{i}: {item}");
            assert!(item.get("order").is_none());
            continue;
        }
        valid += 1;
        if valid <= 75 {
            assert_eq!(
                item["order"]["external_ref"],
                format!("line-{i}"),
                "{i}: {item}"
            );
            assert_eq!(micros(&item["order"]["charge"]), 1_000_000);
        } else {
            assert_eq!(item["error"]["code"], "insufficient_funds", "{i}: {item}");
        }
    }
    assert_eq!(app.order_count(), 75);
    assert_eq!(app.balance_micros(&reseller.token).await, 500_000);

    // A replay returns the same results and places nothing again.
    let replay = app
        .post_with(
            "/v1/orders/batch",
            &reseller.token,
            body,
            &[("Idempotency-Key", "batch-1")],
        )
        .await;
    assert_eq!(replay.status, 200);
    assert_eq!(
        replay.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(replay.text, reply.text);
    assert_eq!(app.order_count(), 75);
    let other = json!({"orders": [{"service_id": service, "link": "https://instagram.com/p/x", "quantity": 10}]});
    app.post_with(
        "/v1/orders/batch",
        &reseller.token,
        other,
        &[("Idempotency-Key", "batch-1")],
    )
    .await
    .assert_problem(422, "idempotency_key_reused");

    // Bounds of the batch itself.
    let one = json!({"service_id": service, "link": "https://instagram.com/p/x", "quantity": 10});
    let too_many = json!({ "orders": vec![one.clone(); 101] });
    app.post("/v1/orders/batch", &reseller.token, too_many)
        .await
        .assert_problem(422, "validation_failed");
    app.post("/v1/orders/batch", &reseller.token, json!({"orders": []}))
        .await
        .assert_problem(422, "validation_failed");
    assert_eq!(app.order_count(), 75);
    assert_eq!(app.balance_micros(&reseller.token).await, 500_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_batch_counts_one_request_per_line_against_the_account_quota() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.limits.rate_account = std::num::NonZeroU32::new(30).unwrap()
    })
    .await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let service = app.service("1").await;
    let line = serde_json::json!({"service_id": service, "link": "https://x/p", "quantity": 100});
    let lines = |n: usize| serde_json::json!({"orders": vec![line.clone(); n]});
    // 40 lines are more than the whole quota: refused, nothing placed.
    let refused = app
        .post("/v1/orders/batch", &reseller.token, lines(40))
        .await;
    refused.assert_problem(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(app.order_count(), 0);
    let placed = app
        .post("/v1/orders/batch", &reseller.token, lines(20))
        .await;
    assert_eq!(placed.status, 200, "{}", placed.text);
    // The 20 lines spent 20 of the 30; a further batch of 15 does not fit.
    let over = app
        .post("/v1/orders/batch", &reseller.token, lines(15))
        .await;
    over.assert_problem(429, "rate_limited");
    assert_eq!(app.order_count(), 20);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_wrong_method_on_the_batch_path_is_405_not_an_order_lookup() {
    let app = crate::helpers::spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let reply = app.get("/v1/orders/batch", &reseller.token).await;
    reply.assert_problem(405, "method_not_allowed");
    assert_eq!(reply.header("allow").as_deref(), Some("POST"));
    // A real id still reads an order (404 when it is not one of yours).
    app.get("/v1/orders/123", &reseller.token)
        .await
        .assert_problem(404, "not_found");
    app.get("/v1/orders/abc", &reseller.token)
        .await
        .assert_problem(404, "not_found");
}
