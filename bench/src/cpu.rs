//! CPU time a run costs: the benchmarked processes, their PostgreSQL backends and the Redis
//! server, read before and after the measured part so only the difference is reported.

use redis::aio::ConnectionManager;
use sqlx::PgPool;

use super::process::{clock_ticks, cpu_ticks};

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
