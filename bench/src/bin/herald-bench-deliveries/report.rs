//! The report a run prints: a Markdown section per part (a one-row table and lines with the
//! settings and counts behind it), each closed by whether it met the targets.

use std::fmt::Write as _;
use std::time::Duration;

use herald_bench::{DrainRow, mib, mib_list, states_line, table, verdict};

use crate::Args;
use crate::planning::Planning;
use crate::sending::Sending;
use crate::students::{IMPORT_ROWS, ZONES};

/// Part 1's section; `import_time` is how long importing the students took (not timed in
/// the table).
pub fn planning(
    out: &mut String,
    planning: &Planning,
    import_time: Duration,
    args: &Args,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "### Planning: POST /api/v1/deliveries, {} students × {} days",
        args.students, args.days
    )?;
    writeln!(out)?;
    table(
        out,
        &[
            "messages planned",
            "request time",
            "messages/s",
            "herald-api RSS before / peak / after / 2 s later MiB",
            "herald-api CPU s",
            "PostgreSQL CPU s",
        ],
        &[
            planning.messages.to_string(),
            format!("{:.2} s", planning.elapsed.as_secs_f64()),
            format!(
                "{:.0}",
                planning.messages as f64 / planning.elapsed.as_secs_f64()
            ),
            format!(
                "{} / {} / {} / {}",
                mib(planning.rss_before),
                mib(planning.rss_peak),
                mib(planning.rss_after),
                mib(planning.rss_settled),
            ),
            format!("{:.2}", planning.api_cpu),
            format!("{:.2}", planning.postgres_cpu),
        ],
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "setup (not timed above): students imported through POST /api/v1/groups/{{id}}/students/import ({} rows a request, {} zones) in {:.2} s",
        IMPORT_ROWS,
        ZONES.len(),
        import_time.as_secs_f64()
    )?;
    Ok(())
}

/// Part 1's target, stated after both sections.
pub fn planning_target(out: &mut String, planning: &Planning) -> anyhow::Result<()> {
    writeln!(
        out,
        "targets: planning ≤ 5 s: {}",
        verdict(planning.elapsed.as_secs_f64() <= 5.0)
    )?;
    Ok(())
}

/// Part 2's section, with its targets.
pub fn sending(out: &mut String, sending: &Sending, args: &Args) -> anyhow::Result<()> {
    let Sending {
        recorded,
        drained,
        standin,
        ..
    } = sending;
    let sent = recorded
        .states
        .iter()
        .find(|(state, _)| state == "sent")
        .map_or(0, |(_, count)| *count);
    let row = DrainRow {
        replicas: args.replicas,
        unit: "message",
        count: args.students as u64,
        lateness: "lateness",
        due: sending.due,
        recorded,
        drained,
    };
    let per_sec = row.rate(recorded.first);
    let p99 = recorded.late_p99_ms.unwrap_or(f64::NAN);
    writeln!(
        out,
        "### Sending: {} first-day messages due at one instant, Twilio stand-in",
        args.students
    )?;
    writeln!(out)?;
    row.write(
        out,
        &[
            ("duplicates", standin.duplicates.to_string()),
            ("rows `sent`", sent.to_string()),
            (
                "idle / peak worker RSS MiB",
                format!(
                    "{} / {}",
                    mib_list(&drained.idle_rss),
                    mib_list(&drained.peaks.rss_kib)
                ),
            ),
        ],
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "settings: twilio.sms_per_second raised to {} (one Messaging Service sender; the default is 1/s, one long code); message concurrency {} per replica, window {}, worker db max_connections {}",
        args.sms_per_second,
        sending.message.concurrency,
        sending.message.window,
        args.db_max_connections
            .map_or("10 (default)".to_owned(), |c| c.to_string()),
    )?;
    writeln!(
        out,
        "lateness = sending_at − next_attempt_at per message row; rows moved off their planned instant (deferred or retried): {}; max attempts {}; rows with attempts > 1: {}",
        recorded.moved,
        recorded.max_attempts.unwrap_or(0),
        recorded.retried,
    )?;
    writeln!(
        out,
        "rows by state: {}; distinct provider SIDs recorded: {}; delivery status: {}",
        states_line(&recorded.states),
        recorded.provider_ids,
        sending.status,
    )?;
    writeln!(
        out,
        "stand-in: {} requests, {} distinct (To, Body), {} duplicates, {} malformed, first → last request {:.2} s; wall time from creation to all final {:.2} s, {} samples",
        standin.requests,
        standin.distinct,
        standin.duplicates,
        standin.malformed,
        standin.span,
        drained.wall.as_secs_f64(),
        drained.peaks.samples,
    )?;
    row.write_cpu(
        out,
        "the delivery's creation to all final",
        "their and herald-api's PostgreSQL backends",
        &[
            ("herald-api", sending.api_cpu),
            ("this process (Twilio stand-in, sampler)", sending.own_cpu),
        ],
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
        verdict(standin.duplicates == 0 && standin.requests == args.students as u64),
        verdict(sent == args.students as i64),
    )?;
    Ok(())
}
