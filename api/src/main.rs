//! `herald-api`: see the library docs.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use herald_shared::config::Config;
use herald_shared::jobs_config::JobsConfig;

#[derive(Parser)]
#[command(name = "herald-api", version, about = "Herald's HTTP API")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply database migrations, then exit.
    Migrate,
    /// Print the OpenAPI document (JSON) to stdout.
    Openapi,
    /// Check the configuration and jobs.toml, then exit.
    CheckConfig,
}

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("herald-api: {err:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Openapi)) {
        println!("{}", herald_api::openapi().to_pretty_json()?);
        return Ok(());
    }
    let config = Config::load()?;
    let jobs = JobsConfig::load()?;
    herald_shared::telemetry::init(&config.log);
    match cli.command {
        Some(Command::CheckConfig) => {
            println!("configuration and jobs.toml are valid");
            Ok(())
        }
        Some(Command::Migrate) => {
            let db = herald_shared::db::connect(&config.database)
                .await
                .context("connect to PostgreSQL (database.url)")?;
            herald_shared::db::MIGRATOR
                .run(&db)
                .await
                .context("run migrations")?;
            println!("migrations applied");
            Ok(())
        }
        Some(Command::Serve) | None | Some(Command::Openapi) => {
            let listen = config.api.listen;
            let state = herald_api::build_state(config, jobs).await?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("bind api.listen {listen}"))?;
            herald_api::serve(state, listener, herald_api::shutdown_signal()).await
        }
    }
}
