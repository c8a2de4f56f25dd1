//! One account cannot slow another's webhooks or reads: the URL check's DNS wait holds no
//! database connection; endpoints that hang (tarpits on loopback) hold one sender each,
//! within their account's share, while another account's deliveries flow; a failing
//! endpoint's circuit breaker parks it (shown in `/metrics`) and its deliveries are
//! delivered once it recovers; and the cap on endpoints per account.

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use reseller_api::config::HostResolver;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_on_with, spawn_app_with, TestApp};
use crate::webhooks::Receiver;

/// A gate the stand-in resolver waits on: shut until the test ends (or 30 s).
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    signal: Condvar,
}

impl Gate {
    fn wait(&self, at_most: Duration) {
        let open = self.open.lock().unwrap();
        let _ = self.signal.wait_timeout_while(open, at_most, |open| !*open);
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.signal.notify_all();
    }
}

/// Opens the gate when the test ends, however it ends.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

#[actix_rt::test]
async fn a_slow_dns_answer_for_a_webhook_url_holds_no_database_connection() {
    let gate = Arc::new(Gate::default());
    let _opened = OpenOnDrop(gate.clone());
    let hanging = gate.clone();
    let app = spawn_app_with(move |c| {
        c.db_pool_size = 4;
        c.webhooks.webhook_resolve_timeout_secs = 8;
        // Names under `.slow.example` take 30 s to resolve (to a public address).
        c.webhooks.webhook_resolver = HostResolver::new(move |host, _| {
            if host.ends_with(".slow.example") {
                hanging.wait(Duration::from_secs(30));
            }
            vec!["93.184.215.14".parse().unwrap()]
        });
    })
    .await;
    let a = app.create_reseller("A").await;
    let b = app.funded_reseller("B", "10").await;
    let service = app.service("1").await;
    app.order(&b.token, service, 100).await;

    // Three times the pool in endpoint creations with a hanging name, all at once.
    let started = Instant::now();
    let creations: Vec<_> = (0..12)
        .map(|i| {
            let (client, url, token) = (
                app.client.clone(),
                app.url("/v1/webhook-endpoints"),
                a.token.clone(),
            );
            actix_rt::spawn(async move {
                let mut reply = client
                    .post(url)
                    .bearer_auth(token)
                    .send_json(&json!({"url": format!("https://hook-{i}.slow.example/in")}))
                    .await
                    .unwrap();
                let body: Value = reply.json().await.unwrap();
                (reply.status().as_u16(), body)
            })
        })
        .collect();
    actix_rt::time::sleep(Duration::from_millis(500)).await;

    // Meanwhile another account's reads answer at once, again and again.
    for _ in 0..5 {
        let asked = Instant::now();
        let orders = app.get("/v1/orders", &b.token).await;
        assert_eq!(orders.status, 200, "{}", orders.text);
        assert_eq!(orders.body["data"].as_array().unwrap().len(), 1);
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "GET /v1/orders took {:?} while DNS hung",
            asked.elapsed()
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the reads must be made while the resolutions hang"
    );

    // The creations end at the resolution's timeout, not the 30 s hang: a name that did
    // not resolve in time is accepted, and judged again at every delivery.
    for creation in creations {
        let (status, body) = creation.await.unwrap();
        assert_eq!(status, 201, "{body}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "creations waited for the hanging DNS: {:?}",
        started.elapsed()
    );
    let listed = app.get("/v1/webhook-endpoints?limit=100", &a.token).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 12);
}

/// A TCP listener on loopback that accepts every connection and never answers, until
/// released (then it closes them all).
struct Tarpit {
    port: u16,
    released: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Tarpit {
    fn start() -> Tarpit {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let released = Arc::new(AtomicBool::new(false));
        let stop = released.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        // Read what comes, answer nothing.
                        stream.set_nonblocking(true).ok();
                        let _ = stream.read(&mut [0u8; 4096]);
                        held.push(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            drop(held);
        });
        Tarpit {
            port,
            released,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Tarpit {
    fn drop(&mut self) {
        self.released.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn ping(app: &TestApp, token: &str, endpoint: i64) {
    let reply = app
        .post(
            &format!("/v1/webhook-endpoints/{endpoint}/test"),
            token,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
}

#[actix_rt::test]
async fn endpoints_that_never_answer_do_not_delay_another_accounts_deliveries() {
    let app = spawn_app_with(|c| {
        c.webhooks.webhook_allow_private = true;
        c.webhooks.webhook_retry_schedule = vec![0];
        // Each tarpit holds an attempt for 30 s.
        c.webhooks.webhook_timeout_secs = 30;
        c.webhooks.webhook_endpoints_per_account = 32;
    })
    .await;
    let tarpit = Tarpit::start();
    let receiver = Receiver::start(|_| (200, vec![], Duration::ZERO)).await;
    let a = app.create_reseller("A").await;
    let b = app.create_reseller("B").await;
    let mut slow = Vec::new();
    for i in 0..24 {
        slow.push(
            app.endpoint(&a.token, &tarpit.url(&format!("a{i}")), json!([]))
                .await
                .0,
        );
    }
    let (b_endpoint, _) = app.endpoint(&b.token, &receiver.url, json!([])).await;
    // A's 24 pings are queued first, B's last.
    for endpoint in &slow {
        ping(&app, &a.token, *endpoint).await;
    }
    ping(&app, &b.token, b_endpoint).await;

    let started = Instant::now();
    let worker = reseller_api::webhooks::worker::spawn(
        app.pool.clone(),
        app.config.webhooks.clone(),
        app.config.alerts.clone(),
    );
    while receiver.received().is_empty() && started.elapsed() < Duration::from_secs(40) {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let waited = started.elapsed();
    drop(tarpit);
    actix_web::web::block(move || worker.shutdown())
        .await
        .unwrap();
    assert!(
        waited < Duration::from_secs(10),
        "B's ping waited {waited:?} behind A's endpoints that never answer"
    );
    assert_eq!(receiver.types(), ["ping"], "B's ping, once");
}

async fn metric(app: &TestApp, line_start: &str) -> Option<String> {
    let reply = app.get("/metrics", &app.admin_token).await;
    reply
        .text
        .lines()
        .find(|l| l.starts_with(line_start))
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
}

async fn pending(app: &TestApp, token: &str, endpoint: i64) -> Vec<Value> {
    let reply = app
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}/event-deliveries?state=pending"),
            token,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["data"].as_array().unwrap().clone()
}

#[actix_rt::test]
async fn a_failing_endpoint_is_parked_by_its_breaker_and_gets_every_delivery_once_it_recovers() {
    let app = spawn_app_with(|c| {
        c.webhooks.webhook_allow_private = true;
        c.webhooks.webhook_retry_schedule = vec![0; 10];
        c.webhooks.webhook_timeout_secs = 5;
        c.webhooks.webhook_breaker_failures = 2;
        c.webhooks.webhook_breaker_open_secs = 2;
    })
    .await;
    let recovered = Arc::new(AtomicBool::new(false));
    let up = recovered.clone();
    let failing = Receiver::start(move |_| {
        let status = if up.load(Ordering::Relaxed) { 200 } else { 500 };
        (status, vec![], Duration::ZERO)
    })
    .await;
    let healthy = Receiver::start(|_| (200, vec![], Duration::ZERO)).await;
    let a = app.create_reseller("A").await;
    let b = app.create_reseller("B").await;
    let (a_endpoint, _) = app.endpoint(&a.token, &failing.url, json!([])).await;
    let (b_endpoint, _) = app.endpoint(&b.token, &healthy.url, json!([])).await;
    for _ in 0..3 {
        ping(&app, &a.token, a_endpoint).await;
    }

    // Two failures in a row open the breaker: no third attempt, though retries are due.
    let pass = app.webhook_pass().await;
    assert_eq!((pass.delivered, pass.failed_attempts), (0, 2), "{pass:?}");
    assert_eq!(failing.received().len(), 2);
    assert_eq!(
        pending(&app, &a.token, a_endpoint).await.len(),
        3,
        "parked, not dropped"
    );
    assert_eq!(
        metric(&app, "webhook_endpoints_by_breaker{state=\"open\"}")
            .await
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        metric(&app, "webhook_endpoints_by_breaker{state=\"closed\"}")
            .await
            .as_deref(),
        Some("1")
    );
    let opened: u64 = metric(&app, "webhook_breaker_opened_total")
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(opened >= 1);

    // While it is parked, another account's deliveries flow; the parked one is not tried.
    ping(&app, &b.token, b_endpoint).await;
    let pass = app.webhook_pass().await;
    assert_eq!((pass.delivered, pass.failed_attempts), (1, 0), "{pass:?}");
    assert_eq!(healthy.types(), ["ping"]);
    assert_eq!(failing.received().len(), 2);

    // Once the open time is over, it is half-open: a failed probe parks it again.
    actix_rt::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        metric(&app, "webhook_endpoints_by_breaker{state=\"half_open\"}")
            .await
            .as_deref(),
        Some("1")
    );
    let pass = app.webhook_pass().await;
    assert_eq!(
        (pass.delivered, pass.failed_attempts),
        (0, 1),
        "one probe: {pass:?}"
    );
    assert_eq!(
        metric(&app, "webhook_endpoints_by_breaker{state=\"open\"}")
            .await
            .as_deref(),
        Some("1")
    );

    // Recovered: the next probe succeeds, the breaker closes, and every parked delivery
    // is delivered, each once.
    recovered.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pending(&app, &a.token, a_endpoint).await.is_empty() && Instant::now() < deadline {
        app.webhook_pass().await;
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(pending(&app, &a.token, a_endpoint).await.is_empty());
    let delivered: Vec<String> = failing
        .received()
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    let events = app.events_of(&a.token, "").await;
    assert_eq!(events.len(), 3);
    let succeeded = app
        .get(
            &format!("/v1/webhook-endpoints/{a_endpoint}/event-deliveries?state=succeeded"),
            &a.token,
        )
        .await;
    assert_eq!(
        succeeded.body["data"].as_array().unwrap().len(),
        3,
        "none lost"
    );
    for event in &events {
        assert!(delivered.contains(&event["id"].to_string()), "{event}");
    }
    assert_eq!(
        metric(&app, "webhook_endpoints_by_breaker{state=\"closed\"}")
            .await
            .as_deref(),
        Some("2")
    );
}

#[actix_rt::test]
async fn an_account_may_have_16_endpoints_and_one_above_the_cap_keeps_its_own() {
    let app = spawn_app_with(|c| {
        c.webhooks.webhook_allow_private = true;
        c.webhooks.webhook_retry_schedule = vec![0];
        c.webhooks.webhook_endpoints_per_account = 20;
    })
    .await;
    let receiver = Receiver::start(|_| (200, vec![], Duration::ZERO)).await;
    let big = app.funded_reseller("Big", "10").await;
    for i in 0..18 {
        app.endpoint(&big.token, &format!("{}/{i}", receiver.url), json!([]))
            .await;
    }

    // The same database under the default cap (16), as after an upgrade.
    let url = app.config.database_url.expose_secret().to_string();
    let capped = spawn_app_on_with(&url, |c| {
        c.webhooks.webhook_allow_private = true;
        c.webhooks.webhook_retry_schedule = vec![0];
    })
    .await;
    assert_eq!(capped.config.webhooks.webhook_endpoints_per_account, 16);

    let small = capped.create_reseller("Small").await;
    for i in 0..16 {
        capped
            .endpoint(&small.token, &format!("{}/s{i}", receiver.url), json!([]))
            .await;
    }
    let refused = capped
        .post(
            "/v1/webhook-endpoints",
            &small.token,
            json!({"url": format!("{}/s16", receiver.url)}),
        )
        .await;
    refused.assert_problem(409, "webhook_endpoint_limit");
    assert!(refused.body["detail"].as_str().unwrap().contains("16"));
    let listed = capped
        .get("/v1/webhook-endpoints?limit=100", &small.token)
        .await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        16,
        "nothing created"
    );

    // The account above the cap keeps its 18; it may not add one, even after deleting one.
    let listed = capped
        .get("/v1/webhook-endpoints?limit=100", &big.token)
        .await;
    let ids: Vec<i64> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 18);
    let more = json!({"url": format!("{}/more", receiver.url)});
    capped
        .post("/v1/webhook-endpoints", &big.token, more.clone())
        .await
        .assert_problem(409, "webhook_endpoint_limit");
    let deleted = capped
        .delete(&format!("/v1/webhook-endpoints/{}", ids[0]), &big.token)
        .await;
    assert_eq!(deleted.status, 200);
    capped
        .post("/v1/webhook-endpoints", &big.token, more)
        .await
        .assert_problem(409, "webhook_endpoint_limit");

    // And every one of its 17 endpoints still gets its events: nothing is dropped.
    capped.top_up(big.id, "1").await;
    let pass = capped.webhook_pass().await;
    assert_eq!(pass.delivered, 17, "{pass:?}");
    let to_big = receiver
        .received()
        .iter()
        .filter(|r| r.json()["type"] == "top_up.succeeded")
        .count();
    assert_eq!(to_big, 17);
}
