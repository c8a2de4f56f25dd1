use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::helpers::{micros, spawn_app, spawn_app_with, Reply, TestApp};

/// What a report should say for one group, computed by the test from the orders and
/// refunds the API lists.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Expected {
    orders: i64,
    charged: i64,
    refunded_orders: i64,
    refunds: i64,
    refunded: i64,
    by_reason: BTreeMap<String, (i64, i64)>,
}

#[derive(Debug, Clone)]
struct OrderFact {
    id: i64,
    account_id: i64,
    service_id: i64,
    charge: i64,
    refunded: i64,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct RefundFact {
    order_id: i64,
    amount: i64,
    reason: String,
}

fn rate(part: i64, whole: i64) -> String {
    if whole == 0 {
        return "0".into();
    }
    (Decimal::from(part) / Decimal::from(whole))
        .round_dp_with_strategy(6, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        .normalize()
        .to_string()
}

fn metrics_of(value: &Value) -> Expected {
    let by_reason = value["by_reason"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(reason, sums)| {
            (
                reason.clone(),
                (sums["count"].as_i64().unwrap(), micros(&sums["amount"])),
            )
        })
        .collect();
    let found = Expected {
        orders: value["orders_count"].as_i64().unwrap(),
        charged: micros(&value["charged_amount"]),
        refunded_orders: value["refunded_orders_count"].as_i64().unwrap(),
        refunds: value["refunds_count"].as_i64().unwrap(),
        refunded: micros(&value["refunded_amount"]),
        by_reason,
    };
    // The rates are the exact ratios of the sums shown, to 6 decimals.
    assert_eq!(
        value["refund_rate_count"].as_str().unwrap(),
        rate(found.refunded_orders, found.orders),
        "{value}"
    );
    assert_eq!(
        value["refund_rate_amount"].as_str().unwrap(),
        rate(found.refunded, found.charged),
        "{value}"
    );
    found
}

/// Every order and order refund the API lists (as the admin sees them), within one page.
async fn facts(app: &TestApp, resellers: &[(i64, String)]) -> (Vec<OrderFact>, Vec<RefundFact>) {
    let mut orders = Vec::new();
    for (account_id, token) in resellers {
        let page = app.get("/v1/orders?limit=100", token).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(page.body["has_more"], false);
        for order in page.body["data"].as_array().unwrap() {
            orders.push(OrderFact {
                id: order["id"].as_i64().unwrap(),
                account_id: *account_id,
                service_id: order["service_id"].as_i64().unwrap(),
                charge: micros(&order["charge"]),
                refunded: micros(&order["refunded"]),
                created_at: order["created_at"].as_str().unwrap().parse().unwrap(),
            });
        }
    }
    let page = app
        .get(
            "/v1/admin/refunds?status=succeeded&limit=100",
            &app.admin_token,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.body["has_more"], false);
    let refunds = page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["order_id"].is_null())
        .map(|r| RefundFact {
            order_id: r["order_id"].as_i64().unwrap(),
            amount: micros(&r["amount"]),
            reason: r["reason"].as_str().unwrap().to_string(),
        })
        .collect();
    (orders, refunds)
}

/// The report's expected rows for a grouping, keyed like the report's `group`.
fn expected_rows(
    group_by: &str,
    offset: FixedOffset,
    orders: &[OrderFact],
    refunds: &[RefundFact],
) -> (BTreeMap<String, Expected>, Expected) {
    use chrono::Datelike;
    let key_of = |order: &OrderFact| -> String {
        let local = order.created_at.with_timezone(&offset).date_naive();
        match group_by {
            "day" => local.to_string(),
            "week" => {
                (local - Duration::days(local.weekday().num_days_from_monday() as i64)).to_string()
            }
            "month" => local.with_day(1).unwrap().to_string(),
            "service" => order.service_id.to_string(),
            "account" => order.account_id.to_string(),
            "provider" => "none".into(),
            _ => String::new(),
        }
    };
    let mut rows: BTreeMap<String, Expected> = BTreeMap::new();
    let mut totals = Expected::default();
    for order in orders {
        totals.orders += 1;
        totals.charged += order.charge;
        totals.refunded_orders += i64::from(order.refunded > 0);
        if group_by != "reason" {
            let row = rows.entry(key_of(order)).or_default();
            row.orders += 1;
            row.charged += order.charge;
            row.refunded_orders += i64::from(order.refunded > 0);
        }
    }
    let mut reason_orders: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for refund in refunds {
        let Some(order) = orders.iter().find(|o| o.id == refund.order_id) else {
            continue;
        };
        let key = if group_by == "reason" {
            reason_orders
                .entry(refund.reason.clone())
                .or_default()
                .insert(order.id);
            refund.reason.clone()
        } else {
            key_of(order)
        };
        for target in [rows.entry(key).or_default(), &mut totals] {
            target.refunds += 1;
            target.refunded += refund.amount;
            let slot = target.by_reason.entry(refund.reason.clone()).or_default();
            slot.0 += 1;
            slot.1 += refund.amount;
        }
    }
    if group_by == "reason" {
        for (reason, row) in rows.iter_mut() {
            row.orders = totals.orders;
            row.charged = totals.charged;
            row.refunded_orders = reason_orders[reason].len() as i64;
        }
    }
    (rows, totals)
}

async fn report(app: &TestApp, path: &str, token: &str) -> Value {
    let reply = app.get(path, token).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    reply.body
}

fn window_around_now() -> (String, String) {
    let now = Utc::now();
    (
        (now - Duration::days(2)).format("%Y-%m-%d").to_string(),
        (now + Duration::days(2)).format("%Y-%m-%d").to_string(),
    )
}

fn assert_report_matches(
    body: &Value,
    group_by: &str,
    offset: FixedOffset,
    orders: &[OrderFact],
    refunds: &[RefundFact],
) {
    let (rows, totals) = expected_rows(group_by, offset, orders, refunds);
    assert_eq!(
        metrics_of(&body["totals"]),
        totals,
        "totals of group_by={group_by}"
    );
    let got: BTreeMap<String, Expected> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["group"].as_str().unwrap().to_string(), metrics_of(row)))
        .collect();
    assert_eq!(got, rows, "rows of group_by={group_by}");
    assert_eq!(body["group_by"], group_by);
}

/// Random orders with random outcomes, cancels and disputes, through the HTTP API.
async fn random_books(app: &TestApp, rng: &mut StdRng) -> (Vec<(i64, String)>, Vec<i64>) {
    let mut services = Vec::new();
    for (i, rate) in ["0.9", "2.5", "0.333333", "17"].iter().enumerate() {
        services.push(
            app.create_service(json!({
                "name": format!("Service {i}"), "category": "Test", "type": "default",
                "rate": rate, "min": 10, "max": 100000, "refill": false, "cancel": i % 2 == 0
            }))
            .await,
        );
    }
    let mut resellers = Vec::new();
    for name in ["Acme", "Globex", "Initech"] {
        let reseller = app.funded_reseller(name, "100000").await;
        resellers.push((reseller.id, reseller.token));
    }
    for _ in 0..30 {
        let (_, token) = &resellers[rng.random_range(0..resellers.len())];
        let service = services[rng.random_range(0..services.len())];
        let quantity = rng.random_range(10..5000);
        let order = app.order_id(token, service, quantity).await;
        match rng.random_range(0..7) {
            0 => {
                let reply = app
                    .outcome(
                        order,
                        json!({"status": "partial", "remains": rng.random_range(0..=quantity)}),
                    )
                    .await;
                assert_eq!(reply.status, 200, "{}", reply.text);
            }
            1 => {
                let reply = app.outcome(order, json!({"status": "canceled"})).await;
                assert_eq!(reply.status, 200, "{}", reply.text);
            }
            2 => {
                let remains = rng.random_range(1..=quantity);
                app.outcome(order, json!({"status": "partial", "remains": remains}))
                    .await;
                app.outcome(order, json!({"status": "canceled"})).await;
            }
            3 | 4 => {
                app.outcome(order, json!({"status": "completed"})).await;
                let reason = ["dropped", "not_delivered", "other"][rng.random_range(0..3)];
                let dispute = app
                    .post(
                        &format!("/v1/orders/{order}/refunds"),
                        token,
                        json!({ "reason": reason }),
                    )
                    .await;
                assert_eq!(dispute.status, 202, "{}", dispute.text);
                let id = dispute.body["id"].as_i64().unwrap();
                match rng.random_range(0..3) {
                    0 => {
                        let asked = micros(&dispute.body["amount"]);
                        let amount = rng.random_range(1..=asked.max(1));
                        let amount = Decimal::new(amount, 6).normalize().to_string();
                        let reply = app
                            .post(
                                &format!("/v1/admin/refunds/{id}/approve"),
                                &app.admin_token,
                                json!({ "amount": amount }),
                            )
                            .await;
                        assert_eq!(reply.status, 200, "{}", reply.text);
                    }
                    1 => {
                        let reply = app
                            .post(
                                &format!("/v1/admin/refunds/{id}/reject"),
                                &app.admin_token,
                                json!({ "reason": "delivered in full" }),
                            )
                            .await;
                        assert_eq!(reply.status, 200, "{}", reply.text);
                    }
                    // Left pending: not a refund yet, so not in the report.
                    _ => {}
                }
            }
            5 => {
                // Cancels succeed on cancellable services; the others stay pending.
                app.post(&format!("/v1/orders/{order}/cancel"), token, json!({}))
                    .await;
            }
            _ => {}
        }
    }
    (resellers, services)
}

#[actix_rt::test]
async fn report_sums_equal_the_underlying_orders_and_refunds_to_the_micro_unit() {
    let seed: u64 = std::env::var("REPORT_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("REPORT_TEST_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    // Random books dispute often; the abuse policy is not what this test is about.
    let app = spawn_app_with(|c| {
        c.limits.rate_dispute = std::num::NonZeroU32::new(10_000).unwrap();
        c.policy.disputes_per_hour = 10_000;
        c.policy.disputes_per_day = 10_000;
        c.policy.cooldown_rejections = 10_000;
        c.policy.refund_rate_min_orders = 10_000;
    })
    .await;
    let (resellers, _) = random_books(&app, &mut rng).await;
    let (orders, refunds) = facts(&app, &resellers).await;
    assert!(!refunds.is_empty(), "the random books hold refunds");
    // The books themselves agree: each order's refunded amount is its refunds' sum.
    for order in &orders {
        let sum: i64 = refunds
            .iter()
            .filter(|r| r.order_id == order.id)
            .map(|r| r.amount)
            .sum();
        assert_eq!(sum, order.refunded, "order {}", order.id);
    }
    let (from, to) = window_around_now();
    for timezone in ["UTC", "+14:00", "-12:00", "+05:45"] {
        let offset = if timezone == "UTC" {
            FixedOffset::east_opt(0).unwrap()
        } else {
            DateTime::parse_from_rfc3339(&format!("2026-01-01T00:00:00{timezone}"))
                .unwrap()
                .offset()
                .to_owned()
        };
        for group_by in [
            "day", "week", "month", "service", "provider", "reason", "account",
        ] {
            let tz = timezone.replace('+', "%2B");
            let body = report(
                &app,
                &format!("/v1/admin/reports/refunds?from={from}&to={to}&group_by={group_by}&timezone={tz}"),
                &app.admin_token,
            )
            .await;
            assert_report_matches(&body, group_by, offset, &orders, &refunds);
            if group_by == "account" {
                continue;
            }
            for (account_id, token) in &resellers {
                let own: Vec<OrderFact> = orders
                    .iter()
                    .filter(|o| o.account_id == *account_id)
                    .cloned()
                    .collect();
                let body = report(
                    &app,
                    &format!(
                        "/v1/reports/refunds?from={from}&to={to}&group_by={group_by}&timezone={tz}"
                    ),
                    token,
                )
                .await;
                assert_report_matches(&body, group_by, offset, &own, &refunds);
                assert_eq!(body["account_id"], *account_id);
            }
        }
    }
    app.assert_books_balance();
}

#[actix_rt::test]
async fn buckets_are_by_order_date_so_a_later_refund_counts_in_its_orders_bucket() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let service = app.service("2").await;
    let order = app.order_id(&reseller.token, service, 1000).await;
    let created: DateTime<Utc> = app.order_json(&reseller.token, order).await["created_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let to = created + Duration::milliseconds(1);
    actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    let reply = app
        .outcome(order, json!({"status": "partial", "remains": 250}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // A window that ends after the order but before its refund still shows the refund.
    let window = format!(
        "from={}&to={}",
        (created - Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
    .replace('+', "%2B");
    let body = report(
        &app,
        &format!("/v1/reports/refunds?{window}&group_by=service"),
        &reseller.token,
    )
    .await;
    assert_eq!(body["totals"]["orders_count"], 1);
    assert_eq!(body["totals"]["charged_amount"], "2");
    assert_eq!(body["totals"]["refunded_amount"], "0.5");
    assert_eq!(body["totals"]["refund_rate_amount"], "0.25");
    assert_eq!(body["totals"]["refund_rate_count"], "1");
    assert_eq!(
        body["totals"]["by_reason"]["partial_delivery"],
        json!({"count": 1, "amount": "0.5"})
    );
    assert_eq!(body["rows"][0]["label"], "Instagram Likes");
    // A window starting after the order holds neither it nor its refund.
    let later = format!(
        "from={}&to={}",
        to.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        (to + Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
    .replace('+', "%2B");
    let body = report(
        &app,
        &format!("/v1/reports/refunds?{later}"),
        &reseller.token,
    )
    .await;
    assert_eq!(body["totals"]["orders_count"], 0);
    assert_eq!(body["totals"]["refunded_amount"], "0");
    assert_eq!(body["totals"]["refund_rate_amount"], "0");
    assert_eq!(body["rows"], json!([]));
    app.assert_books_balance();
}

fn parse_csv(reply: &Reply) -> (Vec<String>, Vec<Vec<String>>) {
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("text/csv; charset=utf-8")
    );
    assert!(
        reply.text.ends_with("\r\n") && !reply.text.replace("\r\n", "").contains('\n'),
        "RFC 4180 lines end in CRLF: {:?}",
        reply.text
    );
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(reply.text.as_bytes());
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

/// Undoes the spreadsheet guard, as a reader comparing with the JSON would.
fn unguard(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => cell,
    }
}

fn assert_csv_equals_json(header: &[String], rows: &[Vec<String>], json: &Value) {
    let json_rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), json_rows.len() + 1, "rows and a total row");
    let reasons: Vec<String> = json["totals"]["by_reason"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut expected_header: Vec<String> = [
        "group",
        "label",
        "start",
        "end",
        "orders_count",
        "charged_amount",
        "refunded_orders_count",
        "refunds_count",
        "refunded_amount",
        "refund_rate_count",
        "refund_rate_amount",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for reason in &reasons {
        expected_header.push(format!("{reason}_count"));
        expected_header.push(format!("{reason}_amount"));
    }
    assert_eq!(header, expected_header);
    let total =
        json!({"group": "total", "label": "Total", "start": json["from"], "end": json["to"]});
    let mut all: Vec<(Value, &Value)> = json_rows.iter().map(|r| (r.clone(), r)).collect();
    all.push((total, &json["totals"]));
    for ((names, metrics), csv_row) in all.iter().zip(rows) {
        let time = |v: &Value| -> String {
            v.as_str()
                .map(|t| {
                    t.parse::<DateTime<Utc>>()
                        .unwrap()
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                })
                .unwrap_or_default()
        };
        let mut expected = vec![
            names["group"].as_str().unwrap().to_string(),
            names["label"].as_str().unwrap().to_string(),
            time(&names["start"]),
            time(&names["end"]),
            metrics["orders_count"].to_string(),
            metrics["charged_amount"].as_str().unwrap().to_string(),
            metrics["refunded_orders_count"].to_string(),
            metrics["refunds_count"].to_string(),
            metrics["refunded_amount"].as_str().unwrap().to_string(),
            metrics["refund_rate_count"].as_str().unwrap().to_string(),
            metrics["refund_rate_amount"].as_str().unwrap().to_string(),
        ];
        for reason in &reasons {
            let sums = &metrics["by_reason"][reason];
            expected.push(sums["count"].as_i64().unwrap_or(0).to_string());
            expected.push(sums["amount"].as_str().unwrap_or("0").to_string());
        }
        let got: Vec<&str> = csv_row.iter().map(|c| unguard(c)).collect();
        assert_eq!(got, expected);
    }
}

#[actix_rt::test]
async fn csv_parses_back_with_a_standard_reader_and_equals_the_json() {
    let mut rng = StdRng::seed_from_u64(7);
    let app = spawn_app().await;
    random_books(&app, &mut rng).await;
    // A name that needs quoting: comma, quote and a line break.
    let odd = app
        .create_service(json!({
            "name": "Likes, \"real\" ones", "category": "Test", "type": "default",
            "rate": "1", "min": 10, "max": 100000, "refill": false, "cancel": true
        }))
        .await;
    let reseller = app.funded_reseller("Odd", "10").await;
    let order = app.order_id(&reseller.token, odd, 1000).await;
    app.outcome(order, json!({"status": "canceled"})).await;

    let (from, to) = window_around_now();
    for group_by in ["service", "day", "reason", "account"] {
        let query = format!("from={from}&to={to}&group_by={group_by}&timezone=%2B03:00");
        let json = report(
            &app,
            &format!("/v1/admin/reports/refunds?{query}"),
            &app.admin_token,
        )
        .await;
        let csv = app
            .get(
                &format!("/v1/admin/reports/refunds?{query}&format=csv"),
                &app.admin_token,
            )
            .await;
        let disposition = csv.header("content-disposition").unwrap();
        assert!(
            disposition.starts_with(&format!("attachment; filename=\"refunds-{group_by}-"))
                && disposition.ends_with(".csv\""),
            "{disposition}"
        );
        let (header, rows) = parse_csv(&csv);
        assert_csv_equals_json(&header, &rows, &json);
    }
    assert!(
        app.get(
            &format!("/v1/admin/reports/refunds?from={from}&to={to}&group_by=service&format=csv"),
            &app.admin_token
        )
        .await
        .text
        .contains("\"Likes, \"\"real\"\" ones\""),
        "fields with commas and quotes are quoted, quotes doubled"
    );

    // `Accept: text/csv` asks for CSV when `format` is not given.
    let reply = app
        .client
        .get(app.url(&format!(
            "/v1/reports/refunds?from={from}&to={to}&group_by=service"
        )))
        .bearer_auth(&reseller.token)
        .insert_header(("accept", "text/csv"))
        .send()
        .await
        .unwrap();
    let mut reply = reply;
    let text = String::from_utf8(reply.body().await.unwrap().to_vec()).unwrap();
    assert_eq!(reply.status(), 200);
    assert!(text.starts_with("group,label,start,end,"), "{text}");
    assert!(text.contains("total,Total,"), "{text}");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn csv_cells_that_a_spreadsheet_would_evaluate_are_escaped() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let names = [
        "=HYPERLINK(\"http://evil.example\",\"click\")",
        "+cmd|' /C calc'!A0",
        "@SUM(1+1)",
        "-2+3",
    ];
    for name in names {
        let service = app
            .create_service(json!({
                "name": name, "category": "Test", "type": "default",
                "rate": "1", "min": 10, "max": 100000, "refill": false, "cancel": true
            }))
            .await;
        let order = app.order_id(&reseller.token, service, 1000).await;
        app.outcome(order, json!({"status": "partial", "remains": 100}))
            .await;
    }
    let (from, to) = window_around_now();
    let path = format!("/v1/reports/refunds?from={from}&to={to}&group_by=service");
    let json = report(&app, &path, &reseller.token).await;
    let labels: BTreeSet<&str> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        names.into_iter().collect(),
        "JSON keeps names as they are"
    );
    let csv = app
        .get(&format!("{path}&format=csv"), &reseller.token)
        .await;
    let (_, rows) = parse_csv(&csv);
    let csv_labels: BTreeSet<String> = rows[..rows.len() - 1]
        .iter()
        .map(|r| r[1].clone())
        .collect();
    let guarded: BTreeSet<String> = names.iter().map(|n| format!("'{n}")).collect();
    assert_eq!(csv_labels, guarded);
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "unguarded cell {cell:?}"
            );
        }
    }
    assert!(csv
        .text
        .contains("\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\""));
    app.assert_books_balance();
}

#[actix_rt::test]
async fn a_reseller_never_sees_another_resellers_orders_or_refunds() {
    let app = spawn_app().await;
    let acme = app.funded_reseller("Acme", "100").await;
    let globex = app.funded_reseller("Globex", "100").await;
    let service = app.service("1").await;
    let acme_order = app.order_id(&acme.token, service, 3000).await;
    app.outcome(acme_order, json!({"status": "canceled"})).await;
    let globex_order = app.order_id(&globex.token, service, 5000).await;
    app.outcome(globex_order, json!({"status": "partial", "remains": 1000}))
        .await;
    let dispute = app
        .post(
            &format!("/v1/orders/{globex_order}/refunds"),
            &globex.token,
            json!({"reason": "dropped"}),
        )
        .await;
    assert_eq!(dispute.status, 202, "{}", dispute.text);

    let (from, to) = window_around_now();
    let window = format!("from={from}&to={to}");
    for group_by in ["service", "day", "reason", "provider"] {
        let acme_report = report(
            &app,
            &format!("/v1/reports/refunds?{window}&group_by={group_by}"),
            &acme.token,
        )
        .await;
        assert_eq!(acme_report["totals"]["orders_count"], 1);
        assert_eq!(acme_report["totals"]["charged_amount"], "3");
        assert_eq!(acme_report["totals"]["refunded_amount"], "3");
        assert_eq!(acme_report["pending_review_count"], 0);
        let as_admin = report(
            &app,
            &format!(
                "/v1/admin/reports/refunds?{window}&group_by={group_by}&account_id={}",
                acme.id
            ),
            &app.admin_token,
        )
        .await;
        assert_eq!(as_admin, acme_report);
    }
    let globex_report = report(
        &app,
        &format!("/v1/reports/refunds?{window}"),
        &globex.token,
    )
    .await;
    assert_eq!(globex_report["totals"]["charged_amount"], "5");
    assert_eq!(globex_report["totals"]["refunded_amount"], "1");
    assert_eq!(globex_report["pending_review_count"], 1);
    let all = report(
        &app,
        &format!("/v1/admin/reports/refunds?{window}&group_by=account"),
        &app.admin_token,
    )
    .await;
    assert_eq!(all["totals"]["charged_amount"], "8");
    assert_eq!(all["pending_review_count"], 1);
    let labels: Vec<&str> = all["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Acme", "Globex"], "most refunded first");

    // Asking for another account, or for all accounts, is refused.
    app.get(
        &format!("/v1/reports/refunds?{window}&account_id={}", globex.id),
        &acme.token,
    )
    .await
    .assert_problem(422, "invalid_query");
    app.get(
        &format!("/v1/reports/refunds?{window}&group_by=account"),
        &acme.token,
    )
    .await
    .assert_problem(422, "validation_failed");
    app.get(&format!("/v1/admin/reports/refunds?{window}"), &acme.token)
        .await
        .assert_problem(403, "admin_only");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn bad_report_parameters_are_problems_naming_the_parameter() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let cases = [
        ("group_by=year", "group_by"),
        ("group_by=", "group_by"),
        ("format=xml", "format"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-02-01&to=2026-01-01", "to"),
        ("from=2026-01-01&to=2026-01-01", "to"),
        ("from=2025-01-01&to=2026-01-03", "to"),
        ("timezone=Mars%2FOlympus", "timezone"),
        ("timezone=%2B25:00", "timezone"),
        ("limit=5", "limit"),
        ("account_id=abc", "account_id"),
        ("from=%00", "from"),
    ];
    for (query, param) in cases {
        for (path, token) in [
            ("/v1/reports/refunds", reseller.token.as_str()),
            ("/v1/admin/reports/refunds", app.admin_token.as_str()),
        ] {
            if path == "/v1/reports/refunds" && param == "account_id" {
                continue;
            }
            let reply = app.get(&format!("{path}?{query}"), token).await;
            assert_eq!(reply.status, 422, "{path}?{query}: {}", reply.text);
            assert_eq!(
                reply.header("content-type").as_deref(),
                Some("application/problem+json")
            );
            assert_eq!(reply.body["param"], param, "{path}?{query}: {}", reply.text);
        }
    }
    let reply = app.get("/v1/reports/refunds", "not-a-token").await;
    reply.assert_problem(401, "unauthorized");
    // A whole year, and the defaults (the last 30 days, by day), are fine.
    let year = report(
        &app,
        "/v1/reports/refunds?from=2025-01-01&to=2026-01-02",
        &reseller.token,
    )
    .await;
    assert_eq!(year["from"], "2025-01-01T00:00:00Z");
    assert_eq!(year["to"], "2026-01-02T00:00:00Z");
    let defaults = report(&app, "/v1/reports/refunds", &reseller.token).await;
    assert_eq!(defaults["group_by"], "day");
    assert_eq!(defaults["timezone"], "UTC");
    let from: DateTime<Utc> = defaults["from"].as_str().unwrap().parse().unwrap();
    let to: DateTime<Utc> = defaults["to"].as_str().unwrap().parse().unwrap();
    assert_eq!(to - from, Duration::days(30));
    let zoned = report(
        &app,
        "/v1/reports/refunds?from=2026-03-01&to=2026-03-02&timezone=%2B03:00",
        &reseller.token,
    )
    .await;
    assert_eq!(zoned["from"], "2026-02-28T21:00:00Z");
    assert_eq!(zoned["timezone"], "+03:00");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn an_order_placed_just_now_is_in_a_report_without_to() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "100").await;
    let service = app.service("2").await;
    // Start early in a second, so the order and the report fall in the same one: the
    // window's end must not be this second's start.
    let into_second = Utc::now().timestamp_subsec_millis();
    if into_second > 300 {
        let wait = 1000 - u64::from(into_second) + 20;
        actix_rt::time::sleep(std::time::Duration::from_millis(wait)).await;
    }
    let order = app.order_id(&reseller.token, service, 1000).await;
    let charged = app.order_json(&reseller.token, order).await["charge"].clone();
    for path in ["/v1/reports/refunds", "/v1/admin/reports/refunds"] {
        let token = if path.contains("admin") {
            &app.admin_token
        } else {
            &reseller.token
        };
        let body = report(&app, path, token).await;
        assert_eq!(body["totals"]["orders_count"], 1, "{path}: {body}");
        assert_eq!(
            micros(&body["totals"]["charged_amount"]),
            micros(&charged),
            "{path}: {body}"
        );
        assert_eq!(micros(&body["totals"]["charged_amount"]), 2_000_000);
        let to: DateTime<Utc> = body["to"].as_str().unwrap().parse().unwrap();
        assert_eq!(to.timestamp_subsec_nanos(), 0, "whole seconds: {to}");
        assert!(to > Utc::now() - Duration::seconds(1), "{to}");
    }
    app.assert_books_balance();
}

#[test]
fn expected_rows_helper_is_not_vacuous() {
    // Guards the property test's oracle: a refund lands in its order's bucket.
    let at = |s: &str| DateTime::<Utc>::from_str(s).unwrap();
    let orders = vec![
        OrderFact {
            id: 1,
            account_id: 2,
            service_id: 3,
            charge: 100,
            refunded: 40,
            created_at: at("2026-03-01T23:30:00Z"),
        },
        OrderFact {
            id: 2,
            account_id: 2,
            service_id: 4,
            charge: 50,
            refunded: 0,
            created_at: at("2026-03-02T00:30:00Z"),
        },
    ];
    let refunds = vec![RefundFact {
        order_id: 1,
        amount: 40,
        reason: "dropped".into(),
    }];
    let plus1 = FixedOffset::east_opt(3600).unwrap();
    let (rows, totals) = expected_rows("day", plus1, &orders, &refunds);
    assert_eq!(rows.len(), 1, "both orders are on 2 March at +01:00");
    assert_eq!(rows["2026-03-02"].refunded, 40);
    assert_eq!(totals.charged, 150);
    let (rows, _) = expected_rows("day", FixedOffset::east_opt(0).unwrap(), &orders, &refunds);
    assert_eq!(rows["2026-03-01"].refunded, 40);
    assert_eq!(rows["2026-03-02"].refunded, 0);
}

#[actix_rt::test]
async fn seeded_data_keeps_the_books_and_reports_add_up_to_it() {
    use diesel::prelude::*;
    use reseller_api::db::schema::{orders, refunds};
    let app = spawn_app().await;
    let options = reseller_api::tooling::seed::SeedOptions {
        orders: 3_000,
        refunds: 400,
        accounts: 5,
        pending: 7,
        days: 300,
        seed: 42,
    };
    let (charged, refunded, refund_rows): (i64, i64, i64) = {
        // Off the runtime: the seed (which folds the report rollups too) takes a while.
        let pool = app.pool.clone();
        let seeded = actix_web::web::block(move || {
            reseller_api::tooling::seed::run(&mut pool.get().unwrap(), &options).unwrap()
        })
        .await
        .unwrap();
        let mut conn = app.pool.get().unwrap();
        assert_eq!(
            (seeded.orders, seeded.refunds, seeded.pending),
            (3_000, 400, 7)
        );
        let rows: Vec<(i64, i64)> = orders::table
            .select((orders::charge_micros, orders::refunded_micros))
            .load(&mut *conn)
            .unwrap();
        let charged = rows.iter().map(|r| r.0).sum::<i64>();
        let refunded = rows.iter().map(|r| r.1).sum::<i64>();
        let refund_rows = refunds::table
            .filter(refunds::status.eq("succeeded"))
            .count()
            .get_result(&mut *conn)
            .unwrap();
        (charged, refunded, refund_rows)
    };
    let now = Utc::now();
    let from = (now - Duration::days(301)).format("%Y-%m-%d");
    let to = (now + Duration::days(1)).format("%Y-%m-%d");
    let body = report(
        &app,
        &format!("/v1/admin/reports/refunds?from={from}&to={to}&group_by=month"),
        &app.admin_token,
    )
    .await;
    assert_eq!(body["totals"]["orders_count"], 3_000);
    assert_eq!(micros(&body["totals"]["charged_amount"]), charged);
    assert_eq!(micros(&body["totals"]["refunded_amount"]), refunded);
    assert_eq!(body["totals"]["refunds_count"], refund_rows);
    assert_eq!(body["pending_review_count"], 7);
    assert!(body["rows"].as_array().unwrap().len() >= 10);
    // Last: `verify` (which also checks the report rollups) holds the runtime meanwhile.
    app.assert_books_balance();
}
