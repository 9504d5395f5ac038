//! Request bodies over their limits answer 413 problem+json, whatever the route.

use reqwest::{Method, StatusCode};

use crate::helpers::{TestApp, assert_problem};

#[tokio::test]
async fn a_json_body_over_two_mib_is_a_413_problem_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let over = format!(r#"{{"name": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let response = app
        .request(Method::POST, "/api/v1/groups")
        .bearer_auth(&ada.access_token)
        .header("content-type", "application/json")
        .body(over)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("2 MiB"),
        "{problem}"
    );
    assert_eq!(app.count("groups").await, 0);

    // just under the limit the body is read, and the field is judged on its own
    let under = format!(r#"{{"name": "{}"}}"#, "x".repeat(2 * 1024 * 1024 - 64));
    let response = app
        .request(Method::POST, "/api/v1/groups")
        .bearer_auth(&ada.access_token)
        .header("content-type", "application/json")
        .body(under)
        .send()
        .await
        .unwrap();
    crate::helpers::assert_field_error(response, "name").await;
}
