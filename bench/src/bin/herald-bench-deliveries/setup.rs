//! The run's scratch state and processes: the database (migrated by `herald-api migrate`),
//! the jobs file, the Twilio stand-in, `herald-api serve` and the worker replicas, all
//! configured alike, and their teardown.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use herald_bench::{
    Run, Scratch, Standin, Workers, free_port, get_ok, logs_have_errors, sibling_binary, stop_all,
};
use herald_shared::effects::EffectKind;

use crate::{Args, BENCH_APP, students};

/// The scratch state of one run.
pub struct Bench {
    pub scratch: Scratch,
    pub standin: Standin,
    twilio_url: String,
    api: Option<Child>,
    pub api_port: u16,
    pub workers: Workers,
}

impl Bench {
    /// Checks the arguments and creates the database; the rest is [`Run::prepare`].
    pub async fn create(args: &Args) -> anyhow::Result<Self> {
        if !(1..=students::MAX).contains(&args.students) || args.replicas < 1 || args.days < 1 {
            bail!("--students must be 1–100,000 and --replicas and --days at least 1");
        }
        let scratch = Scratch::create(
            BENCH_APP,
            "herald_bench_d_",
            &args.servers,
            EffectKind::Message,
        )
        .await?;
        Ok(Self {
            workers: Workers::new(&scratch.dir),
            scratch,
            standin: Standin::default(),
            twilio_url: String::new(),
            api: None,
            api_port: 0,
        })
    }

    /// Starts `herald-api serve` and waits until `/readyz` answers 200.
    pub async fn start_api(&mut self, args: &Args) -> anyhow::Result<()> {
        self.api_port = free_port()?;
        let log = std::fs::File::create(self.scratch.log("api.log"))?;
        let child = command(&self.scratch, &self.twilio_url, "herald-api", args)?
            .arg("serve")
            .env("HERALD_API__LISTEN", format!("127.0.0.1:{}", self.api_port))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start herald-api")?;
        let api = self.api.insert(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = api.try_wait()? {
                bail!(
                    "herald-api exited with {status}; see {}",
                    self.scratch.log("api.log").display()
                );
            }
            if get_ok(self.api_port, "/readyz").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("herald-api not ready after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn api_pid(&self) -> anyhow::Result<u32> {
        self.api
            .as_ref()
            .map(Child::id)
            .context("herald-api is not running")
    }

    /// Starts the replicas and waits until each answers `/healthz`; returns their ports.
    pub async fn start_workers(&mut self, args: &Args) -> anyhow::Result<Vec<u16>> {
        let (scratch, twilio_url) = (&self.scratch, self.twilio_url.as_str());
        self.workers
            .start(args.replicas, "start herald-worker", || {
                let mut command = command(scratch, twilio_url, "herald-worker", args)?;
                if let Some(connections) = args.db_max_connections {
                    command.env("HERALD_DATABASE__MAX_CONNECTIONS", connections.to_string());
                }
                Ok(command)
            })
            .await
    }
}

impl Run for Bench {
    type Args = Args;

    /// Writes the jobs file, starts the stand-in and migrates with `herald-api migrate`.
    async fn prepare(&mut self, args: &Args) -> anyhow::Result<()> {
        self.scratch.write_jobs(args.concurrency, args.window)?;
        self.twilio_url = self.standin.start().await?;
        let herald_api = command(&self.scratch, &self.twilio_url, "herald-api", args)?;
        self.scratch.migrate(herald_api).await
    }

    async fn measure(&mut self, args: &Args) -> anyhow::Result<String> {
        crate::measure::measure(self, args).await
    }

    fn logs_have_errors(&self) -> bool {
        let mut logs = vec![self.scratch.log("api.log")];
        logs.extend(self.workers.logs());
        logs_have_errors(&logs)
    }

    /// Stops the workers and herald-api, then removes the database, the Redis keys and the
    /// scratch files.
    async fn teardown(&mut self, keep: bool, keep_logs: bool) {
        stop_all(
            self.workers.children_mut().chain(self.api.as_mut()),
            "process",
        )
        .await;
        self.scratch.remove(keep, keep_logs, "logs").await;
    }
}

/// A herald binary from next to this one, configured for the run (see [`Scratch::command`])
/// and pointed at the Twilio stand-in with the per-sender limit from `--sms-per-second`.
fn command(
    scratch: &Scratch,
    twilio_url: &str,
    name: &str,
    args: &Args,
) -> anyhow::Result<Command> {
    let mut command = scratch.command(&sibling_binary(name)?);
    // the run may outlast the default 15 minutes of one access token
    command.env("HERALD_AUTH__ACCESS_TOKEN_TTL_SECS", "86400");
    Standin::configure(&mut command, twilio_url, args.sms_per_second);
    // No HERALD_EMAIL__SMTP_HOST: the signup's verification e-mail is sandboxed.
    Ok(command)
}
