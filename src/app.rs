//! `build_app` and `api_doc`: the one source for the server, the tests and the spec.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpMessage};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::TokenKeys;
use crate::config::Config;
use crate::db::{DbConnection, DbPool};
use crate::domain::policy::Policy;
use crate::error::{ApiError, REQUEST_ID};
use crate::limits::{header_values, AppliedLimits, Limits};
use crate::worker::Wake;

/// What every handler can reach: the pool, the configuration, the token keys.
pub struct AppState {
    pub pool: DbPool,
    pub config: Config,
    pub tokens: TokenKeys,
    pub metrics: Metrics,
    pub limits: Limits,
    pub policy: Policy,
    /// Wakes the provider worker when there is an order to send.
    pub wake: Arc<Wake>,
    /// One permit per pooled connection: requests beyond the pool wait here, as futures,
    /// instead of as blocking threads parked on the pool (a context switch each).
    db_slots: tokio::sync::Semaphore,
}

impl AppState {
    /// Runs blocking database work on the blocking pool, never on an actix worker thread.
    pub async fn db<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let _slot = self.db_slots.acquire().await.map_err(ApiError::internal)?;
        let pool = self.pool.clone();
        web::block(move || {
            let mut conn = pool
                .get()
                .map_err(|e| ApiError::Unavailable(format!("database busy: {e}")))?;
            work(&mut conn)
        })
        .await
        .map_err(ApiError::internal)?
    }
}

/// Request counters for `/metrics`, by status code.
#[derive(Default)]
pub struct Metrics {
    by_status: Mutex<BTreeMap<u16, u64>>,
    duration_micros: Mutex<u128>,
}

impl Metrics {
    fn record(&self, status: u16, micros: u128) {
        if let Ok(mut counts) = self.by_status.lock() {
            *counts.entry(status).or_default() += 1;
        }
        if let Ok(mut total) = self.duration_micros.lock() {
            *total += micros;
        }
    }

    /// The Prometheus text exposition of the counters.
    pub fn render(&self) -> String {
        let counts = self.by_status.lock().map(|c| c.clone()).unwrap_or_default();
        let total: u64 = counts.values().sum();
        let micros = self.duration_micros.lock().map(|d| *d).unwrap_or(0);
        let mut out = String::from(
            "# HELP http_requests_total HTTP requests served, by status.\n# TYPE http_requests_total counter\n",
        );
        for (status, count) in counts {
            out.push_str(&format!(
                "http_requests_total{{status=\"{status}\"}} {count}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP http_request_duration_seconds Time spent serving requests.\n# TYPE http_request_duration_seconds summary\nhttp_request_duration_seconds_sum {}\nhttp_request_duration_seconds_count {total}\n",
            micros as f64 / 1e6
        ));
        out
    }
}

const REQUEST_ID_HEADER: &str = "x-request-id";

fn request_id_from(req: &ServiceRequest) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| {
            let mut bytes = [0u8; 12];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
            hex::encode(bytes)
        })
}

/// Gives every request an id (echoing the client's), logs it, counts it.
async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id_from(&req);
    let method = req.method().to_string();
    let path = req.path().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let started = Instant::now();
    let mut res = REQUEST_ID.scope(id.clone(), next.call(req)).await?;
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    let applied = res.request().extensions().get::<AppliedLimits>().cloned();
    if let Some(applied) = applied {
        let (policy, state) = header_values(&applied);
        for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                res.headers_mut()
                    .insert(HeaderName::from_static(name), value);
            }
        }
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    if let Some(state) = state {
        state.metrics.record(status, elapsed.as_micros());
    }
    tracing::info!(
        request_id = %id,
        %method,
        %path,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    Ok(res)
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
            web::PathConfig::default()
                .error_handler(|_, _| ApiError::NotFound("no resource at this path".into()).into()),
        )
        .configure(crate::api::routes)
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", api_doc()))
        .service(web::redirect("/docs", "/docs/"))
        .default_service(web::to(no_route))
        .wrap(from_fn(crate::cors::cors))
        .wrap(from_fn(request_context))
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
        for path in ["/openapi.json", "/dashboard"] {
            routes.push((path.split('/').map(str::to_string).collect(), vec!["GET"]));
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

async fn no_route(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    let allowed = allowed_methods(req.path());
    if allowed.is_empty() {
        return Err(ApiError::NotFound("no such route".into()));
    }
    let mut response =
        actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed(format!(
            "{} is not allowed here; use {}",
            req.method(),
            allowed.join(", ")
        )));
    if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    Ok(response)
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
    paths(
        crate::api::ops::healthz,
        crate::api::ops::readyz,
        crate::api::ops::metrics,
        crate::api::tokens::create_token,
        crate::api::accounts::find_account,
        crate::api::accounts::create_account,
        crate::api::accounts::suspend_account,
        crate::api::accounts::reactivate_account,
        crate::api::api_keys::create_api_key,
        crate::api::api_keys::revoke_api_key,
        crate::api::ledger::list_ledger,
        crate::api::top_ups::create_top_up,
        crate::api::services::list_services,
        crate::api::services::create_service,
        crate::api::services::update_service,
        crate::api::orders::create_order,
        crate::api::orders::batch_order_status,
        crate::api::orders::find_order,
        crate::api::orders::list_orders,
        crate::api::orders::cancel_order,
        crate::api::orders::record_outcome,
        crate::api::services::disable_service,
        crate::api::top_ups::refund_top_up,
        crate::api::top_ups::chargeback_top_up,
        crate::api::top_ups::succeed_refund,
        crate::api::top_ups::fail_refund,
        crate::api::refunds::create_dispute,
        crate::api::refunds::list_refunds,
        crate::api::refunds::find_refund,
        crate::api::refunds::list_admin_refunds,
        crate::api::refunds::approve_refund,
        crate::api::refunds::reject_refund,
        crate::api::refund_standing::find_refund_standing,
        crate::api::refund_standing::create_refund_allowlist,
        crate::api::refund_standing::delete_refund_allowlist,
        crate::api::providers::create_provider,
        crate::api::providers::list_providers,
        crate::api::providers::update_provider,
        crate::api::providers::find_forwarding,
        crate::api::providers::reconcile_forwarding,
        crate::api::api_v2::api_v2,
        crate::api::reports::find_refund_report,
        crate::api::reports::find_admin_refund_report,
    ),
    modifiers(&CommonResponses),
    tags(
        (name = "auth", description = "Exchange an API key for an access token"),
        (name = "account", description = "The caller's account and ledger"),
        (name = "services", description = "The catalog"),
        (name = "orders", description = "Place and follow orders"),
        (name = "refunds", description = "Refunds and refund requests"),
        (name = "reports", description = "Refund reports by order date, as JSON or CSV"),
        (name = "admin", description = "Operator calls (role admin)"),
        (name = "ops", description = "Health, readiness, metrics"),
        (name = "api-v2", description = "The panel API v2 dialect, for existing reseller tools"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document served at `/openapi.json` and committed as `openapi/openapi.json`.
pub fn api_doc() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Adds the bearer scheme and the problem responses every protected call can give, so
/// each handler documents only the errors particular to it.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from `POST /v1/auth/token`."))
                    .build(),
            ),
        );
        reference_page_items(components);
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add_common_responses(op);
            }
        }
    }
}

fn problem_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

fn header(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::header::Header> {
    utoipa::openapi::RefOr::T(
        utoipa::openapi::header::HeaderBuilder::new()
            .schema(Some(
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String),
            ))
            .description(Some(description))
            .build(),
    )
}

/// The rate-limit headers on a limited call's responses.
fn rate_limit_headers() -> Vec<(
    &'static str,
    utoipa::openapi::RefOr<utoipa::openapi::header::Header>,
)> {
    vec![
        (
            "RateLimit-Policy",
            header("The quotas that apply, e.g. `\"account\";q=600;w=60`."),
        ),
        (
            "RateLimit",
            header("What is left of each quota, e.g. `\"account\";r=599;t=1`."),
        ),
    ]
}

/// utoipa inlines a generic's type argument, so `Page<OrderResponse>` would repeat the
/// order schema and generators would make a second order type; point `data` at the named
/// schema instead.
fn reference_page_items(components: &mut utoipa::openapi::Components) {
    use utoipa::openapi::schema::{ArrayItems, Schema};
    use utoipa::openapi::RefOr;
    let names: Vec<String> = components.schemas.keys().cloned().collect();
    for name in names {
        let Some(item) = name.strip_prefix("Page_") else {
            continue;
        };
        if !components.schemas.contains_key(item) {
            continue;
        }
        if let Some(RefOr::T(Schema::Object(page))) = components.schemas.get_mut(&name) {
            if let Some(RefOr::T(Schema::Array(data))) = page.properties.get_mut("data") {
                data.items = ArrayItems::RefOrSchema(Box::new(Ref::from_schema_name(item).into()));
            }
        }
    }
}

/// Whether a response's JSON body is a page of a list (which comes with a `Link` header).
fn is_page(response: &utoipa::openapi::Response) -> bool {
    use utoipa::openapi::RefOr;
    matches!(
        response.content.get("application/json"),
        Some(RefOr::T(content)) if matches!(&content.schema, Some(RefOr::Ref(r))
            if r.ref_location.starts_with("#/components/schemas/Page_"))
    )
}

fn add_common_responses(op: &mut Operation) {
    // Say "no credentials" explicitly, so generators and linters need not guess.
    op.security.get_or_insert_with(Vec::new);
    let protected = op.security.as_ref().is_some_and(|s| !s.is_empty());
    for (status, response) in op.responses.responses.iter_mut() {
        if let (true, utoipa::openapi::RefOr::T(response)) = (status.starts_with('2'), response) {
            if is_page(response) {
                response.headers.entry("Link".to_string()).or_insert_with(|| {
                    header("`<…?starting_after=ID>; rel=\"next\"` when more follow (RFC 8288); absent on the last page.")
                });
            }
        }
    }
    // The panel API v2 dialect answers errors as `{"error": "…"}`, never as problem
    // documents, and its calls count against the account quota like `/v1` calls.
    let panel_dialect = op.operation_id.as_deref() == Some("api_v2");
    let has_body = op.request_body.is_some() && !panel_dialect;
    let mut common = vec![(
        "500",
        "Unexpected server error; the body says nothing internal.",
    )];
    if protected {
        common.push((
            "401",
            "Missing, malformed, expired or otherwise invalid access token.",
        ));
        common.push(("403", "The token lacks the scope or role this call needs."));
    }
    if has_body {
        common.push(("400", "Malformed JSON."));
        common.push(("413", "Body larger than the configured limit."));
        common.push(("415", "Body is not `application/json`."));
    }
    if protected || has_body {
        common.push((
            "422",
            "Validation failed; `errors` lists every failing field.",
        ));
    }
    if panel_dialect {
        common.clear();
    }
    for (status, description) in common {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| problem_response(description).into());
    }
    let limited = protected || panel_dialect || op.operation_id.as_deref() == Some("create_token");
    if !limited {
        return;
    }
    op.responses
        .responses
        .entry("429".to_string())
        .or_insert_with(|| {
            problem_response(
                "A request quota or the refund-abuse policy refused the call; `policy` names it.",
            )
            .into()
        });
    for (status, response) in op.responses.responses.iter_mut() {
        let utoipa::openapi::RefOr::T(response) = response else {
            continue;
        };
        if status.starts_with('2') || status == "429" {
            for (name, value) in rate_limit_headers() {
                response.headers.entry(name.to_string()).or_insert(value);
            }
        }
        if status == "429" {
            response
                .headers
                .entry("Retry-After".to_string())
                .or_insert_with(|| header("Seconds until a retry can pass."));
        }
    }
}

/// Shared state for a server process; fails on an inconsistent configuration.
pub fn state(
    pool: DbPool,
    config: Config,
    tokens: TokenKeys,
) -> Result<web::Data<AppState>, String> {
    let policy = config.policy.policy()?;
    Ok(web::Data::from(Arc::new(AppState {
        db_slots: tokio::sync::Semaphore::new(pool.max_size() as usize),
        pool,
        limits: Limits::new(&config.limits),
        config,
        tokens,
        metrics: Metrics::default(),
        policy,
        wake: Arc::new(Wake::default()),
    })))
}
