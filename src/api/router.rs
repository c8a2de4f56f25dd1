//! The API's surface in one place: every documented endpoint is listed once, in
//! [`api_routes!`] below, and that one list mounts the routes and builds the spec.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderValue;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::*;
use crate::error::ApiError;
use crate::http::middleware::{head_as_get, request_context, sent_method};
use crate::http::openapi::CommonResponses;
use crate::http::state::AppState;

/// Declares the documented endpoints once: `routes` mounts them in the order given (actix
/// tries routes in that order, so a literal segment must come before a `{param}` one at the
/// same place) and `ApiDoc` documents the same list.
macro_rules! api_routes {
    ($($(#[$meta:meta])* $module:ident::$handler:ident),* $(,)?) => {
        /// Mounts every documented endpoint.
        pub fn routes(cfg: &mut web::ServiceConfig) {
            $(cfg.service($module::$handler);)*
        }

        #[derive(OpenApi)]
        #[openapi(
    info(
        title = "reseller-api",
        description = "Public reseller API for SMM panels: orders, exact refunds, refund reports. \
            Money is always a decimal string with at most 6 fractional digits. \
            Errors are RFC 9457 problem documents.",
        license(name = "MIT", identifier = "MIT")
    ),
    servers((url = "/")),
    paths($($module::$handler),*),
    modifiers(&CommonResponses),
    tags(
        (name = "auth", description = "Exchange an API key for an access token"),
        (name = "account", description = "The caller's account and ledger"),
        (name = "services", description = "The catalog"),
        (name = "orders", description = "Place and follow orders"),
        (name = "refunds", description = "Refunds and refund requests"),
        (name = "reports", description = "Refund reports by order date, as JSON or CSV"),
        (name = "events", description = "The event log: what happened, to catch up on webhooks"),
        (name = "webhooks", description = "Signed webhooks (Standard Webhooks 1.0): endpoints, deliveries, tests"),
        (name = "admin", description = "Operator calls (role admin)"),
        (name = "ops", description = "Health, readiness, metrics"),
        (name = "api-v2", description = "The panel API v2 dialect, for existing reseller tools"),
    )
)]
        pub struct ApiDoc;
    };
}

api_routes![
    ops::healthz,
    ops::readyz,
    ops::metrics,
    tokens::create_token,
    accounts::find_account,
    accounts::create_account,
    accounts::suspend_account,
    accounts::reactivate_account,
    refund_standing::find_refund_standing,
    refund_standing::create_refund_allowlist,
    refund_standing::delete_refund_allowlist,
    api_keys::create_api_key,
    api_keys::revoke_api_key,
    ledger::list_ledger,
    top_ups::create_top_up,
    top_ups::refund_top_up,
    top_ups::chargeback_top_up,
    top_ups::succeed_refund,
    top_ups::fail_refund,
    services::list_services,
    services::list_admin_services,
    services::create_service,
    services::update_service,
    services::disable_service,
    // Before `orders::find_order`: actix matches in this order.
    orders::batch_order_status,
    order_batches::create_order_batch,
    orders::find_order,
    orders::list_orders,
    orders::create_order,
    orders::cancel_order,
    cancels::list_cancel_requests,
    orders::record_outcome,
    subscriptions::create_subscription,
    subscriptions::list_subscriptions,
    subscriptions::find_subscription,
    subscriptions::cancel_subscription,
    subscriptions::record_post,
    subscriptions::end_subscription,
    subscriptions::find_admin_subscription,
    refills::create_refill,
    refills::list_refills,
    refills::complete_refill,
    refills::reject_refill,
    admin_orders::list_admin_orders,
    admin_orders::find_admin_order,
    refunds::create_dispute,
    refunds::list_refunds,
    refunds::find_refund,
    refunds::list_admin_refunds,
    review::list_review_queue,
    review::find_review_case,
    refunds::approve_refund,
    refunds::reject_refund,
    providers::create_provider,
    providers::list_providers,
    provider_health::list_provider_health,
    provider_health::list_forwarding,
    providers::update_provider,
    providers::sync_provider_services,
    providers::find_forwarding,
    providers::reconcile_forwarding,
    provider_money::list_exchange_rates,
    provider_money::find_settings,
    provider_money::update_settings,
    api_v2::api_v2,
    api_v2::api_v2_get,
    reports::find_refund_report,
    reports::find_admin_refund_report,
    provider_money::find_provider_money_report,
    events::list_events,
    events::find_event,
    events::redeliver_event,
    webhooks::create_endpoint,
    webhooks::list_endpoints,
    webhooks::find_endpoint,
    webhooks::update_endpoint,
    webhooks::delete_endpoint,
    webhooks::rotate_endpoint_secret,
    webhooks::test_endpoint,
    webhooks::list_deliveries,
    webhooks::list_event_deliveries,
    alerts::list_alerts,
    alerts::set_alert_rule,
    audit::list_audit,
];

/// The OpenAPI document served at `/openapi.json` and committed as `openapi/openapi.json`.
pub fn api_doc() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The whole application: routes, extractor error mapping, request context, docs.
pub fn build_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let max_body = state.config.max_body_bytes;
    App::new()
        .app_data(state)
        .app_data(web::PayloadConfig::new(max_body))
        .app_data(
            // A literal path (`/v1/orders/batch`) can also match a `{param}` route of another
            // method (`GET /v1/orders/{id}`): the wrong method there is a 405, not a 404.
            web::PathConfig::default().error_handler(|error, req| {
                let literal = literal_methods(req.path());
                let method = sent_method(req);
                if literal.is_empty() || literal.contains(&method.as_str()) {
                    return ApiError::NotFound("no resource at this path".into()).into();
                }
                actix_web::error::InternalError::from_response(
                    error,
                    method_not_allowed(&method, &literal),
                )
                .into()
            }),
        )
        .configure(routes)
        .service(dashboard::show_dashboard)
        .service(dashboard::show_dashboard_file)
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", api_doc()))
        .service(web::redirect("/docs", "/docs/"))
        .default_service(web::to(no_route))
        .wrap(from_fn(head_as_get_but_on_api_v2))
        .wrap(from_fn(crate::http::cors::cors))
        .wrap(from_fn(request_context))
}

/// HEAD answered as GET everywhere but on API v2, where a GET with a query string places
/// an order: a HEAD, which clients and link checkers take to be safe, must never run it
/// (the dialect's fallback refuses it like any other method).
async fn head_as_get_but_on_api_v2<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    if api_v2::owns_path(req.path()) {
        return next.call(req).await;
    }
    head_as_get(req, next).await
}

/// Routes of the documented API and the methods each takes, for telling a wrong method
/// (405 with `Allow`) from a path that does not exist (404).
static ROUTES: std::sync::LazyLock<Vec<(Vec<String>, Vec<&'static str>)>> =
    std::sync::LazyLock::new(|| {
        let mut routes: Vec<(Vec<String>, Vec<&'static str>)> = api_doc()
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    // Every GET route answers HEAD too (`head_as_get`).
                    ("HEAD", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ]
                .into_iter()
                .filter_map(|(m, present)| present.then_some(m))
                .collect();
                (path.split('/').map(str::to_string).collect(), methods)
            })
            .collect();
        for path in ["/openapi.json", "/dashboard", "/dashboard/{file}"] {
            routes.push((
                path.split('/').map(str::to_string).collect(),
                vec!["GET", "HEAD"],
            ));
        }
        routes
    });

fn allowed_methods(path: &str) -> Vec<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut allowed = Vec::new();
    for (template, methods) in ROUTES.iter() {
        let matches = template.len() == segments.len()
            && template
                .iter()
                .zip(&segments)
                .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()));
        if matches {
            allowed.extend(methods.iter().copied());
        }
    }
    allowed.sort_unstable();
    allowed.dedup();
    allowed
}

/// The methods of the route whose template is exactly `path`, with no `{param}` in it.
fn literal_methods(path: &str) -> Vec<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    ROUTES
        .iter()
        .find(|(template, _)| template.iter().eq(segments.iter()))
        .map(|(_, methods)| methods.clone())
        .unwrap_or_default()
}

/// 405 with `Allow`, as a problem document.
fn method_not_allowed(method: &str, allowed: &[&str]) -> actix_web::HttpResponse {
    let mut response = actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed(
        format!("{method} is not allowed here; use {}", allowed.join(", ")),
    ));
    if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    response
}

async fn no_route(
    req: actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<actix_web::HttpResponse, ApiError> {
    // API v2 clients read any reply as the dialect's: never a problem document there.
    if api_v2::owns_path(req.path()) {
        return Ok(api_v2::fallback(req, payload).await);
    }
    let allowed = allowed_methods(req.path());
    if allowed.is_empty() {
        return Err(ApiError::NotFound("no such route".into()));
    }
    Ok(method_not_allowed(&sent_method(&req), &allowed))
}
