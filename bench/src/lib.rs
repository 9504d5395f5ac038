//! `herald-bench`: the benchmarks, kept out of the worker crate, and the helpers their
//! binaries in `src/bin/` (`herald-bench`, `herald-bench-deliveries`,
//! `herald-bench-schedules`) share. They drive the real `herald-api` and `herald-worker`
//! binaries built next to them (`cargo build --release --bins`) as child processes, read
//! their CPU time and memory from `/proc`, write a jobs.toml with overrides, sample the run
//! while the workers drain it, query what the rows recorded, and remove a run's scratch
//! database and Redis keys afterwards. Linux only (`/proc`).
//!
//! One module per concern:
//! - [`scratch`]: the run's database, Redis prefix, scratch directory and child environment;
//! - [`jobs`]: the jobs.toml the workers are started with;
//! - [`process`]: ports, health checks, `/proc` readings and stopping a child;
//! - [`workers`]: the `herald-worker` replicas of a run;
//! - [`cpu`]: CPU time of the processes, their PostgreSQL backends and Redis;
//! - [`sampler`]: a drain's baseline, the 50 ms sampler of the window, the Redis depth and
//!   the workers' RSS, and the CPU time the drain cost;
//! - [`rows`]: which effect rows a run watches and what their timestamps say;
//! - [`report`]: number formatting and the Markdown tables the reports print;
//! - [`run`]: a run's life from creation to teardown, the benchmarks' `main`;
//! - [`twilio_standin`]: an in-process Twilio Messages API that accepts everything at once;
//! - [`zones`]: the 50 zones recipients are spread over.

pub mod cpu;
pub mod jobs;
pub mod process;
pub mod report;
pub mod rows;
pub mod run;
pub mod sampler;
pub mod scratch;
pub mod twilio_standin;
pub mod workers;
pub mod zones;

pub use cpu::CpuUse;
pub use jobs::jobs_toml;
pub use process::{clock_ticks, cpu_ticks, free_port, get_ok, rss_kib, sibling_binary, stop_all};
pub use report::{DrainRow, mib, mib_list, seconds, states_line, table, verdict};
pub use rows::{Recorded, Rows};
pub use run::Run;
pub use sampler::{Baseline, Drained, Peaks};
pub use scratch::{Scratch, Servers, logs_have_errors, redis_connection};
pub use twilio_standin::{ACCOUNT_SID, SERVICE_SID, Standin, Tally};
pub use workers::Workers;
pub use zones::ZONES;
