use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, assert_problem};

#[tokio::test]
async fn healthz_and_readyz_report_ok_with_both_stores_up() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"postgres": true, "redis": true}));
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = TestApp::spawn().await;
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
}

#[tokio::test]
async fn metrics_have_build_info_and_process_metrics_from_the_first_scrape() {
    let app = TestApp::spawn().await;
    let page = app.get("/metrics", None).await.text().await.unwrap();
    let build = format!(
        "herald_build_info{{binary=\"herald-api\",version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(page.contains(&build), "{page}");
    let rss = metric_value(&page, "process_resident_memory_bytes");
    assert!(rss > 1_000_000.0, "resident memory {rss} bytes");
    assert!(metric_value(&page, "process_open_fds") > 0.0);
    // fractions of a second count (the crate's counter would show 0 here)
    assert!(
        metric_value(&page, "process_cpu_seconds_total") > 0.0,
        "{page}"
    );
}

/// The value of an unlabelled sample `name` on a Prometheus page.
fn metric_value(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} on the page:\n{page}"))
}

#[tokio::test]
async fn metrics_listen_serves_metrics_on_their_own_address_only() {
    // a free port: bind port 0 and let it go (another process could take it in between;
    // then the API fails to bind and this test fails loudly, never falsely passes)
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let app = TestApp::spawn_with(&[("api.metrics_listen", Value::from(address.clone()))]).await;
    let client = reqwest::Client::new();
    let page = herald_testing::wait::wait_for(
        "the metrics listener answers",
        herald_testing::wait::PATIENCE,
        || async {
            let response = client
                .get(format!("http://{address}/metrics"))
                .send()
                .await
                .ok()?;
            assert_eq!(response.status(), StatusCode::OK);
            Some(response.text().await.unwrap())
        },
    )
    .await;
    assert!(page.contains("herald_build_info{"), "{page}");
    assert!(page.contains("process_resident_memory_bytes"), "{page}");
    // the API's own listener no longer shows them, and the metrics one shows nothing else
    assert_problem(
        app.get("/metrics", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let other = client
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_docs_page_and_every_asset_it_loads_come_from_herald_api() {
    let app = TestApp::spawn().await;
    let docs = app.get("/docs", None).await;
    assert_eq!(docs.status(), StatusCode::OK);
    // /docs redirects to /docs/, against which the page's relative references resolve
    let base = docs.url().clone();
    assert_eq!(base.path(), "/docs/");
    let html = docs.text().await.unwrap();
    let references = references(&html);
    assert!(
        references.iter().any(|r| r.ends_with(".js"))
            && references.iter().any(|r| r.ends_with(".css")),
        "the page loads no script or style sheet: {html}"
    );
    let mut scripts = String::new();
    for reference in &references {
        let url = base.join(reference).unwrap();
        assert_eq!(
            url.host_str(),
            base.host_str(),
            "{reference} is loaded from another host"
        );
        let asset = app.client.get(url.clone()).send().await.unwrap();
        assert_eq!(asset.status(), StatusCode::OK, "{url}");
        let text = asset.text().await.unwrap();
        assert!(!text.is_empty(), "{url} is empty");
        if reference.ends_with(".js") {
            scripts.push_str(&text);
        }
    }
    // the page reads the spec this server serves, not a sample from the internet
    assert!(
        scripts.contains("/openapi.json"),
        "the docs UI is not pointed at /openapi.json"
    );
    let spec: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert_eq!(spec["info"]["title"], "Herald API");
}

/// Every `src="…"` and `href="…"` of an HTML page.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(start) = rest.find(attribute) {
            rest = &rest[start + attribute.len()..];
            let end = rest.find('"').unwrap();
            found.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    found
}

#[tokio::test]
async fn an_unknown_route_is_a_problem_404() {
    let app = TestApp::spawn().await;
    assert_problem(
        app.get("/api/v1/nothing-here", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}
