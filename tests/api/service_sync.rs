//! Service sync: a provider's catalog with its markup becomes ours; a rate change never
//! re-prices an order already placed.

use serde_json::{json, Value};

use crate::helpers::{micros, spawn_app_with, StandIn};

fn catalog(followers_rate: &str, with_likes: bool) -> Value {
    let mut list = vec![
        json!({"service": 1, "name": "Followers", "type": "Default", "category": "Instagram",
               "rate": followers_rate, "min": "10", "max": "10000", "refill": true, "cancel": true}),
        // A type word that is none of the dialect's: skipped (Subscriptions are imported:
        // tests/api/subscription_upstream.rs).
        json!({"service": 3, "name": "Auto likes", "type": "Auto Likes Pro", "category": "Auto",
               "rate": "1", "min": "1", "max": "10"}),
    ];
    if with_likes {
        list.push(
            json!({"service": "2", "name": "Likes", "type": "Default", "category": "Instagram",
                         "rate": 2, "min": 10, "max": 5000, "refill": false, "cancel": true}),
        );
    }
    Value::Array(list)
}

#[actix_rt::test]
async fn service_sync_with_markup_creates_updates_and_disables_and_never_reprices_orders() {
    let (upstream, panel) = StandIn::panel().await;
    panel.lock().unwrap().services = catalog("1.00", true);
    let app = spawn_app_with(|c| {
        c.worker.sync_interval_secs = 0;
        c.worker.max_backoff_secs = 0;
    })
    .await;
    let provider = app
        .post(
            "/v1/admin/providers",
            &app.admin_token,
            json!({"allow_private_network": true, "name": "Upstream", "url": upstream.url, "key": "k", "markup_percent": "25"}),
        )
        .await;
    assert_eq!(provider.status, 201, "{}", provider.text);
    assert_eq!(micros(&provider.body["markup_percent"]), 25_000_000);
    let path = format!("/v1/admin/providers/{}/sync-services", provider.body["id"]);

    // A dry run says what would change and changes nothing.
    let dry = app
        .post(&path, &app.admin_token, json!({"dry_run": true}))
        .await;
    assert_eq!(dry.status, 200, "{}", dry.text);
    assert_eq!(dry.body["dry_run"], true);
    assert_eq!(dry.body["created"].as_array().unwrap().len(), 2);
    assert_eq!(dry.body["created"][0]["service_id"], Value::Null);
    assert_eq!(dry.body["skipped"][0]["provider_service_id"], "3");
    assert!(
        dry.body["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("none of the panel service types"),
        "{}",
        dry.text
    );
    let listed = app.get("/v1/services", &app.admin_token).await;
    assert!(listed.body["data"].as_array().unwrap().is_empty());

    let synced = app.post(&path, &app.admin_token, json!({})).await;
    assert_eq!(synced.status, 200, "{}", synced.text);
    let created = synced.body["created"].as_array().unwrap().clone();
    assert_eq!(created.len(), 2);
    let followers = created[0]["service_id"].as_i64().unwrap();
    let likes = created[1]["service_id"].as_i64().unwrap();
    assert_eq!(micros(&created[0]["rate"]), 1_250_000);
    assert_eq!(micros(&created[1]["rate"]), 2_500_000);
    let services = app.get("/v1/admin/services", &app.admin_token).await;
    let first = &services.body["data"][0];
    assert_eq!(first["provider_service_id"], "1");
    assert_eq!(first["refill"], true);
    assert_eq!(first["min"], 10);
    assert_eq!(first["max"], 10000);
    // Synced again unchanged: nothing to do.
    let again = app.post(&path, &app.admin_token, json!({})).await;
    assert_eq!(again.body["unchanged"], 2, "{}", again.text);

    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, followers, 1000).await;
    let doomed = app.order_id(&reseller.token, likes, 100).await;
    app.worker_pass().await;
    assert_eq!(
        micros(&app.order_json(&reseller.token, order).await["charge"]),
        1_250_000
    );
    assert_eq!(
        micros(&app.order_json(&reseller.token, doomed).await["charge"]),
        250_000
    );

    // The provider doubles its rate and drops Likes.
    panel.lock().unwrap().services = catalog("2.00", false);
    let changed = app.post(&path, &app.admin_token, json!({})).await;
    assert_eq!(
        changed.body["updated"][0]["service_id"], followers,
        "{}",
        changed.text
    );
    assert_eq!(changed.body["updated"][0]["changes"], json!(["rate"]));
    assert_eq!(micros(&changed.body["updated"][0]["rate"]), 2_500_000);
    assert_eq!(changed.body["disabled"][0]["service_id"], likes);
    // Likes' order in flight: refunded in full and canceled upstream.
    assert_eq!(
        micros(&app.order_json(&reseller.token, doomed).await["refunded"]),
        250_000
    );
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("cancel").len(), 1);

    // The order placed before the change keeps its charge; its refund comes from it.
    let body = app.order_json(&reseller.token, order).await;
    assert_eq!(micros(&body["charge"]), 1_250_000);
    assert_eq!(
        app.post(
            &format!("/v1/orders/{order}/cancel"),
            &reseller.token,
            json!({})
        )
        .await
        .status,
        202
    );
    app.worker_pass().await;
    let remote = app.provider_order(order).provider_order_id.unwrap();
    panel
        .lock()
        .unwrap()
        .statuses
        .insert(remote, json!({"status": "Canceled", "remains": "1000"}));
    app.worker_pass().await;
    let body = app.order_json(&reseller.token, order).await;
    assert_eq!(body["status"], "canceled");
    assert_eq!(
        micros(&body["refunded"]),
        1_250_000,
        "the stored charge, not the new rate"
    );
    assert_eq!(app.balance_micros(&reseller.token).await, 10_000_000);
    // A new order pays the new rate.
    let fresh = app.order_id(&reseller.token, followers, 1000).await;
    assert_eq!(
        micros(&app.order_json(&reseller.token, fresh).await["charge"]),
        2_500_000
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn providers_with_auto_sync_are_synced_by_the_worker_and_others_are_not() {
    let (upstream, panel) = StandIn::panel().await;
    panel.lock().unwrap().services = catalog("1.00", true);
    let app = spawn_app_with(|c| c.worker.service_sync_interval_secs = 0).await;
    let manual = app
        .post(
            "/v1/admin/providers",
            &app.admin_token,
            json!({"allow_private_network": true, "name": "By hand", "url": upstream.url, "key": "k"}),
        )
        .await;
    assert_eq!(manual.body["auto_sync"], false, "{}", manual.text);
    let auto = app
        .post("/v1/admin/providers", &app.admin_token,
            json!({"allow_private_network": true, "name": "Synced", "url": upstream.url, "key": "k", "markup_percent": "10", "auto_sync": true}))
        .await;
    assert_eq!(auto.status, 201, "{}", auto.text);
    assert_eq!(auto.body["auto_sync"], true);
    app.worker_pass().await;
    let listed = app.get("/v1/services", &app.admin_token).await;
    let services = listed.body["data"].as_array().unwrap().clone();
    // Followers and Likes of the synced provider only (the unknown type is skipped).
    assert_eq!(services.len(), 2, "{}", listed.text);
    let followers = services.iter().find(|s| s["name"] == "Followers").unwrap();
    assert_eq!(micros(&followers["rate"]), 1_100_000);
    // Turned off by a PATCH: the worker leaves its catalog alone.
    let off = app
        .patch(
            &format!("/v1/admin/providers/{}", auto.body["id"]),
            &app.admin_token,
            json!({"auto_sync": false}),
        )
        .await;
    assert_eq!(off.body["auto_sync"], false, "{}", off.text);
    panel.lock().unwrap().services = catalog("2.00", true);
    app.worker_pass().await;
    let listed = app.get("/v1/services", &app.admin_token).await;
    let followers = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Followers")
        .unwrap()
        .clone();
    assert_eq!(
        micros(&followers["rate"]),
        1_100_000,
        "unchanged without auto_sync"
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn an_unreachable_provider_leaves_the_catalog_as_it_is_with_a_409() {
    let app = crate::helpers::spawn_app().await;
    let provider = app
        .post("/v1/admin/providers", &app.admin_token,
            json!({"allow_private_network": true, "name": "Gone", "url": "http://127.0.0.1:9/api/v2", "key": "k", "timeout_ms": 500}))
        .await;
    let synced = app
        .post(
            &format!("/v1/admin/providers/{}/sync-services", provider.body["id"]),
            &app.admin_token,
            json!({}),
        )
        .await;
    synced.assert_problem(409, "provider_unavailable");
    assert!(!synced.text.contains("\"k\""));
    let listed = app.get("/v1/services", &app.admin_token).await;
    assert!(listed.body["data"].as_array().unwrap().is_empty());
}
