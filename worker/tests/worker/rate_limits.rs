//! A job kind's own `rate_limit` from jobs.toml, shared by every replica.

use herald_shared::effects::EffectKind;
use herald_shared::jobs_config::RateLimit;
use serde_json::Value;

use crate::helpers::{Mail, TestWorker, in_millis};

/// Most rounds of five e-mails.
const ROUNDS: usize = 8;

/// Five e-mails at 2 a second on two replicas are spaced by the limit. The test shows the
/// limit shared only in a round where both replicas sent: both poll Redis every 25 ms, so
/// each task due at its slot goes to whichever looks first, and a round in which one replica
/// sent all five is followed by another (at most [`ROUNDS`]; all of them must hold the limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kinds_rate_limit_spaces_its_jobs_across_two_replicas() {
    let test = TestWorker::spawn_with(
        Mail::Sandbox,
        &[("worker.poll_interval_ms", Value::from(25))],
        |jobs| {
            jobs.with(EffectKind::Email, |settings| {
                settings.rate_limit = Some(RateLimit { per_second: 2 });
            })
        },
        &["a", "b"],
    )
    .await;
    for round in 0..ROUNDS {
        let ran_before = test.tasks_run_by_replica().await;
        let ids = test
            .plan_emails(5, |i| format!("p{round}-{i}@example.com"), in_millis(200))
            .await;

        test.wait_all_in("sandboxed", 5 * (round as i64 + 1)).await;

        let mut finished = Vec::new();
        for id in ids {
            let row = test.row(id).await;
            assert_eq!(row.attempts, 1);
            finished.push(row.finished_at.unwrap());
        }
        finished.sort();
        let span = finished[4] - finished[0];
        // 2 per second, evenly spaced: 5 jobs span at least 2 s (slots 0, 0.5, … 2 s)
        assert!(
            span >= chrono::Duration::milliseconds(1900),
            "5 jobs at 2/s finished within {span}"
        );

        // the limit is shared, not one replica doing all the work
        if test.every_replica_ran_since(&ran_before).await {
            test.finish().await;
            return;
        }
        eprintln!("round {round}: one replica sent all five");
    }
    panic!("in none of {ROUNDS} rounds did both replicas send");
}
