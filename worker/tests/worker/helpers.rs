//! The harness of the worker suite: a fresh database and Redis prefix per test (from
//! `herald_shared::testing`), one or more in-process worker replicas running
//! `herald_worker::run`, the SMTP stand-in as a child process with its own Maildir, and
//! helpers to plan effects, read rows back, look into Redis and wait for conditions.
//!
//! Nothing here sleeps for a fixed time and then asserts: every wait polls a condition
//! with a generous deadline, so the suite is fast when the machine is fast and still
//! passes when it is loaded.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::TcpListener as StdTcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use apalis_redis::Config as RedisQueueConfig;
use chrono::{DateTime, Utc};
use herald_shared::db::deliveries;
use herald_shared::db::outbound_messages::{self, Batch, NewMessage};
use herald_shared::effects::{EffectKind, MessageSource};
use herald_shared::jobs_config::JobsConfig;
use herald_shared::testing::TestEnv;
use herald_worker::WorkerContext;
use redis::aio::ConnectionManager;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Longest any condition in this suite may take to come true.
pub const PATIENCE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

/// The workspace root: `scripts/` and `.standins/` are found from here.
pub const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Polls `check` every 20 ms until it yields a value; panics naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` every 20 ms until it is true; panics naming `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, timeout, || {
        let checked = check();
        async move { checked.await.then_some(()) }
    })
    .await;
}

/// How the test's replicas send e-mail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mail {
    /// No SMTP host: effects end `sandboxed`.
    Sandbox,
    /// The SMTP stand-in, with `slow-` recipients held this long in DATA.
    Smtp { slow_seconds: f64 },
}

/// The SMTP stand-in (`scripts/smtp_standin.py`, aiosmtpd) on a free port, writing to its
/// own Maildir. Killed, and its Maildir removed, on drop.
pub struct SmtpStandin {
    child: Child,
    pub port: u16,
    pub maildir: PathBuf,
}

impl SmtpStandin {
    pub async fn start(slow_seconds: f64) -> Self {
        let python = Path::new(WORKSPACE).join(".standins/smtp/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/standins.sh to install the SMTP stand-in",
            python.display()
        );
        let maildir =
            std::env::temp_dir().join(format!("herald-worker-test-{}", Uuid::new_v4().simple()));
        // The script makes the directory before asking `mailbox.Maildir` to create the
        // mailbox, which then skips `tmp/`, `new/` and `cur/` (it only creates a missing
        // mailbox): every delivery would fail. Make them here.
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        // A free port: bind port 0 and let it go. Another process (other suites pick ports
        // the same way) could take it in between; then our stand-in cannot bind, exits, and
        // we try another port. Only its own "listening" line proves the port is ours, so a
        // foreign server on the port is never mistaken for it.
        for _ in 0..3 {
            let port = StdTcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(&python)
                .current_dir(WORKSPACE)
                .arg("scripts/smtp_standin.py")
                .args(["--port", &port.to_string()])
                .arg("--maildir")
                .arg(&maildir)
                .args(["--slow-seconds", &slow_seconds.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start the SMTP stand-in");
            let stdout = child.stdout.take().unwrap();
            let (line_tx, line_rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = line_tx.send(line);
                }
            });
            let mut standin = Self {
                child,
                port,
                maildir: maildir.clone(),
            };
            let deadline = tokio::time::Instant::now() + PATIENCE;
            let mut announced = false;
            loop {
                announced |= line_rx.try_iter().any(|line| line.contains("listening on"));
                if announced
                    && tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .is_ok()
                {
                    return standin;
                }
                if let Some(status) = standin.child.try_wait().unwrap() {
                    eprintln!(
                        "the SMTP stand-in on port {port} exited with {status}; trying another port"
                    );
                    // keep the Maildir for the next try
                    standin.maildir = PathBuf::new();
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the SMTP stand-in never listened on port {port}"
                );
                tokio::time::sleep(POLL).await;
            }
        }
        panic!("the SMTP stand-in could not start on any of three free ports");
    }

    /// Every message in the Maildir (`new/` and `cur/`).
    pub fn messages(&self) -> Vec<Message> {
        let mut messages = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for entry in entries {
                let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
                messages.push(Message::parse(&text));
            }
        }
        messages
    }

    /// The effect ids named by the Message-IDs in the Maildir, in file order.
    pub fn effect_ids(&self) -> Vec<Uuid> {
        self.messages()
            .iter()
            .map(|message| message.effect_id().unwrap())
            .collect()
    }
}

impl Drop for SmtpStandin {
    fn drop(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            eprintln!(
                "the SMTP stand-in on port {} had exited early: {status}",
                self.port
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.maildir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.maildir);
        }
    }
}

/// The headers of one stored message (lower-cased names; folded lines joined).
#[derive(Debug, Clone)]
pub struct Message {
    pub headers: BTreeMap<String, String>,
}

impl Message {
    fn parse(text: &str) -> Self {
        let mut headers = BTreeMap::new();
        let mut current: Option<(String, String)> = None;
        for line in text.lines() {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = &mut current {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                continue;
            }
            if let Some((name, value)) = current.take() {
                headers.insert(name, value);
            }
            if let Some((name, value)) = line.split_once(':') {
                current = Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        if let Some((name, value)) = current {
            headers.insert(name, value);
        }
        Self { headers }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The effect id in `Message-ID: <effect_id@herald>`.
    pub fn effect_id(&self) -> Option<Uuid> {
        let id = self.header("message-id")?;
        let inner = id.strip_prefix('<')?.strip_suffix("@herald>")?;
        inner.parse().ok()
    }
}

/// One running worker replica: `herald_worker::run` in a task, stoppable.
pub struct Replica {
    pub ctx: WorkerContext,
    /// Where its /healthz, /readyz and /metrics answer.
    pub health: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Replica {
    /// Asks the replica to shut down; `join` waits for `run` to return.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for `run` to return (after `begin_shutdown`) and yields its result.
    pub async fn join(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let handle = self.handle.take().expect("replica already joined");
        tokio::time::timeout(timeout, handle)
            .await
            .expect("the worker did not return after shutdown")
            .expect("the worker task panicked")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }
}

/// Effect row columns the tests look at.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub state: String,
    pub attempts: i32,
    pub dispatches: i32,
    pub last_error: Option<String>,
    pub provider_id: Option<String>,
    pub due_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub queued_at: Option<DateTime<Utc>>,
    pub sending_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A test's database, Redis prefix, SMTP stand-in and worker replicas.
pub struct TestWorker {
    pub env: TestEnv,
    pub jobs: JobsConfig,
    pub smtp: Option<SmtpStandin>,
    pub replicas: Vec<Replica>,
    pub account_id: Uuid,
    /// For looking into the test's Redis keys.
    pub redis: ConnectionManager,
}

impl TestWorker {
    /// A sandbox-mode worker (no SMTP host) with `overrides` and changed job settings.
    pub async fn spawn(
        overrides: &[(&str, Value)],
        jobs: impl FnOnce(JobsConfig) -> JobsConfig,
    ) -> Self {
        Self::spawn_with(Mail::Sandbox, overrides, jobs, &["a"]).await
    }

    /// A worker sending through the SMTP stand-in (slow recipients held 1 s).
    pub async fn spawn_smtp(
        overrides: &[(&str, Value)],
        jobs: impl FnOnce(JobsConfig) -> JobsConfig,
    ) -> Self {
        Self::spawn_with(Mail::Smtp { slow_seconds: 1.0 }, overrides, jobs, &["a"]).await
    }

    /// Everything, with one replica per name in `replicas` (all on the same database and
    /// Redis prefix).
    pub async fn spawn_with(
        mail: Mail,
        overrides: &[(&str, Value)],
        jobs: impl FnOnce(JobsConfig) -> JobsConfig,
        replicas: &[&str],
    ) -> Self {
        let smtp = match mail {
            Mail::Sandbox => None,
            Mail::Smtp { slow_seconds } => Some(SmtpStandin::start(slow_seconds).await),
        };
        let mut settings: Vec<(&str, Value)> = vec![
            // Two pools per replica plus the test's own, and other suites on the same server:
            // stay well below PostgreSQL's default 100 connections.
            ("database.max_connections", Value::from(8)),
        ];
        match &smtp {
            Some(smtp) => settings.extend([
                ("email.smtp_host", Value::from("127.0.0.1")),
                ("email.smtp_port", Value::from(smtp.port)),
                ("email.smtp_tls", Value::from("none")),
            ]),
            None => settings.push(("email.smtp_host", Value::from(""))),
        }
        settings.extend(overrides.iter().cloned());
        let env = TestEnv::new(&settings)
            .await
            .expect("create the test database and config");
        // The worker's logs, shown by the test runner when a test fails (RUST_LOG filters).
        herald_shared::telemetry::init(&env.config.log);
        let jobs = jobs(JobsConfig::parse(herald_shared::jobs_config::DEFAULT_JOBS).unwrap());
        let redis = herald_shared::redis_conn::connect(&env.config.redis)
            .await
            .unwrap();
        let account_id =
            sqlx::query_scalar("insert into accounts (name) values ('t') returning id")
                .fetch_one(&env.db)
                .await
                .unwrap();
        let mut test = Self {
            env,
            jobs,
            smtp,
            replicas: Vec::new(),
            account_id,
            redis,
        };
        for name in replicas {
            test.start_replica(name).await;
        }
        test
    }

    /// Builds a context for replica `name` without running it.
    pub async fn context(&self, name: &str) -> WorkerContext {
        let mut config = self.env.config.clone();
        config.worker.replica_name = name.to_owned();
        herald_worker::build_context(config, self.jobs.clone())
            .await
            .expect("build the worker context")
    }

    /// Starts another replica named `name`; returns its index in `replicas`.
    pub async fn start_replica(&mut self, name: &str) -> usize {
        let ctx = self.context(name).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let health = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(herald_worker::run(ctx.clone(), listener, async move {
            let _ = stopped.await;
        }));
        self.replicas.push(Replica {
            ctx,
            health,
            stop: Some(stop),
            handle: Some(handle),
        });
        self.replicas.len() - 1
    }

    /// The first replica's context.
    pub fn ctx(&self) -> &WorkerContext {
        &self.replicas[0].ctx
    }

    /// The first replica's answer to GET `path` on its health server: status and JSON body
    /// (`Null` for a body that is not JSON).
    pub async fn health_get(&self, path: &str) -> (u16, Value) {
        let url = format!("http://{}{path}", self.replicas[0].health);
        let response = reqwest::get(&url).await.unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub fn db(&self) -> &PgPool {
        &self.env.db
    }

    pub fn smtp(&self) -> &SmtpStandin {
        self.smtp.as_ref().expect("this test has no SMTP stand-in")
    }

    /// Plans one e-mail to `to`, due at `due_at`.
    pub async fn plan_email(&self, to: &str, due_at: DateTime<Utc>) -> Uuid {
        self.plan_emails(1, |_| to.to_owned(), due_at).await[0]
    }

    /// Plans `count` e-mails in one transaction (so the dispatcher sees them all at once);
    /// `to(i)` names the recipient of the i-th.
    pub async fn plan_emails(
        &self,
        count: usize,
        to: impl Fn(usize) -> String,
        due_at: DateTime<Utc>,
    ) -> Vec<Uuid> {
        let queue = self.jobs.get(EffectKind::Email).queue.clone();
        let batch = Batch {
            account_id: self.account_id,
            source: MessageSource::AuthEmail,
            kind: EffectKind::Email,
            queue: &queue,
            revive_canceled: None,
        };
        let messages: Vec<NewMessage> = (0..count)
            .map(|i| NewMessage {
                key: format!("test:{}", Uuid::new_v4()),
                due_at,
                payload: serde_json::json!({}),
                channel: Some("email"),
                student_id: None,
                recipient: Some(to(i)),
                subject: Some(format!("test {i}")),
                body: format!("body of test e-mail {i}"),
            })
            .collect();
        let mut tx = self.db().begin().await.unwrap();
        let planned = outbound_messages::plan(&mut tx, &batch, &messages)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(planned.len(), count, "fresh keys always plan");
        let mut ids = vec![Uuid::nil(); count];
        for (id, index) in planned {
            ids[index] = id;
        }
        ids
    }

    pub async fn row(&self, id: Uuid) -> Row {
        sqlx::query_as(
            "select state, attempts, dispatches, last_error, provider_id, due_at,
                    next_attempt_at, queued_at, sending_at, finished_at
             from effects where id = $1",
        )
        .bind(id)
        .fetch_one(self.db())
        .await
        .unwrap()
    }

    pub async fn state(&self, id: Uuid) -> String {
        self.row(id).await.state
    }

    /// Waits until row `id` is in `state` and returns it.
    pub async fn wait_for_state(&self, id: Uuid, state: &str) -> Row {
        let mut last = String::new();
        let found = tokio::time::timeout(PATIENCE, async {
            loop {
                let row = self.row(id).await;
                if row.state == state {
                    return row;
                }
                last = row.state;
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("effect {id} never became `{state}` (still `{last}`)"))
    }

    /// How many rows are in each state.
    pub async fn states(&self) -> BTreeMap<String, i64> {
        sqlx::query_as::<_, (String, i64)>("select state, count(*) from effects group by state")
            .fetch_all(self.db())
            .await
            .unwrap()
            .into_iter()
            .collect()
    }

    pub async fn count_in(&self, state: &str) -> i64 {
        self.states().await.get(state).copied().unwrap_or(0)
    }

    /// Waits until every row is in `state`.
    pub async fn wait_all_in(&self, state: &str, expected: i64) {
        let mut last = BTreeMap::new();
        let done = tokio::time::timeout(PATIENCE, async {
            loop {
                let states = self.states().await;
                if states.get(state) == Some(&expected) && states.len() == 1 {
                    return;
                }
                last = states;
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        assert!(
            done.is_ok(),
            "not all {expected} rows became `{state}`; states: {last:?}"
        );
    }

    /// The apalis-redis settings (and so key names) of the e-mail queue.
    pub fn email_queue(&self) -> RedisQueueConfig {
        let settings = self.jobs.get(EffectKind::Email);
        herald_worker::queue::queue_config(self.ctx(), settings)
    }

    /// Tasks waiting in Redis for the e-mail queue: scheduled plus active, read atomically
    /// (a fetch moves ids from one to the other; two separate reads could count some twice).
    pub async fn redis_waiting(&self) -> u64 {
        let queue = self.email_queue();
        let mut conn = self.redis.clone();
        let (scheduled, active): (u64, u64) = redis::pipe()
            .atomic()
            .zcard(queue.scheduled_jobs_set())
            .llen(queue.active_jobs_list())
            .query_async(&mut conn)
            .await
            .unwrap();
        scheduled + active
    }

    /// `SCARD` of a set / `HLEN` of a hash, by key.
    pub async fn scard(&self, key: &str) -> u64 {
        let mut conn = self.redis.clone();
        redis::cmd("SCARD")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    pub async fn hlen(&self, key: &str) -> u64 {
        let mut conn = self.redis.clone();
        redis::cmd("HLEN")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    /// Keys under the test's Redis prefix matching `pattern` (appended to the prefix).
    pub async fn redis_keys(&self, pattern: &str) -> Vec<String> {
        let mut conn = self.redis.clone();
        let pattern = format!("{}{pattern}", self.env.config.redis.key_prefix);
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .unwrap();
            keys.extend(batch);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }

    /// Stops every replica, waits for each `run` to return, then drops the test's database
    /// and Redis keys. Call at the end of a passing test; a failing one leaves them for
    /// inspection.
    pub async fn finish(mut self) {
        let asked = tokio::time::Instant::now();
        for replica in &mut self.replicas {
            replica.begin_shutdown();
        }
        for replica in &mut self.replicas {
            if replica.handle.is_some() {
                replica
                    .join(Duration::from_secs(30))
                    .await
                    .expect("the worker ended with an error");
            }
        }
        let took = asked.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "the worker took {took:?} to shut down"
        );
        for replica in &self.replicas {
            replica.ctx.db.close().await;
        }
        self.env.db.close().await;
        let admin = std::env::var("HERALD_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let admin = PgPool::connect(&admin).await.unwrap();
        sqlx::query(&format!(
            "drop database if exists {} with (force)",
            self.env.database_name
        ))
        .execute(&admin)
        .await
        .unwrap();
        admin.close().await;
        let keys = self.redis_keys("*").await;
        if !keys.is_empty() {
            let mut conn = self.redis.clone();
            let () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// Now plus `millis` milliseconds.
pub fn in_millis(millis: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::milliseconds(millis)
}

/// A `scheduled` course delivery to a fresh group, made directly in SQL (the worker suite
/// does not go through the API): the rows a `message` effect refers to.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryFixture {
    pub group_id: Uuid,
    pub delivery_id: Uuid,
}

/// One planned delivery message: its effect (and outbound message) id.
#[derive(Debug, Clone, Copy)]
pub struct PlannedMessage {
    pub effect_id: Uuid,
}

impl TestWorker {
    /// A group, a one-day course and a `scheduled` delivery of the course to the group.
    pub async fn create_delivery(&self) -> DeliveryFixture {
        let group_id: Uuid = sqlx::query_scalar(
            "insert into groups (account_id, name) values ($1, 'group') returning id",
        )
        .bind(self.account_id)
        .fetch_one(self.db())
        .await
        .unwrap();
        let course_id: Uuid = sqlx::query_scalar(
            "insert into courses (account_id, name, author, description)
             values ($1, 'course', 'author', 'description') returning id",
        )
        .bind(self.account_id)
        .fetch_one(self.db())
        .await
        .unwrap();
        let delivery_id: Uuid = sqlx::query_scalar(
            "insert into deliveries (account_id, group_id, course_id, start_local, timezone)
             values ($1, $2, $3, '2026-12-01 09:00', 'UTC') returning id",
        )
        .bind(self.account_id)
        .bind(group_id)
        .bind(course_id)
        .fetch_one(self.db())
        .await
        .unwrap();
        DeliveryFixture {
            group_id,
            delivery_id,
        }
    }

    /// A subscribed student of the delivery's group on `channel` (`sms` or `whatsapp`).
    pub async fn add_student(&self, delivery: DeliveryFixture, phone: &str, channel: &str) -> Uuid {
        sqlx::query_scalar(
            "insert into students (group_id, name, phone, channel, timezone)
             values ($1, 'student', $2, $3, 'UTC') returning id",
        )
        .bind(delivery.group_id)
        .bind(phone)
        .bind(channel)
        .fetch_one(self.db())
        .await
        .unwrap()
    }

    /// Plans message `seq` of day 1 to `student`, due at `due_at`, with the planner the API
    /// uses (`deliveries::insert_messages`).
    pub async fn plan_message(
        &self,
        delivery: DeliveryFixture,
        student_id: Uuid,
        seq: i32,
        body: &str,
        due_at: DateTime<Utc>,
    ) -> PlannedMessage {
        let queue = self.jobs.get(EffectKind::Message).queue.clone();
        let message = deliveries::NewMessage {
            student_id,
            day: 1,
            seq,
            question_id: None,
            body: body.to_owned(),
            at: due_at,
        };
        let mut tx = self.db().begin().await.unwrap();
        deliveries::insert_messages(
            &mut tx,
            self.account_id,
            delivery.delivery_id,
            &queue,
            std::slice::from_ref(&message),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let effect_id: Uuid = sqlx::query_scalar(
            "select m.effect_id from delivery_messages m
             join outbound_messages o on o.effect_id = m.effect_id
             where m.delivery_id = $1 and o.student_id = $2 and m.day = 1 and m.seq = $3",
        )
        .bind(delivery.delivery_id)
        .bind(student_id)
        .bind(seq)
        .fetch_one(self.db())
        .await
        .unwrap();
        PlannedMessage { effect_id }
    }
}
