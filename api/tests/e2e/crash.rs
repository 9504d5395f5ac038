use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

use crate::stack::{Stack, wait_until};

const FINAL: [&str; 5] = ["sent", "failed", "dead", "unknown", "canceled"];

async fn wait_all_final(stack: &Stack, total: i64) {
    wait_until(
        "every effect in a final state",
        Duration::from_secs(60),
        || async { stack.count_in(&FINAL).await == total },
    )
    .await;
}

#[tokio::test]
async fn a_worker_killed_mid_run_loses_nothing_and_sends_nothing_twice() {
    // every send takes 1 s at the SMTP server; the worker runs 2 at a time
    let mut stack = Stack::new(1.0).await;
    let account = stack.account().await;
    let ids = stack.plan_emails(account, "slow", 12).await;
    let worker = stack.start_worker("doomed").await;
    wait_until(
        "some sent, some sending",
        Duration::from_secs(20),
        || async {
            stack.count_in(&["sent"]).await >= 2 && stack.count_in(&["sending"]).await >= 1
        },
    )
    .await;
    worker.kill_hard();
    let at_kill: HashMap<Uuid, String> = stack.states().await;
    assert!(at_kill.values().any(|s| s == "sending"));
    assert!(
        at_kill.values().any(|s| s == "queued" || s == "planned"),
        "{at_kill:?}"
    );

    let _replacement = stack.start_worker("replacement").await;
    wait_all_final(&stack, ids.len() as i64).await;
    let after = stack.states().await;
    let delivered = stack.delivered();
    for id in &ids {
        let copies = delivered.get(id).copied().unwrap_or(0);
        match at_kill[id].as_str() {
            // handed to SMTP when the worker died: the documented window. The row says
            // `unknown` and is not re-sent on its own, so there is at most one copy.
            "sending" => {
                assert_eq!(after[id], "unknown", "{id}");
                assert!(copies <= 1, "{id} delivered {copies} times");
            }
            // not started yet, or already done: exactly one copy, nothing lost
            _ => {
                assert_eq!(after[id], "sent", "{id} was {} at the kill", at_kill[id]);
                assert_eq!(copies, 1, "{id} delivered {copies} times");
            }
        }
    }
}

#[tokio::test]
async fn sigterm_lets_running_sends_finish_and_leaves_the_rest_for_another_replica() {
    let mut stack = Stack::new(1.0).await;
    let account = stack.account().await;
    let ids = stack.plan_emails(account, "slow", 8).await;
    let worker = stack.start_worker("leaving").await;
    wait_until("a send in flight", Duration::from_secs(20), || async {
        stack.count_in(&["sending"]).await >= 1
    })
    .await;
    let exited_cleanly = worker.terminate(Duration::from_secs(20));
    assert!(exited_cleanly, "herald-worker did not exit 0 after SIGTERM");
    assert_eq!(
        stack.count_in(&["sending"]).await,
        0,
        "running sends finished before exit"
    );
    assert_eq!(stack.count_in(&["unknown"]).await, 0);

    let _next = stack.start_worker("next").await;
    wait_all_final(&stack, ids.len() as i64).await;
    assert_eq!(stack.count_in(&["sent"]).await, ids.len() as i64);
    let delivered = stack.delivered();
    assert!(
        ids.iter().all(|id| delivered.get(id) == Some(&1)),
        "{delivered:?}"
    );
}

#[tokio::test]
async fn two_replicas_drain_one_queue_and_survive_one_being_killed() {
    let mut stack = Stack::new(0.0).await;
    let account = stack.account().await;
    let ids = stack.plan_emails(account, "fast", 300).await;
    let first = stack.start_worker("one").await;
    let _second = stack.start_worker("two").await;
    wait_until(
        "a third of the work done",
        Duration::from_secs(30),
        || async { stack.count_in(&["sent"]).await >= 100 },
    )
    .await;
    first.kill_hard();
    wait_all_final(&stack, ids.len() as i64).await;
    let delivered = stack.delivered();
    let unknown = stack.count_in(&["unknown"]).await;
    let sent = stack.count_in(&["sent"]).await;
    assert_eq!(sent + unknown, ids.len() as i64);
    assert!(
        delivered.values().all(|copies| *copies == 1),
        "a message was delivered twice"
    );
    // every `sent` row has its one copy; an `unknown` row (killed mid-send) at most one
    assert!(delivered.len() as i64 >= sent);
    // both replicas worked: the killed one before it died, the other to the end
    stack.assert_every_replica_ran_tasks(&["one", "two"]).await;
}

/// A private, throw-away Redis server.
struct PrivateRedis {
    port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    async fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server");
        herald_testing::process::wait_for_port(port).await;
        Self { port, child }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn health(port: u16) -> u16 {
    reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .map(|response| response.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_worker_survives_a_redis_restart_and_reports_it_in_healthz() {
    let mut stack = Stack::new(0.0).await;
    let redis = PrivateRedis::start(crate::stack::free_port()).await;
    let port = redis.port;
    stack.redis_url = format!("redis://127.0.0.1:{port}");
    let account = stack.account().await;
    let worker = stack.start_worker("steady").await;
    let first = stack.plan_emails(account, "before", 5).await;
    wait_all_final(&stack, first.len() as i64).await;

    redis.kill();
    wait_until(
        "healthz reports the queue worker down",
        Duration::from_secs(30),
        || async { health(worker.port).await == 503 },
    )
    .await;
    let _redis = PrivateRedis::start(port).await;
    wait_until("healthz healthy again", Duration::from_secs(60), || async {
        health(worker.port).await == 200
    })
    .await;
    let second = stack.plan_emails(account, "after", 5).await;
    wait_all_final(&stack, (first.len() + second.len()) as i64).await;
    assert_eq!(
        stack.count_in(&["sent"]).await,
        10,
        "every e-mail sent; states: {:?}",
        stack.states().await
    );
    assert!(stack.delivered().values().all(|copies| *copies == 1));
}
