//! A job kind's own `rate_limit` from jobs.toml, shared by every replica.

use herald_shared::effects::EffectKind;
use herald_shared::jobs_config::RateLimit;

use crate::helpers::{Mail, TestWorker, in_millis};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kinds_rate_limit_spaces_its_jobs_across_two_replicas() {
    let test = TestWorker::spawn_with(
        Mail::Sandbox,
        &[],
        |jobs| {
            jobs.with(EffectKind::Email, |settings| {
                settings.rate_limit = Some(RateLimit { per_second: 2 });
            })
        },
        &["a", "b"],
    )
    .await;
    let ids = test
        .plan_emails(5, |i| format!("p{i}@example.com"), in_millis(200))
        .await;

    test.wait_all_in("sandboxed", 5).await;
    // the limit is shared, not one replica doing all the work
    test.assert_every_replica_ran_tasks().await;

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
    test.finish().await;
}
