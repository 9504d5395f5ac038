//! Logging and metrics for both binaries: logs as text or JSON, filtered by `log.filter` or
//! `RUST_LOG`; one Prometheus recorder, rendered at `/metrics` with the process's own
//! metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`,
//! … read from /proc at each scrape) and `herald_build_info{binary, version} 1`, so even a
//! fresh process's first scrape says what it is and what it uses.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber and the metrics recorder; a second call (tests) is ignored.
pub fn init(config: &LogConfig) {
    // Metrics recorded before a recorder exists are dropped, so install it first.
    let _ = metrics();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _already_set = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use; both binaries render it at
/// `/metrics`.
pub fn metrics() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ])
                .map(|builder| builder.build_recorder())
                .unwrap_or_else(|_| {
                    metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder()
                });
            let handle = recorder.handle();
            // Fails only when another recorder is installed; then ours just stays empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// What `herald_build_info` says about the binary serving `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct BuildInfo {
    pub binary: &'static str,
    pub version: &'static str,
}

/// The `/metrics` page: the process metrics read now, the build info, and everything
/// recorded so far.
pub fn render(build: BuildInfo) -> String {
    let handle = metrics();
    static PROCESS: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    PROCESS
        .get_or_init(|| {
            let collector = metrics_process::Collector::default();
            collector.describe();
            collector
        })
        .collect();
    metrics::gauge!("herald_build_info", "binary" => build.binary, "version" => build.version)
        .set(1.0);
    handle.render()
}

tokio::task_local! {
    /// The id of the API request being served (its `x-request-id`), set by the API around each
    /// request: whatever the request plans records it, and the worker's spans carry it.
    static REQUEST_ID: String;
}

/// Runs `work` as part of the API request `request_id`.
pub async fn with_request_id<F: std::future::Future>(request_id: String, work: F) -> F::Output {
    REQUEST_ID.scope(request_id, work).await
}

/// The id of the API request this code runs for, if any.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}
