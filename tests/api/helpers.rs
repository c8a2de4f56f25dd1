//! The test harness: a real server on a loopback port over a fresh database per test
//! (a temporary SQLite file, or a new PostgreSQL database when `TEST_DATABASE_URL` names one).
//! Each fresh database is a copy of one migrated template, so tests do not pay for the
//! migrations one by one.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::HttpServer;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use reseller_api::api::build_app;
use reseller_api::application::accounts::create_account_with_key;
use reseller_api::config::Config;
use reseller_api::db::{self, DbPool};
use reseller_api::domain::account::Role;
use reseller_api::domain::audit::Actor;
use reseller_api::http::auth::TokenKeys;
use reseller_api::http::state::state;

/// A database that exists for one test and is removed after it.
pub enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name } = self {
            if let Ok(mut conn) = PgConnection::establish(admin_url) {
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

pub fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    hex::encode(bytes)
}

/// A fresh database: PostgreSQL when `TEST_DATABASE_URL` is a postgres URL, else SQLite.
pub fn fresh_database() -> (String, TestDb) {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(base) if base.starts_with("postgres") => {
            let template = postgres_template(&base);
            let name = format!("reseller_test_{}", random_suffix());
            let mut conn = PgConnection::establish(&base).expect("connect to TEST_DATABASE_URL");
            conn.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .expect("create test database");
            (
                database_url(&base, &name),
                TestDb::Postgres {
                    admin_url: base,
                    name,
                },
            )
        }
        _ => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("test.db");
            std::fs::copy(sqlite_template(), &path).expect("copy the template database");
            (format!("sqlite://{}", path.display()), TestDb::Sqlite(dir))
        }
    }
}

/// An empty database, no migration applied: for tests that build one as an earlier
/// version left it.
pub fn empty_database() -> (String, TestDb) {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(base) if base.starts_with("postgres") => {
            let name = format!("reseller_test_{}", random_suffix());
            let mut conn = PgConnection::establish(&base).expect("connect to TEST_DATABASE_URL");
            conn.batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("create test database");
            (
                database_url(&base, &name),
                TestDb::Postgres {
                    admin_url: base,
                    name,
                },
            )
        }
        _ => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("test.db");
            (format!("sqlite://{}", path.display()), TestDb::Sqlite(dir))
        }
    }
}

fn database_url(server_url: &str, name: &str) -> String {
    let (prefix, _) = server_url
        .rsplit_once('/')
        .expect("database URL ends in /dbname");
    format!("{prefix}/{name}")
}

/// A short hash of one backend's migration tree: templates are named by it, so a changed
/// migration gets a new template instead of a stale one.
fn migrations_hash(backend: &str) -> String {
    use sha2::{Digest, Sha256};
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read migrations") {
            let path = entry.expect("read migrations").path();
            if path.is_dir() {
                walk(&path, files);
            } else {
                files.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut hash = Sha256::new();
    for file in files {
        hash.update(
            file.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .as_bytes(),
        );
        hash.update(std::fs::read(&file).expect("read migration"));
    }
    hex::encode(&hash.finalize()[..8])
}

/// Held while a test process builds the PostgreSQL template, so concurrent test runs
/// against one server build it once and never copy a half-migrated one.
const TEMPLATE_LOCK: i64 = 0x7265_7365_7470;

/// The migrated PostgreSQL template, built once per migration tree and server.
fn postgres_template(server_url: &str) -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let name = format!("reseller_template_{}", migrations_hash("postgres"));
        let mut conn = PgConnection::establish(server_url).expect("connect to TEST_DATABASE_URL");
        conn.batch_execute(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
            .expect("template lock");
        let present = diesel::sql_query(format!(
            "SELECT 1 AS one FROM pg_database WHERE datname = '{name}'"
        ))
        .execute(&mut conn)
        .expect("look for the template")
            == 1;
        if !present {
            // Built under another name and renamed when complete: a run killed halfway
            // leaves only the partial build, which the next run drops.
            let partial = format!("{name}_partial");
            conn.batch_execute(&format!("DROP DATABASE IF EXISTS {partial} WITH (FORCE)"))
                .expect("drop a partial template");
            conn.batch_execute(&format!("CREATE DATABASE {partial}"))
                .expect("create the template");
            db::migrate(&database_url(server_url, &partial)).expect("migrate the template");
            rename_database(&mut conn, &partial, &name);
        }
        conn.batch_execute(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))
            .expect("template unlock");
        name
    })
}

/// Renames a database its builder just disconnected from: the server ends that session
/// a moment after the client leaves, and until then the rename is refused.
fn rename_database(conn: &mut PgConnection, from: &str, to: &str) {
    let mut tries = 0;
    loop {
        match conn.batch_execute(&format!("ALTER DATABASE {from} RENAME TO {to}")) {
            Ok(()) => return,
            Err(_) if tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("rename the template: {error}"),
        }
    }
}

/// The migrated SQLite template file, built once per migration tree.
fn sqlite_template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!(
            "reseller-api-template-{}.db",
            migrations_hash("sqlite")
        ));
        if !path.exists() {
            // Built aside and renamed into place: concurrent test runs never copy a
            // half-built file (the last rename of identical files wins).
            let partial = path.with_extension(format!("{}.partial", random_suffix()));
            db::migrate(&format!("sqlite://{}", partial.display())).expect("migrate");
            let wal = PathBuf::from(format!("{}-wal", partial.display()));
            assert!(
                !wal.exists(),
                "closing the last connection checkpoints the WAL into the file"
            );
            std::fs::rename(&partial, &path).expect("place the template");
        }
        path
    })
}

pub struct TestApp {
    pub base: String,
    pub client: awc::Client,
    pub config: Config,
    pub pool: DbPool,
    pub admin_token: String,
    pub admin_id: i64,
    handle: ServerHandle,
    // Dropped last: the database goes after the server stops.
    _db: Option<TestDb>,
}

pub struct Reseller {
    pub id: i64,
    pub key: String,
    pub token: String,
}

/// A response, with the body parsed as JSON when it is JSON.
pub struct Reply {
    pub status: StatusCode,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Asserts an RFC 9457 problem with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "body: {}",
            self.text
        );
        assert_eq!(self.body["status"], status);
        assert_eq!(self.body["code"], code, "body: {}", self.text);
        assert!(self.body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:reseller-api:problem:"));
        assert!(self.body["title"].is_string());
        assert!(self.body["detail"].is_string());
        assert!(!self.body["request_id"].as_str().unwrap().is_empty());
    }
}

/// Decimal string to micro-units, exactly.
pub fn micros(amount: &Value) -> i64 {
    let text = amount
        .as_str()
        .unwrap_or_else(|| panic!("money must be a string, got {amount}"));
    let value = Decimal::from_str(text).unwrap() * Decimal::from(1_000_000);
    assert!(value.fract().is_zero(), "{text} has more than 6 decimals");
    i64::try_from(value).unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server on a fresh database, with configuration changed by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let (url, db) = fresh_database();
    let mut app = spawn_app_on_with(&url, configure).await;
    app._db = Some(db);
    app
}

/// A server on an existing database, as a second process sharing it would be.
pub async fn spawn_app_on(url: &str) -> TestApp {
    spawn_app_on_with(url, |_| {}).await
}

/// The master key of the tests' databases (secrets at rest): one for every in-process
/// server, and given to the binaries the tests start (`RESELLER_MASTER_KEY`).
pub const TEST_MASTER_KEY: &str = "dGVzdC1tYXN0ZXIta2V5LW9mLTMyLWJ5dGVzLWxvbmc=";

pub async fn spawn_app_on_with(url: &str, configure: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config {
        database_url: url.into(),
        db_pool_size: 8,
        max_body_bytes: 16 * 1024,
        master_key: Some(TEST_MASTER_KEY.to_string().into()),
        ..Config::default()
    };
    configure(&mut config);
    db::migrate(url).expect("migrate");
    // In-process servers on throwaway databases need not wait for the disk; the
    // crash-safety tests run the real binary, which always does.
    let pool = db::connect_options(
        url,
        db::PoolOptions {
            size: config.db_pool_size,
            durability: db::Durability::Relaxed,
            write_queue: config.write_queue,
        },
    )
    .expect("pool");
    let mut conn = pool.get().unwrap();
    reseller_api::application::master_key::setup(&config, &mut conn).expect("the master key");
    let tokens = TokenKeys::load(&mut conn, &config).expect("token keys");
    let (admin, _, admin_key) =
        create_account_with_key(&mut conn, &Actor::cli(), "ops", Role::Admin, "USD")
            .expect("admin");
    drop(conn);
    let data = state(pool.clone(), config.clone(), tokens).expect("config");
    let server = HttpServer::new(move || build_app(data.clone()))
        .workers(2)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind");
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    let mut app = TestApp {
        base: format!("http://{addr}"),
        client,
        config,
        pool,
        admin_token: String::new(),
        admin_id: admin.id.get(),
        handle,
        _db: None,
    };
    app.admin_token = app.token_for(&admin_key).await;
    app
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting; the workers end with the test's runtime.
        let handle = self.handle.clone();
        actix_rt::spawn(async move { handle.stop(false).await });
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn reply(
        mut response: awc::ClientResponse<
            impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
                + Unpin,
        >,
    ) -> Reply {
        let bytes = response.body().limit(8 * 1024 * 1024).await.expect("body");
        let text = String::from_utf8_lossy(&bytes).to_string();
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        Self::reply(response).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.post_with(path, token, body, &[]).await
    }

    pub async fn post_with(
        &self,
        path: &str,
        token: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client.post(self.url(path));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        let response = request.send_json(&body).await.expect("request");
        Self::reply(response).await
    }

    /// Sends a raw body with the given content type.
    pub async fn post_raw(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .insert_header(("content-type", content_type))
            .send_body(body)
            .await
            .expect("request");
        Self::reply(response).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        let response = self
            .client
            .patch(self.url(path))
            .bearer_auth(token)
            .send_json(&body)
            .await
            .expect("request");
        Self::reply(response).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        let response = self
            .client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        Self::reply(response).await
    }

    pub async fn token_for(&self, api_key: &str) -> String {
        let reply = self
            .post("/v1/auth/token", "", json!({ "api_key": api_key }))
            .await;
        assert_eq!(reply.status, 200, "token: {}", reply.text);
        reply.body["access_token"].as_str().unwrap().to_string()
    }

    pub async fn create_reseller(&self, name: &str) -> Reseller {
        let reply = self
            .post(
                "/v1/admin/accounts",
                &self.admin_token,
                json!({ "name": name, "role": "reseller" }),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let key = reply.body["api_key"].as_str().unwrap().to_string();
        Reseller {
            id: reply.body["account"]["id"].as_i64().unwrap(),
            token: self.token_for(&key).await,
            key,
        }
    }

    pub async fn top_up(&self, account_id: i64, amount: &str) -> Reply {
        let reply = self
            .post(
                &format!("/v1/admin/accounts/{account_id}/top-ups"),
                &self.admin_token,
                json!({ "amount": amount, "gateway": "test", "gateway_ref": format!("ref-{}", random_suffix()) }),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply
    }

    /// A reseller with `amount` on its balance.
    pub async fn funded_reseller(&self, name: &str, amount: &str) -> Reseller {
        let reseller = self.create_reseller(name).await;
        self.top_up(reseller.id, amount).await;
        reseller
    }

    pub async fn create_service(&self, body: Value) -> i64 {
        let reply = self
            .post("/v1/admin/services", &self.admin_token, body)
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.body["id"].as_i64().unwrap()
    }

    /// A default-type service at `rate` per 1000, quantities 10 to 100000.
    pub async fn service(&self, rate: &str) -> i64 {
        self.create_service(json!({
            "name": "Instagram Likes", "category": "Instagram", "type": "default",
            "rate": rate, "min": 10, "max": 100000, "refill": false, "cancel": true
        }))
        .await
    }

    pub async fn order(&self, token: &str, service_id: i64, quantity: i64) -> Reply {
        self.post(
            "/v1/orders",
            token,
            json!({ "service_id": service_id, "link": "https://instagram.com/p/abc", "quantity": quantity }),
        )
        .await
    }

    pub async fn balance_micros(&self, token: &str) -> i64 {
        let reply = self.get("/v1/account", token).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        micros(&reply.body["balance"])
    }

    /// The account's ledger, newest first (first page of 100).
    pub async fn ledger(&self, token: &str) -> Vec<Value> {
        let reply = self.get("/v1/ledger?limit=100", token).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body["data"].as_array().unwrap().clone()
    }

    pub fn order_count(&self) -> i64 {
        use diesel::prelude::*;
        use reseller_api::db::schema::orders;
        let mut conn = self.pool.get().unwrap();
        orders::table.count().get_result(&mut *conn).unwrap()
    }

    /// `reseller-api verify` over the test's database: the books must balance.
    pub fn assert_books_balance(&self) {
        let mut conn = self.pool.get().unwrap();
        let report = db::verify::run(&mut conn).expect("verify");
        assert!(
            report.problems.is_empty(),
            "verify found: {:#?}",
            report.problems
        );
    }
}

impl TestApp {
    /// Records a delivery outcome as an operator.
    pub async fn outcome(&self, order_id: i64, body: Value) -> Reply {
        self.post(
            &format!("/v1/admin/orders/{order_id}/outcome"),
            &self.admin_token,
            body,
        )
        .await
    }

    /// Places an order and returns its id, asserting it was created.
    pub async fn order_id(&self, token: &str, service_id: i64, quantity: i64) -> i64 {
        let reply = self.order(token, service_id, quantity).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.body["id"].as_i64().unwrap()
    }

    pub async fn order_json(&self, token: &str, order_id: i64) -> Value {
        let reply = self.get(&format!("/v1/orders/{order_id}"), token).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body
    }

    /// Sum of the ledger's refund credits for one order, from the reseller's ledger.
    pub async fn refunded_in_ledger(&self, token: &str, order_id: i64) -> i64 {
        self.ledger(token)
            .await
            .iter()
            .filter(|e| e["kind"] == "refund" && e["order_id"] == order_id)
            .map(|e| micros(&e["amount"]))
            .sum()
    }
}

/// A scripted upstream API v2 provider on a loopback port: every request is recorded,
/// and `respond` decides the reply (status, body, delay before answering).
pub struct StandIn {
    pub url: String,
    pub calls: std::sync::Arc<std::sync::Mutex<Vec<std::collections::HashMap<String, String>>>>,
    handle: ServerHandle,
}

pub type Responder =
    dyn Fn(&std::collections::HashMap<String, String>) -> (u16, String, Duration) + Send + Sync;

impl StandIn {
    pub async fn start(
        respond: impl Fn(&std::collections::HashMap<String, String>) -> (u16, String, Duration)
            + Send
            + Sync
            + 'static,
    ) -> StandIn {
        use actix_web::{web, App, HttpResponse};
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let respond: std::sync::Arc<Responder> = std::sync::Arc::new(respond);
        let recorded = calls.clone();
        let server = HttpServer::new(move || {
            let recorded = recorded.clone();
            let respond = respond.clone();
            App::new().default_service(web::to(move |body: web::Bytes| {
                let recorded = recorded.clone();
                let respond = respond.clone();
                async move {
                    let fields: std::collections::HashMap<String, String> =
                        form_urlencoded::parse(&body).into_owned().collect();
                    recorded.lock().unwrap().push(fields.clone());
                    let (status, body, delay) = respond(&fields);
                    if !delay.is_zero() {
                        actix_rt::time::sleep(delay).await;
                    }
                    HttpResponse::build(StatusCode::from_u16(status).unwrap())
                        .content_type("text/html")
                        .body(body)
                }
            }))
        })
        .workers(2)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        StandIn {
            url: format!("http://{addr}/api/v2"),
            calls,
            handle,
        }
    }

    /// The recorded requests with this action.
    pub fn calls_of(&self, action: &str) -> Vec<std::collections::HashMap<String, String>> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.get("action").map(String::as_str) == Some(action))
            .cloned()
            .collect()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_rt::spawn(async move { handle.stop(false).await });
    }
}

impl TestApp {
    /// Registers a provider and a service routed to it (rate 1 per 1000, remote id "77").
    pub async fn provider_service(
        &self,
        url: &str,
        idempotent: bool,
        timeout_ms: i64,
    ) -> (i64, i64) {
        let provider = self
            .post(
                "/v1/admin/providers",
                &self.admin_token,
                json!({"allow_private_network": true, "name": "Upstream", "url": url, "key": "upstream-key", "timeout_ms": timeout_ms, "idempotent_add": idempotent}),
            )
            .await;
        assert_eq!(provider.status, 201, "{}", provider.text);
        assert!(
            provider.body.get("key").is_none(),
            "the key is never returned"
        );
        let provider_id = provider.body["id"].as_i64().unwrap();
        let service = self
            .create_service(json!({
                "name": "Upstream Likes", "category": "Instagram", "type": "default", "rate": "1",
                "min": 10, "max": 100000, "cancel": true,
                "provider_id": provider_id, "provider_service_id": "77"
            }))
            .await;
        (provider_id, service)
    }

    /// One pass of a provider worker over this app's database, off the async runtime.
    pub async fn worker_pass(&self) -> reseller_api::providers::worker::Pass {
        let worker = reseller_api::providers::worker::Worker::new(
            self.pool.clone(),
            self.config.worker.clone(),
            Default::default(),
        );
        actix_web::web::block(move || worker.run_once())
            .await
            .unwrap()
            .unwrap()
    }

    pub fn provider_order(
        &self,
        order_id: i64,
    ) -> reseller_api::db::provider_orders::ProviderOrder {
        let mut conn = self.pool.get().unwrap();
        reseller_api::db::provider_orders::find(
            &mut conn,
            reseller_api::domain::ids::OrderId(order_id),
        )
        .unwrap()
        .unwrap()
    }

    /// An order of 1000 at rate 1 (charge 1.000000) that the worker has sent: its id, and
    /// the provider's id for it.
    pub async fn sent_order(&self, reseller: &Reseller, service: i64) -> (i64, String) {
        let order = self.order_id(&reseller.token, service, 1000).await;
        self.worker_pass().await;
        let job = self.provider_order(order);
        assert_eq!(
            job.state,
            reseller_api::domain::provider::ForwardingState::Sent
        );
        (order, job.provider_order_id.unwrap())
    }

    /// Makes every provider job due now (skips backoff waits in tests).
    pub fn make_due(&self) {
        use diesel::prelude::*;
        use reseller_api::db::schema::provider_orders;
        let mut conn = self.pool.get().unwrap();
        diesel::update(provider_orders::table)
            .set(provider_orders::next_at.eq(reseller_api::db::now()))
            .execute(&mut *conn)
            .unwrap();
    }
}

impl TestApp {
    /// A form-encoded API v2 call, as panel tooling sends it.
    pub async fn api_v2(&self, fields: &[(&str, &str)]) -> Reply {
        let response = self
            .client
            .post(self.url("/api/v2"))
            .send_form(&fields)
            .await
            .expect("request");
        Self::reply(response).await
    }
}

impl TestApp {
    /// Any request to API v2 as a client sends it: method, path with query, content type
    /// (none when empty) and raw body.
    pub async fn api_v2_raw(
        &self,
        method: &str,
        path_and_query: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.client.request(method, self.url(path_and_query));
        if !content_type.is_empty() {
            request = request.insert_header(("Content-Type", content_type));
        }
        let response = request.send_body(body).await.expect("request");
        Self::reply(response).await
    }
}

/// What the scripted panel upstream knows and how it answers; tests change it between
/// worker passes.
pub struct PanelState {
    next_order: i64,
    next_refill: i64,
    /// The status object `status` answers for each provider order id.
    pub statuses: std::collections::HashMap<String, Value>,
    /// The status `refill_status` answers for each provider refill id (a word, or an
    /// object such as `{"error": ...}`).
    pub refills: std::collections::HashMap<String, Value>,
    /// When set, the body `refill` answers instead of taking the refill.
    pub refill_reply: Option<String>,
    /// Whether `refill_status` with `refills=` answers as a batch; otherwise it answers
    /// `{"error":"Refill not found"}`, as panels that know only `refill=` do.
    pub batch_refill_status: bool,
    /// The answer `cancel` gives for a provider order id (`1`, or `{"error": ...}`); `1`
    /// for any id not listed.
    pub cancels: std::collections::HashMap<String, Value>,
    pub balance: String,
    /// What `services` answers.
    pub services: Value,
    /// The currency it bills in: named in every `status` item it makes and in `balance`.
    pub currency: String,
    /// The `charge` a new order's status starts with (per order; `report` changes it).
    pub add_charge: String,
    /// Subscriptions it took (an `add` with `username`): the object `status` answers for
    /// each (`status`, `expiry`, `posts`, `orders` with the child ids).
    pub subscriptions: std::collections::HashMap<String, Value>,
    /// When set, the body a subscription's `add` answers instead of taking it.
    pub subscription_add_reply: Option<String>,
}

impl PanelState {
    /// What `status` answers for `id` from now on: the status, remains and the charge the
    /// provider bills for it in its currency. After a Partial or Canceled, the charge it
    /// gives says whether it credits back fully (lowered by the refunded share), partly or
    /// not at all (unchanged).
    pub fn report(&mut self, id: &str, status: &str, remains: i64, charge: &str) {
        let currency = self.currency.clone();
        self.statuses.insert(
            id.to_string(),
            json!({"charge": charge, "start_count": "0", "status": status,
                   "remains": remains.to_string(), "currency": currency}),
        );
    }
}

impl PanelState {
    /// The provider makes a child order for a new post of subscription `sub` (the schedule
    /// a test drives): a new order id in the subscription's `orders`, its status `In
    /// progress` with the `charge` it bills and no `remains` or quantity, as panels report
    /// a subscription's children. Returns the child's id.
    pub fn child(&mut self, sub: &str, charge: &str) -> String {
        let id = self.next_order.to_string();
        self.next_order += 1;
        let currency = self.currency.clone();
        self.statuses.insert(
            id.clone(),
            json!({"charge": charge, "start_count": "0", "status": "In progress", "currency": currency}),
        );
        let entry = self
            .subscriptions
            .get_mut(sub)
            .expect("a subscription the stand-in took");
        entry["orders"]
            .as_array_mut()
            .unwrap()
            .push(json!(id.parse::<i64>().unwrap()));
        let posts = entry["orders"].as_array().unwrap().len();
        entry["posts"] = json!(posts.to_string());
        id
    }

    /// What `status` answers for a child from now on: a status and its final charge, no
    /// `remains` (the provider gives no quantity for a child).
    pub fn report_child(&mut self, id: &str, status: &str, charge: &str) {
        let currency = self.currency.clone();
        self.statuses.insert(
            id.to_string(),
            json!({"charge": charge, "start_count": "0", "status": status, "currency": currency}),
        );
    }

    /// Sets a subscription's status word (`Paused`, `Completed`, `Expired`, `Canceled`...).
    pub fn set_subscription(&mut self, sub: &str, status: &str) {
        self.subscriptions
            .get_mut(sub)
            .expect("a subscription the stand-in took")["status"] = json!(status);
    }
}

pub type Panel = std::sync::Arc<std::sync::Mutex<PanelState>>;

impl StandIn {
    /// A stand-in that answers like a whole panel from a shared [`PanelState`]: `add`
    /// takes orders under ids from 9001 (status `Pending`), `refill` under ids from 501.
    pub async fn panel() -> (StandIn, Panel) {
        let panel: Panel = std::sync::Arc::new(std::sync::Mutex::new(PanelState {
            next_order: 9001,
            next_refill: 501,
            statuses: Default::default(),
            refills: Default::default(),
            refill_reply: None,
            batch_refill_status: true,
            cancels: Default::default(),
            balance: "1000.00".into(),
            services: json!([]),
            currency: "USD".into(),
            add_charge: "1".into(),
            subscriptions: Default::default(),
            subscription_add_reply: None,
        }));
        let state = panel.clone();
        let stand_in = StandIn::start(move |fields| {
            let ok = |value: Value| (200, value.to_string(), Duration::ZERO);
            let mut panel = state.lock().unwrap();
            let ids = |name: &str| -> Vec<String> {
                fields
                    .get(name)
                    .map(|raw| raw.split(',').map(str::to_string).collect())
                    .unwrap_or_default()
            };
            match fields.get("action").map(String::as_str) {
                Some("add") if fields.contains_key("username") => {
                    if let Some(body) = &panel.subscription_add_reply {
                        return (200, body.clone(), Duration::ZERO);
                    }
                    let id = panel.next_order.to_string();
                    panel.next_order += 1;
                    let expiry = fields.get("expiry").cloned().map_or(Value::Null, Value::from);
                    panel.subscriptions.insert(
                        id.clone(),
                        json!({"status": "Active", "expiry": expiry, "posts": "0", "orders": []}),
                    );
                    ok(json!({ "order": id.parse::<i64>().unwrap() }))
                }
                Some("add") => {
                    let id = panel.next_order.to_string();
                    panel.next_order += 1;
                    let (charge, currency) = (panel.add_charge.clone(), panel.currency.clone());
                    panel.statuses.insert(
                        id.clone(),
                        json!({"charge": charge, "start_count": "0", "status": "Pending", "remains": "0", "currency": currency}),
                    );
                    ok(json!({ "order": id.parse::<i64>().unwrap() }))
                }
                Some("status") => {
                    let mut reply = serde_json::Map::new();
                    for id in ids("orders") {
                        let item = panel
                            .subscriptions
                            .get(&id)
                            .or_else(|| panel.statuses.get(&id))
                            .cloned();
                        reply.insert(id, item.unwrap_or(json!({"error": "Incorrect order ID"})));
                    }
                    ok(Value::Object(reply))
                }
                Some("refill") => {
                    if let Some(body) = &panel.refill_reply {
                        return (200, body.clone(), Duration::ZERO);
                    }
                    let id = panel.next_refill.to_string();
                    panel.next_refill += 1;
                    panel.refills.insert(id.clone(), json!("Pending"));
                    ok(json!({ "refill": id }))
                }
                Some("refill_status") if fields.contains_key("refills") => {
                    if !panel.batch_refill_status {
                        return ok(json!({"error": "Refill not found"}));
                    }
                    let items: Vec<Value> = ids("refills")
                        .into_iter()
                        .map(|id| {
                            let status = panel.refills.get(&id).cloned();
                            json!({"refill": id.parse::<i64>().unwrap_or(0),
                                   "status": status.unwrap_or(json!({"error": "Refill not found"}))})
                        })
                        .collect();
                    ok(Value::Array(items))
                }
                Some("refill_status") => {
                    let id = fields.get("refill").cloned().unwrap_or_default();
                    match panel.refills.get(&id) {
                        Some(Value::String(word)) => ok(json!({ "status": word })),
                        Some(other) => ok(other.clone()),
                        None => ok(json!({"error": "Refill not found"})),
                    }
                }
                Some("cancel") => {
                    let items: Vec<Value> = ids("orders")
                        .into_iter()
                        .map(|id| {
                            let answer = panel.cancels.get(&id).cloned().unwrap_or(json!(1));
                            // A subscription it cancels is Canceled from then on.
                            if answer == json!(1) {
                                if let Some(sub) = panel.subscriptions.get_mut(&id) {
                                    sub["status"] = json!("Canceled");
                                }
                            }
                            json!({"order": id.parse::<i64>().unwrap_or(0), "cancel": answer})
                        })
                        .collect();
                    ok(Value::Array(items))
                }
                Some("balance") => ok(json!({"balance": panel.balance, "currency": panel.currency})),
                Some("services") => ok(panel.services.clone()),
                _ => ok(json!({"error": "This action is Invalid"})),
            }
        })
        .await;
        (stand_in, panel)
    }
}

impl TestApp {
    /// One refill's row as the worker sees it.
    pub fn refill_row(&self, refill_id: i64) -> reseller_api::db::refills::Refill {
        let mut conn = self.pool.get().unwrap();
        reseller_api::db::refills::find(&mut conn, reseller_api::domain::ids::RefillId(refill_id))
            .unwrap()
            .unwrap()
    }
}

/// Runs `f` in a write transaction of its own, as the worker and the application do: a
/// `db` write helper takes the `WriteConn` only `db::write_tx` hands out.
pub fn write<T: Send>(
    conn: &mut db::DbConnection,
    f: impl Fn(&mut db::WriteConn<'_>) -> diesel::QueryResult<T> + Sync,
) -> T {
    db::write_tx(conn, f).unwrap()
}
