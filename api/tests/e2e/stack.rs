//! `Stack`: a database, an SMTP stand-in, and herald processes started from the built
//! binaries (with `herald-testing`'s scratch database, stand-in and readiness waits).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use herald_testing::env::Scratch;
pub use herald_testing::process::free_port;
use herald_testing::process::{binary_beside, wait_for_ready};
use herald_testing::smtp::SmtpStandin;
pub use herald_testing::wait::wait_until;
use sqlx::PgPool;
use uuid::Uuid;

/// A jobs.toml with short timeouts and a small concurrency, so tests can catch work in flight.
const TEST_JOBS: &str = r#"
[defaults]
max_attempts = 3
retry_schedule_secs = [1]
timeout_secs = 10
concurrency = 2
window = 20

[job.email]
queue = "email"

[job.message]
queue = "messages"
concurrency = 8

[job.generation]
queue = "generation"

[job.campaign_email]
queue = "campaign_email"
"#;

/// The processes are killed in `Drop`, before the fields go: the scratch database is
/// dropped only once nothing uses it.
pub struct Stack {
    pub id: String,
    pub db: PgPool,
    pub database_url: String,
    pub maildir: PathBuf,
    pub api_url: String,
    /// Redis the processes use; tests may point it at a private server.
    pub redis_url: String,
    /// A Twilio stand-in's base URL; unset means Twilio sandbox mode.
    pub twilio_url: Option<String>,
    api_port: u16,
    jobs_file: PathBuf,
    scratch_dir: PathBuf,
    children: Vec<Child>,
    smtp: SmtpStandin,
    scratch: Scratch,
}

fn binary(name: &str) -> PathBuf {
    // Both binaries are built into the same directory by `cargo nextest run --workspace`.
    binary_beside(env!("CARGO_BIN_EXE_herald-api"), name)
}

impl Stack {
    /// A fresh database (migrated by the real `herald-api migrate`) and an SMTP stand-in.
    pub async fn new(slow_seconds: f64) -> Self {
        let scratch = Scratch::create().await.expect("a scratch database");
        let id = scratch.id.clone();
        let database_url = scratch.database_url.clone();
        let scratch_dir = std::env::temp_dir().join(format!("herald-e2e-{id}"));
        std::fs::create_dir_all(&scratch_dir).expect("scratch dir");
        let jobs_file = scratch_dir.join("jobs.toml");
        std::fs::write(&jobs_file, TEST_JOBS).expect("jobs file");
        let smtp = SmtpStandin::start(slow_seconds).await;

        let api_port = free_port();
        let stack = Self {
            id,
            db: PgPool::connect(&database_url).await.expect("pool"),
            database_url,
            maildir: smtp.maildir.clone(),
            api_url: format!("http://127.0.0.1:{api_port}"),
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            twilio_url: None,
            api_port,
            jobs_file,
            scratch_dir,
            children: Vec::new(),
            smtp,
            scratch,
        };
        let status = stack
            .command("herald-api")
            .arg("migrate")
            .status()
            .expect("migrate");
        assert!(status.success(), "herald-api migrate failed");
        stack
    }

    fn command(&self, binary_name: &str) -> Command {
        let mut command = Command::new(binary(binary_name));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HERALD_DATABASE__URL", &self.database_url)
            .env("HERALD_REDIS__URL", &self.redis_url)
            .env("HERALD_REDIS__KEY_PREFIX", &self.scratch.redis_prefix)
            .env("HERALD_AUTH__JWT_SECRET", format!("e2e-secret-{}", self.id))
            // real SMTP needs a key for the secrets in e-mails (any 32 bytes, base64)
            .env(
                "HERALD_SECRETS__ENCRYPTION_KEY",
                "ZTJlLWtleS1lMmUta2V5LWUyZS1rZXktZTJlLWtleSE=",
            )
            .env("HERALD_API__LISTEN", format!("127.0.0.1:{}", self.api_port))
            .env("HERALD_EMAIL__SMTP_HOST", "127.0.0.1")
            .env("HERALD_EMAIL__SMTP_PORT", self.smtp.port.to_string())
            .env("HERALD_EMAIL__SMTP_TLS", "none")
            // the local stand-in answers at once (1 s for `slow-` recipients): a short step
            // timeout keeps the sweep's wait for a send a dead worker left (six steps) short
            .env("HERALD_EMAIL__SMTP_TIMEOUT_SECS", "3")
            .env("HERALD_WORKER__SWEEP_INTERVAL_SECS", "1")
            .env("HERALD_WORKER__REQUEUE_AFTER_SECS", "3")
            .env("HERALD_WORKER__STUCK_SENDING_GRACE_SECS", "1")
            .env("HERALD_WORKER__SHUTDOWN_TIMEOUT_SECS", "15")
            .env("HERALD_JOBS", &self.jobs_file)
            .envs(self.twilio_env())
            .env(
                "RUST_LOG",
                std::env::var("TEST_LOG").map(|_| "info").unwrap_or("error"),
            );
        command
    }

    fn twilio_env(&self) -> Vec<(&'static str, String)> {
        let Some(url) = &self.twilio_url else {
            return Vec::new();
        };
        vec![
            ("HERALD_TWILIO__BASE_URL", url.clone()),
            (
                "HERALD_TWILIO__ACCOUNT_SID",
                format!("AC{}", "0".repeat(32)),
            ),
            ("HERALD_TWILIO__AUTH_TOKEN", "e2e-twilio-token".to_owned()),
            ("HERALD_TWILIO__SMS_FROM", "+15005550006".to_owned()),
            ("HERALD_TWILIO__PUBLIC_BASE_URL", self.api_url.clone()),
            ("HERALD_TWILIO__SMS_PER_SECOND", "100".to_owned()),
        ]
    }

    /// Adds `extra` (e.g. `[cron.*]` sections) to the jobs.toml the next processes read.
    pub fn add_jobs(&self, extra: &str) {
        std::fs::write(&self.jobs_file, format!("{TEST_JOBS}\n{extra}")).expect("jobs file");
    }

    /// Starts `herald-api serve` and waits until it is ready.
    pub async fn start_api(&mut self) {
        let mut child = self
            .command("herald-api")
            .arg("serve")
            .spawn()
            .expect("herald-api");
        wait_for_ready(&format!("{}/readyz", self.api_url), &mut child).await;
        self.children.push(child);
    }

    /// The process id of the (first) running herald-api.
    pub fn api_pid(&self) -> u32 {
        self.children.first().expect("herald-api started").id()
    }

    /// Starts a `herald-worker` replica and waits until its health server answers.
    pub async fn start_worker(&mut self, replica: &str) -> Worker {
        let port = free_port();
        let mut child = self
            .command("herald-worker")
            .arg("run")
            .env("HERALD_WORKER__LISTEN", format!("127.0.0.1:{port}"))
            .env("HERALD_WORKER__REPLICA_NAME", replica)
            .spawn()
            .expect("herald-worker");
        wait_for_ready(&format!("http://127.0.0.1:{port}/healthz"), &mut child).await;
        Worker { child, port }
    }

    pub async fn account(&self) -> Uuid {
        herald_testing::fixtures::create_account(&self.db, "e2e").await
    }

    /// Plans `count` e-mails due now to `local_prefix-N@example.com`, through the API's
    /// planner.
    pub async fn plan_emails(&self, account: Uuid, local_prefix: &str, count: usize) -> Vec<Uuid> {
        let mut ids = Vec::new();
        for n in 0..count {
            let email = herald_shared::effects::EmailPayload {
                to: format!("{local_prefix}-{n}@example.com"),
                subject: format!("message {n}"),
                text: "hello".to_owned(),
                sealed_secret: None,
            };
            let key = format!("{local_prefix}-{n}");
            ids.push(
                herald_testing::fixtures::plan_email_now(&self.db, account, &key, &email).await,
            );
        }
        ids
    }

    /// Effect id → state.
    pub async fn states(&self) -> HashMap<Uuid, String> {
        sqlx::query_as::<_, (Uuid, String)>("select id, state from effects")
            .fetch_all(&self.db)
            .await
            .expect("states")
            .into_iter()
            .collect()
    }

    pub async fn count_in(&self, states: &[&str]) -> i64 {
        let states: Vec<String> = states.iter().map(|s| (*s).to_owned()).collect();
        sqlx::query_scalar("select count(*) from effects where state = any($1)")
            .bind(&states)
            .fetch_one(&self.db)
            .await
            .expect("count")
    }

    /// Message-ID (effect id) → number of copies in the Maildir.
    pub fn delivered(&self) -> HashMap<Uuid, usize> {
        self.smtp.copies_by_effect()
    }

    /// The text of the e-mail delivered to `to` (the newest one).
    pub fn mail_to(&self, to: &str) -> Option<String> {
        self.smtp.text_to(to)
    }

    /// Asserts that every worker replica named in `replicas` ran at least one task (from
    /// the `locked_by` of each task's metadata in Redis).
    pub async fn assert_every_replica_ran_tasks(&self, replicas: &[&str]) {
        let client = redis::Client::open(self.redis_url.as_str()).expect("redis url");
        let redis = redis::aio::ConnectionManager::new(client)
            .await
            .expect("redis connection");
        let ran = herald_testing::pipeline::tasks_run_by_replica(
            &redis,
            &self.scratch.redis_prefix,
            replicas,
        )
        .await;
        eprintln!("tasks run by replica: {ran:?}");
        assert!(
            ran.values().all(|tasks| *tasks > 0),
            "not every replica ran a task: {ran:?}"
        );
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.scratch_dir);
    }
}

/// A running worker replica.
pub struct Worker {
    pub child: Child,
    /// Port of its /healthz, /readyz and /metrics.
    pub port: u16,
}

impl Worker {
    /// SIGKILL: no cleanup at all.
    pub fn kill_hard(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// SIGTERM, then waits for the process to exit by itself; returns whether it exited 0.
    pub fn terminate(mut self, within: Duration) -> bool {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        false
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
