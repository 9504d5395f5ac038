//! `herald-api`: the HTTP API. A thin layer over PostgreSQL: requests write business rows
//! and their effect rows in one transaction; the worker does the rest.

pub mod auth;
pub mod csv_import;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod openapi;
pub mod pagination;
mod planning;
mod request_trace;
pub mod routes;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::http::Uri;
use herald_shared::config::Config;
use herald_shared::jobs_config::JobsConfig;
use herald_shared::secrets::SecretBox;
use tokio::net::TcpListener;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::{Config as DocsConfig, SwaggerUi};

use crate::auth::password::Hasher;
use crate::auth::tokens::JwtKeys;
use crate::error::ApiError;
pub use crate::state::AppState;

/// Connects to PostgreSQL and Redis and builds the state handlers share.
pub async fn build_state(config: Config, jobs: JobsConfig) -> anyhow::Result<AppState> {
    let db = herald_shared::db::connect(&config.database)
        .await
        .context("connect to PostgreSQL (database.url)")?;
    let redis = herald_shared::redis_conn::connect(&config.redis)
        .await
        .context("connect to Redis (redis.url)")?;
    let secrets = SecretBox::from_config(&config);
    sync_deployment_provider(&db, &config, &secrets).await?;
    Ok(AppState {
        db,
        redis,
        jwt: Arc::new(JwtKeys::new(&config.auth)),
        hasher: Arc::new(Hasher::new(&config.auth)),
        pending_resets: Arc::new(tokio::sync::Semaphore::new(
            config.auth.max_pending_reset_requests as usize,
        )),
        secrets,
        config: Arc::new(config),
        jobs: Arc::new(jobs),
    })
}

/// Writes the deployment's LLM provider (`llm.default_provider`), when one is configured, so
/// every account sees it as configured now.
async fn sync_deployment_provider(
    db: &sqlx::PgPool,
    config: &Config,
    secrets: &SecretBox,
) -> anyhow::Result<()> {
    let provider = &config.llm.default_provider;
    if !provider.is_set() {
        return Ok(());
    }
    let fields = herald_shared::db::llm::ProviderFields {
        name: provider.name.trim().to_owned(),
        base_url: provider.base_url.trim().trim_end_matches('/').to_owned(),
        sealed_api_key: Some(
            secrets
                .seal(secrecy::ExposeSecret::expose_secret(&provider.api_key))
                .context("seal llm.default_provider.api_key (secrets.encryption_key)")?,
        ),
        requests_per_minute: i32::try_from(provider.requests_per_minute)?,
        tokens_per_minute: i32::try_from(provider.tokens_per_minute)?,
    };
    herald_shared::db::llm::sync_deployment_provider(db, &fields)
        .await
        .context("write the deployment's LLM provider (llm.default_provider)")
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::health::router())
        .merge(routes::auth::router())
        .merge(routes::account::router())
        .merge(routes::jobs::router())
        .merge(routes::courses::router())
        .merge(routes::cron::router())
        .merge(routes::deliveries::router())
        .merge(routes::schedules::router())
        .merge(routes::webhooks::twilio::router())
        .merge(routes::webhooks::sendgrid::router())
        .merge(routes::webhooks::inbound_email::router())
        .merge(routes::groups::router())
        .merge(routes::senders::router())
        .merge(routes::llm::router())
        .merge(routes::campaigns::router())
        .merge(routes::people::router())
        .merge(routes::suppressions::router())
        .merge(routes::unsubscribe::router())
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::finish(api_router().split_for_parts().1)
}

/// The whole application: API routes, `/openapi.json`, the docs page at `/docs`.
///
/// The docs page is Swagger UI, built into the binary from the `utoipa-swagger-ui-vendored`
/// crate (no CDN: it works air-gapped). The online validator badge is off: it would load an
/// image from swagger.io.
pub fn app(state: AppState) -> Router {
    let (router, api) = api_router().split_for_parts();
    let api = openapi::finish(api);
    let router = router
        .route(
            "/openapi.json",
            axum::routing::get(move || async move { axum::Json(api) }),
        )
        .merge(
            SwaggerUi::new("/docs").config(
                DocsConfig::from("/openapi.json")
                    .validator_url("none")
                    .persist_authorization(true),
            ),
        )
        .fallback(|uri: Uri| async move {
            let _ = uri;
            ApiError::NotFound("route")
        });
    request_trace::layer(router).with_state(state)
}

/// Serves until `shutdown` completes, then finishes in-flight requests. With
/// `api.metrics_listen` set, `/metrics` is served there alone (and answers 404 on `listener`).
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = match state.config.api.metrics_listen() {
        Some(address) => {
            let metrics = TcpListener::bind(address)
                .await
                .with_context(|| format!("bind api.metrics_listen {address}"))?;
            tracing::info!(%address, "herald-api serving /metrics");
            Some(tokio::spawn(serve_metrics(metrics)))
        }
        None => None,
    };
    tracing::info!(address = %listener.local_addr()?, "herald-api listening");
    let served = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serve HTTP");
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    served
}

/// The `/metrics` listener of `api.metrics_listen`: nothing else is served there.
async fn serve_metrics(listener: TcpListener) {
    let router = Router::new().route(
        "/metrics",
        axum::routing::get(|| async { routes::health::render_metrics() }),
    );
    if let Err(err) = axum::serve(listener, router).await {
        tracing::error!(error = %err, "the /metrics listener failed");
    }
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
