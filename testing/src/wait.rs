//! The one way a test waits: poll a condition until it holds, with a generous deadline, and
//! fail naming what never happened. Nothing sleeps for a fixed time and then asserts, so a
//! suite is fast when the machine is fast and still passes when it is loaded.

use std::future::Future;
use std::time::Duration;

/// How long a condition in the in-process suites may take to come true.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` every 20 ms until it yields a value; panics naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` every 20 ms until it is true; panics naming `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, timeout, || {
        let checked = check();
        async move { checked.await.then_some(()) }
    })
    .await;
}
