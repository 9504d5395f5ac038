//! `AppState`: what every handler can reach.

use std::sync::Arc;

use herald_shared::config::Config;
use herald_shared::jobs_config::JobsConfig;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::auth::tokens::JwtKeys;

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub config: Arc<Config>,
    pub jobs: Arc<JobsConfig>,
    pub jwt: Arc<JwtKeys>,
}
