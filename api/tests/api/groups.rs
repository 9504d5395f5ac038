//! Groups: create (with a description and students), list, get, rename, delete; account
//! scoping. Students and CSV import have
//! their own files.

mod import;
mod students;

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_field_error, assert_problem};

pub async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    token: &str,
) -> Response {
    let mut request = app.request(method, path).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

/// Creates a group and returns its id.
pub async fn create_group(app: &TestApp, token: &str, name: &str) -> String {
    let response = app
        .post("/api/v1/groups", &json!({"name": name}), Some(token))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.expect("json");
    body["id"].as_str().expect("id").to_owned()
}

/// Adds a student and returns it.
pub async fn add_student(app: &TestApp, token: &str, group: &str, student: Value) -> Value {
    let response = app
        .post(
            &format!("/api/v1/groups/{group}/students"),
            &student,
            Some(token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.expect("json")
}

pub fn student(name: &str, phone: &str) -> Value {
    json!({"name": name, "phone": phone, "channel": "sms", "timezone": "Asia/Kolkata"})
}

pub async fn get_json(app: &TestApp, path: &str, token: &str) -> Value {
    let response = app.get(path, Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

#[tokio::test]
async fn groups_are_created_listed_in_pages_renamed_and_fetched_with_their_student_count() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let response = app
        .post(
            "/api/v1/groups",
            &json!({"name": "  Batch A "}),
            Some(token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["name"], "Batch A");
    assert_eq!(created["student_count"], 0);
    let first = created["id"].as_str().unwrap();
    let second = create_group(&app, token, "Batch B").await;
    add_student(&app, token, first, student("Ravi", "+919876543210")).await;

    let page = get_json(&app, "/api/v1/groups?limit=1", token).await;
    assert_eq!(page["items"][0]["id"], second.as_str(), "newest first");
    assert_eq!(page["items"][0]["student_count"], 0);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = get_json(
        &app,
        &format!("/api/v1/groups?limit=1&cursor={cursor}"),
        token,
    )
    .await;
    assert_eq!(rest["items"][0]["id"], first);
    assert_eq!(rest["items"][0]["student_count"], 1);
    assert!(rest["next_cursor"].is_null());

    let renamed = send(
        &app,
        Method::PUT,
        &format!("/api/v1/groups/{first}"),
        Some(json!({"name": "Batch A (2026)"})),
        token,
    )
    .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    let renamed: Value = renamed.json().await.unwrap();
    assert_eq!(renamed["name"], "Batch A (2026)");
    assert_eq!(renamed["student_count"], 1);
    let fetched = get_json(&app, &format!("/api/v1/groups/{first}"), token).await;
    assert_eq!(fetched, renamed);
}

#[tokio::test]
async fn a_group_is_created_with_its_description_and_students_in_one_request() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let body = json!({
        "name": "Batch A",
        "description": " Morning cohort ",
        "students": [
            student("Ravi", "+919876543210"),
            {"name": "Ann", "phone": "07400 123456", "country": "GB", "channel": "WhatsApp",
             "timezone": "Europe/London", "subscribed": false},
        ],
    });
    let response = app.post("/api/v1/groups", &body, Some(token)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["description"], "Morning cohort");
    assert_eq!(created["student_count"], 2);
    let id = created["id"].as_str().unwrap();
    let fetched = get_json(&app, &format!("/api/v1/groups/{id}"), token).await;
    assert_eq!(fetched, created);
    let listed = get_json(&app, "/api/v1/groups", token).await;
    assert_eq!(listed["items"][0]["description"], "Morning cohort");
    let roster = get_json(&app, &format!("/api/v1/groups/{id}/students"), token).await;
    let roster: Vec<(&str, &str, &str, bool)> = roster["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["phone"].as_str().unwrap(),
                s["channel"].as_str().unwrap(),
                s["subscribed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        roster,
        [
            ("Ravi", "+919876543210", "sms", true),
            ("Ann", "+447400123456", "whatsapp", false)
        ],
        "in the order given, with the same rules as adding students"
    );

    // PUT sets the description when given and keeps it when not
    let path = format!("/api/v1/groups/{id}");
    let body = json!({"name": "Batch A", "description": "Evenings"});
    let described: Value = send(&app, Method::PUT, &path, Some(body), token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(described["description"], "Evenings");
    let body = json!({"name": "Batch A2"});
    let renamed: Value = send(&app, Method::PUT, &path, Some(body), token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&renamed["name"], &renamed["description"]),
        (&json!("Batch A2"), &json!("Evenings"))
    );

    // without a description or students: an empty group, as before
    let plain: Value = app
        .post("/api/v1/groups", &json!({"name": "B"}), Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&plain["description"], &plain["student_count"]),
        (&json!(""), &json!(0))
    );
}

#[tokio::test]
async fn a_bad_student_in_a_new_group_is_named_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let many: Vec<Value> = (0..1_001)
        .map(|n| student(&format!("S{n}"), &format!("+1201555{n:04}")))
        .collect();
    let cases = [
        (
            json!([student("Ravi", "+919876543210"), student("Ann", "12")]),
            "students[1].phone",
        ),
        (
            json!([student("Ravi", "+919876543210"), {"name": "Ann", "phone": "+14155550100", "channel": "pigeon", "timezone": "UTC"}]),
            "students[1].channel",
        ),
        (
            json!([
                student("Ravi", "+919876543210"),
                student("Ravi again", "+91 98765 43210")
            ]),
            "students[1].phone",
        ),
        (
            json!([student("Ravi", "+919876543210"), {"name": "Ann", "phone": "+14155550100", "channel": "sms", "timezone": "UTC", "age": 3}]),
            "students[1].age",
        ),
        (json!(many), "students"),
    ];
    for (students, field) in cases {
        let body = json!({"name": "Batch A", "description": "d", "students": students});
        let response = app.post("/api/v1/groups", &body, Some(token)).await;
        assert_field_error(response, field).await;
    }
    assert_eq!(app.count("groups").await, 0);
    assert_eq!(app.count("students").await, 0);
}

#[tokio::test]
async fn bad_group_input_names_the_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    for (body, field) in [
        (json!({"name": "   "}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (
            json!({"name": "A", "description": "d".repeat(5_001)}),
            "description",
        ),
        (json!({"name": "A", "nickname": "d"}), "nickname"),
        (json!({}), "name"),
    ] {
        assert_field_error(app.post("/api/v1/groups", &body, Some(token)).await, field).await;
    }
    assert_eq!(app.count("groups").await, 0);
    let id = create_group(&app, token, "Batch A").await;
    let path = format!("/api/v1/groups/{id}");
    let response = send(&app, Method::PUT, &path, Some(json!({"name": ""})), token).await;
    assert_field_error(response, "name").await;
    let response = send(&app, Method::GET, "/api/v1/groups?limit=0", None, token).await;
    assert_field_error(response, "limit").await;
    assert_eq!(get_json(&app, &path, token).await["name"], "Batch A");
}

#[tokio::test]
async fn deleting_a_group_removes_its_students() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let id = create_group(&app, token, "Batch A").await;
    add_student(&app, token, &id, student("Ravi", "+919876543210")).await;
    let path = format!("/api/v1/groups/{id}");
    let deleted = send(&app, Method::DELETE, &path, None, token).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.count("students").await, 0);
    let again = send(&app, Method::GET, &path, None, token).await;
    assert_problem(again, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn a_group_an_active_delivery_sends_to_is_not_deleted() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let group = create_group(&app, token, "Batch A").await;
    add_student(&app, token, &group, student("Ravi", "+919876543210")).await;
    let course: Value = app
        .post(
            "/api/v1/courses",
            &json!({"name": "C", "author": "A", "days": [{"text": "Day one"}]}),
            Some(token),
        )
        .await
        .json()
        .await
        .unwrap();
    let start = (chrono::Utc::now() + chrono::Duration::days(7)).format("%Y-%m-%d 09:00:00");
    let delivery = app
        .post(
            "/api/v1/deliveries",
            &json!({"group_id": group, "course_id": course["id"], "start_at": start.to_string()}),
            Some(token),
        )
        .await;
    assert_eq!(delivery.status(), StatusCode::CREATED);
    let delivery: Value = delivery.json().await.unwrap();
    let path = format!("/api/v1/groups/{group}");
    let refused = send(&app, Method::DELETE, &path, None, token).await;
    assert_problem(refused, StatusCode::CONFLICT, "group_in_use").await;
    assert_eq!(app.count("students").await, 1);
    let stop = format!(
        "/api/v1/deliveries/{}/stop",
        delivery["id"].as_str().unwrap()
    );
    send(&app, Method::POST, &stop, None, token).await;
    let deleted = send(&app, Method::DELETE, &path, None, token).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn another_accounts_groups_and_students_and_malformed_ids_answer_404() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let eve = app.signup("eve@example.com").await;
    let id = create_group(&app, &ada.access_token, "Batch A").await;
    let ravi = add_student(
        &app,
        &ada.access_token,
        &id,
        student("Ravi", "+919876543210"),
    )
    .await;
    let student_id = ravi["id"].as_str().unwrap();
    let cases = [
        (Method::GET, format!("/api/v1/groups/{id}"), None),
        (
            Method::PUT,
            format!("/api/v1/groups/{id}"),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("/api/v1/groups/{id}"), None),
        (Method::GET, format!("/api/v1/groups/{id}/students"), None),
        (
            Method::POST,
            format!("/api/v1/groups/{id}/students"),
            Some(student("Eve", "+12015550123")),
        ),
        (
            Method::POST,
            format!("/api/v1/groups/{id}/students"),
            Some(json!({"students": [student("Eve", "+12015550123")]})),
        ),
        (Method::GET, format!("/api/v1/students/{student_id}"), None),
        (
            Method::PUT,
            format!("/api/v1/students/{student_id}"),
            Some(
                json!({"name": "x", "phone": "+12015550123", "channel": "sms",
                "timezone": "UTC", "subscribed": false}),
            ),
        ),
        (
            Method::DELETE,
            format!("/api/v1/students/{student_id}"),
            None,
        ),
        (Method::GET, "/api/v1/groups/not-a-uuid".to_owned(), None),
        (Method::GET, "/api/v1/students/not-a-uuid".to_owned(), None),
        (Method::GET, "/api/v1/groups/42/students".to_owned(), None),
    ];
    for (method, path, body) in cases {
        let response = send(&app, method.clone(), &path, body, &eve.access_token).await;
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let import = app
        .request(
            Method::POST,
            &format!("/api/v1/groups/{id}/students/import"),
        )
        .bearer_auth(&eve.access_token)
        .header("content-type", "text/csv")
        .body("name,phone,channel,timezone\nEve,+12015550123,sms,UTC\n")
        .send()
        .await
        .unwrap();
    assert_problem(import, StatusCode::NOT_FOUND, "not_found").await;
    let list = get_json(&app, "/api/v1/groups", &eve.access_token).await;
    assert_eq!(list["items"], json!([]));
    // nothing of Ada's changed
    let fetched = get_json(
        &app,
        &format!("/api/v1/students/{student_id}"),
        &ada.access_token,
    )
    .await;
    assert_eq!(fetched, ravi);
    assert_eq!(app.count("students").await, 1);
}
