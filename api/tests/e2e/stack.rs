//! `Stack`: a database, an SMTP stand-in, and herald processes started from the built
//! binaries.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

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
"#;

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
    smtp_port: u16,
    api_port: u16,
    jobs_file: PathBuf,
    smtp: Child,
    children: Vec<Child>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn binary(name: &str) -> PathBuf {
    // Both binaries are built into the same directory by `cargo nextest run --workspace`.
    Path::new(env!("CARGO_BIN_EXE_herald-api")).with_file_name(name)
}

impl Stack {
    /// A fresh database (migrated by the real `herald-api migrate`) and an SMTP stand-in.
    pub async fn new(slow_seconds: f64) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let admin_url = std::env::var("HERALD_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("admin connection");
        sqlx::query(&format!("create database herald_t_{id}"))
            .execute(&mut admin)
            .await
            .expect("create db");
        let base = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base.to_owned())
            .expect("url");
        let database_url = format!("{base}/herald_t_{id}");

        let scratch = std::env::temp_dir().join(format!("herald-e2e-{id}"));
        std::fs::create_dir_all(&scratch).expect("scratch dir");
        let jobs_file = scratch.join("jobs.toml");
        std::fs::write(&jobs_file, TEST_JOBS).expect("jobs file");
        let maildir = scratch.join("mail");
        let smtp_port = free_port();
        let smtp = Command::new(format!("{ROOT}/.standins/smtp/bin/python"))
            .arg(format!("{ROOT}/scripts/smtp_standin.py"))
            .args(["--port", &smtp_port.to_string(), "--maildir"])
            .arg(&maildir)
            .args(["--slow-seconds", &slow_seconds.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("SMTP stand-in (run scripts/standins.sh)");
        wait_for_port(smtp_port).await;

        let api_port = free_port();
        let stack = Self {
            id,
            db: PgPool::connect(&database_url).await.expect("pool"),
            database_url,
            maildir,
            api_url: format!("http://127.0.0.1:{api_port}"),
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            twilio_url: None,
            smtp_port,
            api_port,
            jobs_file,
            smtp,
            children: Vec::new(),
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
            .env(
                "HERALD_REDIS__KEY_PREFIX",
                format!("herald-test:{}:", self.id),
            )
            .env("HERALD_AUTH__JWT_SECRET", format!("e2e-secret-{}", self.id))
            // real SMTP needs a key for the secrets in e-mails (any 32 bytes, base64)
            .env(
                "HERALD_SECRETS__ENCRYPTION_KEY",
                "ZTJlLWtleS1lMmUta2V5LWUyZS1rZXktZTJlLWtleSE=",
            )
            .env("HERALD_API__LISTEN", format!("127.0.0.1:{}", self.api_port))
            .env("HERALD_EMAIL__SMTP_HOST", "127.0.0.1")
            .env("HERALD_EMAIL__SMTP_PORT", self.smtp_port.to_string())
            .env("HERALD_EMAIL__SMTP_TLS", "none")
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
        sqlx::query_scalar("insert into accounts (name) values ('e2e') returning id")
            .fetch_one(&self.db)
            .await
            .expect("account")
    }

    /// Plans `count` e-mails due now to `local_prefix-N@example.com`.
    pub async fn plan_emails(&self, account: Uuid, local_prefix: &str, count: usize) -> Vec<Uuid> {
        let mut ids = Vec::new();
        let mut conn = self.db.acquire().await.expect("conn");
        for n in 0..count {
            let email = herald_shared::effects::EmailPayload {
                to: format!("{local_prefix}-{n}@example.com"),
                subject: format!("message {n}"),
                text: "hello".to_owned(),
                sealed_secret: None,
            };
            ids.push(
                herald_shared::db::outbound_messages::plan_email(
                    &mut conn,
                    account,
                    herald_shared::effects::MessageSource::AuthEmail,
                    "email",
                    format!("{local_prefix}-{n}"),
                    &email,
                )
                .await
                .expect("plan")
                .expect("new"),
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

    /// Message-ID → number of copies in the Maildir.
    pub fn delivered(&self) -> HashMap<Uuid, usize> {
        let mut copies = HashMap::new();
        for folder in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(folder)) else {
                continue;
            };
            for entry in entries.flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let id = text
                    .lines()
                    .find_map(|line| {
                        line.strip_prefix("Message-ID: <")
                            .or_else(|| line.strip_prefix("Message-Id: <"))
                    })
                    .and_then(|rest| rest.split('@').next())
                    .and_then(|id| id.parse::<Uuid>().ok());
                if let Some(id) = id {
                    *copies.entry(id).or_insert(0) += 1;
                }
            }
        }
        copies
    }

    /// The text of the e-mail delivered to `to` (the newest one).
    pub fn mail_to(&self, to: &str) -> Option<String> {
        let mut found: Vec<(std::time::SystemTime, String)> = Vec::new();
        for folder in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(folder)) else {
                continue;
            };
            for entry in entries.flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                if text
                    .lines()
                    .any(|line| line.eq_ignore_ascii_case(&format!("To: {to}")))
                {
                    let modified = entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(std::time::UNIX_EPOCH);
                    found.push((modified, text));
                }
            }
        }
        found.sort();
        found.pop().map(|(_, text)| text)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.smtp.kill();
        let _ = self.smtp.wait();
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

async fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "port {port} never opened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_ready(url: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the process behind {url} exited early: {status}");
        }
        if let Ok(response) = reqwest::get(url).await
            && response.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls `check` every 25 ms until it holds, failing after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
