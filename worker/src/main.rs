//! `herald-worker`: see the library docs.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use herald_shared::config::Config;
use herald_shared::jobs_config::JobsConfig;

#[derive(Parser)]
#[command(name = "herald-worker", version, about = "Herald's background worker")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker (the default).
    Run,
    /// Check the configuration and jobs.toml, then exit.
    CheckConfig,
}

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("herald-worker: {err:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load()?;
    let jobs = JobsConfig::load()?;
    herald_shared::telemetry::init(&config.log);
    if matches!(cli.command, Some(Command::CheckConfig)) {
        println!("configuration and jobs.toml are valid");
        return Ok(());
    }
    let listen = config.worker.listen;
    let ctx = herald_worker::build_context(config, jobs).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("bind worker.listen {listen}"))?;
    herald_worker::run(ctx, listener, herald_worker::shutdown_signal()).await
}
