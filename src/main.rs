use std::process::ExitCode;

use actix_web::HttpServer;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use reseller_api::api::build_app;
use reseller_api::application::accounts::create_account_with_key;
use reseller_api::cli::{
    AccountsCommand, BenchArgs, Cli, Command, KeysCommand, SeedArgs, ServeArgs,
};
use reseller_api::config::Config;
use reseller_api::db;
use reseller_api::domain::account::{parse_currency, Role};
use reseller_api::domain::audit::Actor;
use reseller_api::domain::parse_text;
use reseller_api::http::auth::TokenKeys;
use reseller_api::http::state::state;

fn main() -> ExitCode {
    // A request's log line is handed to the log thread, never written by the worker.
    let (log_writer, _log_guard) =
        reseller_api::log::spawn(std::io::stderr(), reseller_api::log::BUFFER_BYTES);
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(log_writer)
        .json()
        .init();
    let mut cli = Cli::parse();
    if cli.command.is_none() {
        // `serve` is the default command: parse again with it, so its flags and their
        // environment fallbacks (RESELLER_API_BIND, …) apply as if it had been typed.
        cli = Cli::parse_from(std::env::args_os().chain(std::iter::once("serve".into())));
    }
    let result = match cli.command.unwrap_or(Command::Migrate) {
        Command::Serve(args) => serve(cli.config, args),
        Command::Migrate => {
            db::migrate(cli.config.database_url.expose_secret()).map_err(|e| e.to_string())
        }
        Command::Accounts(AccountsCommand::Create {
            name,
            role,
            currency,
        }) => create_account(&cli.config, &name, &role, &currency),
        Command::Keys(KeysCommand::Rotate) => rotate_keys(&cli.config),
        Command::Keys(KeysCommand::RotateMaster { new_key_file }) => {
            rotate_master(&cli.config, &new_key_file)
        }
        Command::Verify => verify(&cli.config),
        Command::Backup { path } => backup(&cli.config, &path),
        Command::Worker => run_worker(&cli.config),
        Command::Seed(args) => seed(&cli.config, &args),
        Command::BenchReports(args) => bench_reports(&cli.config, &args),
        Command::BenchLoad(command) => reseller_api::tooling::bench_load::run(&cli.config, command),
        Command::Openapi => {
            println!(
                "{}",
                reseller_api::api::api_doc()
                    .to_pretty_json()
                    .unwrap_or_default()
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn open(config: &Config) -> Result<db::DbPool, String> {
    db::migrate(config.database_url.expose_secret()).map_err(|e| e.to_string())?;
    let pool = db::connect_options(
        config.database_url.expose_secret(),
        db::PoolOptions {
            size: config.db_pool_size,
            durability: db::Durability::Full,
            write_queue: config.write_queue,
        },
    )
    .map_err(|e| e.to_string())?;
    // The master key: checked against the database (and sealing its secrets on the first
    // start with one) before anything reads a secret.
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    reseller_api::application::master_key::setup(config, &mut conn)?;
    drop(conn);
    Ok(pool)
}

fn serve(config: Config, args: ServeArgs) -> Result<(), String> {
    // The one check the flags' parsers cannot make alone: two flags compared.
    config.alerts.thresholds()?;
    config.alerts.unrecovered_thresholds()?;
    let pool = open(&config)?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let tokens = TokenKeys::load(&mut conn, &config).map_err(|e| e.to_string())?;
    if !db::accounts::any_admin(&mut conn).map_err(|e| e.to_string())? {
        tracing::warn!(
            "no admin account yet: create one with `reseller-api accounts create --name ops --role admin`"
        );
    }
    let unpriced = reseller_api::application::services::priced_below_a_micro_unit(&mut conn)
        .map_err(|e| e.to_string())?;
    for service in unpriced {
        tracing::warn!(
            service_id = service.id.0,
            rate = %service.rate,
            min = service.min_quantity,
            "this service's smallest order costs less than 0.000001 and is refused: raise its min or rate, or set the rate to 0 to make it free"
        );
    }
    drop(conn);
    let network = reseller_api::application::providers::settle_private_network(&pool)?;
    for id in &network.opted_in {
        tracing::warn!(
            provider_id = id.0,
            "this provider is on a private address and existed before the opt-in: it is now opted in (`allow_private_network`); turn it off if it should not be"
        );
    }
    for id in &network.unresolved {
        tracing::warn!(
            provider_id = id.0,
            "this provider's host did not resolve: it is called as before and checked again at the next start"
        );
    }
    let data = state(pool.clone(), config.clone(), tokens)?;
    // Killed outright, its leases expire; shut down, it gives them back (below).
    let worker = (!config.worker.no_worker).then(|| {
        reseller_api::providers::worker::spawn(
            pool,
            config.worker.clone(),
            config.retention.clone(),
            data.wake.clone(),
        )
    });
    let webhooks = (!config.worker.no_worker).then(|| {
        reseller_api::webhooks::worker::spawn(
            data.pool.clone(),
            config.webhooks.clone(),
            config.alerts.clone(),
        )
    });
    let workers = if args.workers == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        args.workers
    };
    tracing::info!(bind = %args.bind, workers, "serving");
    // SIGTERM (and SIGINT) stop the listener at once and let requests in flight finish
    // within `--shutdown-secs`; then the worker finishes its exchange and gives back its leases.
    let served = actix_web::rt::System::new()
        .block_on(async move {
            HttpServer::new(move || build_app(data.clone()))
                .workers(workers)
                .shutdown_timeout(args.shutdown_secs)
                .bind(&args.bind)?
                .run()
                .await
        })
        .map_err(|e| e.to_string());
    tracing::info!("the HTTP server has stopped");
    if let Some(worker) = worker {
        worker.shutdown();
    }
    if let Some(webhooks) = webhooks {
        webhooks.shutdown();
    }
    served
}

fn create_account(config: &Config, name: &str, role: &str, currency: &str) -> Result<(), String> {
    let role = Role::parse(role).ok_or("role must be admin or reseller")?;
    let name = parse_text(name, 200).map_err(|m| format!("name {m}"))?;
    let currency = parse_currency(currency).map_err(|m| format!("currency {m}"))?;
    let pool = open(config)?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let (account, _key, plaintext) =
        create_account_with_key(&mut conn, &Actor::cli(), &name, role, &currency)
            .map_err(|e| e.to_string())?;
    println!(
        "created {} account {} ({})",
        account.role, account.id, account.name
    );
    println!("API key (shown once, store it now):");
    println!("{plaintext}");
    Ok(())
}

fn rotate_keys(config: &Config) -> Result<(), String> {
    let pool = open(config)?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let kid = TokenKeys::rotate(&mut conn, &Actor::cli(), config).map_err(|e| e.to_string())?;
    println!("now signing with key {kid}; older keys validate until their tokens expire");
    Ok(())
}

fn rotate_master(config: &Config, new_key_file: &std::path::Path) -> Result<(), String> {
    db::migrate(config.database_url.expose_secret()).map_err(|e| e.to_string())?;
    let pool = db::connect(config.database_url.expose_secret(), 1).map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let (key_id, count) =
        reseller_api::application::master_key::rotate_master(config, &mut conn, new_key_file)?;
    println!(
        "re-encrypted {count} secrets under master key {key_id} ({}); start every process with this key file (--master-key-file or RESELLER_MASTER_KEY_FILE), and keep the old key as long as backups taken before now are kept",
        new_key_file.display()
    );
    Ok(())
}

fn verify(config: &Config) -> Result<(), String> {
    let pool = open(config)?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let report = db::verify::run(&mut conn).map_err(|e| e.to_string())?;
    println!(
        "checked {} accounts, {} ledger entries, {} orders, {} top-ups, {} refunds, {} subscriptions, {} report rollup buckets",
        report.accounts, report.entries, report.orders, report.top_ups, report.refunds,
        report.subscriptions, report.rollup_buckets
    );
    if report.problems.is_empty() {
        println!("the books balance");
        Ok(())
    } else {
        for problem in &report.problems {
            println!("INCONSISTENT: {problem}");
        }
        Err(format!("{} inconsistencies found", report.problems.len()))
    }
}

fn backup(config: &Config, path: &std::path::Path) -> Result<(), String> {
    let backup = db::backup::sqlite_backup(config.database_url.expose_secret(), path)
        .map_err(|e| e.to_string())?;
    let books = &backup.books;
    println!(
        "backed up to {} ({} bytes): integrity ok; checked {} accounts, {} ledger entries, {} orders, {} top-ups, {} refunds",
        backup.path.display(),
        backup.bytes,
        books.accounts,
        books.entries,
        books.orders,
        books.top_ups,
        books.refunds
    );
    if books.problems.is_empty() {
        println!("the books of the copy balance");
        Ok(())
    } else {
        for problem in &books.problems {
            println!("INCONSISTENT: {problem}");
        }
        Err(format!(
            "the copy has {} inconsistencies; it is kept at {} for inspection",
            books.problems.len(),
            backup.path.display()
        ))
    }
}

fn run_worker(config: &Config) -> Result<(), String> {
    config.alerts.thresholds()?;
    config.alerts.unrecovered_thresholds()?;
    let pool = open(config)?;
    let webhooks = reseller_api::webhooks::worker::spawn(
        pool.clone(),
        config.webhooks.clone(),
        config.alerts.clone(),
    );
    let worker = reseller_api::providers::worker::spawn(
        pool,
        config.worker.clone(),
        config.retention.clone(),
        Default::default(),
    );
    let signalled = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(async {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = terminate.recv() => {}
                result = tokio::signal::ctrl_c() => result?,
            }
            Ok::<(), std::io::Error>(())
        });
    tracing::info!("stopping the provider and webhook workers");
    worker.shutdown();
    webhooks.shutdown();
    signalled.map_err(|e| e.to_string())
}

/// Keeps and fills the report zones `config` lists (`--report-zones`), as the worker would
/// over its first passes, before the command goes on.
fn fill_report_zones(
    config: &Config,
    conn: &mut reseller_api::db::DbConnection,
    owner: &str,
) -> Result<(), String> {
    let phases = config.worker.report_phases();
    match reseller_api::application::rollups::fill_zones(conn, owner, &phases) {
        Ok(true) => Ok(()),
        Ok(false) => Err("another process is folding the report rollups: try again".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn seed(config: &Config, args: &SeedArgs) -> Result<(), String> {
    let pool = open(config)?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let options = reseller_api::tooling::seed::SeedOptions {
        orders: args.orders,
        refunds: args.refunds,
        accounts: args.accounts,
        pending: args.pending,
        days: args.days,
        seed: args.seed,
    };
    let seeded = reseller_api::tooling::seed::run(&mut conn, &options)?;
    fill_report_zones(config, &mut conn, "seed")?;
    println!(
        "seeded {} accounts, {} services, {} orders ({} with a provider's cost), {} refunds, {} pending requests, {} ledger entries, {} report-rollup buckets in {:.1} s",
        seeded.accounts,
        seeded.services,
        seeded.orders,
        seeded.costed_orders,
        seeded.refunds,
        seeded.pending,
        seeded.ledger_entries,
        seeded.rollup_buckets,
        seeded.elapsed.as_secs_f64()
    );
    Ok(())
}

fn bench_reports(config: &Config, args: &BenchArgs) -> Result<(), String> {
    let pool = open(config)?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    fill_report_zones(config, &mut conn, "bench-reports")?;
    let results = reseller_api::tooling::bench_reports::run(
        &mut conn,
        args.days,
        args.iterations,
        args.explain,
    )?;
    println!(
        "{:<34} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "report", "rows", "orders", "p50 ms", "p95 ms", "max ms"
    );
    for m in results {
        println!(
            "{:<34} {:>6} {:>9} {:>9.1} {:>9.1} {:>9.1}",
            m.name,
            m.rows,
            m.orders,
            m.p50.as_secs_f64() * 1e3,
            m.p95.as_secs_f64() * 1e3,
            m.max.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
