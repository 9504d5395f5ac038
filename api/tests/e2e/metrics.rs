//! Both binaries' `/metrics` say what they are and what they use from their first scrape.

use crate::stack::Stack;

/// The value of the unlabelled sample `name` on a Prometheus page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn first_scrape(url: &str) -> String {
    let response = reqwest::get(url).await.expect("scrape");
    assert_eq!(response.status().as_u16(), 200, "{url}");
    response.text().await.expect("page")
}

#[tokio::test]
async fn a_fresh_api_and_worker_show_build_info_and_process_metrics_on_the_first_scrape() {
    let mut stack = Stack::new(0.0).await;
    stack.start_api().await;
    let worker = stack.start_worker("metrics").await;
    let version = env!("CARGO_PKG_VERSION");
    for (binary, url) in [
        ("herald-api", format!("{}/metrics", stack.api_url)),
        (
            "herald-worker",
            format!("http://127.0.0.1:{}/metrics", worker.port),
        ),
    ] {
        let page = first_scrape(&url).await;
        let build = format!("herald_build_info{{binary=\"{binary}\",version=\"{version}\"}} 1");
        assert!(page.contains(&build), "{binary}: {page}");
        let rss = sample(&page, "process_resident_memory_bytes").unwrap_or_default();
        assert!(rss > 1_000_000.0, "{binary}: resident memory {rss}");
        assert!(
            sample(&page, "process_open_fds").unwrap_or_default() > 0.0,
            "{binary}: {page}"
        );
        assert!(
            sample(&page, "process_cpu_seconds_total").is_some(),
            "{binary}: {page}"
        );
    }
    worker.kill_hard();
}
