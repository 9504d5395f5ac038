//! Students: one or many added, listed, replaced, removed; validation and conflicts.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{add_student, create_group, get_json, send, student};
use crate::helpers::{TestApp, assert_field_error, assert_problem};

#[tokio::test]
async fn a_student_is_added_with_the_phone_in_e164_and_read_back() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let group = create_group(&app, token, "Batch A").await;
    let added = add_student(
        &app,
        token,
        &group,
        json!({"name": " Ravi ", "phone": "098765 43210", "country": "in",
            "channel": "WhatsApp", "timezone": "Asia/Kolkata"}),
    )
    .await;
    assert_eq!(added["name"], "Ravi");
    assert_eq!(added["phone"], "+919876543210");
    assert_eq!(added["channel"], "whatsapp");
    assert_eq!(added["timezone"], "Asia/Kolkata");
    assert_eq!(added["subscribed"], true);
    assert_eq!(added["group_id"], group.as_str());
    let id = added["id"].as_str().unwrap();
    assert_eq!(
        get_json(&app, &format!("/api/v1/students/{id}"), token).await,
        added
    );
    let us = add_student(
        &app,
        token,
        &group,
        json!({"name": "Ann", "phone": "+1 (201) 555-0123", "channel": "sms",
            "timezone": "America/New_York", "subscribed": false}),
    )
    .await;
    assert_eq!(us["phone"], "+12015550123");
    assert_eq!(us["subscribed"], false);
}

#[tokio::test]
async fn many_students_are_added_in_order_or_not_at_all() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let group = create_group(&app, token, "Batch A").await;
    let path = format!("/api/v1/groups/{group}/students");
    let body = json!({"students": [
        student("Asha", "+919876543210"),
        student("Ben", "+447400123456"),
        student("Cara", "+12015550123"),
    ]});
    let response = app.post(&path, &body, Some(token)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let added: Value = response.json().await.unwrap();
    let names: Vec<&str> = added["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Asha", "Ben", "Cara"]);
    let listed = get_json(&app, &path, token).await;
    assert_eq!(
        listed["items"], added["items"],
        "the roster keeps the order given"
    );

    let cases = [
        // one bad student among good ones
        (
            json!({"students": [
                student("Dev", "+919876543211"), student("Eli", "+919876543212"),
                student("Fay", "+919876543213"), student("Gus", "12345"),
            ]}),
            "students[3].phone",
        ),
        // a phone already in the group, written differently
        (
            json!({"students": [student("Dev", "+919876543211"), student("Asha 2", "+91 98765 43210")]}),
            "students[1].phone",
        ),
        // the same phone twice in one request
        (
            json!({"students": [student("Dev", "+919876543211"), student("Dev 2", "+919876543211")]}),
            "students[1].phone",
        ),
        (json!({"students": []}), "students"),
        (
            json!({"students": [student("Dev", "+919876543211")], "group": "x"}),
            "group",
        ),
        (
            json!({"students": [{"name": "Dev", "phone": "+919876543211", "channel": "sms",
                "timezone": "UTC", "email": "d@example.com"}]}),
            "students[0].email",
        ),
    ];
    for (body, field) in cases {
        assert_field_error(app.post(&path, &body, Some(token)).await, field).await;
    }
    assert_eq!(app.count("students").await, 3);
}

#[tokio::test]
async fn a_phone_already_in_the_group_answers_409_but_another_group_may_have_it() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let group = create_group(&app, token, "Batch A").await;
    add_student(&app, token, &group, student("Ravi", "+919876543210")).await;
    let again = app
        .post(
            &format!("/api/v1/groups/{group}/students"),
            &json!({"name": "Ravi K", "phone": "09876543210", "country": "IN",
                "channel": "sms", "timezone": "Asia/Kolkata"}),
            Some(token),
        )
        .await;
    assert_problem(again, StatusCode::CONFLICT, "student_exists").await;
    let other = create_group(&app, token, "Batch B").await;
    add_student(&app, token, &other, student("Ravi", "+919876543210")).await;
    assert_eq!(app.count("students").await, 2);
}

#[tokio::test]
async fn bad_student_input_names_the_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let group = create_group(&app, token, "Batch A").await;
    let path = format!("/api/v1/groups/{group}/students");
    let with = |field: &str, value: Value| {
        let mut body = student("Ravi", "+919876543210");
        body[field] = value;
        body
    };
    let cases = [
        (with("phone", json!("+1 123 456 7890")), "phone"),
        (with("phone", json!("9876543210")), "phone"),
        (with("phone", json!("call me")), "phone"),
        (with("country", json!("India")), "country"),
        (with("timezone", json!("EST")), "timezone"),
        (with("timezone", json!("Mars/Base")), "timezone"),
        (with("channel", json!("pigeon")), "channel"),
        (with("name", json!("  ")), "name"),
        (with("email", json!("r@example.com")), "email"),
        (with("subscribed", json!("yes")), "subscribed"),
        (
            json!({"name": "Ravi", "phone": "+919876543210", "channel": "sms"}),
            "timezone",
        ),
    ];
    for (body, field) in cases {
        assert_field_error(app.post(&path, &body, Some(token)).await, field).await;
    }
    assert_eq!(app.count("students").await, 0);
}

#[tokio::test]
async fn students_are_listed_in_pages_and_filtered_by_subscription() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let group = create_group(&app, token, "Batch A").await;
    let path = format!("/api/v1/groups/{group}/students");
    add_student(&app, token, &group, student("Asha", "+919876543210")).await;
    let mut ben = student("Ben", "+447400123456");
    ben["subscribed"] = json!(false);
    add_student(&app, token, &group, ben).await;
    add_student(&app, token, &group, student("Cara", "+12015550123")).await;

    let page = get_json(&app, &format!("{path}?limit=2"), token).await;
    assert_eq!(page["items"][0]["name"], "Asha");
    assert_eq!(page["items"][1]["name"], "Ben");
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = get_json(&app, &format!("{path}?limit=2&cursor={cursor}"), token).await;
    assert_eq!(rest["items"][0]["name"], "Cara");
    assert!(rest["next_cursor"].is_null());
    let unsubscribed = get_json(&app, &format!("{path}?subscribed=false"), token).await;
    assert_eq!(unsubscribed["items"].as_array().unwrap().len(), 1);
    assert_eq!(unsubscribed["items"][0]["name"], "Ben");
    let subscribed = get_json(&app, &format!("{path}?subscribed=true"), token).await;
    assert_eq!(subscribed["items"].as_array().unwrap().len(), 2);
    for (query, field) in [
        ("subscribed=maybe", "subscribed"),
        ("cursor=zzz", "cursor"),
        ("sort=name", "sort"),
    ] {
        let response = app.get(&format!("{path}?{query}"), Some(token)).await;
        assert_field_error(response, field).await;
    }
}

#[tokio::test]
async fn a_student_is_replaced_and_removed() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let group = create_group(&app, token, "Batch A").await;
    let ravi = add_student(&app, token, &group, student("Ravi", "+919876543210")).await;
    add_student(&app, token, &group, student("Ann", "+12015550123")).await;
    let path = format!("/api/v1/students/{}", ravi["id"].as_str().unwrap());

    let replacement = json!({"name": "Ravi K", "phone": "07400 123456", "country": "GB",
        "channel": "whatsapp", "timezone": "Europe/London", "subscribed": false});
    let updated = send(&app, Method::PUT, &path, Some(replacement), token).await;
    assert_eq!(updated.status(), StatusCode::OK);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(updated["phone"], "+447400123456");
    assert_eq!(updated["channel"], "whatsapp");
    assert_eq!(updated["timezone"], "Europe/London");
    assert_eq!(updated["subscribed"], false);
    assert_eq!(updated["created_at"], ravi["created_at"]);

    let taken = json!({"name": "Ravi", "phone": "+12015550123", "channel": "sms",
        "timezone": "UTC", "subscribed": true});
    let conflict = send(&app, Method::PUT, &path, Some(taken), token).await;
    assert_problem(conflict, StatusCode::CONFLICT, "student_exists").await;
    let partial =
        json!({"name": "Ravi", "phone": "+12015550124", "channel": "sms", "timezone": "UTC"});
    assert_field_error(
        send(&app, Method::PUT, &path, Some(partial), token).await,
        "subscribed",
    )
    .await;
    let bad_zone = json!({"name": "Ravi", "phone": "+12015550124", "channel": "sms",
        "timezone": "Etc/GMT+5", "subscribed": true});
    assert_field_error(
        send(&app, Method::PUT, &path, Some(bad_zone), token).await,
        "timezone",
    )
    .await;
    assert_eq!(
        get_json(&app, &path, token).await,
        updated,
        "refused updates change nothing"
    );

    let deleted = send(&app, Method::DELETE, &path, None, token).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = send(&app, Method::GET, &path, None, token).await;
    assert_problem(gone, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.count("students").await, 1);
}
