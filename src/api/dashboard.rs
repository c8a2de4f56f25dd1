//! The operator console (and the resellers' view): one page and its scripts, embedded in
//! the binary (no build step, no CDN, nothing fetched at run time). The page calls only
//! the public API, with the token the user signs in with; it is not part of the OpenAPI
//! document. Each pane is one script under `dashboard/`, listed in [`ASSETS`] and in the
//! page's `<script>` tags.

use actix_web::{get, web, HttpResponse};

use crate::error::ApiError;

const PAGE: &str = include_str!("dashboard/index.html");

const JS: &str = "text/javascript; charset=utf-8";

/// The files the page loads from `/dashboard/{name}`.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/console.css"),
    ),
    ("core.js", JS, include_str!("dashboard/core.js")),
    ("queue.js", JS, include_str!("dashboard/queue.js")),
    ("services.js", JS, include_str!("dashboard/services.js")),
    ("providers.js", JS, include_str!("dashboard/providers.js")),
    ("alerts.js", JS, include_str!("dashboard/alerts.js")),
    ("orders.js", JS, include_str!("dashboard/orders.js")),
    ("reseller.js", JS, include_str!("dashboard/reseller.js")),
    (
        "subscriptions.js",
        JS,
        include_str!("dashboard/subscriptions.js"),
    ),
    ("webhooks.js", JS, include_str!("dashboard/webhooks.js")),
    ("reports.js", JS, include_str!("dashboard/reports.js")),
    ("audit.js", JS, include_str!("dashboard/audit.js")),
];

/// Scripts and styles come only from this server's own files (no inline script, so an
/// injected one never runs) and the page talks only to this origin. The token lives in
/// the tab's sessionStorage, never in a URL.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
    img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn respond(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("content-security-policy", CSP))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("cache-control", "no-cache"))
        .body(body)
}

#[get("/dashboard")]
pub async fn show_dashboard() -> HttpResponse {
    respond("text/html; charset=utf-8", PAGE)
}

#[get("/dashboard/{file}")]
pub async fn show_dashboard_file(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == file.as_str())
        .map(|(_, content_type, body)| respond(content_type, body))
        .ok_or_else(|| ApiError::NotFound("no such console file".into()))
}
