//! `herald-bench-generation`: how much of an LLM provider's limits does campaign generation
//! use, and how many of its calls are refused? One campaign of `--prospects` prospects ×
//! `--steps` steps written by real `herald-worker` processes against an in-process
//! OpenAI-compatible stand-in (`standin.rs`) that answers in `--latency-ms` and enforces
//! `--requests-per-minute` and `--tokens-per-minute` as OpenAI does (429 beyond them).
//!
//! The run: a fresh database (migrated by `herald-api migrate`) and Redis prefix; the
//! account's provider on the stand-in with the same limits, a model, the people and the
//! campaign written with the `db` functions the API uses, and generation started as
//! `POST /campaigns/{id}/generate` starts it; then `--replicas` workers start and the clock
//! runs until the campaign is `ready`. The report: wall time, calls accepted and refused,
//! the requests and the tokens (as the provider counts them: prompt + `max_completion_tokens`)
//! per minute against the limits, the tokens the answers used, and every message's state.
//!
//! ```text
//! cargo build --release --bins && target/release/herald-bench-generation --prospects 1000
//! ```

mod standin;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use chrono::NaiveTime;
use clap::Parser;
use herald_bench::{Run, Scratch, Servers, Workers, logs_have_errors, sibling_binary, stop_all};
use herald_shared::db::campaigns::{self, CampaignFields, StepFields};
use herald_shared::db::people::NewPerson;
use herald_shared::db::written::Written;
use herald_shared::db::{campaign_messages, campaign_prospects, llm, people};
use herald_shared::effects::EffectKind;
use herald_shared::secrets::SecretBox;
use uuid::Uuid;

use crate::standin::LlmStandin;

const BENCH_APP: &str = "herald-bench-generation";
/// The run's `secrets.encryption_key`: the bench seals the provider's key with it.
const KEY: [u8; 32] = [42; 32];

#[derive(Parser, Debug)]
#[command(
    name = "herald-bench-generation",
    about = "Campaign generation benchmark"
)]
pub struct Args {
    #[arg(long, default_value_t = 10_000)]
    prospects: usize,
    #[arg(long, default_value_t = 3)]
    steps: usize,
    #[arg(long, default_value_t = 3_000)]
    requests_per_minute: u32,
    #[arg(long, default_value_t = 2_000_000)]
    tokens_per_minute: u32,
    #[arg(long, default_value_t = 200)]
    latency_ms: u64,
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// `llm.max_concurrent_per_account` of the workers: at 3,000 a minute and 200 ms a call,
    /// ten calls are in flight; the default 8 would hold the account below the limit.
    #[arg(long, default_value_t = 32)]
    max_concurrent_per_account: u32,
    #[command(flatten)]
    servers: Servers,
    /// Keep the database, the Redis keys and the logs.
    #[arg(long)]
    keep: bool,
}

struct Bench {
    scratch: Scratch,
    standin: LlmStandin,
    base_url: String,
    workers: Workers,
}

impl Bench {
    async fn create(args: &Args) -> anyhow::Result<Self> {
        if args.prospects == 0 || args.steps == 0 || args.replicas == 0 {
            bail!("--prospects, --steps and --replicas must be at least 1");
        }
        let scratch = Scratch::create(
            BENCH_APP,
            "herald_bench_g_",
            &args.servers,
            EffectKind::Generation,
        )
        .await?;
        let standin = LlmStandin::new(
            Duration::from_millis(args.latency_ms),
            u64::from(args.requests_per_minute),
            u64::from(args.tokens_per_minute),
        );
        Ok(Self {
            workers: Workers::new(&scratch.dir),
            scratch,
            standin,
            base_url: String::new(),
        })
    }

    /// The account, provider, model, people and campaign; generation started. The campaign id.
    async fn populate(&self, args: &Args) -> anyhow::Result<Uuid> {
        let db = self.scratch.pool()?;
        let account: Uuid =
            sqlx::query_scalar("insert into accounts (name) values ('bench') returning id")
                .fetch_one(db)
                .await?;
        let mut tx = db.begin().await?;
        let provider = llm::ProviderFields {
            name: "stand-in".to_owned(),
            base_url: self.base_url.clone(),
            sealed_api_key: Some(SecretBox::new(&KEY).seal("sk-bench")?),
            requests_per_minute: i32::try_from(args.requests_per_minute)?,
            tokens_per_minute: i32::try_from(args.tokens_per_minute)?,
        };
        let Written::Done(provider) = llm::insert_provider(&mut *tx, account, &provider).await?
        else {
            bail!("the provider was refused");
        };
        let model = llm::ModelFields {
            provider_id: provider.id,
            model: "gpt-bench".to_owned(),
            input_microusd_per_mtok: 150_000,
            output_microusd_per_mtok: 600_000,
        };
        let Written::Done(model) = llm::insert_model(&mut *tx, account, &model).await? else {
            bail!("the model was refused");
        };
        let mut person_ids = Vec::with_capacity(args.prospects);
        for index in 0..args.prospects {
            let person = NewPerson {
                email: format!("p{index}@example.com"),
                first_name: format!("P{index}"),
                company: "Acme".to_owned(),
                ..NewPerson::default()
            };
            person_ids.push(people::insert_person(&mut *tx, account, &person).await?.id);
        }
        let steps = (1..=args.steps)
            .map(|position| StepFields {
                delay_days: if position == 1 { 0 } else { 3 },
                model_id: model.id,
                prompt: if position == 1 {
                    "Introduce Acme to {{ first_name }} at {{ company }} in three sentences."
                        .to_owned()
                } else {
                    format!(
                        "Follow up on \"{{{{ step{}.subject }}}}\" briefly.",
                        position - 1
                    )
                },
            })
            .collect();
        let fields = CampaignFields {
            name: "bench".to_owned(),
            default_timezone: "Europe/Berlin".to_owned(),
            window_days: vec![1, 2, 3, 4, 5],
            window_start: NaiveTime::from_hms_opt(9, 0, 0).context("time")?,
            window_end: NaiveTime::from_hms_opt(17, 0, 0).context("time")?,
            daily_cap: 100_000,
            new_prospects_per_day: 100_000,
            max_cost_microusd: None,
            sender_ids: Vec::new(),
            steps,
        };
        let campaign = campaigns::insert(&mut tx, account, &fields)
            .await?
            .map_err(|refusal| anyhow::anyhow!("the campaign was refused: {refusal:?}"))?;
        for chunk in person_ids.chunks(10_000) {
            campaign_prospects::add(&mut tx, account, campaign, chunk).await?;
        }
        let queue = &self.scratch.job_settings()?.queue;
        campaign_messages::create_and_plan(&mut tx, account, campaign, queue).await?;
        campaigns::set_state(&mut tx, campaign, "generating").await?;
        tx.commit().await?;
        sqlx::query("analyze").execute(db).await?;
        Ok(campaign)
    }

    fn command(&self, name: &str, args: &Args) -> anyhow::Result<Command> {
        let mut command = self.scratch.command(&sibling_binary(name)?);
        command
            .env(
                "HERALD_SECRETS__ENCRYPTION_KEY",
                base64::engine::general_purpose::STANDARD.encode(KEY),
            )
            .env(
                "HERALD_LLM__MAX_CONCURRENT_PER_ACCOUNT",
                args.max_concurrent_per_account.to_string(),
            );
        Ok(command)
    }
}

impl Run for Bench {
    type Args = Args;

    async fn prepare(&mut self, args: &Args) -> anyhow::Result<()> {
        self.scratch.write_jobs(None, None)?;
        self.base_url = self.standin.start().await?;
        let herald_api = self.command("herald-api", args)?;
        self.scratch.migrate(herald_api).await
    }

    async fn measure(&mut self, args: &Args) -> anyhow::Result<String> {
        let campaign = self.populate(args).await?;
        let started = Instant::now();
        let this = &*self;
        let mut workers = Workers::new(&this.scratch.dir);
        workers
            .start(args.replicas, "start herald-worker", || {
                this.command("herald-worker", args)
            })
            .await?;
        self.workers = workers;
        let db = self.scratch.pool()?;
        let deadline = started + Duration::from_secs(3 * 3600);
        loop {
            let state: String = sqlx::query_scalar("select state from campaigns where id = $1")
                .bind(campaign)
                .fetch_one(db)
                .await?;
            if state == "ready" {
                break;
            }
            if Instant::now() > deadline {
                bail!("the campaign was not ready after 3 hours");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let wall = started.elapsed();
        let states: Vec<(String, i64)> = sqlx::query_as(
            "select state, count(*) from campaign_messages where campaign_id = $1 group by state
             order by state",
        )
        .bind(campaign)
        .fetch_all(db)
        .await?;
        let tally = self.standin.tally();
        let minutes = (tally.span.as_secs_f64() / 60.0).max(f64::EPSILON);
        let per_minute = |count: u64| count as f64 / minutes;
        let requests_share =
            per_minute(tally.accepted) / f64::from(args.requests_per_minute) * 100.0;
        let tokens_share =
            per_minute(tally.counted_tokens) / f64::from(args.tokens_per_minute) * 100.0;
        let calls = (tally.accepted + tally.throttled).max(1);
        let refused = tally.throttled as f64 / calls as f64 * 100.0;
        let states = states
            .iter()
            .map(|(state, count)| format!("{count} {state}"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(format!(
            "| prospects × steps | replicas | wall time | calls accepted / refused (429) | requests per minute (of {}) | tokens counted per minute (of {}) | tokens used per minute | messages |\n\
             |---|---:|---:|---:|---:|---:|---:|---|\n\
             | {} × {} | {} | {:.1} s | {} / {} ({refused:.2} %) | {:.0} ({requests_share:.1} %) | {:.0} ({tokens_share:.1} %) | {:.0} | {states} |",
            args.requests_per_minute,
            args.tokens_per_minute,
            args.prospects,
            args.steps,
            args.replicas,
            wall.as_secs_f64(),
            tally.accepted,
            tally.throttled,
            per_minute(tally.accepted),
            per_minute(tally.counted_tokens),
            per_minute(tally.used_tokens),
        ))
    }

    fn logs_have_errors(&self) -> bool {
        logs_have_errors(&self.workers.logs())
    }

    async fn teardown(&mut self, keep: bool, keep_logs: bool) {
        stop_all(self.workers.children_mut(), "worker").await;
        self.scratch.remove(keep, keep_logs, "logs").await;
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    herald_bench::run::main(BENCH_APP, &args, args.keep, Bench::create(&args)).await;
}
