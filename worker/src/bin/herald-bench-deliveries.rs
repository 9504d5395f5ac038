//! `herald-bench-deliveries`: how long does herald-api take to schedule a course to a big
//! group, and how fast do real `herald-worker` processes send a day's messages through Twilio
//! when they all fall due at the same instant?
//!
//! One run, on a fresh PostgreSQL database (migrated by `herald-api migrate`) and Redis key
//! prefix, with the real `herald-api` and `herald-worker` binaries next to this one:
//!
//! 1. **Planning.** Sign up, create a `--days`-day course (no questions: one message a day)
//!    and a group, and import `--students` students spread over 50 IANA zones through the
//!    CSV import endpoint (`POST /api/v1/groups/{id}/students/import`, 10,000 rows a call).
//!    Then time `POST /api/v1/deliveries` (students × days messages planned in one request,
//!    each student's day 1 at 09:00 on their own clock the day after tomorrow), sampling
//!    herald-api's RSS every 5 ms. No worker runs during this part.
//! 2. **Sending.** Start `--replicas` workers against an in-process Twilio stand-in that
//!    answers every `Messages.json` request with 201 at once and counts requests per
//!    (To, Body). Create a second delivery to the same group, of a one-day course, with
//!    `timezone = "UTC"` so every student's message is due at the same instant a few seconds
//!    ahead. Wait until every message row is final; the figures come from the rows' own
//!    timestamps (`sending_at`, `finished_at`, `next_attempt_at`) and the stand-in's counts.
//!
//! The per-sender rate limit (`twilio.sms_per_second`, 1/s by default: one long code) is
//! raised to `--sms-per-second` for the sending part, as it would be for a Messaging Service
//! with a large number pool, so the measurement is Herald's own throughput rather than the
//! limiter's spacing. Everything is torn down afterwards unless `--keep`.
//!
//! ```text
//! cargo build --release --bins && target/release/herald-bench-deliveries --replicas 1
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Days, Utc};
use clap::Parser;
use herald_shared::effects::EffectKind;
use herald_shared::jobs_config::{DEFAULT_JOBS, JobsConfig};
use herald_worker::bench::{
    CpuUse, clock_ticks, cpu_ticks, delete_keys, drop_database, free_port, get_ok, mib, mib_list,
    redis_connection, rss_kib, stop,
};
use redis::aio::ConnectionManager;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool};
use uuid::Uuid;

/// `application_name` of the bench's own connections (left out of the CPU counts).
const BENCH_APP: &str = "herald-bench-deliveries";
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// herald-api's memory is sampled this often while it plans: the peak is short-lived.
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(5);
/// Samples between progress lines (10 s).
const PROGRESS_EVERY: u32 = 200;
/// Rows per CSV import request (the endpoint's limit).
const IMPORT_ROWS: usize = 10_000;
/// Area codes for the students' phones: `+1 <area> 555 <4 digits>`, 10,000 per code.
const AREAS: [u16; 10] = [201, 202, 212, 213, 305, 312, 415, 617, 646, 718];
/// A well-formed Twilio account SID and Messaging Service SID for the stand-in.
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const SERVICE_SID: &str = "MG0123456789abcdef0123456789abcdef";
/// Zones the planning part spreads students over: every offset from −11 to +14, with
/// and without daylight saving time, and the odd half and quarter hours.
const ZONES: [&str; 50] = [
    "Pacific/Pago_Pago",
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Vancouver",
    "America/Denver",
    "America/Phoenix",
    "America/Chicago",
    "America/Mexico_City",
    "America/New_York",
    "America/Toronto",
    "America/Bogota",
    "America/Lima",
    "America/Caracas",
    "America/Halifax",
    "America/Santiago",
    "America/St_Johns",
    "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
    "Atlantic/Azores",
    "Atlantic/Reykjavik",
    "Europe/London",
    "Europe/Lisbon",
    "Africa/Lagos",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Madrid",
    "Africa/Johannesburg",
    "Africa/Cairo",
    "Europe/Athens",
    "Europe/Helsinki",
    "Europe/Istanbul",
    "Europe/Moscow",
    "Africa/Nairobi",
    "Asia/Tehran",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Jakarta",
    "Asia/Shanghai",
    "Asia/Singapore",
    "Australia/Perth",
    "Asia/Tokyo",
    "Australia/Adelaide",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Pacific/Kiritimati",
];

#[derive(Parser, Debug)]
#[command(
    name = "herald-bench-deliveries",
    about = "Delivery planning and SMS sending benchmark for herald-api and herald-worker"
)]
struct Args {
    /// Students in the group (at most 100,000).
    #[arg(long, default_value_t = 10_000)]
    students: usize,
    /// Days of the planned course (part 1); the sending part uses a one-day course.
    #[arg(long, default_value_t = 10)]
    days: u32,
    /// herald-worker processes to run for the sending part.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// A PostgreSQL URL allowed to create and drop databases.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_database_url: String,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Seconds from creating the sending delivery to its start (the start has whole seconds;
    /// the workers must not see half a plan).
    #[arg(long, default_value_t = 5)]
    lead_secs: u64,
    /// `twilio.sms_per_second` for the workers: the per-sender limit, raised as for a
    /// Messaging Service with a large pool.
    #[arg(long, default_value_t = 100_000)]
    sms_per_second: u32,
    /// Override jobs.toml `concurrency` of the message kind (per replica).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Override jobs.toml `window` of the message kind (ids in Redis, all replicas).
    #[arg(long)]
    window: Option<u32>,
    /// Override `database.max_connections` of the workers (per replica).
    #[arg(long)]
    db_max_connections: Option<u32>,
    /// Give up waiting for the messages after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Keep the database, the Redis keys and the logs.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("herald-bench-deliveries: {err:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(1..=AREAS.len() * 10_000).contains(&args.students) || args.replicas < 1 || args.days < 1 {
        bail!("--students must be 1–100,000 and --replicas and --days at least 1");
    }
    let mut bench = Bench::create(&args).await?;
    // Whatever happens in the run, the processes are stopped and the scratch state removed.
    let outcome = bench.measure(&args).await;
    let keep_logs = args.keep || outcome.is_err() || bench.logs_have_errors();
    bench.teardown(args.keep, keep_logs).await;
    let report = outcome?;
    println!("{report}");
    Ok(())
}

/// What the Twilio stand-in has seen.
#[derive(Debug, Default)]
struct Seen {
    /// Requests per (To, Body): a count above one is a message sent twice.
    by_pair: HashMap<(String, String), u32>,
    requests: u64,
    /// Requests without `To` or `Body` (answered 400).
    malformed: u64,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

/// A Twilio Messages API that accepts everything at once.
#[derive(Clone, Default)]
struct Standin(Arc<Mutex<Seen>>);

impl Standin {
    /// Serves on 127.0.0.1 in this process; returns the base URL.
    async fn start(&self) -> anyhow::Result<String> {
        let router = axum::Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(create_message),
            )
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                eprintln!("Twilio stand-in failed: {err}");
            }
        });
        Ok(url)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A panic elsewhere cannot leave the counts half-written: keep counting.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `POST /2010-04-01/Accounts/{sid}/Messages.json`: 201 with a fresh `SM…` SID.
async fn create_message(
    State(standin): State<Standin>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = Utc::now();
    let mut seen = standin.lock();
    let (Some(to), Some(body)) = (form.get("To"), form.get("Body")) else {
        seen.malformed += 1;
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": 21604, "message": "A 'To' and a 'Body' are required", "status": 400})),
        )
            .into_response();
    };
    *seen.by_pair.entry((to.clone(), body.clone())).or_insert(0) += 1;
    seen.requests += 1;
    seen.first.get_or_insert(now);
    seen.last = Some(now);
    let sid = format!("SM{:032x}", seen.requests);
    drop(seen);
    (
        StatusCode::CREATED,
        axum::Json(json!({"sid": sid, "status": "queued"})),
    )
        .into_response()
}

/// A signed-in herald-api client.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// Sends `request` (with the access token once there is one) and returns the JSON body
    /// of a `want` answer; anything else is an error that shows the answer.
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        want: StatusCode,
        what: &str,
    ) -> anyhow::Result<Value> {
        let request = if self.token.is_empty() {
            request
        } else {
            request.bearer_auth(&self.token)
        };
        let response = request.send().await.with_context(|| what.to_owned())?;
        let status = response.status();
        let text = response.text().await.with_context(|| what.to_owned())?;
        if status.as_u16() != want.as_u16() {
            bail!("{what}: herald-api answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{what}: the answer is not JSON"))
    }

    async fn post(&self, path: &str, body: &Value, want: StatusCode) -> anyhow::Result<Value> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        self.call(request, want, &format!("POST {path}")).await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let request = self.http.get(format!("{}{path}", self.base));
        self.call(request, StatusCode::OK, &format!("GET {path}"))
            .await
    }

    async fn signup(&mut self) -> anyhow::Result<()> {
        let session = self
            .post(
                "/api/v1/auth/signup",
                &json!({"email": "bench@example.com", "password": "bench password", "name": "Bench"}),
                StatusCode::CREATED,
            )
            .await?;
        self.token = text_field(&session, "access_token")?;
        Ok(())
    }

    /// A course of `days` days, one message each (no questions); returns its id.
    async fn create_course(&self, name: &str, days: u32) -> anyhow::Result<String> {
        let days: Vec<Value> = (1..=days)
            .map(|day| json!({"text": format!("{name}, day {day}: today's lesson. Reply STOP to opt out.")}))
            .collect();
        let course = self
            .post(
                "/api/v1/courses",
                &json!({"name": name, "author": "herald-bench", "days": days}),
                StatusCode::CREATED,
            )
            .await?;
        text_field(&course, "id")
    }

    /// A group of `students` students over `ZONES`, imported from CSV; returns its id.
    async fn create_group(&self, students: usize) -> anyhow::Result<String> {
        let group = self
            .post(
                "/api/v1/groups",
                &json!({"name": "bench students"}),
                StatusCode::CREATED,
            )
            .await?;
        let id = text_field(&group, "id")?;
        let path = format!("/api/v1/groups/{id}/students/import");
        for from in (0..students).step_by(IMPORT_ROWS) {
            let to = (from + IMPORT_ROWS).min(students);
            let mut csv = String::from("name,phone,channel,timezone\n");
            for n in from..to {
                let area = AREAS[n / 10_000];
                let zone = ZONES[n % ZONES.len()];
                writeln!(csv, "Student {n},+1{area}555{:04},sms,{zone}", n % 10_000)?;
            }
            let request = self
                .http
                .post(format!("{}{path}", self.base))
                .header(reqwest::header::CONTENT_TYPE, "text/csv")
                .body(csv);
            let done = self
                .call(request, StatusCode::OK, &format!("POST {path}"))
                .await?;
            let created = done.get("created").and_then(Value::as_u64);
            if created != Some((to - from) as u64) {
                bail!("the import did not create every student: {done}");
            }
        }
        Ok(id)
    }

    /// Creates a delivery and checks it planned `messages` messages; returns its id.
    async fn create_delivery(&self, body: &Value, messages: usize) -> anyhow::Result<String> {
        let delivery = self
            .post("/api/v1/deliveries", body, StatusCode::CREATED)
            .await?;
        let count = delivery.get("message_count").and_then(Value::as_u64);
        if count != Some(messages as u64) {
            bail!("the delivery planned {count:?} messages, expected {messages}");
        }
        text_field(&delivery, "id")
    }
}

fn text_field(value: &Value, name: &str) -> anyhow::Result<String> {
    value
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no `{name}` in {value}"))
}

/// Part 1 as measured.
#[derive(Debug)]
struct Planning {
    messages: usize,
    elapsed: Duration,
    rss_before: u64,
    rss_peak: u64,
    rss_after: u64,
    /// Two seconds after the answer: what the allocator kept.
    rss_settled: u64,
    api_cpu: f64,
    postgres_cpu: f64,
}

/// What the sampler saw while the messages went out.
#[derive(Debug, Default)]
struct Peaks {
    window: i64,
    redis_depth: i64,
    rss_kib: Vec<u64>,
    samples: u64,
}

/// The sending delivery's messages as their rows recorded them.
#[derive(Debug, sqlx::FromRow)]
struct Drain {
    first_sending: Option<DateTime<Utc>>,
    last_finished: Option<DateTime<Utc>>,
    late_p50_ms: Option<f64>,
    late_p99_ms: Option<f64>,
    late_max_ms: Option<f64>,
    max_attempts: Option<i32>,
    retried: i64,
    /// Rows whose `next_attempt_at` moved off the planned instant (deferred or retried).
    moved: i64,
    provider_ids: i64,
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
    /// The message kind's queue (`effects.queue` and the apalis-redis key names).
    queue: String,
    standin: Standin,
    twilio_url: String,
    api: Option<Child>,
    api_port: u16,
    workers: Vec<Child>,
    pool: Option<PgPool>,
}

impl Bench {
    /// Creates the database, the scratch directory with the jobs file, and the stand-in,
    /// then migrates with `herald-api migrate`.
    async fn create(args: &Args) -> anyhow::Result<Self> {
        let id = Uuid::new_v4().simple().to_string();
        let db_name = format!("herald_bench_d_{id}");
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

        let scratch = std::env::temp_dir().join(format!("herald-bench-deliveries-{id}"));
        let queue = JobsConfig::parse(DEFAULT_JOBS)?
            .get(EffectKind::Message)
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
            standin: Standin::default(),
            twilio_url: String::new(),
            api: None,
            api_port: 0,
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
        std::fs::create_dir_all(&self.scratch)
            .with_context(|| format!("create {}", self.scratch.display()))?;
        let jobs =
            herald_worker::bench::jobs_toml(EffectKind::Message, args.concurrency, args.window)?;
        std::fs::write(&self.jobs_file, jobs)
            .with_context(|| format!("write {}", self.jobs_file.display()))?;
        self.twilio_url = self.standin.start().await?;
        let log = std::fs::File::create(self.scratch.join("migrate.log"))?;
        let status = self
            .command("herald-api", args)?
            .arg("migrate")
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .context("run herald-api migrate")?;
        if !status.success() {
            bail!(
                "herald-api migrate failed with {status}; see {}",
                self.scratch.join("migrate.log").display()
            );
        }
        // The application name tells the bench's own backends from the processes' ones when
        // their CPU time is counted.
        let options = PgConnectOptions::from_str(&self.database_url)?.application_name(BENCH_APP);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .context("connect to the bench database")?;
        self.pool = Some(pool);
        Ok(())
    }

    fn pool(&self) -> anyhow::Result<&PgPool> {
        self.pool.as_ref().context("no database pool")
    }

    /// A herald binary from next to this one, configured for the run through `HERALD_*`
    /// variables only (nothing from the caller's environment but `PATH`).
    fn command(&self, name: &str, args: &Args) -> anyhow::Result<Command> {
        let binary = std::env::current_exe()?.with_file_name(name);
        if !binary.exists() {
            bail!(
                "{} not found; build it with `cargo build --release --bins`",
                binary.display()
            );
        }
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
            // the run may outlast the default 15 minutes of one access token
            .env("HERALD_AUTH__ACCESS_TOKEN_TTL_SECS", "86400")
            .env("HERALD_JOBS", &self.jobs_file)
            .env("HERALD_TWILIO__BASE_URL", &self.twilio_url)
            .env("HERALD_TWILIO__ACCOUNT_SID", ACCOUNT_SID)
            .env("HERALD_TWILIO__AUTH_TOKEN", "bench-twilio-token")
            .env("HERALD_TWILIO__MESSAGING_SERVICE_SID", SERVICE_SID)
            .env(
                "HERALD_TWILIO__SMS_PER_SECOND",
                args.sms_per_second.to_string(),
            )
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        // No HERALD_EMAIL__SMTP_HOST: the signup's verification e-mail is sandboxed.
        Ok(command)
    }

    async fn measure(&mut self, args: &Args) -> anyhow::Result<String> {
        let pool = self.pool()?.clone();
        let mut redis = redis_connection(&self.redis_url).await?;
        self.start_api(args).await?;
        let setup = Instant::now();
        let mut api = Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()?,
            base: format!("http://127.0.0.1:{}", self.api_port),
            token: String::new(),
        };
        api.signup().await?;
        let course = api.create_course("Planning bench", args.days).await?;
        let one_day_course = api.create_course("Sending bench", 1).await?;
        let imported = Instant::now();
        let group = api.create_group(args.students).await?;
        let import_time = imported.elapsed();
        eprintln!(
            "setup: signed up, 2 courses, {} students imported in {:.2} s ({:.2} s in all)",
            args.students,
            import_time.as_secs_f64(),
            setup.elapsed().as_secs_f64()
        );

        let planning = self
            .plan_course(&api, &pool, &mut redis, &group, &course, args)
            .await?;
        eprintln!(
            "planned {} messages in {:.2} s",
            planning.messages,
            planning.elapsed.as_secs_f64()
        );
        let sending = self
            .send_first_day(&api, &pool, &mut redis, &group, &one_day_course, args)
            .await?;

        let mut out = String::new();
        writeln!(
            out,
            "### Planning: POST /api/v1/deliveries, {} students × {} days",
            args.students, args.days
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "| messages planned | request time | messages/s | herald-api RSS before / peak / after / 2 s later MiB | herald-api CPU s | PostgreSQL CPU s |"
        )?;
        writeln!(out, "|---:|---:|---:|---:|---:|---:|")?;
        writeln!(
            out,
            "| {} | {:.2} s | {:.0} | {} / {} / {} / {} | {:.2} | {:.2} |",
            planning.messages,
            planning.elapsed.as_secs_f64(),
            planning.messages as f64 / planning.elapsed.as_secs_f64(),
            mib(planning.rss_before),
            mib(planning.rss_peak),
            mib(planning.rss_after),
            mib(planning.rss_settled),
            planning.api_cpu,
            planning.postgres_cpu,
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "setup (not timed above): students imported through POST /api/v1/groups/{{id}}/students/import ({} rows a request, {} zones) in {:.2} s",
            IMPORT_ROWS,
            ZONES.len(),
            import_time.as_secs_f64()
        )?;
        writeln!(out)?;
        out.push_str(&sending);
        writeln!(out)?;
        writeln!(
            out,
            "targets: planning ≤ 5 s: {}",
            verdict(planning.elapsed.as_secs_f64() <= 5.0)
        )?;
        Ok(out)
    }

    /// Starts `herald-api serve` and waits until `/readyz` answers 200.
    async fn start_api(&mut self, args: &Args) -> anyhow::Result<()> {
        self.api_port = free_port()?;
        let log = std::fs::File::create(self.scratch.join("api.log"))?;
        let child = self
            .command("herald-api", args)?
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
                    self.scratch.join("api.log").display()
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

    fn api_pid(&self) -> anyhow::Result<u32> {
        self.api
            .as_ref()
            .map(Child::id)
            .context("herald-api is not running")
    }

    /// Part 1: one delivery of the `days`-day course to the whole group, timed, with
    /// herald-api's memory sampled throughout.
    async fn plan_course(
        &self,
        api: &Api,
        pool: &PgPool,
        redis: &mut ConnectionManager,
        group: &str,
        course: &str,
        args: &Args,
    ) -> anyhow::Result<Planning> {
        let api_pid = self.api_pid()?;
        // 09:00 the day after tomorrow (UTC date) is in the future on every clock, up to +14.
        let start = Utc::now()
            .date_naive()
            .checked_add_days(Days::new(2))
            .and_then(|day| day.and_hms_opt(9, 0, 0))
            .context("no start date")?;
        let messages = args.students * args.days as usize;
        let rss_before = rss_kib(api_pid)?;
        let cpu_before = CpuUse::now(pool, redis, &[api_pid], BENCH_APP).await?;
        let peak = Arc::new(AtomicU64::new(rss_before));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn({
            let (peak, done) = (peak.clone(), done.clone());
            async move {
                while !done.load(Ordering::Relaxed) {
                    if let Ok(kib) = rss_kib(api_pid) {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    tokio::time::sleep(RSS_SAMPLE_EVERY).await;
                }
            }
        });
        let started = Instant::now();
        let created = api
            .create_delivery(
                &json!({"group_id": group, "course_id": course,
                        "start_at": start.format("%Y-%m-%d %H:%M:%S").to_string()}),
                messages,
            )
            .await;
        let elapsed = started.elapsed();
        done.store(true, Ordering::Relaxed);
        sampler.await?;
        let rss_after = rss_kib(api_pid)?;
        let cpu = CpuUse::now(pool, redis, &[api_pid], BENCH_APP)
            .await?
            .since(&cpu_before);
        let delivery = created?;
        let rows: i64 = sqlx::query_scalar(
            "select count(*) from delivery_messages m join effects e on e.id = m.effect_id
             where m.delivery_id = $1::uuid and e.state = 'planned'",
        )
        .bind(&delivery)
        .fetch_one(pool)
        .await?;
        if rows != messages as i64 {
            bail!("{rows} planned rows in the database, expected {messages}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(Planning {
            messages,
            elapsed,
            rss_before,
            rss_peak: peak.load(Ordering::Relaxed).max(rss_after),
            rss_after,
            rss_settled: rss_kib(api_pid)?,
            api_cpu: cpu.processes,
            postgres_cpu: cpu.postgres,
        })
    }

    /// Part 2: the workers send a one-day course to the whole group, every message due at
    /// one instant; returns the report section.
    async fn send_first_day(
        &mut self,
        api: &Api,
        pool: &PgPool,
        redis: &mut ConnectionManager,
        group: &str,
        course: &str,
        args: &Args,
    ) -> anyhow::Result<String> {
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
        let api_pid = self.api_pid()?;
        let own_pid = std::process::id();
        let cpu_before = CpuUse::now(pool, redis, &pids, BENCH_APP).await?;
        let others_before = (cpu_ticks(api_pid), cpu_ticks(own_pid));

        // A whole second `lead_secs` ahead, read in UTC: the same instant for everyone.
        let due = DateTime::from_timestamp(Utc::now().timestamp() + 1 + args.lead_secs as i64, 0)
            .context("no start instant")?;
        let created = Instant::now();
        let delivery = api
            .create_delivery(
                &json!({"group_id": group, "course_id": course, "timezone": "UTC",
                        "start_at": due.format("%Y-%m-%d %H:%M:%S").to_string()}),
                args.students,
            )
            .await?;
        let slack = (due - Utc::now()).num_milliseconds();
        eprintln!(
            "sending delivery of {} messages created in {:.2} s; due {slack} ms later",
            args.students,
            created.elapsed().as_secs_f64()
        );
        if slack < 0 {
            eprintln!(
                "warning: creating the delivery ended after its start; raise --lead-secs for a clean measurement"
            );
        }

        let peaks = self
            .sample_until_sent(pool, redis, &delivery, due, args)
            .await?;
        let wall = created.elapsed();
        let cpu = CpuUse::now(pool, redis, &pids, BENCH_APP)
            .await?
            .since(&cpu_before);
        let ticks = clock_ticks();
        let others_secs = |before: Option<u64>, pid: u32| {
            before
                .zip(cpu_ticks(pid))
                .map_or(f64::NAN, |(b, a)| a.saturating_sub(b) as f64 / ticks)
        };
        let api_cpu = others_secs(others_before.0, api_pid);
        let own_cpu = others_secs(others_before.1, own_pid);

        let drain: Drain = sqlx::query_as(
            "select min(sending_at) as first_sending,
                    max(finished_at) as last_finished,
                    percentile_cont(0.5) within group (order by late_ms) as late_p50_ms,
                    percentile_cont(0.99) within group (order by late_ms) as late_p99_ms,
                    max(late_ms) as late_max_ms,
                    max(attempts) as max_attempts,
                    count(*) filter (where attempts > 1) as retried,
                    count(*) filter (where next_attempt_at <> due_at) as moved,
                    count(distinct provider_id) as provider_ids
             from (select e.*,
                          (extract(epoch from e.sending_at - e.next_attempt_at) * 1000)::float8
                              as late_ms
                   from delivery_messages m join effects e on e.id = m.effect_id
                   where m.delivery_id = $1::uuid) e",
        )
        .bind(&delivery)
        .fetch_one(pool)
        .await?;
        let states: Vec<(String, i64)> = sqlx::query_as(
            "select e.state, count(*) from delivery_messages m join effects e on e.id = m.effect_id
             where m.delivery_id = $1::uuid group by e.state order by e.state",
        )
        .bind(&delivery)
        .fetch_all(pool)
        .await?;
        let status = api
            .get(&format!("/api/v1/deliveries/{delivery}"))
            .await?
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let (Some(first), Some(last)) = (drain.first_sending, drain.last_finished) else {
            bail!(
                "no message was started or finished; see the logs in {}",
                self.scratch.display()
            );
        };
        let (requests, distinct, duplicates, malformed, provider_span) = {
            let seen = self.standin.lock();
            let duplicates: u64 = seen
                .by_pair
                .values()
                .map(|count| u64::from(count.saturating_sub(1)))
                .sum();
            let span = seen
                .first
                .zip(seen.last)
                .map_or(f64::NAN, |(a, b)| seconds(b - a));
            (
                seen.requests,
                seen.by_pair.len(),
                duplicates,
                seen.malformed,
                span,
            )
        };

        let n = args.students as f64;
        let sent = states
            .iter()
            .find(|(state, _)| state == "sent")
            .map_or(0, |(_, count)| *count);
        let per_sec = n / seconds(last - first);
        let jobs = JobsConfig::parse(&std::fs::read_to_string(&self.jobs_file)?)?;
        let message = jobs.get(EffectKind::Message);
        let p99 = drain.late_p99_ms.unwrap_or(f64::NAN);

        let mut out = String::new();
        writeln!(
            out,
            "### Sending: {} first-day messages due at one instant, Twilio stand-in",
            args.students
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "| replicas | messages | messages/s (first start → last finish) | messages/s (due → last finish) | lateness p50 / p99 / max ms | duplicates | rows `sent` | idle / peak worker RSS MiB | max window (queued rows) | max Redis depth |"
        )?;
        writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.0} / {:.0} / {:.0} | {} | {} | {} / {} | {} | {} |",
            args.replicas,
            args.students,
            per_sec,
            n / seconds(last - due),
            drain.late_p50_ms.unwrap_or(f64::NAN),
            p99,
            drain.late_max_ms.unwrap_or(f64::NAN),
            duplicates,
            sent,
            mib_list(&idle_rss),
            mib_list(&peaks.rss_kib),
            peaks.window,
            peaks.redis_depth,
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "settings: twilio.sms_per_second raised to {} (one Messaging Service sender; the default is 1/s, one long code); message concurrency {} per replica, window {}, worker db max_connections {}",
            args.sms_per_second,
            message.concurrency,
            message.window,
            args.db_max_connections
                .map_or("10 (default)".to_owned(), |c| c.to_string()),
        )?;
        writeln!(
            out,
            "lateness = sending_at − next_attempt_at per message row; rows moved off their planned instant (deferred or retried): {}; max attempts {}; rows with attempts > 1: {}",
            drain.moved,
            drain.max_attempts.unwrap_or(0),
            drain.retried,
        )?;
        let states: Vec<String> = states.iter().map(|(s, c)| format!("{s} {c}")).collect();
        writeln!(
            out,
            "rows by state: {}; distinct provider SIDs recorded: {}; delivery status: {status}",
            states.join(", "),
            drain.provider_ids,
        )?;
        writeln!(
            out,
            "stand-in: {requests} requests, {distinct} distinct (To, Body), {duplicates} duplicates, {malformed} malformed, first → last request {provider_span:.2} s; wall time from creation to all final {:.2} s, {} samples",
            wall.as_secs_f64(),
            peaks.samples,
        )?;
        writeln!(
            out,
            "CPU from the delivery's creation to all final: workers {:.2} s, their and herald-api's PostgreSQL backends {:.2} s, Redis server (all clients) {:.2} s, herald-api {:.2} s, this process (Twilio stand-in, sampler) {:.2} s = {:.3} ms per message",
            cpu.processes,
            cpu.postgres,
            cpu.redis,
            api_cpu,
            own_cpu,
            (cpu.processes + cpu.postgres + cpu.redis + api_cpu + own_cpu) * 1000.0 / n,
        )?;
        writeln!(
            out,
            "targets: ≥ 2,000 messages/s{}: {}; lateness p99 ≤ 10 s: {}; no duplicates: {}; every row sent: {}",
            if args.replicas == 1 {
                ""
            } else {
                " (stated for one replica)"
            },
            verdict(per_sec >= 2_000.0),
            verdict(p99 <= 10_000.0),
            verdict(duplicates == 0 && requests == args.students as u64),
            verdict(sent == args.students as i64),
        )?;
        Ok(out)
    }

    /// Starts the replicas and waits until each answers `/healthz`; returns their ports.
    async fn start_workers(&mut self, args: &Args) -> anyhow::Result<Vec<u16>> {
        let mut ports = Vec::new();
        for i in 0..args.replicas {
            let port = free_port()?;
            let log = std::fs::File::create(self.scratch.join(format!("worker-{i}.log")))?;
            let mut command = self.command("herald-worker", args)?;
            command
                .arg("run")
                .env("HERALD_WORKER__LISTEN", format!("127.0.0.1:{port}"))
                .env("HERALD_WORKER__REPLICA_NAME", format!("bench-{i}"))
                .stdout(log.try_clone()?)
                .stderr(log);
            if let Some(connections) = args.db_max_connections {
                command.env("HERALD_DATABASE__MAX_CONNECTIONS", connections.to_string());
            }
            self.workers
                .push(command.spawn().context("start herald-worker")?);
            ports.push(port);
        }
        for (i, port) in ports.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = self.workers[i].try_wait()? {
                    bail!(
                        "worker {i} exited with {status}; see {}",
                        self.scratch.join(format!("worker-{i}.log")).display()
                    );
                }
                if get_ok(*port, "/healthz").await {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("worker {i} not healthy on port {port} after 30 s");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(ports)
    }

    /// Samples every 50 ms until no message of the delivery is left to work on; keeps the
    /// maxima.
    async fn sample_until_sent(
        &mut self,
        pool: &PgPool,
        redis: &mut ConnectionManager,
        delivery: &str,
        due: DateTime<Utc>,
        args: &Args,
    ) -> anyhow::Result<Peaks> {
        // One dedicated connection: the sampler should not queue behind anything.
        let mut conn = pool.acquire().await?;
        let scheduled = format!("{}{}:scheduled", self.prefix, self.queue);
        let active = format!("{}{}:active", self.prefix, self.queue);
        let mut peaks = Peaks {
            rss_kib: vec![0; self.workers.len()],
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
                    bail!("worker {i} exited while sending with {status}");
                }
                peaks.rss_kib[i] = peaks.rss_kib[i].max(rss_kib(child.id())?);
            }
            // Not-yet-final rows can only be absent once nothing waits in the window, so the
            // costlier count runs only then (and now and then, for the progress line).
            let idle = queued == 0 && zcard + llen == 0 && Utc::now() > due;
            let progress = round.is_multiple_of(PROGRESS_EVERY);
            if idle || progress {
                let left: i64 = sqlx::query_scalar(
                    "select count(*) from delivery_messages m join effects e on e.id = m.effect_id
                     where m.delivery_id = $1::uuid
                       and e.state in ('planned', 'queued', 'sending', 'retrying')",
                )
                .bind(delivery)
                .fetch_one(&mut *conn)
                .await?;
                if left == 0 {
                    return Ok(peaks);
                }
                if progress {
                    eprintln!("  {left} messages left, {queued} queued");
                }
            }
            if Instant::now() > deadline {
                bail!("not all sent after {} s", args.timeout_secs);
            }
        }
    }

    fn logs_have_errors(&self) -> bool {
        let mut logs = vec![self.scratch.join("api.log")];
        logs.extend((0..self.workers.len()).map(|i| self.scratch.join(format!("worker-{i}.log"))));
        logs.iter().any(|log| {
            std::fs::read_to_string(log)
                .map(|text| text.contains("ERROR"))
                .unwrap_or(false)
        })
    }

    /// Stops the workers and herald-api, then removes the database, the Redis keys and the
    /// scratch files. Best effort: every step is attempted and failures are only reported.
    async fn teardown(&mut self, keep: bool, keep_logs: bool) {
        for child in self.workers.iter_mut().chain(self.api.as_mut()) {
            if let Err(err) = stop(child).await {
                eprintln!("warning: stopping process {}: {err:#}", child.id());
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
            eprintln!("logs kept in {}", self.scratch.display());
        } else if let Err(err) = std::fs::remove_dir_all(&self.scratch) {
            eprintln!("warning: removing {}: {err}", self.scratch.display());
        }
    }
}

fn seconds(span: chrono::Duration) -> f64 {
    span.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}
