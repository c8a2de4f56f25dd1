use serde_json::json;

use crate::helpers::spawn_app;

#[actix_rt::test]
async fn every_bad_order_request_is_a_problem_and_changes_nothing() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let t = &reseller.token;

    let reply = app
        .post_raw(
            "/v1/orders",
            t,
            "application/json",
            b"{\"service_id\": 1,".to_vec(),
        )
        .await;
    reply.assert_problem(400, "malformed_json");

    let reply = app
        .post_raw("/v1/orders", t, "text/plain", b"service_id=1".to_vec())
        .await;
    reply.assert_problem(415, "unsupported_media_type");

    // Whitespace is not JSON; only a body that is entirely absent stands for `{}`.
    let reply = app
        .post_raw("/v1/orders", t, "application/json", b"\r\n".to_vec())
        .await;
    reply.assert_problem(400, "malformed_json");

    // An order's body may carry two full lists (`--max-order-body-bytes`, 1 MiB by
    // default); beyond it, and beyond the general limit elsewhere (16 KiB in the tests),
    // the body is refused unread.
    let huge = format!(
        r#"{{"service_id": {service}, "link": "{}", "quantity": 1000}}"#,
        "x".repeat(1_100_000)
    );
    let reply = app
        .post_raw("/v1/orders", t, "application/json", huge.into_bytes())
        .await;
    reply.assert_problem(413, "payload_too_large");
    let large = format!(
        r#"{{"service_id": {service}, "link": "{}", "quantity": 1000}}"#,
        "x".repeat(20_000)
    );
    let reply = app
        .post_raw(
            "/v1/orders",
            t,
            "application/json",
            large.clone().into_bytes(),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    let reply = app
        .post_raw(
            "/v1/orders/1/refunds",
            t,
            "application/json",
            large.into_bytes(),
        )
        .await;
    reply.assert_problem(413, "payload_too_large");

    let reply = app
        .post(
            "/v1/orders",
            t,
            json!({"service_id": service, "link": "https://x", "quantity": 1000, "coupon": "FREE"}),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.body["param"], "coupon");

    let reply = app
        .post(
            "/v1/orders",
            t,
            json!({"service_id": service, "quantity": 1000}),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.body["param"], "link");

    let reply = app
        .post(
            "/v1/orders",
            t,
            json!({"service_id": service, "link": "https://x", "quantity": "lots"}),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.body["param"], "quantity");

    let reply = app
        .post(
            "/v1/orders",
            t,
            json!({"service_id": service, "link": "https://x", "quantity": 1.5}),
        )
        .await;
    reply.assert_problem(422, "validation_failed");

    let reply = app.post("/v1/orders", t, json!([1, 2, 3])).await;
    reply.assert_problem(422, "validation_failed");

    // Every failing field at once.
    let reply = app
        .post("/v1/orders", t, json!({"service_id": service, "link": "has space", "quantity": 5, "interval": 10, "external_ref": ""}))
        .await;
    reply.assert_problem(422, "validation_failed");
    let params: Vec<_> = reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["param"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(params, vec!["link", "quantity", "runs", "external_ref"]);

    let reply = app
        .post_with(
            "/v1/orders",
            t,
            json!({"service_id": service, "link": "https://x", "quantity": 1000}),
            &[("Idempotency-Key", "")],
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.body["param"], "Idempotency-Key");

    assert_eq!(app.order_count(), 0);
    assert_eq!(app.balance_micros(t).await, 10_000_000);
    assert_eq!(app.ledger(t).await.len(), 1);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn money_must_be_a_decimal_string_that_fits_micro_units() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let path = format!("/v1/admin/accounts/{}/top-ups", reseller.id);
    let cases = [
        (json!(12.5), "validation_failed"),
        (json!("12.0000001"), "validation_failed"),
        (json!("-5"), "validation_failed"),
        (json!("0"), "validation_failed"),
        (json!("1e3"), "validation_failed"),
        (json!("abc"), "validation_failed"),
        (json!("99999999999999999999999"), "validation_failed"),
    ];
    for (amount, code) in cases {
        let reply = app
            .post(
                &path,
                &app.admin_token,
                json!({"amount": amount, "gateway": "g", "gateway_ref": "r"}),
            )
            .await;
        reply.assert_problem(422, code);
        assert_eq!(reply.body["param"], "amount", "{amount}");
    }
    assert_eq!(app.balance_micros(&reseller.token).await, 0);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn unknown_routes_bad_ids_and_bad_queries_are_problems() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let t = &reseller.token;
    app.get("/v1/nothing-here", t)
        .await
        .assert_problem(404, "not_found");
    app.get("/v1/orders/abc", t)
        .await
        .assert_problem(404, "not_found");
    app.get("/v1/orders/99999999999999999999999", t)
        .await
        .assert_problem(404, "not_found");
    let reply = app.get("/v1/orders?limit=500", t).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.body["param"], "limit");
    let reply = app.get("/v1/orders?status=shipped", t).await;
    reply.assert_problem(422, "invalid_query");
    assert_eq!(reply.body["param"], "status");
    let reply = app.get("/v1/orders?created_from=yesterday", t).await;
    reply.assert_problem(422, "invalid_query");
    assert_eq!(reply.body["param"], "created_from");
    let reply = app.get("/v1/orders?color=red", t).await;
    reply.assert_problem(422, "invalid_query");
    assert_eq!(reply.body["param"], "color");
}

#[actix_rt::test]
async fn every_response_carries_a_request_id_and_echoes_the_clients() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .insert_header(("X-Request-Id", "trace-abc-123"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("x-request-id").unwrap(),
        "trace-abc-123"
    );

    let reply = app.get("/v1/account", "bad").await;
    let id = reply.header("x-request-id").unwrap();
    assert_eq!(reply.body["request_id"], id.as_str());
    assert_eq!(app.get("/readyz", "").await.status, 200);
    let metrics = app.get("/metrics", "").await;
    assert!(
        metrics.text.contains("http_requests_total{status=\"401\"}"),
        "{}",
        metrics.text
    );
}

#[actix_rt::test]
async fn a_wrong_method_on_a_known_path_is_405_with_allow() {
    let app = spawn_app().await;
    let response = app
        .client
        .delete(app.url("/v1/orders/status"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers().get("allow").unwrap(), "GET, HEAD");
    let response = app.client.put(app.url("/v1/orders")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers().get("allow").unwrap(), "GET, HEAD, POST");
    app.get("/v1/nothing", "x")
        .await
        .assert_problem(404, "not_found");
}

/// Status, headers and the bytes of the body, as sent.
async fn raw(
    app: &crate::helpers::TestApp,
    method: actix_web::http::Method,
    path: &str,
    token: Option<&str>,
) -> (u16, actix_web::http::header::HeaderMap, Vec<u8>) {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = request.send().await.expect("request");
    let body = response.body().await.expect("body").to_vec();
    (response.status().as_u16(), response.headers().clone(), body)
}

#[actix_rt::test]
async fn head_answers_as_get_without_a_body_on_every_get_route() {
    use actix_web::http::Method;
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let token = reseller.token.as_str();
    for (path, token) in [
        ("/healthz", None),
        ("/openapi.json", None),
        ("/dashboard", None),
        ("/v1/account", Some(token)),
        ("/v1/services", Some(token)),
        ("/v1/orders?limit=1", Some(token)),
        // Auth runs as for GET: refused, and still no body.
        ("/v1/account", None),
        ("/v1/account", Some("not-a-token")),
        // A GET route's own 404 and 422.
        ("/v1/orders/999999", Some(token)),
        ("/v1/orders?limit=0", Some(token)),
    ] {
        let (get_status, get_headers, get_body) = raw(&app, Method::GET, path, token).await;
        let (status, headers, body) = raw(&app, Method::HEAD, path, token).await;
        assert_eq!(status, get_status, "HEAD {path}");
        assert!(
            body.is_empty(),
            "HEAD {path}: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(!get_body.is_empty(), "GET {path} has a body to leave out");
        assert_eq!(
            headers.get("content-type"),
            get_headers.get("content-type"),
            "HEAD {path}"
        );
        if let Some(length) = get_headers.get("content-length") {
            assert_eq!(headers.get("content-length"), Some(length), "HEAD {path}");
        }
    }
    let (status, headers, body) = raw(&app, Method::HEAD, "/v1/account", None).await;
    assert_eq!(status, 401);
    assert!(body.is_empty());
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/problem+json"
    );
    // HEAD is GET's: a route without GET still refuses it, naming what it takes.
    for (path, allow) in [
        ("/v1/auth/token", "POST"),
        ("/v1/orders/batch", "POST"),
        ("/v1/admin/alert-rules/service/1", "PUT"),
    ] {
        let (status, headers, body) = raw(&app, Method::HEAD, path, Some(token)).await;
        assert_eq!(status, 405, "HEAD {path}");
        assert_eq!(headers.get("allow").unwrap(), allow, "HEAD {path}");
        assert!(body.is_empty(), "HEAD {path}");
    }
    // Nothing was written by any of it.
    assert_eq!(app.balance_micros(token).await, 10_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_head_on_api_v2_never_places_an_order() {
    use actix_web::http::Method;
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let add = format!(
        "/api/v2?key={}&action=add&service={service}&link=https://x.example/p&quantity=1000",
        reseller.key
    );
    // The same request as a GET places an order: the dialect allows it.
    let (status, _, body) = raw(&app, Method::GET, &add, None).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("\"order\""));
    assert_eq!(app.order_count(), 1);
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    for path in [add.as_str(), "/api/v2/"] {
        let (status, _, body) = raw(&app, Method::HEAD, path, None).await;
        assert_eq!(status, 200, "HEAD {path}: refused in the dialect");
        assert!(body.is_empty(), "HEAD {path}");
    }
    assert_eq!(app.order_count(), 1, "a HEAD placed nothing");
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_whole_number_written_with_a_fraction_is_that_integer_and_a_fraction_is_refused() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let t = &reseller.token;
    // JSON Schema counts 1000.0 and 1e3 as the integer 1000; generated clients send them.
    let body = format!(r#"{{"service_id": {service}.0, "link": "https://x/1", "quantity": 1e3}}"#);
    let reply = app
        .post_raw("/v1/orders", t, "application/json", body.into_bytes())
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["quantity"], 1000);
    assert_eq!(reply.body["charge"], "1");

    let body = format!(r#"{{"service_id": {service}, "link": "https://x/2", "quantity": 1000.5}}"#);
    let reply = app
        .post_raw("/v1/orders", t, "application/json", body.into_bytes())
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.body["param"], "quantity");
    assert_eq!(app.order_count(), 1);
    assert_eq!(app.balance_micros(t).await, 9_000_000);
    app.assert_books_balance();
}

/// A body that names a field twice is refused, naming it, and places nothing: a proxy in
/// front of us may read the first value where serde would read the last.
#[actix_rt::test]
async fn a_field_sent_twice_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let t = &reseller.token;
    let body = format!(
        r#"{{"service_id":{service},"link":"https://example.com/p/1","quantity":100,"quantity":100000}}"#
    );
    let reply = app
        .post_raw("/v1/orders", t, "application/json", body.into_bytes())
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.body["param"], "quantity", "{}", reply.text);
    assert!(reply.text.contains("more than once"), "{}", reply.text);
    // Nested objects too, and the same key in two objects is fine.
    let reply = app
        .post_raw(
            "/v1/orders/batch",
            t,
            "application/json",
            format!(
                r#"{{"orders":[{{"service_id":{service},"link":"https://example.com/p/1","quantity":100}},{{"service_id":{service},"link":"https://example.com/p/2","quantity":100,"link":"https://example.com/p/3"}}]}}"#
            )
            .into_bytes(),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.body["param"], "link", "{}", reply.text);
    // Nothing was placed: no order, not a micro-unit debited.
    let orders = app.get("/v1/orders", t).await;
    assert_eq!(orders.body["data"], json!([]), "{}", orders.text);
    assert_eq!(app.balance_micros(t).await, 10_000_000);
    // Malformed JSON is still malformed.
    app.post_raw("/v1/orders", t, "application/json", b"{\"a\":".to_vec())
        .await
        .assert_problem(400, "malformed_json");
    app.assert_books_balance();
}
