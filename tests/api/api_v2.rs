use serde_json::json;

use crate::helpers::{spawn_app, TestApp};

#[actix_rt::test]
async fn api_v2_speaks_the_panel_dialect() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "100.84292").await;
    let key = reseller.key.as_str();
    let service = app
        .create_service(json!({"name": "Followers", "category": "First Category", "type": "default", "rate": "0.9", "min": 50, "max": 10000, "refill": true, "cancel": true}))
        .await;

    let services = app.api_v2(&[("key", key), ("action", "services")]).await;
    assert_eq!(services.status, 200);
    assert_eq!(
        services.body,
        json!([{"service": service, "name": "Followers", "type": "Default", "category": "First Category",
                "rate": "0.9", "min": "50", "max": "10000", "dripfeed": false, "refill": true, "cancel": true}])
    );

    let balance = app.api_v2(&[("key", key), ("action", "balance")]).await;
    assert_eq!(balance.text, r#"{"balance":"100.84292","currency":"USD"}"#);

    let service_id = service.to_string();
    let add = app
        .api_v2(&[
            ("key", key),
            ("action", "add"),
            ("service", &service_id),
            ("link", "https://instagram.com/p/x"),
            ("quantity", "309"),
        ])
        .await;
    assert_eq!(add.status, 200);
    let order = add.body["order"].as_i64().expect("an integer order id");
    assert_eq!(add.text, format!(r#"{{"order":{order}}}"#));

    let status = app
        .api_v2(&[
            ("key", key),
            ("action", "status"),
            ("order", &order.to_string()),
        ])
        .await;
    // 0.9 per 1000 × 309 = 0.2781
    assert_eq!(
        status.text,
        r#"{"charge":"0.2781","start_count":"0","status":"Pending","remains":"309","currency":"USD"}"#
    );
    app.outcome(
        order,
        json!({"status": "partial", "remains": 157, "start_count": 3572}),
    )
    .await;
    let multi = app
        .api_v2(&[
            ("key", key),
            ("action", "status"),
            ("orders", &format!("{order},10,abc")),
        ])
        .await;
    assert_eq!(
        multi.body,
        json!({
            order.to_string(): {"charge": "0.2781", "start_count": "3572", "status": "Partial", "remains": "157", "currency": "USD"},
            "10": {"error": "Incorrect order ID"},
            "abc": {"error": "Incorrect order ID"}
        })
    );

    let refill = app
        .api_v2(&[
            ("key", key),
            ("action", "refill"),
            ("order", &order.to_string()),
        ])
        .await;
    let refill_id = refill.body["refill"]
        .as_str()
        .expect("refill id as a string")
        .to_string();
    let refill_status = app
        .api_v2(&[
            ("key", key),
            ("action", "refill_status"),
            ("refill", &refill_id),
        ])
        .await;
    assert_eq!(refill_status.text, r#"{"status":"Pending"}"#);

    let pending = app
        .api_v2(&[
            ("key", key),
            ("action", "add"),
            ("service", &service_id),
            ("link", "https://instagram.com/p/y"),
            ("quantity", "1000"),
        ])
        .await;
    let pending_id = pending.body["order"].as_i64().unwrap();
    let cancel = app
        .api_v2(&[
            ("key", key),
            ("action", "cancel"),
            ("orders", &format!("9,{pending_id},{order}")),
        ])
        .await;
    assert_eq!(
        cancel.body,
        json!([
            {"order": 9, "cancel": {"error": "Incorrect order ID"}},
            {"order": pending_id, "cancel": 1},
            {"order": order, "cancel": {"error": "only pending orders can be canceled; this one is partial"}}
        ])
    );
    assert!(
        cancel
            .text
            .starts_with(r#"[{"order":9,"cancel":{"error":"Incorrect order ID"}},"#),
        "{}",
        cancel.text
    );
    assert!(
        multi.text.starts_with(&format!(
            r#"{{"{order}":{{"charge":"0.2781","start_count":"3572","status":"Partial""#
        )),
        "{}",
        multi.text
    );
    // 100.84292 - 0.2781 + refund 0.2781×157/309 (0.1413) - 0.9 + 0.9 (canceled)
    let balance = app.api_v2(&[("key", key), ("action", "balance")]).await;
    assert_eq!(balance.body["balance"], "100.70612");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn api_v2_errors_are_dialect_errors_with_http_200() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "1").await;
    let key = reseller.key.as_str();
    let service = app.service("2").await.to_string();
    for (fields, error) in [
        (vec![("action", "balance")], "Invalid API key"),
        (
            vec![("key", "rk_nope"), ("action", "balance")],
            "Invalid API key",
        ),
        (
            vec![("key", key), ("action", "launch")],
            "Incorrect request",
        ),
        (
            vec![
                ("key", key),
                ("action", "add"),
                ("service", "999"),
                ("link", "https://x"),
                ("quantity", "100"),
            ],
            "Service ID does not exists",
        ),
        (
            vec![
                ("key", key),
                ("action", "add"),
                ("service", &service),
                ("link", "https://x"),
                ("quantity", "1000"),
            ],
            "Not enough funds on balance",
        ),
        (
            vec![
                ("key", key),
                ("action", "add"),
                ("service", &service),
                ("link", "https://x"),
                ("quantity", "5"),
            ],
            "Quantity must be between 10 and 100000 for this service",
        ),
        (
            vec![
                ("key", key),
                ("action", "add"),
                ("service", &service),
                ("link", ""),
                ("quantity", "100"),
            ],
            "Bad Link",
        ),
        (
            vec![
                ("key", key),
                ("action", "add"),
                ("service", &service),
                ("link", "https://x"),
                ("quantity", "ten"),
            ],
            "Incorrect quantity",
        ),
        (
            vec![("key", key), ("action", "status"), ("order", "77")],
            "Incorrect order ID",
        ),
        (
            vec![("key", key), ("action", "refill_status"), ("refill", "5")],
            "Refill not found",
        ),
    ] {
        let reply = app.api_v2(&fields).await;
        assert_eq!(reply.status, 200, "{fields:?}");
        assert_eq!(reply.body, json!({ "error": error }), "{fields:?}");
    }
    let order = app
        .api_v2(&[
            ("key", key),
            ("action", "add"),
            ("service", &service),
            ("link", "https://x"),
            ("quantity", "100"),
        ])
        .await;
    let order = order.body["order"].as_i64().unwrap().to_string();
    let refill = app
        .api_v2(&[("key", key), ("action", "refill"), ("order", &order)])
        .await;
    assert_eq!(
        refill.body,
        json!({"error": "Order not eligible for refill."})
    );
    assert_eq!(app.balance_micros(&reseller.token).await, 800_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn api_v2_takes_json_bodies_and_replays_an_idempotent_add() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let body = json!({"key": reseller.key, "action": "add", "service": service, "link": "https://x/1", "quantity": 1000, "idempotency_key": "tool-retry-1"});
    let first = app.post("/api/v2", "", body.clone()).await;
    let again = app.post("/api/v2", "", body).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body, again.body);
    assert_eq!(app.order_count(), 1);
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    let other = app
        .post("/api/v2", "", json!({"key": reseller.key, "action": "add", "service": service, "link": "https://x/2", "quantity": 1000, "idempotency_key": "tool-retry-1"}))
        .await;
    assert_eq!(
        other.body,
        json!({"error": "this Idempotency-Key was already used with a different request body"})
    );
    app.assert_books_balance();
}

/// A `multipart/form-data` body of text fields, as `requests`' `files=` or PHP's curl
/// with an array sends it.
fn multipart(fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "----client7MA4YWxkTrZu0gW";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

fn query(fields: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(fields).unwrap()
}

#[actix_rt::test]
async fn api_v2_accepts_every_shape_clients_send() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let key = reseller.key.as_str();
    let service = app
        .create_service(json!({"name": "Followers", "category": "C", "type": "default", "rate": "1", "min": 10, "max": 10000, "refill": true, "cancel": true}))
        .await
        .to_string();

    // GET with everything in the query string; placeholders in the optional fields.
    let add = query(&[
        ("key", key),
        ("action", "add"),
        ("service", &service),
        ("link", "https://x/1"),
        ("quantity", "100"),
        ("runs", ""),
        ("interval", "None"),
        ("comments", "undefined"),
    ]);
    let added = app
        .api_v2_raw("GET", &format!("/api/v2?{add}"), "", vec![])
        .await;
    assert_eq!(added.status, 200, "{}", added.text);
    let order = added.body["order"].as_i64().expect(&added.text);

    // The action word in any case, on the trailing-slash path.
    let balance = query(&[("key", key), ("action", "Balance")]);
    let balance = app
        .api_v2_raw("GET", &format!("/api/v2/?{balance}"), "", vec![])
        .await;
    assert_eq!(balance.text, r#"{"balance":"9.9","currency":"USD"}"#);

    let pending =
        r#"{"charge":"0.1","start_count":"0","status":"Pending","remains":"100","currency":"USD"}"#;
    let form = query(&[
        ("key", key),
        ("action", "status"),
        ("order", &order.to_string()),
    ]);
    let by_slash = app
        .api_v2_raw(
            "POST",
            "/api/v2/",
            "application/x-www-form-urlencoded",
            form.clone().into_bytes(),
        )
        .await;
    assert_eq!(by_slash.text, pending);
    // No content type at all, and text/plain: read as a form.
    for content_type in ["", "text/plain"] {
        let reply = app
            .api_v2_raw("POST", "/api/v2", content_type, form.clone().into_bytes())
            .await;
        assert_eq!(reply.text, pending, "{content_type:?}");
    }
    // The key in the query string of a POST, the rest in the body.
    let split = app
        .api_v2_raw(
            "POST",
            &format!("/api/v2?{}", query(&[("key", key)])),
            "application/x-www-form-urlencoded",
            query(&[("action", "status"), ("order", &order.to_string())]).into_bytes(),
        )
        .await;
    assert_eq!(split.text, pending);
    let json_body = json!({"key": key, "action": "status", "order": order}).to_string();
    let by_json = app
        .api_v2_raw(
            "POST",
            "/api/v2",
            "application/json",
            json_body.into_bytes(),
        )
        .await;
    assert_eq!(by_json.text, pending);
    let (content_type, body) = multipart(&[
        ("key", key),
        ("action", "status"),
        ("order", &order.to_string()),
    ]);
    let by_multipart = app.api_v2_raw("POST", "/api/v2", &content_type, body).await;
    assert_eq!(by_multipart.text, pending);
    // `order=` with a comma list is a batch status.
    let listed = app
        .api_v2(&[
            ("key", key),
            ("action", "status"),
            ("order", &format!("{order},77")),
        ])
        .await;
    assert_eq!(listed.body["77"], json!({"error": "Incorrect order ID"}));
    assert_eq!(listed.body[order.to_string()]["status"], "Pending");

    app.outcome(
        order,
        json!({"status": "partial", "remains": 40, "start_count": 5}),
    )
    .await;
    // No action: `order` is a refill, `refill` a refill status, `refills` a batch one.
    let refill = app
        .api_v2(&[("key", key), ("order", &order.to_string())])
        .await;
    let refill_id = refill.body["refill"]
        .as_str()
        .expect(&refill.text)
        .to_string();
    let one = app.api_v2(&[("key", key), ("refill", &refill_id)]).await;
    assert_eq!(one.text, r#"{"status":"Pending"}"#);
    let expected = format!(
        r#"[{{"refill":{refill_id},"status":"Pending"}},{{"refill":999999,"status":{{"error":"Refill not found"}}}}]"#
    );
    let list = format!("{refill_id},999999");
    let batch = app
        .api_v2(&[
            ("key", key),
            ("action", "refill_status"),
            ("refills", &list),
        ])
        .await;
    assert_eq!(batch.text, expected);
    let inferred = app.api_v2(&[("key", key), ("refills", &list)]).await;
    assert_eq!(inferred.text, expected);
    // No action, `orders`: a batch refill, one item per order.
    let batch_refill = app.api_v2(&[("key", key), ("orders", "424242")]).await;
    assert_eq!(
        batch_refill.body,
        json!([{"order": 424242, "refill": {"error": "Incorrect order ID"}}])
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn api_v2_refuses_in_the_dialect_whatever_the_shape() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "1").await;
    let key = reseller.key.as_str();
    let form = query(&[("key", key), ("action", "balance")]);
    let (multipart_type, _) = multipart(&[]);
    let too_large = format!("{form}&comments={}", "a".repeat(1_100_000));
    let cases: Vec<(&str, String, &str, Vec<u8>, &str)> = vec![
        (
            "PUT",
            format!("/api/v2?{form}"),
            "",
            vec![],
            "Method PUT is not supported, use GET or POST",
        ),
        (
            "DELETE",
            "/api/v2/".into(),
            "",
            vec![],
            "Method DELETE is not supported, use GET or POST",
        ),
        (
            "PATCH",
            "/api/v2".into(),
            "application/x-www-form-urlencoded",
            form.clone().into_bytes(),
            "Method PATCH is not supported, use GET or POST",
        ),
        (
            "GET",
            format!("/api/v2/nope?{form}"),
            "",
            vec![],
            "Incorrect request",
        ),
        (
            "POST",
            "/api/v2/a/b".into(),
            "application/x-www-form-urlencoded",
            form.clone().into_bytes(),
            "Incorrect request",
        ),
        (
            "POST",
            "/api/v2".into(),
            "application/json",
            b"{\"key\":".to_vec(),
            "Incorrect request",
        ),
        (
            "POST",
            "/api/v2".into(),
            "multipart/form-data",
            form.clone().into_bytes(),
            "Incorrect request",
        ),
        (
            "POST",
            "/api/v2".into(),
            &multipart_type,
            b"--nothing here".to_vec(),
            "Incorrect request",
        ),
        (
            "POST",
            "/api/v2".into(),
            "application/x-www-form-urlencoded",
            too_large.into_bytes(),
            "Request body too large",
        ),
        ("GET", "/api/v2".into(), "", vec![], "Invalid API key"),
        (
            "GET",
            format!(
                "/api/v2?{}",
                query(&[("key", "None"), ("action", "balance")])
            ),
            "",
            vec![],
            "Invalid API key",
        ),
        (
            "GET",
            format!("/api/v2?{}", query(&[("key", key)])),
            "",
            vec![],
            "Incorrect request",
        ),
        (
            "GET",
            format!("/api/v2?{}", query(&[("key", key), ("refills", ",")])),
            "",
            vec![],
            "Refill not found",
        ),
    ];
    for (method, path, content_type, body, error) in cases {
        let reply = app.api_v2_raw(method, &path, content_type, body).await;
        assert_eq!(reply.status, 200, "{method} {path}: {}", reply.text);
        assert_eq!(reply.body, json!({ "error": error }), "{method} {path}");
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/json")
        );
        assert!(
            !reply.text.contains(key),
            "the key leaked into {}",
            reply.text
        );
    }
}

/// Records an operator outcome, asserting it applied.
async fn settle(app: &TestApp, order: i64, body: serde_json::Value) {
    let reply = app.outcome(order, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// What a client panel stores from `status`: `remains` by status, the same over `order=`
/// and `orders=`, and REST saying the same of completed and canceled orders.
#[actix_rt::test]
async fn status_remains_follow_the_order_state_not_a_stale_report() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let key = reseller.key.as_str();
    // 1 per 1000: each order of 1000 charges 1.
    let service = app.service("1").await;
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(app.order_id(&reseller.token, service, 1000).await);
    }
    let [completed, canceled, partial, pending, reported, unreported, over] = ids[..] else {
        unreachable!()
    };
    // A report in progress, then completion that says nothing of remains.
    settle(
        &app,
        completed,
        json!({"status": "in_progress", "remains": 400}),
    )
    .await;
    settle(&app, completed, json!({"status": "completed"})).await;
    settle(
        &app,
        canceled,
        json!({"status": "in_progress", "remains": 300}),
    )
    .await;
    settle(&app, canceled, json!({"status": "canceled"})).await;
    settle(&app, partial, json!({"status": "partial", "remains": 250})).await;
    // A provider's "remains":"0" on a pending order means not started.
    settle(&app, pending, json!({"status": "pending", "remains": 0})).await;
    settle(
        &app,
        reported,
        json!({"status": "in_progress", "remains": 400}),
    )
    .await;
    settle(&app, unreported, json!({"status": "processing"})).await;
    // Over-delivery: stored as reported, refunds nothing, answered as nothing left.
    settle(&app, over, json!({"status": "partial", "remains": -40})).await;

    let expected = [
        (completed, "Completed", "0"),
        (canceled, "Canceled", "1000"),
        (partial, "Partial", "250"),
        (pending, "Pending", "1000"),
        (reported, "In progress", "400"),
        (unreported, "Processing", "1000"),
        (over, "Partial", "0"),
    ];
    let mut multi = serde_json::Map::new();
    for (id, status, remains) in expected {
        let one = app
            .api_v2(&[
                ("key", key),
                ("action", "status"),
                ("order", &id.to_string()),
            ])
            .await;
        let text = format!(
            r#"{{"charge":"1","start_count":"0","status":"{status}","remains":"{remains}","currency":"USD"}}"#
        );
        assert_eq!(one.text, text, "order {id}");
        multi.insert(id.to_string(), serde_json::from_str(&text).unwrap());
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let batch = app
        .api_v2(&[("key", key), ("action", "status"), ("orders", &list)])
        .await;
    assert_eq!(batch.body, serde_json::Value::Object(multi));

    // REST: completed 0 and canceled the total; elsewhere what was reported, null if nothing.
    for (id, remains) in [
        (completed, json!(0)),
        (canceled, json!(1000)),
        (partial, json!(250)),
        (pending, json!(0)),
        (reported, json!(400)),
        (unreported, json!(null)),
        (over, json!(-40)),
    ] {
        assert_eq!(
            app.order_json(&reseller.token, id).await["remains"],
            remains,
            "order {id}"
        );
    }
    let page = app.get("/v1/orders?limit=100", &reseller.token).await;
    let listed = |id: i64| {
        page.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id)
            .unwrap()["remains"]
            .clone()
    };
    assert_eq!(listed(completed), 0);
    assert_eq!(listed(canceled), 1000);
    let status = app
        .get(
            &format!("/v1/orders/status?ids={completed},{canceled}"),
            &reseller.token,
        )
        .await;
    assert_eq!(status.body["data"][0]["order"]["remains"], 0);
    assert_eq!(status.body["data"][1]["order"]["remains"], 1000);

    // 10 - 7 charged + 1 (canceled) + 0.25 (partial 250 of 1000) + 0 (over-delivered).
    assert_eq!(app.balance_micros(&reseller.token).await, 4_250_000);
    app.assert_books_balance();
}

/// A drip-feed order's status counts all runs in `remains` and says the runs delivered,
/// which client panels refund a partial by.
#[actix_rt::test]
async fn drip_feed_status_counts_all_runs_and_says_the_runs_delivered() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let key = reseller.key.as_str();
    let drip = app
        .create_service(json!({"name": "Views drip", "category": "YT", "type": "drip_feed", "rate": "1", "min": 10, "max": 10000}))
        .await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        // 100 × 5 runs = 500 units at 1 per 1000: 0.5 each.
        let placed = app
            .post("/v1/orders", &reseller.token, json!({"service_id": drip, "link": "https://y/1", "quantity": 100, "runs": 5, "interval": 30}))
            .await;
        assert_eq!(placed.status, 201, "{}", placed.text);
        ids.push(placed.body["id"].as_i64().unwrap());
    }
    let [pending, running, partial, by_runs, completed, canceled] = ids[..] else {
        unreachable!()
    };
    // 201 undelivered: two runs whole, the third short by one unit.
    settle(
        &app,
        running,
        json!({"status": "in_progress", "remains": 201}),
    )
    .await;
    settle(&app, partial, json!({"status": "partial", "remains": 201})).await;
    settle(
        &app,
        by_runs,
        json!({"status": "partial", "runs_delivered": 3}),
    )
    .await;
    settle(
        &app,
        completed,
        json!({"status": "in_progress", "remains": 300}),
    )
    .await;
    settle(&app, completed, json!({"status": "completed"})).await;
    settle(&app, canceled, json!({"status": "canceled"})).await;

    let expected = [
        (pending, "Pending", "500", "0"),
        (running, "In progress", "201", "2"),
        (partial, "Partial", "201", "2"),
        (by_runs, "Partial", "200", "3"),
        (completed, "Completed", "0", "5"),
        (canceled, "Canceled", "500", "0"),
    ];
    let mut multi = serde_json::Map::new();
    for (id, status, remains, runs) in expected {
        let one = app
            .api_v2(&[
                ("key", key),
                ("action", "status"),
                ("order", &id.to_string()),
            ])
            .await;
        let text = format!(
            r#"{{"charge":"0.5","start_count":"0","status":"{status}","remains":"{remains}","runs":"{runs}","currency":"USD"}}"#
        );
        assert_eq!(one.text, text, "order {id}");
        multi.insert(id.to_string(), serde_json::from_str(&text).unwrap());
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let batch = app
        .api_v2(&[("key", key), ("action", "status"), ("orders", &list)])
        .await;
    assert_eq!(batch.body, serde_json::Value::Object(multi));
    assert_eq!(
        app.order_json(&reseller.token, completed).await["remains"],
        0
    );
    assert_eq!(
        app.order_json(&reseller.token, canceled).await["remains"],
        500
    );

    // 10 - 3 charged + 0.5 canceled + 0.201 (201 of 500) + 0.2 (2 runs of 5).
    assert_eq!(app.balance_micros(&reseller.token).await, 7_901_000);
    app.assert_books_balance();
}
