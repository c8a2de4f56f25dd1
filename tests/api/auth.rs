use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_on};
use reseller_api::db::jwt_keys;
use reseller_api::domain::account::Role;
use reseller_api::domain::audit::Actor;
use reseller_api::http::auth::{Claims, TokenKeys, REVOCATION_POLL_EVERY};
use reseller_api::http::token_cache::{digest, TokenCache};

fn signing_secret(app: &crate::helpers::TestApp) -> (String, String) {
    let mut conn = app.pool.get().unwrap();
    let key = jwt_keys::live(&mut conn).unwrap().remove(0);
    (key.kid, key.secret.expose_secret().to_string())
}

fn claims(overrides: serde_json::Value) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": "reseller-api", "aud": "reseller-api", "sub": "1", "role": "admin",
        "scope": "orders:read admin", "iat": now, "nbf": now, "exp": now + 600, "jti": "t1"
    });
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

/// The id of a live API key of the app's admin account, for tokens signed by hand.
fn admin_key_id(app: &crate::helpers::TestApp) -> i64 {
    use diesel::prelude::*;
    use reseller_api::db::schema::api_keys;
    let mut conn = app.pool.get().unwrap();
    api_keys::table
        .filter(api_keys::account_id.eq(app.admin_id))
        .filter(api_keys::revoked_at.is_null())
        .select(api_keys::id)
        .first(&mut conn)
        .unwrap()
}

fn sign(kid: Option<&str>, secret: &str, claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[actix_rt::test]
async fn api_key_exchanges_for_a_token_that_reads_the_account() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let reply = app
        .post("/v1/auth/token", "", json!({ "api_key": reseller.key }))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 900);
    assert!(reply.body["scope"]
        .as_str()
        .unwrap()
        .contains("orders:write"));
    assert!(!reply.body["scope"].as_str().unwrap().contains("admin"));
    let account = app.get("/v1/account", &reseller.token).await;
    assert_eq!(account.status, 200);
    assert_eq!(account.body["id"], reseller.id);
    assert_eq!(account.body["balance"], "0");
    assert_eq!(account.body["role"], "reseller");
    app.assert_books_balance();
}

#[actix_rt::test]
async fn unknown_and_revoked_keys_get_no_token() {
    let app = spawn_app().await;
    let reply = app
        .post("/v1/auth/token", "", json!({ "api_key": "rk_nope" }))
        .await;
    reply.assert_problem(401, "unauthorized");

    let reseller = app.create_reseller("Acme").await;
    let second = app
        .post(
            &format!("/v1/admin/accounts/{}/api-keys", reseller.id),
            &app.admin_token,
            json!({"scopes": ["orders:read"]}),
        )
        .await;
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(second.body["key"]["scopes"], json!(["orders:read"]));
    let key_id = second.body["key"]["id"].as_i64().unwrap();
    let second_key = second.body["api_key"].as_str().unwrap().to_string();
    let limited = app.token_for(&second_key).await;
    // A read-only key cannot order.
    app.order(&limited, 1, 10)
        .await
        .assert_problem(403, "insufficient_scope");

    let revoked = app
        .delete(&format!("/v1/admin/api-keys/{key_id}"), &app.admin_token)
        .await;
    assert_eq!(revoked.status, 200);
    assert!(revoked.body["revoked_at"].is_string());
    app.post("/v1/auth/token", "", json!({ "api_key": second_key }))
        .await
        .assert_problem(401, "unauthorized");
    // The other key still works.
    app.token_for(&reseller.key).await;
}

#[actix_rt::test]
async fn a_reseller_key_cannot_be_given_the_admin_scope() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let reply = app
        .post(
            &format!("/v1/admin/accounts/{}/api-keys", reseller.id),
            &app.admin_token,
            json!({"scopes": ["admin"]}),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.body["param"], "scopes");
}

#[actix_rt::test]
async fn forged_unsigned_expired_and_foreign_tokens_are_refused() {
    let app = spawn_app().await;
    let (kid, secret) = signing_secret(&app);
    let admin = app.admin_id.to_string();
    let akid = admin_key_id(&app);
    let claims = |overrides: serde_json::Value| {
        let mut claims = claims(overrides.clone());
        if !overrides.as_object().unwrap().contains_key("akid") {
            claims["akid"] = json!(akid);
        }
        claims
    };
    let good = sign(Some(&kid), &secret, &claims(json!({ "sub": admin })));
    assert_eq!(app.get("/v1/account", &good).await.status, 200);

    let now = chrono::Utc::now().timestamp();
    let cases = [
        ("no token", String::new()),
        ("garbage", "not.a.jwt".to_string()),
        (
            "wrong secret",
            sign(
                Some(&kid),
                "another-secret",
                &claims(json!({ "sub": admin })),
            ),
        ),
        (
            "no kid",
            sign(None, &secret, &claims(json!({ "sub": admin }))),
        ),
        (
            "unknown kid",
            sign(Some("nope"), &secret, &claims(json!({ "sub": admin }))),
        ),
        (
            "expired beyond leeway",
            sign(
                Some(&kid),
                &secret,
                &claims(
                    json!({ "sub": admin, "iat": now - 1000, "nbf": now - 1000, "exp": now - 60 }),
                ),
            ),
        ),
        (
            "not yet valid",
            sign(
                Some(&kid),
                &secret,
                &claims(json!({ "sub": admin, "nbf": now + 600 })),
            ),
        ),
        (
            "wrong audience",
            sign(
                Some(&kid),
                &secret,
                &claims(json!({ "sub": admin, "aud": "other-api" })),
            ),
        ),
        (
            "wrong issuer",
            sign(
                Some(&kid),
                &secret,
                &claims(json!({ "sub": admin, "iss": "evil" })),
            ),
        ),
        (
            "missing exp",
            sign(
                Some(&kid),
                &secret,
                &claims(json!({ "sub": admin, "exp": null })),
            ),
        ),
        (
            "missing jti",
            sign(
                Some(&kid),
                &secret,
                &claims(json!({ "sub": admin, "jti": null })),
            ),
        ),
        (
            "missing akid",
            sign(
                Some(&kid),
                &secret,
                &claims(json!({ "sub": admin, "akid": null })),
            ),
        ),
        (
            "another account's key",
            sign(
                Some(&kid),
                &secret,
                &claims(json!({ "sub": admin, "akid": akid + 1_000_000 })),
            ),
        ),
    ];
    for (why, token) in cases {
        let reply = app.get("/v1/account", &token).await;
        assert_eq!(reply.status, 401, "{why}: {}", reply.text);
        assert_eq!(reply.body["code"], "unauthorized", "{why}");
        assert_eq!(reply.header("www-authenticate").as_deref(), Some("Bearer"));
    }

    // alg "none": a token with an empty signature.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(json!({ "alg": "none", "typ": "JWT", "kid": kid }).to_string());
    let payload = b64.encode(claims(json!({ "sub": admin })).to_string());
    let reply = app
        .get("/v1/account", &format!("{header}.{payload}."))
        .await;
    assert_eq!(reply.status, 401, "alg none: {}", reply.text);

    // A token signed with HS512 under the right secret is still refused: one algorithm only.
    let mut hs512 = Header::new(Algorithm::HS512);
    hs512.kid = Some(kid.clone());
    let token = jsonwebtoken::encode(
        &hs512,
        &claims(json!({ "sub": admin })),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert_eq!(app.get("/v1/account", &token).await.status, 401);
}

#[actix_rt::test]
async fn a_reseller_token_cannot_call_admin_endpoints() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let reply = app
        .post(
            "/v1/admin/accounts",
            &reseller.token,
            json!({ "name": "x", "role": "admin" }),
        )
        .await;
    reply.assert_problem(403, "admin_only");
    let reply = app
        .post(
            &format!("/v1/admin/accounts/{}/top-ups", reseller.id),
            &reseller.token,
            json!({ "amount": "100", "gateway": "x", "gateway_ref": "y" }),
        )
        .await;
    reply.assert_problem(403, "admin_only");
    assert_eq!(app.balance_micros(&reseller.token).await, 0);
}

#[actix_rt::test]
async fn two_processes_on_one_database_accept_each_others_tokens_and_rotations() {
    let first = spawn_app().await;
    let second = spawn_app_on(first.config.database_url.expose_secret()).await;
    let reseller = first.create_reseller("Acme").await;
    // Issued by the first, accepted by the second.
    assert_eq!(second.get("/v1/account", &reseller.token).await.status, 200);

    // Rotate: new tokens carry the new kid; old tokens keep working until they expire.
    let old_token = reseller.token.clone();
    let new_kid = {
        let mut conn = first.pool.get().unwrap();
        TokenKeys::rotate(&mut conn, &Actor::cli(), &first.config).unwrap()
    };
    // A process that started after the rotation signs with the new key.
    let third = spawn_app_on(first.config.database_url.expose_secret()).await;
    let fresh = third.token_for(&reseller.key).await;
    let header = jsonwebtoken::decode_header(&fresh).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
    // The first and second processes have not reloaded yet, but accept the unknown kid
    // after one re-read of the key set.
    assert_eq!(first.get("/v1/account", &fresh).await.status, 200);
    assert_eq!(second.get("/v1/account", &fresh).await.status, 200);
    assert_eq!(third.get("/v1/account", &old_token).await.status, 200);
    first.assert_books_balance();
}

/// Polls `path` with `token` until it is refused, for at most 5 seconds; the elapsed time.
async fn refused_within_5s(
    app: &crate::helpers::TestApp,
    token: &str,
) -> (std::time::Duration, crate::helpers::Reply) {
    let started = std::time::Instant::now();
    loop {
        let reply = app.get("/v1/account", token).await;
        if reply.status != 200 || started.elapsed() > std::time::Duration::from_secs(5) {
            return (started.elapsed(), reply);
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A second key for the reseller: its id, an access token issued from it.
async fn second_key(app: &crate::helpers::TestApp, account_id: i64) -> (i64, String) {
    let (key_id, key) = second_api_key(app, account_id).await;
    (key_id, app.token_for(&key).await)
}

#[actix_rt::test]
async fn revoking_a_key_refuses_the_tokens_already_issued_with_it_within_5s() {
    let app = spawn_app().await;
    let reseller = app.create_reseller("Acme").await;
    let (key_id, token) = second_key(&app, reseller.id).await;
    // Validated and cached: the next uses skip the signature and the parse.
    for _ in 0..3 {
        assert_eq!(app.get("/v1/account", &token).await.status, 200);
    }
    let revoked = app
        .delete(&format!("/v1/admin/api-keys/{key_id}"), &app.admin_token)
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let (elapsed, reply) = refused_within_5s(&app, &token).await;
    reply.assert_problem(401, "unauthorized");
    assert!(elapsed <= std::time::Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(reply.header("www-authenticate").as_deref(), Some("Bearer"));
    // Stays refused; the account's other key and its token are untouched.
    app.get("/v1/account", &token)
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(app.get("/v1/account", &reseller.token).await.status, 200);
    assert_eq!(app.get("/v1/account", &app.admin_token).await.status, 200);
}

#[actix_rt::test]
async fn a_revocation_through_one_process_reaches_another_within_5s() {
    let first = spawn_app().await;
    let second = spawn_app_on(first.config.database_url.expose_secret()).await;
    let reseller = first.create_reseller("Acme").await;
    let (key_id, token) = second_key(&first, reseller.id).await;
    // Both processes have validated and cached the token.
    assert_eq!(first.get("/v1/account", &token).await.status, 200);
    assert_eq!(second.get("/v1/account", &token).await.status, 200);
    let revoked = first
        .delete(&format!("/v1/admin/api-keys/{key_id}"), &first.admin_token)
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let (elapsed, reply) = refused_within_5s(&second, &token).await;
    reply.assert_problem(401, "unauthorized");
    assert!(elapsed <= std::time::Duration::from_secs(5), "{elapsed:?}");
    first
        .get("/v1/account", &token)
        .await
        .assert_problem(401, "unauthorized");
    // Other tokens are checked again after the cache was dropped, and still pass.
    assert_eq!(second.get("/v1/account", &reseller.token).await.status, 200);
    assert!(REVOCATION_POLL_EVERY <= std::time::Duration::from_secs(2));
}

/// A second plaintext API key for the reseller, and its id.
async fn second_api_key(app: &crate::helpers::TestApp, account_id: i64) -> (i64, String) {
    let second = app
        .post(
            &format!("/v1/admin/accounts/{account_id}/api-keys"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(second.status, 201, "{}", second.text);
    (
        second.body["key"]["id"].as_i64().unwrap(),
        second.body["api_key"].as_str().unwrap().to_string(),
    )
}

#[actix_rt::test]
async fn a_revoked_api_key_is_refused_on_api_v2_by_every_process_within_5s() {
    let first = spawn_app().await;
    let second = spawn_app_on(first.config.database_url.expose_secret()).await;
    let reseller = first.funded_reseller("Acme", "12.5").await;
    let (key_id, key) = second_api_key(&first, reseller.id).await;
    // Both processes have checked the key and remember its holder.
    for app in [&first, &second] {
        for _ in 0..2 {
            let reply = app.api_v2(&[("key", &key), ("action", "balance")]).await;
            assert_eq!(reply.body["balance"], "12.5", "{}", reply.text);
        }
    }
    // The balance is read fresh even though the holder is remembered.
    first.top_up(reseller.id, "0.25").await;
    let reply = second.api_v2(&[("key", &key), ("action", "balance")]).await;
    assert_eq!(reply.body["balance"], "12.75", "{}", reply.text);

    let revoked = first
        .delete(&format!("/v1/admin/api-keys/{key_id}"), &first.admin_token)
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let started = std::time::Instant::now();
    let reply = loop {
        let reply = second.api_v2(&[("key", &key), ("action", "balance")]).await;
        if reply.body.get("error").is_some() || started.elapsed() > Duration::from_secs(5) {
            break reply;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        json!({ "error": "Invalid API key" }),
        "{}",
        reply.text
    );
    assert!(started.elapsed() <= Duration::from_secs(5));
    let reply = first.api_v2(&[("key", &key), ("action", "balance")]).await;
    assert_eq!(reply.body, json!({ "error": "Invalid API key" }));
    // The account's first key still works, in both processes.
    for app in [&first, &second] {
        let reply = app
            .api_v2(&[("key", &reseller.key), ("action", "balance")])
            .await;
        assert_eq!(reply.body["balance"], "12.75", "{}", reply.text);
    }
    first.assert_books_balance();
}

fn cached_claims(jti: &str) -> Claims {
    Claims {
        iss: "reseller-api".into(),
        aud: "reseller-api".into(),
        sub: "7".into(),
        role: Role::Reseller,
        scope: "orders:read".into(),
        iat: 0,
        nbf: 0,
        exp: 2_000_000_000,
        jti: jti.into(),
        akid: reseller_api::domain::ids::ApiKeyId(3),
    }
}

#[test]
fn the_token_cache_is_bounded_and_keyed_by_digest() {
    let mut cache = TokenCache::new(3);
    let tokens: Vec<String> = (0..5)
        .map(|i| format!("eyJhbGciOi.token-{i}.sig"))
        .collect();
    for (i, token) in tokens.iter().enumerate() {
        cache.insert(
            digest(token),
            cached_claims(&format!("j{i}")),
            2_000_000_000,
            0,
        );
        assert!(cache.len() <= 3);
    }
    assert_eq!(cache.len(), 3);
    // The oldest went first.
    assert!(cache.get(&digest(&tokens[0]), 0).is_none());
    assert!(cache.get(&digest(&tokens[1]), 0).is_none());
    assert_eq!(cache.get(&digest(&tokens[4]), 0).unwrap().jti, "j4");
    // Keyed by the SHA-256 of the token; no token (nor any part of one) is held.
    for digest in cache.digests() {
        let bytes = digest.as_slice();
        for token in &tokens {
            assert!(!bytes
                .windows(5)
                .any(|w| token.as_bytes().windows(5).any(|t| t == w)));
        }
    }
    use sha2::Digest as _;
    let sha: [u8; 32] = sha2::Sha256::digest(tokens[4].as_bytes()).into();
    assert!(cache.contains(&sha));

    // Past its lifetime an entry is not used.
    assert!(cache.get(&digest(&tokens[3]), 2_000_000_001).is_none());
    // A newer revocation generation forgets everything; a check under an older one is
    // not remembered.
    cache.observe(1);
    assert!(cache.is_empty());
    cache.insert(digest(&tokens[0]), cached_claims("j0"), 2_000_000_000, 0);
    assert!(cache.is_empty());
    cache.insert(digest(&tokens[0]), cached_claims("j0"), 2_000_000_000, 1);
    assert_eq!(cache.len(), 1);
}
