//! Subscriptions: the hold taken when one is created, each post's child order paid from
//! it, what is left released when it ends; refusals change nothing; API v2 serves them.

use serde_json::{json, Value};

use crate::helpers::*;

/// Rate 1.333333 per 1000, posts of 50 to 1000 units, old posts offered.
async fn subscriptions_service(app: &TestApp) -> i64 {
    app.create_service(json!({
        "name": "Auto likes", "category": "Instagram", "type": "subscriptions",
        "rate": "1.333333", "min": 50, "max": 1000, "cancel": true,
        "posts_max": 20, "delays": [0, 30, 60], "old_posts": true
    }))
    .await
}

fn tomorrow() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive() + chrono::Duration::days(2)
}

/// min 100, max 150 (a post of 150 costs 0.200000), 3 posts: holds 0.600000.
fn three_posts(service: i64) -> Value {
    json!({
        "service_id": service, "username": "@alice", "min": 100, "max": 150,
        "posts": 3, "delay": 30
    })
}

async fn account(app: &TestApp, token: &str) -> (i64, i64) {
    let reply = app.get("/v1/account", token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    (micros(&reply.body["balance"]), micros(&reply.body["held"]))
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let reply = app.post("/v1/subscriptions", token, body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body
}

async fn post(app: &TestApp, sub: i64, key: &str, quantity: Option<i64>) -> Reply {
    let mut body = json!({ "post_key": key, "link": format!("https://instagram.com/p/{key}") });
    if let Some(q) = quantity {
        body["quantity"] = json!(q);
    }
    app.post(
        &format!("/v1/admin/subscriptions/{sub}/posts"),
        &app.admin_token,
        body,
    )
    .await
}

async fn subscription(app: &TestApp, token: &str, id: i64) -> Value {
    let reply = app.get(&format!("/v1/subscriptions/{id}"), token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

#[actix_rt::test]
async fn the_hold_pays_the_children_and_the_rest_is_released_when_the_last_post_is_served() {
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let reseller = app.funded_reseller("subs", "10").await;

    let sub = create(&app, &reseller.token, three_posts(service)).await;
    let id = sub["id"].as_i64().unwrap();
    assert_eq!(sub["account_id"], reseller.id);
    // 1.333333 × 150 / 1000 = 0.19999995 → 0.200000 (half-up, as any order); × 3 posts.
    assert_eq!(micros(&sub["post_charge"]), 200_000);
    assert_eq!(micros(&sub["held"]), 600_000);
    assert_eq!(micros(&sub["hold_left"]), 600_000);
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["username"], "alice");
    assert_eq!(account(&app, &reseller.token).await, (9_400_000, 600_000));
    let hold_entry = &app.ledger(&reseller.token).await[0];
    assert_eq!(hold_entry["kind"], "subscription_hold");
    assert_eq!(micros(&hold_entry["amount"]), -600_000);
    assert_eq!(micros(&hold_entry["held_amount"]), 600_000);
    assert_eq!(micros(&hold_entry["held_after"]), 600_000);
    assert_eq!(hold_entry["subscription_id"], id);
    app.assert_books_balance();

    // Post 1: 100 units → 0.1333333 → 0.133333, paid from the hold.
    let first = post(&app, id, "p1", Some(100)).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.body["created"], true);
    let child1 = first.body["order"]["id"].as_i64().unwrap();
    assert_eq!(micros(&first.body["order"]["charge"]), 133_333);
    assert_eq!(first.body["order"]["subscription_id"], id);
    assert_eq!(first.body["order"]["service_type"], "subscriptions");
    assert_eq!(micros(&first.body["subscription"]["captured"]), 133_333);
    assert_eq!(account(&app, &reseller.token).await, (9_400_000, 466_667));
    let charge_entry = &app.ledger(&reseller.token).await[0];
    assert_eq!(charge_entry["kind"], "order_charge");
    assert_eq!(charge_entry["order_id"], child1);
    assert_eq!(micros(&charge_entry["amount"]), 0);
    assert_eq!(micros(&charge_entry["held_amount"]), -133_333);

    // The same post key again: the same child, nothing new.
    let again = post(&app, id, "p1", Some(100)).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["created"], false);
    assert_eq!(again.body["order"]["id"], child1);
    assert_eq!(account(&app, &reseller.token).await, (9_400_000, 466_667));

    // Post 2 at max (the subscription's max when left out): 0.200000.
    let second = post(&app, id, "p2", None).await;
    assert_eq!(second.status, 201, "{}", second.text);
    let child2 = second.body["order"]["id"].as_i64().unwrap();
    assert_eq!(second.body["order"]["quantity"], 150);
    assert_eq!(micros(&second.body["order"]["charge"]), 200_000);
    assert_eq!(account(&app, &reseller.token).await, (9_400_000, 266_667));

    // The first child ends Partial with 40 of 100 undelivered: the one refund rule,
    // floor(0.133333 × 40 / 100) = 0.053333, to the available balance.
    let outcome = app
        .outcome(child1, json!({ "status": "partial", "remains": 40 }))
        .await;
    assert_eq!(outcome.status, 200, "{}", outcome.text);
    assert_eq!(micros(&outcome.body["refund"]["amount"]), 53_333);
    assert_eq!(account(&app, &reseller.token).await, (9_453_333, 266_667));
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, child1).await,
        53_333
    );

    // Post 3, the last: 120 units → 0.15999996 → 0.160000; the subscription completes and
    // releases 0.600000 − 0.133333 − 0.200000 − 0.160000 = 0.106667 in the same step.
    let third = post(&app, id, "p3", Some(120)).await;
    assert_eq!(third.status, 201, "{}", third.text);
    let child3 = third.body["order"]["id"].as_i64().unwrap();
    assert_eq!(micros(&third.body["order"]["charge"]), 160_000);
    let done = &third.body["subscription"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["posts_served"], 3);
    assert_eq!(micros(&done["captured"]), 493_333);
    assert_eq!(micros(&done["released"]), 106_667);
    assert_eq!(micros(&done["hold_left"]), 0);
    assert_eq!(account(&app, &reseller.token).await, (9_560_000, 0));
    let release = &app.ledger(&reseller.token).await[0];
    assert_eq!(release["kind"], "subscription_release");
    assert_eq!(micros(&release["amount"]), 106_667);
    assert_eq!(micros(&release["held_amount"]), -106_667);
    assert_eq!(micros(&release["held_after"]), 0);

    // Read back with its children, and the children through the orders' filter.
    let detail = subscription(&app, &reseller.token, id).await;
    assert_eq!(detail["orders"], json!([child1, child2, child3]));
    assert_eq!(detail["children"].as_array().unwrap().len(), 3);
    assert_eq!(detail["children"][0]["status"], "partial");
    let listed = app
        .get(&format!("/v1/orders?subscription_id={id}"), &reseller.token)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let ids: Vec<i64> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![child3, child2, child1]);

    // No fourth post; nothing changed by the refusal.
    post(&app, id, "p4", None)
        .await
        .assert_problem(409, "invalid_transition");
    assert_eq!(account(&app, &reseller.token).await, (9_560_000, 0));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_cancel_releases_what_is_left_and_an_operator_can_end_one() {
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let reseller = app.funded_reseller("subs", "10").await;
    let id = create(&app, &reseller.token, three_posts(service)).await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(post(&app, id, "p1", Some(150)).await.status, 201);

    let canceled = app
        .post(
            &format!("/v1/subscriptions/{id}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.text);
    assert_eq!(canceled.body["status"], "canceled");
    assert_eq!(micros(&canceled.body["released"]), 400_000);
    assert_eq!(account(&app, &reseller.token).await, (9_800_000, 0));
    // Ended: a second cancel and a post are refused, nothing changes.
    app.post(
        &format!("/v1/subscriptions/{id}/cancel"),
        &reseller.token,
        json!({}),
    )
    .await
    .assert_problem(409, "invalid_transition");
    post(&app, id, "p2", None)
        .await
        .assert_problem(409, "invalid_transition");
    assert_eq!(account(&app, &reseller.token).await, (9_800_000, 0));

    // Another reseller cannot see or cancel it.
    let other = app.funded_reseller("other", "1").await;
    app.post(
        &format!("/v1/subscriptions/{id}/cancel"),
        &other.token,
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
    app.get(&format!("/v1/subscriptions/{id}"), &other.token)
        .await
        .assert_problem(404, "not_found");

    // An operator's local end of another one releases its hold, audited.
    let second = create(&app, &reseller.token, three_posts(service)).await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(account(&app, &reseller.token).await, (9_200_000, 600_000));
    let ended = app
        .post(
            &format!("/v1/admin/subscriptions/{second}/end"),
            &app.admin_token,
            json!({ "reason": "the account was deleted" }),
        )
        .await;
    assert_eq!(ended.status, 200, "{}", ended.text);
    assert_eq!(ended.body["status"], "canceled");
    assert_eq!(ended.body["status_reason"], "the account was deleted");
    assert_eq!(micros(&ended.body["released"]), 600_000);
    assert_eq!(account(&app, &reseller.token).await, (9_800_000, 0));
    let audit = app
        .get("/v1/admin/audit?action=subscription.end", &app.admin_token)
        .await;
    assert_eq!(audit.status, 200, "{}", audit.text);
    assert_eq!(
        audit.body["data"][0]["target"]["id"], second,
        "{}",
        audit.text
    );
    assert_eq!(
        audit.body["data"][0]["after"]["released"], "0.6",
        "{}",
        audit.text
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn expiry_ends_a_subscription_on_schedule_and_releases_its_hold() {
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let reseller = app.funded_reseller("subs", "10").await;
    let mut body = three_posts(service);
    body["expiry"] = json!(tomorrow().to_string());
    let sub = create(&app, &reseller.token, body).await;
    let id = sub["id"].as_i64().unwrap();
    assert_eq!(sub["expiry"], tomorrow().to_string());
    assert_eq!(post(&app, id, "p1", Some(100)).await.status, 201);

    // Not yet due: the schedule leaves it.
    let pool = app.pool.clone();
    let ended = actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        reseller_api::application::subscriptions::end_due(&mut conn, 100).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(ended, 0);

    // Its expiry date begins (moved into the past, as time would).
    {
        use diesel::prelude::*;
        use reseller_api::db::schema::subscriptions;
        let mut conn = app.pool.get().unwrap();
        write(&mut conn, |conn| {
            diesel::update(subscriptions::table.find(id))
                .set(subscriptions::expires_at.eq(reseller_api::db::now()))
                .execute(&mut **conn)
        });
    }
    let pool = app.pool.clone();
    let ended = actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        reseller_api::application::subscriptions::end_due(&mut conn, 100).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(ended, 1);
    let detail = subscription(&app, &reseller.token, id).await;
    assert_eq!(detail["status"], "expired");
    assert_eq!(micros(&detail["released"]), 600_000 - 133_333);
    assert_eq!(
        account(&app, &reseller.token).await,
        (10_000_000 - 133_333, 0)
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_hold_that_does_not_fit_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let reseller = app.funded_reseller("subs", "0.599999").await;
    let reply = app
        .post("/v1/subscriptions", &reseller.token, three_posts(service))
        .await;
    reply.assert_problem(402, "insufficient_funds");
    assert_eq!(account(&app, &reseller.token).await, (599_999, 0));
    let listed = app.get("/v1/subscriptions", &reseller.token).await;
    assert_eq!(listed.body["data"], json!([]), "{}", listed.text);
    assert_eq!(app.ledger(&reseller.token).await.len(), 1);
    // Exactly enough fits.
    app.top_up(reseller.id, "0.000001").await;
    create(&app, &reseller.token, three_posts(service)).await;
    assert_eq!(account(&app, &reseller.token).await, (0, 600_000));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn every_invalid_field_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let plain = app.service("1").await;
    let no_old_posts = app
        .create_service(json!({
            "name": "Auto views", "category": "Instagram", "type": "subscriptions",
            "rate": "1", "min": 50, "max": 1000
        }))
        .await;
    let reseller = app.funded_reseller("subs", "10").await;
    let yesterday = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    let today = chrono::Utc::now().date_naive();
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "username": "" }), "username"),
        (json!({ "username": "two words" }), "username"),
        (json!({ "min": 10 }), "min"),
        (json!({ "max": 5000 }), "max"),
        (json!({ "min": 200, "max": 150 }), "max"),
        (json!({ "posts": 0 }), "posts"),
        (json!({ "posts": 21 }), "posts"),
        (json!({ "old_posts": 21 }), "old_posts"),
        (json!({ "delay": 7 }), "delay"),
        (json!({ "expiry": today.to_string() }), "expiry"),
        (json!({ "expiry": yesterday.to_string() }), "expiry"),
        (json!({ "service_id": plain }), "service_id"),
        (
            json!({ "service_id": no_old_posts, "old_posts": 2 }),
            "old_posts",
        ),
    ];
    for (change, field) in cases {
        let mut body = three_posts(service);
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let reply = app
            .post("/v1/subscriptions", &reseller.token, body.clone())
            .await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(
            reply.body["errors"][0]["param"], field,
            "{body}: {}",
            reply.text
        );
    }
    // Unbounded (no posts) is refused by the schema of the request.
    let mut unbounded = three_posts(service);
    unbounded.as_object_mut().unwrap().remove("posts");
    let reply = app
        .post("/v1/subscriptions", &reseller.token, unbounded)
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    // A subscriptions service takes no ordinary order.
    let order = app.order(&reseller.token, service, 100).await;
    order.assert_problem(422, "validation_failed");
    assert_eq!(order.body["errors"][0]["param"], "service_id");
    assert_eq!(account(&app, &reseller.token).await, (10_000_000, 0));
    assert_eq!(app.order_count(), 0);
    assert_eq!(app.ledger(&reseller.token).await.len(), 1);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn the_service_terms_are_checked_and_shown() {
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let shown = app.get("/v1/services?limit=100", &app.admin_token).await;
    let found = shown.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == service)
        .unwrap()
        .clone();
    assert_eq!(found["type"], "subscriptions");
    assert_eq!(
        found["subscription"],
        json!({ "posts_max": 20, "delays": [0, 30, 60], "old_posts": true })
    );
    let defaults = app
        .create_service(json!({
            "name": "Auto views", "category": "Instagram", "type": "subscriptions",
            "rate": "1", "min": 50, "max": 1000
        }))
        .await;
    let reply = app.get("/v1/services?limit=100", &app.admin_token).await;
    let found = reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == defaults)
        .unwrap()
        .clone();
    assert_eq!(
        found["subscription"],
        json!({ "posts_max": 100, "delays": [0, 5, 10, 15, 30, 60, 90], "old_posts": false })
    );
    for (body, field) in [
        (json!({ "type": "default", "posts_max": 5 }), "posts_max"),
        (json!({ "posts_max": 0 }), "posts_max"),
        (json!({ "delays": [] }), "delays"),
        (json!({ "delays": [-1] }), "delays"),
    ] {
        let mut full = json!({
            "name": "S", "category": "C", "type": "subscriptions", "rate": "1",
            "min": 50, "max": 1000
        });
        for (k, v) in body.as_object().unwrap() {
            full[k] = v.clone();
        }
        let reply = app
            .post("/v1/admin/services", &app.admin_token, full.clone())
            .await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(
            reply.body["errors"][0]["param"], field,
            "{full}: {}",
            reply.text
        );
    }
    // A patch changes the terms and keeps the rest.
    let patched = app
        .patch(
            &format!("/v1/admin/services/{defaults}"),
            &app.admin_token,
            json!({ "delays": [15, 0, 15] }),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(
        patched.body["subscription"],
        json!({ "posts_max": 100, "delays": [0, 15], "old_posts": false })
    );
}

#[actix_rt::test]
async fn create_is_idempotent_by_key() {
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let reseller = app.funded_reseller("subs", "10").await;
    let send = || {
        app.post_with(
            "/v1/subscriptions",
            &reseller.token,
            three_posts(service),
            &[("Idempotency-Key", "sub-1")],
        )
    };
    let first = send().await;
    assert_eq!(first.status, 201, "{}", first.text);
    let second = send().await;
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(
        second.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(first.body["id"], second.body["id"]);
    assert_eq!(account(&app, &reseller.token).await, (9_400_000, 600_000));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn orders_and_subscriptions_share_one_id_space() {
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let plain = app.service("1").await;
    let reseller = app.funded_reseller("subs", "100").await;
    // A subscription first, before any order (the orders' counter has no row yet on
    // SQLite), then orders and subscriptions in turn.
    let mut ids = Vec::new();
    let mut subs = Vec::new();
    for round in 0..3 {
        let sub = create(&app, &reseller.token, three_posts(service)).await["id"]
            .as_i64()
            .unwrap();
        ids.push(sub);
        subs.push(sub);
        ids.push(app.order_id(&reseller.token, plain, 100).await);
        let child = post(&app, sub, &format!("r{round}"), None).await;
        ids.push(child.body["order"]["id"].as_i64().unwrap());
    }
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, ids, "ids are distinct and ascending: {ids:?}");
    for sub in subs {
        app.get(&format!("/v1/orders/{sub}"), &reseller.token)
            .await
            .assert_problem(404, "not_found");
    }
    app.assert_books_balance();
}

#[actix_rt::test]
async fn verify_reports_a_tampered_hold() {
    use diesel::prelude::*;
    use reseller_api::db::schema::{accounts, subscriptions};
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let reseller = app.funded_reseller("subs", "10").await;
    let id = create(&app, &reseller.token, three_posts(service)).await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(post(&app, id, "p1", Some(100)).await.status, 201);
    app.assert_books_balance();

    let problems = || {
        let mut conn = app.pool.get().unwrap();
        reseller_api::db::verify::run(&mut conn).unwrap().problems
    };
    let mut conn = app.pool.get().unwrap();
    // One micro-unit more held than the ledger moved there.
    write(&mut conn, |conn| {
        diesel::update(accounts::table.find(reseller.id))
            .set(accounts::held_micros.eq(accounts::held_micros + 1))
            .execute(&mut **conn)
    });
    let found = problems();
    assert!(
        found
            .iter()
            .any(|p| p.contains(&format!("account {}: held", reseller.id))),
        "{found:#?}"
    );
    write(&mut conn, |conn| {
        diesel::update(accounts::table.find(reseller.id))
            .set(accounts::held_micros.eq(accounts::held_micros - 1))
            .execute(&mut **conn)
    });
    assert_eq!(problems(), Vec::<String>::new());
    // A hold that says more than its entry.
    write(&mut conn, |conn| {
        diesel::update(subscriptions::table.find(id))
            .set(subscriptions::hold_micros.eq(subscriptions::hold_micros + 5))
            .execute(&mut **conn)
    });
    let found = problems();
    assert!(
        found
            .iter()
            .any(|p| p.contains(&format!("subscription {id}: hold"))),
        "{found:#?}"
    );
}

#[actix_rt::test]
async fn api_v2_adds_reads_and_cancels_a_subscription() {
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let reseller = app.funded_reseller("subs", "10").await;
    let expiry = tomorrow();
    let expiry_text = expiry.format("%d/%m/%Y").to_string();
    let service_text = service.to_string();
    let added = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "add"),
            ("service", &service_text),
            ("username", "alice"),
            ("min", "100"),
            ("max", "150"),
            ("posts", "3"),
            ("delay", "30"),
            ("expiry", &expiry_text),
        ])
        .await;
    assert_eq!(added.status, 200, "{}", added.text);
    let id = added.body["order"].as_i64().expect(&added.text);
    assert_eq!(account(&app, &reseller.token).await, (9_400_000, 600_000));
    // The balance is what is available.
    let balance = app
        .api_v2(&[("key", &reseller.key), ("action", "balance")])
        .await;
    assert_eq!(
        micros(&balance.body["balance"]),
        9_400_000,
        "{}",
        balance.text
    );

    let child = post(&app, id, "p1", Some(100)).await.body["order"]["id"]
        .as_i64()
        .unwrap();
    let id_text = id.to_string();
    let status = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "status"),
            ("order", &id_text),
        ])
        .await;
    assert_eq!(
        status.body,
        json!({ "status": "Active", "expiry": expiry_text, "posts": "1", "orders": [child] }),
        "{}",
        status.text
    );
    // Multi status: the subscription, its child (an order) and an unknown id.
    let many = format!("{id},{child},999999");
    let status = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "status"),
            ("orders", &many),
        ])
        .await;
    assert_eq!(status.body[&id_text]["status"], "Active", "{}", status.text);
    assert_eq!(
        status.body[&child.to_string()]["status"],
        "Pending",
        "{}",
        status.text
    );
    assert_eq!(status.body["999999"]["error"], "Incorrect order ID");

    let canceled = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "cancel"),
            ("orders", &id_text),
        ])
        .await;
    assert_eq!(
        canceled.body,
        json!([{ "order": id, "cancel": 1 }]),
        "{}",
        canceled.text
    );
    assert_eq!(
        account(&app, &reseller.token).await,
        (10_000_000 - 133_333, 0)
    );
    let status = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "status"),
            ("order", &id_text),
        ])
        .await;
    assert_eq!(status.body["status"], "Canceled", "{}", status.text);

    // Refusals in the dialect, nothing changed.
    for (fields, error) in [
        (vec![("expiry", "2027-01-01")], "Incorrect expiry"),
        (vec![("posts", "0")], "Incorrect posts"),
        (
            vec![("link", "https://x.y/p"), ("quantity", "100")],
            "Incorrect request",
        ),
    ] {
        let mut call = vec![
            ("key", reseller.key.as_str()),
            ("action", "add"),
            ("service", service_text.as_str()),
            ("username", "alice"),
            ("min", "100"),
            ("max", "150"),
            ("posts", "3"),
        ];
        for (k, v) in fields {
            call.retain(|(name, _)| *name != k);
            call.push((k, v));
        }
        let reply = app.api_v2(&call).await;
        assert!(
            reply.body["error"]
                .as_str()
                .unwrap_or("")
                .starts_with(error),
            "{call:?}: {}",
            reply.text
        );
    }
    // Services list it with the dialect's type name.
    let services = app
        .api_v2(&[("key", &reseller.key), ("action", "services")])
        .await;
    let listed = services
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == service)
        .unwrap()
        .clone();
    assert_eq!(listed["type"], "Subscriptions");
    assert_eq!(
        account(&app, &reseller.token).await,
        (10_000_000 - 133_333, 0)
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn the_same_post_recorded_twice_at_once_makes_one_child() {
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let reseller = app.funded_reseller("subs", "10").await;
    let id = create(&app, &reseller.token, three_posts(service)).await["id"]
        .as_i64()
        .unwrap();
    let (a, b) = futures_util::join!(
        post(&app, id, "same", Some(100)),
        post(&app, id, "same", Some(100))
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 201], "{} / {}", a.text, b.text);
    assert_eq!(a.body["order"]["id"], b.body["order"]["id"]);
    let detail = subscription(&app, &reseller.token, id).await;
    assert_eq!(detail["posts_served"], 1);
    assert_eq!(micros(&detail["captured"]), 133_333);
    assert_eq!(account(&app, &reseller.token).await, (9_400_000, 466_667));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_free_subscription_holds_nothing_and_verify_passes() {
    let app = spawn_app().await;
    let service = app
        .create_service(json!({
            "name": "Free auto likes", "category": "Instagram", "type": "subscriptions",
            "rate": "0", "min": 50, "max": 1000, "cancel": true
        }))
        .await;
    let reseller = app.funded_reseller("subs", "1").await;
    let sub = create(&app, &reseller.token, three_posts(service)).await;
    let id = sub["id"].as_i64().unwrap();
    assert_eq!(micros(&sub["held"]), 0);
    assert_eq!(account(&app, &reseller.token).await, (1_000_000, 0));
    app.assert_books_balance();
    let first = post(&app, id, "p1", Some(100)).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(micros(&first.body["order"]["charge"]), 0);
    app.assert_books_balance();
    // All three posts served: it completes with nothing to release.
    for key in ["p2", "p3"] {
        assert_eq!(post(&app, id, key, None).await.status, 201);
    }
    assert_eq!(
        subscription(&app, &reseller.token, id).await["status"],
        "completed"
    );
    // Another one canceled after a post.
    let second = create(&app, &reseller.token, three_posts(service)).await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(post(&app, second, "q1", None).await.status, 201);
    let canceled = app
        .post(
            &format!("/v1/subscriptions/{second}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.text);
    assert_eq!(micros(&canceled.body["released"]), 0);
    assert_eq!(account(&app, &reseller.token).await, (1_000_000, 0));
    app.assert_books_balance();
}

/// Moves a subscription's expiry into the past, as time would, without the schedule
/// having run.
fn expire_now(app: &TestApp, id: i64) {
    use diesel::prelude::*;
    use reseller_api::db::schema::subscriptions;
    let mut conn = app.pool.get().unwrap();
    write(&mut conn, |conn| {
        diesel::update(subscriptions::table.find(id))
            .set(subscriptions::expires_at.eq(reseller_api::db::now()))
            .execute(&mut **conn)
    });
}

#[actix_rt::test]
async fn a_post_or_cancel_after_the_expiry_ends_it_expired() {
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let reseller = app.funded_reseller("subs", "10").await;
    let mut body = three_posts(service);
    body["expiry"] = json!(tomorrow().to_string());
    let id = create(&app, &reseller.token, body.clone()).await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(post(&app, id, "p1", Some(100)).await.status, 201);
    expire_now(&app, id);

    // A post after the expiry is refused, and the subscription ends Expired with what is
    // left of its hold released (the schedule has not run).
    let late = post(&app, id, "p2", None).await;
    late.assert_problem(409, "invalid_transition");
    assert!(late.text.contains("expiry"), "{}", late.text);
    let detail = subscription(&app, &reseller.token, id).await;
    assert_eq!(detail["status"], "expired");
    assert_eq!(detail["posts_served"], 1);
    assert_eq!(micros(&detail["released"]), 600_000 - 133_333);
    assert_eq!(
        account(&app, &reseller.token).await,
        (10_000_000 - 133_333, 0)
    );
    // The post recorded before is still answered by its key.
    assert_eq!(post(&app, id, "p1", Some(100)).await.status, 200);
    app.assert_books_balance();

    // A cancel after the expiry ends it Expired too.
    let second = create(&app, &reseller.token, body).await["id"]
        .as_i64()
        .unwrap();
    expire_now(&app, second);
    let canceled = app
        .post(
            &format!("/v1/subscriptions/{second}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.text);
    assert_eq!(canceled.body["status"], "expired");
    assert_eq!(micros(&canceled.body["released"]), 600_000);
    assert_eq!(
        account(&app, &reseller.token).await,
        (10_000_000 - 133_333, 0)
    );
    app.assert_books_balance();

    // And an operator's end after the expiry: Expired, the whole hold released once.
    let third = create(&app, &reseller.token, three_posts(service)).await["id"]
        .as_i64()
        .unwrap();
    expire_now(&app, third);
    let ended = app
        .post(
            &format!("/v1/admin/subscriptions/{third}/end"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(ended.status, 200, "{}", ended.text);
    assert_eq!(ended.body["status"], "expired", "{}", ended.text);
    assert_eq!(micros(&ended.body["released"]), 600_000);
    assert_eq!(
        account(&app, &reseller.token).await,
        (10_000_000 - 133_333, 0)
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn api_v2_add_picks_the_subscription_path_by_the_services_type() {
    let app = spawn_app().await;
    let plain = app.service("1.333333").await;
    let plain_text = plain.to_string();
    let reseller = app.funded_reseller("subs", "10").await;
    // A client library that sends every field, the subscription ones empty or zero.
    let added = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "add"),
            ("service", &plain_text),
            ("link", "https://instagram.com/p/x"),
            ("quantity", "150"),
            ("delay", "0"),
            ("posts", ""),
            ("old_posts", "0"),
            ("min", ""),
            ("max", ""),
            ("expiry", ""),
        ])
        .await;
    assert_eq!(added.status, 200, "{}", added.text);
    let order = added.body["order"].as_i64().expect(&added.text);
    // 1.333333 × 150 / 1000 = 0.19999995 → 0.200000.
    let read = app
        .get(&format!("/v1/orders/{order}"), &reseller.token)
        .await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(micros(&read.body["charge"]), 200_000);
    assert_eq!(read.body["subscription_id"], Value::Null);
    assert_eq!(account(&app, &reseller.token).await, (9_800_000, 0));

    // A subscription field with a value, on a service of another type: refused, naming it.
    let refused = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "add"),
            ("service", &plain_text),
            ("link", "https://instagram.com/p/y"),
            ("quantity", "150"),
            ("delay", "30"),
        ])
        .await;
    assert_eq!(refused.status, 200, "{}", refused.text);
    assert_eq!(
        refused.body["error"],
        "Incorrect request: delay is only for subscription services"
    );
    assert_eq!(account(&app, &reseller.token).await, (9_800_000, 0));
    app.assert_books_balance();
}

/// How many rows a count query finds.
fn count(app: &TestApp, sql: &str) -> i64 {
    use diesel::prelude::*;
    let mut conn = app.pool.get().unwrap();
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
        "({sql})"
    )))
    .get_result(&mut *conn)
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Reverting the subscriptions migration leaves only rows the previous release reads,
/// the ledger's chain whole and what was held back in the available balance; migrating
/// again serves it and `verify` passes.
#[actix_rt::test]
async fn the_migration_reverts_to_what_the_previous_release_reads_and_migrates_again() {
    let app = spawn_app_with(|c| {
        c.webhooks.webhook_allow_private = true;
        c.webhooks.webhook_timeout_secs = 1;
    })
    .await;
    let service = subscriptions_service(&app).await;
    let reseller = app.funded_reseller("subs", "10").await;
    let sink = "http://127.0.0.1:9/hook";
    let (_, _) = app
        .endpoint(
            &reseller.token,
            sink,
            json!(["subscription.created", "order.created"]),
        )
        .await;
    let (only_subscriptions, _) = app
        .endpoint(&reseller.token, sink, json!(["subscription.child_created"]))
        .await;
    // One ended (a post, then canceled), one still holding money (a post of 150).
    let ended = create(&app, &reseller.token, three_posts(service)).await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(post(&app, ended, "p1", Some(100)).await.status, 201);
    let canceled = app
        .post(
            &format!("/v1/subscriptions/{ended}/cancel"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.text);
    let open = create(&app, &reseller.token, three_posts(service)).await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(post(&app, open, "q1", None).await.status, 201);
    app.webhook_pass().await;
    // 10 − 0.133333 − 0.200000, of which 0.400000 still held.
    assert_eq!(account(&app, &reseller.token).await, (9_266_667, 400_000));
    assert!(count(&app, "SELECT COUNT(*) FROM webhook_attempts") > 0);
    app.assert_books_balance();

    let url = app.config.database_url.expose_secret().to_string();
    let back = url.clone();
    // Through the subscriptions migration: every one after it goes first.
    actix_web::web::block(move || reseller_api::db::revert_through(&back, "2026-12-07-001100"))
        .await
        .unwrap()
        .expect("revert");
    for sql in [
        "SELECT COUNT(*) FROM services WHERE kind = 'subscriptions'",
        "SELECT COUNT(*) FROM services WHERE status <> 'disabled'",
        "SELECT COUNT(*) FROM orders WHERE service_type = 'subscriptions'",
        "SELECT COUNT(*) FROM events WHERE event_type LIKE 'subscription.%'",
        "SELECT COUNT(*) FROM webhook_deliveries WHERE event_id NOT IN (SELECT id FROM events)",
        "SELECT COUNT(*) FROM webhook_attempts WHERE event_id NOT IN (SELECT id FROM events)",
        "SELECT COUNT(*) FROM webhook_endpoints WHERE event_types LIKE '%subscription%'",
        "SELECT COUNT(*) FROM audit_entries WHERE action LIKE 'subscription.%' OR target_type = 'subscription'",
    ] {
        assert_eq!(count(&app, sql), 0, "{sql}");
    }
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM webhook_endpoints WHERE id = {only_subscriptions} AND status = 'disabled'")
        ),
        1
    );
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT balance_micros FROM accounts WHERE id = {}",
                reseller.id
            )
        ),
        9_666_667
    );
    // The chain of balances after each entry is whole again.
    assert_eq!(
        count(
            &app,
            &format!("SELECT balance_after_micros FROM ledger_entries WHERE account_id = {} ORDER BY id DESC LIMIT 1", reseller.id)
        ),
        9_666_667
    );

    let again = url.clone();
    actix_web::web::block(move || reseller_api::db::migrate_through(&again, None))
        .await
        .unwrap()
        .expect("migrate again");
    let served = spawn_app_on(&url).await;
    assert_eq!(account(&served, &reseller.token).await, (9_666_667, 0));
    for path in [
        "/v1/orders",
        "/v1/subscriptions",
        "/v1/webhook-endpoints",
        "/v1/events",
        "/v1/ledger",
    ] {
        let reply = served.get(path, &reseller.token).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    }
    for path in ["/v1/admin/services", "/v1/admin/orders", "/v1/admin/audit"] {
        let reply = served.get(path, &served.admin_token).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    }
    served.assert_books_balance();
}

async fn end_due(app: &TestApp) -> usize {
    let pool = app.pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        reseller_api::application::subscriptions::end_due(&mut conn, 100).expect("end_due")
    })
    .await
    .unwrap()
}

fn set_held(app: &TestApp, account: i64, held: i64) {
    use diesel::prelude::*;
    use reseller_api::db::schema::accounts;
    let mut conn = app.pool.get().unwrap();
    write(&mut conn, |conn| {
        diesel::update(accounts::table.find(account))
            .set(accounts::held_micros.eq(held))
            .execute(&mut **conn)
    });
}

#[actix_rt::test]
async fn the_schedule_skips_a_subscription_it_cannot_end_and_ends_the_others() {
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let broken = app.funded_reseller("broken", "10").await;
    let fine = app.funded_reseller("fine", "10").await;
    let mut body = three_posts(service);
    body["expiry"] = json!(tomorrow().to_string());
    let first = create(&app, &broken.token, body.clone()).await["id"]
        .as_i64()
        .unwrap();
    let second = create(&app, &fine.token, body).await["id"]
        .as_i64()
        .unwrap();
    expire_now(&app, first);
    expire_now(&app, second);
    // The first one's release cannot be booked: its account's held balance is gone.
    set_held(&app, broken.id, 0);
    assert_eq!(end_due(&app).await, 1);
    assert_eq!(
        subscription(&app, &broken.token, first).await["status"],
        "active"
    );
    let ended = subscription(&app, &fine.token, second).await;
    assert_eq!(ended["status"], "expired");
    assert_eq!(micros(&ended["released"]), 600_000);
    assert_eq!(account(&app, &fine.token).await, (10_000_000, 0));
    // Repaired, the next pass ends it.
    set_held(&app, broken.id, 600_000);
    assert_eq!(end_due(&app).await, 1);
    assert_eq!(
        subscription(&app, &broken.token, first).await["status"],
        "expired"
    );
    assert_eq!(account(&app, &broken.token).await, (10_000_000, 0));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn verify_ties_captures_holds_and_posts_to_their_subscription() {
    use diesel::prelude::*;
    use reseller_api::db::schema::{ledger_entries, orders, subscriptions};
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let reseller = app.funded_reseller("subs", "10").await;
    let other = app.funded_reseller("other", "10").await;
    let id = create(&app, &reseller.token, three_posts(service)).await["id"]
        .as_i64()
        .unwrap();
    let child = post(&app, id, "p1", Some(100)).await.body["order"]["id"]
        .as_i64()
        .unwrap();
    let second = create(&app, &reseller.token, three_posts(service)).await["id"]
        .as_i64()
        .unwrap();
    app.assert_books_balance();
    let problems = || {
        let mut conn = app.pool.get().unwrap();
        reseller_api::db::verify::run(&mut conn).unwrap().problems
    };
    let has = |found: &[String], text: &str| {
        assert!(found.iter().any(|p| p.contains(text)), "{text}: {found:#?}");
    };
    let mut conn = app.pool.get().unwrap();

    // A served post without its child order.
    write(&mut conn, |conn| {
        diesel::update(subscriptions::table.find(id))
            .set(subscriptions::posts_served.eq(2))
            .execute(&mut **conn)
    });
    has(
        &problems(),
        &format!("subscription {id}: 2 posts served but 1 child orders"),
    );
    write(&mut conn, |conn| {
        diesel::update(subscriptions::table.find(id))
            .set(subscriptions::posts_served.eq(1))
            .execute(&mut **conn)
    });
    assert_eq!(problems(), Vec::<String>::new());

    // The child moved to the other subscription: its capture names no child of the hold
    // it was paid from.
    write(&mut conn, |conn| {
        diesel::update(orders::table.find(child))
            .set(orders::subscription_id.eq(second))
            .execute(&mut **conn)
    });
    has(
        &problems(),
        &format!(
            "captures from subscription {id}'s hold for order {child}, which is not its child"
        ),
    );
    write(&mut conn, |conn| {
        diesel::update(orders::table.find(child))
            .set(orders::subscription_id.eq(id))
            .execute(&mut **conn)
    });
    assert_eq!(problems(), Vec::<String>::new());

    // The hold booked on another account.
    write(&mut conn, |conn| {
        diesel::update(
            ledger_entries::table
                .filter(ledger_entries::subscription_id.eq(second))
                .filter(ledger_entries::kind.eq("subscription_hold")),
        )
        .set(ledger_entries::account_id.eq(other.id))
        .execute(&mut **conn)
    });
    has(
        &problems(),
        &format!(
            "moves subscription {second}'s hold on account {}, not its account {}",
            other.id, reseller.id
        ),
    );
}

#[actix_rt::test]
async fn seeded_orders_take_no_subscriptions_id() {
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let reseller = app.funded_reseller("subs", "10").await;
    let first = create(&app, &reseller.token, three_posts(service)).await["id"]
        .as_i64()
        .unwrap();
    let options = reseller_api::tooling::seed::SeedOptions {
        orders: 20,
        refunds: 2,
        accounts: 2,
        pending: 0,
        days: 3,
        seed: 7,
    };
    {
        let mut conn = app.pool.get().unwrap();
        reseller_api::tooling::seed::run(&mut conn, &options).unwrap();
    }
    let shared = "SELECT COUNT(*) FROM orders WHERE id IN (SELECT id FROM subscriptions)";
    assert_eq!(count(&app, shared), 0);
    assert!(count(&app, "SELECT MIN(id) FROM orders") > first);
    // The next subscription's id is past every seeded order.
    let next = create(&app, &reseller.token, three_posts(service)).await["id"]
        .as_i64()
        .unwrap();
    assert!(next > count(&app, "SELECT MAX(id) FROM orders"));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn disabling_the_service_ends_its_subscriptions_and_releases_their_holds() {
    let app = spawn_app().await;
    let service = subscriptions_service(&app).await;
    let reseller = app.funded_reseller("subs", "10").await;
    let id = create(&app, &reseller.token, three_posts(service)).await["id"]
        .as_i64()
        .unwrap();
    let child = post(&app, id, "p1", Some(100)).await.body["order"]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(account(&app, &reseller.token).await, (9_400_000, 466_667));
    let disabled = app
        .post(
            &format!("/v1/admin/services/{service}/disable"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    let ended = subscription(&app, &reseller.token, id).await;
    assert_eq!(ended["status"], "canceled");
    assert_eq!(ended["status_reason"], "the service was disabled");
    assert_eq!(micros(&ended["released"]), 466_667);
    // The child still in flight is refunded in full like any order of the service.
    let read = app
        .get(&format!("/v1/orders/{child}"), &reseller.token)
        .await;
    assert_eq!(read.body["status"], "canceled", "{}", read.text);
    assert_eq!(account(&app, &reseller.token).await, (10_000_000, 0));
    app.assert_books_balance();
}
