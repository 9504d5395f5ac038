//! Replicas: several draining one queue, and a graceful shutdown mid-send.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use crate::helpers::{Mail, TestWorker};

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
    let ids = test
        .plan_emails(300, |i| format!("many-{i}@example.com"), Utc::now())
        .await;

    test.wait_all_in("sent", 300).await;

    let in_maildir = test.smtp().effect_ids();
    assert_eq!(in_maildir.len(), 300, "messages in the Maildir");
    let distinct: BTreeSet<Uuid> = in_maildir.into_iter().collect();
    assert_eq!(
        distinct,
        ids.into_iter().collect::<BTreeSet<_>>(),
        "one message per effect"
    );
    let attempts: Vec<i32> = sqlx::query_scalar("select distinct attempts from effects")
        .fetch_all(test.db())
        .await
        .unwrap();
    assert_eq!(attempts, vec![1]);
    // both replicas drained it
    test.assert_every_replica_ran_tasks().await;
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
