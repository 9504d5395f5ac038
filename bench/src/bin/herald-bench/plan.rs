//! Planning the burst: `--effects` e-mail rows written straight into `effects`, all due at
//! one instant (or spread over `--spread-secs`), in one transaction so the dispatcher sees
//! all of them or none.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::Args;

/// Rows per INSERT when planning: big enough to be cheap, small enough that one statement
/// does not hold a huge transaction.
const PLAN_CHUNK: i64 = 50_000;

/// Plans every effect due at one instant `--lead-secs` from now; returns the instant, how
/// long planning took and when it committed.
pub async fn plan(
    pool: &PgPool,
    account: Uuid,
    queue: &str,
    args: &Args,
) -> anyhow::Result<(DateTime<Utc>, Duration, DateTime<Utc>)> {
    let due = Utc::now() + chrono::Duration::milliseconds((args.lead_secs * 1000.0) as i64);
    let started = Instant::now();
    // One transaction: the dispatcher must see all rows or none.
    let mut tx = pool.begin().await?;
    let mut from = 1;
    while from <= args.effects {
        let to = (from + PLAN_CHUNK - 1).min(args.effects);
        sqlx::query(
            // the same rows as `outbound_messages::plan_email`, in bulk: the effect and its
            // outbound message
            "with planned as (
                 insert into effects (account_id, kind, queue, idempotency_key, payload, due_at,
                                      next_attempt_at)
                 select $1, 'email', $5, 'bench-' || g, '{}'::jsonb,
                        $2 + make_interval(secs => $6 * (g - 1)::float8 / $7),
                        $2 + make_interval(secs => $6 * (g - 1)::float8 / $7)
                 from generate_series($3::bigint, $4::bigint) g
                 returning id, idempotency_key)
             insert into outbound_messages (effect_id, account_id, source, channel, recipient,
                                            subject, body)
             select id, $1, 'auth_email', 'email', idempotency_key || '@example.com',
                    'bench ' || idempotency_key, 'hello'
             from planned",
        )
        .bind(account)
        .bind(due)
        .bind(from)
        .bind(to)
        .bind(queue)
        .bind(args.spread_secs)
        .bind(args.effects as f64)
        .execute(&mut *tx)
        .await
        .context("plan effects")?;
        from = to + 1;
    }
    tx.commit().await?;
    let committed = Utc::now();
    let planned = started.elapsed();
    // Fresh statistics, so the workers' queries are planned for the table as it now is.
    sqlx::query("analyze effects, outbound_messages")
        .execute(pool)
        .await?;
    Ok((due, planned, committed))
}
