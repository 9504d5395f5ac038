//! The scratch state of one benchmark run: a fresh PostgreSQL database, a Redis key prefix
//! and a directory for the jobs file and the processes' logs, all named after one random id
//! so that runs never see each other, and all removed again by [`Scratch::remove`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr as _;
use std::time::Duration;

use anyhow::Context as _;
use herald_shared::effects::EffectKind;
use herald_shared::jobs_config::{DEFAULT_JOBS, JobSettings, JobsConfig};
use redis::aio::ConnectionManager;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool};
use uuid::Uuid;

use super::jobs::jobs_toml;

/// Where a run creates its scratch state: the `--admin-database-url` and `--redis-url`
/// options of every benchmark (flattened into its command line).
#[derive(clap::Args, Debug)]
pub struct Servers {
    /// A PostgreSQL URL allowed to create and drop databases.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub admin_database_url: String,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
}

/// What one run created, and the benchmark's own connection pool to its database.
pub struct Scratch {
    /// The run's random id, in every name below.
    pub id: String,
    /// `application_name` of the benchmark's own connections, so that its backends can be
    /// left out of the CPU counts; also names the scratch directory.
    pub app: &'static str,
    admin_url: String,
    db_name: String,
    pub database_url: String,
    pub redis_url: String,
    /// Prefix of every Redis key the run's processes write.
    pub prefix: String,
    /// The scratch directory: jobs file and logs.
    pub dir: PathBuf,
    pub jobs_file: PathBuf,
    /// The benchmarked effect kind.
    pub kind: EffectKind,
    /// That kind's queue (`effects.queue` and the apalis-redis key names).
    pub queue: String,
    pool: Option<PgPool>,
}

impl Scratch {
    /// Creates the database `<db_prefix><id>` next to the one of `--admin-database-url` and
    /// names the rest; nothing else is created yet, so a
    /// caller that fails from here on must still [`remove`](Self::remove) it.
    pub async fn create(
        app: &'static str,
        db_prefix: &str,
        servers: &Servers,
        kind: EffectKind,
    ) -> anyhow::Result<Self> {
        let (admin_url, redis_url) = (&servers.admin_database_url, &servers.redis_url);
        let id = Uuid::new_v4().simple().to_string();
        let db_name = format!("{db_prefix}{id}");
        let (base, _) = admin_url
            .rsplit_once('/')
            .context("--admin-database-url must end in /<database>")?;
        let database_url = format!("{base}/{db_name}");
        let mut admin = PgConnection::connect(admin_url)
            .await
            .context("connect with --admin-database-url")?;
        sqlx::query(&format!("create database {db_name}"))
            .execute(&mut admin)
            .await
            .context("create the bench database")?;
        admin.close().await.ok();

        let dir = std::env::temp_dir().join(format!("{app}-{id}"));
        let queue = JobsConfig::parse(DEFAULT_JOBS)?.get(kind).queue.clone();
        Ok(Self {
            queue,
            kind,
            prefix: format!("herald-bench:{id}:"),
            jobs_file: dir.join("jobs.toml"),
            dir,
            id,
            app,
            admin_url: admin_url.clone(),
            db_name,
            database_url,
            redis_url: redis_url.clone(),
            pool: None,
        })
    }

    /// Creates the scratch directory and writes the jobs file, with the benchmarked kind's
    /// `concurrency` and `window` overridden when given.
    pub fn write_jobs(
        &self,
        concurrency: Option<usize>,
        window: Option<u32>,
    ) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("create {}", self.dir.display()))?;
        std::fs::write(&self.jobs_file, jobs_toml(self.kind, concurrency, window)?)
            .with_context(|| format!("write {}", self.jobs_file.display()))
    }

    /// The benchmarked kind's settings as the workers read them from the jobs file.
    pub fn job_settings(&self) -> anyhow::Result<JobSettings> {
        let jobs = JobsConfig::parse(&std::fs::read_to_string(&self.jobs_file)?)?;
        Ok(jobs.get(self.kind).clone())
    }

    /// Opens the benchmark's own pool to the (migrated) database.
    pub async fn connect(&mut self) -> anyhow::Result<()> {
        // The application name tells the bench's own backends from the processes' ones when
        // their CPU time is counted.
        let options = PgConnectOptions::from_str(&self.database_url)?.application_name(self.app);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .context("connect to the bench database")?;
        self.pool = Some(pool);
        Ok(())
    }

    /// Migrates the database by running `herald_api` (a [`Scratch::command`] of
    /// `herald-api`) with `migrate`, its output in `migrate.log`, then [`Scratch::connect`]s.
    pub async fn migrate(&mut self, mut herald_api: Command) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.log("migrate.log"))?;
        let status = herald_api
            .arg("migrate")
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .context("run herald-api migrate")?;
        if !status.success() {
            anyhow::bail!(
                "herald-api migrate failed with {status}; see {}",
                self.log("migrate.log").display()
            );
        }
        self.connect().await
    }

    pub fn pool(&self) -> anyhow::Result<&PgPool> {
        self.pool.as_ref().context("no database pool")
    }

    /// A log file in the scratch directory.
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `binary` configured for the run through `HERALD_*` variables only (nothing from the
    /// caller's environment but `PATH`): database, Redis prefix, jobs file, quiet logs.
    pub fn command(&self, binary: &Path) -> Command {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HERALD_DATABASE__URL", &self.database_url)
            .env("HERALD_REDIS__URL", &self.redis_url)
            .env("HERALD_REDIS__KEY_PREFIX", &self.prefix)
            .env(
                "HERALD_AUTH__JWT_SECRET",
                format!("bench-secret-{}", self.id),
            )
            .env("HERALD_JOBS", &self.jobs_file)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        command
    }

    /// Removes the database, the Redis keys and the scratch directory (kept when `keep_logs`,
    /// then reported as `<logs> kept in …`); with `keep`, removes nothing and says what was
    /// kept. Stop the processes first. Best effort: every step is attempted and failures are
    /// only reported.
    pub async fn remove(&mut self, keep: bool, keep_logs: bool, logs: &str) {
        if let Some(pool) = self.pool.take() {
            pool.close().await;
        }
        if keep {
            eprintln!(
                "kept: database {}, Redis prefix {}, logs in {}",
                self.db_name,
                self.prefix,
                self.dir.display()
            );
            return;
        }
        if let Err(err) = drop_database(&self.admin_url, &self.db_name).await {
            eprintln!("warning: dropping {}: {err:#}", self.db_name);
        }
        if let Err(err) = delete_keys(&self.redis_url, &self.prefix).await {
            eprintln!("warning: deleting Redis keys {}*: {err:#}", self.prefix);
        }
        if keep_logs {
            eprintln!("{logs} kept in {}", self.dir.display());
        } else if let Err(err) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("warning: removing {}: {err}", self.dir.display());
        }
    }
}

/// True when any of `logs` (missing ones do not count) has an `ERROR` line: then the logs
/// are kept for a look even after a run that measured fine.
pub fn logs_have_errors(logs: &[PathBuf]) -> bool {
    logs.iter().any(|log| {
        std::fs::read_to_string(log)
            .map(|text| text.contains("ERROR"))
            .unwrap_or(false)
    })
}

/// A Redis connection that gives up after 5 s instead of hanging a benchmark.
pub async fn redis_connection(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    Ok(client.get_connection_manager_with_config(config).await?)
}

/// Drops a scratch database, disconnecting whoever is still on it.
async fn drop_database(admin_url: &str, db_name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("drop database if exists {db_name} with (force)"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(())
}

/// Deletes every key under `prefix` (task data, metadata, rate limiter state).
async fn delete_keys(redis_url: &str, prefix: &str) -> anyhow::Result<()> {
    let mut conn = redis_connection(redis_url).await?;
    herald_shared::redis_conn::delete_keys_with_prefix(&mut conn, prefix).await?;
    Ok(())
}
