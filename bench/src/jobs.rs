//! The jobs.toml a run's workers are started with: the committed one, with the benchmarked
//! kind's `concurrency` and `window` overridden from the command line.

use std::fmt::Write as _;

use anyhow::Context as _;
use herald_shared::effects::EffectKind;
use herald_shared::jobs_config::{DEFAULT_JOBS, JobsConfig};

/// The committed jobs.toml, every kind written out in full (the workers refuse a file
/// missing one), with `concurrency` and `window` of `kind` overridden when given.
pub fn jobs_toml(
    kind: EffectKind,
    concurrency: Option<usize>,
    window: Option<u32>,
) -> anyhow::Result<String> {
    let committed = JobsConfig::parse(DEFAULT_JOBS)?;
    let mut text = String::from("[defaults]\n");
    for job in committed.all() {
        let (concurrency, window) = if job.kind == kind {
            (
                concurrency.unwrap_or(job.concurrency),
                window.unwrap_or(job.window),
            )
        } else {
            (job.concurrency, job.window)
        };
        let schedule: Vec<String> = job
            .retry_schedule
            .iter()
            .map(|delay| delay.as_secs().to_string())
            .collect();
        write!(
            text,
            "\n[job.{}]\nqueue = \"{}\"\nmax_attempts = {}\nretry_schedule_secs = [{}]\ntimeout_secs = {}\nconcurrency = {concurrency}\nwindow = {window}\n",
            job.kind,
            job.queue,
            job.max_attempts,
            schedule.join(", "),
            job.timeout.as_secs(),
        )?;
        if let Some(limit) = job.rate_limit {
            writeln!(text, "rate_limit = {{ per_second = {} }}", limit.per_second)?;
        }
    }
    // Fail here, not in every worker, when an override is out of range.
    JobsConfig::parse(&text).context("the generated jobs.toml")?;
    Ok(text)
}
