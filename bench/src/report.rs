//! Formatting for the benchmark reports: numbers as the reports show them and the one-row
//! Markdown tables they print, so the reports can be pasted into the README as they are.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::rows::Recorded;
use super::sampler::Drained;

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Per-process MiB, `a / b` for several processes.
pub fn mib_list(kib: &[u64]) -> String {
    kib.iter().map(|k| mib(*k)).collect::<Vec<_>>().join(" / ")
}

/// A span in seconds, microsecond precision.
pub fn seconds(span: chrono::Duration) -> f64 {
    span.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

/// How a report line states whether a target was reached.
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// Rows per state as `state count, state count`.
pub fn states_line(states: &[(String, i64)]) -> String {
    let states: Vec<String> = states.iter().map(|(s, c)| format!("{s} {c}")).collect();
    states.join(", ")
}

/// Writes a Markdown table of one row, every column right-aligned (they are all numbers).
pub fn table(out: &mut String, head: &[&str], row: &[String]) -> std::fmt::Result {
    writeln!(out, "| {} |", head.join(" | "))?;
    writeln!(out, "|{}", "---:|".repeat(head.len()))?;
    writeln!(out, "| {} |", row.join(" | "))
}

/// The table row both benchmarks print for the drain: who worked (replicas), how fast
/// (from the first start and from the due instant to the last finish), how late the rows
/// were picked up, and the peaks of the window and the Redis queue.
pub struct DrainRow<'a> {
    pub replicas: usize,
    /// What one row is called (`effect`, `message`); the column heads add an `s`.
    pub unit: &'a str,
    pub count: u64,
    /// What the lateness column is called (`pickup`, `lateness`).
    pub lateness: &'a str,
    /// When the rows fell due (the first of them, if spread).
    pub due: DateTime<Utc>,
    pub recorded: &'a Recorded,
    pub drained: &'a Drained,
}

impl DrainRow<'_> {
    /// Rows per second from `from` to the last finish.
    pub fn rate(&self, from: DateTime<Utc>) -> f64 {
        self.count as f64 / seconds(self.recorded.last - from)
    }

    /// Writes the table, with the benchmark's own `middle` columns (head, cell) between
    /// the lateness and the peaks.
    pub fn write(&self, out: &mut String, middle: &[(&str, String)]) -> std::fmt::Result {
        let (unit, recorded, peaks) = (self.unit, self.recorded, &self.drained.peaks);
        let mut head = vec![
            "replicas".to_owned(),
            format!("{unit}s"),
            format!("{unit}s/s (first start → last finish)"),
            format!("{unit}s/s (due → last finish)"),
            format!("{} p50 / p99 / max ms", self.lateness),
        ];
        let mut row = vec![
            self.replicas.to_string(),
            self.count.to_string(),
            format!("{:.0}", self.rate(recorded.first)),
            format!("{:.0}", self.rate(self.due)),
            format!(
                "{:.0} / {:.0} / {:.0}",
                recorded.late_p50_ms.unwrap_or(f64::NAN),
                recorded.late_p99_ms.unwrap_or(f64::NAN),
                recorded.late_max_ms.unwrap_or(f64::NAN),
            ),
        ];
        for (name, cell) in middle {
            head.push((*name).to_owned());
            row.push(cell.clone());
        }
        head.extend([
            "max window (queued rows)".to_owned(),
            "max Redis depth".to_owned(),
        ]);
        row.extend([peaks.window.to_string(), peaks.redis_depth.to_string()]);
        let head: Vec<&str> = head.iter().map(String::as_str).collect();
        table(out, &head, &row)
    }

    /// Writes where the drain's CPU time went (from `span`): the workers, their PostgreSQL
    /// backends (`backends` says whose), the Redis server and `others` (name, seconds), and
    /// all of it per row.
    pub fn write_cpu(
        &self,
        out: &mut String,
        span: &str,
        backends: &str,
        others: &[(&str, f64)],
    ) -> std::fmt::Result {
        let cpu = &self.drained.cpu;
        write!(
            out,
            "CPU from {span}: workers {:.2} s, {backends} {:.2} s, Redis server (all clients) {:.2} s",
            cpu.processes, cpu.postgres, cpu.redis,
        )?;
        let mut total = cpu.processes + cpu.postgres + cpu.redis;
        for (name, secs) in others {
            write!(out, ", {name} {secs:.2} s")?;
            total += secs;
        }
        writeln!(
            out,
            " = {:.3} ms per {}",
            total * 1000.0 / self.count as f64,
            self.unit
        )
    }
}
