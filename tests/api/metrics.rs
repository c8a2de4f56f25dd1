//! `/metrics`: a valid Prometheus text exposition whose database gauges follow the
//! database. Counters are per process and every test of this binary shares the process,
//! so counters are asserted only to have moved by at least what this test did;
//! `tests/metrics/check.sh` asserts them exactly against a server of its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::json;

use crate::helpers::{spawn_app_with, StandIn, TestApp};

/// A scrape: every sample by its name and labels exactly as written (`name{a="b"}`).
struct Scrape {
    samples: BTreeMap<String, Decimal>,
}

impl Scrape {
    fn value(&self, series: &str) -> Decimal {
        self.samples.get(series).copied().unwrap_or_default()
    }
}

/// Reads a scrape, checking the text format as it goes: every sample belongs to the family
/// its `# TYPE` line announced, histogram buckets are cumulative and end with `+Inf`
/// equal to `_count`.
async fn scrape(app: &TestApp) -> Scrape {
    let reply = app.get("/metrics", "").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let mut samples = BTreeMap::new();
    let mut family: Option<(String, String)> = None;
    let mut seen = std::collections::BTreeSet::new();
    let mut last_bucket: HashMap<String, Decimal> = HashMap::new();
    let mut infinite = Vec::new();
    for line in reply.text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_string();
            assert!(seen.insert(name.clone()), "family {name} twice");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(matches!(kind, "counter" | "gauge" | "histogram"), "{line}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{name}: a counter ends in _total");
            }
            family = Some((name.to_string(), kind.to_string()));
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect(line);
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name} is not snake_case"
        );
        let (family_name, kind) = family.as_ref().expect("a sample before any # TYPE");
        let suffix = name.strip_prefix(family_name.as_str()).expect(line);
        let allowed: &[&str] = if kind == "histogram" {
            &["_bucket", "_sum", "_count"]
        } else {
            &[""]
        };
        assert!(allowed.contains(&suffix), "{line} is not of {family_name}");
        let value: Decimal = value.parse().unwrap_or_else(|_| panic!("{line}"));
        if suffix == "_bucket" {
            let inner = series.split_once('{').unwrap().1.trim_end_matches('}');
            let (labels, le) = match inner.rsplit_once(",le=") {
                Some((labels, le)) => (format!("{{{labels}}}"), le),
                None => (String::new(), inner.strip_prefix("le=").unwrap()),
            };
            let count_series = format!("{family_name}_count{labels}");
            let previous = last_bucket.insert(count_series.clone(), value);
            assert!(
                value >= previous.unwrap_or_default(),
                "{line}: buckets are cumulative"
            );
            if le == "\"+Inf\"" {
                infinite.push((count_series, value));
            }
        }
        samples.insert(series.to_string(), value);
    }
    for (count_series, value) in infinite {
        assert_eq!(
            samples.get(&count_series),
            Some(&value),
            "{count_series} = +Inf bucket"
        );
    }
    Scrape { samples }
}

#[actix_rt::test]
async fn metrics_count_orders_refunds_and_provider_calls_and_read_gauges_from_the_database() {
    let app = spawn_app_with(|c| {
        c.worker.sync_interval_secs = 0;
        c.worker.max_backoff_secs = 0;
    })
    .await;
    let statuses = Arc::new(std::sync::Mutex::new(HashMap::<String, String>::new()));
    let reported = statuses.clone();
    let upstream = StandIn::start(move |fields| {
        let body = match fields.get("action").map(String::as_str) {
            Some("add") => r#"{"order":9001}"#.to_string(),
            _ => reported
                .lock()
                .unwrap()
                .get("9001")
                .cloned()
                .unwrap_or_else(|| r#"{"9001":{"error":"Incorrect order ID"}}"#.into()),
        };
        (200, body, Duration::ZERO)
    })
    .await;
    let (provider, upstream_service) = app.provider_service(&upstream.url, false, 2000).await;
    let before = scrape(&app).await;
    assert_eq!(before.value("refunds_pending_review"), Decimal::ZERO);
    assert_eq!(before.value("db_up"), Decimal::ONE);
    let text = app.get("/metrics", "").await.text;
    assert!(
        !text.contains("Upstream"),
        "/metrics is public: provider names stay out of it"
    );

    let reseller = app.funded_reseller("Acme", "3").await;
    let service = app.service("2").await;
    let forwarded = app.order_id(&reseller.token, upstream_service, 1000).await;
    let delivered = app.order_id(&reseller.token, service, 1000).await;
    app.order(&reseller.token, service, 100_000)
        .await
        .assert_problem(402, "insufficient_funds");
    app.order(&reseller.token, 999_999, 100)
        .await
        .assert_problem(422, "validation_failed");
    // 300 of 1000 units undelivered: 0.6 of the 2 charged comes back.
    let reply = app
        .outcome(delivered, json!({"status": "partial", "remains": 300}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = app
        .post(
            &format!("/v1/orders/{delivered}/refunds"),
            &reseller.token,
            json!({"reason": "dropped"}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);

    let queued = scrape(&app).await;
    assert_eq!(queued.value("refunds_pending_review"), Decimal::ONE);
    let state = |s: &str| format!("provider_orders{{provider=\"{provider}\",state=\"{s}\"}}");
    assert_eq!(queued.value(&state("queued")), Decimal::ONE);
    let moved = |series: &str| queued.value(series) - before.value(series);
    assert!(moved("orders_placed_total") >= Decimal::from(2));
    assert!(moved("orders_refused_total{reason=\"insufficient_funds\"}") >= Decimal::ONE);
    assert!(moved("orders_refused_total{reason=\"validation_failed\"}") >= Decimal::ONE);
    assert!(moved("refunds_total{reason=\"partial_delivery\"}") >= Decimal::ONE);
    assert!(
        moved("refunds_amount_total{reason=\"partial_delivery\",currency=\"USD\"}")
            >= "0.6".parse().unwrap()
    );
    assert!(
        moved("http_request_duration_seconds_count{method=\"POST\",route=\"/v1/orders\"}")
            >= Decimal::from(4)
    );
    assert!(moved("db_pool_wait_seconds_count") >= Decimal::from(4));
    assert!(queued.value("db_pool_connections{state=\"idle\"}") >= Decimal::ONE);

    // The worker sends it; the provider does not know the order yet on the first poll.
    app.worker_pass().await;
    let sent = scrape(&app).await;
    assert_eq!(sent.value(&state("queued")), Decimal::ZERO);
    assert_eq!(sent.value(&state("sent")), Decimal::ONE);
    assert!(sent.value("provider_sync_lag_seconds") >= Decimal::ZERO);
    let moved = |series: &str| sent.value(series) - queued.value(series);
    let calls = |action: &str, outcome: &str| {
        format!("provider_requests_total{{provider=\"{provider}\",action=\"{action}\",outcome=\"{outcome}\"}}")
    };
    assert!(moved(&calls("add", "accepted")) >= Decimal::ONE);
    assert!(moved(&calls("status", "read")) >= Decimal::ONE);
    assert!(
        moved(&format!(
            "provider_request_duration_seconds_count{{provider=\"{provider}\",action=\"add\"}}"
        )) >= Decimal::ONE
    );

    // Canceled upstream: refunded in full by the sync, and done (left out of the gauges).
    statuses.lock().unwrap().insert(
        "9001".into(),
        r#"{"9001":{"charge":"1","start_count":"0","status":"Canceled","remains":"1000","currency":"USD"}}"#.into(),
    );
    app.make_due();
    app.worker_pass().await;
    let done = scrape(&app).await;
    assert_eq!(done.value(&state("sent")), Decimal::ZERO);
    assert_eq!(done.value("provider_sync_lag_seconds"), Decimal::ZERO);
    let moved = |series: &str| done.value(series) - sent.value(series);
    assert!(moved("refunds_total{reason=\"provider_canceled\"}") >= Decimal::ONE);
    assert!(
        moved("refunds_amount_total{reason=\"provider_canceled\",currency=\"USD\"}")
            >= Decimal::ONE
    );
    assert_eq!(
        app.order_json(&reseller.token, forwarded).await["status"],
        "canceled"
    );
    app.assert_books_balance();
}
