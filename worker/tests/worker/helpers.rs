//! The harness of the worker suite: one or more in-process worker replicas running
//! `herald_worker::run` on a test's own database and Redis prefix, with the SMTP stand-in,
//! fixtures, waits and pipeline checks of `herald-testing`; and helpers to read rows back
//! and look into Redis. The replicas live here, not in `herald-testing`, because they need
//! `herald-worker` (see that crate's doc).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use apalis_redis::Config as RedisQueueConfig;
use chrono::{DateTime, Utc};
use herald_shared::effects::EffectKind;
use herald_shared::jobs_config::JobsConfig;
use herald_testing::env::TestEnv;
use herald_testing::fixtures::Fixtures;
pub use herald_testing::fixtures::{DeliveryFixture, PlannedMessage};
pub use herald_testing::smtp::SmtpStandin;
use herald_worker::WorkerContext;
use redis::aio::ConnectionManager;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use herald_testing::wait::{PATIENCE, wait_for, wait_until};

/// How the test's replicas send e-mail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mail {
    /// No SMTP host: effects end `sandboxed`.
    Sandbox,
    /// The SMTP stand-in, with `slow-` recipients held this long in DATA.
    Smtp { slow_seconds: f64 },
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

/// A test's database, Redis prefix, SMTP stand-in and worker replicas. The replicas are
/// declared first, so they are stopped before the database is dropped.
pub struct TestWorker {
    pub replicas: Vec<Replica>,
    pub smtp: Option<SmtpStandin>,
    pub jobs: JobsConfig,
    pub env: TestEnv,
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
        let account_id = herald_testing::fixtures::create_account(&env.db, "t").await;
        let mut test = Self {
            replicas: Vec::new(),
            smtp,
            jobs,
            env,
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

    /// Fixtures of the test's account, planned on the test's queues.
    pub fn fixtures(&self) -> Fixtures<'_> {
        Fixtures {
            db: self.db(),
            account_id: self.account_id,
            jobs: &self.jobs,
        }
    }

    /// Plans one e-mail to `to`, due at `due_at`.
    pub async fn plan_email(&self, to: &str, due_at: DateTime<Utc>) -> Uuid {
        self.fixtures().plan_email(to, due_at).await
    }

    /// Plans `count` e-mails in one transaction; `to(i)` names the recipient of the i-th.
    pub async fn plan_emails(
        &self,
        count: usize,
        to: impl Fn(usize) -> String,
        due_at: DateTime<Utc>,
    ) -> Vec<Uuid> {
        self.fixtures().plan_emails(count, to, due_at).await
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

    /// Waits until row `id` is in `state` and returns it (each state it passes through is
    /// logged, shown when the test fails).
    pub async fn wait_for_state(&self, id: Uuid, state: &str) -> Row {
        let last = RefCell::new(String::new());
        let last = &last;
        wait_for(
            &format!("effect {id} is `{state}`"),
            PATIENCE,
            || async move {
                let row = self.row(id).await;
                if *last.borrow() != row.state {
                    eprintln!("effect {id} is `{}`", row.state);
                    last.replace(row.state.clone());
                }
                (row.state == state).then_some(row)
            },
        )
        .await
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

    /// Waits until every row is in `state` (the counts per state are logged as they change,
    /// shown when the test fails).
    pub async fn wait_all_in(&self, state: &str, expected: i64) {
        let last = RefCell::new(BTreeMap::new());
        let last = &last;
        wait_until(
            &format!("all {expected} rows are `{state}`"),
            PATIENCE,
            || async move {
                let states = self.states().await;
                let done = states.get(state) == Some(&expected) && states.len() == 1;
                if *last.borrow() != states {
                    eprintln!("effects by state: {states:?}");
                    last.replace(states);
                }
                done
            },
        )
        .await;
    }

    /// Waits until the pipeline is idle: nothing due, queued or being sent, nothing waiting
    /// or in flight in Redis. Then what has not happened yet will not happen by itself.
    pub async fn wait_for_idle(&self) {
        herald_testing::pipeline::wait_for_idle(
            self.db(),
            &self.redis,
            &self.env.config.redis.key_prefix,
        )
        .await;
    }

    /// Replica name → tasks it ran, for each replica of this test.
    pub async fn tasks_run_by_replica(&self) -> BTreeMap<String, usize> {
        let names: Vec<&str> = self
            .replicas
            .iter()
            .map(|replica| replica.ctx.replica.as_str())
            .collect();
        herald_testing::pipeline::tasks_run_by_replica(
            &self.redis,
            &self.env.config.redis.key_prefix,
            &names,
        )
        .await
    }

    /// Whether every replica ran a task since `before` (a [`Self::tasks_run_by_replica`]).
    pub async fn every_replica_ran_since(&self, before: &BTreeMap<String, usize>) -> bool {
        let ran = self.tasks_run_by_replica().await;
        let every = ran
            .iter()
            .all(|(replica, tasks)| *tasks > before.get(replica).copied().unwrap_or(0));
        if !every {
            eprintln!("one replica did all the work: {before:?} → {ran:?}");
        }
        every
    }

    /// Asserts that every replica of this test ran at least one task.
    pub async fn assert_every_replica_ran_tasks(&self) {
        let ran = self.tasks_run_by_replica().await;
        eprintln!("tasks run by replica: {ran:?}");
        assert!(
            ran.values().all(|tasks| *tasks > 0),
            "not every replica ran a task: {ran:?}"
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
        let pattern = format!("{}{pattern}", self.env.config.redis.key_prefix);
        herald_testing::pipeline::redis_keys(&self.redis, &pattern).await
    }

    /// Stops every replica and waits for each `run` to return without an error. The test's
    /// database and Redis keys go when the test ends (`herald_testing::env::Scratch`).
    pub async fn finish(mut self) {
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
        for replica in &self.replicas {
            replica.ctx.db.close().await;
        }
        self.env.db.close().await;
    }
}

/// Now plus `millis` milliseconds.
pub fn in_millis(millis: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::milliseconds(millis)
}

impl TestWorker {
    /// A group, a one-day course and a `scheduled` delivery of the course to the group.
    pub async fn create_delivery(&self) -> DeliveryFixture {
        self.fixtures().create_delivery().await
    }

    /// A subscribed student of the delivery's group on `channel` (`sms` or `whatsapp`).
    pub async fn add_student(
        &self,
        delivery: DeliveryFixture,
        phone: &str,
        channel: &'static str,
    ) -> Uuid {
        self.fixtures().add_student(delivery, phone, channel).await
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
        self.fixtures()
            .plan_message(delivery, student_id, seq, body, due_at)
            .await
    }
}
