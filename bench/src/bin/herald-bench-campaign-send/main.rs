//! `herald-bench-campaign-send`: how fast does a launched campaign go out, and is any e-mail
//! sent twice? One campaign of `--prospects` prospects (one step), its senders' caps and gaps
//! raised out of the way (`--senders` SMTP senders, daily cap 1,000,000, no gap), launched as
//! `POST /campaigns/{id}/launch` launches it, then sent by real `herald-worker` processes to
//! an in-process SMTP server (`sink.rs`) that takes every e-mail at once.
//!
//! The report: the launch (plan + writes + commit, as one API request does it), the drain's
//! wall time from the first send started to the last recorded (the rows' own timestamps), the
//! e-mails per second, what the SMTP server received, and Message-IDs received more than once.
//!
//! ```text
//! cargo build --release --bins && target/release/herald-bench-campaign-send --prospects 30000
//! ```

mod sink;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use chrono::{DateTime, NaiveTime, Utc};
use clap::Parser;
use herald_bench::{Run, Scratch, Servers, Workers, logs_have_errors, sibling_binary, stop_all};
use herald_shared::campaign_launch;
use herald_shared::db::campaigns::{self, CampaignFields, StepFields};
use herald_shared::db::email_senders::{self, Secret, SenderFields, Transport};
use herald_shared::db::people::NewPerson;
use herald_shared::db::written::Written;
use herald_shared::db::{campaign_prospects, llm, people};
use herald_shared::effects::EffectKind;
use herald_shared::secrets::SecretBox;
use uuid::Uuid;

use crate::sink::SmtpSink;

const BENCH_APP: &str = "herald-bench-campaign-send";
/// The run's `secrets.encryption_key` (the unsubscribe links are signed with it).
const KEY: [u8; 32] = [7; 32];

#[derive(Parser, Debug)]
#[command(
    name = "herald-bench-campaign-send",
    about = "Campaign send throughput benchmark"
)]
pub struct Args {
    #[arg(long, default_value_t = 30_000)]
    prospects: usize,
    /// SMTP senders the campaign rotates over (each keeps its own pool of connections).
    #[arg(long, default_value_t = 20)]
    senders: usize,
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// `concurrency` of the campaign_email kind (per replica).
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// `window` of the campaign_email kind (ids in Redis, all replicas).
    #[arg(long, default_value_t = 4_000)]
    window: u32,
    #[command(flatten)]
    servers: Servers,
    /// Keep the database, the Redis keys and the logs.
    #[arg(long)]
    keep: bool,
}

struct Bench {
    scratch: Scratch,
    sink: SmtpSink,
    smtp_port: u16,
    workers: Workers,
}

impl Bench {
    async fn create(args: &Args) -> anyhow::Result<Self> {
        if args.prospects == 0 || args.senders == 0 || args.replicas == 0 {
            bail!("--prospects, --senders and --replicas must be at least 1");
        }
        let scratch = Scratch::create(
            BENCH_APP,
            "herald_bench_cs_",
            &args.servers,
            EffectKind::CampaignEmail,
        )
        .await?;
        Ok(Self {
            workers: Workers::new(&scratch.dir),
            scratch,
            sink: SmtpSink::default(),
            smtp_port: 0,
        })
    }

    /// The account, senders, people and a ready campaign (its e-mails written); its ids.
    async fn populate(&self, args: &Args) -> anyhow::Result<(Uuid, Uuid)> {
        let db = self.scratch.pool()?;
        let account: Uuid =
            sqlx::query_scalar("insert into accounts (name) values ('bench') returning id")
                .fetch_one(db)
                .await?;
        let mut tx = db.begin().await?;
        let mut sender_ids = Vec::with_capacity(args.senders);
        for index in 0..args.senders {
            let fields = SenderFields {
                from_name: format!("Sender {index}"),
                from_email: format!("s{index}@seller.example"),
                reply_to: None,
                transport: Transport::Smtp {
                    host: "127.0.0.1".to_owned(),
                    port: i32::from(self.smtp_port),
                    tls: "none".to_owned(),
                    username: None,
                },
                secret: Secret::Clear,
                daily_cap: 1_000_000,
                min_gap_secs: 0,
            };
            let Written::Done(sender) = email_senders::insert(&mut *tx, account, &fields).await?
            else {
                bail!("a sender was refused");
            };
            sender_ids.push(sender.id);
        }
        let provider = llm::ProviderFields {
            name: "unused".to_owned(),
            base_url: "https://llm.example/v1".to_owned(),
            sealed_api_key: Some(SecretBox::new(&KEY).seal("sk")?),
            requests_per_minute: 60,
            tokens_per_minute: 60_000,
        };
        let Written::Done(provider) = llm::insert_provider(&mut *tx, account, &provider).await?
        else {
            bail!("the provider was refused");
        };
        let model = llm::ModelFields {
            provider_id: provider.id,
            model: "unused".to_owned(),
            input_microusd_per_mtok: 0,
            output_microusd_per_mtok: 0,
        };
        let Written::Done(model) = llm::insert_model(&mut *tx, account, &model).await? else {
            bail!("the model was refused");
        };
        let mut person_ids = Vec::with_capacity(args.prospects);
        for index in 0..args.prospects {
            let person = NewPerson {
                email: format!("p{index}@example.com"),
                first_name: format!("P{index}"),
                ..NewPerson::default()
            };
            person_ids.push(people::insert_person(&mut *tx, account, &person).await?.id);
        }
        let fields = CampaignFields {
            name: "bench".to_owned(),
            default_timezone: "UTC".to_owned(),
            window_days: vec![1, 2, 3, 4, 5, 6, 7],
            window_start: NaiveTime::MIN,
            window_end: NaiveTime::from_hms_milli_opt(23, 59, 59, 999).context("time")?,
            daily_cap: 100_000,
            new_prospects_per_day: 100_000,
            max_cost_microusd: None,
            sender_ids,
            steps: vec![StepFields {
                delay_days: 0,
                model_id: model.id,
                prompt: "Write to {{ first_name }}.".to_owned(),
            }],
        };
        let campaign = campaigns::insert(&mut tx, account, &fields)
            .await?
            .map_err(|refusal| anyhow::anyhow!("the campaign was refused: {refusal:?}"))?;
        for chunk in person_ids.chunks(10_000) {
            campaign_prospects::add(&mut tx, account, campaign, chunk).await?;
        }
        sqlx::query(
            "insert into campaign_messages (account_id, campaign_id, person_id, position, state,
                                            subject, body, written_at)
             select $1, $2, p.id, 1, 'done', 'Hello ' || p.first_name,
                    'Hello ' || p.first_name || E',\n\nA few lines about Acme.\n\nAnn', now()
             from people p where p.account_id = $1",
        )
        .bind(account)
        .bind(campaign)
        .execute(&mut *tx)
        .await?;
        campaigns::set_state(&mut tx, campaign, "ready").await?;
        tx.commit().await?;
        sqlx::query("analyze").execute(db).await?;
        Ok((account, campaign))
    }

    /// Launches the campaign as the API does (one transaction); how long it took.
    async fn launch(&self, account: Uuid, campaign: Uuid) -> anyhow::Result<(Duration, usize)> {
        let db = self.scratch.pool()?;
        let started = Instant::now();
        let mut tx = db.begin().await?;
        campaigns::lock(&mut tx, account, campaign).await?;
        let found = campaigns::get(&mut tx, account, campaign)
            .await?
            .context("the campaign")?;
        let launched =
            campaign_launch::launch(&mut tx, account, &found, &self.scratch.queue, Utc::now())
                .await?
                .context("nothing to send")?;
        tx.commit().await?;
        Ok((started.elapsed(), launched.planned))
    }

    fn command(&self, name: &str) -> anyhow::Result<Command> {
        let mut command = self.scratch.command(&sibling_binary(name)?);
        command
            .env(
                "HERALD_SECRETS__ENCRYPTION_KEY",
                base64::engine::general_purpose::STANDARD.encode(KEY),
            )
            .env("HERALD_EMAIL__ALLOW_PRIVATE_SMTP_HOSTS", "true");
        Ok(command)
    }
}

impl Run for Bench {
    type Args = Args;

    async fn prepare(&mut self, args: &Args) -> anyhow::Result<()> {
        self.scratch
            .write_jobs(Some(args.concurrency), Some(args.window))?;
        self.smtp_port = self.sink.start().await?;
        let herald_api = self.command("herald-api")?;
        self.scratch.migrate(herald_api).await
    }

    async fn measure(&mut self, args: &Args) -> anyhow::Result<String> {
        let (account, campaign) = self.populate(args).await?;
        let (launch, planned) = self.launch(account, campaign).await?;
        let this = &*self;
        let mut workers = Workers::new(&this.scratch.dir);
        workers
            .start(args.replicas, "start herald-worker", || {
                this.command("herald-worker")
            })
            .await?;
        self.workers = workers;
        let db = self.scratch.pool()?;
        let deadline = Instant::now() + Duration::from_secs(3600);
        loop {
            let unsent: i64 = sqlx::query_scalar(
                "select count(*) from effects
                 where kind = 'campaign_email' and finished_at is null",
            )
            .fetch_one(db)
            .await?;
            if unsent == 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("{unsent} e-mails still unsent after an hour");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (first, last): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sqlx::query_as(
            "select min(sending_at), max(finished_at) from effects where kind = 'campaign_email'",
        )
        .fetch_one(db)
        .await?;
        let states: Vec<(String, i64)> = sqlx::query_as(
            "select state, count(*) from effects where kind = 'campaign_email'
             group by state order by state",
        )
        .fetch_all(db)
        .await?;
        let sent = states
            .iter()
            .find(|(state, _)| state == "sent")
            .map_or(0, |(_, count)| *count);
        let drain = match (first, last) {
            (Some(first), Some(last)) => (last - first).to_std().unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let seen = self.sink.seen();
        let states = states
            .iter()
            .map(|(state, count)| format!("{count} {state}"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(format!(
            "| prospects | senders | replicas | concurrency | launch (plan + writes) | drain | e-mails/s | received by the SMTP server | sent twice | effects |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n\
             | {} | {} | {} | {} | {:.2} s ({planned} planned) | {:.1} s | **{:.0}** | {} | {} | {states} |",
            args.prospects,
            args.senders,
            args.replicas,
            args.concurrency,
            launch.as_secs_f64(),
            drain.as_secs_f64(),
            sent as f64 / drain.as_secs_f64().max(f64::EPSILON),
            seen.messages,
            seen.duplicates(),
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
