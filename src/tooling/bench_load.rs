//! `reseller-api bench-load …`: the pieces `bench/run.sh` drives to measure the HTTP API
//! against two ceilings. Not part of `cargo test`: it measures, it does not judge.
//!
//! - `setup` creates funded resellers, a service and orders to read, and writes one line
//!   per reseller (`account_id token api_key service_id order_ids`) for the wrk scripts.
//! - `orders` is ceiling 1: the order transaction of `POST /v1/orders` run straight
//!   through the data layer from N threads, no HTTP.
//! - `bare` is ceiling 2: an actix-web server with one handler and no database.

use std::io::Write as _;
use std::time::{Duration, Instant};

use actix_web::{get, App, HttpResponse, HttpServer};
use clap::{Args, Subcommand};

use crate::api::orders::OrderResponse;
use crate::application::accounts::create_account_with_key;
use crate::application::orders::{place, place_order, OrderRequest, Placed};
use crate::config::Config;
use crate::db::{self, ledger, services, top_ups, DbConnection};
use crate::domain::account::Role;
use crate::domain::ids::{AccountId, OrderId, ServiceId};
use crate::domain::ledger::LedgerKind;
use crate::domain::money::Money;
use crate::domain::order::OrderInput;
use crate::domain::service::ServiceType;
use crate::error::ApiError;
use crate::http::auth::TokenKeys;

#[derive(Debug, Subcommand)]
pub enum BenchLoadCommand {
    /// Create funded resellers with tokens, a service and orders to read.
    Setup(SetupArgs),
    /// Ceiling 1: the order transaction through the data layer from N threads, no HTTP.
    Orders(OrdersArgs),
    /// Ceiling 2: serve `GET /bare` (a small JSON body) with no database and no middleware.
    Bare(BareArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SetupArgs {
    /// Reseller accounts to create.
    #[arg(long, default_value_t = 16)]
    pub accounts: usize,
    /// Orders placed per account for the read benchmarks.
    #[arg(long, default_value_t = 100)]
    pub orders: usize,
    /// Where to write the accounts file.
    #[arg(long)]
    pub out: std::path::PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct OrdersArgs {
    /// The file written by `setup`.
    #[arg(long)]
    pub accounts_file: std::path::PathBuf,
    /// Threads, each with its own connection.
    #[arg(long, default_value_t = 8)]
    pub threads: usize,
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

#[derive(Debug, Clone, Args)]
pub struct BareArgs {
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub bind: String,
    /// HTTP worker threads (0 = one per core, as `serve`).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
}

/// Enough for every order of a benchmark run, exact in micro-units.
const FUNDS_MICROS: i64 = 1_000_000_000 * 1_000_000;
const LINK: &str = "https://example.com/p/bench";
const QUANTITY: i64 = 100;

pub fn run(config: &Config, command: BenchLoadCommand) -> Result<(), String> {
    match command {
        BenchLoadCommand::Setup(args) => setup(config, &args),
        BenchLoadCommand::Orders(args) => orders(config, &args),
        BenchLoadCommand::Bare(args) => bare(&args),
    }
}

fn open(config: &Config, size: u32) -> Result<db::DbPool, String> {
    db::migrate(config.database_url.expose_secret()).map_err(|e| e.to_string())?;
    let pool = db::connect(config.database_url.expose_secret(), size).map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    crate::application::master_key::setup(config, &mut conn)?;
    drop(conn);
    Ok(pool)
}

fn order_request(service_id: ServiceId) -> OrderRequest {
    OrderRequest {
        service_id,
        input: OrderInput {
            link: LINK.into(),
            quantity: Some(QUANTITY),
            ..OrderInput::default()
        },
    }
}

fn setup(config: &Config, args: &SetupArgs) -> Result<(), String> {
    let pool = open(config, 1)?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let tokens = TokenKeys::load(&mut conn, config).map_err(|e| e.to_string())?;
    let fields = services::ServiceFields {
        name: "Bench Likes".into(),
        category: "Bench".into(),
        kind: ServiceType::Default,
        dripfeed: false,
        rate: Money::parse("1.234567").map_err(|e| e.to_string())?,
        min_quantity: 10,
        max_quantity: 1_000_000,
        refill: false,
        refill_days: 30,
        cancel: false,
        provider: None,
        description: None,
        subscription: Default::default(),
    };
    let funds = Money::try_from_micros(FUNDS_MICROS).map_err(|e| e.to_string())?;
    let service = db::write_tx(&mut conn, |conn| services::insert(conn, &fields))
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    for i in 0..args.accounts {
        let (account, key, plaintext) = create_account_with_key(
            &mut conn,
            &crate::domain::audit::Actor::cli(),
            &format!("bench-{i}"),
            Role::Reseller,
            "USD",
        )
        .map_err(|e| e.to_string())?;
        let ids = db::write_tx(&mut conn, |conn| -> Result<Vec<OrderId>, ApiError> {
            let top_up = top_ups::insert(
                conn,
                account.id,
                funds,
                "bench",
                &format!("bench-{}", account.id),
            )?;
            // Money an operator's tool moved: audited like any top-up (`verify` asks).
            crate::application::audit::record(
                conn,
                &crate::domain::audit::Actor::cli(),
                crate::domain::audit::AuditAction::TopUpCreate,
                crate::application::audit::Target::new(
                    crate::domain::audit::AuditTarget::TopUp,
                    top_up.id.get(),
                    Some(account.id),
                ),
                &crate::domain::audit::AuditChange::new(
                    None,
                    Some(crate::application::audit::top_up(&top_up)),
                ),
            )?;
            let refs = ledger::Refs {
                top_up_id: Some(top_up.id),
                ..Default::default()
            };
            ledger::post(
                conn,
                account.id,
                LedgerKind::TopUp,
                funds.signed(),
                refs,
                ledger::Overdraft::Refuse,
            )?;
            (0..args.orders)
                .map(|_| -> Result<OrderId, ApiError> {
                    let order = place_order(conn, account.id, order_request(service.id))?;
                    Ok(order.id)
                })
                .collect()
        })
        .map_err(|e| e.to_string())?;
        let token = tokens
            .issue(account.id, key.id, Role::Reseller, &key.scopes)
            .map_err(|e| e.to_string())?;
        let ids = ids
            .iter()
            .map(OrderId::to_string)
            .collect::<Vec<_>>()
            .join(",");
        out.push_str(&format!(
            "{} {token} {plaintext} {} {ids}\n",
            account.id, service.id
        ));
    }
    std::fs::write(&args.out, out).map_err(|e| e.to_string())?;
    println!(
        "{} funded resellers, service {}, {} orders each: {}",
        args.accounts,
        service.id,
        args.orders,
        args.out.display()
    );
    Ok(())
}

/// `(account_id, service_id)` of each line of the accounts file.
fn read_accounts(path: &std::path::Path) -> Result<Vec<(AccountId, ServiceId)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let parsed = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let account = fields.first().and_then(|f| f.parse().ok());
            let service = fields.get(3).and_then(|f| f.parse().ok());
            account
                .zip(service)
                .ok_or_else(|| format!("bad line: {line}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if parsed.is_empty() {
        return Err("no accounts: run `bench-load setup` first".into());
    }
    Ok(parsed)
}

/// One thread of ceiling 1: the handler's transaction (order + ledger + response body),
/// back to back on its own connection until `deadline`.
fn place_until(
    conn: &mut DbConnection,
    accounts: &[(AccountId, ServiceId)],
    offset: usize,
    deadline: Instant,
) -> (Vec<u32>, u64) {
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0;
    let mut next = offset;
    while Instant::now() < deadline {
        let (account_id, service_id) = accounts[next % accounts.len()];
        next += 1;
        let started = Instant::now();
        let request = order_request(service_id);
        // The handler's work: the order placed, then its response body rendered.
        let placed = place(conn, account_id, request, None).map(|placed| match placed {
            Placed::New(order) => serde_json::to_string(&OrderResponse::from(*order)).ok(),
            Placed::Replayed(replay) => Some(replay.body),
        });
        match placed {
            Ok(_) => latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32),
            Err(_) => errors += 1,
        }
    }
    (latencies, errors)
}

fn orders(config: &Config, args: &OrdersArgs) -> Result<(), String> {
    let accounts = read_accounts(&args.accounts_file)?;
    let threads = args.threads.max(1);
    let pool = open(config, threads as u32)?;
    let mut conns = (0..threads)
        .map(|_| pool.get().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds.max(1));
    let results: Vec<(Vec<u32>, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .iter_mut()
            .enumerate()
            .map(|(i, conn)| {
                let accounts = &accounts;
                scope.spawn(move || place_until(conn, accounts, i, deadline))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let errors: u64 = results.iter().map(|r| r.1).sum();
    let mut all: Vec<u32> = results.into_iter().flat_map(|r| r.0).collect();
    all.sort_unstable();
    let at = |q: f64| {
        all.get(((all.len().saturating_sub(1)) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    // The same shape as the wrk scripts' summary line, so run.sh reads both alike.
    println!(
        "RESULT requests={} errors={errors} seconds={elapsed:.3} rps={:.1} p50_us={} p99_us={}",
        all.len(),
        all.len() as f64 / elapsed,
        at(0.50),
        at(0.99)
    );
    std::io::stdout().flush().map_err(|e| e.to_string())
}

#[get("/bare")]
async fn bare_handler() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok", "id": 1 }))
}

fn bare(args: &BareArgs) -> Result<(), String> {
    let workers = if args.workers == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        args.workers
    };
    let bind = args.bind.clone();
    actix_web::rt::System::new()
        .block_on(async move {
            HttpServer::new(|| App::new().service(bare_handler))
                .workers(workers)
                .bind(&bind)?
                .run()
                .await
        })
        .map_err(|e| e.to_string())
}
