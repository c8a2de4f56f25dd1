use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{micros, spawn_app};

#[actix_rt::test]
async fn a_top_up_credits_the_balance_through_the_ledger() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let reply = app
        .post(
            &format!("/v1/admin/accounts/{}/top-ups", reseller.id),
            &app.admin_token,
            json!({"amount": "25.000001", "gateway": "stripe", "gateway_ref": "pi_123"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["amount"], "25.000001");
    assert_eq!(reply.body["refunded"], "0");
    assert_eq!(reply.body["account_id"], reseller.id);
    let ledger = app.ledger(&reseller.token).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["kind"], "top_up");
    assert_eq!(micros(&ledger[0]["amount"]), 25_000_001);
    assert_eq!(ledger[0]["top_up_id"], reply.body["id"]);
    assert_eq!(app.balance_micros(&reseller.token).await, 25_000_001);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_gateway_reference_is_credited_once_even_when_sent_concurrently() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let path = format!("/v1/admin/accounts/{}/top-ups", reseller.id);
    let body = json!({"amount": "10", "gateway": "stripe", "gateway_ref": "pi_dup"});
    let replies = join_all((0..8).map(|_| app.post(&path, &app.admin_token, body.clone()))).await;
    assert_eq!(replies.iter().filter(|r| r.status == 201).count(), 1);
    for reply in replies.iter().filter(|r| r.status != 201) {
        reply.assert_problem(409, "duplicate_gateway_ref");
    }
    assert_eq!(app.balance_micros(&reseller.token).await, 10_000_000);
    app.post(
        "/v1/admin/accounts/999/top-ups",
        &app.admin_token,
        json!({"amount": "1", "gateway": "g", "gateway_ref": "new"}),
    )
    .await
    .assert_problem(404, "not_found");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn verify_finds_a_balance_that_does_not_match_its_ledger() {
    use diesel::prelude::*;
    use reseller_api::db::schema::accounts;
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    app.assert_books_balance();
    let mut conn = app.pool.get().unwrap();
    diesel::update(accounts::table.find(reseller.id))
        .set(accounts::balance_micros.eq(accounts::balance_micros + 1))
        .execute(&mut *conn)
        .unwrap();
    let report = reseller_api::db::verify::run(&mut conn).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains(&format!("account {}", reseller.id)));
}
