//! What every part of the worker shares: connections, configuration, the provider clients,
//! and the health of each apalis worker, loop and provider.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use herald_shared::config::Config;
use herald_shared::jobs_config::JobsConfig;
use herald_shared::providers::email::Mailer;
use herald_shared::providers::llm::LlmClient;
use herald_shared::providers::sendgrid::SendGrid;
use herald_shared::providers::twilio::Twilio;
use herald_shared::secrets::SecretBox;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::jobs::batch::Transitions;
use crate::loops::Loops;
use crate::mailboxes::Mailboxes;
use crate::outage::Outages;
use crate::queue::Wakes;
use crate::redis_epoch::Epoch;

/// Shared by the dispatcher, the handlers, the sweep and the health server.
#[derive(Clone)]
pub struct WorkerContext {
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub config: Arc<Config>,
    pub jobs: Arc<JobsConfig>,
    pub mailer: Mailer,
    /// Opens the secrets sealed into e-mail payloads.
    pub secrets: SecretBox,
    pub twilio: Twilio,
    /// Writes campaign e-mails (OpenAI-compatible chat completions).
    pub llm: LlmClient,
    /// Sends campaign e-mails of senders whose transport is SendGrid.
    pub sendgrid: SendGrid,
    /// The SMTP clients of campaign senders whose transport is SMTP.
    pub mailboxes: Mailboxes,
    pub liveness: Liveness,
    /// The last pass of each supervised loop (dispatcher, sweep, cron, planner).
    pub loops: Loops,
    /// Providers refusing Herald's credentials, for `/readyz`.
    pub outages: Outages,
    /// The handlers' batched `queued → sending → sent` transitions.
    pub transitions: Transitions,
    /// This replica's name in worker names and logs.
    pub replica: String,
    /// What the dispatcher knows of the Redis epoch (noticing Redis losing its data).
    pub epoch: Epoch,
    /// The dispatcher's wake-ups for the local queue workers.
    pub wakes: Wakes,
}

impl WorkerContext {
    /// The Redis name of a Herald queue: the configured key prefix keeps deployments (and
    /// test runs) sharing one Redis apart.
    pub fn redis_queue(&self, queue: &str) -> String {
        format!("{}{queue}", self.config.redis.key_prefix)
    }
}

/// Whether each queue's apalis worker is running; `/healthz` fails while one is down.
#[derive(Clone, Default)]
pub struct Liveness(Arc<Mutex<BTreeMap<String, bool>>>);

impl Liveness {
    pub fn set(&self, queue: &str, alive: bool) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(queue.to_owned(), alive);
        }
    }

    /// Queues whose worker is not running.
    pub fn down(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|map| {
                map.iter()
                    .filter(|(_, alive)| !**alive)
                    .map(|(q, _)| q.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Resolves once the shutdown flag is set (or its sender is gone).
pub async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
