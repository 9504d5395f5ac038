//! Helpers shared by the benchmark binaries in `src/bin/` (`herald-bench`,
//! `herald-bench-deliveries`); the worker itself uses none of this. They start real
//! processes, read their CPU time and memory from `/proc`, write a jobs.toml with overrides,
//! and remove a run's scratch database and Redis keys afterwards. Linux only (`/proc`).

use std::fmt::Write as _;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use herald_shared::effects::EffectKind;
use herald_shared::jobs_config::{DEFAULT_JOBS, JobsConfig};
use redis::aio::ConnectionManager;
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A Redis connection that gives up after 5 s instead of hanging a benchmark.
pub async fn redis_connection(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    Ok(client.get_connection_manager_with_config(config).await?)
}

/// A port that was free a moment ago, for a child process to listen on.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One `GET path` on 127.0.0.1 over HTTP/1.0; true on a 200. Plain TCP, so a health check
/// needs no HTTP client.
pub async fn get_ok(port: u16, path: &str) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(response)) => {
            let status_line = response.split(|b| *b == b'\n').next().unwrap_or_default();
            String::from_utf8_lossy(status_line).contains(" 200 ")
        }
        _ => false,
    }
}

/// Resident memory of a process, in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Per-process MiB, `a / b` for several processes.
pub fn mib_list(kib: &[u64]) -> String {
    kib.iter().map(|k| mib(*k)).collect::<Vec<_>>().join(" / ")
}

/// utime + stime of a process in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the fields that follow it do not.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second for `/proc` times (`getconf CLK_TCK`; 100 on Linux in practice).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds (user + system) used so far by some processes, by the PostgreSQL backends of
/// the pool's database other than the benchmark's own (told apart by `application_name`),
/// and by the Redis server (all of it: other clients of the same Redis count too).
#[derive(Debug, Default, Clone)]
pub struct CpuUse {
    pub processes: f64,
    /// Per backend pid, so backends that connect later count from zero.
    backends: Vec<(u32, f64)>,
    pub postgres: f64,
    pub redis: f64,
}

impl CpuUse {
    /// The totals now; `own_app` is the benchmark's own `application_name`.
    pub async fn now(
        pool: &PgPool,
        redis: &mut ConnectionManager,
        processes: &[u32],
        own_app: &str,
    ) -> anyhow::Result<Self> {
        let ticks = clock_ticks();
        let pids: Vec<i32> = sqlx::query_scalar(
            "select pid from pg_stat_activity
             where datname = current_database() and application_name <> $1",
        )
        .bind(own_app)
        .fetch_all(pool)
        .await?;
        let backends: Vec<(u32, f64)> = pids
            .into_iter()
            .filter_map(|pid| u32::try_from(pid).ok())
            .filter_map(|pid| cpu_ticks(pid).map(|t| (pid, t as f64 / ticks)))
            .collect();
        let info: String = redis::cmd("INFO").arg("cpu").query_async(redis).await?;
        let redis_secs = info
            .lines()
            .filter_map(|line| {
                let (key, value) = line.trim().split_once(':')?;
                matches!(key, "used_cpu_sys" | "used_cpu_user")
                    .then(|| value.parse::<f64>().ok())
                    .flatten()
            })
            .sum();
        Ok(Self {
            processes: processes
                .iter()
                .filter_map(|pid| cpu_ticks(*pid))
                .map(|t| t as f64 / ticks)
                .sum(),
            postgres: backends.iter().map(|(_, secs)| secs).sum(),
            backends,
            redis: redis_secs,
        })
    }

    /// What was used between `before` and `self`. A backend that ended in between is
    /// missed (its CPU time went with it).
    pub fn since(&self, before: &Self) -> Self {
        let postgres = self
            .backends
            .iter()
            .map(|(pid, secs)| {
                let earlier = before
                    .backends
                    .iter()
                    .find(|(p, _)| p == pid)
                    .map_or(0.0, |(_, s)| *s);
                secs - earlier
            })
            .sum();
        Self {
            processes: self.processes - before.processes,
            backends: Vec::new(),
            postgres,
            redis: self.redis - before.redis,
        }
    }
}

/// The committed jobs.toml, every kind written out in full (the workers refuse a file
/// missing one), with `concurrency` and `window` of `kind` overridden when given.
pub fn jobs_toml(
    kind: EffectKind,
    concurrency: Option<usize>,
    window: Option<u32>,
) -> anyhow::Result<String> {
    let committed = JobsConfig::parse(DEFAULT_JOBS)?;
    let mut text = String::from("[defaults]\n");
    for job in committed.all() {
        let (concurrency, window) = if job.kind == kind {
            (
                concurrency.unwrap_or(job.concurrency),
                window.unwrap_or(job.window),
            )
        } else {
            (job.concurrency, job.window)
        };
        let schedule: Vec<String> = job
            .retry_schedule
            .iter()
            .map(|delay| delay.as_secs().to_string())
            .collect();
        write!(
            text,
            "\n[job.{}]\nqueue = \"{}\"\nmax_attempts = {}\nretry_schedule_secs = [{}]\ntimeout_secs = {}\nconcurrency = {concurrency}\nwindow = {window}\n",
            job.kind,
            job.queue,
            job.max_attempts,
            schedule.join(", "),
            job.timeout.as_secs(),
        )?;
        if let Some(limit) = job.rate_limit {
            writeln!(text, "rate_limit = {{ per_second = {} }}", limit.per_second)?;
        }
    }
    // Fail here, not in every worker, when an override is out of range.
    JobsConfig::parse(&text).context("the generated jobs.toml")?;
    Ok(text)
}

/// SIGTERM (graceful shutdown), then SIGKILL if the process is still running after 40 s
/// (the worker's 25 s shutdown timeout and some slack).
pub async fn stop(child: &mut Child) -> anyhow::Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .context("run kill")?;
    if !status.success() {
        bail!("kill -TERM failed: {status}");
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill()?;
    child.wait()?;
    bail!("did not stop within 40 s of SIGTERM; killed")
}

/// Drops a scratch database, disconnecting whoever is still on it.
pub async fn drop_database(admin_url: &str, db_name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("drop database if exists {db_name} with (force)"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(())
}

/// Deletes every key under `prefix` (task data, metadata, rate limiter state).
pub async fn delete_keys(redis_url: &str, prefix: &str) -> anyhow::Result<()> {
    let mut conn = redis_connection(redis_url).await?;
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let () = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
