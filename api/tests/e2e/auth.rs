use reqwest::StatusCode;
use serde_json::json;

use crate::stack::Stack;

/// Peak resident memory of a process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test]
async fn a_flood_of_bogus_reset_requests_leaves_memory_bounded_and_answers_4xx() {
    let mut stack = Stack::new(0.0).await;
    stack.start_api().await;
    let pid = stack.api_pid();
    let before = peak_rss_kib(pid);
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/auth/reset-password", stack.api_url);
    let requests: Vec<_> = (0..500)
        .map(|n| {
            let request = client
                .post(&url)
                .json(&json!({"token": format!("bogus-{n}"), "password": "a valid new password"}));
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    let mut statuses = Vec::with_capacity(requests.len());
    for request in requests {
        statuses.push(request.await.expect("task").expect("an answer"));
    }
    let peak = peak_rss_kib(pid);
    eprintln!(
        "herald-api peak RSS: {before} KiB before, {peak} KiB after 500 concurrent bogus resets"
    );
    assert!(
        statuses
            .iter()
            .all(|s| s.is_client_error() || *s == StatusCode::SERVICE_UNAVAILABLE),
        "{statuses:?}"
    );
    // the token is checked before any hash, so none waits for a hashing slot either
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::UNPROCESSABLE_ENTITY),
        "{statuses:?}"
    );
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
}
