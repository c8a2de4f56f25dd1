use serde_json::json;

use crate::helpers::spawn_app;

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
    let too_large = format!("{form}&comments={}", "a".repeat(20 * 1024));
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
