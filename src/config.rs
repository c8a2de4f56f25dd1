//! Configuration, read once from flags with environment fallbacks.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "reseller-api",
    version,
    about = "Public reseller API for SMM panels"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations, then serve the API (the default command).
    Serve(ServeArgs),
    /// Apply migrations and exit.
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Manage the token-signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Check the books: ledger sums, balances, refund caps. Exits non-zero on any inconsistency.
    Verify,
    /// Print the OpenAPI document.
    Openapi,
    /// Fill the database with generated resellers, services, orders and refunds (books kept exact).
    Seed(SeedArgs),
    /// Measure refund report latency on the data in the database (see `seed`).
    BenchReports(BenchArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    #[arg(long, default_value_t = 100_000)]
    pub orders: usize,
    #[arg(long, default_value_t = 10_000)]
    pub refunds: usize,
    /// Reseller accounts the orders are spread over.
    #[arg(long, default_value_t = 40)]
    pub accounts: usize,
    /// Refund requests left awaiting review.
    #[arg(long, default_value_t = 25)]
    pub pending: usize,
    /// Orders are spread over this many days up to now.
    #[arg(long, default_value_t = 365)]
    pub days: i64,
    /// Random seed: the same arguments give the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Window length of the measured reports.
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// Runs per report shape.
    #[arg(long, default_value_t = 20)]
    pub iterations: usize,
    /// Print the query plans first.
    #[arg(long)]
    pub explain: bool,
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create an account; its new API key is printed alone on the last line.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["admin", "reseller"])]
        role: String,
        #[arg(long, default_value = "USD")]
        currency: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Start signing with a new key; the old ones keep validating until their tokens expire.
    Rotate,
}

#[derive(Debug, Clone, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "RESELLER_API_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// HTTP worker threads (0 = one per core).
    #[arg(long, env = "RESELLER_API_WORKERS", default_value_t = 0)]
    pub workers: usize,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// `sqlite://path` (the default) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/reseller-api.db",
        global = true
    )]
    pub database_url: String,
    /// Database connections in the pool.
    #[arg(
        long,
        env = "RESELLER_API_DB_POOL",
        default_value_t = 10,
        global = true
    )]
    pub db_pool_size: u32,
    /// `iss` of issued tokens, and the only issuer accepted.
    #[arg(
        long,
        env = "RESELLER_API_JWT_ISSUER",
        default_value = "reseller-api",
        global = true
    )]
    pub jwt_issuer: String,
    /// `aud` of issued tokens, and the only audience accepted.
    #[arg(
        long,
        env = "RESELLER_API_JWT_AUDIENCE",
        default_value = "reseller-api",
        global = true
    )]
    pub jwt_audience: String,
    /// Access token lifetime in seconds.
    #[arg(
        long,
        env = "RESELLER_API_TOKEN_TTL",
        default_value_t = 900,
        global = true
    )]
    pub token_ttl_secs: i64,
    /// Largest request body accepted, in bytes.
    #[arg(
        long,
        env = "RESELLER_API_MAX_BODY",
        default_value_t = 65_536,
        global = true
    )]
    pub max_body_bytes: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            database_url: "sqlite://data/reseller-api.db".into(),
            db_pool_size: 10,
            jwt_issuer: "reseller-api".into(),
            jwt_audience: "reseller-api".into(),
            token_ttl_secs: 900,
            max_body_bytes: 65_536,
        }
    }
}
