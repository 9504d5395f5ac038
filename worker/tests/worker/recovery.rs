//! The recovery sweep: rows lost between PostgreSQL and Redis, rows stuck mid-send, and
//! trimming finished apalis tasks from Redis.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use herald_shared::db::outbound_messages::{self, ProviderStatus};

use crate::helpers::{PATIENCE, TestWorker, in_millis, wait_until};

/// Puts row `id` into `state` by hand, as if that step had happened `minutes_ago`.
async fn force(test: &TestWorker, id: Uuid, state: &str, minutes_ago: i32) {
    let column = match state {
        "queued" => "queued_at",
        "sending" => "sending_at",
        other => panic!("cannot force {other}"),
    };
    sqlx::query(&format!(
        "update effects set state = $2, {column} = now() - make_interval(mins => $3),
             dispatches = 1, attempts = case when $2 = 'sending' then 1 else 0 end
         where id = $1"
    ))
    .bind(id)
    .bind(state)
    .bind(minutes_ago)
    .execute(test.db())
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweep_redispatches_rows_lost_from_redis_and_marks_rows_stuck_in_sending_unknown() {
    let test = TestWorker::spawn(
        &[
            ("worker.sweep_interval_secs", json!(1)),
            ("worker.requeue_after_secs", json!(60)),
            ("worker.stuck_sending_grace_secs", json!(0)),
        ],
        |jobs| jobs,
    )
    .await;
    // Due in an hour, so only the sweep can bring them back to the dispatcher.
    let later = in_millis(3_600_000);
    let lost = test.plan_email("lost@example.com", later).await;
    let stuck = test.plan_email("stuck@example.com", later).await;
    let recently_queued = test.plan_email("recently-queued@example.com", later).await;
    let recently_sending = test.plan_email("recently-sending@example.com", later).await;
    // Queued ten minutes ago, but no task in Redis (Redis flushed, say).
    force(&test, lost, "queued", 10).await;
    // A worker died mid-send ten minutes ago (the e-mail job times out after 30 s).
    force(&test, stuck, "sending", 10).await;
    // Within their limits: the sweep must leave these alone.
    force(&test, recently_queued, "queued", 0).await;
    force(&test, recently_sending, "sending", 0).await;

    let row = test.wait_for_state(lost, "sandboxed").await;
    assert_eq!(row.dispatches, 2, "dispatched again");
    assert_eq!(row.attempts, 1);
    assert!(row.sending_at.unwrap() > Utc::now() - chrono::Duration::minutes(1));

    let row = test.wait_for_state(stuck, "unknown").await;
    assert_eq!(row.attempts, 1, "never sent again");
    assert!(row.finished_at.is_some());
    let error = row.last_error.unwrap_or_default();
    assert!(
        error.contains("stopped while sending"),
        "last_error: {error:?}"
    );

    // A direct pass changes nothing more: the recent rows are within their limits.
    let swept = herald_worker::sweep::sweep_once(test.ctx()).await.unwrap();
    assert_eq!((swept.requeued, swept.unknown), (0, 0));
    assert_eq!(test.state(recently_queued).await, "queued");
    assert_eq!(test.state(recently_sending).await, "sending");
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finished_tasks_are_trimmed_from_redis_after_the_retention() {
    let test = TestWorker::spawn(
        &[
            ("worker.sweep_interval_secs", json!(1)),
            ("worker.redis_task_retention_secs", json!(2)),
        ],
        |jobs| jobs,
    )
    .await;
    let mut ids = test
        .plan_emails(20, |i| format!("trim-{i}@example.com"), Utc::now())
        .await;
    // An invalid address fails permanently even in sandbox mode: its task ends in `dead`.
    ids.push(test.plan_email("not an address", Utc::now()).await);
    let queue = test.email_queue();
    let (done, dead, data) = (
        queue.done_jobs_set(),
        queue.dead_jobs_set(),
        queue.job_data_hash(),
    );

    wait_until("all effects finished", PATIENCE, || async {
        let states = test.states().await;
        states.get("sandboxed") == Some(&20) && states.get("failed") == Some(&1)
    })
    .await;
    // Kept for the retention (2 s) first: apalis acknowledges every task...
    wait_until(
        "apalis recorded every task as finished",
        PATIENCE,
        || async {
            test.scard(&done).await == 20
                && test.scard(&dead).await == 1
                && test.hlen(&data).await == 21
        },
    )
    .await;
    assert_eq!(test.redis_keys("email:meta:*").await.len(), 21);

    // ...then the sweep removes them, data and metadata included.
    wait_until("finished tasks are trimmed", PATIENCE, || async {
        test.scard(&done).await == 0 && test.scard(&dead).await == 0 && test.hlen(&data).await == 0
    })
    .await;
    assert_eq!(test.redis_keys("email:meta:*").await, Vec::<String>::new());
    for id in &ids[..20] {
        assert_eq!(
            test.state(*id).await,
            "sandboxed",
            "trimming leaves the rows alone"
        );
    }
    test.finish().await;
}

#[tokio::test]
async fn a_status_callback_that_beats_the_sid_finds_its_message_by_effect_id() {
    let test = TestWorker::spawn(&[], |jobs| jobs).await;
    let delivery = test.create_delivery().await;
    let student = test.add_student(delivery, "+14155550123", "sms").await;
    let planned = test
        .plan_message(
            delivery,
            student,
            0,
            "hello",
            Utc::now() + chrono::Duration::days(1),
        )
        .await;
    let status = |sid: &'static str, status: &'static str| ProviderStatus {
        provider_id: sid,
        status,
        error_code: None,
        error_message: None,
    };
    let mut conn = test.db().acquire().await.unwrap();
    sqlx::query("update effects set state = 'sending' where id = $1")
        .bind(planned.effect_id)
        .execute(&mut *conn)
        .await
        .unwrap();
    // Twilio calls back before the worker has recorded the SID: the URL's effect id finds it
    for report in ["sent", "delivered"] {
        let recorded = outbound_messages::record_provider_status(
            &mut conn,
            planned.effect_id,
            &status("SM42", report),
        )
        .await
        .unwrap();
        assert!(recorded, "{report} is recorded at once");
    }
    // an older status after a later one changes nothing, nor does one for another SID
    let stale = outbound_messages::record_provider_status(
        &mut conn,
        planned.effect_id,
        &status("SM42", "sent"),
    )
    .await
    .unwrap();
    assert!(!stale);
    let (provider_status, provider_id): (Option<String>, Option<String>) = sqlx::query_as(
        "select m.provider_status, e.provider_id from outbound_messages m
         join effects e on e.id = m.effect_id where m.effect_id = $1",
    )
    .bind(planned.effect_id)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(provider_status.as_deref(), Some("delivered"));
    assert_eq!(
        provider_id.as_deref(),
        Some("SM42"),
        "the report names the SID"
    );
    let other = outbound_messages::record_provider_status(
        &mut conn,
        planned.effect_id,
        &status("SM99", "failed"),
    )
    .await
    .unwrap();
    assert!(!other, "a report about another SID is not this message's");
    drop(conn);
    test.finish().await;
}

#[tokio::test]
async fn a_message_parked_after_its_delivery_resumed_or_stopped_is_not_left_held() {
    let test = TestWorker::spawn(&[], |jobs| jobs).await;
    let delivery = test.create_delivery().await;
    let student = test.add_student(delivery, "+14155550124", "sms").await;
    let due = Utc::now() + chrono::Duration::days(1);
    let mut parked = Vec::new();
    for (seq, status) in [(0, "paused"), (1, "scheduled"), (2, "stopped")] {
        let planned = test.plan_message(delivery, student, seq, "m", due).await;
        // the handler saw a paused delivery; the delivery is now `status`
        sqlx::query("update effects set state = 'sending' where id = $1")
            .bind(planned.effect_id)
            .execute(test.db())
            .await
            .unwrap();
        sqlx::query("update deliveries set status = $2 where id = $1")
            .bind(delivery.delivery_id)
            .bind(status)
            .execute(test.db())
            .await
            .unwrap();
        assert!(
            herald_shared::db::effects::park_for_delivery(
                test.db(),
                planned.effect_id,
                "delivery paused"
            )
            .await
            .unwrap()
        );
        parked.push(test.state(planned.effect_id).await);
    }
    assert_eq!(parked, ["held", "planned", "canceled"]);
    test.finish().await;
}

#[tokio::test]
async fn a_failing_sweep_step_is_reported_and_does_not_skip_the_others() {
    let test = TestWorker::spawn_with(
        crate::helpers::Mail::Sandbox,
        &[
            ("worker.requeue_after_secs", json!(60)),
            ("worker.stuck_sending_grace_secs", json!(0)),
        ],
        |jobs| jobs,
        &[],
    )
    .await;
    let ctx = test.context("a").await;
    let later = in_millis(3_600_000);
    let lost = test.plan_email("lost@example.com", later).await;
    let stuck = test.plan_email("stuck@example.com", later).await;
    force(&test, lost, "queued", 10).await;
    force(&test, stuck, "sending", 10).await;
    let delivery = test.create_delivery().await;
    let student = test.add_student(delivery, "+14155550124", "sms").await;
    let planned = test
        .plan_message(delivery, student, 0, "hello", later)
        .await;
    // a message whose worker died mid-send
    sqlx::query(
        "update effects set state = 'sending', sending_at = now() - interval '1 hour'
         where id = $1",
    )
    .bind(planned.effect_id)
    .execute(test.db())
    .await
    .unwrap();
    // the first step (re-dispatching rows lost from Redis) fails in the database
    sqlx::raw_sql(
        "create function refuse_requeue() returns trigger language plpgsql as $$
         begin raise exception 'requeue refused by the test'; end $$;
         create trigger refuse_requeue before update on effects for each row
         when (old.state = 'queued' and new.state = 'planned')
         execute function refuse_requeue();",
    )
    .execute(test.db())
    .await
    .unwrap();

    let err = herald_worker::sweep::sweep_once(&ctx).await.unwrap_err();

    let err = format!("{err:#}");
    assert!(err.contains("requeue"), "{err}");
    assert!(err.contains("requeue refused by the test"), "{err}");
    assert_eq!(test.state(lost).await, "queued");
    // the later steps ran all the same
    assert_eq!(test.state(stuck).await, "unknown");
    // a stuck message is retried (the running replica may already be at it), looked up at
    // Twilio first
    let (state, unconfirmed): (String, bool) =
        sqlx::query_as("select state, unconfirmed_since is not null from effects where id = $1")
            .bind(planned.effect_id)
            .fetch_one(test.db())
            .await
            .unwrap();
    assert_ne!(state, "unknown");
    assert!(unconfirmed, "the retry asks Twilio before sending again");

    sqlx::raw_sql("drop trigger refuse_requeue on effects")
        .execute(test.db())
        .await
        .unwrap();
    let swept = herald_worker::sweep::sweep_once(&ctx).await.unwrap();
    assert_eq!(swept.requeued, 1);
    assert_eq!(test.state(lost).await, "planned");
    ctx.db.close().await;
    test.finish().await;
}
