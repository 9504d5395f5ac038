//! `herald-worker`: moves due effects from PostgreSQL through apalis-redis queues to the
//! providers, exactly once per effect (bar the documented crash-mid-send window).
//!
//! One process runs: a dispatcher, one supervised apalis worker per queue, the recovery
//! sweep, the cron runner, the schedule planner, the campaign follow-up pass (each of these
//! five supervised too, see `loops`) and a small health/metrics HTTP server. Run as many replicas as needed.

pub mod campaign_follow_ups;
pub mod context;
pub mod cron;
pub mod dispatcher;
pub mod health;
pub mod housekeeping;
pub mod jobs;
pub mod llm_limits;
pub mod loops;
pub mod mailboxes;
pub mod outage;
pub mod queue;
pub mod rate_limit;
pub mod redis_epoch;
pub mod schedule_planner;
pub mod send_limits;
pub mod sweep;
pub mod throttle;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use herald_shared::config::Config;
use herald_shared::effects::EffectKind;
use herald_shared::jobs_config::JobsConfig;
use herald_shared::net::PublicOnly;
use herald_shared::providers::email::Mailer;
use herald_shared::providers::llm::LlmClient;
use herald_shared::providers::sendgrid::SendGrid;
use herald_shared::providers::twilio::Twilio;
use herald_shared::secrets::SecretBox;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use context::{Liveness, WorkerContext};

/// Connects to PostgreSQL and Redis and builds the shared context.
pub async fn build_context(config: Config, jobs: JobsConfig) -> anyhow::Result<WorkerContext> {
    let db = herald_shared::db::connect(&config.database)
        .await
        .context("connect to PostgreSQL (database.url)")?;
    let redis = herald_shared::redis_conn::connect(&config.redis)
        .await
        .context("connect to Redis (redis.url)")?;
    let mailer = Mailer::new(&config.email).context("set up the mailer")?;
    if mailer.is_sandbox() {
        tracing::warn!(
            "e-mail sandbox mode: email.smtp_host is empty, e-mails are logged and recorded as `sandboxed`, not sent"
        );
    }
    let twilio = Twilio::new(&config.twilio).context("set up the Twilio client")?;
    if twilio.is_sandbox() {
        tracing::warn!(
            "Twilio sandbox mode: twilio.account_sid and twilio.auth_token are empty, course messages are logged and recorded as `sandboxed`, not sent"
        );
    }
    // accounts' provider URLs must not lead inside the deployment, at call time too; the
    // operator's own provider may
    let public_only = (!config.llm.allow_private_base_urls).then(|| PublicOnly {
        allowed: url::Url::parse(config.llm.default_provider.base_url.trim())
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .into_iter()
            .collect(),
    });
    let llm = LlmClient::new(jobs.get(EffectKind::Generation).timeout, public_only)
        .context("set up the LLM client")?;
    let sendgrid = SendGrid::new(&config.sendgrid).context("set up the SendGrid client")?;
    let replica = if config.worker.replica_name.is_empty() {
        hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "worker".into())
    } else {
        config.worker.replica_name.clone()
    };
    let secrets = SecretBox::from_config(&config);
    Ok(WorkerContext {
        epoch: redis_epoch::Epoch::new(&config),
        wakes: queue::Wakes::default(),
        transitions: jobs::batch::Transitions::spawn(db.clone()),
        db,
        redis,
        config: Arc::new(config),
        jobs: Arc::new(jobs),
        mailer,
        secrets,
        twilio,
        llm,
        sendgrid,
        mailboxes: mailboxes::Mailboxes::default(),
        liveness: Liveness::default(),
        loops: loops::Loops::default(),
        outages: outage::Outages::default(),
        replica,
    })
}

/// Runs every part of the worker until `shutdown` completes, then stops taking work, lets
/// running jobs finish for up to `worker.shutdown_timeout_secs` and returns.
pub async fn run(
    ctx: WorkerContext,
    health_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for settings in ctx.jobs.all().cloned() {
        tasks.spawn(queue::supervise(ctx.clone(), settings, stop_rx.clone()));
    }
    tasks.spawn(loops::supervise(
        ctx.clone(),
        dispatcher::LOOP,
        loops::stale_after(&ctx, dispatcher::SAFETY_TICK),
        stop_rx.clone(),
        dispatcher::run,
    ));
    tasks.spawn(loops::supervise(
        ctx.clone(),
        sweep::LOOP,
        loops::stale_after(&ctx, sweep::interval(&ctx)),
        stop_rx.clone(),
        sweep::run,
    ));
    if !ctx.jobs.triggers().is_empty() {
        // a trigger with no recorded fire starts at the process's start, not a restart's
        let booted = chrono::Utc::now();
        tasks.spawn(loops::supervise(
            ctx.clone(),
            cron::LOOP,
            loops::stale_after(&ctx, cron::MAX_SLEEP),
            stop_rx.clone(),
            move |ctx, stop| cron::run(ctx, stop, booted),
        ));
    }
    tasks.spawn(loops::supervise(
        ctx.clone(),
        schedule_planner::LOOP,
        loops::stale_after(&ctx, schedule_planner::interval(&ctx)),
        stop_rx.clone(),
        schedule_planner::run,
    ));
    tasks.spawn(loops::supervise(
        ctx.clone(),
        campaign_follow_ups::LOOP,
        loops::stale_after(&ctx, campaign_follow_ups::interval(&ctx)),
        stop_rx.clone(),
        campaign_follow_ups::run,
    ));
    let health = tokio::spawn({
        let router = health::router(ctx.clone());
        let mut stop = stop_rx.clone();
        async move {
            let served = axum::serve(health_listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "health server failed");
            }
        }
    });
    tracing::info!(replica = %ctx.replica, "herald-worker running");
    shutdown.await;
    tracing::info!("shutting down: finishing running jobs");
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(ctx.config.worker.shutdown_timeout_secs);
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            "shutdown timeout reached; unfinished jobs return through orphan recovery and the sweep"
        );
    }
    let _ = health.await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
