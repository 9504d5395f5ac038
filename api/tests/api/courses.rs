use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_field_error, assert_problem};

fn sample_course() -> Value {
    json!({
        "name": "Python in 3 days",
        "author": "Ada",
        "description": "Basics over SMS",
        "days": [
            {"text": "Welcome! Today: variables.", "questions": null},
            {"text": "Today: print.", "questions": [
                {"question": "Which prints?", "type": "choice", "options": ["print(x)", "echo x"], "correct_answer": "print(x)"},
                {"question": "What did you learn?", "type": "open"}
            ]},
            {"text": "Today: loops."}
        ]
    })
}

async fn create(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = app.post("/api/v1/courses", body, Some(token)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    token: &str,
) -> reqwest::Response {
    let mut request = app.request(method, path).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_course_is_created_with_numbered_days_and_ordered_questions() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let course = create(&app, &ada.access_token, &sample_course()).await;
    let days = course["days"].as_array().unwrap();
    assert_eq!(
        days.iter()
            .map(|d| d["day"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(days[0]["questions"], json!([]));
    assert_eq!(days[1]["questions"][0]["type"], "choice");
    assert_eq!(
        days[1]["questions"][0]["options"],
        json!(["print(x)", "echo x"])
    );
    assert_eq!(days[1]["questions"][1]["question"], "What did you learn?");

    let id = course["id"].as_str().unwrap();
    let fetched: Value = app
        .get(&format!("/api/v1/courses/{id}"), Some(&ada.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, course);
    let list: Value = app
        .get("/api/v1/courses", Some(&ada.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["day_count"], 3);
}

#[tokio::test]
async fn bad_course_content_names_the_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let too_long = "x".repeat(4_097);
    let cases = [
        (json!({"name": "", "author": "A", "days": []}), "name"),
        (
            json!({"name": "N", "author": "A", "days": [{"text": too_long}]}),
            "days[0].text",
        ),
        (
            json!({"name": "N", "author": "A", "days": [{"day": 5, "text": "t"}]}),
            "days[0].day",
        ),
        (
            json!({"name": "N", "author": "A", "days": [{"text": "t", "questions": [{"question": "q", "type": "choice", "correct_answer": "a"}]}]}),
            "days[0].questions[0].options",
        ),
        (
            json!({"name": "N", "author": "A", "days": [{"text": "t", "questions": [{"question": "q", "type": "choice", "options": ["a", "b"], "correct_answer": "c"}]}]}),
            "days[0].questions[0].correct_answer",
        ),
        (
            json!({"name": "N", "author": "A", "days": [{"text": "t", "questions": [{"question": "q", "type": "essay"}]}]}),
            "days[0].questions[0].type",
        ),
        (
            json!({"name": "N", "author": "A", "days": [{"text": "t", "questions": [{"question": "q", "type": "open", "options": ["a", "b"]}]}]}),
            "days[0].questions[0].options",
        ),
        (
            json!({"name": "N", "author": "A", "days": [{"text": "t", "color": "red"}]}),
            "days[0].color",
        ),
    ];
    for (body, field) in cases {
        let problem = assert_field_error(
            app.post("/api/v1/courses", &body, Some(&ada.access_token))
                .await,
            field,
        )
        .await;
        if field == "days[0].text" {
            assert!(
                problem["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("4096"),
                "{problem}"
            );
        }
    }
    assert_eq!(app.count("courses").await, 0);
    assert_eq!(app.count("course_days").await, 0);
}

#[tokio::test]
async fn another_accounts_course_and_malformed_ids_answer_404() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let eve = app.signup("eve@example.com").await;
    let course = create(&app, &ada.access_token, &sample_course()).await;
    let id = course["id"].as_str().unwrap();
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/courses/{id}"), None),
        (
            Method::PUT,
            format!("/api/v1/courses/{id}"),
            Some(json!({"name": "x", "author": "y", "description": ""})),
        ),
        (Method::DELETE, format!("/api/v1/courses/{id}"), None),
        (Method::GET, format!("/api/v1/courses/{id}/days"), None),
        (
            Method::POST,
            format!("/api/v1/courses/{id}/days"),
            Some(json!({"text": "t"})),
        ),
        (Method::GET, format!("/api/v1/courses/{id}/days/1"), None),
        (Method::DELETE, format!("/api/v1/courses/{id}/days/1"), None),
        (
            Method::GET,
            format!("/api/v1/courses/{id}/days/2/questions"),
            None,
        ),
        (Method::GET, "/api/v1/courses/not-a-uuid".to_owned(), None),
    ] {
        let response = send(&app, method.clone(), &path, body, &eve.access_token).await;
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let question_id = course["days"][1]["questions"][0]["id"].as_str().unwrap();
    let response = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/questions/{question_id}"),
        None,
        &eve.access_token,
    )
    .await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = send(
        &app,
        Method::GET,
        &format!("/api/v1/courses/{id}/days/0"),
        None,
        &ada.access_token,
    )
    .await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    // nothing of Ada's changed
    let fetched: Value = app
        .get(&format!("/api/v1/courses/{id}"), Some(&ada.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, course);
}

#[tokio::test]
async fn days_are_appended_updated_and_renumbered_on_delete() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let course = create(&app, &ada.access_token, &sample_course()).await;
    let id = course["id"].as_str().unwrap();
    let token = &ada.access_token;

    let appended = send(
        &app,
        Method::POST,
        &format!("/api/v1/courses/{id}/days"),
        Some(json!({"text": "Day four"})),
        token,
    )
    .await;
    assert_eq!(appended.status(), StatusCode::CREATED);
    assert_eq!(appended.json::<Value>().await.unwrap()["day"], 4);

    let updated = send(
        &app,
        Method::PUT,
        &format!("/api/v1/courses/{id}/days/3"),
        Some(json!({"text": "Loops, revised"})),
        token,
    )
    .await;
    assert_eq!(
        updated.json::<Value>().await.unwrap()["text"],
        "Loops, revised"
    );

    let deleted = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/courses/{id}/days/2"),
        None,
        token,
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let page: Value = app
        .get(&format!("/api/v1/courses/{id}/days?limit=2"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    let texts: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Welcome! Today: variables.", "Loops, revised"]);
    assert_eq!(page["items"][1]["day"], 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get(
            &format!("/api/v1/courses/{id}/days?limit=2&cursor={cursor}"),
            Some(token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"][0]["day"], 3);
    assert_eq!(rest["items"][0]["text"], "Day four");
    assert!(rest["next_cursor"].is_null());
    assert_eq!(
        app.count("questions").await,
        0,
        "day 2's questions went with it"
    );

    let too_long = send(
        &app,
        Method::PUT,
        &format!("/api/v1/courses/{id}/days/1"),
        Some(json!({"text": "y".repeat(5000)})),
        token,
    )
    .await;
    assert_field_error(too_long, "text").await;
    let missing = send(
        &app,
        Method::PUT,
        &format!("/api/v1/courses/{id}/days/9"),
        Some(json!({"text": "t"})),
        token,
    )
    .await;
    assert_problem(missing, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn questions_are_added_updated_and_deleted_in_order() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let course = create(&app, &ada.access_token, &sample_course()).await;
    let id = course["id"].as_str().unwrap();
    let token = &ada.access_token;
    let path = format!("/api/v1/courses/{id}/days/2/questions");

    let added = send(&app, Method::POST, &path, Some(json!({"question": "Pick one", "type": "choice", "options": ["A", "B", "C"], "correct_answer": "c"})), token).await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let added: Value = added.json().await.unwrap();
    let bad = send(&app, Method::POST, &path, Some(json!({"question": "?", "type": "choice", "options": ["same", " SAME "], "correct_answer": "same"})), token).await;
    assert_field_error(bad, "options").await;

    let first_id = course["days"][1]["questions"][0]["id"].as_str().unwrap();
    let updated = send(
        &app,
        Method::PUT,
        &format!("/api/v1/questions/{first_id}"),
        Some(json!({"question": "Now open", "type": "open"})),
        token,
    )
    .await;
    assert_eq!(updated.status(), StatusCode::OK);
    let deleted = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/questions/{first_id}"),
        None,
        token,
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    let list: Value = app.get(&path, Some(token)).await.json().await.unwrap();
    let questions: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["question"].as_str().unwrap())
        .collect();
    assert_eq!(questions, ["What did you learn?", "Pick one"]);
    assert_eq!(list["items"][1]["id"], added["id"]);
}

#[tokio::test]
async fn a_course_is_updated_and_deleted_with_its_content() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let course = create(&app, &ada.access_token, &sample_course()).await;
    let id = course["id"].as_str().unwrap();
    let updated = send(
        &app,
        Method::PUT,
        &format!("/api/v1/courses/{id}"),
        Some(json!({"name": "Python, revised", "author": "Ada L.", "description": "d"})),
        &ada.access_token,
    )
    .await;
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(updated["name"], "Python, revised");
    assert_eq!(updated["days"].as_array().unwrap().len(), 3);
    let partial = send(
        &app,
        Method::PUT,
        &format!("/api/v1/courses/{id}"),
        Some(json!({"name": "x"})),
        &ada.access_token,
    )
    .await;
    assert_field_error(partial, "author").await;
    let deleted = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/courses/{id}"),
        None,
        &ada.access_token,
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.count("course_days").await, 0);
    assert_eq!(app.count("questions").await, 0);
}
