//! Provider money: the panel's currency, a provider billing in another at an operator's
//! exchange rate, each order's cost, and whether the provider credited back what we
//! refunded because of its Partial.

use serde_json::{json, Value};

use crate::helpers::{micros, spawn_app_with, Panel, StandIn, TestApp};

/// A EUR catalog: Followers at 0.9 EUR per 1000; Likes at 1.2345675 (read as 1.234568).
fn eur_catalog() -> Value {
    json!([
        {"service": 1, "name": "Followers", "type": "Default", "category": "Instagram",
         "rate": "0.9", "min": "10", "max": "10000"},
        {"service": 2, "name": "Likes", "type": "Default", "category": "Instagram",
         "rate": 1.2345675, "min": "10", "max": "10000"},
    ])
}

/// An app whose recovery watch asks on every pass and waits `window_secs` for a credit,
/// with a EUR provider at 1.1 and markup 10 %, synced: the provider's id and our
/// Followers service (1.089 per 1000).
async fn eur_setup(window_secs: i64) -> (TestApp, StandIn, Panel, i64, i64) {
    eur_setup_with(window_secs, |_| {}).await
}

async fn eur_setup_with(
    window_secs: i64,
    configure: impl FnOnce(&mut reseller_api::config::Config),
) -> (TestApp, StandIn, Panel, i64, i64) {
    let (upstream, panel) = StandIn::panel().await;
    {
        let mut state = panel.lock().unwrap();
        state.services = eur_catalog();
        state.currency = "EUR".into();
        state.add_charge = "0.9".into();
    }
    let app = spawn_app_with(|c| {
        c.worker.sync_interval_secs = 0;
        c.worker.max_backoff_secs = 0;
        c.worker.recovery_poll_secs = 0;
        c.worker.recovery_window_secs = window_secs;
        configure(c);
    })
    .await;
    let provider = app
        .post(
            "/v1/admin/providers",
            &app.admin_token,
            json!({"allow_private_network": true, "name": "Euro", "url": upstream.url, "key": "k",
                   "markup_percent": "10", "currency": "EUR", "exchange_rate": "1.1"}),
        )
        .await;
    assert_eq!(provider.status, 201, "{}", provider.text);
    let provider_id = provider.body["id"].as_i64().unwrap();
    let synced = app
        .post(
            &format!("/v1/admin/providers/{provider_id}/sync-services"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(synced.status, 200, "{}", synced.text);
    let followers = synced.body["created"][0]["service_id"].as_i64().unwrap();
    (app, upstream, panel, provider_id, followers)
}

async fn money(app: &TestApp, order: i64) -> Value {
    let case = app
        .get(&format!("/v1/admin/orders/{order}"), &app.admin_token)
        .await;
    assert_eq!(case.status, 200, "{}", case.text);
    case.body["money"].clone()
}

fn count_events(app: &TestApp, event_type: &str) -> i64 {
    use diesel::prelude::*;
    use reseller_api::db::schema::events;
    let mut conn = app.pool.get().unwrap();
    events::table
        .filter(events::event_type.eq(event_type))
        .count()
        .get_result(&mut *conn)
        .unwrap()
}

#[actix_rt::test]
async fn a_eur_provider_at_1_10_imports_rates_converted_to_the_micro_unit() {
    let (upstream, panel) = StandIn::panel().await;
    panel.lock().unwrap().services = eur_catalog();
    let app = spawn_app_with(|_| {}).await;
    let settings = app.get("/v1/admin/settings", &app.admin_token).await;
    assert_eq!(settings.body["currency"], "USD", "{}", settings.text);

    // Another currency without a rate is refused, naming the field; nothing is made.
    let body = json!({"allow_private_network": true, "name": "Euro", "url": upstream.url,
                      "key": "k", "markup_percent": "10", "currency": "EUR"});
    let refused = app
        .post("/v1/admin/providers", &app.admin_token, body.clone())
        .await;
    refused.assert_problem(422, "validation_failed");
    assert_eq!(refused.body["param"], "exchange_rate", "{}", refused.text);
    for (rate, param) in [("0", "exchange_rate"), ("1.0000001", "exchange_rate")] {
        let mut bad = body.clone();
        bad["exchange_rate"] = json!(rate);
        let reply = app.post("/v1/admin/providers", &app.admin_token, bad).await;
        reply.assert_problem(422, "validation_failed");
        assert!(reply.text.contains(param), "{}", reply.text);
    }
    let mut bad = body.clone();
    bad["currency"] = json!("eur");
    bad["exchange_rate"] = json!("1.1");
    let reply = app.post("/v1/admin/providers", &app.admin_token, bad).await;
    reply.assert_problem(422, "validation_failed");
    assert!(reply.text.contains("currency"), "{}", reply.text);
    let listed = app.get("/v1/admin/providers", &app.admin_token).await;
    assert!(listed.body["data"].as_array().unwrap().is_empty());

    let mut good = body.clone();
    good["exchange_rate"] = json!("1.1");
    let provider = app
        .post("/v1/admin/providers", &app.admin_token, good)
        .await;
    assert_eq!(provider.status, 201, "{}", provider.text);
    assert_eq!(provider.body["currency"], "EUR");
    assert_eq!(provider.body["exchange_rate"], "1.1");
    assert!(provider.body["exchange_rate_set_at"].is_string());
    assert_eq!(provider.body["currency_mismatch"], Value::Null);
    let id = provider.body["id"].as_i64().unwrap();
    let path = format!("/v1/admin/providers/{id}/sync-services");

    let synced = app.post(&path, &app.admin_token, json!({})).await;
    assert_eq!(synced.status, 200, "{}", synced.text);
    let created = synced.body["created"].as_array().unwrap();
    // 0.9 EUR × 1.1 = 0.99 USD, + 10 % = 1.089.
    assert_eq!(micros(&created[0]["provider_rate"]), 900_000);
    assert_eq!(micros(&created[0]["converted_rate"]), 990_000);
    assert_eq!(micros(&created[0]["rate"]), 1_089_000);
    assert_eq!(created[0]["at_loss"], false);
    // 1.234568 EUR × 1.1 = 1.3580248 → 1.358025 (half-up), + 10 % = 1.4938275 → 1.493828.
    assert_eq!(micros(&created[1]["provider_rate"]), 1_234_568);
    assert_eq!(micros(&created[1]["converted_rate"]), 1_358_025);
    assert_eq!(micros(&created[1]["rate"]), 1_493_828);
    let services = app.get("/v1/services", &app.admin_token).await;
    let rates: Vec<i64> = services.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| micros(&s["rate"]))
        .collect();
    assert_eq!(rates, vec![1_089_000, 1_493_828], "{}", services.text);

    // Without a markup every service sells at its converted cost: flagged at a loss.
    let patched = app
        .patch(
            &format!("/v1/admin/providers/{id}"),
            &app.admin_token,
            json!({"markup_percent": "0", "exchange_rate": "1.2"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["exchange_rate"], "1.2");
    let dry = app
        .post(&path, &app.admin_token, json!({"dry_run": true}))
        .await;
    let updated = dry.body["updated"].as_array().unwrap();
    assert_eq!(updated.len(), 2, "{}", dry.text);
    assert_eq!(micros(&updated[0]["rate"]), 1_080_000);
    assert!(updated.iter().all(|u| u["at_loss"] == true), "{}", dry.text);

    // The rate's history, newest first.
    let history = app
        .get(
            &format!("/v1/admin/providers/{id}/exchange-rates"),
            &app.admin_token,
        )
        .await;
    assert_eq!(history.status, 200, "{}", history.text);
    let rates: Vec<&str> = history.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["exchange_rate"].as_str().unwrap())
        .collect();
    assert_eq!(rates, vec!["1.2", "1.1"]);
    // Each names the operator who set it.
    for entry in history.body["data"].as_array().unwrap() {
        assert_eq!(entry["set_by"], app.admin_id, "{}", history.text);
    }
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_reply_in_another_currency_changes_no_cost_and_is_flagged() {
    let (app, _upstream, panel, provider_id, followers) = eur_setup(3600).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, followers, 1000).await;
    app.worker_pass().await;
    let remote = app.provider_order(order).provider_order_id.unwrap();
    // Expected at send time: 0.9 EUR × 1.1 = 0.99.
    let sent = money(&app, order).await;
    assert_eq!(sent["currency"], "EUR");
    assert_eq!(sent["exchange_rate"], "1.1");
    assert_eq!(micros(&sent["expected_cost_provider"]), 900_000);
    assert_eq!(micros(&sent["expected_cost"]), 990_000);
    // Polled in the same pass: the Pending reply's charge, 0.9 EUR.
    assert_eq!(micros(&sent["latest_charge"]), 990_000);
    let reported_at = sent["charge_reported_at"].clone();
    assert!(reported_at.is_string());

    panel.lock().unwrap().statuses.insert(
        remote.clone(),
        json!({"charge": "0.5", "status": "In progress", "remains": "1000", "currency": "USD"}),
    );
    app.make_due();
    app.worker_pass().await;
    assert_eq!(
        app.order_json(&reseller.token, order).await["status"],
        "in_progress"
    );
    // Its charge (0.5 USD) is not used: the cost stays as the provider last billed it.
    let after = money(&app, order).await;
    assert_eq!(micros(&after["latest_charge_provider"]), 900_000, "{after}");
    assert_eq!(micros(&after["first_charge_provider"]), 900_000);
    assert_eq!(after["charge_reported_at"], reported_at);
    let providers = app.get("/v1/admin/providers", &app.admin_token).await;
    let provider = &providers.body["data"][0];
    assert_eq!(provider["id"], provider_id);
    assert_eq!(provider["currency_mismatch"], "USD", "{}", providers.text);
    assert!(provider["currency_mismatch_at"].is_string());
    assert_eq!(count_events(&app, "provider.currency_mismatch"), 1);

    // A Partial in the wrong currency still refunds (the outcome is known): 1.089 × 500/1000.
    panel.lock().unwrap().statuses.insert(
        remote.clone(),
        json!({"charge": "0.3", "status": "Partial", "remains": "500", "currency": "USD"}),
    );
    app.make_due();
    app.worker_pass().await;
    let body = app.order_json(&reseller.token, order).await;
    assert_eq!(body["status"], "partial");
    assert_eq!(micros(&body["refunded"]), 544_500);
    let after = money(&app, order).await;
    assert_eq!(micros(&after["latest_charge_provider"]), 900_000, "{after}");
    assert_eq!(micros(&after["cost"]), 990_000);
    assert_eq!(count_events(&app, "provider.currency_mismatch"), 1);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_partial_the_provider_credits_back_shows_recovered() {
    let (app, upstream, panel, _, followers) = eur_setup(3600).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let credited = app.order_id(&reseller.token, followers, 1000).await;
    let later = app.order_id(&reseller.token, followers, 1000).await;
    app.worker_pass().await;
    let remote = app.provider_order(credited).provider_order_id.unwrap();
    let remote_later = app.provider_order(later).provider_order_id.unwrap();

    // A quarter undelivered: we refund 1.089 × 250/1000 = 0.27225; the provider's charge
    // falls from 0.9 to 0.675 EUR in the same reply (credited in full).
    panel
        .lock()
        .unwrap()
        .report(&remote, "Partial", 250, "0.675");
    // The other is credited later, in two steps.
    panel
        .lock()
        .unwrap()
        .report(&remote_later, "Partial", 250, "0.9");
    app.make_due();
    app.worker_pass().await;
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, credited).await,
        272_250
    );

    let m = money(&app, credited).await;
    assert_eq!(micros(&m["latest_charge_provider"]), 675_000, "{m}");
    assert_eq!(micros(&m["latest_charge"]), 742_500);
    assert_eq!(micros(&m["first_charge_provider"]), 900_000);
    assert_eq!(micros(&m["revenue"]), 816_750);
    assert_eq!(micros(&m["cost"]), 742_500);
    assert_eq!(micros(&m["margin"]), 74_250);
    let r = &m["recovery"];
    assert_eq!(r["state"], "recovered", "{m}");
    assert_eq!(micros(&r["refunded"]), 272_250);
    // 0.225 EUR expected back and credited: 0.2475 USD.
    assert_eq!(micros(&r["expected_credit"]), 247_500);
    assert_eq!(micros(&r["credited"]), 247_500);
    assert_eq!(micros(&r["shortfall"]), 0);

    let m = money(&app, later).await;
    assert_eq!(m["recovery"]["state"], "watching", "{m}");
    assert_eq!(micros(&m["recovery"]["shortfall"]), 247_500);
    // The watch asks about the final order again, apart from the status sync.
    let asked = |upstream: &StandIn| {
        upstream
            .calls_of("status")
            .iter()
            .filter(|c| c["orders"].split(',').any(|id| id == remote_later))
            .count()
    };
    let before = asked(&upstream);
    panel
        .lock()
        .unwrap()
        .report(&remote_later, "Partial", 250, "0.8");
    app.worker_pass().await;
    assert!(asked(&upstream) > before);
    let m = money(&app, later).await;
    assert_eq!(m["recovery"]["state"], "watching", "{m}");
    assert_eq!(micros(&m["recovery"]["credited"]), 110_000);
    assert_eq!(micros(&m["recovery"]["shortfall"]), 137_500);
    // Within the provider's rounding (0.0001) of the full credit: recovered.
    panel
        .lock()
        .unwrap()
        .report(&remote_later, "Partial", 250, "0.67505");
    app.worker_pass().await;
    let m = money(&app, later).await;
    assert_eq!(m["recovery"]["state"], "recovered", "{m}");
    assert_eq!(micros(&m["recovery"]["shortfall"]), 0);
    // Recovered orders are not asked about again.
    let settled = asked(&upstream);
    app.worker_pass().await;
    assert_eq!(asked(&upstream), settled);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_recovery_is_measured_from_what_the_provider_charged_before_the_partial() {
    let (app, _upstream, panel, _, followers) = eur_setup(3600).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, followers, 1000).await;
    app.worker_pass().await;
    let remote = app.provider_order(order).provider_order_id.unwrap();
    // The provider's price rose since the sync: it bills 1.00 EUR, not the expected 0.90.
    panel
        .lock()
        .unwrap()
        .report(&remote, "In progress", 1000, "1.0");
    app.make_due();
    app.worker_pass().await;
    // A quarter undelivered; its charge falls by a quarter of what it billed: 0.75 EUR.
    panel
        .lock()
        .unwrap()
        .report(&remote, "Partial", 250, "0.75");
    app.make_due();
    app.worker_pass().await;
    let m = money(&app, order).await;
    assert_eq!(micros(&m["baseline_charge_provider"]), 1_000_000, "{m}");
    assert_eq!(micros(&m["expected_cost_provider"]), 900_000);
    let r = &m["recovery"];
    // Measured from the expected 0.90 it would look 0.075 EUR short; from what it
    // billed, 0.25 EUR (0.275 USD) was due and credited.
    assert_eq!(r["state"], "recovered", "{m}");
    assert_eq!(micros(&r["expected_credit"]), 275_000);
    assert_eq!(micros(&r["credited"]), 275_000);
    assert_eq!(micros(&r["shortfall"]), 0);
    // Revenue 0.81675 against its latest charge 0.825 USD.
    assert_eq!(micros(&m["cost"]), 825_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_partial_the_provider_does_not_credit_is_unrecovered_after_the_window() {
    let (app, _upstream, panel, _, followers) = eur_setup(0).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, followers, 1000).await;
    app.worker_pass().await;
    let remote = app.provider_order(order).provider_order_id.unwrap();
    panel.lock().unwrap().report(&remote, "Partial", 250, "0.9");
    app.make_due();
    app.worker_pass().await;
    app.worker_pass().await;
    let m = money(&app, order).await;
    assert_eq!(m["recovery"]["state"], "unrecovered", "{m}");
    assert_eq!(micros(&m["recovery"]["refunded"]), 272_250);
    assert_eq!(micros(&m["recovery"]["credited"]), 0);
    assert_eq!(micros(&m["recovery"]["shortfall"]), 247_500);
    // Revenue 0.81675 against the unchanged cost 0.99: a loss.
    assert_eq!(micros(&m["cost"]), 990_000);
    assert_eq!(m["margin"], "-0.17325");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn resellers_see_neither_cost_nor_margin_and_an_account_in_another_currency_cannot_order() {
    let (app, _upstream, _panel, _, followers) = eur_setup(3600).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, followers, 1000).await;
    app.worker_pass().await;
    let body = app.order_json(&reseller.token, order).await;
    let text = body.to_string();
    for word in ["cost", "margin", "money", "exchange_rate", "recovery"] {
        assert!(!text.contains(word), "{word} in {text}");
    }
    let listed = app.get("/v1/orders", &reseller.token).await;
    assert!(!listed.text.contains("cost") && !listed.text.contains("margin"));
    app.get(&format!("/v1/admin/orders/{order}"), &reseller.token)
        .await
        .assert_problem(403, "admin_only");
    let status = app
        .api_v2(&[
            ("key", &reseller.key),
            ("action", "status"),
            ("order", &order.to_string()),
        ])
        .await;
    assert!(!status.text.contains("cost") && !status.text.contains("margin"));

    // An account in EUR on a USD panel is refused, and nothing is charged.
    let eur = app
        .post(
            "/v1/admin/accounts",
            &app.admin_token,
            json!({"name": "Euro reseller", "role": "reseller", "currency": "EUR"}),
        )
        .await;
    assert_eq!(eur.status, 201, "{}", eur.text);
    let eur_id = eur.body["account"]["id"].as_i64().unwrap();
    let eur_key = eur.body["api_key"].as_str().unwrap().to_string();
    let eur_token = app.token_for(&eur_key).await;
    app.top_up(eur_id, "10").await;
    let orders_before = app.order_count();
    let refused = app.order(&eur_token, followers, 1000).await;
    refused.assert_problem(409, "currency_mismatch");
    assert!(refused.text.contains("EUR") && refused.text.contains("USD"));
    let v2 = app
        .api_v2(&[
            ("key", &eur_key),
            ("action", "add"),
            ("service", &followers.to_string()),
            ("link", "https://instagram.com/p/abc"),
            ("quantity", "1000"),
        ])
        .await;
    assert_eq!(v2.status, 200);
    assert!(
        v2.body["error"].as_str().unwrap().contains("EUR"),
        "{}",
        v2.text
    );
    assert_eq!(app.order_count(), orders_before);
    assert_eq!(app.balance_micros(&eur_token).await, 10_000_000);

    // A bad setting is refused and changes nothing.
    app.patch(
        "/v1/admin/settings",
        &app.admin_token,
        json!({"currency": "dollars"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let settings = app.get("/v1/admin/settings", &app.admin_token).await;
    assert_eq!(settings.body["currency"], "USD");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_provider_that_credits_its_balance_is_owed_through_it_never_unrecovered() {
    let (app, upstream, panel, provider_id, followers) = eur_setup_with(0, |c| {
        c.alerts.alert_interval_secs = 0;
        c.alerts.alert_unrecovered_min_refunds = 1;
    })
    .await;
    let patched = app
        .patch(
            &format!("/v1/admin/providers/{provider_id}"),
            &app.admin_token,
            json!({"credit_mode": "balance"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["credit_mode"], "balance");
    app.patch(
        &format!("/v1/admin/providers/{provider_id}"),
        &app.admin_token,
        json!({"credit_mode": "refund"}),
    )
    .await
    .assert_problem(422, "validation_failed");

    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, followers, 1000).await;
    app.worker_pass().await;
    let remote = app.provider_order(order).provider_order_id.unwrap();
    // A quarter undelivered; the provider leaves its charge at 0.9 EUR (it credits its
    // balance instead). Our refund is exact as ever: 0.27225.
    panel.lock().unwrap().report(&remote, "Partial", 250, "0.9");
    app.make_due();
    app.worker_pass().await;
    app.worker_pass().await;
    assert_eq!(
        app.refunded_in_ledger(&reseller.token, order).await,
        272_250
    );
    let m = money(&app, order).await;
    let r = &m["recovery"];
    assert_eq!(r["state"], "to_balance", "{m}");
    assert_eq!(micros(&r["expected_credit"]), 247_500);
    assert_eq!(micros(&r["shortfall"]), 0);
    // The watch does not ask about it: the reply cannot show the credit.
    let asked = upstream
        .calls_of("status")
        .iter()
        .filter(|c| c["orders"].split(',').any(|id| id == remote))
        .count();
    app.worker_pass().await;
    let again = upstream
        .calls_of("status")
        .iter()
        .filter(|c| c["orders"].split(',').any(|id| id == remote))
        .count();
    assert_eq!(asked, again);

    let report = app
        .get(
            "/v1/admin/reports/provider-money?group_by=provider",
            &app.admin_token,
        )
        .await;
    assert_eq!(report.status, 200, "{}", report.text);
    let t = &report.body["totals"];
    assert_eq!(micros(&t["refunds_paid"]), 272_250, "{}", report.text);
    assert_eq!(micros(&t["credited_to_balance"]), 247_500);
    assert_eq!(micros(&t["expected_credits"]), 0);
    assert_eq!(micros(&t["unrecovered"]), 0);
    assert_eq!(t["recovery_rate"], "1");
    let csv = app
        .get(
            "/v1/admin/reports/provider-money?group_by=provider&format=csv",
            &app.admin_token,
        )
        .await;
    let lines: Vec<&str> = csv.text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(
        lines[0].ends_with(",recovery_rate,credited_to_balance"),
        "{}",
        csv.text
    );
    assert!(lines.last().unwrap().ends_with(",1,0.2475"), "{}", csv.text);
    // No unrecovered alert for it: nothing it owes is judged from its charge.
    app.webhook_pass().await;
    let alerts = app
        .get("/v1/admin/alerts?active=true", &app.admin_token)
        .await;
    assert_eq!(alerts.status, 200, "{}", alerts.text);
    assert!(
        alerts.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["measure"] != "unrecovered"),
        "{}",
        alerts.text
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn the_provider_money_report_equals_a_hand_computation_in_json_and_csv() {
    let (app, _upstream, panel, provider_id, followers) = eur_setup(0).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let credited = app.order_id(&reseller.token, followers, 1000).await;
    let uncredited = app.order_id(&reseller.token, followers, 1000).await;
    let completed = app.order_id(&reseller.token, followers, 500).await;
    app.worker_pass().await;
    let remote = |order| app.provider_order(order).provider_order_id.unwrap();
    {
        let mut state = panel.lock().unwrap();
        state.report(&remote(credited), "Partial", 250, "0.675");
        state.report(&remote(uncredited), "Partial", 250, "0.9");
        state.report(&remote(completed), "Completed", 0, "0.45");
    }
    app.make_due();
    app.worker_pass().await;
    app.worker_pass().await;

    // By hand, in micro-units of USD (EUR × 1.1, half-up). Our rate 1.089 per 1000:
    // charges 1.089, 1.089 and 0.5445; the two Partials refunded 0.27225 each.
    let charges = [1_089_000, 1_089_000, 544_500];
    let refunds = [272_250, 272_250, 0];
    let revenue: i64 = (0..3).map(|i| charges[i] - refunds[i]).sum();
    // Latest provider charges: 0.675, 0.9 and 0.45 EUR.
    let costs = [742_500, 990_000, 495_000];
    let provider_cost: i64 = costs.iter().sum();
    // Each Partial should bring back a quarter of 0.9 EUR: 0.225 EUR = 0.2475 USD; only
    // the first did.
    let expected_credits = 2 * 247_500;
    let recovered = 247_500;
    assert_eq!(revenue, 2_178_000);
    assert_eq!(provider_cost, 2_227_500);

    let check = |m: &Value| {
        assert_eq!(m["orders_count"], 3, "{m}");
        assert_eq!(micros(&m["revenue"]), revenue, "{m}");
        assert_eq!(micros(&m["provider_cost"]), provider_cost);
        assert_eq!(micros(&m["margin"]), revenue - provider_cost);
        assert_eq!(m["orders_without_cost"], 0);
        assert_eq!(micros(&m["refunds_paid"]), refunds.iter().sum::<i64>());
        assert_eq!(micros(&m["expected_credits"]), expected_credits);
        assert_eq!(micros(&m["credits_recovered"]), recovered);
        assert_eq!(micros(&m["unrecovered"]), expected_credits - recovered);
        assert_eq!(micros(&m["awaiting_credit"]), 0);
        assert_eq!(m["recovery_rate"], "0.5");
    };
    for group in ["provider", "service", "day", "week"] {
        let report = app
            .get(
                &format!("/v1/admin/reports/provider-money?group_by={group}&timezone=%2B05:30"),
                &app.admin_token,
            )
            .await;
        assert_eq!(report.status, 200, "{}", report.text);
        assert_eq!(report.body["currency"], "USD");
        assert_eq!(report.body["timezone"], "+05:30");
        check(&report.body["totals"]);
        let rows = report.body["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{}", report.text);
        check(&rows[0]);
        if group == "provider" {
            assert_eq!(rows[0]["group"], provider_id.to_string());
            assert_eq!(rows[0]["label"], "Euro");
        }
    }
    assert_eq!(micros(&json!("-0.0495")), revenue - provider_cost);

    let csv = app
        .get(
            "/v1/admin/reports/provider-money?group_by=provider&format=csv",
            &app.admin_token,
        )
        .await;
    assert_eq!(csv.status, 200, "{}", csv.text);
    let lines: Vec<&str> = csv.text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "group,label,start,end,orders_count,revenue,provider_cost,margin,orders_without_cost,\
         refunds_paid,expected_credits,credits_recovered,unrecovered,awaiting_credit,recovery_rate,\
         credited_to_balance"
    );
    let total: Vec<&str> = lines.last().unwrap().split(',').collect();
    assert_eq!(total[0], "total");
    assert_eq!(
        &total[4..],
        &[
            "3", "2.178", "2.2275", "-0.0495", "0", "0.5445", "0.495", "0.2475", "0.2475", "0",
            "0.5", "0"
        ]
    );
    assert_eq!(lines.len(), 3);

    // Bad input names the parameter and is never a 500; resellers cannot read it.
    app.get(
        "/v1/admin/reports/provider-money?group_by=reason",
        &app.admin_token,
    )
    .await
    .assert_problem(422, "validation_failed");
    app.get(
        "/v1/admin/reports/provider-money?timezone=Mars",
        &app.admin_token,
    )
    .await
    .assert_problem(422, "validation_failed");
    app.get("/v1/admin/reports/provider-money", &reseller.token)
        .await
        .assert_problem(403, "admin_only");
    // A window before any order: nothing, and a recovery rate of 1.
    let empty = app
        .get(
            "/v1/admin/reports/provider-money?from=2020-01-01&to=2020-02-01",
            &app.admin_token,
        )
        .await;
    assert_eq!(empty.body["totals"]["orders_count"], 0, "{}", empty.text);
    assert_eq!(empty.body["totals"]["recovery_rate"], "1");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn unrecovered_refunds_raise_a_provider_alert_that_pauses_forwarding() {
    let (app, upstream, panel, provider_id, followers) = eur_setup_with(0, |c| {
        c.alerts.alert_interval_secs = 0;
        c.alerts.alert_unrecovered_min_refunds = 1;
        c.alerts.alert_unrecovered_warning_rate = "0.2".parse().unwrap();
        c.alerts.alert_unrecovered_critical_rate = "0.5".parse().unwrap();
        c.alerts.alert_pause_forwarding = true;
    })
    .await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let credited = app.order_id(&reseller.token, followers, 1000).await;
    let uncredited = app.order_id(&reseller.token, followers, 1000).await;
    app.worker_pass().await;
    {
        let remote = |order| app.provider_order(order).provider_order_id.unwrap();
        let mut state = panel.lock().unwrap();
        state.report(&remote(credited), "Partial", 500, "0.45");
        state.report(&remote(uncredited), "Partial", 500, "0.9");
    }
    app.make_due();
    app.worker_pass().await;
    app.worker_pass().await;
    assert_eq!(
        money(&app, uncredited).await["recovery"]["state"],
        "unrecovered"
    );

    // Half of what should have come back did not: 0.495 of 0.99, at the critical rate.
    app.webhook_pass().await;
    let alerts = app
        .get("/v1/admin/alerts?active=true", &app.admin_token)
        .await;
    assert_eq!(alerts.status, 200, "{}", alerts.text);
    let ours: Vec<&Value> = alerts.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["measure"] == "unrecovered")
        .collect();
    assert_eq!(ours.len(), 3, "one per window: {}", alerts.text);
    for alert in &ours {
        assert_eq!(alert["scope"], "provider");
        assert_eq!(alert["subject_id"], provider_id);
        assert_eq!(alert["level"], "critical", "{alert}");
        assert_eq!(alert["rate"], "0.5");
        assert_eq!(alert["orders"], 2);
        assert_eq!(alert["refunded_orders"], 1);
        assert_eq!(micros(&alert["charged"]), 990_000);
        assert_eq!(micros(&alert["refunded"]), 495_000);
    }
    assert!(count_events(&app, "alert.raised") >= 3);

    // New orders are still taken (the reseller is not refused) but wait queued.
    let sent_before = upstream.calls_of("add").len();
    let waiting = app.order_id(&reseller.token, followers, 1000).await;
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("add").len(), sent_before);
    assert_eq!(
        app.provider_order(waiting).state,
        reseller_api::domain::provider::ForwardingState::Queued
    );
    // Without the pause it goes out.
    {
        use diesel::prelude::*;
        use reseller_api::db::schema::alerts;
        let mut conn = app.pool.get().unwrap();
        diesel::update(alerts::table)
            .set(alerts::pauses_orders.eq(false))
            .execute(&mut *conn)
            .unwrap();
    }
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("add").len(), sent_before + 1);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn the_upgrade_takes_the_currency_most_accounts_hold_and_keeps_alert_rows() {
    use crate::helpers::{empty_database, spawn_app_on};
    use diesel::prelude::*;
    let (url, _db) = empty_database();
    // The schema just before provider money, with a panel whose resellers hold EUR.
    reseller_api::db::migrate_through(&url, Some("2026-12-07-000500")).unwrap();
    {
        let pool = reseller_api::db::connect(&url, 1).expect("connect");
        let mut conn = pool.get().unwrap();
        let now = "2026-12-01 10:00:00";
        let mut statements = Vec::new();
        for (name, currency) in [("a", "EUR"), ("b", "EUR"), ("c", "USD")] {
            statements.push(format!(
                "INSERT INTO accounts (name, role, status, currency, balance_micros, created_at, updated_at) \
                 VALUES ('{name}', 'reseller', 'active', '{currency}', 0, '{now}', '{now}')"
            ));
        }
        statements.push(format!(
            "INSERT INTO providers (name, url, api_key, enabled, timeout_ms, batch_size, idempotent_add, \
             created_at, updated_at, markup_percent_micros, auto_sync) \
             VALUES ('Old', 'http://127.0.0.1:9/api/v2', 'k', false, 1000, 100, false, '{now}', '{now}', 0, false)"
        ));
        statements.push(format!(
            "INSERT INTO alerts (scope, subject_id, window_name, measure, level, active, rate_ppm, \
             threshold_ppm, orders, refunded_orders, charged_micros, refunded_micros, pauses_orders, \
             raised_at, updated_at) VALUES ('service', 1, '24h', 'amount', 'warning', true, 300000, \
             200000, 10, 3, 10000000, 3000000, false, '{now}', '{now}')"
        ));
        for sql in statements {
            diesel::sql_query(sql).execute(&mut *conn).unwrap();
        }
    }
    let app = spawn_app_on(&url).await;
    let settings = app.get("/v1/admin/settings", &app.admin_token).await;
    assert_eq!(settings.body["currency"], "EUR", "{}", settings.text);
    // The existing provider bills in the panel's currency, as it was read until now.
    let providers = app.get("/v1/admin/providers", &app.admin_token).await;
    assert_eq!(providers.status, 200, "{}", providers.text);
    let old = &providers.body["data"][0];
    assert_eq!(old["currency"], "EUR", "{}", providers.text);
    assert!(old["exchange_rate"].is_null(), "{}", providers.text);
    // The alert survives the rebuild of its table with its id and figures.
    let alerts = app.get("/v1/admin/alerts", &app.admin_token).await;
    assert_eq!(alerts.status, 200, "{}", alerts.text);
    let alert = &alerts.body["data"][0];
    assert_eq!(
        (alert["id"].as_i64(), &alert["measure"]),
        (Some(1), &json!("amount")),
        "{}",
        alerts.text
    );
    app.assert_books_balance();
}

#[actix_rt::test]
async fn the_newest_migrations_revert_and_apply_again_keeping_the_books() {
    use crate::helpers::spawn_app_on;
    let (url, _db) = crate::helpers::empty_database();
    reseller_api::db::migrate(&url).unwrap();
    let (order, reseller_token) = {
        let app = spawn_app_on(&url).await;
        let reseller = app.funded_reseller("Acme", "10").await;
        let service = app.service("2").await;
        (
            app.order_id(&reseller.token, service, 1000).await,
            reseller.token,
        )
    };
    // The newest migrations (provider money and after), undone newest first, then applied
    // again. (The audit log's own start is stamped when it is applied, so it stays.)
    reseller_api::db::revert_through(&url, "2026-12-07-000900").unwrap();
    reseller_api::db::migrate(&url).unwrap();
    let app = spawn_app_on(&url).await;
    let read = app
        .get(&format!("/v1/orders/{order}"), &reseller_token)
        .await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(micros(&read.body["charge"]), 2_000_000);
    app.assert_books_balance();
}
