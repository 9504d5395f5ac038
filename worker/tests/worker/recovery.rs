//! The recovery sweep: rows lost between PostgreSQL and Redis, rows stuck mid-send, and
//! trimming finished apalis tasks from Redis.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use herald_shared::db::effects::{self, Retry, SentOutcome};
use herald_shared::db::outbound_messages::{self, ProviderStatus};
use herald_shared::effects::{EffectKind, EffectState};

use crate::helpers::{Mail, PATIENCE, TestWorker, in_millis, wait_until};

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
        sent_from: None,
        recipient: None,
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
async fn a_status_callback_for_a_message_awaiting_its_look_up_records_it_sent() {
    let test = TestWorker::spawn(&[], |jobs| jobs).await;
    let delivery = test.create_delivery().await;
    let student = test.add_student(delivery, "+14155550125", "sms").await;
    let later = Utc::now() + chrono::Duration::days(1);
    let awaiting = test
        .plan_message(delivery, student, 0, "hello", later)
        .await;
    let plain = test
        .plan_message(delivery, student, 1, "again", later)
        .await;
    // both failed an attempt; only the first may have reached Twilio (its answer was lost)
    sqlx::query(
        "update effects set state = 'retrying',
             unconfirmed_since = case when id = $1 then now() end
         where id in ($1, $2)",
    )
    .bind(awaiting.effect_id)
    .bind(plain.effect_id)
    .execute(test.db())
    .await
    .unwrap();
    let mut conn = test.db().acquire().await.unwrap();
    for (planned, sid) in [(awaiting, "SM51"), (plain, "SM52")] {
        let report = ProviderStatus {
            provider_id: sid,
            status: "delivered",
            error_code: None,
            error_message: None,
            sent_from: None,
            recipient: None,
        };
        outbound_messages::record_provider_status(&mut conn, planned.effect_id, &report)
            .await
            .unwrap();
    }
    drop(conn);
    let row = test.row(awaiting.effect_id).await;
    assert_eq!(
        (row.state.as_str(), row.provider_id.as_deref()),
        ("sent", Some("SM51")),
        "Twilio has it: sent, never looked up or sent again"
    );
    let row = test.row(plain.effect_id).await;
    assert_eq!(
        row.state, "retrying",
        "a plain retry is not made `sent` by a report (none can come for it)"
    );
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
        force(&test, planned.effect_id, "queued", 0).await;
        let started = effects::start_sending(test.db(), planned.effect_id)
            .await
            .unwrap()
            .expect("the row was queued");
        sqlx::query("update deliveries set status = $2 where id = $1")
            .bind(delivery.delivery_id)
            .bind(status)
            .execute(test.db())
            .await
            .unwrap();
        assert!(
            effects::park_for_delivery(test.db(), started.attempt(), "delivery paused")
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

/// Deletes every key under the test's Redis prefix in one atomic script — what `FLUSHALL` (or
/// a failover to an empty replica) does to this deployment, without touching the Redis other
/// tests share — and returns how many tasks were waiting in the e-mail queue at that instant.
async fn flush_test_prefix(test: &TestWorker) -> u64 {
    let queue = test.email_queue();
    let mut conn = test.redis.clone();
    redis::Script::new(
        "local waiting = redis.call('ZCARD', KEYS[1]) + redis.call('LLEN', KEYS[2])
         local keys = redis.call('KEYS', ARGV[1])
         for i = 1, #keys, 500 do
             redis.call('DEL', unpack(keys, i, math.min(i + 499, #keys)))
         end
         return waiting",
    )
    .key(queue.scheduled_jobs_set())
    .key(queue.active_jobs_list())
    .arg(format!("{}*", test.env.config.redis.key_prefix))
    .invoke_async(&mut conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_lost_in_a_redis_flush_mid_batch_are_dispatched_again_at_once_and_sent_once() {
    const COUNT: usize = 40;
    // The sweep would bring lost rows back only after an hour: anything sooner is the epoch.
    let test = TestWorker::spawn_with(
        Mail::Smtp { slow_seconds: 0.2 },
        &[("worker.requeue_after_secs", json!(3600))],
        |jobs| {
            jobs.with(EffectKind::Email, |email| {
                // two at a time, each held 0.2 s by the SMTP stand-in, ten in flight: most of
                // the window waits in Redis, where the flush takes it
                email.concurrency = 2;
                email.window = 10;
            })
        },
        &["a"],
    )
    .await;
    let ids = test
        .plan_emails(COUNT, |i| format!("slow-flush-{i}@example.com"), Utc::now())
        .await;

    wait_until("a few e-mails are sent", PATIENCE, || async {
        test.count_in("sent").await >= 4
    })
    .await;
    let waiting = flush_test_prefix(&test).await;
    let flushed_at = tokio::time::Instant::now();
    assert!(waiting > 0, "no task was waiting in Redis at the flush");
    assert!(
        test.count_in("sent").await < COUNT as i64 - 10,
        "the batch was nearly done before the flush"
    );

    // Idle well before the sweep's hour: every row sent.
    wait_until("every e-mail is sent", PATIENCE, || async {
        test.count_in("sent").await == COUNT as i64
    })
    .await;
    let took = flushed_at.elapsed();
    eprintln!("{waiting} tasks flushed from Redis; all {COUNT} sent {took:?} after the flush");

    // Exactly once: each e-mail reached the SMTP server once and was attempted once.
    let mut delivered = test.smtp().effect_ids();
    delivered.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(delivered, expected, "each e-mail delivered exactly once");
    let (max_attempts, redispatched): (i32, i64) =
        sqlx::query_as("select max(attempts), count(*) filter (where dispatches > 1) from effects")
            .fetch_one(test.db())
            .await
            .unwrap();
    assert_eq!(max_attempts, 1, "no e-mail was attempted twice");
    assert!(
        redispatched >= i64::try_from(waiting).unwrap(),
        "{redispatched} rows dispatched again, {waiting} tasks were flushed"
    );
    test.finish().await;
}

#[tokio::test]
async fn an_attempt_given_up_on_cannot_record_its_late_outcome_over_the_next_attempt() {
    let test = TestWorker::spawn(&[], |jobs| jobs).await;
    let delivery = test.create_delivery().await;
    let student = test.add_student(delivery, "+14155550125", "sms").await;
    let due = Utc::now() + chrono::Duration::days(1);
    let id = test
        .plan_message(delivery, student, 0, "m", due)
        .await
        .effect_id;
    // the first attempt starts, is taken for dead (its row found stuck) and the row is
    // started again: two attempts, the first of which still runs somewhere
    force(&test, id, "queued", 0).await;
    let first = effects::start_sending(test.db(), id)
        .await
        .unwrap()
        .unwrap();
    force(&test, id, "queued", 0).await;
    let second = effects::start_sending(test.db(), id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(first.start_token, second.start_token);

    let late = first.attempt();
    let at = Utc::now();
    assert!(
        !effects::retry(test.db(), late, Retry::Counted, "late", at)
            .await
            .unwrap()
    );
    assert!(
        !effects::finish_failed(test.db(), late, EffectState::Failed, "late")
            .await
            .unwrap()
    );
    assert!(
        !effects::finish_skipped(test.db(), late, EffectState::Canceled, "late")
            .await
            .unwrap()
    );
    assert!(!effects::defer(test.db(), late, at).await.unwrap());
    let sent = |started: &effects::Started| SentOutcome {
        id,
        token: started.start_token,
        state: EffectState::Sent,
        provider_id: Some("SM1".to_owned()),
        message: None,
    };
    assert!(
        !effects::finish_sent(test.db(), &sent(&first))
            .await
            .unwrap()
    );
    assert_eq!(
        test.state(id).await,
        "sending",
        "the second attempt still owns the row"
    );

    assert!(
        effects::finish_sent(test.db(), &sent(&second))
            .await
            .unwrap()
    );
    assert_eq!(test.state(id).await, "sent");
    test.finish().await;
}
