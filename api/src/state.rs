//! `AppState`: what every handler can reach.

use std::sync::Arc;

use herald_shared::config::Config;
use herald_shared::jobs_config::JobsConfig;
use herald_shared::secrets::SecretBox;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::auth::password::Hasher;
use crate::auth::tokens::JwtKeys;

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub config: Arc<Config>,
    pub jobs: Arc<JobsConfig>,
    pub jwt: Arc<JwtKeys>,
    /// The bounded Argon2 pool (see `auth::password`).
    pub hasher: Arc<Hasher>,
    /// Seals secrets (e-mailed tokens) before they are stored.
    pub secrets: SecretBox,
    /// Forgot-password work in progress (`auth.max_pending_reset_requests` permits): the
    /// request answers first, so without a bound a flood would pile up work unseen.
    pub pending_resets: Arc<tokio::sync::Semaphore>,
}
