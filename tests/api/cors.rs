use actix_web::http::Method;
use clap::Parser;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use reseller_api::cli::Cli;

const DASHBOARD: &str = "https://panel.example.com";

/// Status and headers of a request sent with an `Origin`, as a browser would send it.
struct Seen {
    status: u16,
    headers: actix_web::http::header::HeaderMap,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Every `Access-Control-*` header, by name.
    fn cors_headers(&self) -> Vec<String> {
        self.headers
            .keys()
            .map(|k| k.as_str().to_string())
            .filter(|k| k.starts_with("access-control-"))
            .collect()
    }

    /// The comma-separated names in a header, lower-cased.
    fn list(&self, name: &str) -> Vec<String> {
        self.header(name)
            .unwrap_or_default()
            .split(',')
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> Seen {
    let mut request = app.client.request(method, app.url(path));
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    }
    .expect("request");
    Seen {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
    }
}

async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> Seen {
    send(
        app,
        Method::OPTIONS,
        path,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type,idempotency-key",
            ),
        ],
        None,
    )
    .await
}

async fn dashboard_app() -> TestApp {
    spawn_app_with(|c| {
        c.cors_origins = vec![DASHBOARD.into(), "http://localhost:3000".into()];
        // Preflights must not use up the token quota: three real token requests are allowed
        // (the harness's admin, `create_reseller`, and the test's own).
        c.limits.rate_token = std::num::NonZeroU32::new(3).unwrap();
    })
    .await
}

#[actix_rt::test]
async fn a_configured_origin_may_preflight_without_credentials_and_uses_no_quota() {
    let app = dashboard_app().await;
    for _ in 0..5 {
        let seen = preflight(&app, "/v1/auth/token", DASHBOARD, "POST").await;
        assert_eq!(seen.status, 204);
        assert_eq!(
            seen.header("access-control-allow-origin").as_deref(),
            Some(DASHBOARD)
        );
    }
    let seen = preflight(&app, "/v1/orders", DASHBOARD, "POST").await;
    assert_eq!(seen.status, 204, "no token needed for a preflight");
    assert_eq!(
        seen.header("access-control-allow-origin").as_deref(),
        Some(DASHBOARD)
    );
    let methods = seen.list("access-control-allow-methods");
    for method in ["get", "post", "patch", "delete"] {
        assert!(methods.contains(&method.to_string()), "{methods:?}");
    }
    let allowed = seen.list("access-control-allow-headers");
    for name in [
        "authorization",
        "content-type",
        "idempotency-key",
        "x-request-id",
    ] {
        assert!(allowed.contains(&name.to_string()), "{allowed:?}");
    }
    assert!(
        seen.header("ratelimit").is_none(),
        "a preflight is not counted"
    );
    assert!(seen.list("vary").contains(&"origin".to_string()));
    // The token quota is untouched by the six preflights.
    let reseller = app.create_reseller("Acme").await;
    app.token_for(&reseller.key).await;
}

#[actix_rt::test]
async fn a_preflight_allows_every_method_the_spec_declares_put_included() {
    let app = dashboard_app().await;
    let seen = preflight(&app, "/v1/admin/alert-rules/service/1", DASHBOARD, "PUT").await;
    assert_eq!(seen.status, 204);
    assert_eq!(
        seen.header("access-control-allow-origin").as_deref(),
        Some(DASHBOARD)
    );
    let methods = seen.list("access-control-allow-methods");
    assert!(methods.contains(&"put".to_string()), "{methods:?}");
    // The list is one for every path: it must hold each method any documented route takes.
    let spec = reseller_api::api::api_doc();
    for item in spec.paths.paths.values() {
        for (method, present) in [
            ("get", item.get.is_some()),
            ("post", item.post.is_some()),
            ("put", item.put.is_some()),
            ("patch", item.patch.is_some()),
            ("delete", item.delete.is_some()),
        ] {
            if present {
                assert!(
                    methods.contains(&method.to_string()),
                    "{method}: {methods:?}"
                );
            }
        }
    }
}

#[actix_rt::test]
async fn a_configured_origin_can_read_the_answer_and_its_exposed_headers() {
    let app = dashboard_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("0.9").await;
    let auth = format!("Bearer {}", reseller.token);
    let seen = send(
        &app,
        Method::POST,
        "/v1/orders",
        &[
            ("Origin", DASHBOARD),
            ("Authorization", &auth),
            ("Idempotency-Key", "cors-1"),
        ],
        Some(json!({ "service_id": service, "link": "https://x.test/p", "quantity": 1000 })),
    )
    .await;
    assert_eq!(seen.status, 201);
    assert_eq!(
        seen.header("access-control-allow-origin").as_deref(),
        Some(DASHBOARD)
    );
    let exposed = seen.list("access-control-expose-headers");
    for name in [
        "ratelimit",
        "ratelimit-policy",
        "retry-after",
        "link",
        "location",
        "x-request-id",
        "idempotent-replayed",
    ] {
        assert!(exposed.contains(&name.to_string()), "{name} in {exposed:?}");
    }
    // The headers it exposes are there to read.
    assert!(seen.header("ratelimit").is_some());
    assert!(seen.header("location").is_some());
    assert!(seen.header("x-request-id").is_some());
    assert!(seen.list("vary").contains(&"origin".to_string()));

    // Errors are readable too, so a dashboard can show the problem document.
    let refused = send(
        &app,
        Method::GET,
        "/v1/account",
        &[("Origin", DASHBOARD)],
        None,
    )
    .await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("access-control-allow-origin").as_deref(),
        Some(DASHBOARD)
    );
}

#[actix_rt::test]
async fn an_unlisted_origin_gets_no_cors_headers() {
    let app = dashboard_app().await;
    for origin in [
        "https://evil.example",
        "https://panel.example.com.evil.example",
        "null",
    ] {
        let seen = preflight(&app, "/v1/orders", origin, "POST").await;
        assert_eq!(seen.status, 403, "{origin}");
        assert_eq!(
            seen.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        assert!(
            seen.cors_headers().is_empty(),
            "{origin}: {:?}",
            seen.cors_headers()
        );

        let auth = format!("Bearer {}", app.admin_token);
        let seen = send(
            &app,
            Method::GET,
            "/v1/account",
            &[("Origin", origin), ("Authorization", &auth)],
            None,
        )
        .await;
        assert_eq!(seen.status, 200, "the server answers; the browser hides it");
        assert!(
            seen.cors_headers().is_empty(),
            "{origin}: {:?}",
            seen.cors_headers()
        );
    }
}

#[actix_rt::test]
async fn without_configured_origins_there_are_no_cors_headers() {
    let app = spawn_app().await;
    let seen = preflight(&app, "/v1/orders", DASHBOARD, "POST").await;
    assert_eq!(
        seen.status, 405,
        "an ordinary OPTIONS request: not a method of the route"
    );
    assert!(seen.cors_headers().is_empty(), "{:?}", seen.cors_headers());
    let auth = format!("Bearer {}", app.admin_token);
    let seen = send(
        &app,
        Method::GET,
        "/v1/account",
        &[("Origin", DASHBOARD), ("Authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(seen.status, 200);
    assert!(seen.cors_headers().is_empty(), "{:?}", seen.cors_headers());
    assert!(seen.header("vary").is_none());
}

#[test]
fn cors_origins_are_a_comma_separated_list_of_exact_origins() {
    let cli = Cli::try_parse_from([
        "reseller-api",
        "--cors-origins",
        "https://panel.example.com, HTTP://LOCALHOST:3000",
    ])
    .unwrap();
    assert_eq!(
        cli.config.cors_origins,
        ["https://panel.example.com", "http://localhost:3000"]
    );
    assert!(Cli::try_parse_from(["reseller-api"])
        .unwrap()
        .config
        .cors_origins
        .is_empty());
    for bad in [
        "https://panel.example.com/",
        "panel.example.com",
        "*",
        "ftp://x.test",
    ] {
        assert!(
            Cli::try_parse_from(["reseller-api", "--cors-origins", bad]).is_err(),
            "{bad} accepted"
        );
    }
}
