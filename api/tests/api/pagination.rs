//! Keyset cursors: every list refuses a cursor it could not have made with a 422 on `cursor`,
//! including one whose instant PostgreSQL cannot hold.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_field_error};

/// A cursor in the lists' own format, `<created_at µs>|<id>`.
fn cursor(micros: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{micros}|{}", Uuid::new_v4()))
}

#[tokio::test]
async fn a_cursor_before_postgresql_s_first_instant_is_a_422_on_every_keyset_list() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = ada.access_token.as_str();
    let group: Value = app
        .post("/api/v1/groups", &json!({"name": "g"}), Some(token))
        .await
        .json()
        .await
        .unwrap();
    let group_id = group["id"].as_str().unwrap();
    let added = app
        .post(
            &format!("/api/v1/groups/{group_id}/students"),
            &json!({"name": "S", "phone": "+14155550100", "channel": "sms", "timezone": "UTC"}),
            Some(token),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let course: Value = app
        .post(
            "/api/v1/courses",
            &json!({"name": "C", "author": "A", "days": [{"text": "t"}]}),
            Some(token),
        )
        .await
        .json()
        .await
        .unwrap();
    let start_at = (chrono::Utc::now() + chrono::Duration::days(7))
        .format("%Y-%m-%d 09:00:00")
        .to_string();
    let delivery = app
        .post(
            "/api/v1/deliveries",
            &json!({"group_id": group_id, "course_id": course["id"], "start_at": start_at}),
            Some(token),
        )
        .await;
    assert_eq!(delivery.status(), StatusCode::CREATED);
    let delivery: Value = delivery.json().await.unwrap();
    let delivery_id = delivery["id"].as_str().unwrap();

    let lists = [
        "/api/v1/jobs".to_owned(),
        "/api/v1/courses".to_owned(),
        "/api/v1/groups".to_owned(),
        format!("/api/v1/groups/{group_id}/students"),
        "/api/v1/deliveries".to_owned(),
        format!("/api/v1/deliveries/{delivery_id}/answers"),
        "/api/v1/schedules".to_owned(),
    ];
    // one microsecond before 4714-11-24 BC, and 10000 BC: chrono reads both
    let first_postgres_micros = -210_866_803_200_000_000_i64;
    let year_minus_9999 = chrono::NaiveDate::from_ymd_opt(-9999, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros();
    let out_of_range = [cursor(first_postgres_micros - 1), cursor(year_minus_9999)];
    for list in &lists {
        for bad in &out_of_range {
            let response = app.get(&format!("{list}?cursor={bad}"), Some(token)).await;
            assert_field_error(response, "cursor").await;
        }
        // the first instant PostgreSQL holds is a cursor like any other: an empty page
        let edge = app
            .get(
                &format!("{list}?cursor={}", cursor(first_postgres_micros)),
                Some(token),
            )
            .await;
        assert_eq!(edge.status(), StatusCode::OK, "{list}");
    }
}
