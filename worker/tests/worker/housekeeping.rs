//! The `housekeeping` cron job: finished rows past `worker.retention_days` go, everything
//! still owed or still part of a history stays.

use chrono::{DateTime, Utc};
use herald_testing::fixtures;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Mail, PATIENCE, TestWorker, wait_until};

/// An e-mail effect in `state`, finished (if at all) at `finished_at`; returns its id.
async fn effect(
    test: &TestWorker,
    kind: &str,
    state: &str,
    finished_at: Option<DateTime<Utc>>,
) -> Uuid {
    sqlx::query_scalar(
        "insert into effects (account_id, kind, queue, idempotency_key, state, payload, due_at,
                              next_attempt_at, finished_at, created_at)
         values ($1, $2, $2, $3, $4, '{}', now() - interval '200 days',
                 now() - interval '200 days', $5, now() - interval '200 days')
         returning id",
    )
    .bind(test.account_id)
    .bind(kind)
    .bind(Uuid::new_v4().to_string())
    .bind(state)
    .bind(finished_at)
    .fetch_one(test.db())
    .await
    .expect("an effect")
}

async fn exists(test: &TestWorker, table: &str, id: Uuid) -> bool {
    sqlx::query_scalar(&format!(
        "select exists (select 1 from {table} where id = $1)"
    ))
    .bind(id)
    .fetch_one(test.db())
    .await
    .expect("a lookup")
}

#[tokio::test]
async fn housekeeping_deletes_finished_rows_past_retention_and_keeps_what_is_owed_or_latest() {
    let test = TestWorker::spawn_with(Mail::Sandbox, &[], |jobs| jobs, &[]).await;
    let retention = i64::from(test.env.config.worker.retention_days);
    let old = Utc::now() - chrono::Duration::days(retention + 1);
    let recent = Utc::now() - chrono::Duration::days(retention - 1);

    let old_sent = effect(&test, "email", "sent", Some(old)).await;
    let recent_sent = effect(&test, "email", "sent", Some(recent)).await;
    let old_but_owed = effect(&test, "email", "retrying", None).await;

    // a schedule with an old finished fire, and an old fire whose message is still owed
    let (group, _) = fixtures::create_group(test.db(), test.account_id, &[]).await;
    let schedule: Uuid = sqlx::query_scalar(
        "insert into schedules (account_id, name, cron, timezone, group_id, text)
         values ($1, 's', '@daily', 'UTC', $2, 'Hi') returning id",
    )
    .bind(test.account_id)
    .bind(group)
    .fetch_one(test.db())
    .await
    .unwrap();
    let mut fires = Vec::new();
    for (day, effect_state) in [(2, "sent"), (1, "retrying")] {
        let at = old - chrono::Duration::days(day);
        let fire: Uuid = sqlx::query_scalar(
            "insert into schedule_fires (schedule_id, timezone, fire_at, local_time, state)
             values ($1, 'UTC', $2, $2::timestamp, 'planned') returning id",
        )
        .bind(schedule)
        .bind(at)
        .fetch_one(test.db())
        .await
        .unwrap();
        let finished = (effect_state == "sent").then_some(at);
        let message = effect(&test, "message", effect_state, finished).await;
        sqlx::query(
            "insert into schedule_messages (effect_id, schedule_id, fire_id)
             values ($1, $2, $3)",
        )
        .bind(message)
        .bind(schedule)
        .bind(fire)
        .execute(test.db())
        .await
        .unwrap();
        fires.push((fire, message));
    }

    // a trigger's old fires: all but the latest go (catch-up starts from the latest)
    let mut cron = Vec::new();
    for day in [3, 2] {
        let id: Uuid = sqlx::query_scalar(
            "insert into cron_fires (trigger, fire_at, state) values ('nightly', $1, 'done')
             returning id",
        )
        .bind(old - chrono::Duration::days(day))
        .fetch_one(test.db())
        .await
        .unwrap();
        cron.push(id);
    }

    let cleaned = herald_worker::housekeeping::run(&test.context("keeper").await)
        .await
        .unwrap();

    assert!(!exists(&test, "effects", old_sent).await);
    assert!(exists(&test, "effects", recent_sent).await);
    assert!(exists(&test, "effects", old_but_owed).await);
    let (finished_fire, finished_message) = fires[0];
    let (owed_fire, owed_message) = fires[1];
    assert!(!exists(&test, "schedule_fires", finished_fire).await);
    assert!(!exists(&test, "effects", finished_message).await);
    assert!(exists(&test, "schedule_fires", owed_fire).await);
    assert!(exists(&test, "effects", owed_message).await);
    assert!(!exists(&test, "cron_fires", cron[0]).await);
    assert!(exists(&test, "cron_fires", cron[1]).await);
    assert_eq!(
        (cleaned.effects, cleaned.schedule_fires, cleaned.cron_fires),
        (2, 1, 1)
    );
    // running it again finds nothing more
    let again = herald_worker::housekeeping::run(&test.context("keeper").await)
        .await
        .unwrap();
    assert_eq!(
        (again.effects, again.schedule_fires, again.cron_fires),
        (0, 0, 0)
    );
    test.finish().await;
}

#[tokio::test]
async fn housekeeping_deletes_every_eligible_row_in_bounded_batches() {
    let test = TestWorker::spawn_with(
        Mail::Sandbox,
        &[("worker.housekeeping_batch", json!(3))],
        |jobs| jobs,
        &[],
    )
    .await;
    let retention = i64::from(test.env.config.worker.retention_days);
    let old = Utc::now() - chrono::Duration::days(retention + 1);
    let recent = Utc::now() - chrono::Duration::days(retention - 1);
    let mut old_ids = Vec::new();
    for _ in 0..10 {
        old_ids.push(effect(&test, "email", "sent", Some(old)).await);
    }
    let kept = effect(&test, "email", "sent", Some(recent)).await;
    // SendGrid events past the retention go; recent ones stay to skip SendGrid's repeats
    for (id, received_at) in [("ev-old", old), ("ev-new", recent)] {
        sqlx::query(
            "insert into email_events (sg_event_id, event, email, received_at)
             values ($1, 'delivered', 'a@example.com', $2)",
        )
        .bind(id)
        .bind(received_at)
        .execute(test.db())
        .await
        .unwrap();
    }

    let cleaned = herald_worker::housekeeping::run(&test.context("keeper").await)
        .await
        .unwrap();

    assert_eq!(cleaned.effects, 10);
    assert_eq!(cleaned.email_events, 1);
    assert_eq!(test_count(&test, "email_events").await, 1);
    for id in old_ids {
        assert!(!exists(&test, "effects", id).await);
    }
    assert!(exists(&test, "effects", kept).await);
    // effects: 3 + 3 + 3 + 1; each other deletion: one short (empty) batch
    assert_eq!(cleaned.batches, 4 + 6, "{cleaned:?}");
    test.finish().await;
}

#[tokio::test]
async fn housekeeping_trims_finished_tasks_from_redis_even_while_the_sweep_holds_its_turn() {
    // the sweep trims once at start, then holds its per-interval turn for an hour
    let test = TestWorker::spawn(
        &[
            ("worker.sweep_interval_secs", json!(3_600)),
            ("worker.redis_task_retention_secs", json!(1)),
        ],
        |jobs| jobs,
    )
    .await;
    test.plan_emails(5, |i| format!("keep-{i}@example.com"), Utc::now())
        .await;
    let queue = test.email_queue();
    let (done, data) = (queue.done_jobs_set(), queue.job_data_hash());
    wait_until(
        "apalis recorded the tasks as finished",
        PATIENCE,
        || async { test.scard(&done).await == 5 },
    )
    .await;
    let finished = Utc::now();
    wait_until("the one-second retention passed", PATIENCE, || async {
        Utc::now() > finished + chrono::Duration::milliseconds(2_100)
    })
    .await;

    let cleaned = herald_worker::housekeeping::run(&test.context("keeper").await)
        .await
        .unwrap();

    assert_eq!(cleaned.redis_tasks, 5);
    assert_eq!(test.scard(&done).await, 0);
    assert_eq!(test.hlen(&data).await, 0);
    test.finish().await;
}

async fn test_count(test: &TestWorker, table: &str) -> i64 {
    sqlx::query_scalar(&format!("select count(*) from {table}"))
        .fetch_one(test.db())
        .await
        .unwrap()
}
