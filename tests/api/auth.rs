use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_on};
use reseller_api::db::jwt_keys;
use reseller_api::http::auth::TokenKeys;

fn signing_secret(app: &crate::helpers::TestApp) -> (String, String) {
    let mut conn = app.pool.get().unwrap();
    let key = jwt_keys::live(&mut conn).unwrap().remove(0);
    (key.kid, key.secret)
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
    let second = spawn_app_on(&first.config.database_url).await;
    let reseller = first.create_reseller("Acme").await;
    // Issued by the first, accepted by the second.
    assert_eq!(second.get("/v1/account", &reseller.token).await.status, 200);

    // Rotate: new tokens carry the new kid; old tokens keep working until they expire.
    let old_token = reseller.token.clone();
    let new_kid = {
        let mut conn = first.pool.get().unwrap();
        TokenKeys::rotate(&mut conn, &first.config).unwrap()
    };
    // A process that started after the rotation signs with the new key.
    let third = spawn_app_on(&first.config.database_url).await;
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
