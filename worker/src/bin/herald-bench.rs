//! `herald-bench`: how fast do real `herald-worker` processes drain a burst of effects that
//! all fall due at the same instant, and what does that cost in memory and in Redis?
//!
//! One run: a fresh PostgreSQL database and Redis key prefix, N worker replicas started from
//! the binaries next to this one (e-mail in sandbox mode, so no SMTP server is involved and
//! the numbers are Herald's own overhead), `--effects` e-mails planned in a few big INSERTs
//! due at one instant, then a 50 ms sampler of the Redis window and the workers' RSS until
//! every row is final. The figures come from the rows' own timestamps, not the sampler's
//! clock. Everything is torn down afterwards unless `--keep`.
//!
//! ```text
//! cargo build --release --bins && target/release/herald-bench --effects 20000 --replicas 2
//! ```

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use clap::Parser;
use herald_shared::effects::EffectKind;
use herald_shared::jobs_config::{DEFAULT_JOBS, JobsConfig};
use herald_worker::bench::{
    CpuUse, delete_keys, drop_database, free_port, get_ok, mib_list, redis_connection, rss_kib,
    stop,
};
use redis::aio::ConnectionManager;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool};
use uuid::Uuid;

/// Rows per INSERT when planning: big enough to be cheap, small enough that one statement
/// does not hold a huge transaction.
const PLAN_CHUNK: i64 = 50_000;
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// `application_name` of the bench's own connections.
const BENCH_APP: &str = "herald-bench";
/// Samples between progress lines (10 s).
const PROGRESS_EVERY: u32 = 200;

#[derive(Parser, Debug)]
#[command(
    name = "herald-bench",
    about = "Drain-rate benchmark for herald-worker"
)]
struct Args {
    /// E-mail effects to plan, all due at one instant.
    #[arg(long, default_value_t = 20_000)]
    effects: i64,
    /// herald-worker processes to run.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// A PostgreSQL URL allowed to create and drop databases.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_database_url: String,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Seconds between planning and the due instant (the workers must not see half a plan).
    #[arg(long, default_value_t = 2.0)]
    lead_secs: f64,
    /// Spread the due instants evenly over this many seconds instead of one instant; below
    /// the drain rate this measures pickup latency of steady traffic rather than queueing.
    #[arg(long, default_value_t = 0.0)]
    spread_secs: f64,
    /// Override jobs.toml `concurrency` of the email kind (per replica).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Override jobs.toml `window` of the email kind (ids in Redis, all replicas).
    #[arg(long)]
    window: Option<u32>,
    /// Override `worker.poll_interval_ms`.
    #[arg(long)]
    poll_interval_ms: Option<u64>,
    /// Override `worker.dispatch_batch`.
    #[arg(long)]
    dispatch_batch: Option<u32>,
    /// Override `database.max_connections` (per replica).
    #[arg(long)]
    db_max_connections: Option<u32>,
    /// Give up waiting for the drain after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Keep the database, the Redis keys and the worker logs.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("herald-bench: {err:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.effects < 1 || args.replicas < 1 {
        bail!("--effects and --replicas must be at least 1");
    }
    let mut bench = Bench::create(&args).await?;
    // Whatever happens in the run, the workers are stopped and the scratch state removed.
    let outcome = bench.measure(&args).await;
    let keep_logs = args.keep || outcome.is_err() || bench.logs_have_errors();
    bench.teardown(args.keep, keep_logs).await;
    let report = outcome?;
    println!("{report}");
    Ok(())
}

/// The scratch state of one run.
struct Bench {
    id: String,
    admin_url: String,
    db_name: String,
    database_url: String,
    redis_url: String,
    prefix: String,
    scratch: PathBuf,
    jobs_file: PathBuf,
    /// The email kind's queue (`effects.queue` and the apalis-redis key names).
    queue: String,
    workers: Vec<Child>,
    pool: Option<PgPool>,
}

/// What the sampler saw while the burst drained.
#[derive(Debug, Default)]
struct Peaks {
    window: i64,
    redis_depth: i64,
    rss_kib: Vec<u64>,
    samples: u64,
}

/// The drain as the rows recorded it.
#[derive(Debug, sqlx::FromRow)]
struct Drain {
    first_sending: Option<DateTime<Utc>>,
    last_finished: Option<DateTime<Utc>>,
    pickup_p50_ms: Option<f64>,
    pickup_p99_ms: Option<f64>,
    pickup_max_ms: Option<f64>,
    max_attempts: Option<i32>,
    retried: i64,
}

impl Bench {
    /// Creates the database, migrates it and writes the jobs file.
    async fn create(args: &Args) -> anyhow::Result<Self> {
        let id = Uuid::new_v4().simple().to_string();
        let db_name = format!("herald_bench_{id}");
        let (base, _) = args
            .admin_database_url
            .rsplit_once('/')
            .context("--admin-database-url must end in /<database>")?;
        let database_url = format!("{base}/{db_name}");
        let mut admin = PgConnection::connect(&args.admin_database_url)
            .await
            .context("connect with --admin-database-url")?;
        sqlx::query(&format!("create database {db_name}"))
            .execute(&mut admin)
            .await
            .context("create the bench database")?;
        admin.close().await.ok();

        let scratch = std::env::temp_dir().join(format!("herald-bench-{id}"));
        let queue = JobsConfig::parse(DEFAULT_JOBS)?
            .get(EffectKind::Email)
            .queue
            .clone();
        let mut bench = Self {
            queue,
            prefix: format!("herald-bench:{id}:"),
            jobs_file: scratch.join("jobs.toml"),
            scratch,
            id,
            admin_url: args.admin_database_url.clone(),
            db_name,
            database_url,
            redis_url: args.redis_url.clone(),
            workers: Vec::new(),
            pool: None,
        };
        // From here on, a failure must still drop the database just created.
        if let Err(err) = bench.prepare(args).await {
            bench.teardown(args.keep, args.keep).await;
            return Err(err);
        }
        Ok(bench)
    }

    async fn prepare(&mut self, args: &Args) -> anyhow::Result<()> {
        // The application name tells the bench's own backends from the workers' ones when
        // their CPU time is counted.
        let options = PgConnectOptions::from_str(&self.database_url)?.application_name(BENCH_APP);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .context("connect to the bench database")?;
        herald_shared::db::MIGRATOR
            .run(&pool)
            .await
            .context("migrate")?;
        self.pool = Some(pool);
        std::fs::create_dir_all(&self.scratch)
            .with_context(|| format!("create {}", self.scratch.display()))?;
        std::fs::write(
            &self.jobs_file,
            herald_worker::bench::jobs_toml(EffectKind::Email, args.concurrency, args.window)?,
        )
        .with_context(|| format!("write {}", self.jobs_file.display()))?;
        Ok(())
    }

    fn pool(&self) -> anyhow::Result<&PgPool> {
        self.pool.as_ref().context("no database pool")
    }

    async fn measure(&mut self, args: &Args) -> anyhow::Result<String> {
        let pool = self.pool()?.clone();
        let mut redis = redis_connection(&self.redis_url).await?;
        let account: Uuid =
            sqlx::query_scalar("insert into accounts (name) values ('bench') returning id")
                .fetch_one(&pool)
                .await?;

        let ports = self.start_workers(args).await?;
        eprintln!(
            "{} worker(s) healthy on ports {ports:?}; idling 2 s",
            self.workers.len()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle_rss: Vec<u64> = self
            .workers
            .iter()
            .map(|child| rss_kib(child.id()))
            .collect::<anyhow::Result<_>>()?;

        let pids: Vec<u32> = self.workers.iter().map(Child::id).collect();
        let cpu_before = CpuUse::now(&pool, &mut redis, &pids, BENCH_APP).await?;
        let (due, plan_time, committed) = plan(&pool, account, &self.queue, args).await?;
        let slack = (due - committed).num_milliseconds();
        eprintln!(
            "planned {} e-mails in {:.2} s; due {} ms after the commit",
            args.effects,
            plan_time.as_secs_f64(),
            slack
        );
        if slack < 0 {
            eprintln!(
                "warning: planning ended after the due instant; raise --lead-secs for a clean measurement"
            );
        }

        let started = Instant::now();
        let peaks = self
            .sample_until_drained(
                &pool,
                &mut redis,
                args,
                due + chrono::Duration::milliseconds((args.spread_secs * 1000.0) as i64),
                idle_rss.len(),
            )
            .await?;
        let wall = started.elapsed();
        let cpu = CpuUse::now(&pool, &mut redis, &pids, BENCH_APP)
            .await?
            .since(&cpu_before);

        let drain: Drain = sqlx::query_as(
            "select min(sending_at) as first_sending,
                    max(finished_at) as last_finished,
                    percentile_cont(0.5) within group (order by pickup_ms) as pickup_p50_ms,
                    percentile_cont(0.99) within group (order by pickup_ms) as pickup_p99_ms,
                    max(pickup_ms) as pickup_max_ms,
                    max(attempts) as max_attempts,
                    count(*) filter (where attempts > 1) as retried
             from (select *, (extract(epoch from sending_at - next_attempt_at) * 1000)::float8
                             as pickup_ms
                   from effects) e",
        )
        .fetch_one(&pool)
        .await?;
        let states: Vec<(String, i64)> =
            sqlx::query_as("select state, count(*) from effects group by state order by state")
                .fetch_all(&pool)
                .await?;
        let (Some(first), Some(last)) = (drain.first_sending, drain.last_finished) else {
            bail!(
                "no row was started or finished; see the worker logs in {}",
                self.scratch.display()
            );
        };
        let n = args.effects as f64;
        let per_sec = |from: DateTime<Utc>| {
            let secs = (last - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
            n / secs
        };
        let jobs = JobsConfig::parse(&std::fs::read_to_string(&self.jobs_file)?)?;
        let email = jobs.get(EffectKind::Email);

        let mut out = String::new();
        writeln!(
            out,
            "| replicas | effects | effects/s (first start → last finish) | effects/s (due → last finish) | pickup p50 / p99 / max ms | idle RSS MiB | peak RSS MiB | max window (queued rows) | max Redis depth |"
        )?;
        writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.0} / {:.0} / {:.0} | {} | {} | {} | {} |",
            args.replicas,
            args.effects,
            per_sec(first),
            per_sec(due),
            drain.pickup_p50_ms.unwrap_or(f64::NAN),
            drain.pickup_p99_ms.unwrap_or(f64::NAN),
            drain.pickup_max_ms.unwrap_or(f64::NAN),
            mib_list(&idle_rss),
            mib_list(&peaks.rss_kib),
            peaks.window,
            peaks.redis_depth,
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "settings: email concurrency {} per replica, window {}, dispatch_batch {}, poll_interval_ms {}, db max_connections {}",
            email.concurrency,
            email.window,
            args.dispatch_batch
                .map_or("500 (default)".to_owned(), |b| b.to_string()),
            args.poll_interval_ms
                .map_or("25 (default)".to_owned(), |p| p.to_string()),
            args.db_max_connections
                .map_or("10 (default)".to_owned(), |c| c.to_string()),
        )?;
        writeln!(
            out,
            "planning: {} rows in {:.2} s ({:.0} rows/s); drain wall time after planning {:.2} s; {} samples",
            args.effects,
            plan_time.as_secs_f64(),
            n / plan_time.as_secs_f64(),
            wall.as_secs_f64(),
            peaks.samples,
        )?;
        writeln!(
            out,
            "CPU from planning to drained: workers {:.2} s, their PostgreSQL backends {:.2} s, Redis server (all clients) {:.2} s = {:.3} ms per effect",
            cpu.processes,
            cpu.postgres,
            cpu.redis,
            (cpu.processes + cpu.postgres + cpu.redis) * 1000.0 / n,
        )?;
        let states: Vec<String> = states.iter().map(|(s, c)| format!("{s} {c}")).collect();
        writeln!(
            out,
            "rows by state: {}; max attempts {}; rows with attempts > 1: {}",
            states.join(", "),
            drain.max_attempts.unwrap_or(0),
            drain.retried
        )?;
        Ok(out)
    }

    /// Starts the replicas and waits until each answers `/healthz`; returns their ports.
    async fn start_workers(&mut self, args: &Args) -> anyhow::Result<Vec<u16>> {
        let binary = std::env::current_exe()?.with_file_name("herald-worker");
        if !binary.exists() {
            bail!(
                "{} not found; build it with `cargo build --release --bins`",
                binary.display()
            );
        }
        let mut ports = Vec::new();
        for i in 0..args.replicas {
            let port = free_port()?;
            let log = std::fs::File::create(self.scratch.join(format!("worker-{i}.log")))?;
            let mut command = Command::new(&binary);
            command
                .arg("run")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HERALD_DATABASE__URL", &self.database_url)
                .env("HERALD_REDIS__URL", &self.redis_url)
                .env("HERALD_REDIS__KEY_PREFIX", &self.prefix)
                .env(
                    "HERALD_AUTH__JWT_SECRET",
                    format!("bench-secret-{}", self.id),
                )
                .env("HERALD_WORKER__LISTEN", format!("127.0.0.1:{port}"))
                .env("HERALD_WORKER__REPLICA_NAME", format!("bench-{i}"))
                .env("HERALD_JOBS", &self.jobs_file)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            // No HERALD_EMAIL__SMTP_HOST: the empty default is sandbox mode.
            for (name, value) in [
                ("HERALD_WORKER__POLL_INTERVAL_MS", args.poll_interval_ms),
                (
                    "HERALD_WORKER__DISPATCH_BATCH",
                    args.dispatch_batch.map(u64::from),
                ),
                (
                    "HERALD_DATABASE__MAX_CONNECTIONS",
                    args.db_max_connections.map(u64::from),
                ),
            ] {
                if let Some(value) = value {
                    command.env(name, value.to_string());
                }
            }
            let child = command
                .spawn()
                .with_context(|| format!("start {}", binary.display()))?;
            self.workers.push(child);
            ports.push(port);
        }
        for (i, port) in ports.iter().enumerate() {
            self.wait_healthy(i, *port).await?;
        }
        Ok(ports)
    }

    async fn wait_healthy(&mut self, i: usize, port: u16) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.workers[i].try_wait()? {
                bail!(
                    "worker {i} exited with {status}; see {}",
                    self.scratch.join(format!("worker-{i}.log")).display()
                );
            }
            if get_ok(port, "/healthz").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("worker {i} not healthy on port {port} after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Samples every 50 ms until no row is left to work on; keeps the maxima.
    async fn sample_until_drained(
        &mut self,
        pool: &PgPool,
        redis: &mut ConnectionManager,
        args: &Args,
        due: DateTime<Utc>,
        replicas: usize,
    ) -> anyhow::Result<Peaks> {
        // One dedicated connection: the sampler should not queue behind anything.
        let mut conn = pool.acquire().await?;
        let scheduled = format!("{}{}:scheduled", self.prefix, self.queue);
        let active = format!("{}{}:active", self.prefix, self.queue);
        let mut peaks = Peaks {
            rss_kib: vec![0; replicas],
            ..Peaks::default()
        };
        let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut round: u32 = 0;
        loop {
            tick.tick().await;
            round += 1;
            peaks.samples += 1;
            // The dispatcher's own count: served by the small `effects_queued` index.
            let queued: i64 = sqlx::query_scalar(
                "select count(*) from effects where queue = $1 and state = 'queued'",
            )
            .bind(&self.queue)
            .fetch_one(&mut *conn)
            .await?;
            peaks.window = peaks.window.max(queued);
            let (zcard, llen): (i64, i64) = redis::pipe()
                .zcard(&scheduled)
                .llen(&active)
                .query_async(redis)
                .await?;
            peaks.redis_depth = peaks.redis_depth.max(zcard + llen);
            for (i, child) in self.workers.iter_mut().enumerate() {
                if let Some(status) = child.try_wait()? {
                    bail!("worker {i} exited during the drain with {status}");
                }
                peaks.rss_kib[i] = peaks.rss_kib[i].max(rss_kib(child.id())?);
            }
            // Not-yet-final rows can only be absent once nothing waits in the window, so the
            // costlier count runs only then (and now and then, for the progress line).
            let idle = queued == 0 && zcard + llen == 0 && Utc::now() > due;
            let progress = round.is_multiple_of(PROGRESS_EVERY);
            if idle || progress {
                let left: i64 = sqlx::query_scalar(
                    "select count(*) from effects
                     where state in ('planned', 'queued', 'sending', 'retrying')",
                )
                .fetch_one(&mut *conn)
                .await?;
                if left == 0 {
                    return Ok(peaks);
                }
                if progress {
                    eprintln!("  {left} rows left, {queued} queued");
                }
            }
            if Instant::now() > deadline {
                bail!("not drained after {} s", args.timeout_secs);
            }
        }
    }

    fn logs_have_errors(&self) -> bool {
        (0..self.workers.len()).any(|i| {
            std::fs::read_to_string(self.scratch.join(format!("worker-{i}.log")))
                .map(|text| text.contains("ERROR"))
                .unwrap_or(false)
        })
    }

    /// Stops the workers, then removes the database, the Redis keys and the scratch files.
    /// Best effort: every step is attempted and failures are only reported.
    async fn teardown(&mut self, keep: bool, keep_logs: bool) {
        for child in &mut self.workers {
            if let Err(err) = stop(child).await {
                eprintln!("warning: stopping worker {}: {err:#}", child.id());
            }
        }
        if let Some(pool) = self.pool.take() {
            pool.close().await;
        }
        if keep {
            eprintln!(
                "kept: database {}, Redis prefix {}, logs in {}",
                self.db_name,
                self.prefix,
                self.scratch.display()
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
            eprintln!("worker logs kept in {}", self.scratch.display());
        } else if let Err(err) = std::fs::remove_dir_all(&self.scratch) {
            eprintln!("warning: removing {}: {err}", self.scratch.display());
        }
    }
}

/// Plans every effect due at one instant `--lead-secs` from now; returns the instant, how
/// long planning took and when it committed.
async fn plan(
    pool: &PgPool,
    account: Uuid,
    queue: &str,
    args: &Args,
) -> anyhow::Result<(DateTime<Utc>, Duration, DateTime<Utc>)> {
    let due = Utc::now() + chrono::Duration::milliseconds((args.lead_secs * 1000.0) as i64);
    let started = Instant::now();
    // One transaction: the dispatcher must see all rows or none.
    let mut tx = pool.begin().await?;
    let mut from = 1;
    while from <= args.effects {
        let to = (from + PLAN_CHUNK - 1).min(args.effects);
        sqlx::query(
            "insert into effects (account_id, kind, queue, idempotency_key, payload, due_at, next_attempt_at)
             select $1, 'email', $5, 'bench-' || g,
                    jsonb_build_object('to', 'bench-' || g || '@example.com',
                                       'subject', 'bench ' || g, 'text', 'hello'),
                    $2 + make_interval(secs => $6 * (g - 1)::float8 / $7),
                    $2 + make_interval(secs => $6 * (g - 1)::float8 / $7)
             from generate_series($3::bigint, $4::bigint) g",
        )
        .bind(account)
        .bind(due)
        .bind(from)
        .bind(to)
        .bind(queue)
        .bind(args.spread_secs)
        .bind(args.effects as f64)
        .execute(&mut *tx)
        .await
        .context("plan effects")?;
        from = to + 1;
    }
    tx.commit().await?;
    let committed = Utc::now();
    let planned = started.elapsed();
    // Fresh statistics, so the workers' queries are planned for the table as it now is.
    sqlx::query("analyze effects").execute(pool).await?;
    Ok((due, planned, committed))
}
