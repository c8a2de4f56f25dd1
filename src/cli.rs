//! The command line: which command to run, with the shared [`Config`].

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

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
    /// Run only the provider worker (forwarding and status sync).
    Worker,
    /// Check the books: ledger sums, balances, refund caps. Exits non-zero on any inconsistency.
    Verify,
    /// Copy the SQLite database to PATH while the server runs, fsync it, and check the copy
    /// (integrity check and `verify`). Restore by copying the file back with the server stopped.
    Backup {
        /// Where to write the copy; must not exist yet.
        path: std::path::PathBuf,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Fill the database with generated resellers, services, orders and refunds (books kept exact).
    Seed(SeedArgs),
    /// Measure refund report latency on the data in the database (see `seed`).
    BenchReports(BenchArgs),
    /// Pieces of the load benchmark (`bench/run.sh`): setup and the two ceilings.
    #[command(subcommand, hide = true)]
    BenchLoad(crate::tooling::bench_load::BenchLoadCommand),
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
    /// Re-encrypt every secret at rest under a new master key, in one transaction. Stop
    /// every process first; run with the current key configured as usual; then start
    /// every process with the new key file.
    RotateMaster {
        /// The new key's file: read when it exists, else created with a fresh key (0600).
        #[arg(long)]
        new_key_file: std::path::PathBuf,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "RESELLER_API_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// HTTP worker threads (0 = one per core).
    #[arg(long, env = "RESELLER_API_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// On SIGTERM: stop accepting, and give requests in flight this many seconds to finish.
    #[arg(long, env = "RESELLER_API_SHUTDOWN_SECS", default_value_t = 30)]
    pub shutdown_secs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The flags' checks ride on their parsers, which must leave the help as it was:
    /// operators and scripts read the defaults and variables there.
    #[test]
    fn help_still_shows_each_default_and_variable() {
        let help = Cli::command().render_long_help().to_string();
        for shown in [
            "[env: RESELLER_API_RATE_ACCOUNT=]",
            "[default: 600]",
            "[env: RESELLER_API_RATE_DISPUTE_WINDOW=]",
            "[default: 3600]",
            "[env: RESELLER_API_WORKER_INTERVAL_MS=]",
            "[default: 1000]",
            "[env: RESELLER_API_EVENT_RETENTION_DAYS=]",
            "[default: 90]",
            "[default: 0.25]",
        ] {
            assert!(help.contains(shown), "{shown} missing from:\n{help}");
        }
    }
}
