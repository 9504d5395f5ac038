//! CSV import: mixed rows, updates by phone, header and content-type errors, limits.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::{add_student, create_group, get_json};
use crate::helpers::{TestApp, assert_field_error, assert_problem};

async fn import(
    app: &TestApp,
    token: &str,
    group: &str,
    content_type: &str,
    csv: String,
) -> Response {
    app.request(
        Method::POST,
        &format!("/api/v1/groups/{group}/students/import"),
    )
    .bearer_auth(token)
    .header("content-type", content_type)
    .body(csv)
    .send()
    .await
    .expect("request")
}

#[tokio::test]
async fn an_import_adds_valid_rows_updates_known_phones_and_reports_bad_lines() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let group = create_group(&app, token, "Batch A").await;
    let known = add_student(
        &app,
        token,
        &group,
        json!({"name": "Old name", "phone": "+919876543210", "channel": "sms",
            "timezone": "UTC", "subscribed": false}),
    )
    .await;
    let csv = [
        "Phone, Name ,timezone,channel,country",
        "+12015550123,Ann,America/New_York,sms,",
        "098765 43210,\"Ravi, K\",Asia/Kolkata,WhatsApp,IN",
        "12345,Bad phone,Asia/Kolkata,sms,IN",
        "+447400123456,Bad zone,EST,sms,",
        "",
        "+1 201 555 0123,Ann again,America/New_York,sms,",
        "+447400123457,Too few fields",
        "07400 123458,Ben,Europe/London,sms,GB",
        "+447400123459,,Mars/Base,pigeon,",
        "+447400123460,Nul\u{0}name,Europe/London,sms,",
    ]
    .join("\r\n");
    let response = import(&app, token, &group, "text/csv; charset=utf-8", csv).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(report["updated"], 1, "{report}");
    let errors: Vec<(u64, &str)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [
            (4, "phone"),
            (5, "timezone"),
            (7, "phone"),
            (8, "row"),
            (10, "name"),
            (10, "channel"),
            (10, "timezone"),
            (11, "name"),
        ],
        "{report}"
    );
    assert!(
        report["errors"][2]["message"]
            .as_str()
            .unwrap()
            .contains("line 2")
    );

    let roster = get_json(&app, &format!("/api/v1/groups/{group}/students"), token).await;
    let by_phone = |phone: &str| {
        roster["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["phone"] == phone)
            .cloned()
            .unwrap_or_else(|| panic!("{phone} in {roster}"))
    };
    let ravi = by_phone("+919876543210");
    assert_eq!(ravi["id"], known["id"]);
    assert_eq!(ravi["name"], "Ravi, K");
    assert_eq!(ravi["channel"], "whatsapp");
    assert_eq!(ravi["timezone"], "Asia/Kolkata");
    assert_eq!(ravi["subscribed"], false, "an import does not re-subscribe");
    assert_eq!(by_phone("+12015550123")["name"], "Ann");
    assert_eq!(by_phone("+447400123458")["timezone"], "Europe/London");
    assert_eq!(roster["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_database_failure_imports_nothing() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let group = create_group(&app, token, "Batch A").await;
    add_student(&app, token, &group, super::student("Ravi", "+919876543210")).await;
    // the database fails part-way through the rows
    app.refuse_writes("students", "name", "Boom").await;
    let csv = "name,phone,channel,timezone\nAnn,+12015550123,sms,UTC\n\
               Ravi K,+919876543210,sms,UTC\nBoom,+12015550124,sms,UTC\n";
    let response = import(&app, token, &group, "text/csv", csv.to_owned()).await;
    assert_problem(
        response,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
    )
    .await;
    assert_eq!(app.count("students").await, 1);
    let roster = get_json(&app, &format!("/api/v1/groups/{group}/students"), token).await;
    assert_eq!(roster["items"][0]["name"], "Ravi");
}

#[tokio::test]
async fn a_bad_header_answers_422_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let group = create_group(&app, token, "Batch A").await;
    for csv in [
        "name,phone,channel,timezone,email\nAnn,+12015550123,sms,UTC,a@example.com\n",
        "name,phone,channel\nAnn,+12015550123,sms\n",
        "name,phone,phone,channel,timezone\n",
        "",
    ] {
        let response = import(&app, token, &group, "text/csv", csv.to_owned()).await;
        assert_field_error(response, "header").await;
    }
    assert_eq!(app.count("students").await, 0);
}

#[tokio::test]
async fn an_import_that_is_not_csv_answers_415() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let group = create_group(&app, token, "Batch A").await;
    let csv = "name,phone,channel,timezone\nAnn,+12015550123,sms,UTC\n".to_owned();
    let response = import(&app, token, &group, "application/json", csv).await;
    assert_problem(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert_eq!(app.count("students").await, 0);
}

#[tokio::test]
async fn a_file_over_the_limits_answers_413_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let group = create_group(&app, token, "Batch A").await;
    let mut rows = String::from("name,phone,channel,timezone\n");
    for n in 0..10_001 {
        rows.push_str(&format!("S{n},+1201555{:04},sms,UTC\n", n % 10_000));
    }
    let response = import(&app, token, &group, "text/csv", rows).await;
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    let big = format!(
        "name,phone,channel,timezone\n{}",
        "x".repeat(2 * 1024 * 1024)
    );
    let response = import(&app, token, &group, "text/csv", big).await;
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    assert_eq!(app.count("students").await, 0);

    // exactly 10,000 rows are fine, and go in in one statement
    let mut rows = String::from("name,phone,channel,timezone\n");
    for n in 0..10_000 {
        rows.push_str(&format!("S{n},+1201555{n:04},sms,UTC\n"));
    }
    let response = import(&app, token, &group, "text/csv", rows).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(
        report,
        json!({"created": 10_000, "updated": 0, "errors": []})
    );
    assert_eq!(app.count("students").await, 10_000);
}
