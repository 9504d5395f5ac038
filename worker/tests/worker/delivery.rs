//! Sending: sandbox mode, real SMTP, permanent and retryable refusals, and a job that runs
//! twice.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;

use apalis::prelude::{Data, TaskSink};
use apalis_redis::RedisStorage;
use chrono::Utc;
use herald_shared::effects::{EffectKind, EffectTask};
use uuid::Uuid;

use crate::helpers::{Mail, PATIENCE, TestWorker, in_millis, wait_for, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_sandbox_mode_an_effect_due_now_ends_sandboxed_after_one_attempt_picked_up_within_a_second()
 {
    let test = TestWorker::spawn(&[], |jobs| jobs).await;
    let id = test.plan_email("someone@example.com", Utc::now()).await;

    let row = test.wait_for_state(id, "sandboxed").await;

    assert_eq!(row.attempts, 1);
    assert_eq!(row.dispatches, 1);
    assert_eq!(row.last_error, None);
    assert!(row.finished_at.is_some());
    let pickup = row.sending_at.unwrap() - row.next_attempt_at;
    assert!(
        pickup >= chrono::Duration::zero() && pickup < chrono::Duration::seconds(1),
        "picked up {pickup} after it was due"
    );
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_smtp_twenty_effects_end_sent_and_the_maildir_holds_exactly_one_message_per_effect() {
    let test = TestWorker::spawn_smtp(&[], |jobs| jobs).await;
    let ids = test
        .plan_emails(20, |i| format!("person-{i}@example.com"), Utc::now())
        .await;

    test.wait_all_in("sent", 20).await;

    let messages = test.smtp().messages();
    assert_eq!(messages.len(), 20, "messages in the Maildir");
    let in_maildir: BTreeSet<Uuid> = test.smtp().effect_ids().into_iter().collect();
    assert_eq!(
        in_maildir,
        ids.iter().copied().collect::<BTreeSet<_>>(),
        "Message-IDs are the effect ids"
    );
    for message in &messages {
        let id = message.effect_id().unwrap();
        let i = ids.iter().position(|planned| *planned == id).unwrap();
        assert_eq!(
            message.header("to"),
            Some(format!("person-{i}@example.com").as_str())
        );
        assert_eq!(
            message.header("subject"),
            Some(format!("test {i}").as_str())
        );
    }
    for id in ids {
        let row = test.row(id).await;
        assert_eq!(row.attempts, 1, "{id}");
        let provider_id = row.provider_id.unwrap_or_default();
        assert!(!provider_id.trim().is_empty(), "{id} has no provider id");
    }
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recipient_the_server_rejects_with_550_fails_after_one_attempt_and_nothing_is_delivered()
{
    let test = TestWorker::spawn_smtp(&[], |jobs| jobs).await;
    let id = test.plan_email("reject-x@example.com", Utc::now()).await;

    test.wait_for_state(id, "failed").await;
    // nothing left in flight: what has not happened by now will not
    test.wait_for_idle().await;

    let row = test.row(id).await;
    assert_eq!(row.state, "failed");
    assert_eq!(row.attempts, 1);
    assert_eq!(
        row.dispatches, 1,
        "a permanent failure is not dispatched again"
    );
    let error = row.last_error.unwrap_or_default();
    assert!(error.contains("550"), "last_error: {error:?}");
    assert!(row.finished_at.is_some());
    assert_eq!(test.smtp().messages().len(), 0);
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recipient_the_server_keeps_deferring_with_451_is_retried_then_dead_after_max_attempts() {
    let test = TestWorker::spawn_smtp(&[], |jobs| {
        jobs.with(EffectKind::Email, |email| {
            email.max_attempts = 3;
            email.retry_schedule = vec![Duration::from_millis(200)];
        })
    })
    .await;
    let id = test.plan_email("busy-x@example.com", Utc::now()).await;

    let seen = RefCell::new(BTreeSet::new());
    wait_for("the busy recipient's effect is dead", PATIENCE, || async {
        let row = test.row(id).await;
        seen.borrow_mut().insert(row.state.clone());
        (row.state == "dead").then_some(row)
    })
    .await;
    // nothing left in flight: what has not happened by now will not
    test.wait_for_idle().await;
    let row = test.row(id).await;
    assert_eq!(row.state, "dead");

    let seen = seen.into_inner();
    assert!(seen.contains("retrying"), "states seen: {seen:?}");
    assert_eq!(row.attempts, 3);
    assert_eq!(row.dispatches, 3, "one dispatch per attempt");
    let error = row.last_error.unwrap_or_default();
    assert!(error.contains("451"), "last_error: {error:?}");
    assert!(error.contains("3 attempts"), "last_error: {error:?}");
    assert_eq!(test.smtp().messages().len(), 0);
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_email_whose_server_stalls_after_data_ends_unknown_and_is_never_sent_again() {
    // `slow-` recipients: the stand-in takes the content, then holds its reply 3 s, past the
    // 1 s SMTP timeout
    let test = TestWorker::spawn_with(
        Mail::Smtp { slow_seconds: 3.0 },
        &[("email.smtp_timeout_secs", serde_json::Value::from(1))],
        |jobs| {
            jobs.with(EffectKind::Email, |email| {
                email.retry_schedule = vec![Duration::from_millis(100)];
            })
        },
        &["a"],
    )
    .await;
    let id = test.plan_email("slow-stall@example.com", Utc::now()).await;

    // `unknown` is final: no second attempt, no second dispatch (a retry would have gone
    // through `retrying` and come back here with two attempts)
    let row = test.wait_for_state(id, "unknown").await;
    assert_eq!((row.attempts, row.dispatches), (1, 1));
    let error = row.last_error.unwrap_or_default();
    assert!(error.contains("after DATA"), "last_error: {error:?}");
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_that_runs_twice_sends_once() {
    let test = TestWorker::spawn_smtp(&[], |jobs| jobs).await;
    // Due in an hour, so the dispatcher leaves it alone; then queued by hand, as a dispatch
    // would, and its id pushed twice (a double push, or apalis re-running a task).
    let id = test
        .plan_email("twice@example.com", in_millis(3_600_000))
        .await;
    sqlx::query(
        "update effects set state = 'queued', queued_at = now(), dispatches = 1 where id = $1",
    )
    .bind(id)
    .execute(test.db())
    .await
    .unwrap();
    let queue = test.email_queue();
    let mut storage =
        RedisStorage::<EffectTask>::new(test.redis.clone()).with_config(queue.clone());
    storage.push(EffectTask::new(id)).await.unwrap();
    storage.push(EffectTask::new(id)).await.unwrap();

    test.wait_for_state(id, "sent").await;
    // Both tasks ran: apalis marks each done.
    let done_set = queue.done_jobs_set();
    wait_until("both pushed tasks are done", PATIENCE, || async {
        test.scard(&done_set).await == 2
    })
    .await;
    let mut conn = test.redis.clone();
    let task_ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&done_set)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut results = Vec::new();
    for task_id in task_ids {
        let result: String = redis::cmd("HGET")
            .arg(format!("{}:{task_id}", queue.job_meta_hash()))
            .arg("result")
            .query_async(&mut conn)
            .await
            .unwrap();
        results.push(result);
    }
    results.sort();
    assert_eq!(results.len(), 2);
    assert!(
        results.iter().any(|r| r.contains("\"sent\"")),
        "results: {results:?}"
    );
    assert!(
        results.iter().any(|r| r.contains("skipped")),
        "results: {results:?}"
    );

    // A third run, straight through the handler, also does nothing.
    let third =
        herald_worker::jobs::handle_effect(EffectTask::new(id), Data::new(test.ctx().clone()))
            .await
            .unwrap();
    assert!(third.starts_with("skipped"), "{third}");

    let row = test.row(id).await;
    assert_eq!(row.state, "sent");
    assert_eq!(row.attempts, 1);
    assert_eq!(
        test.smtp().effect_ids(),
        vec![id],
        "exactly one message, for this effect"
    );
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_runs_of_the_same_tasks_share_batched_transitions_and_each_row_is_sent_once() {
    let test = TestWorker::spawn_with(Mail::Sandbox, &[], |jobs| jobs, &[]).await;
    let ctx = test.context("batch").await;
    let ids = test
        .plan_emails(50, |i| format!("batch-{i}@example.com"), Utc::now())
        .await;
    // Queued by hand, no dispatcher: every task below reaches the handler at once, so the
    // starts (including the duplicates) meet in the same batches.
    sqlx::query("update effects set state = 'queued', queued_at = now(), dispatches = 1")
        .execute(test.db())
        .await
        .unwrap();

    let runs = ids
        .iter()
        .chain(ids.iter())
        .map(|id| herald_worker::jobs::handle_effect(EffectTask::new(*id), Data::new(ctx.clone())));
    let results: Vec<String> = futures::future::join_all(runs)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let sandboxed = results.iter().filter(|r| *r == "sandboxed").count();
    let skipped = results.iter().filter(|r| r.starts_with("skipped")).count();
    assert_eq!((sandboxed, skipped), (50, 50), "results: {results:?}");
    for id in ids {
        let row = test.row(id).await;
        assert_eq!(row.state, "sandboxed");
        assert_eq!(row.attempts, 1);
    }
    test.finish().await;
}
