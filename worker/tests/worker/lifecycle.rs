//! Replicas: several draining one queue, and a graceful shutdown mid-send.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use crate::helpers::{Mail, TestWorker};

/// Bursts tried until both replicas have sent part of one.
const ROUNDS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_drain_one_queue_and_every_effect_is_sent_exactly_once() {
    let test = TestWorker::spawn_with(
        Mail::Smtp { slow_seconds: 1.0 },
        &[],
        |jobs| jobs,
        &["a", "b"],
    )
    .await;
    assert_ne!(test.replicas[0].ctx.replica, test.replicas[1].ctx.replica);
    // The replica whose dispatcher pushes wakes its own queue worker at once, so it may take
    // a whole burst while the other is between polls: rounds, until both have sent (see
    // `every_replica_ran_since`); every round checks once-only on its own.
    let mut planned = BTreeSet::new();
    for round in 0..ROUNDS {
        let ran_before = test.tasks_run_by_replica().await;
        let ids = test
            .plan_emails(300, |i| format!("many-{round}-{i}@example.com"), Utc::now())
            .await;
        planned.extend(ids);
        test.wait_all_in("sent", planned.len() as i64).await;

        let in_maildir = test.smtp().effect_ids();
        assert_eq!(in_maildir.len(), planned.len(), "messages in the Maildir");
        let distinct: BTreeSet<Uuid> = in_maildir.into_iter().collect();
        assert_eq!(distinct, planned, "one message per effect");
        let attempts: Vec<i32> = sqlx::query_scalar("select distinct attempts from effects")
            .fetch_all(test.db())
            .await
            .unwrap();
        assert_eq!(attempts, vec![1]);
        if test.every_replica_ran_since(&ran_before).await {
            break;
        }
        assert!(
            round + 1 < ROUNDS,
            "one replica sent everything in every round"
        );
    }
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shutdown_during_a_send_lets_the_send_finish_before_the_worker_returns() {
    // The stand-in holds `slow-` recipients for 1 s in DATA.
    let mut test = TestWorker::spawn_smtp(&[], |jobs| jobs).await;
    let id = test.plan_email("slow-x@example.com", Utc::now()).await;
    test.wait_for_state(id, "sending").await;

    let asked = tokio::time::Instant::now();
    test.replicas[0].begin_shutdown();
    test.replicas[0]
        .join(Duration::from_secs(30))
        .await
        .expect("the worker ended with an error");
    let took = asked.elapsed();

    // Read at once: by the time `run` returns, the send has been recorded.
    let row = test.row(id).await;
    assert_eq!(
        row.state, "sent",
        "after shutdown; last_error {:?}",
        row.last_error
    );
    assert_eq!(test.smtp().effect_ids(), vec![id]);
    assert!(
        took < Duration::from_secs(10),
        "returned after {took:?}: it should wait for the send, not the whole shutdown timeout"
    );
    test.finish().await;
}
