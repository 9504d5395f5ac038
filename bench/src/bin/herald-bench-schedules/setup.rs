//! The run's scratch state and processes (database, Twilio stand-in, workers) and the
//! population of groups, students and schedules.

use std::process::Command;

use anyhow::bail;
use chrono::{DateTime, Utc};
use herald_bench::{
    Run, Scratch, Standin, Workers, ZONES, logs_have_errors, sibling_binary, stop_all,
};
use herald_shared::effects::EffectKind;
use uuid::Uuid;

use crate::{Args, BENCH_APP};

pub struct Bench {
    pub scratch: Scratch,
    pub standin: Standin,
    twilio_url: String,
    pub workers: Workers,
}

impl Bench {
    pub async fn create(args: &Args) -> anyhow::Result<Self> {
        if args.schedules == 0
            || args.groups == 0
            || args.replicas == 0
            || !(1..=ZONES.len()).contains(&args.students_per_group)
            // the planner takes a schedule once its plan ends within half the horizon: a
            // longer lead would time the planners waiting, not planning
            || args.lead_secs.saturating_mul(2) >= args.horizon_secs
        {
            bail!(
                "--schedules, --groups and --replicas must be at least 1, --students-per-group \
                 1–50, and --lead-secs below half of --horizon-secs"
            );
        }
        let scratch = Scratch::create(
            BENCH_APP,
            "herald_bench_s_",
            &args.servers,
            EffectKind::Message,
        )
        .await?;
        Ok(Self {
            workers: Workers::new(&scratch.dir),
            scratch,
            standin: Standin::default(),
            twilio_url: String::new(),
        })
    }

    /// Writes the groups, students and schedules; the schedules start at `start`.
    pub async fn populate(&self, args: &Args, start: DateTime<Utc>) -> anyhow::Result<()> {
        let db = self.scratch.pool()?;
        let account: Uuid =
            sqlx::query_scalar("insert into accounts (name) values ('bench') returning id")
                .fetch_one(db)
                .await?;
        let groups = i32::try_from(args.groups)?;
        let per_group = i32::try_from(args.students_per_group)?;
        sqlx::query(
            "insert into groups (account_id, name) select $1, g::text from generate_series(0, $2 - 1) g",
        )
        .bind(account)
        .bind(groups)
        .execute(db)
        .await?;
        // student k of group g: zone (g·n + k) mod 50, a distinct phone
        sqlx::query(
            "insert into students (group_id, name, phone, channel, timezone)
             select g.id, 'Student ' || (g.name::int * $1 + k),
                    '+1415' || lpad((g.name::int * $1 + k)::text, 7, '0'), 'sms',
                    ($2::text[])[1 + (g.name::int * $1 + k) % 50]
             from groups g, generate_series(0, $1 - 1) k",
        )
        .bind(per_group)
        .bind(ZONES.as_slice())
        .execute(db)
        .await?;
        sqlx::query(
            "insert into schedules (account_id, name, cron, timezone, group_id, text, active_from, planned_until)
             select $1, 'Schedule ' || i, (i % 60) || ' * * * * *', null, g.id, 'Reminder ' || i, $4, $4
             from generate_series(0, $2 - 1) i join groups g on g.name::int = i % $3",
        )
        .bind(account)
        .bind(i32::try_from(args.schedules)?)
        .bind(groups)
        .bind(start)
        .execute(db)
        .await?;
        sqlx::query("analyze").execute(db).await?;
        Ok(())
    }

    /// Starts the replicas and waits until each answers `/healthz`.
    pub async fn start_workers(&mut self, args: &Args) -> anyhow::Result<Vec<u16>> {
        let (scratch, twilio_url) = (&self.scratch, self.twilio_url.as_str());
        self.workers
            .start(args.replicas, "start herald-worker", || {
                let mut command = command(scratch, twilio_url, "herald-worker", args)?;
                command.env(
                    "HERALD_SCHEDULES__HORIZON_SECS",
                    args.horizon_secs.to_string(),
                );
                Ok(command)
            })
            .await
    }

    pub async fn stop_workers(&mut self) {
        stop_all(self.workers.children_mut(), "worker").await;
    }
}

impl Run for Bench {
    type Args = Args;

    async fn prepare(&mut self, args: &Args) -> anyhow::Result<()> {
        self.scratch.write_jobs(None, None)?;
        self.twilio_url = self.standin.start().await?;
        let herald_api = command(&self.scratch, &self.twilio_url, "herald-api", args)?;
        self.scratch.migrate(herald_api).await
    }

    async fn measure(&mut self, args: &Args) -> anyhow::Result<String> {
        crate::measure::measure(self, args).await
    }

    fn logs_have_errors(&self) -> bool {
        logs_have_errors(&self.workers.logs())
    }

    async fn teardown(&mut self, keep: bool, keep_logs: bool) {
        stop_all(self.workers.children_mut(), "process").await;
        self.scratch.remove(keep, keep_logs, "logs").await;
    }
}

/// A herald binary configured for the run and pointed at the Twilio stand-in.
fn command(
    scratch: &Scratch,
    twilio_url: &str,
    name: &str,
    args: &Args,
) -> anyhow::Result<Command> {
    let mut command = scratch.command(&sibling_binary(name)?);
    Standin::configure(&mut command, twilio_url, args.sms_per_second);
    Ok(command)
}
