//! `verify` on a live database: it reads one snapshot, so writes committed while it runs
//! never look like broken books; a balance really changed behind the ledger's back does.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use diesel::connection::SimpleConnection;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use reseller_api::db::{verify, DbPool};

/// One verify run on its own pooled connection in a blocking thread, `page` rows a read.
async fn verify_paged(pool: &DbPool, page: i64) -> verify::Report {
    let pool = pool.clone();
    actix_rt::task::spawn_blocking(move || {
        let mut conn = pool.get().unwrap();
        verify::run_paged(&mut conn, page, &mut |_| {}).expect("verify")
    })
    .await
    .unwrap()
}

/// Places orders of 1.000000 and records outcomes (with their refunds) until `stop`;
/// returns how many orders it placed and what they cost net of refunds, in micro-units.
async fn write_load(
    app: Rc<TestApp>,
    token: String,
    service: i64,
    stop: Arc<AtomicBool>,
) -> (i64, i64) {
    let (mut placed, mut spent) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let order = app.order_id(&token, service, 1000).await;
        placed += 1;
        let (outcome, refund) = match placed % 3 {
            0 => (json!({"status": "partial", "remains": 250}), 250_000),
            1 => (json!({"status": "canceled"}), 1_000_000),
            _ => (json!({"status": "completed"}), 0),
        };
        let reply = app.outcome(order, outcome).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        spent += 1_000_000 - refund;
    }
    (placed, spent)
}

/// An order committed after verify read the ledger but before it read the orders and the
/// balances: a run that reads table by table sees a charge with no ledger entry and a
/// balance its ledger does not sum to. One snapshot sees neither the order nor its debit.
#[actix_rt::test]
async fn a_write_committed_between_pages_is_not_an_inconsistency() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let service = app.service("1").await;
    for _ in 0..3 {
        app.order_id(&reseller.token, service, 1000).await;
    }

    // Verify pauses after it has read the whole ledger and the first page of orders, until
    // the test has placed an order and refunded part of it.
    let (paused_tx, mut paused_rx) = tokio::sync::mpsc::channel::<()>(1);
    let (go_tx, mut go_rx) = tokio::sync::mpsc::channel::<()>(1);
    let pool = app.pool.clone();
    let run = actix_rt::task::spawn_blocking(move || {
        let mut conn = pool.get().unwrap();
        let mut first = true;
        verify::run_paged(&mut conn, 1, &mut |table| {
            if table == "orders" && std::mem::take(&mut first) {
                paused_tx.blocking_send(()).unwrap();
                go_rx.blocking_recv().unwrap();
            }
        })
        .expect("verify")
    });
    paused_rx.recv().await.unwrap();
    let late = app.order_id(&reseller.token, service, 2000).await;
    let reply = app
        .outcome(late, json!({"status": "partial", "remains": 500}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    go_tx.send(()).await.unwrap();
    let report = run.await.unwrap();

    assert!(
        report.problems.is_empty(),
        "verify found: {:#?}",
        report.problems
    );
    // It saw the books as they were when it started: three orders, top-up + three charges.
    assert_eq!(report.orders, 3);
    assert_eq!(report.entries, 4);
    assert_eq!(report.refunds, 0);
    // The next run sees the late order, its charge and its refund of 0.5 of 2.
    let report = verify_paged(&app.pool, 1).await;
    assert!(
        report.problems.is_empty(),
        "verify found: {:#?}",
        report.problems
    );
    assert_eq!((report.orders, report.entries, report.refunds), (4, 6, 1));
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        100_000_000 - 3 * 1_000_000 - 2_000_000 + 500_000
    );
}

/// Verify run again and again while four clients place orders and outcomes refund them:
/// every run passes. Then a balance changed by raw SQL fails it, naming the account.
#[actix_rt::test]
async fn verify_passes_during_a_write_load_and_fails_on_a_tampered_balance() {
    // The operator records every outcome: no quota in the way of the load.
    let app = Rc::new(
        spawn_app_with(|c| c.limits.rate_account = std::num::NonZeroU32::new(1_000_000).unwrap())
            .await,
    );
    let service = app.service("1").await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut resellers = Vec::new();
    let mut writers = Vec::new();
    for n in 0..4 {
        let reseller = app
            .funded_reseller(&format!("Reseller {n}"), "100000")
            .await;
        writers.push(actix_rt::spawn(write_load(
            app.clone(),
            reseller.token.clone(),
            service,
            stop.clone(),
        )));
        resellers.push(reseller);
    }

    // Until at least 30 runs have passed and the last one saw 60 orders or more.
    let (mut runs, mut largest) = (0, 0);
    while runs < 30 || largest < 60 {
        // Small pages: many reads per run, each a chance to see a later commit.
        let report = verify_paged(&app.pool, 3).await;
        assert!(
            report.problems.is_empty(),
            "verify run {runs} during the load found: {:#?}",
            report.problems
        );
        largest = largest.max(report.orders);
        runs += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let mut placed = 0;
    for (writer, reseller) in writers.into_iter().zip(&resellers) {
        let (orders, spent) = writer.await.unwrap();
        placed += orders;
        assert_eq!(
            app.balance_micros(&reseller.token).await,
            100_000_000_000 - spent
        );
    }
    let report = verify_paged(&app.pool, 3).await;
    assert!(
        report.problems.is_empty(),
        "verify found: {:#?}",
        report.problems
    );
    assert_eq!(report.orders as i64, placed);

    let victim = resellers[2].id;
    app.pool
        .get()
        .unwrap()
        .batch_execute(&format!(
            "UPDATE accounts SET balance_micros = balance_micros + 1 WHERE id = {victim}"
        ))
        .unwrap();
    let report = verify_paged(&app.pool, 3).await;
    assert_eq!(
        report
            .problems
            .iter()
            .filter(|p| p.starts_with(&format!("account {victim}: balance ")))
            .count(),
        1,
        "{:#?}",
        report.problems
    );
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
}
