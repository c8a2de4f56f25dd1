//! Secrets at rest: provider API keys, webhook signing secrets (current and previous) and
//! token-signing keys are stored sealed under the master key, in the database, its
//! `backup` copy and a `pg_dump`; a plaintext database is sealed on the first start with
//! a key; a process with no key or another key refuses to start; and `keys rotate-master`
//! re-seals everything, after which provider calls, webhook signatures and tokens still
//! verify. Each test runs the real binary where a process's start is what is checked.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::helpers::{
    fresh_database, spawn_app_on_with, spawn_app_with, StandIn, TestApp, TEST_MASTER_KEY,
};
use crate::webhooks::{signed_by, Receiver};
use reseller_api::db;
use reseller_api::secrets::{self, MasterKey};

const PROVIDER_KEY: &str = "pk-live-7f3a9c1e5b2d4a6f8e0c";

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = Text)]
    place: String,
    #[diesel(sql_type = Text)]
    row_key: String,
    #[diesel(sql_type = Nullable<Text>)]
    value: Option<String>,
}

/// Every secret column's stored value, as the database holds it.
fn stored(pool: &db::DbPool) -> Vec<(String, String, String)> {
    let mut conn = pool.get().unwrap();
    diesel::sql_query(
        "SELECT 'provider' AS place, CAST(id AS TEXT) AS row_key, api_key AS value FROM providers
         UNION ALL SELECT 'webhook', CAST(id AS TEXT), secret FROM webhook_endpoints
         UNION ALL SELECT 'webhook', CAST(id AS TEXT), previous_secret FROM webhook_endpoints
         UNION ALL SELECT 'jwt', kid, secret FROM jwt_keys",
    )
    .load::<Stored>(&mut conn)
    .unwrap()
    .into_iter()
    .filter_map(|s| s.value.map(|v| (s.place, s.row_key, v)))
    .collect()
}

fn place<'a>(kind: &str, row: &'a str) -> secrets::Place<'a> {
    match kind {
        "provider" => secrets::provider_api_key(row),
        "webhook" => secrets::webhook_secret(row),
        _ => secrets::jwt_secret(row),
    }
}

/// Asserts every stored secret is an envelope of `key` that opens in its place, and that
/// none holds any of `plaintexts`.
fn assert_sealed_under(pool: &db::DbPool, key: &MasterKey, plaintexts: &[String]) {
    let values = stored(pool);
    assert!(values.len() >= 3, "{values:?}");
    for (kind, row, value) in &values {
        let prefix = format!("enc:v1:{}:", key.id());
        assert!(
            value.starts_with(&prefix),
            "{kind} {row} is stored as {value}"
        );
        for plain in plaintexts {
            assert!(
                !value.contains(plain.as_str()),
                "{kind} {row} holds {plain}"
            );
        }
        key.open(place(kind, row), value)
            .unwrap_or_else(|e| panic!("{kind} {row}: {e}"));
    }
}

/// The plaintexts a leak must not show: the raw secret and, for a webhook secret, its
/// base64 key without the `whsec_` prefix.
fn leak_forms(secrets: &[String]) -> Vec<String> {
    let mut forms = Vec::new();
    for s in secrets {
        forms.push(s.clone());
        if let Some(bare) = s.strip_prefix("whsec_") {
            forms.push(bare.to_string());
        }
    }
    forms
}

fn test_key() -> MasterKey {
    MasterKey::from_base64(TEST_MASTER_KEY).unwrap()
}

/// A provider on `url` with `key`, and a service routed to it.
async fn provider(app: &TestApp, url: &str, key: &str) -> i64 {
    let provider = app
        .post(
            "/v1/admin/providers",
            &app.admin_token,
            json!({"allow_private_network": true, "name": "Upstream", "url": url, "key": key, "timeout_ms": 5000}),
        )
        .await;
    assert_eq!(provider.status, 201, "{}", provider.text);
    app.create_service(json!({
        "name": "Upstream Likes", "category": "Instagram", "type": "default", "rate": "1",
        "min": 10, "max": 100000, "cancel": true,
        "provider_id": provider.body["id"], "provider_service_id": "77"
    }))
    .await
}

/// A provider that accepts every order.
async fn accepting() -> StandIn {
    StandIn::start(|fields| {
        let body = match fields.get("action").map(String::as_str) {
            Some("add") => json!({"order": 9001}),
            Some("balance") => json!({"balance": "100", "currency": "USD"}),
            _ => json!({"status": "In progress", "charge": "1", "remains": "0"}),
        };
        (200, body.to_string(), Duration::ZERO)
    })
    .await
}

async fn app_with_hooks() -> TestApp {
    spawn_app_with(|c| c.webhooks.webhook_allow_private = true).await
}

/// The token-signing secrets, opened.
fn jwt_secrets(pool: &db::DbPool) -> Vec<String> {
    let mut conn = pool.get().unwrap();
    db::jwt_keys::live(&mut conn)
        .unwrap()
        .into_iter()
        .map(|k| k.secret.expose_secret().to_string())
        .collect()
}

/// Runs the binary with `args` on `url`; `key` is `RESELLER_MASTER_KEY` (none: unset).
fn run(url: &str, key: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reseller-api"));
    command
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .env_remove("RESELLER_MASTER_KEY")
        .env_remove("RESELLER_MASTER_KEY_FILE");
    if let Some(key) = key {
        command.env("RESELLER_MASTER_KEY", key);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn sqlite_path(url: &str) -> Option<String> {
    match db::Backend::from_url(url) {
        db::Backend::Sqlite(path) => Some(path),
        db::Backend::Postgres(_) => None,
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn secrets_are_stored_sealed_and_no_backup_or_dump_holds_one_in_clear() {
    let app = app_with_hooks().await;
    let upstream = accepting().await;
    let service = provider(&app, &upstream.url, PROVIDER_KEY).await;
    let receiver = Receiver::start(|_| (200, vec![], Duration::ZERO)).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (endpoint, first) = app
        .endpoint(&reseller.token, &receiver.url, json!([]))
        .await;
    let rotated = app
        .post(
            &format!("/v1/webhook-endpoints/{endpoint}/rotate-secret"),
            &reseller.token,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let second = rotated.body["secret"].as_str().unwrap().to_string();

    // Used where they are needed: the provider gets its key, the receiver both signatures.
    app.order_id(&reseller.token, service, 1000).await;
    app.worker_pass().await;
    let adds = upstream.calls_of("add");
    assert_eq!(adds.len(), 1);
    assert_eq!(adds[0]["key"], PROVIDER_KEY);
    app.top_up(reseller.id, "1").await;
    app.webhook_pass().await;
    let hooks = receiver.received();
    assert!(!hooks.is_empty());
    assert!(hooks
        .iter()
        .all(|h| signed_by(h, &first) && signed_by(h, &second)));

    let mut plaintexts = vec![PROVIDER_KEY.to_string(), first, second];
    plaintexts.extend(jwt_secrets(&app.pool));
    let leaks = leak_forms(&plaintexts);
    assert_sealed_under(&app.pool, &test_key(), &leaks);

    let url = app.config.database_url.expose_secret().to_string();
    let dir = tempfile::tempdir().unwrap();
    let copy = match sqlite_path(&url) {
        Some(_) => {
            let target = dir.path().join("backup.db");
            db::backup::sqlite_backup(&url, &target).unwrap();
            std::fs::read(&target).unwrap()
        }
        None => {
            let dump = Command::new("pg_dump")
                .arg("--no-owner")
                .arg(&url)
                .output()
                .unwrap();
            assert!(dump.status.success(), "pg_dump: {}", stderr(&dump));
            assert!(String::from_utf8_lossy(&dump.stdout).contains("enc:v1:"));
            dump.stdout
        }
    };
    assert!(copy.len() > 1000);
    for leak in &leaks {
        assert!(
            !copy.windows(leak.len()).any(|w| w == leak.as_bytes()),
            "the backup holds {leak} in clear"
        );
    }
}

#[actix_rt::test]
async fn a_database_with_its_secrets_in_clear_is_sealed_on_the_first_start_with_a_key() {
    let app = app_with_hooks().await;
    let upstream = accepting().await;
    let service = provider(&app, &upstream.url, PROVIDER_KEY).await;
    let receiver = Receiver::start(|_| (200, vec![], Duration::ZERO)).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (endpoint, secret) = app
        .endpoint(&reseller.token, &receiver.url, json!([]))
        .await;
    let jwt = jwt_secrets(&app.pool);

    // The database as a version before encryption left it: every secret in clear and no
    // record of a seal.
    {
        let mut conn = app.pool.get().unwrap();
        let _ = diesel::sql_query("DELETE FROM secret_seal").execute(&mut conn);
        diesel::sql_query("UPDATE providers SET api_key = $1")
            .bind::<Text, _>(PROVIDER_KEY)
            .execute(&mut conn)
            .unwrap();
        diesel::sql_query("UPDATE webhook_endpoints SET secret = $1")
            .bind::<Text, _>(&secret)
            .execute(&mut conn)
            .unwrap();
        let mut live = db::jwt_keys::live(&mut conn).unwrap();
        let key = live.remove(0);
        diesel::sql_query("UPDATE jwt_keys SET secret = $1 WHERE kid = $2")
            .bind::<Text, _>(key.secret.expose_secret())
            .bind::<Text, _>(&key.kid)
            .execute(&mut conn)
            .unwrap();
    }
    let url = app.config.database_url.expose_secret().to_string();
    let values = stored(&app.pool);
    assert!(values.iter().any(|(_, _, v)| v == PROVIDER_KEY));

    // The first start with the key seals them, in place.
    let started = run(&url, Some(TEST_MASTER_KEY), &["verify"]);
    assert!(started.status.success(), "{}", stderr(&started));
    let mut plaintexts = vec![PROVIDER_KEY.to_string(), secret.clone()];
    plaintexts.extend(jwt.clone());
    assert_sealed_under(&app.pool, &test_key(), &leak_forms(&plaintexts));
    if let Some(path) = sqlite_path(&url) {
        assert!(
            !Path::new(&format!("{path}.key")).exists(),
            "the key was given"
        );
    }

    // And they still work: the provider gets its key, the receiver a verifiable signature,
    // and a token signed before still validates.
    let again = spawn_app_on_with(&url, |c| c.webhooks.webhook_allow_private = true).await;
    let old_token = again.get("/v1/admin/providers", &app.admin_token).await;
    assert_eq!(old_token.status, 200, "{}", old_token.text);
    again.order_id(&reseller.token, service, 1000).await;
    again.worker_pass().await;
    let adds = upstream.calls_of("add");
    assert_eq!(adds.len(), 1);
    assert_eq!(adds[0]["key"], PROVIDER_KEY);
    again.top_up(reseller.id, "1").await;
    again.webhook_pass().await;
    let hooks = receiver.received();
    assert!(!hooks.is_empty(), "endpoint {endpoint} got nothing");
    assert!(hooks.iter().all(|h| signed_by(h, &secret)));
}

#[actix_rt::test]
async fn a_process_without_the_master_key_or_with_another_refuses_to_start() {
    let app = spawn_app_with(|_| {}).await;
    let upstream = accepting().await;
    provider(&app, &upstream.url, PROVIDER_KEY).await;
    let url = app.config.database_url.expose_secret().to_string();
    let before = stored(&app.pool);

    let missing = run(&url, None, &["verify"]);
    assert!(!missing.status.success(), "started without the key");
    let said = stderr(&missing);
    match sqlite_path(&url) {
        Some(path) => {
            assert!(
                said.contains(&format!("encrypted under master key {}", test_key().id())),
                "{said}"
            );
            assert!(
                !Path::new(&format!("{path}.key")).exists(),
                "a new key was made for a database sealed under another"
            );
        }
        None => assert!(said.contains("PostgreSQL needs the master key"), "{said}"),
    }

    // The server itself, with another key: it stops at once with the reason.
    let other = MasterKey::generate();
    let mut server = Command::new(env!("CARGO_BIN_EXE_reseller-api"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", &url)
        .env("RESELLER_MASTER_KEY", other.to_base64())
        .env_remove("RESELLER_MASTER_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            server.kill().ok();
            server.wait().ok();
            panic!("the server started with a wrong master key");
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    let output = server.wait_with_output().unwrap();
    assert!(!status.success());
    let said = stderr(&output);
    assert!(said.contains("wrong master key"), "{said}");
    assert!(
        said.contains(test_key().id()) && said.contains(other.id()),
        "{said}"
    );
    assert_eq!(stored(&app.pool), before, "a refused start changed nothing");
}

#[actix_rt::test]
async fn rotate_master_reseals_everything_and_calls_signatures_and_tokens_still_verify() {
    let app = app_with_hooks().await;
    let upstream = accepting().await;
    let service = provider(&app, &upstream.url, PROVIDER_KEY).await;
    let receiver = Receiver::start(|_| (200, vec![], Duration::ZERO)).await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let (_, secret) = app
        .endpoint(&reseller.token, &receiver.url, json!([]))
        .await;
    let url = app.config.database_url.expose_secret().to_string();
    let dir = tempfile::tempdir().unwrap();
    let new_file = dir.path().join("new.key");
    let mut plaintexts = vec![PROVIDER_KEY.to_string(), secret.clone()];
    plaintexts.extend(jwt_secrets(&app.pool));

    let rotated = run(
        &url,
        Some(TEST_MASTER_KEY),
        &[
            "keys",
            "rotate-master",
            "--new-key-file",
            new_file.to_str().unwrap(),
        ],
    );
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&new_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the new key file is the owner's only");
    let new = MasterKey::read_file(&new_file).unwrap();
    assert_ne!(new.id(), test_key().id());
    assert_sealed_under(&app.pool, &new, &leak_forms(&plaintexts));

    // The old key is refused from now on.
    let old = run(&url, Some(TEST_MASTER_KEY), &["verify"]);
    assert!(!old.status.success());
    assert!(
        stderr(&old).contains("wrong master key"),
        "{}",
        stderr(&old)
    );

    // A server with the new key: a token signed before the rotation validates, the
    // provider gets its key, and the receiver a signature that verifies.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_reseller-api"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .args(["--master-key-file", new_file.to_str().unwrap()])
        .args(["--webhook-allow-private", "--worker-interval-ms", "50"])
        .args(["--webhook-interval-ms", "50"])
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .env_remove("RESELLER_MASTER_KEY")
        .env_remove("RESELLER_MASTER_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let deadline = Instant::now() + Duration::from_secs(30);
    let providers: Value = loop {
        let reply = client
            .get(format!("{base}/v1/admin/providers"))
            .bearer_auth(&app.admin_token)
            .send()
            .await;
        if let Ok(mut reply) = reply {
            assert_eq!(reply.status(), 200, "a token signed before the rotation");
            break reply.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "the server did not start");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!providers.to_string().contains(PROVIDER_KEY));
    let placed = client
        .post(format!("{base}/v1/orders"))
        .bearer_auth(&reseller.token)
        .send_json(
            &json!({"service_id": service, "link": "https://instagram.com/p/x", "quantity": 1000}),
        )
        .await
        .unwrap();
    assert_eq!(placed.status(), 201);
    wait_for("the order to reach the provider", || {
        !upstream.calls_of("add").is_empty()
    })
    .await;
    assert_eq!(upstream.calls_of("add")[0]["key"], PROVIDER_KEY);
    let top_up = client
        .post(format!("{base}/v1/admin/accounts/{}/top-ups", reseller.id))
        .bearer_auth(&app.admin_token)
        .send_json(&json!({"amount": "1", "gateway": "test", "gateway_ref": "after-rotation"}))
        .await
        .unwrap();
    assert!(top_up.status().is_success(), "{}", top_up.status());
    wait_for("a webhook", || !receiver.received().is_empty()).await;
    assert!(receiver.received().iter().all(|h| signed_by(h, &secret)));
    server.kill().ok();
    server.wait().ok();
}

#[test]
fn postgres_requires_a_key_and_sqlite_makes_one_owner_only_beside_the_database() {
    let (url, _db) = fresh_database();
    match sqlite_path(&url) {
        None => {
            let refused = run(&url, None, &["verify"]);
            assert!(!refused.status.success());
            assert!(
                stderr(&refused).contains("PostgreSQL needs the master key"),
                "{}",
                stderr(&refused)
            );
        }
        Some(path) => {
            let started = run(&url, None, &["verify"]);
            assert!(started.status.success(), "{}", stderr(&started));
            use std::os::unix::fs::PermissionsExt;
            let file = format!("{path}.key");
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let key = MasterKey::read_file(Path::new(&file)).unwrap();
            // The next start uses it.
            let again = run(&url, None, &["verify"]);
            assert!(again.status.success(), "{}", stderr(&again));
            assert_eq!(
                MasterKey::read_file(Path::new(&file)).unwrap().id(),
                key.id()
            );
        }
    }
}
