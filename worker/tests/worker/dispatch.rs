//! The dispatcher: due times, the Redis window (backpressure) and cancellation.

use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_shared::db::effects;
use herald_shared::effects::{EffectKind, EffectState};
use herald_testing::fixtures::Fixtures;
use uuid::Uuid;

use crate::helpers::{Mail, PATIENCE, TestWorker, in_millis, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_effect_due_later_is_not_started_before_its_due_time_and_is_started_within_a_second_after()
 {
    let test = TestWorker::spawn(&[], |jobs| jobs).await;
    let id = test.plan_email("later@example.com", in_millis(1_500)).await;
    let due = test.row(id).await.due_at;

    // Until shortly before the due time the row must stay planned (checked all along, not
    // once after a sleep).
    while Utc::now() < due - chrono::Duration::milliseconds(50) {
        let row = test.row(id).await;
        assert_eq!(
            row.state, "planned",
            "started {:?} before its due time {due}",
            row.queued_at
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = test.wait_for_state(id, "sandboxed").await;

    let queued_at = row.queued_at.unwrap();
    let sending_at = row.sending_at.unwrap();
    // pushed at most the dispatch lead ahead, started only once due
    let lead = chrono::Duration::milliseconds(20);
    assert!(
        queued_at >= due - lead,
        "dispatched at {queued_at}, more than {lead} before its due time {due}"
    );
    assert!(
        sending_at >= due,
        "started at {sending_at}, before its due time {due}"
    );
    // The dispatcher sleeps until the next due time; its 5 s safety tick would miss this.
    assert!(
        sending_at - due < chrono::Duration::seconds(1),
        "started {} after its due time",
        sending_at - due
    );
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_due_effects_never_put_more_than_the_window_into_redis_and_all_end_sandboxed() {
    const WINDOW: i64 = 50;
    const COUNT: i64 = 1_000;
    let test = TestWorker::spawn(&[], |jobs| {
        jobs.with(EffectKind::Email, |email| {
            email.window = u32::try_from(WINDOW).unwrap()
        })
    })
    .await;
    test.plan_emails(
        usize::try_from(COUNT).unwrap(),
        |i| format!("bulk-{i}@example.com"),
        Utc::now(),
    )
    .await;

    // Sample while draining. Neither bound needs slack: the dispatcher counts `queued` rows
    // under a per-queue advisory lock, and only handlers (taking rows out of `queued`) run
    // concurrently with it, so the count can only fall between its check and its commit. A
    // task waiting in Redis (scheduled or active) always belongs to a row already `queued`
    // (claims are committed before the push; fetching moves the id to an in-flight set
    // before the handler starts the row), so Redis can hold no more than the queued rows.
    // Prefetched (in-flight) tasks are not in these Redis counts, but their rows are still
    // `queued`, so the database bound covers them.
    let mut most_queued = 0;
    let mut most_in_redis = 0;
    let mut samples = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let queued: i64 = sqlx::query_scalar("select count(*) from effects where state = 'queued'")
            .fetch_one(test.db())
            .await
            .unwrap();
        let in_redis = test.redis_waiting().await;
        samples += 1;
        most_queued = most_queued.max(queued);
        most_in_redis = most_in_redis.max(in_redis);
        assert!(queued <= WINDOW, "{queued} rows queued, window {WINDOW}");
        assert!(
            in_redis <= WINDOW as u64,
            "{in_redis} tasks waiting in Redis, window {WINDOW}"
        );
        if test.count_in("sandboxed").await == COUNT {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not drained in time: {:?}",
            test.states().await
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    assert!(
        most_queued > 0,
        "never saw a queued row in {samples} samples"
    );
    let (min_attempts, max_attempts, min_dispatches, max_dispatches): (i32, i32, i32, i32) =
        sqlx::query_as(
            "select min(attempts), max(attempts), min(dispatches), max(dispatches) from effects",
        )
        .fetch_one(test.db())
        .await
        .unwrap();
    assert_eq!(
        (min_attempts, max_attempts),
        (1, 1),
        "every effect ran once"
    );
    assert_eq!(
        (min_dispatches, max_dispatches),
        (1, 1),
        "every effect was pushed once"
    );
    eprintln!(
        "{samples} samples: at most {most_queued} rows queued, {most_in_redis} tasks waiting in Redis"
    );
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_effect_canceled_before_its_due_time_is_never_sent() {
    let test = TestWorker::spawn(&[], |jobs| jobs).await;
    let due = in_millis(2_000);
    let canceled = test.plan_email("canceled@example.com", due).await;
    let witness = test.plan_email("witness@example.com", due).await;

    let row = effects::transition(
        test.db(),
        test.account_id,
        canceled,
        &EffectState::CANCELABLE,
        EffectState::Canceled,
    )
    .await
    .unwrap()
    .expect("a planned effect can be canceled");
    assert_eq!(row.state, herald_shared::effects::EffectState::Canceled);

    // The witness, due at the same time, being done shows the dispatcher has run past the
    // due time (the canceled one is watched all along); the pipeline then going idle shows
    // nothing is left that could still send it.
    wait_until("the witness is done", PATIENCE, || async {
        let row = test.row(canceled).await;
        assert_eq!(row.state, "canceled");
        assert_eq!((row.attempts, row.dispatches), (0, 0));
        test.state(witness).await == "sandboxed"
    })
    .await;
    test.wait_for_idle().await;

    let row = test.row(canceled).await;
    assert_eq!(row.state, "canceled");
    assert_eq!(row.attempts, 0);
    assert_eq!(row.dispatches, 0);
    assert_eq!(row.queued_at, None);
    assert_eq!(row.sending_at, None);
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_reaches_redis_only_after_its_rows_claim_is_committed() {
    let test = TestWorker::spawn(&[], |jobs| jobs).await;
    // Make every commit that queues a row slow (a deferred trigger runs at commit time), so
    // a task pushed before its claim commits would surely be picked up while the row still
    // reads `planned`: the handler would skip it and the row would sit `queued` for good.
    sqlx::raw_sql(
        "create function slow_commit() returns trigger as $$
         begin perform pg_sleep(0.5); return null; end; $$ language plpgsql;
         create constraint trigger slow_queued_commit after update on effects
             deferrable initially deferred for each row when (new.state = 'queued')
             execute function slow_commit();",
    )
    .execute(test.db())
    .await
    .unwrap();
    let id = test.plan_email("slow-commit@example.com", Utc::now()).await;

    let row = test.wait_for_state(id, "sandboxed").await;
    assert_eq!((row.attempts, row.dispatches), (1, 1));
    test.finish().await;
}

/// A second account, beside the test's own.
pub(crate) async fn add_account(test: &TestWorker) -> Uuid {
    herald_testing::fixtures::create_account(test.db(), "other").await
}

/// Plans `count` e-mails of `account_id` due at `due_at` in one transaction (a large backlog
/// quickly); returns their ids.
pub(crate) async fn plan_account_emails(
    test: &TestWorker,
    account_id: Uuid,
    count: i32,
    due_at: DateTime<Utc>,
) -> Vec<Uuid> {
    let fixtures = Fixtures {
        account_id,
        ..test.fixtures()
    };
    let count = usize::try_from(count).unwrap();
    fixtures
        .plan_emails(count, |i| format!("bulk-{i}@example.com"), due_at)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_serves_every_account_with_due_rows_in_turn_and_fills_the_rest_from_the_oldest() {
    // No replica: the test claims by hand.
    let test = TestWorker::spawn_with(Mail::Sandbox, &[], |jobs| jobs, &[]).await;
    let queue = test.jobs.get(EffectKind::Email).queue.clone();
    let backlog = test.account_id;
    let other = add_account(&test).await;
    let later = add_account(&test).await;
    // One account's backlog fell due a minute ago; the other's ten are due now, after all of
    // it; the third has only rows due tomorrow.
    plan_account_emails(
        &test,
        backlog,
        1_000,
        Utc::now() - chrono::Duration::minutes(1),
    )
    .await;
    let others = plan_account_emails(&test, other, 10, Utc::now()).await;
    plan_account_emails(&test, later, 5, Utc::now() + chrono::Duration::days(1)).await;

    let mut tx = test.db().begin().await.unwrap();
    let claimed = effects::claim_due(&mut tx, &queue, 100, Duration::ZERO)
        .await
        .unwrap();
    let ids: Vec<Uuid> = claimed.iter().map(|row| row.id).collect();
    effects::mark_queued(&mut tx, &ids).await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(claimed.len(), 100, "a full batch");
    let by_account: Vec<(Uuid, i64)> = sqlx::query_as(
        "select account_id, count(*) from effects where state = 'queued'
         group by account_id order by account_id",
    )
    .fetch_all(test.db())
    .await
    .unwrap();
    let count_of = |account: Uuid| {
        by_account
            .iter()
            .find(|(id, _)| *id == account)
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(
        count_of(other),
        10,
        "every due row of the small account: {by_account:?}"
    );
    assert_eq!(
        count_of(backlog),
        90,
        "the rest from the backlog: {by_account:?}"
    );
    assert_eq!(count_of(later), 0, "nothing not yet due");
    for id in others {
        assert_eq!(test.state(id).await, "queued");
    }
    // The backlog's claimed rows are its oldest.
    let (newest_claimed, oldest_left): (DateTime<Utc>, DateTime<Utc>) = sqlx::query_as(
        "select (select max(next_attempt_at) from effects where account_id = $1 and state = 'queued'),
                (select min(next_attempt_at) from effects where account_id = $1 and state = 'planned')",
    )
    .bind(backlog)
    .fetch_one(test.db())
    .await
    .unwrap();
    assert!(newest_claimed <= oldest_left);
    test.finish().await;
}

/// How many of `ids` are sent (sandboxed).
async fn count_sent(test: &TestWorker, ids: &[Uuid]) -> i64 {
    sqlx::query_scalar("select count(*) from effects where id = any($1) and state = 'sandboxed'")
        .bind(ids)
        .fetch_one(test.db())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_accounts_messages_due_now_are_sent_promptly_beside_a_large_backlog() {
    // A small window keeps the backlog draining for many seconds.
    let test = TestWorker::spawn(&[], |jobs| {
        jobs.with(EffectKind::Email, |email| email.window = 10)
    })
    .await;
    let backlog = plan_account_emails(&test, test.account_id, 3_000, Utc::now()).await;
    wait_until("the backlog is being sent", PATIENCE, || async {
        count_sent(&test, &backlog).await > 0
    })
    .await;

    let other = add_account(&test).await;
    let planned_at = tokio::time::Instant::now();
    let others = plan_account_emails(&test, other, 10, Utc::now()).await;
    wait_until(
        "the other account's ten are sent",
        Duration::from_secs(5),
        || async { count_sent(&test, &others).await == 10 },
    )
    .await;
    let took = planned_at.elapsed();
    let backlog_sent = count_sent(&test, &backlog).await;
    eprintln!("the ten were sent {took:?} after planning; {backlog_sent} of the backlog by then");
    assert!(
        backlog_sent < 3_000,
        "the backlog was done first: the test shows nothing"
    );
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_by_the_local_dispatcher_is_picked_up_at_once_not_on_the_slow_poll() {
    // The idle worker looks in Redis every 10 s; its own dispatcher's pushes must wake it.
    let test = TestWorker::spawn(
        &[("worker.poll_interval_ms", serde_json::json!(10_000))],
        |jobs| jobs,
    )
    .await;
    // Each due 2.5 s after the last was sent: the worker is idle again (it polls fast only
    // within 2 s of its last task), and all three fall before its next slow poll.
    for _ in 0..3 {
        let id = test.plan_email("wake@example.com", in_millis(2_500)).await;
        let row = test.wait_for_state(id, "sandboxed").await;
        let pickup = row.sending_at.unwrap() - row.queued_at.unwrap();
        assert!(
            pickup < chrono::Duration::milliseconds(500),
            "picked up {pickup} after its push"
        );
    }
    test.finish().await;
}
