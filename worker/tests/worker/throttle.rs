//! Rate limits applied where rows are claimed (`herald_worker::throttle`): a backlog larger
//! than a limit's slots within the horizon is pushed once per row, spends no attempt waiting,
//! and does not hold another account's messages behind it on a shared sender.

use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_shared::effects::EffectKind;
use herald_shared::jobs_config::RateLimit;
use serde_json::Value;
use uuid::Uuid;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

use herald_testing::fixtures::Fixtures;

use crate::dispatch::{add_account, plan_account_emails};
use crate::helpers::{Mail, PATIENCE, TestWorker, wait_until};
use crate::messages::twilio;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limited_backlog_is_pushed_once_per_row_and_spends_no_attempt_waiting() {
    // 150 e-mails due at once under 50 a second: 3 s of slots, 1 s of which the dispatcher
    // may hand out ahead; the rest wait in PostgreSQL for their turn
    let test = TestWorker::spawn_with(
        Mail::Sandbox,
        &[],
        |jobs| {
            jobs.with(EffectKind::Email, |email| {
                email.rate_limit = Some(RateLimit { per_second: 50 });
            })
        },
        &["a", "b"],
    )
    .await;
    let planned_at = Utc::now();
    let ids = plan_account_emails(&test, test.account_id, 150, planned_at).await;
    test.wait_all_in("sandboxed", 150).await;
    // the limit is shared, not one replica doing all the work
    test.assert_every_replica_ran_tasks().await;

    let rows: Vec<(i32, i32, DateTime<Utc>)> = sqlx::query_as(
        "select attempts, dispatches, sending_at from effects where id = any($1)
         order by sending_at",
    )
    .bind(&ids)
    .fetch_all(test.db())
    .await
    .unwrap();
    for (attempts, dispatches, _) in &rows {
        assert_eq!(
            (*attempts, *dispatches),
            (1, 1),
            "a row waiting for its slot was pushed or attempted again"
        );
    }
    // the limit held: slots 20 ms apart from the plan on, and no send before its slot
    for (n, (_, _, sending_at)) in rows.iter().enumerate() {
        let earliest = planned_at + chrono::Duration::milliseconds(20 * n as i64 - 50);
        assert!(
            *sending_at >= earliest,
            "send {n} started {} after planning",
            *sending_at - planned_at
        );
    }
    test.finish().await;
}

/// A group of `students` SMS students of `account_id` with a `scheduled` delivery, and
/// `students` messages to them due now, planned by the delivery planner; the effect ids.
async fn plan_delivery(test: &TestWorker, account_id: Uuid, students: i32) -> Vec<Uuid> {
    let fixtures = Fixtures {
        account_id,
        ..test.fixtures()
    };
    let delivery = fixtures.create_delivery().await;
    let phones: Vec<String> = (1..=students).map(|i| format!("+1415{i:07}")).collect();
    let student_ids = fixtures.add_students(delivery, &phones, "sms").await;
    fixtures
        .plan_messages(delivery, &student_ids, "hello", Utc::now())
        .await
}

async fn count_sent(test: &TestWorker, ids: &[Uuid]) -> i64 {
    sqlx::query_scalar("select count(*) from effects where id = any($1) and state = 'sent'")
        .bind(ids)
        .fetch_one(test.db())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_accounts_messages_on_a_shared_sender_go_out_within_seconds_beside_a_rate_limited_backlog()
 {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"sid": "SM0000000000000000000000000000000a"})),
        )
        .mount(&server)
        .await;
    let mut settings = twilio(&server);
    settings.push(("twilio.sms_per_second", Value::from(20)));
    let test = TestWorker::spawn_with(Mail::Sandbox, &settings, |jobs| jobs, &["a"]).await;

    // account A: 10,000 messages due now on the platform's one SMS number, 20 a second
    let backlog = plan_delivery(&test, test.account_id, 10_000).await;
    wait_until("the backlog is being sent", PATIENCE, || async {
        count_sent(&test, &backlog).await >= 20
    })
    .await;

    // account B then plans 10 on the same number
    let other = add_account(&test).await;
    let planned_at = tokio::time::Instant::now();
    let others = plan_delivery(&test, other, 10).await;
    wait_until(
        "the other account's ten are sent",
        Duration::from_secs(5),
        || async { count_sent(&test, &others).await == 10 },
    )
    .await;
    let took = planned_at.elapsed();
    let backlog_sent = count_sent(&test, &backlog).await;
    eprintln!("the ten were sent {took:?} after planning; {backlog_sent} of the backlog by then");
    assert!(backlog_sent < 10_000, "the backlog was done first");

    // the backlog goes on meanwhile, and none of it was pushed or attempted twice
    let sent_before = backlog_sent;
    wait_until("the backlog goes on", PATIENCE, || async {
        count_sent(&test, &backlog).await > sent_before + 20
    })
    .await;
    let (repeated, postponed): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where dispatches > 1 or attempts > 1),
                count(*) filter (where state = 'planned' and next_attempt_at > now())
         from effects where id = any($1)",
    )
    .bind(&backlog)
    .fetch_one(test.db())
    .await
    .unwrap();
    assert_eq!(
        repeated, 0,
        "backlog rows pushed or attempted more than once"
    );
    assert!(
        postponed > 9_000,
        "the backlog waits in PostgreSQL for its turns ({postponed} postponed)"
    );
    test.finish().await;
}
