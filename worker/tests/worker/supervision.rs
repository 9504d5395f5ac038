//! The worker's loops are supervised: a pass that fails or panics restarts its loop with
//! backoff, `/healthz` shows each loop's last pass and fails while one is stale, and a lost
//! LISTEN connection comes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::helpers::{Mail, PATIENCE, TestWorker, wait_for, wait_until};

/// The `/healthz` entry of loop `name`.
fn loop_entry(body: &Value, name: &str) -> Option<Value> {
    body["loops"]
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == name)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_loop_that_panics_or_fails_is_restarted_and_one_without_passes_fails_healthz() {
    let test = TestWorker::spawn_with(Mail::Sandbox, &[], |jobs| jobs, &["a"]).await;
    let (stop_tx, stop) = watch::channel(false);
    // first run panics, second fails, third passes every 20 ms until shutdown
    let runs = Arc::new(AtomicU32::new(0));
    let flaky = tokio::spawn(herald_worker::loops::supervise(
        test.ctx().clone(),
        "flaky",
        Duration::from_secs(30),
        stop.clone(),
        {
            let runs = runs.clone();
            move |ctx, mut stop| {
                let run = runs.fetch_add(1, Ordering::SeqCst);
                async move {
                    match run {
                        0 => panic!("boom in pass"),
                        1 => anyhow::bail!("the pass failed"),
                        _ => loop {
                            ctx.loops.passed("flaky");
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                                _ = stop.wait_for(|stop| *stop) => return Ok(()),
                            }
                        },
                    }
                }
            }
        },
    ));

    let entry = wait_for(
        "the flaky loop passes after two restarts",
        PATIENCE,
        || async {
            let (_, body) = test.health_get("/healthz").await;
            loop_entry(&body, "flaky").filter(|entry| !entry["last_pass_at"].is_null())
        },
    )
    .await;
    assert_eq!(entry["restarts"], 2, "{entry}");
    assert_eq!(entry["stale"], false);
    assert!(
        entry["last_error"]
            .as_str()
            .unwrap()
            .contains("the pass failed"),
        "{entry}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let (status, body) = test.health_get("/healthz").await;
    assert_eq!(status, 200, "{body}");

    // a loop that never completes a pass goes stale, and healthz fails naming it
    let stuck = tokio::spawn(herald_worker::loops::supervise(
        test.ctx().clone(),
        "stuck",
        Duration::from_millis(300),
        stop.clone(),
        |_, mut stop| async move {
            let _ = stop.wait_for(|stop| *stop).await;
            Ok(())
        },
    ));
    let body = wait_for("healthz fails for the stuck loop", PATIENCE, || async {
        let (status, body) = test.health_get("/healthz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["loops_stale"], serde_json::json!(["stuck"]), "{body}");
    assert_eq!(body["status"], "degraded");

    stop_tx.send(true).unwrap();
    flaky.await.unwrap();
    stuck.await.unwrap();
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_schedule_planner_restarts_after_failing_passes_and_healthz_is_503_until_it_recovers() {
    let test = TestWorker::spawn_with(
        Mail::Sandbox,
        &[
            ("schedules.plan_interval_ms", Value::from(50)),
            ("worker.loop_grace_secs", Value::from(1)),
        ],
        |jobs| jobs,
        &["a"],
    )
    .await;
    let planner = |body: &Value| loop_entry(body, "schedule_planner").unwrap();
    wait_until("every loop has passed", PATIENCE, || async {
        let (status, body) = test.health_get("/healthz").await;
        status == 200
            && ["dispatcher", "sweep", "schedule_planner", "cron"]
                .iter()
                .all(|name| loop_entry(&body, name).is_some_and(|e| !e["last_pass_at"].is_null()))
    })
    .await;

    // every planning pass now fails: the loop restarts, then goes stale
    sqlx::query("alter table schedules rename to schedules_away")
        .execute(test.db())
        .await
        .unwrap();
    let body = wait_for("healthz reports the planner stale", PATIENCE, || async {
        let (status, body) = test.health_get("/healthz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["loops_stale"], serde_json::json!(["schedule_planner"]));
    let entry = planner(&body);
    assert!(entry["restarts"].as_u64().unwrap() >= 1, "{entry}");
    assert!(
        entry["last_error"].as_str().unwrap().contains("schedules"),
        "{entry}"
    );

    // the database is fixed: the restarted loop passes again, healthz is back to 200
    sqlx::query("alter table schedules_away rename to schedules")
        .execute(test.db())
        .await
        .unwrap();
    wait_until("healthz is 200 again", PATIENCE, || async {
        let (status, body) = test.health_get("/healthz").await;
        status == 200 && planner(&body)["stale"] == false
    })
    .await;
    test.finish().await;
}

/// The pids of backends of `database` listening for the dispatcher's notifications.
async fn listeners(admin: &PgPool, database: &str) -> Vec<i32> {
    sqlx::query_scalar(
        "select pid from pg_stat_activity
         where datname = $1 and query ilike 'listen %herald_effects%'",
    )
    .bind(database)
    .fetch_all(admin)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_listen_connection_is_reconnected_with_backoff_even_after_failed_tries() {
    let test = TestWorker::spawn_with(Mail::Sandbox, &[], |jobs| jobs, &["a"]).await;
    let admin = std::env::var("HERALD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin = PgPool::connect(&admin).await.unwrap();
    let database = test.env.scratch.database_name.clone();
    let first = wait_for("the dispatcher listens", PATIENCE, || async {
        listeners(&admin, &database).await.first().copied()
    })
    .await;

    // the server refuses new connections for a while and ends every backend of the database,
    // the listener's and the pools' (with one left in a pool, sqlx would quietly LISTEN on
    // it): the first reconnection tries fail
    sqlx::query(&format!(
        "alter database {database} with allow_connections false"
    ))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query(
        "select pg_terminate_backend(pid) from pg_stat_activity
         where datname = $1 and pid <> pg_backend_pid()",
    )
    .bind(&database)
    .execute(&admin)
    .await
    .unwrap();
    wait_until(
        "healthz says the dispatcher is not listening",
        PATIENCE,
        || async { test.health_get("/healthz").await.1["dispatcher_listening"] == false },
    )
    .await;
    sqlx::query(&format!(
        "alter database {database} with allow_connections true"
    ))
    .execute(&admin)
    .await
    .unwrap();

    // while the database refused, every dispatcher round failed and the supervisor's restart
    // backoff doubled (1 s up to 10 s): under load the refusal can last long enough for the
    // next restart to be seconds away, so the wait allows for the longest backoff
    let after_backoff = PATIENCE + herald_worker::loops::MAX_BACKOFF;
    let second = wait_for("the dispatcher listens again", after_backoff, || async {
        listeners(&admin, &database)
            .await
            .into_iter()
            .find(|pid| *pid != first)
    })
    .await;
    assert_ne!(second, first);
    wait_until(
        "healthz says the dispatcher listens",
        after_backoff,
        || async { test.health_get("/healthz").await.1["dispatcher_listening"] == true },
    )
    .await;
    admin.close().await;
    test.finish().await;
}
