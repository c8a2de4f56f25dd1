//! The refund dashboard: one self-contained page (no build step, no CDN) that reads the
//! public report endpoints with a token the user pastes. Not an API call, so it is not
//! in the OpenAPI document.

use actix_web::{get, HttpResponse};

const PAGE: &str = include_str!("dashboard.html");

/// Scripts and styles are inline and the page only talks to this origin; the token stays
/// in the page (the URL fragment it may come in is never sent to the server).
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
    connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[get("/dashboard")]
pub async fn show_dashboard() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("content-security-policy", CSP))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("cache-control", "no-cache"))
        .body(PAGE)
}
