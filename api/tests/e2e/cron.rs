use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::stack::{Stack, wait_until};

type Fire = (DateTime<Utc>, String, i32);

async fn fires(stack: &Stack, trigger: &str) -> Vec<Fire> {
    sqlx::query_as(
        "select fire_at, state, runs from cron_fires where trigger = $1 order by fire_at",
    )
    .bind(trigger)
    .fetch_all(&stack.db)
    .await
    .expect("fires")
}

#[tokio::test]
async fn two_worker_processes_run_each_of_thirty_per_second_fires_exactly_once() {
    let mut stack = Stack::new(0.0).await;
    stack.add_jobs("[cron.tick]\nschedule = \"* * * * * *\"\ntimezone = \"Europe/London\"\njob = \"heartbeat\"\ncatch_up = \"1m\"\n");
    let _one = stack.start_worker("one").await;
    let _two = stack.start_worker("two").await;
    wait_until("30 fires done", Duration::from_secs(60), || async {
        fires(&stack, "tick")
            .await
            .iter()
            .filter(|f| f.1 == "done")
            .count()
            >= 30
    })
    .await;
    let done: Vec<Fire> = fires(&stack, "tick")
        .await
        .into_iter()
        .filter(|f| f.1 == "done")
        .collect();
    assert!(done.iter().all(|f| f.2 == 1), "every fire ran exactly once");
    // once across replicas, and both replicas ran fires
    let runners: Vec<String> = sqlx::query_scalar(
        "select distinct runner from cron_fires where trigger = 'tick' and state = 'done'
         order by runner",
    )
    .fetch_all(&stack.db)
    .await
    .expect("runners");
    assert_eq!(runners, ["one", "two"], "the replicas that ran fires");
    for pair in done.windows(2) {
        assert_eq!(
            (pair[1].0 - pair[0].0).num_seconds(),
            1,
            "no second skipped or repeated"
        );
    }
}

#[tokio::test]
async fn fires_missed_while_every_worker_was_down_are_caught_up_or_recorded_missed() {
    let mut stack = Stack::new(0.0).await;
    stack.add_jobs("[cron.pulse]\nschedule = \"*/2 * * * * *\"\ntimezone = \"UTC\"\njob = \"heartbeat\"\ncatch_up = 3\n");
    let worker = stack.start_worker("first").await;
    wait_until("two fires done", Duration::from_secs(20), || async {
        fires(&stack, "pulse")
            .await
            .iter()
            .filter(|f| f.1 == "done")
            .count()
            >= 2
    })
    .await;
    worker.kill_hard();
    let down_at = Utc::now();
    // stay down across three fires (6 s at one fire per 2 s)
    wait_until("three fires passed", Duration::from_secs(20), || async {
        Utc::now() - down_at > chrono::Duration::milliseconds(7_500)
    })
    .await;
    let back_at = Utc::now();
    let _second = stack.start_worker("second").await;
    wait_until(
        "a fire after the return done",
        Duration::from_secs(20),
        || async {
            fires(&stack, "pulse")
                .await
                .iter()
                .any(|f| f.0 > back_at + chrono::Duration::seconds(1) && f.1 == "done")
        },
    )
    .await;
    let rows = fires(&stack, "pulse").await;
    let during: Vec<&Fire> = rows
        .iter()
        .filter(|f| f.0 > down_at && f.0 <= back_at)
        .collect();
    assert!(during.len() >= 3, "{rows:?}");
    let missed = during.iter().filter(|f| f.1 == "missed").count();
    assert!(missed >= 2, "fires more than 3 s late are missed: {rows:?}");
    for (at, state, runs) in &rows {
        assert!(
            matches!(state.as_str(), "done" | "missed" | "planned" | "running"),
            "{at}: {state}"
        );
        assert!(*runs <= 1, "{at} ran {runs} times");
        if state == "missed" {
            assert_eq!(*runs, 0);
        }
    }
    for pair in rows.windows(2) {
        assert_eq!(
            (pair[1].0 - pair[0].0).num_seconds(),
            2,
            "every fire recorded once: {rows:?}"
        );
    }
}
