//! What the pipeline did and whether it is done: a test that must show something did *not*
//! happen (no retry, no second send) waits until the pipeline is idle — nothing due, queued
//! or being sent in PostgreSQL, nothing waiting or in flight in Redis — and then asserts,
//! instead of sleeping for a while and hoping. And which replica ran each task, read from
//! the task's metadata in Redis (`locked_by`, the apalis worker's name
//! `{queue}-{replica}-{ulid}-r{run}`), so a test with two replicas can show both worked.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::wait::wait_until;

/// Effect rows the pipeline still has work for: `queued`, `sending` or `retrying`, or
/// `planned` and due.
pub async fn effects_in_flight(db: &PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from effects
         where state in ('queued', 'sending', 'retrying')
            or (state = 'planned' and next_attempt_at <= now())",
    )
    .fetch_one(db)
    .await
    .unwrap_or_else(|error| panic!("count effects in flight: {error}"))
}

/// Task ids in Redis under `key_prefix` not yet finished: scheduled, active (waiting for a
/// worker) or in a worker's in-flight set, over every queue.
pub async fn redis_tasks_in_flight(redis: &ConnectionManager, key_prefix: &str) -> u64 {
    let mut count = 0;
    for key in redis_keys(redis, &format!("{key_prefix}*")).await {
        let mut conn = redis.clone();
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|error| panic!("TYPE {key}: {error}"));
        let length: u64 = if key.ends_with(":active") && kind == "list" {
            redis::cmd("LLEN").arg(&key).query_async(&mut conn).await
        } else if key.ends_with(":scheduled") && kind == "zset" {
            redis::cmd("ZCARD").arg(&key).query_async(&mut conn).await
        } else if key.contains(":inflight") && kind == "set" {
            redis::cmd("SCARD").arg(&key).query_async(&mut conn).await
        } else {
            Ok(0)
        }
        .unwrap_or_else(|error| panic!("length of {key}: {error}"));
        count += length;
    }
    count
}

/// Waits until the pipeline has nothing left to do: no effect in flight
/// ([`effects_in_flight`]) and no unfinished task in Redis under `key_prefix`, in two
/// checks in a row (the two stores are read one after the other, so one check could fall
/// between a row's change and its task's).
pub async fn wait_for_idle(db: &PgPool, redis: &ConnectionManager, key_prefix: &str) {
    let idle_before = Cell::new(false);
    let idle_before = &idle_before;
    wait_until(
        "the pipeline is idle",
        Duration::from_secs(30),
        || async move {
            let idle = effects_in_flight(db).await == 0
                && redis_tasks_in_flight(redis, key_prefix).await == 0;
            let twice = idle && idle_before.get();
            idle_before.set(idle);
            twice
        },
    )
    .await;
}

/// Replica name → tasks its workers ran, for each of `replicas`, from the `locked_by` of
/// every task's metadata under `key_prefix` (kept until the sweep trims finished tasks,
/// `worker.redis_task_retention_secs` after they finished).
pub async fn tasks_run_by_replica(
    redis: &ConnectionManager,
    key_prefix: &str,
    replicas: &[&str],
) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = replicas
        .iter()
        .map(|replica| ((*replica).to_owned(), 0))
        .collect();
    for key in redis_keys(redis, &format!("{key_prefix}*:meta:*")).await {
        let mut conn = redis.clone();
        let locked_by: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg("locked_by")
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|error| panic!("HGET {key} locked_by: {error}"));
        let Some(worker) = locked_by else { continue };
        for replica in replicas {
            if worker.contains(&format!("-{replica}-")) {
                *counts.entry((*replica).to_owned()).or_default() += 1;
            }
        }
    }
    counts
}

/// Keys matching `pattern` (SCAN, so Redis is never blocked).
pub async fn redis_keys(redis: &ConnectionManager, pattern: &str) -> Vec<String> {
    let mut conn = redis.clone();
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|error| panic!("SCAN {pattern}: {error}"));
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}
