use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{micros, spawn_app};

#[actix_rt::test]
async fn partial_delivery_refunds_the_undelivered_share_floored_to_the_micro_unit() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    // 1 per 1000 × 3000 = 3; 1000 of 3000 undelivered... use 7 units to get a fraction:
    let service = app.service("1").await;
    let order = app.order_id(&reseller.token, service, 3000).await;
    let reply = app
        .outcome(
            order,
            json!({"status": "partial", "remains": 1001, "start_count": 350}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // 3_000_000 × 1001 / 3000 = 1_001_000 exactly.
    assert_eq!(reply.body["refund"]["amount"], "1.001");
    assert_eq!(reply.body["refund"]["reason"], "partial_delivery");
    assert_eq!(reply.body["refund"]["source"], "admin");
    assert_eq!(reply.body["refund"]["status"], "succeeded");
    assert_eq!(reply.body["order"]["status"], "partial");
    assert_eq!(reply.body["order"]["remains"], 1001);
    assert_eq!(reply.body["order"]["start_count"], 350);
    assert_eq!(reply.body["order"]["refunded"], "1.001");
    assert_eq!(reply.body["order"]["refundable"], "1.999");

    // A charge that does not divide: 0.000007 for 7 units, 3 undelivered → 0.000003.
    let cheap = app.service("0.001").await;
    let small = app.order_id(&reseller.token, cheap, 7000).await;
    let reply = app
        .outcome(small, json!({"status": "partial", "remains": 3333}))
        .await;
    // 7000 units at 0.001/1000 = 0.007 = 7000 micros; 7000 × 3333 / 7000 = 3333.
    assert_eq!(micros(&reply.body["refund"]["amount"]), 3333);
    let odd = app.order_id(&reseller.token, service, 30).await; // 0.03
    let reply = app
        .outcome(odd, json!({"status": "partial", "remains": 7}))
        .await;
    // 30_000 × 7 / 30 = 7000 exactly; now 11 of 30 on a fresh order: 30_000 × 11 / 30 = 11_000.
    assert_eq!(micros(&reply.body["refund"]["amount"]), 7000);

    assert_eq!(
        app.refunded_in_ledger(&reseller.token, order).await,
        1_001_000
    );
    let expected = 10_000_000 - 3_000_000 + 1_001_000 - 7000 + 3333 - 30_000 + 7000;
    assert_eq!(app.balance_micros(&reseller.token).await, expected);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn floor_rounding_never_refunds_a_fraction_of_a_micro_unit_too_much() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    // 0.333333 per 1000 × 3000 units = 0.999999; 1 of 3000 undelivered → 333.333 → 333 micros.
    let service = app.service("0.333333").await;
    let order = app.order_id(&reseller.token, service, 3000).await;
    let reply = app
        .outcome(order, json!({"status": "partial", "remains": 1}))
        .await;
    assert_eq!(micros(&reply.body["refund"]["amount"]), 333);
    let reply = app.outcome(order, json!({"status": "canceled"})).await;
    assert_eq!(micros(&reply.body["refund"]["amount"]), 999_999 - 333);
    assert_eq!(reply.body["refund"]["reason"], "provider_canceled");
    assert_eq!(reply.body["order"]["refunded"], "0.999999");
    assert_eq!(reply.body["order"]["refundable"], "0");
    assert_eq!(app.balance_micros(&reseller.token).await, 10_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn the_same_outcome_posted_ten_times_at_once_refunds_once() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("2").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    let replies =
        join_all((0..10).map(|_| app.outcome(order, json!({"status": "partial", "remains": 250}))))
            .await;
    let credited: i64 = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.text);
            if r.body["refund"].is_null() {
                0
            } else {
                micros(&r.body["refund"]["amount"])
            }
        })
        .sum();
    assert_eq!(credited, 500_000);
    assert_eq!(
        replies
            .iter()
            .filter(|r| !r.body["refund"].is_null())
            .count(),
        1
    );
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, order).await,
        500_000
    );
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        10_000_000 - 2_000_000 + 500_000
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn partial_and_canceled_racing_refund_exactly_the_charge() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let service = app.service("3").await;
    let mut orders = Vec::new();
    for _ in 0..5 {
        orders.push(app.order_id(&reseller.token, service, 1000).await);
    }
    let mut calls = Vec::new();
    for &order in &orders {
        for i in 0..6 {
            let body = if i % 2 == 0 {
                json!({"status": "partial", "remains": 100 * (i + 1)})
            } else {
                json!({"status": "canceled"})
            };
            calls.push(app.outcome(order, body));
        }
    }
    let replies = join_all(calls).await;
    for reply in &replies {
        // Partials that arrive after the cancel, or after a partial owing more, are
        // refused rather than taking money back; nothing else may fail.
        let code = reply.body["code"].as_str().unwrap_or("");
        assert!(
            reply.status == 200 || code == "order_final" || code == "refund_would_be_taken_back",
            "{}",
            reply.text
        );
    }
    for &order in &orders {
        let json = app.order_json(&reseller.token, order).await;
        assert_eq!(json["status"], "canceled");
        assert_eq!(json["refunded"], "3");
        assert_eq!(
            app.refunded_in_ledger(&reseller.token, order).await,
            3_000_000
        );
    }
    assert_eq!(app.balance_micros(&reseller.token).await, 100_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn an_outcome_racing_a_dispute_approval_never_refunds_beyond_what_is_owed() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let service = app.service("4").await;
    for round in 0..4 {
        let order = app.order_id(&reseller.token, service, 1000).await;
        let dispute = app
            .post(
                &format!("/v1/orders/{order}/refunds"),
                &reseller.token,
                json!({"reason": "not_delivered"}),
            )
            .await;
        assert_eq!(dispute.status, 202, "{}", dispute.text);
        let refund_id = dispute.body["id"].as_i64().unwrap();
        let approve_path = format!("/v1/admin/refunds/{refund_id}/approve");
        let approve = app.post(&approve_path, &app.admin_token, json!({}));
        let outcome = app.outcome(order, json!({"status": "canceled"}));
        let (approve, outcome) = futures_util::join!(approve, outcome);
        assert_eq!(outcome.status, 200, "round {round}: {}", outcome.text);
        // Either the approval ran first (and credited), or the cancel refunded in full and
        // closed the request, so the approval finds it decided.
        assert!(
            approve.status == 200 || approve.body["code"] == "refund_already_decided",
            "round {round}: {}",
            approve.text
        );
        let json = app.order_json(&reseller.token, order).await;
        assert_eq!(json["refunded"], "4");
        assert_eq!(
            app.refunded_in_ledger(&reseller.token, order).await,
            4_000_000
        );
    }
    assert_eq!(app.balance_micros(&reseller.token).await, 100_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn drip_feed_refunds_by_undelivered_runs_and_over_delivery_refunds_nothing() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let drip = app
        .create_service(json!({"name": "Views drip", "category": "YT", "type": "drip_feed", "rate": "2", "min": 100, "max": 10000}))
        .await;
    let reply = app
        .post("/v1/orders", &reseller.token, json!({"service_id": drip, "link": "https://y/1", "quantity": 500, "runs": 4, "interval": 60}))
        .await;
    let order = reply.body["id"].as_i64().unwrap();
    // 4 runs of 500 for 4.00; 1 run delivered → 3 of 4 runs refunded: 3.00.
    let reply = app
        .outcome(order, json!({"status": "partial", "runs_delivered": 1}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["refund"]["amount"], "3");
    assert_eq!(reply.body["order"]["remains"], 1500);

    let service = app.service("1").await;
    let over = app.order_id(&reseller.token, service, 1000).await;
    let reply = app
        .outcome(over, json!({"status": "partial", "remains": -40}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.body["refund"].is_null());
    assert_eq!(reply.body["order"]["refunded"], "0");
    app.outcome(over, json!({"status": "partial", "runs_delivered": 1}))
        .await
        .assert_problem(422, "validation_failed");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn outcomes_that_would_take_a_refund_back_are_refused() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    app.outcome(order, json!({"status": "partial"}))
        .await
        .assert_problem(422, "validation_failed");
    app.outcome(order, json!({"status": "partial", "remains": 500}))
        .await;
    app.outcome(order, json!({"status": "completed"}))
        .await
        .assert_problem(409, "refund_would_be_taken_back");
    app.outcome(order, json!({"status": "partial", "remains": 100}))
        .await
        .assert_problem(409, "refund_would_be_taken_back");
    app.outcome(order, json!({"status": "in_progress"}))
        .await
        .assert_problem(409, "invalid_transition");
    app.outcome(order, json!({"status": "canceled"})).await;
    app.outcome(order, json!({"status": "completed"}))
        .await
        .assert_problem(409, "order_final");
    app.outcome(999_999, json!({"status": "completed"}))
        .await
        .assert_problem(404, "not_found");
    let json = app.order_json(&reseller.token, order).await;
    assert_eq!(json["refunded"], "1");
    assert_eq!(app.balance_micros(&reseller.token).await, 10_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_reseller_cancels_a_pending_order_for_a_full_refund() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let other = app.funded_reseller("Other", "10").await;
    let service = app.service("1.5").await;
    let order = app.order_id(&reseller.token, service, 1000).await;

    app.post(
        &format!("/v1/orders/{order}/cancel"),
        &other.token,
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
    let reply = app
        .post(
            &format!("/v1/orders/{order}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["order"]["status"], "canceled");
    assert_eq!(reply.body["refund"]["amount"], "1.5");
    assert_eq!(reply.body["refund"]["reason"], "canceled_by_reseller");
    assert_eq!(reply.body["refund"]["source"], "reseller");
    app.post(
        &format!("/v1/orders/{order}/cancel"),
        &reseller.token,
        json!({}),
    )
    .await
    .assert_problem(409, "not_cancelable");

    let started = app.order_id(&reseller.token, service, 1000).await;
    app.outcome(started, json!({"status": "in_progress", "start_count": 10}))
        .await;
    app.post(
        &format!("/v1/orders/{started}/cancel"),
        &reseller.token,
        json!({}),
    )
    .await
    .assert_problem(409, "not_cancelable");

    let fixed = app
        .create_service(json!({"name": "No cancel", "category": "X", "type": "default", "rate": "1", "min": 10, "max": 10000, "cancel": false}))
        .await;
    let locked = app.order_id(&reseller.token, fixed, 1000).await;
    let reply = app
        .post(
            &format!("/v1/orders/{locked}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    reply.assert_problem(409, "not_cancelable");
    assert!(reply.body["detail"]
        .as_str()
        .unwrap()
        .contains("does not allow cancel"));

    assert_eq!(
        app.balance_micros(&reseller.token).await,
        10_000_000 - 1_500_000 - 1_000_000
    );
    assert_eq!(app.balance_micros(&other.token).await, 10_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_dispute_waits_for_review_and_approval_credits_it_once() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("2").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    app.outcome(order, json!({"status": "completed", "start_count": 100}))
        .await;

    let path = format!("/v1/orders/{order}/refunds");
    let key = [("Idempotency-Key", "dispute-1")];
    let body = json!({"reason": "dropped", "note": "lost 30% in two days", "amount": "0.6"});
    let reply = app
        .post_with(&path, &reseller.token, body.clone(), &key)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["status"], "pending_review");
    assert_eq!(reply.body["reason"], "dropped");
    assert_eq!(reply.body["source"], "reseller");
    assert_eq!(reply.body["amount"], "0.6");
    let refund_id = reply.body["id"].as_i64().unwrap();
    let replay = app.post_with(&path, &reseller.token, body, &key).await;
    assert_eq!(replay.status, 202);
    assert_eq!(replay.body["id"], refund_id);
    app.post(&path, &reseller.token, json!({"reason": "other"}))
        .await
        .assert_problem(409, "dispute_pending");
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        8_000_000,
        "nothing moves before review"
    );

    let queue = app
        .get("/v1/admin/refunds?status=pending_review", &app.admin_token)
        .await;
    assert_eq!(queue.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(queue.body["data"][0]["id"], refund_id);

    let reply = app
        .post(
            &format!("/v1/admin/refunds/{refund_id}/approve"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["refund"]["status"], "succeeded");
    assert_eq!(reply.body["refund"]["amount"], "0.6");
    assert!(reply.body["refund"]["decided_at"].is_string());
    assert_eq!(reply.body["order"]["refunded"], "0.6");
    assert_eq!(reply.body["order"]["refundable"], "1.4");
    app.post(
        &format!("/v1/admin/refunds/{refund_id}/approve"),
        &app.admin_token,
        json!({}),
    )
    .await
    .assert_problem(409, "refund_already_decided");
    app.post(
        &format!("/v1/admin/refunds/{refund_id}/reject"),
        &app.admin_token,
        json!({"reason": "late"}),
    )
    .await
    .assert_problem(409, "refund_already_decided");
    assert_eq!(app.balance_micros(&reseller.token).await, 8_600_000);
    let ledger = app.ledger(&reseller.token).await;
    assert_eq!(ledger[0]["kind"], "refund");
    assert_eq!(ledger[0]["refund_id"], refund_id);
    assert_eq!(micros(&ledger[0]["amount"]), 600_000);

    // A second dispute, approved with a different amount than asked.
    let second = app
        .post(&path, &reseller.token, json!({"reason": "not_delivered"}))
        .await;
    assert_eq!(second.body["amount"], "1.4");
    let second_id = second.body["id"].as_i64().unwrap();
    app.post(
        &format!("/v1/admin/refunds/{second_id}/approve"),
        &app.admin_token,
        json!({"amount": "1.5"}),
    )
    .await
    .assert_problem(422, "amount_exceeds_refundable");
    let reply = app
        .post(
            &format!("/v1/admin/refunds/{second_id}/approve"),
            &app.admin_token,
            json!({"amount": "0.4", "reason": "partial credit"}),
        )
        .await;
    assert_eq!(reply.body["refund"]["amount"], "0.4");
    assert_eq!(reply.body["refund"]["decision_reason"], "partial credit");
    assert_eq!(reply.body["order"]["refunded"], "1");
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_rejected_dispute_moves_no_money() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("2").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    let dispute = app
        .post(
            &format!("/v1/orders/{order}/refunds"),
            &reseller.token,
            json!({"reason": "other"}),
        )
        .await;
    let id = dispute.body["id"].as_i64().unwrap();
    app.post(
        &format!("/v1/admin/refunds/{id}/reject"),
        &app.admin_token,
        json!({}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let reply = app
        .post(
            &format!("/v1/admin/refunds/{id}/reject"),
            &app.admin_token,
            json!({"reason": "delivered in full, see start count"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "rejected");
    assert_eq!(
        reply.body["decision_reason"],
        "delivered in full, see start count"
    );
    app.post(
        &format!("/v1/admin/refunds/{id}/approve"),
        &app.admin_token,
        json!({}),
    )
    .await
    .assert_problem(409, "refund_already_decided");
    let mine = app.get(&format!("/v1/refunds/{id}"), &reseller.token).await;
    assert_eq!(mine.body["status"], "rejected");
    assert_eq!(app.balance_micros(&reseller.token).await, 8_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn disputes_are_refused_where_nothing_can_be_owed() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let other = app.funded_reseller("Other", "10").await;
    let service = app.service("1").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    let path = format!("/v1/orders/{order}/refunds");
    app.post(&path, &other.token, json!({"reason": "other"}))
        .await
        .assert_problem(404, "not_found");
    let reply = app
        .post(
            &path,
            &reseller.token,
            json!({"reason": "other", "amount": "1.000001"}),
        )
        .await;
    reply.assert_problem(422, "amount_exceeds_refundable");
    assert_eq!(reply.body["param"], "amount");
    app.post(&path, &reseller.token, json!({"reason": "because"}))
        .await
        .assert_problem(422, "validation_failed");
    app.post(
        &path,
        &reseller.token,
        json!({"reason": "other", "amount": 0.5}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.outcome(order, json!({"status": "canceled"})).await;
    app.post(&path, &reseller.token, json!({"reason": "other"}))
        .await
        .assert_problem(409, "order_canceled");
    let listed = app.get("/v1/refunds", &reseller.token).await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        1,
        "only the cancel's refund"
    );
    assert_eq!(
        app.get("/v1/refunds", &other.token).await.body["data"],
        json!([])
    );
    let refund_id = listed.body["data"][0]["id"].as_i64().unwrap();
    app.get(&format!("/v1/refunds/{refund_id}"), &other.token)
        .await
        .assert_problem(404, "not_found");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn disabling_a_service_refunds_every_order_in_flight_once() {
    let app = spawn_app().await;
    let alice = app.funded_reseller("Alice", "100").await;
    let bob = app.funded_reseller("Bob", "100").await;
    let service = app.service("2").await;
    let other_service = app.service("2").await;
    let pending = app.order_id(&alice.token, service, 1000).await;
    let progressing = app.order_id(&bob.token, service, 1000).await;
    app.outcome(
        progressing,
        json!({"status": "in_progress", "start_count": 5, "remains": 250}),
    )
    .await;
    let unknown_progress = app.order_id(&bob.token, service, 2000).await;
    app.outcome(unknown_progress, json!({"status": "in_progress"}))
        .await;
    let done = app.order_id(&alice.token, service, 1000).await;
    app.outcome(done, json!({"status": "completed"})).await;
    let elsewhere = app.order_id(&alice.token, other_service, 1000).await;

    let reply = app
        .post(
            &format!("/v1/admin/services/{service}/disable"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["service"]["status"], "disabled");
    assert_eq!(reply.body["orders_refunded"], 3);
    // 2 (pending, full) + 0.5 (250 of 1000 undelivered) + 4 (no progress known, full).
    assert_eq!(reply.body["amount_refunded"], "6.5");

    let again = app
        .post(
            &format!("/v1/admin/services/{service}/disable"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(again.body["orders_refunded"], 0);
    assert_eq!(again.body["amount_refunded"], "0");

    assert_eq!(
        app.order_json(&alice.token, pending).await["status"],
        "canceled"
    );
    let partial = app.order_json(&bob.token, progressing).await;
    assert_eq!(partial["status"], "partial");
    assert_eq!(partial["refunded"], "0.5");
    assert_eq!(app.order_json(&alice.token, done).await["refunded"], "0");
    assert_eq!(
        app.order_json(&alice.token, elsewhere).await["status"],
        "pending"
    );
    let refunds = app
        .get("/v1/refunds?reason=service_disabled", &bob.token)
        .await;
    assert_eq!(refunds.body["data"].as_array().unwrap().len(), 2);

    let reply = app.order(&alice.token, service, 1000).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.body["param"], "service_id");
    assert_eq!(
        app.balance_micros(&alice.token).await,
        100_000_000 - 2_000_000 - 2_000_000
    );
    assert_eq!(
        app.balance_micros(&bob.token).await,
        100_000_000 - 2_000_000 - 4_000_000 + 500_000 + 4_000_000
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn disabling_a_service_with_thousands_of_orders_works_in_batches() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "100000").await;
    let service = app.service("1").await;
    // Placed through the data layer to keep the test quick; the disable goes through HTTP.
    // Off the test's runtime: a long blocking setup on it stalls the HTTP client's
    // connection pool, which then drops its next request on a loaded machine.
    let pool = app.pool.clone();
    let reseller_id = reseller.id;
    actix_web::web::block(move || {
        use reseller_api::db::write_tx;
        use reseller_api::domain::order::OrderInput;
        let mut conn = pool.get().unwrap();
        let svc = reseller_api::db::services::find(
            &mut conn,
            reseller_api::domain::ids::ServiceId(service),
        )
        .unwrap()
        .unwrap();
        write_tx(
            &mut conn,
            |conn| -> Result<(), reseller_api::error::ApiError> {
                for _ in 0..1200 {
                    let planned = reseller_api::domain::order::plan_order(
                        reseller_api::domain::ids::AccountId(reseller_id),
                        &svc,
                        OrderInput {
                            link: "https://x".into(),
                            quantity: Some(1000),
                            ..OrderInput::default()
                        },
                    )
                    .unwrap();
                    reseller_api::application::orders::place_order_planned(conn, planned)?;
                }
                Ok(())
            },
        )
        .unwrap();
    })
    .await
    .unwrap();
    let reply = app
        .post(
            &format!("/v1/admin/services/{service}/disable"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["orders_refunded"], 1200);
    assert_eq!(reply.body["amount_refunded"], "1200");
    assert_eq!(app.balance_micros(&reseller.token).await, 100_000_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_top_up_refund_is_pending_until_the_gateway_answers() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let top_up = app.top_up(reseller.id, "50").await.body["id"]
        .as_i64()
        .unwrap();
    let path = format!("/v1/admin/top-ups/{top_up}/refund");

    let reply = app
        .post(
            &path,
            &app.admin_token,
            json!({"amount": "20", "reason": "duplicate_top_up"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["status"], "pending");
    assert_eq!(reply.body["reason"], "duplicate_top_up");
    assert_eq!(reply.body["top_up_id"], top_up);
    let first = reply.body["id"].as_i64().unwrap();
    assert_eq!(app.balance_micros(&reseller.token).await, 30_000_000);

    let reply = app
        .post(
            &path,
            &app.admin_token,
            json!({"amount": "10", "reason": "manual"}),
        )
        .await;
    let second = reply.body["id"].as_i64().unwrap();
    assert_eq!(app.balance_micros(&reseller.token).await, 20_000_000);
    // 50 - 20 - 10 = 20 left: 20.000001 is too much.
    app.post(
        &path,
        &app.admin_token,
        json!({"amount": "20.000001", "reason": "manual"}),
    )
    .await
    .assert_problem(422, "amount_exceeds_refundable");

    let ok = app
        .post(
            &format!("/v1/admin/refunds/{first}/succeed"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(ok.body["status"], "succeeded");
    let failed = app
        .post(
            &format!("/v1/admin/refunds/{second}/fail"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(failed.status, 200, "{}", failed.text);
    assert_eq!(failed.body["status"], "failed");
    assert_eq!(app.balance_micros(&reseller.token).await, 30_000_000);
    app.post(
        &format!("/v1/admin/refunds/{second}/fail"),
        &app.admin_token,
        json!({}),
    )
    .await
    .assert_problem(409, "refund_not_pending");
    app.post(
        &format!("/v1/admin/refunds/{first}/fail"),
        &app.admin_token,
        json!({}),
    )
    .await
    .assert_problem(409, "refund_not_pending");

    // Spent money cannot go back to the card.
    let service = app.service("25").await;
    app.order_id(&reseller.token, service, 1000).await;
    app.post(
        &path,
        &app.admin_token,
        json!({"amount": "10", "reason": "manual"}),
    )
    .await
    .assert_problem(402, "insufficient_funds");
    assert_eq!(app.balance_micros(&reseller.token).await, 5_000_000);
    let kinds: Vec<_> = app
        .ledger(&reseller.token)
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "order_charge",
            "top_up_refund",
            "top_up_refund",
            "top_up_refund",
            "top_up"
        ]
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn concurrent_top_up_refunds_never_exceed_the_top_up() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let top_up = app.top_up(reseller.id, "10").await.body["id"]
        .as_i64()
        .unwrap();
    app.top_up(reseller.id, "100").await;
    let path = format!("/v1/admin/top-ups/{top_up}/refund");
    let replies = join_all((0..8).map(|_| {
        app.post(
            &path,
            &app.admin_token,
            json!({"amount": "3", "reason": "manual"}),
        )
    }))
    .await;
    assert_eq!(replies.iter().filter(|r| r.status == 201).count(), 3);
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        110_000_000 - 9_000_000
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_chargeback_debits_below_zero_and_suspends_the_account() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let top_up = app.top_up(reseller.id, "10").await.body["id"]
        .as_i64()
        .unwrap();
    let service = app.service("8").await;
    app.order_id(&reseller.token, service, 1000).await;

    let reply = app
        .post(
            &format!("/v1/admin/top-ups/{top_up}/chargeback"),
            &app.admin_token,
            json!({"note": "dispute at the bank"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["refund"]["reason"], "chargeback");
    assert_eq!(reply.body["refund"]["amount"], "10");
    assert_eq!(reply.body["top_up"]["refunded"], "10");
    assert_eq!(reply.body["top_up"]["status"], "charged_back");
    assert_eq!(reply.body["account"]["status"], "suspended");
    assert_eq!(reply.body["account"]["balance"], "-8");
    assert_eq!(app.balance_micros(&reseller.token).await, -8_000_000);
    app.order(&reseller.token, service, 1000)
        .await
        .assert_problem(403, "account_suspended");
    app.post(
        &format!("/v1/admin/top-ups/{top_up}/chargeback"),
        &app.admin_token,
        json!({}),
    )
    .await
    .assert_problem(409, "nothing_to_charge_back");
    app.post(
        &format!("/v1/admin/top-ups/{top_up}/refund"),
        &app.admin_token,
        json!({"amount": "1", "reason": "manual"}),
    )
    .await
    .assert_problem(422, "amount_exceeds_refundable");
    app.assert_books_balance();

    app.post(
        &format!("/v1/admin/accounts/{}/reactivate", reseller.id),
        &app.admin_token,
        json!({}),
    )
    .await;
    app.top_up(reseller.id, "20").await;
    assert_eq!(app.order(&reseller.token, service, 1000).await.status, 201);
    assert_eq!(app.balance_micros(&reseller.token).await, 4_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn the_database_itself_refuses_a_refund_beyond_the_charge() {
    use diesel::prelude::*;
    use reseller_api::db::schema::{orders, top_ups};
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    let mut conn = app.pool.get().unwrap();
    let over = diesel::update(orders::table.find(order))
        .set(orders::refunded_micros.eq(1_000_001))
        .execute(&mut *conn);
    assert!(
        over.is_err(),
        "CHECK (refunded_micros <= charge_micros) must hold"
    );
    let over = diesel::update(top_ups::table)
        .set(top_ups::refunded_micros.eq(top_ups::amount_micros + 1))
        .execute(&mut *conn);
    assert!(
        over.is_err(),
        "CHECK (refunded_micros <= amount_micros) must hold"
    );
}

#[actix_rt::test]
async fn refunds_list_filters_by_order_status_and_reason() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let a = app.order_id(&reseller.token, service, 1000).await;
    let b = app.order_id(&reseller.token, service, 1000).await;
    app.outcome(a, json!({"status": "canceled"})).await;
    app.outcome(b, json!({"status": "completed"})).await;
    app.post(
        &format!("/v1/orders/{b}/refunds"),
        &reseller.token,
        json!({"reason": "dropped"}),
    )
    .await;
    let all = app.get("/v1/refunds", &reseller.token).await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 2);
    let for_b = app
        .get(&format!("/v1/refunds?order_id={b}"), &reseller.token)
        .await;
    assert_eq!(for_b.body["data"][0]["status"], "pending_review");
    let canceled = app
        .get(
            "/v1/refunds?reason=provider_canceled&status=succeeded",
            &reseller.token,
        )
        .await;
    assert_eq!(canceled.body["data"][0]["order_id"], a);
    assert_eq!(canceled.body["data"][0]["amount"], "1");
    let page = app.get("/v1/refunds?limit=1", &reseller.token).await;
    assert_eq!(page.body["has_more"], true);
    app.get("/v1/refunds?status=approved", &reseller.token)
        .await
        .assert_problem(422, "invalid_query");
}
