//! The life of a benchmark run, the same for every benchmark binary: create the scratch
//! state, prepare it, measure, and tear it all down again whatever happened, so that a
//! failed run leaves no database, Redis keys or processes behind.

use std::future::Future;

/// One benchmark run, created with its scratch database (see
/// [`Scratch::create`](super::Scratch::create)) and driven by [`main`].
pub trait Run {
    /// The binary's command line.
    type Args;

    /// Everything the measurement needs beyond the database: migrations, jobs file,
    /// helper processes.
    fn prepare(&mut self, args: &Self::Args) -> impl Future<Output = anyhow::Result<()>>;

    /// Measures; returns the report to print.
    fn measure(&mut self, args: &Self::Args) -> impl Future<Output = anyhow::Result<String>>;

    /// True when a process's log has an `ERROR` line (then the logs are kept for a look).
    fn logs_have_errors(&self) -> bool;

    /// Stops the processes and removes the scratch state, unless `keep`; the logs stay too
    /// with `keep_logs`. Best effort: every step is attempted and failures are only reported.
    fn teardown(&mut self, keep: bool, keep_logs: bool) -> impl Future<Output = ()>;
}

/// A benchmark binary's `main`: runs what `create` returns to its report on stdout; on an
/// error, prints it prefixed with `name` and exits with status 1. `keep` keeps the scratch
/// state (`--keep`).
pub async fn main<R: Run>(
    name: &str,
    args: &R::Args,
    keep: bool,
    create: impl Future<Output = anyhow::Result<R>>,
) {
    if let Err(err) = drive(args, keep, create).await {
        eprintln!("{name}: {err:#}");
        std::process::exit(1);
    }
}

async fn drive<R: Run>(
    args: &R::Args,
    keep: bool,
    create: impl Future<Output = anyhow::Result<R>>,
) -> anyhow::Result<()> {
    let mut run = create.await?;
    // From here on, a failure must still drop the database just created.
    if let Err(err) = run.prepare(args).await {
        run.teardown(keep, keep).await;
        return Err(err);
    }
    // Whatever happens in the run, the processes are stopped and the scratch state removed.
    let outcome = run.measure(args).await;
    let keep_logs = keep || outcome.is_err() || run.logs_have_errors();
    run.teardown(keep, keep_logs).await;
    let report = outcome?;
    println!("{report}");
    Ok(())
}
