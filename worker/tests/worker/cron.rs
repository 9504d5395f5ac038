//! Cron triggers across replicas: each fire runs once, on time; missed fires are caught up or
//! recorded as missed.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use herald_shared::cron::Schedule;
use herald_shared::triggers::{CronJob, CronTrigger};

use crate::helpers::{Mail, TestWorker, wait_until};

fn trigger(name: &str, schedule: &str, catch_up_secs: u64) -> CronTrigger {
    CronTrigger {
        name: name.to_owned(),
        schedule: Schedule::parse(schedule).unwrap(),
        zone: chrono_tz::Europe::London,
        job: CronJob::Heartbeat,
        catch_up: Duration::from_secs(catch_up_secs),
    }
}

type Fire = (DateTime<Utc>, String, i32, Option<DateTime<Utc>>);

async fn fires(test: &TestWorker, name: &str) -> Vec<Fire> {
    sqlx::query_as("select fire_at, state, runs, started_at from cron_fires where trigger = $1 order by fire_at")
        .bind(name)
        .fetch_all(test.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_per_second_trigger_on_two_replicas_runs_each_of_thirty_fires_once_and_on_time() {
    let test = TestWorker::spawn_with(
        Mail::Sandbox,
        &[],
        |jobs| jobs.with_triggers(vec![trigger("tick", "* * * * * *", 60)]),
        &["a", "b"],
    )
    .await;
    wait_until("30 fires done", Duration::from_secs(60), || async {
        fires(&test, "tick")
            .await
            .iter()
            .filter(|f| f.1 == "done")
            .count()
            >= 30
    })
    .await;
    let rows = fires(&test, "tick").await;
    let done: Vec<&Fire> = rows.iter().filter(|f| f.1 == "done").collect();
    // consecutive seconds, none skipped, each run once, each started within a second
    for pair in done.windows(2) {
        assert_eq!(
            (pair[1].0 - pair[0].0).num_seconds(),
            1,
            "{:?} then {:?}",
            pair[0].0,
            pair[1].0
        );
    }
    for (at, _, runs, started) in &done {
        assert_eq!(*runs, 1, "fire {at} ran {runs} times");
        let late = (started.unwrap() - *at).num_milliseconds();
        assert!(
            (0..1_000).contains(&late),
            "fire {at} started {late} ms late"
        );
        assert_eq!(at.nanosecond(), 0);
    }
    test.finish().await;
}

#[tokio::test]
async fn after_downtime_recent_fires_run_once_and_older_ones_are_recorded_missed() {
    // the trigger last fired 12 s ago (a worker ran then); every 2 s since was missed
    let test = TestWorker::spawn_with(Mail::Sandbox, &[], |jobs| jobs, &[]).await;
    let last = Utc::now().with_nanosecond(0).unwrap() - chrono::Duration::seconds(12);
    let last = last - chrono::Duration::seconds(i64::from(last.second() % 2));
    sqlx::query(
        "insert into cron_fires (trigger, fire_at, state, runs) values ('every-2s', $1, 'done', 1)",
    )
    .bind(last)
    .execute(test.db())
    .await
    .unwrap();
    let mut test = test;
    test.jobs = test
        .jobs
        .clone()
        .with_triggers(vec![trigger("every-2s", "*/2 * * * * *", 5)]);
    let restarted_at = Utc::now();
    test.start_replica("returning").await;
    wait_until(
        "the caught-up fires ran",
        Duration::from_secs(20),
        || async {
            fires(&test, "every-2s")
                .await
                .iter()
                .filter(|f| f.0 > restarted_at && f.1 == "done")
                .count()
                >= 1
        },
    )
    .await;
    let rows = fires(&test, "every-2s").await;
    for (at, state, runs, _) in &rows {
        if *at == last {
            continue;
        }
        // lateness is judged when the worker's first pass runs, a moment after restarted_at:
        // a fire within a second of the 5 s boundary may fall either way
        let late_at_restart = (restarted_at - *at).num_milliseconds();
        if late_at_restart > 6_000 {
            assert_eq!(state, "missed", "{at} was {late_at_restart} ms late");
        } else if late_at_restart < 4_000 {
            assert_eq!(
                state, "done",
                "{at} was {late_at_restart} ms late: within catch-up"
            );
        }
        assert!(matches!(state.as_str(), "done" | "missed"), "{at}: {state}");
        assert_eq!(
            *runs,
            i32::from(state == "done"),
            "{at}: a missed fire never runs, a done one once"
        );
    }
    assert!(
        rows.iter().filter(|f| f.1 == "missed").count() >= 3,
        "{rows:?}"
    );
    // every 2 s from the last recorded fire on, none skipped and none twice
    for pair in rows.windows(2) {
        assert_eq!((pair[1].0 - pair[0].0).num_seconds(), 2);
    }
    test.finish().await;
}
