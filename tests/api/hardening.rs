//! Hardening found by attacking the running server (what one tenant must not be able to do
//! to the panel or to another tenant).

use serde_json::json;

use crate::helpers::{micros, spawn_app, spawn_app_with, StandIn};

/// A service made before zero-charge services were refused: its rate is set in the
/// database, as an older version let it be.
fn set_rate_micros(app: &crate::helpers::TestApp, service: i64, rate_micros: i64) {
    use diesel::prelude::*;
    use reseller_api::db::schema::services;
    let mut conn = app.pool.get().unwrap();
    diesel::update(services::table.find(service))
        .set(services::rate_micros.eq(rate_micros))
        .execute(&mut *conn)
        .unwrap();
}

#[actix_rt::test]
async fn an_order_whose_charge_rounds_to_zero_is_refused_unless_the_service_is_free() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let t = &reseller.token;

    // A service whose smallest order would cost nothing is refused when it is made…
    let tiny = json!({"name": "Views", "category": "YouTube", "type": "default",
        "rate": "0.000001", "min": 10, "max": 100000, "refill": false, "cancel": false});
    let refused = app
        .post("/v1/admin/services", &app.admin_token, tiny.clone())
        .await;
    refused.assert_problem(422, "validation_failed");
    assert_eq!(refused.body["param"], "min", "{}", refused.text);
    assert!(refused.text.contains("500"), "{}", refused.text);
    // …and when it is changed to that.
    let service = app.service("1").await;
    app.patch(
        &format!("/v1/admin/services/{service}"),
        &app.admin_token,
        json!({"rate": "0.000001"}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // One made before the upgrade refuses every order that would cost nothing.
    set_rate_micros(&app, service, 1);
    let unpriced = {
        let mut conn = app.pool.get().unwrap();
        reseller_api::application::services::priced_below_a_micro_unit(&mut conn).unwrap()
    };
    assert_eq!(
        unpriced.iter().map(|s| s.id.0).collect::<Vec<_>>(),
        vec![service]
    );
    let free_ride = app.order(t, service, 10).await;
    free_ride.assert_problem(422, "charge_too_small");
    assert_eq!(free_ride.body["param"], "quantity", "{}", free_ride.text);
    assert!(free_ride.text.contains("500"), "{}", free_ride.text);
    let v2 = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "add"),
            ("service", &service.to_string()),
            ("link", "https://example.com/p/1"),
            ("quantity", "10"),
        ])
        .await;
    assert_eq!(v2.status, 200);
    assert!(
        v2.body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Quantity too small")),
        "{}",
        v2.text
    );
    assert_eq!(app.order_count(), 0);
    assert_eq!(app.balance_micros(t).await, 10_000_000);
    // The least quantity that costs something is taken, at one micro-unit.
    let placed = app.order(t, service, 500).await;
    assert_eq!(placed.status, 201, "{}", placed.text);
    assert_eq!(placed.body["charge"], "0.000001");
    assert_eq!(app.balance_micros(t).await, 9_999_999);

    // Free is an operator's choice: a rate of 0 takes orders that cost nothing.
    let free = app
        .create_service(
            json!({"name": "Free trial", "category": "YouTube", "type": "default",
            "rate": "0", "min": 10, "max": 100, "refill": false, "cancel": false}),
        )
        .await;
    let order = app.order(t, free, 10).await;
    assert_eq!(order.status, 201, "{}", order.text);
    assert_eq!(micros(&order.body["charge"]), 0);
    assert_eq!(app.balance_micros(t).await, 9_999_999);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_synced_service_whose_smallest_order_costs_nothing_is_skipped_and_reported() {
    let (upstream, panel) = StandIn::panel().await;
    panel.lock().unwrap().services = json!([
        {"service": 1, "name": "Views", "type": "Default", "category": "YouTube",
         "rate": "0.0001", "min": "100", "max": "10000"},
        {"service": 2, "name": "Cheap views", "type": "Default", "category": "YouTube",
         "rate": "0.0001", "min": "1", "max": "10000"},
    ]);
    let app = spawn_app_with(|_| {}).await;
    let provider = app
        .post(
            "/v1/admin/providers",
            &app.admin_token,
            json!({"allow_private_network": true, "name": "Upstream", "url": upstream.url, "key": "k", "markup_percent": "0"}),
        )
        .await;
    assert_eq!(provider.status, 201, "{}", provider.text);
    let path = format!("/v1/admin/providers/{}/sync-services", provider.body["id"]);
    let synced = app.post(&path, &app.admin_token, json!({})).await;
    assert_eq!(synced.status, 200, "{}", synced.text);
    // 100 × 0.0001 / 1000 = 0.00001: costs something. 1 × 0.0001 / 1000 rounds to 0.
    assert_eq!(synced.body["created"].as_array().unwrap().len(), 1);
    assert_eq!(synced.body["created"][0]["provider_service_id"], "1");
    assert_eq!(synced.body["skipped"][0]["provider_service_id"], "2");
    let reason = synced.body["skipped"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("min ") && reason.contains("5"),
        "{reason}"
    );
}

#[actix_rt::test]
async fn resellers_never_see_where_a_service_is_delivered_from() {
    let (upstream, _panel) = StandIn::panel().await;
    let app = spawn_app().await;
    let provider = app
        .post(
            "/v1/admin/providers",
            &app.admin_token,
            json!({"allow_private_network": true, "name": "Upstream", "url": upstream.url, "key": "k"}),
        )
        .await;
    assert_eq!(provider.status, 201, "{}", provider.text);
    let provider_id = provider.body["id"].as_i64().unwrap();
    let routed = app
        .post(
            "/v1/admin/services",
            &app.admin_token,
            json!({"name": "Views", "category": "YouTube", "type": "default", "rate": "1",
                "min": 10, "max": 1000, "provider_id": provider_id, "provider_service_id": "77"}),
        )
        .await;
    assert_eq!(routed.status, 201, "{}", routed.text);
    // The operator's own answers carry the linkage…
    assert_eq!(routed.body["provider_id"], provider_id, "{}", routed.text);
    assert_eq!(routed.body["provider_service_id"], "77");
    let admin = app.get("/v1/admin/services", &app.admin_token).await;
    assert_eq!(admin.status, 200, "{}", admin.text);
    assert_eq!(admin.body["data"][0]["provider_id"], provider_id);
    assert_eq!(admin.body["data"][0]["provider_service_id"], "77");
    assert_eq!(admin.body["data"][0]["rate"], "1");

    // …and the catalog, for everyone, does not.
    let reseller = app.funded_reseller("Acme", "10").await;
    for token in [&reseller.token, &app.admin_token] {
        let listed = app.get("/v1/services", token).await;
        assert_eq!(listed.status, 200, "{}", listed.text);
        let service = listed.body["data"][0].as_object().unwrap();
        assert_eq!(service["id"], routed.body["id"]);
        for hidden in ["provider_id", "provider_service_id"] {
            assert!(!service.contains_key(hidden), "{hidden}: {}", listed.text);
        }
    }
    let v2 = app
        .api_v2(&[("key", &reseller.key), ("action", "services")])
        .await;
    assert!(
        !v2.text.contains("77") && !v2.text.contains("provider"),
        "{}",
        v2.text
    );
    app.get("/v1/admin/services", &reseller.token)
        .await
        .assert_problem(403, "admin_only");
}

#[actix_rt::test]
async fn a_field_named_twice_in_an_api_v2_call_is_refused_and_places_nothing() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let key = &reseller.key;
    let form = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencoding(v)))
            .collect::<Vec<_>>()
            .join("&")
    };
    let service_field = service.to_string();
    let add = |quantity: &'static str| {
        vec![
            ("key", key.as_str()),
            ("action", "add"),
            ("service", service_field.as_str()),
            ("link", "https://example.com/p/1"),
            ("quantity", quantity),
        ]
    };
    let refused = |reply: &crate::helpers::Reply, field: &str| {
        assert_eq!(reply.status, 200, "{}", reply.text);
        let error = reply.body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("field {field} is sent twice")),
            "{}",
            reply.text
        );
        assert!(
            !reply.text.contains(key.as_str()),
            "the key is never echoed"
        );
    };

    // `action=balance&action=add&…` in the query string: which one would a proxy log?
    let mut pairs = add("100");
    pairs.insert(1, ("action", "balance"));
    let query = format!("/api/v2?{}", form(&pairs));
    refused(
        &app.api_v2_raw("GET", &query, "", Vec::new()).await,
        "action",
    );
    // Twice in a form body, in a JSON body, in a multipart body.
    let mut twice = add("100");
    twice.push(("quantity", "100000"));
    let body = form(&twice).into_bytes();
    refused(
        &app.api_v2_raw("POST", "/api/v2", "application/x-www-form-urlencoded", body)
            .await,
        "quantity",
    );
    let json = format!(
        r#"{{"key":"{key}","action":"add","service":{service},"link":"https://example.com/p/1","quantity":100,"quantity":100000}}"#
    );
    refused(
        &app.api_v2_raw("POST", "/api/v2", "application/json", json.into_bytes())
            .await,
        "quantity",
    );
    let boundary = "XyZ";
    let mut multipart = String::new();
    for (k, v) in &twice {
        multipart.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    multipart.push_str(&format!("--{boundary}--\r\n"));
    refused(
        &app.api_v2_raw(
            "POST",
            "/api/v2",
            &format!("multipart/form-data; boundary={boundary}"),
            multipart.into_bytes(),
        )
        .await,
        "quantity",
    );
    // In the query string and the body with different values.
    let query = format!("/api/v2?quantity=100000&key={}", urlencoding(key));
    refused(
        &app.api_v2_raw(
            "POST",
            &query,
            "application/x-www-form-urlencoded",
            form(&add("100")).into_bytes(),
        )
        .await,
        "quantity",
    );
    assert_eq!(app.order_count(), 0);
    assert_eq!(app.balance_micros(&reseller.token).await, 10_000_000);

    // The same value in both is one field, as many clients send every call.
    let query = format!("/api/v2?{}", form(&add("100")));
    let placed = app
        .api_v2_raw(
            "POST",
            &query,
            "application/x-www-form-urlencoded",
            form(&add("100")).into_bytes(),
        )
        .await;
    assert!(placed.body["order"].is_i64(), "{}", placed.text);
    assert_eq!(app.order_count(), 1);
    assert_eq!(app.balance_micros(&reseller.token).await, 9_900_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_query_parameter_named_twice_is_refused() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let reply = app
        .get("/v1/orders?limit=1&limit=100", &reseller.token)
        .await;
    reply.assert_problem(422, "invalid_query");
    assert!(reply.text.contains("limit"), "{}", reply.text);
}

fn urlencoding(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Sets a provider's stored opt-in as it would be after an operator's change (`Some`) or
/// before the upgrade that added it (`None`).
fn set_private_network(app: &crate::helpers::TestApp, provider: i64, allowed: Option<bool>) {
    use diesel::prelude::*;
    use reseller_api::db::schema::providers;
    let mut conn = app.pool.get().unwrap();
    diesel::update(providers::table.find(provider))
        .set(providers::allow_private_network.eq(allowed))
        .execute(&mut *conn)
        .unwrap();
}

#[actix_rt::test]
async fn a_provider_on_a_private_address_is_called_only_when_opted_in() {
    let (upstream, _panel) = StandIn::panel().await;
    let app = spawn_app().await;
    // Refused without the opt-in, for a literal address and for a name that resolves there.
    for url in [
        upstream.url.clone(),
        upstream.url.replace("127.0.0.1", "localhost"),
        "http://169.254.169.254/latest/meta-data".to_string(),
    ] {
        let refused = app
            .post(
                "/v1/admin/providers",
                &app.admin_token,
                json!({"name": "Inside", "url": url, "key": "k"}),
            )
            .await;
        refused.assert_problem(422, "validation_failed");
        assert_eq!(refused.body["param"], "url", "{}", refused.text);
        assert!(
            refused.text.contains("allow_private_network"),
            "{}",
            refused.text
        );
    }
    let listed = app.get("/v1/admin/providers", &app.admin_token).await;
    assert_eq!(listed.body["data"], json!([]), "nothing was created");

    let (provider, service) = app.provider_service(&upstream.url, false, 2000).await;
    let shown = app.get("/v1/admin/providers", &app.admin_token).await;
    assert_eq!(shown.body["data"][0]["allow_private_network"], true);
    // Turning the opt-in off while the URL is private is refused, and changes nothing.
    app.patch(
        &format!("/v1/admin/providers/{provider}"),
        &app.admin_token,
        json!({"allow_private_network": false}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // A provider whose host resolves to a private address only now (it was public when
    // registered, or its DNS changed) is not called: the guard runs at every call.
    set_private_network(&app, provider, Some(false));
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    app.worker_pass().await;
    assert!(
        upstream.calls_of("add").is_empty(),
        "the provider was called"
    );
    let job = app.provider_order(order);
    let error = job.last_error.unwrap_or_default();
    assert!(error.contains("not opted in"), "{error}");

    // Opted in again, the order goes out.
    set_private_network(&app, provider, Some(true));
    app.make_due();
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("add").len(), 1);
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn providers_made_before_the_opt_in_keep_working_and_are_settled_at_start() {
    let (upstream, _panel) = StandIn::panel().await;
    let app = spawn_app().await;
    let (private, service) = app.provider_service(&upstream.url, false, 2000).await;
    let public = app
        .post(
            "/v1/admin/providers",
            &app.admin_token,
            json!({"name": "Public", "url": "http://93.184.216.34/api/v2", "key": "k"}),
        )
        .await;
    assert_eq!(public.status, 201, "{}", public.text);
    assert_eq!(public.body["allow_private_network"], false);
    let public = public.body["id"].as_i64().unwrap();
    // As the migration leaves them: unchecked.
    set_private_network(&app, private, None);
    set_private_network(&app, public, None);

    // Unchecked, a provider is called as before the upgrade.
    let reseller = app.funded_reseller("Acme", "10").await;
    app.order_id(&reseller.token, service, 1000).await;
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("add").len(), 1);

    // A change that does not name the opt-in leaves an unchecked provider unchecked (it is
    // not opted in for good by an unrelated edit).
    let changed = app
        .patch(
            &format!("/v1/admin/providers/{public}"),
            &app.admin_token,
            json!({"timeout_ms": 3000}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);

    // What `serve` does at start: the private one is opted in, the public one is not.
    let check = reseller_api::application::providers::settle_private_network(&app.pool).unwrap();
    assert_eq!(
        check.opted_in.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![private]
    );
    assert_eq!(
        check.public.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![public]
    );
    let listed = app.get("/v1/admin/providers", &app.admin_token).await;
    let allowed: Vec<_> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_i64().unwrap(),
                p["allow_private_network"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(allowed, vec![(private, true), (public, false)]);
    // Settled once: a second start finds nothing to check.
    let again = reseller_api::application::providers::settle_private_network(&app.pool).unwrap();
    assert!(again.opted_in.is_empty() && again.public.is_empty());
}
