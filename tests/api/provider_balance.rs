//! The provider's balance: read on a schedule; below the operator's minimum, forwarding to
//! that provider pauses (orders wait queued) and resumes once it is above again.

use serde_json::json;

use reseller_api::domain::provider::ForwardingState;

use crate::helpers::{micros, spawn_app_with, StandIn};

#[actix_rt::test]
async fn low_provider_balance_pauses_forwarding_and_a_top_up_resumes_it() {
    let (upstream, panel) = StandIn::panel().await;
    panel.lock().unwrap().balance = "3.20000".into();
    let app = spawn_app_with(|c| {
        c.worker.sync_interval_secs = 0;
        c.worker.max_backoff_secs = 0;
        c.worker.balance_interval_secs = 0;
    })
    .await;
    let (provider, service) = app.provider_service(&upstream.url, false, 2000).await;
    let patched = app
        .patch(
            &format!("/v1/admin/providers/{provider}"),
            &app.admin_token,
            json!({"min_balance": "5"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(micros(&patched.body["min_balance"]), 5_000_000);
    let reseller = app.funded_reseller("Acme", "10").await;
    let order = app.order_id(&reseller.token, service, 1000).await;

    app.worker_pass().await;
    assert_eq!(upstream.calls_of("balance").len(), 1);
    assert!(
        upstream.calls_of("add").is_empty(),
        "nothing sent below the minimum"
    );
    assert_eq!(app.provider_order(order).state, ForwardingState::Queued);
    let listed = app.get("/v1/admin/providers", &app.admin_token).await;
    let row = &listed.body["data"][0];
    assert_eq!(micros(&row["balance"]), 3_200_000, "{}", listed.text);
    assert_eq!(row["balance_currency"], "USD");
    assert!(row["balance_checked_at"].is_string());
    assert!(
        row["paused_because"]
            .as_str()
            .unwrap()
            .contains("below the minimum 5"),
        "{row}"
    );

    // The operator tops the provider up: the next reading resumes forwarding.
    panel.lock().unwrap().balance = "50.5".into();
    app.make_due();
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("add").len(), 1);
    assert_eq!(app.provider_order(order).state, ForwardingState::Sent);
    let listed = app.get("/v1/admin/providers", &app.admin_token).await;
    assert_eq!(
        listed.body["data"][0]["paused_because"],
        serde_json::Value::Null
    );
    assert_eq!(micros(&listed.body["data"][0]["balance"]), 50_500_000);

    // Without a minimum the balance is not asked for.
    let cleared = app
        .patch(
            &format!("/v1/admin/providers/{provider}"),
            &app.admin_token,
            json!({"min_balance": null}),
        )
        .await;
    assert_eq!(
        cleared.body["min_balance"],
        serde_json::Value::Null,
        "{}",
        cleared.text
    );
    let asked = upstream.calls_of("balance").len();
    app.worker_pass().await;
    assert_eq!(upstream.calls_of("balance").len(), asked);
    app.patch(
        &format!("/v1/admin/providers/{provider}"),
        &app.admin_token,
        json!({"min_balance": "-1"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    assert_eq!(app.balance_micros(&reseller.token).await, 9_000_000);
    app.assert_books_balance();
}
