//! One measurement: start herald-api, set up the account, the courses and the group through
//! it, then run part 1 (planning) and part 2 (sending) and put their report together.

use std::time::Instant;

use herald_bench::redis_connection;

use crate::api::Api;
use crate::setup::Bench;
use crate::{Args, planning, report, sending};

/// Runs both parts on a freshly created `bench`; returns the report.
pub async fn measure(bench: &mut Bench, args: &Args) -> anyhow::Result<String> {
    let mut redis = redis_connection(&bench.scratch.redis_url).await?;
    bench.start_api(args).await?;
    let setup = Instant::now();
    let mut api = Api::new(bench.api_port)?;
    api.signup().await?;
    let course = api.create_course("Planning bench", args.days).await?;
    let one_day_course = api.create_course("Sending bench", 1).await?;
    let imported = Instant::now();
    let group = api.create_group(args.students).await?;
    let import_time = imported.elapsed();
    eprintln!(
        "setup: signed up, 2 courses, {} students imported in {:.2} s ({:.2} s in all)",
        args.students,
        import_time.as_secs_f64(),
        setup.elapsed().as_secs_f64()
    );

    let planned = planning::plan_course(bench, &api, &mut redis, &group, &course, args).await?;
    eprintln!(
        "planned {} messages in {:.2} s",
        planned.messages,
        planned.elapsed.as_secs_f64()
    );
    let sent =
        sending::send_first_day(bench, &api, &mut redis, &group, &one_day_course, args).await?;

    let mut out = String::new();
    report::planning(&mut out, &planned, import_time, args)?;
    out.push('\n');
    report::sending(&mut out, &sent, args)?;
    out.push('\n');
    report::planning_target(&mut out, &planned)?;
    Ok(out)
}
