//! Starting the real `herald-api` and `herald-worker` binaries: free ports, and waiting for a
//! port to open or a health endpoint to answer (failing at once when the process exits).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use crate::wait::{wait_for, wait_until};

/// A port free right now (bound to port 0 and let go; another process may take it before
/// ours binds, which a caller that must be sure detects by the child exiting).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("no free port: {error}"))
}

/// The binary `name` in the directory of `sibling`, a binary cargo built for the same
/// workspace (e.g. `env!("CARGO_BIN_EXE_herald-api")`): both are built into one directory.
pub fn binary_beside(sibling: &str, name: &str) -> PathBuf {
    Path::new(sibling).with_file_name(name)
}

/// Waits until something listens on `port` of 127.0.0.1.
pub async fn wait_for_port(port: u16) {
    wait_until(
        &format!("port {port} opens"),
        Duration::from_secs(20),
        || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        },
    )
    .await;
}

/// Waits until GET `url` answers 2xx; panics at once if `child` exits meanwhile.
pub async fn wait_for_ready(url: &str, child: &mut Child) {
    wait_for(&format!("{url} is ready"), Duration::from_secs(30), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the process behind {url} exited early: {status}");
        }
        async move {
            match reqwest::get(url).await {
                Ok(response) if response.status().is_success() => Some(()),
                _ => None,
            }
        }
    })
    .await;
}
