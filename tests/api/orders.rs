use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{micros, spawn_app};

#[actix_rt::test]
async fn placing_an_order_charges_rate_per_thousand_and_writes_the_ledger() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("0.9").await;

    let reply = app.order(&reseller.token, service, 1234).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let order = &reply.body;
    // 0.9 per 1000 × 1234 = 1.1106 exactly.
    assert_eq!(order["charge"], "1.1106");
    assert_eq!(order["status"], "pending");
    assert_eq!(order["refunded"], "0");
    assert_eq!(order["refundable"], "1.1106");
    assert_eq!(order["quantity"], 1234);
    for field in ["runs", "interval", "start_count", "remains", "external_ref"] {
        assert!(order[field].is_null(), "{field} present and null");
    }
    let id = order["id"].as_i64().unwrap();
    assert_eq!(reply.header("location"), Some(format!("/v1/orders/{id}")));

    assert_eq!(app.balance_micros(&reseller.token).await, 8_889_400);
    let ledger = app.ledger(&reseller.token).await;
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[0]["kind"], "order_charge");
    assert_eq!(micros(&ledger[0]["amount"]), -1_110_600);
    assert_eq!(micros(&ledger[0]["balance_after"]), 8_889_400);
    assert_eq!(ledger[0]["order_id"], id);
    assert_eq!(ledger[1]["kind"], "top_up");
    assert_eq!(micros(&ledger[1]["amount"]), 10_000_000);

    let read = app.get(&format!("/v1/orders/{id}"), &reseller.token).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, reply.body);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn charges_round_half_up_to_the_micro_unit() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "1").await;
    // 0.0015 per 1000: 10 units cost 0.000015 exactly; 11 units 0.0000165 -> 0.000017.
    let service = app.service("0.0015").await;
    let ten = app.order(&reseller.token, service, 10).await;
    assert_eq!(ten.body["charge"], "0.000015");
    let eleven = app.order(&reseller.token, service, 11).await;
    assert_eq!(eleven.body["charge"], "0.000017");
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        1_000_000 - 15 - 17
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn drip_feed_and_custom_comments_are_priced_by_what_they_deliver() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let drip = app
        .create_service(json!({"name": "Views drip", "category": "YT", "type": "drip_feed", "rate": "2", "min": 100, "max": 10000}))
        .await;
    let reply = app
        .post("/v1/orders", &reseller.token, json!({"service_id": drip, "link": "https://y/1", "quantity": 500, "runs": 4, "interval": 30}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    // 2 per 1000 × 500 × 4 runs = 4.
    assert_eq!(reply.body["charge"], "4");
    assert_eq!(reply.body["runs"], 4);
    assert_eq!(reply.body["interval"], 30);

    let comments = app
        .create_service(json!({"name": "Comments", "category": "IG", "type": "custom_comments", "rate": "10", "min": 1, "max": 100}))
        .await;
    let reply = app
        .post("/v1/orders", &reseller.token, json!({"service_id": comments, "link": "https://i/1", "comments": "great\nlove it\nwow"}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["quantity"], 3);
    assert_eq!(reply.body["charge"], "0.03");
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        100_000_000 - 4_000_000 - 30_000
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn concurrent_orders_never_overdraw_the_balance() {
    let app = spawn_app().await;
    // 1 per 1000, 1000 units: each order costs exactly 1; the balance covers 7 of 20.
    let reseller = app.funded_reseller("Acme", "7").await;
    let service = app.service("1").await;
    let replies = join_all((0..20).map(|_| app.order(&reseller.token, service, 1000))).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    let refused: Vec<_> = replies.iter().filter(|r| r.status != 201).collect();
    assert_eq!(created, 7);
    for reply in &refused {
        reply.assert_problem(402, "insufficient_funds");
    }
    assert_eq!(app.balance_micros(&reseller.token).await, 0);
    assert_eq!(app.order_count(), 7);
    let ledger = app.ledger(&reseller.token).await;
    assert_eq!(
        ledger
            .iter()
            .filter(|e| e["kind"] == "order_charge")
            .count(),
        7
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn an_idempotency_key_replays_the_first_response() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let body = json!({"service_id": service, "link": "https://x/1", "quantity": 1000});
    let key = [("Idempotency-Key", "order-42")];
    let first = app
        .post_with("/v1/orders", &reseller.token, body.clone(), &key)
        .await;
    assert_eq!(first.status, 201);
    // Same body with keys in another order is the same request.
    let reordered = json!({"quantity": 1000, "link": "https://x/1", "service_id": service});
    let again = app
        .post_with("/v1/orders", &reseller.token, reordered, &key)
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));

    let other = json!({"service_id": service, "link": "https://x/2", "quantity": 1000});
    let reply = app
        .post_with("/v1/orders", &reseller.token, other, &key)
        .await;
    reply.assert_problem(422, "idempotency_key_reused");

    assert_eq!(app.order_count(), 1);
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn concurrent_requests_with_one_idempotency_key_create_one_order() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let service = app.service("1").await;
    let body = json!({"service_id": service, "link": "https://x/1", "quantity": 1000});
    let key = [("Idempotency-Key", "same-key")];
    let replies =
        join_all((0..12).map(|_| app.post_with("/v1/orders", &reseller.token, body.clone(), &key)))
            .await;
    let mut order_ids = std::collections::HashSet::new();
    for reply in &replies {
        match reply.status.as_u16() {
            201 => {
                order_ids.insert(reply.body["id"].as_i64().unwrap());
            }
            409 => reply.assert_problem(409, "idempotency_key_in_flight"),
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    assert_eq!(order_ids.len(), 1, "every success names the same order");
    assert_eq!(app.order_count(), 1);
    assert_eq!(app.balance_micros(&reseller.token).await, 99_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_failed_request_leaves_its_idempotency_key_free_for_a_retry() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let service = app.service("1").await;
    let body = json!({"service_id": service, "link": "https://x/1", "quantity": 1000});
    let key = [("Idempotency-Key", "retry-me")];
    app.post_with("/v1/orders", &reseller.token, body.clone(), &key)
        .await
        .assert_problem(402, "insufficient_funds");
    app.top_up(reseller.id, "1").await;
    let reply = app
        .post_with("/v1/orders", &reseller.token, body, &key)
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(app.balance_micros(&reseller.token).await, 0);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_reseller_cannot_see_another_resellers_orders() {
    let app = spawn_app().await;
    let alice = app.funded_reseller("Alice", "10").await;
    let bob = app.funded_reseller("Bob", "10").await;
    let service = app.service("1").await;
    let order = app.order(&alice.token, service, 1000).await.body["id"]
        .as_i64()
        .unwrap();

    app.get(&format!("/v1/orders/{order}"), &bob.token)
        .await
        .assert_problem(404, "not_found");
    let list = app.get("/v1/orders", &bob.token).await;
    assert_eq!(list.body["data"], json!([]));
    let batch = app
        .get(&format!("/v1/orders/status?ids={order}"), &bob.token)
        .await;
    assert_eq!(batch.body["data"][0]["error"]["code"], "not_found");
    assert!(batch.body["data"][0]["order"].is_null());
    let ledger = app.ledger(&bob.token).await;
    assert_eq!(ledger.len(), 1, "only Bob's own top-up");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn orders_list_filters_and_pages_with_a_cursor() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let likes = app.service("1").await;
    let views = app.service("2").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let service = if i % 2 == 0 { likes } else { views };
        ids.push(
            app.order(&reseller.token, service, 1000).await.body["id"]
                .as_i64()
                .unwrap(),
        );
    }

    let page1 = app.get("/v1/orders?limit=2", &reseller.token).await;
    assert_eq!(page1.status, 200);
    let got: Vec<i64> = page1.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![ids[4], ids[3]]);
    assert_eq!(page1.body["has_more"], true);
    assert_eq!(page1.body["next_cursor"], ids[3]);
    let link = page1.header("link").unwrap();
    assert_eq!(
        link,
        format!(
            "</v1/orders?limit=2&starting_after={}>; rel=\"next\"",
            ids[3]
        )
    );

    let page2 = app
        .get(
            &format!("/v1/orders?limit=2&starting_after={}", ids[3]),
            &reseller.token,
        )
        .await;
    let got: Vec<i64> = page2.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![ids[2], ids[1]]);
    let page3 = app
        .get(
            &format!("/v1/orders?limit=2&starting_after={}", ids[1]),
            &reseller.token,
        )
        .await;
    assert_eq!(page3.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(page3.body["has_more"], false);
    assert!(page3.body["next_cursor"].is_null());
    assert!(page3.header("link").is_none());

    let filtered = app
        .get(&format!("/v1/orders?service_id={views}"), &reseller.token)
        .await;
    assert_eq!(filtered.body["data"].as_array().unwrap().len(), 2);
    let pending = app.get("/v1/orders?status=pending", &reseller.token).await;
    assert_eq!(pending.body["data"].as_array().unwrap().len(), 5);
    let none = app
        .get("/v1/orders?status=completed", &reseller.token)
        .await;
    assert_eq!(none.body["data"], json!([]));
    let future = app
        .get(
            "/v1/orders?created_from=2999-01-01T00:00:00Z",
            &reseller.token,
        )
        .await;
    assert_eq!(future.body["data"], json!([]));
    let past = app
        .get(
            "/v1/orders?created_to=2999-01-01T00:00:00Z&created_from=2000-01-01T00:00:00Z",
            &reseller.token,
        )
        .await;
    assert_eq!(past.body["data"].as_array().unwrap().len(), 5);
}

#[actix_rt::test]
async fn batch_status_answers_each_id_in_the_order_asked() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let a = app.order(&reseller.token, service, 1000).await.body["id"]
        .as_i64()
        .unwrap();
    let b = app.order(&reseller.token, service, 1000).await.body["id"]
        .as_i64()
        .unwrap();
    let reply = app
        .get(
            &format!("/v1/orders/status?ids={b},999999,{a},{b}"),
            &reseller.token,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let data = reply.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3, "duplicates collapse");
    assert_eq!(data[0]["id"], b);
    assert_eq!(data[0]["order"]["charge"], "1");
    assert_eq!(data[1]["id"], 999999);
    assert_eq!(data[1]["error"]["code"], "not_found");
    assert_eq!(data[2]["order"]["id"], a);

    let too_many = (1..=101)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let reply = app
        .get(
            &format!("/v1/orders/status?ids={too_many}"),
            &reseller.token,
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.body["param"], "ids");
    app.get("/v1/orders/status?ids=1,abc", &reseller.token)
        .await
        .assert_problem(422, "validation_failed");
    app.get("/v1/orders/status", &reseller.token)
        .await
        .assert_problem(422, "invalid_query");
}

#[actix_rt::test]
async fn a_suspended_account_cannot_order_until_reactivated() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let suspended = app
        .post(
            &format!("/v1/admin/accounts/{}/suspend", reseller.id),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(suspended.status, 200);
    assert_eq!(suspended.body["status"], "suspended");
    app.order(&reseller.token, service, 1000)
        .await
        .assert_problem(403, "account_suspended");
    assert_eq!(app.balance_micros(&reseller.token).await, 10_000_000);
    assert_eq!(app.order_count(), 0);
    // It can still read.
    assert_eq!(app.get("/v1/orders", &reseller.token).await.status, 200);

    app.post(
        &format!("/v1/admin/accounts/{}/reactivate", reseller.id),
        &app.admin_token,
        json!({}),
    )
    .await;
    assert_eq!(app.order(&reseller.token, service, 1000).await.status, 201);
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn an_unknown_service_takes_no_orders() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let reply = app.order(&reseller.token, 424242, 1000).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.body["param"], "service_id");
    assert_eq!(app.balance_micros(&reseller.token).await, 10_000_000);
}

#[actix_rt::test]
async fn services_are_created_edited_and_listed() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let id = app.service("0.9").await;
    let patched = app
        .patch(
            &format!("/v1/admin/services/{id}"),
            &app.admin_token,
            json!({"rate": "1.25", "max": 500}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["rate"], "1.25");
    assert_eq!(patched.body["max"], 500);
    assert_eq!(patched.body["min"], 10);
    let bad = app
        .patch(
            &format!("/v1/admin/services/{id}"),
            &app.admin_token,
            json!({"min": 1000}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    assert_eq!(bad.body["param"], "max");
    app.patch(
        "/v1/admin/services/999",
        &app.admin_token,
        json!({"rate": "1"}),
    )
    .await
    .assert_problem(404, "not_found");

    let list = app.get("/v1/services", &reseller.token).await;
    assert_eq!(list.status, 200);
    let service = &list.body["data"][0];
    for field in [
        "id", "name", "category", "type", "rate", "min", "max", "refill", "cancel", "dripfeed",
        "status",
    ] {
        assert!(service.get(field).is_some(), "catalog field {field}");
    }
    assert_eq!(service["rate"], "1.25");
    assert_eq!(service["type"], "default");
}

#[actix_rt::test]
async fn an_abandoned_idempotency_claim_is_taken_over_once() {
    use diesel::prelude::*;
    use reseller_api::db::schema::idempotency_keys;
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let body = json!({"service_id": service, "link": "https://x/1", "quantity": 1000});
    // A request that claimed the key two minutes ago and died before finishing.
    {
        let mut conn = app.pool.get().unwrap();
        diesel::insert_into(idempotency_keys::table)
            .values((
                idempotency_keys::account_id.eq(reseller.id),
                idempotency_keys::scope.eq("create_order"),
                idempotency_keys::idem_key.eq("dead-claim"),
                idempotency_keys::request_hash
                    .eq(reseller_api::application::idempotency::request_hash(&body)),
                idempotency_keys::status.eq("in_flight"),
                idempotency_keys::created_at
                    .eq(reseller_api::db::now() - chrono::Duration::minutes(2)),
            ))
            .execute(&mut *conn)
            .unwrap();
    }
    let key = [("Idempotency-Key", "dead-claim")];
    let other = json!({"service_id": service, "link": "https://x/2", "quantity": 1000});
    app.post_with("/v1/orders", &reseller.token, other, &key)
        .await
        .assert_problem(422, "idempotency_key_reused");
    let replies =
        join_all((0..6).map(|_| app.post_with("/v1/orders", &reseller.token, body.clone(), &key)))
            .await;
    let ids: std::collections::HashSet<i64> = replies
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| r.body["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "{:?}",
        replies.iter().map(|r| r.text.clone()).collect::<Vec<_>>()
    );
    for reply in replies.iter().filter(|r| r.status != 201) {
        reply.assert_problem(409, "idempotency_key_in_flight");
    }
    assert_eq!(app.order_count(), 1);
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn an_idempotency_key_past_its_lifetime_starts_a_new_request() {
    use diesel::prelude::*;
    use reseller_api::db::schema::idempotency_keys;
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let body = json!({"service_id": service, "link": "https://x/1", "quantity": 1000});
    let key = [("Idempotency-Key", "order-1")];
    let first = app
        .post_with("/v1/orders", &reseller.token, body.clone(), &key)
        .await;
    assert_eq!(first.status, 201);
    // A day and a minute later (the default lifetime is 24 hours), before retention ran.
    {
        let mut conn = app.pool.get().unwrap();
        diesel::update(idempotency_keys::table)
            .set(
                idempotency_keys::created_at
                    .eq(reseller_api::db::now() - chrono::Duration::minutes(24 * 60 + 1)),
            )
            .execute(&mut *conn)
            .unwrap();
    }
    let again = app
        .post_with("/v1/orders", &reseller.token, body.clone(), &key)
        .await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), None);
    assert_ne!(
        again.body["id"], first.body["id"],
        "a new order, not a replay"
    );
    // And from now on the key replays the new request's response.
    let third = app
        .post_with("/v1/orders", &reseller.token, body, &key)
        .await;
    assert_eq!(third.body, again.body);
    assert_eq!(third.header("idempotent-replayed").as_deref(), Some("true"));

    assert_eq!(app.order_count(), 2);
    assert_eq!(app.balance_micros(&reseller.token).await, 8_000_000);
    let charges = app
        .ledger(&reseller.token)
        .await
        .iter()
        .filter(|e| e["kind"] == "order_charge")
        .count();
    assert_eq!(charges, 2);
    app.assert_books_balance();
}

/// A response stored before this version (its bytes as an earlier renderer wrote them:
/// another key order, other spacing) is replayed byte for byte, with its status.
#[actix_rt::test]
async fn a_response_stored_by_an_earlier_version_replays_byte_for_byte() {
    use diesel::prelude::*;
    use reseller_api::application::idempotency::request_hash;
    use reseller_api::db::schema::idempotency_keys;
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let body = json!({"service_id": service, "link": "https://x/1", "quantity": 1000});
    let batch = json!({"orders": [body.clone()]});
    let stored_order = "{ \"status\" : \"pending\",\n  \"id\" : 4242, \"charge\":\"1\" }";
    let stored_batch = "{\"results\": [ {\"order\": {\"id\": 4242}} ]}";
    {
        let mut conn = app.pool.get().unwrap();
        for (scope, raw, status, stored) in [
            ("create_order", &body, 201, stored_order),
            ("create_order_batch", &batch, 200, stored_batch),
        ] {
            diesel::insert_into(idempotency_keys::table)
                .values((
                    idempotency_keys::account_id.eq(reseller.id),
                    idempotency_keys::scope.eq(scope),
                    idempotency_keys::idem_key.eq("from-before"),
                    idempotency_keys::request_hash.eq(request_hash(raw)),
                    idempotency_keys::status.eq("done"),
                    idempotency_keys::response_status.eq(status),
                    idempotency_keys::response_body.eq(stored),
                    idempotency_keys::created_at.eq(reseller_api::db::now()),
                ))
                .execute(&mut *conn)
                .unwrap();
        }
    }
    let key = [("Idempotency-Key", "from-before")];
    let order = app
        .post_with("/v1/orders", &reseller.token, body, &key)
        .await;
    assert_eq!(order.status, 201);
    assert_eq!(order.text, stored_order);
    assert_eq!(order.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(order.header("location").as_deref(), Some("/v1/orders/4242"));

    let batch = app
        .post_with("/v1/orders/batch", &reseller.token, batch, &key)
        .await;
    assert_eq!(batch.status, 200);
    assert_eq!(batch.text, stored_batch);
    assert_eq!(batch.header("idempotent-replayed").as_deref(), Some("true"));

    // Nothing was placed again.
    assert_eq!(app.order_count(), 0);
    assert_eq!(app.balance_micros(&reseller.token).await, 10_000_000);
}

/// The same for an API v2 `add` (answered 200 in the dialect) and a dispute left for review
/// (202): each replays the bytes and the status it was stored with.
#[actix_rt::test]
async fn an_add_and_a_dispute_stored_by_an_earlier_version_replay_byte_for_byte() {
    use diesel::prelude::*;
    use reseller_api::application::idempotency::request_hash;
    use reseller_api::db::schema::idempotency_keys;
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let placed = app.order(&reseller.token, service, 1000).await;
    assert_eq!(placed.status, 201);
    let order = placed.body["id"].as_i64().unwrap();
    // The fingerprint API v2 gives an `add`: the order's fields, not the form.
    let add = format!(
        "{}|{}|{:?}|{:?}|{:?}|{:?}",
        service,
        "https://x/1",
        Some(1000),
        None::<i64>,
        None::<i64>,
        None::<String>
    );
    let dispute = json!({"reason": "not_delivered"});
    let stored_add = "{\"order\": 777}";
    let stored_dispute = "{ \"status\":\"pending_review\" , \"id\": 31 }";
    let dispute_scope = format!("create_dispute:{order}");
    {
        let mut conn = app.pool.get().unwrap();
        for (scope, hash, status, stored) in [
            (
                "api_v2_add",
                request_hash(&serde_json::Value::String(add)),
                200,
                stored_add,
            ),
            (
                dispute_scope.as_str(),
                request_hash(&dispute),
                202,
                stored_dispute,
            ),
        ] {
            diesel::insert_into(idempotency_keys::table)
                .values((
                    idempotency_keys::account_id.eq(reseller.id),
                    idempotency_keys::scope.eq(scope),
                    idempotency_keys::idem_key.eq("from-before"),
                    idempotency_keys::request_hash.eq(hash),
                    idempotency_keys::status.eq("done"),
                    idempotency_keys::response_status.eq(status),
                    idempotency_keys::response_body.eq(stored),
                    idempotency_keys::created_at.eq(reseller_api::db::now()),
                ))
                .execute(&mut *conn)
                .unwrap();
        }
    }
    let added = app
        .api_v2(&[
            ("key", reseller.key.as_str()),
            ("action", "add"),
            ("service", &service.to_string()),
            ("link", "https://x/1"),
            ("quantity", "1000"),
            ("idempotency_key", "from-before"),
        ])
        .await;
    assert_eq!(added.status, 200);
    assert_eq!(added.text, stored_add);

    let disputed = app
        .post_with(
            &format!("/v1/orders/{order}/refunds"),
            &reseller.token,
            dispute,
            &[("Idempotency-Key", "from-before")],
        )
        .await;
    assert_eq!(disputed.status, 202);
    assert_eq!(disputed.text, stored_dispute);
    assert_eq!(
        disputed.header("idempotent-replayed").as_deref(),
        Some("true")
    );

    // Nothing was placed or filed again.
    assert_eq!(app.order_count(), 1);
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
}
