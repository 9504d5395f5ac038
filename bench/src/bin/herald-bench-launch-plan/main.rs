//! `herald-bench-launch-plan`: how long does planning a campaign's launch take?
//! `herald_shared::campaign_schedule::plan_first_steps` on `--prospects` prospects spread over
//! the 50 zones of [`herald_bench::ZONES`], with `--senders` senders, a weekday 09:00–17:00
//! window and caps large enough that the plan fits in a few days, and again with caps that
//! bind (a small campaign cap per day, so the plan runs over weeks). Pure computation: the
//! database reads and writes of a launch are not in it. Each case runs `--rounds` times; the
//! report gives the fastest and the slowest.
//!
//! ```text
//! cargo build --release --bins && target/release/herald-bench-launch-plan
//! ```

use std::time::{Duration, Instant};

use anyhow::Context as _;

use chrono::{NaiveTime, Utc};
use chrono_tz::Tz;
use clap::Parser;
use herald_bench::ZONES;
use herald_shared::campaign_schedule::{
    CampaignCaps, Prospect, SenderLimits, Window, plan_first_steps,
};
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(name = "herald-bench-launch-plan", about = "Launch planning benchmark")]
struct Args {
    /// Prospects to plan (the issue's target: 30,000 within 3 s).
    #[arg(long, default_value_t = 30_000)]
    prospects: usize,
    /// Senders the campaign rotates over.
    #[arg(long, default_value_t = 20)]
    senders: usize,
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let zones = ZONES
        .iter()
        .map(|name| {
            name.parse::<Tz>()
                .map_err(|err| anyhow::anyhow!("{name}: {err}"))
        })
        .collect::<anyhow::Result<Vec<Tz>>>()?;
    let prospects: Vec<Prospect> = (0..args.prospects)
        .map(|index| Prospect {
            person_id: Uuid::new_v4(),
            zone: zones[index % zones.len()],
        })
        .collect();
    let senders: Vec<SenderLimits> = (0..args.senders)
        .map(|_| SenderLimits {
            sender_id: Uuid::new_v4(),
            daily_cap: 5_000,
            min_gap_secs: 1,
        })
        .collect();
    let window = Window::new(
        &[1, 2, 3, 4, 5],
        NaiveTime::from_hms_opt(9, 0, 0).context("time")?,
        NaiveTime::from_hms_opt(17, 0, 0).context("time")?,
    );
    let zone: Tz = chrono_tz::America::New_York;
    let cases = [
        (
            "caps that do not bind",
            CampaignCaps {
                zone,
                daily_cap: 100_000,
                new_prospects_per_day: 100_000,
                sent_today: 0,
            },
        ),
        (
            "campaign cap of 1,000 a day",
            CampaignCaps {
                zone,
                daily_cap: 1_000,
                new_prospects_per_day: 1_000,
                sent_today: 0,
            },
        ),
    ];
    println!(
        "| case | prospects | senders | planned | last e-mail after | fastest | slowest |\n\
         |---|---:|---:|---:|---:|---:|---:|"
    );
    for (name, caps) in cases {
        let mut times: Vec<Duration> = Vec::new();
        let mut summary = (0, String::new());
        for round in 0..args.rounds {
            let now = Utc::now();
            let started = Instant::now();
            let seed = u64::try_from(round).unwrap_or_default();
            let plan = plan_first_steps(now, &window, &caps, &senders, &[], &prospects, seed);
            times.push(started.elapsed());
            let span = plan
                .planned
                .iter()
                .map(|planned| planned.at)
                .max()
                .map_or(0, |last| (last - now).num_hours());
            summary = (plan.planned.len(), format!("{span} h"));
        }
        times.sort();
        println!(
            "| {name} | {} | {} | {} | {} | {:.3} s | {:.3} s |",
            args.prospects,
            args.senders,
            summary.0,
            summary.1,
            times[0].as_secs_f64(),
            times[times.len() - 1].as_secs_f64(),
        );
    }
    Ok(())
}
