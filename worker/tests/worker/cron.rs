//! Cron triggers across replicas: each fire runs once, on time; missed fires are caught up or
//! recorded as missed.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use herald_shared::cron::Schedule;
use herald_shared::db::cron_fires;
use herald_shared::triggers::{CronJob, CronTrigger};

use crate::helpers::{Mail, TestWorker, wait_until};

fn trigger(name: &str, schedule: &str, catch_up_secs: u64) -> CronTrigger {
    trigger_in(name, schedule, chrono_tz::Europe::London, catch_up_secs)
}

fn trigger_in(name: &str, schedule: &str, zone: chrono_tz::Tz, catch_up_secs: u64) -> CronTrigger {
    CronTrigger {
        name: name.to_owned(),
        schedule: Schedule::parse(schedule).expect("a valid expression"),
        zone,
        job: CronJob::Heartbeat,
        catch_up: Duration::from_secs(catch_up_secs),
    }
}

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().expect("an RFC 3339 instant")
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
    // once across replicas, and both replicas ran fires
    let runners: Vec<String> = sqlx::query_scalar(
        "select distinct runner from cron_fires where trigger = 'tick' and state = 'done'
         order by runner",
    )
    .fetch_all(test.db())
    .await
    .unwrap();
    assert_eq!(runners, ["a", "b"], "the replicas that ran fires");
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

/// Runs the cron pass of one replica with a controlled clock from `from` to `to` in
/// ten-minute steps, as a worker that was up all along would; returns each trigger's fires.
async fn walk(
    test: &TestWorker,
    triggers: &[CronTrigger],
    from: &str,
    to: &str,
) -> Vec<Vec<DateTime<Utc>>> {
    let ctx = test.context("clocked").await;
    let names: Vec<String> = triggers.iter().map(|t| t.name.clone()).collect();
    let (from, to) = (utc(from), utc(to));
    let mut now = from;
    while now <= to {
        herald_worker::cron::pass(&ctx, triggers, &names, from, &|| now)
            .await
            .expect("a cron pass");
        now += chrono::Duration::minutes(10);
    }
    let mut all = Vec::new();
    for name in &names {
        let rows = fires(test, name).await;
        assert!(
            rows.iter().all(|f| f.1 == "done" && f.2 == 1),
            "{name}: every fire runs once: {rows:?}"
        );
        all.push(rows.into_iter().map(|f| f.0).collect());
    }
    all
}

#[tokio::test]
async fn triggers_follow_the_dst_rules_across_real_transitions_on_a_controlled_clock() {
    let test = TestWorker::spawn_with(Mail::Sandbox, &[], |jobs| jobs, &[]).await;
    let hour = 3_600;

    // London falls back on 2026-10-25: 01:00–01:59 happens twice
    let london = chrono_tz::Europe::London;
    let fired = walk(
        &test,
        &[
            trigger_in("london-0130", "30 1 * * *", london, hour),
            trigger_in("london-hourly", "30 * * * *", london, hour),
        ],
        "2026-10-24T12:00:00Z",
        "2026-10-25T12:00:00Z",
    )
    .await;
    // fixed-time: the repeated 01:30 fires once, at its earlier instant (BST)
    assert_eq!(fired[0], [utc("2026-10-25T00:30:00Z")]);
    // wildcard: every real instant at :30, both 01:30s included: 24 in the 24 hours
    assert_eq!(fired[1].len(), 24, "{:?}", fired[1]);
    assert!(fired[1].contains(&utc("2026-10-25T00:30:00Z")));
    assert!(fired[1].contains(&utc("2026-10-25T01:30:00Z")));

    // New York springs forward on 2026-03-08: 02:00–02:59 does not exist
    let new_york = chrono_tz::America::New_York;
    let fired = walk(
        &test,
        &[
            trigger_in("ny-0230", "30 2 * * *", new_york, hour),
            trigger_in("ny-2am-half-hours", "*/30 2 * * *", new_york, hour),
        ],
        "2026-03-07T12:00:00Z",
        "2026-03-09T12:00:00Z",
    )
    .await;
    // fixed-time: the gap time moves forward by the gap, to 03:30 EDT
    assert_eq!(
        fired[0],
        [utc("2026-03-08T07:30:00Z"), utc("2026-03-09T06:30:00Z")]
    );
    // wildcard: nothing on the night with no 02:xx, 02:00 and 02:30 EDT the next night
    assert_eq!(
        fired[1],
        [utc("2026-03-09T06:00:00Z"), utc("2026-03-09T06:30:00Z")]
    );
    test.finish().await;
}

#[tokio::test]
async fn a_long_job_that_shows_signs_of_life_keeps_its_fire_and_a_silent_one_is_released() {
    let test = TestWorker::spawn_with(Mail::Sandbox, &[], |jobs| jobs, &[]).await;
    let db = test.db();
    let names = vec!["long".to_owned()];
    let hour_ago = Utc::now() - chrono::Duration::hours(1);
    for minutes in [0, 1] {
        sqlx::query("insert into cron_fires (trigger, fire_at) values ('long', $1)")
            .bind(hour_ago + chrono::Duration::minutes(minutes))
            .execute(db)
            .await
            .unwrap();
    }
    let working = cron_fires::claim_next(db, &names, "a", Utc::now())
        .await
        .unwrap()
        .unwrap();
    let silent = cron_fires::claim_next(db, &names, "b", Utc::now())
        .await
        .unwrap()
        .unwrap();
    // both were claimed an hour ago; only replica a still says it is running its job
    sqlx::query("update cron_fires set started_at = $1, alive_at = $1")
        .bind(hour_ago)
        .execute(db)
        .await
        .unwrap();
    assert!(cron_fires::still_running(db, &working, "a").await.unwrap());
    // a sign of life from a replica that does not hold the claim counts for nothing
    assert!(!cron_fires::still_running(db, &silent, "a").await.unwrap());

    assert_eq!(cron_fires::release_stale(db, 180.0).await.unwrap(), 1);
    let states: Vec<(DateTime<Utc>, String)> =
        sqlx::query_as("select fire_at, state from cron_fires order by fire_at")
            .fetch_all(db)
            .await
            .unwrap();
    assert_eq!(
        states,
        [
            (working.fire_at, "running".to_owned()),
            (silent.fire_at, "planned".to_owned())
        ]
    );
    test.finish().await;
}

#[tokio::test]
async fn a_replica_running_a_long_job_keeps_saying_so() {
    let test = TestWorker::spawn_with(Mail::Sandbox, &[], |jobs| jobs, &[]).await;
    let ctx = test.context("runner").await;
    sqlx::query(
        "insert into cron_fires (trigger, fire_at) values ('long', now() - interval '1 hour')",
    )
    .execute(test.db())
    .await
    .unwrap();
    let fire = cron_fires::claim_next(test.db(), &["long".to_owned()], "runner", Utc::now())
        .await
        .unwrap()
        .unwrap();
    let claimed_at: DateTime<Utc> =
        sqlx::query_scalar("select alive_at from cron_fires where id = $1")
            .bind(fire.id)
            .fetch_one(test.db())
            .await
            .unwrap();
    // a job that is still running after several signs of life are due
    let db = test.db().clone();
    let id = fire.id;
    let signs_seen =
        herald_worker::cron::while_alive(&ctx, &fire, Duration::from_millis(20), async move {
            wait_until(
                "a sign of life after the claim",
                Duration::from_secs(10),
                || async {
                    sqlx::query_scalar::<_, DateTime<Utc>>(
                        "select alive_at from cron_fires where id = $1",
                    )
                    .bind(id)
                    .fetch_one(&db)
                    .await
                    .unwrap()
                        > claimed_at
                },
            )
            .await;
            true
        })
        .await;
    assert!(signs_seen);
    test.finish().await;
}
