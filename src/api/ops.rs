use actix_web::{get, web, HttpResponse};
use chrono::NaiveDateTime;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::gauges::{self, Gauges};
use crate::db::{self, DbPool};
use crate::error::ApiError;
use crate::http::state::AppState;
use crate::metrics::{self as process, Exposition};

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    #[schema(example = "ok")]
    pub status: String,
}

/// The process is up.
#[utoipa::path(tag = "ops", responses((status = 200, description = "Up", body = HealthResponse)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthResponse {
        status: "ok".into(),
    })
}

/// The database answers.
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "Ready", body = HealthResponse),
        (status = 503, description = "The database does not answer", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // Writes are failing for lack of disk space: take this process out of rotation until
    // they stop failing (it reports ready again by itself, `db::storage::FULL_HOLD`).
    if crate::db::storage::recently_full() {
        return Err(ApiError::Unavailable(
            "the database is out of storage space: writes are refused".into(),
        ));
    }
    state
        .db(|conn| {
            crate::db::ping(conn)
                .map_err(|e| ApiError::Unavailable(format!("database unreachable: {e}")))
        })
        .await?;
    Ok(HttpResponse::Ok().json(HealthResponse {
        status: "ready".into(),
    }))
}

/// Metrics in the Prometheus text format.
///
/// This process's counters and histograms (requests, orders, refunds, provider calls,
/// pool waits) and gauges read from the database at the scrape; the "Metrics" section of
/// docs/operations.md lists every one. When the database does not answer, the gauges read from it
/// are left out and `db_up` is 0.
#[utoipa::path(
    tag = "ops",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain"))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let gauges = state.db(|conn| Ok(gauges::read(conn)?)).await;
    let breakers = state
        .db(|conn| Ok(db::webhooks::breaker_states(conn, db::now())?))
        .await;
    let mut out = Exposition::default();
    process::render(&mut out);
    render_pool(&mut out, &state.pool);
    render_free_space(&mut out, state.config.database_url.expose_secret());
    if let Ok(breakers) = &breakers {
        render_breakers(&mut out, *breakers);
    }
    let up = match gauges {
        Ok(gauges) if breakers.is_ok() => {
            render_database(&mut out, &gauges, db::now());
            "1"
        }
        Ok(_) => "0",
        Err(error) => {
            tracing::warn!(%error, "metrics: the database gauges could not be read");
            "0"
        }
    };
    out.family(
        "db_up",
        "gauge",
        "1 when the database answered this scrape's queries.",
    );
    out.sample("db_up", "", &[], up);
    HttpResponse::Ok()
        .content_type(process::CONTENT_TYPE)
        .body(out.into_string())
}

/// SQLite: the space left on the database file's filesystem, so an operator can alert
/// before writes start failing (under load the WAL alone needs tens of megabytes).
fn render_free_space(out: &mut Exposition, database_url: &str) {
    let crate::db::Backend::Sqlite(path) = crate::db::Backend::from_url(database_url) else {
        return;
    };
    let path = std::path::Path::new(&path);
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => std::path::Path::new("."),
    };
    let Some(free) = crate::db::storage::free_bytes(folder) else {
        return;
    };
    out.family(
        "db_filesystem_free_bytes",
        "gauge",
        "SQLite: bytes free on the filesystem holding the database file (and its WAL).",
    );
    out.sample("db_filesystem_free_bytes", "", &[], &free.to_string());
}

fn render_pool(out: &mut Exposition, pool: &DbPool) {
    let pool_state = pool.state();
    let idle = pool_state.idle_connections;
    let in_use = pool_state.connections.saturating_sub(idle);
    out.family(
        "db_pool_connections",
        "gauge",
        "Pooled database connections of this process, in use or idle.",
    );
    out.sample(
        "db_pool_connections",
        "",
        &[("state", "in_use")],
        &in_use.to_string(),
    );
    out.sample(
        "db_pool_connections",
        "",
        &[("state", "idle")],
        &idle.to_string(),
    );
    out.family(
        "db_pool_max_connections",
        "gauge",
        "The most connections this process's pool opens.",
    );
    out.sample(
        "db_pool_max_connections",
        "",
        &[],
        &pool.max_size().to_string(),
    );
}

/// Webhook endpoints by circuit breaker state: (closed, open, half-open).
fn render_breakers(out: &mut Exposition, (closed, open, half_open): (i64, i64, i64)) {
    out.family(
        "webhook_endpoints_by_breaker",
        "gauge",
        "Webhook endpoints by circuit breaker state: `closed` (delivering), `open` (parked; its deliveries wait) and `half_open` (due for its single probe).",
    );
    for (name, count) in [("closed", closed), ("open", open), ("half_open", half_open)] {
        out.sample(
            "webhook_endpoints_by_breaker",
            "",
            &[("state", name)],
            &count.to_string(),
        );
    }
}

fn render_database(out: &mut Exposition, gauges: &Gauges, now: NaiveDateTime) {
    out.family(
        "subscriptions_open",
        "gauge",
        "Subscriptions not ended yet (pending, active or paused).",
    );
    out.sample(
        "subscriptions_open",
        "",
        &[],
        &gauges.subscriptions_open.to_string(),
    );
    out.family(
        "subscriptions_held",
        "gauge",
        "Money still held for open subscriptions, in the panel's currency (exact decimal).",
    );
    out.sample(
        "subscriptions_held",
        "",
        &[],
        &gauges.subscriptions_held.to_string(),
    );
    out.family(
        "refunds_pending_review",
        "gauge",
        "Refund requests awaiting an operator's review.",
    );
    out.sample(
        "refunds_pending_review",
        "",
        &[],
        &gauges.pending_review.to_string(),
    );
    out.family(
        "provider_orders",
        "gauge",
        "Provider-backed orders by provider id and forwarding state, as stored (`done` left out).",
    );
    for (provider, state, count) in &gauges.forwarding {
        let provider = provider.to_string();
        out.sample(
            "provider_orders",
            "",
            &[("provider", &provider), ("state", state)],
            &count.to_string(),
        );
    }
    out.family(
        "provider_sync_lag_seconds",
        "gauge",
        "Age of the oldest last sync among orders open upstream (sent, not final); 0 when none.",
    );
    let lag = gauges
        .oldest_sync
        .map_or(0, |at| (now - at).num_milliseconds().max(0));
    out.sample(
        "provider_sync_lag_seconds",
        "",
        &[],
        &process::decimal_micros(lag.unsigned_abs() * 1000),
    );
    out.family(
        "report_rollup_lag_rows",
        "gauge",
        "Changes the report rollups have not folded yet (reports read their buckets from the rows).",
    );
    out.sample(
        "report_rollup_lag_rows",
        "",
        &[],
        &gauges.rollup_lag.rows.to_string(),
    );
    out.family(
        "report_rollup_lag_seconds",
        "gauge",
        "Age of the oldest change the report rollups have not folded; 0 when none.",
    );
    out.sample(
        "report_rollup_lag_seconds",
        "",
        &[],
        &gauges.rollup_lag.seconds.to_string(),
    );
}
