use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_field_error};

#[tokio::test]
async fn preview_gives_the_exact_instants_across_the_spring_forward_night() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let body = json!({"expression": "30 2 * * *", "timezone": "America/New_York", "after": "2026-03-07T00:00:00Z", "count": 3});
    let response = app
        .post("/api/v1/cron/preview", &body, Some(&ada.access_token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let out: Value = response.json().await.unwrap();
    // 02:30 does not exist on 03-08: it fires at 03:30 EDT
    assert_eq!(
        out,
        json!({"fires": ["2026-03-07T07:30:00Z", "2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"], "kind": "fixed-time"})
    );

    let wildcard = json!({"expression": "*/30 1 * * *", "timezone": "America/New_York", "after": "2026-11-01T04:00:00Z", "count": 4});
    let out: Value = app
        .post("/api/v1/cron/preview", &wildcard, Some(&ada.access_token))
        .await
        .json()
        .await
        .unwrap();
    // the repeated 01:00–02:00 hour fires twice
    assert_eq!(out["kind"], "wildcard");
    assert_eq!(
        out["fires"],
        json!([
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:30:00Z"
        ])
    );
}

#[tokio::test]
async fn preview_refuses_bad_expressions_zones_instants_and_counts() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    for (body, field) in [
        (
            json!({"expression": "0 0 30 2 *", "timezone": "UTC"}),
            "expression",
        ),
        (
            json!({"expression": "61 * * * *", "timezone": "UTC"}),
            "expression",
        ),
        (
            json!({"expression": "0 9 * * 1-5", "timezone": "EST"}),
            "timezone",
        ),
        (
            json!({"expression": "0 9 * * *", "timezone": "UTC", "after": "yesterday"}),
            "after",
        ),
        (
            json!({"expression": "0 9 * * *", "timezone": "UTC", "count": 1001}),
            "count",
        ),
    ] {
        let problem = assert_field_error(
            app.post("/api/v1/cron/preview", &body, Some(&ada.access_token))
                .await,
            field,
        )
        .await;
        if body["expression"] == "61 * * * *" {
            assert!(
                problem["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("minute"),
                "{problem}"
            );
        }
    }
    assert_eq!(
        app.post(
            "/api/v1/cron/preview",
            &json!({"expression": "* * * * *", "timezone": "UTC"}),
            None
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
}
