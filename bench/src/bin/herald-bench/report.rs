//! The report a run prints: one Markdown table row (the README's benchmark table has the
//! same columns) and lines with the settings, planning, CPU and final row states.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_bench::{DrainRow, Drained, Recorded, mib_list, states_line};
use herald_shared::jobs_config::JobSettings;

use crate::Args;

/// Everything a run measured.
pub struct Report<'a> {
    pub args: &'a Args,
    /// The email kind's settings as the workers read them.
    pub email: JobSettings,
    /// The (first) due instant.
    pub due: DateTime<Utc>,
    pub plan_time: Duration,
    pub recorded: Recorded,
    /// The drain; its wall time runs from the end of planning.
    pub drained: Drained,
}

impl Report<'_> {
    pub fn write(&self) -> anyhow::Result<String> {
        let Self {
            args,
            recorded,
            drained,
            ..
        } = self;
        let n = args.effects as f64;
        let mut out = String::new();
        let row = DrainRow {
            replicas: args.replicas,
            unit: "effect",
            count: u64::try_from(args.effects)?,
            lateness: "pickup",
            due: self.due,
            recorded,
            drained,
        };
        row.write(
            &mut out,
            &[
                ("idle RSS MiB", mib_list(&drained.idle_rss)),
                ("peak RSS MiB", mib_list(&drained.peaks.rss_kib)),
            ],
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "settings: email concurrency {} per replica, window {}, dispatch_batch {}, poll_interval_ms {}, db max_connections {}",
            self.email.concurrency,
            self.email.window,
            args.dispatch_batch
                .map_or("500 (default)".to_owned(), |b| b.to_string()),
            args.poll_interval_ms
                .map_or("1000 (default)".to_owned(), |p| p.to_string()),
            args.db_max_connections
                .map_or("10 (default)".to_owned(), |c| c.to_string()),
        )?;
        writeln!(
            out,
            "planning: {} rows in {:.2} s ({:.0} rows/s); drain wall time after planning {:.2} s; {} samples",
            args.effects,
            self.plan_time.as_secs_f64(),
            n / self.plan_time.as_secs_f64(),
            drained.wall.as_secs_f64(),
            drained.peaks.samples,
        )?;
        row.write_cpu(
            &mut out,
            "planning to drained",
            "their PostgreSQL backends",
            &[],
        )?;
        writeln!(
            out,
            "rows by state: {}; max attempts {}; rows with attempts > 1: {}",
            states_line(&recorded.states),
            recorded.max_attempts.unwrap_or(0),
            recorded.retried
        )?;
        Ok(out)
    }
}
