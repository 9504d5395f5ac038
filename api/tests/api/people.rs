//! People (CRM): create, get, replace, delete, search and pages, e-mail unique per account in
//! any case, bad input, account scoping. The CSV import has its own file.

mod import;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::groups::{get_json, send};
use crate::helpers::{TestApp, assert_field_error, assert_problem, emails_of};

/// Creates a person and returns it.
pub async fn create_person(app: &TestApp, token: &str, person: Value) -> Value {
    let response = app.post("/api/v1/people", &person, Some(token)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.expect("json")
}

#[tokio::test]
async fn a_person_is_created_fetched_replaced_and_deleted() {
    let app = TestApp::spawn().await;
    let token = &app.signup("owner@example.com").await.access_token;
    let body = json!({
        "email": " Ada@Example.COM ", "first_name": " Ada ", "last_name": "Lovelace",
        "company": "Analytical Engines", "title": "CTO", "timezone": "Europe/London",
        "attributes": {"linkedin": "https://www.linkedin.com/in/ada", "Plan": "gold"},
    });
    let created = create_person(&app, token, body).await;
    assert_eq!(created["email"], "ada@example.com");
    assert_eq!(created["first_name"], "Ada");
    assert_eq!(created["timezone"], "Europe/London");
    assert_eq!(created["attributes"]["Plan"], "gold");
    let path = format!("/api/v1/people/{}", created["id"].as_str().unwrap());
    assert_eq!(get_json(&app, &path, token).await, created);

    // PUT replaces every field: those left out are cleared
    let body = json!({"email": "ada@lovelace.example", "company": "Babbage & Co"});
    let replaced = send(&app, Method::PUT, &path, Some(body), token).await;
    assert_eq!(replaced.status(), StatusCode::OK);
    let replaced: Value = replaced.json().await.unwrap();
    assert_eq!(replaced["id"], created["id"]);
    assert_eq!(replaced["email"], "ada@lovelace.example");
    assert_eq!(replaced["company"], "Babbage & Co");
    assert_eq!(
        (
            &replaced["first_name"],
            &replaced["timezone"],
            &replaced["attributes"]
        ),
        (&json!(""), &Value::Null, &json!({}))
    );
    assert_eq!(get_json(&app, &path, token).await, replaced);

    let deleted = send(&app, Method::DELETE, &path, None, token).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = app.get(&path, Some(token)).await;
    assert_problem(gone, StatusCode::NOT_FOUND, "not_found").await;
    let again = send(&app, Method::DELETE, &path, None, token).await;
    assert_problem(again, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.count("people").await, 0);
}

#[tokio::test]
async fn people_are_listed_newest_first_in_pages_and_searched_in_any_case() {
    let app = TestApp::spawn().await;
    let token = &app.signup("owner@example.com").await.access_token;
    for (email, first, last, company) in [
        ("ada@example.com", "Ada", "Lovelace", "Analytical Engines"),
        (
            "charles@example.com",
            "Charles",
            "Babbage",
            "Difference Engines",
        ),
        ("grace@navy.example", "Grace", "Hopper", "US Navy"),
        ("alan@example.com", "Alan", "Turing", "100% Bletchley"),
    ] {
        let person = json!({"email": email, "first_name": first, "last_name": last,
            "company": company});
        create_person(&app, token, person).await;
    }
    let page = get_json(&app, "/api/v1/people?limit=3", token).await;
    assert_eq!(
        emails_of(&page),
        [
            "alan@example.com",
            "grace@navy.example",
            "charles@example.com"
        ]
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = get_json(
        &app,
        &format!("/api/v1/people?limit=3&cursor={cursor}"),
        token,
    )
    .await;
    assert_eq!(emails_of(&rest), ["ada@example.com"]);
    assert!(rest["next_cursor"].is_null());

    for (q, expected) in [
        ("ENGINES", vec!["charles@example.com", "ada@example.com"]),
        ("navy.EXAMPLE", vec!["grace@navy.example"]),
        ("hopper", vec!["grace@navy.example"]),
        ("ada%20lovelace", vec!["ada@example.com"]),
        ("%25", vec!["alan@example.com"]),
        ("_", vec![]),
        (
            "%20%20",
            vec![
                "alan@example.com",
                "grace@navy.example",
                "charles@example.com",
                "ada@example.com",
            ],
        ),
    ] {
        let found = get_json(&app, &format!("/api/v1/people?q={q}"), token).await;
        assert_eq!(emails_of(&found), expected, "q={q}");
    }
    // a search pages like the whole list
    let first = get_json(&app, "/api/v1/people?q=engines&limit=1", token).await;
    assert_eq!(emails_of(&first), ["charles@example.com"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get_json(
        &app,
        &format!("/api/v1/people?q=engines&limit=1&cursor={cursor}"),
        token,
    )
    .await;
    assert_eq!(emails_of(&second), ["ada@example.com"]);
    assert!(second["next_cursor"].is_null());
}

#[tokio::test]
async fn an_email_is_unique_per_account_in_any_case() {
    let app = TestApp::spawn().await;
    let token = &app.signup("owner@example.com").await.access_token;
    create_person(&app, token, json!({"email": "ada@example.com"})).await;
    let response = app
        .post(
            "/api/v1/people",
            &json!({"email": "ADA@example.com", "first_name": "Other"}),
            Some(token),
        )
        .await;
    let body = assert_problem(response, StatusCode::CONFLICT, "person_exists").await;
    assert_eq!(body["errors"][0]["field"], "email", "{body}");

    let grace = create_person(&app, token, json!({"email": "grace@example.com"})).await;
    let path = format!("/api/v1/people/{}", grace["id"].as_str().unwrap());
    let body = json!({"email": "Ada@Example.com"});
    let response = send(&app, Method::PUT, &path, Some(body), token).await;
    assert_problem(response, StatusCode::CONFLICT, "person_exists").await;
    assert_eq!(get_json(&app, &path, token).await, grace, "unchanged");
    // keeping one's own e-mail in another case is no conflict
    let body = json!({"email": "GRACE@example.com", "first_name": "Grace"});
    let response = send(&app, Method::PUT, &path, Some(body), token).await;
    assert_eq!(response.status(), StatusCode::OK);

    // another account has its own people
    let other = &app.signup("other@example.com").await.access_token;
    create_person(&app, other, json!({"email": "ada@example.com"})).await;
    assert_eq!(app.count("people").await, 3);
}

#[tokio::test]
async fn bad_input_is_a_422_naming_the_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let token = &app.signup("owner@example.com").await.access_token;
    let many: serde_json::Map<String, Value> =
        (0..51).map(|n| (format!("k{n}"), json!("v"))).collect();
    let cases = [
        (json!({"email": "ada"}), "email"),
        (json!({"first_name": "Ada"}), "email"),
        (
            json!({"email": "ada@example.com", "timezone": "EST"}),
            "timezone",
        ),
        (
            json!({"email": "ada@example.com", "timezone": "Etc/GMT+5"}),
            "timezone",
        ),
        (
            json!({"email": "ada@example.com", "timezone": ""}),
            "timezone",
        ),
        (
            json!({"email": "ada@example.com", "last_name": "x".repeat(201)}),
            "last_name",
        ),
        (json!({"email": "ada@example.com", "title": 7}), "title"),
        (
            json!({"email": "ada@example.com", "attributes": ["a"]}),
            "attributes",
        ),
        (
            json!({"email": "ada@example.com", "attributes": {"n": 1}}),
            "attributes.n",
        ),
        (
            json!({"email": "ada@example.com", "attributes": {"n": {"x": "y"}}}),
            "attributes.n",
        ),
        (
            json!({"email": "ada@example.com", "attributes": many}),
            "attributes",
        ),
        (
            json!({"email": "ada@example.com", "attributes": {"": "v"}}),
            "attributes",
        ),
        (
            json!({"email": "ada@example.com", "attributes": {"n": "v".repeat(1_001)}}),
            "attributes.n",
        ),
        (
            json!({"email": "ada@example.com", "company": "A\u{0}B"}),
            "company",
        ),
        (json!({"email": "ada@example.com", "phone": "+1"}), "phone"),
    ];
    for (body, field) in cases {
        let response = app.post("/api/v1/people", &body, Some(token)).await;
        assert_field_error(response, field).await;
    }
    // several at once are all named
    let body = json!({"email": "x", "timezone": "Mars/Base", "attributes": {"": ""}});
    let response = app.post("/api/v1/people", &body, Some(token)).await;
    let problem = assert_field_error(response, "email").await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 3, "{problem}");
    assert_eq!(app.count("people").await, 0);

    // a PUT is checked the same way and changes nothing
    let ada = create_person(&app, token, json!({"email": "ada@example.com"})).await;
    let path = format!("/api/v1/people/{}", ada["id"].as_str().unwrap());
    let body = json!({"email": "ada@example.com", "timezone": "EST", "first_name": "Changed"});
    let response = send(&app, Method::PUT, &path, Some(body), token).await;
    assert_field_error(response, "timezone").await;
    assert_eq!(get_json(&app, &path, token).await, ada);

    for (query, field) in [
        (format!("q={}", "x".repeat(201)), "q"),
        ("q=a%00b".to_owned(), "q"),
        ("limit=0".to_owned(), "limit"),
        ("cursor=nope".to_owned(), "cursor"),
        ("sort=email".to_owned(), "sort"),
    ] {
        let response = app
            .get(&format!("/api/v1/people?{query}"), Some(token))
            .await;
        assert_field_error(response, field).await;
    }
}

#[tokio::test]
async fn another_account_s_person_answers_404_and_is_never_shown_or_changed() {
    let app = TestApp::spawn().await;
    let ada = &app.signup("ada@example.com").await.access_token;
    let eve = &app.signup("eve@example.com").await.access_token;
    let person = create_person(
        &app,
        ada,
        json!({"email": "p@example.com", "first_name": "P"}),
    )
    .await;
    let path = format!("/api/v1/people/{}", person["id"].as_str().unwrap());
    let response = app.get(&path, Some(eve)).await;
    let body = assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    assert!(!body.to_string().contains("p@example.com"));
    let put = json!({"email": "stolen@example.com"});
    let response = send(&app, Method::PUT, &path, Some(put), eve).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = send(&app, Method::DELETE, &path, None, eve).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let listed = get_json(&app, "/api/v1/people?q=p%40example", eve).await;
    assert_eq!(listed["items"], json!([]));
    assert_eq!(get_json(&app, &path, ada).await, person, "unchanged");
    let response = app.get("/api/v1/people/not-a-uuid", Some(ada)).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app.get("/api/v1/people", None).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
}
