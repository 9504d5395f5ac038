//! The run's scratch state and processes: the migrated database and jobs file, the worker
//! replicas (e-mail in sandbox mode), and their teardown.

use anyhow::{Context as _, bail};
use herald_bench::{Run, Scratch, Workers, logs_have_errors, sibling_binary, stop_all};
use herald_shared::effects::EffectKind;

use crate::{Args, BENCH_APP};

/// The scratch state of one run.
pub struct Bench {
    pub scratch: Scratch,
    pub workers: Workers,
}

impl Bench {
    /// Checks the arguments and creates the database; the rest is [`Run::prepare`].
    pub async fn create(args: &Args) -> anyhow::Result<Self> {
        if args.effects < 1 || args.replicas < 1 {
            bail!("--effects and --replicas must be at least 1");
        }
        let scratch =
            Scratch::create(BENCH_APP, "herald_bench_", &args.servers, EffectKind::Email).await?;
        Ok(Self {
            workers: Workers::new(&scratch.dir),
            scratch,
        })
    }

    /// Starts the replicas and waits until each answers `/healthz`; returns their ports.
    pub async fn start_workers(&mut self, args: &Args) -> anyhow::Result<Vec<u16>> {
        let binary = sibling_binary("herald-worker")?;
        let scratch = &self.scratch;
        let what = format!("start {}", binary.display());
        self.workers
            .start(args.replicas, &what, || {
                // No HERALD_EMAIL__SMTP_HOST: the empty default is sandbox mode.
                let mut command = scratch.command(&binary);
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
                Ok(command)
            })
            .await
    }
}

impl Run for Bench {
    type Args = Args;

    /// Migrates the database and writes the jobs file.
    async fn prepare(&mut self, args: &Args) -> anyhow::Result<()> {
        self.scratch.connect().await?;
        herald_shared::db::MIGRATOR
            .run(self.scratch.pool()?)
            .await
            .context("migrate")?;
        self.scratch.write_jobs(args.concurrency, args.window)
    }

    async fn measure(&mut self, args: &Args) -> anyhow::Result<String> {
        crate::measure::measure(self, args).await
    }

    fn logs_have_errors(&self) -> bool {
        logs_have_errors(&self.workers.logs())
    }

    /// Stops the workers, then removes the database, the Redis keys and the scratch files.
    async fn teardown(&mut self, keep: bool, keep_logs: bool) {
        stop_all(self.workers.children_mut(), "worker").await;
        self.scratch.remove(keep, keep_logs, "worker logs").await;
    }
}
