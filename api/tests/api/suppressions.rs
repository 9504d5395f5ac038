//! Suppressions: idempotent create per address in any case, list by reason in pages, get,
//! delete, bad input, account scoping, and the checks campaign sending will call
//! (`herald_shared::db::suppressions::{is_suppressed, suppressed_among}`).

use herald_shared::db::suppressions::{self, SuppressionReason};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::groups::{get_json, send};
use crate::helpers::{TestApp, assert_field_error, assert_problem, emails_of};

async fn suppress(app: &TestApp, token: &str, body: Value, status: StatusCode) -> Value {
    let response = app.post("/api/v1/suppressions", &body, Some(token)).await;
    assert_eq!(response.status(), status);
    response.json().await.expect("json")
}

#[tokio::test]
async fn creating_a_suppression_again_answers_the_existing_one_unchanged() {
    let app = TestApp::spawn().await;
    let token = &app.signup("owner@example.com").await.access_token;
    let body = json!({"email": " Ada@Example.com ", "reason": "bounced", "source": " sendgrid "});
    let created = suppress(&app, token, body, StatusCode::CREATED).await;
    assert_eq!(created["email"], "ada@example.com");
    assert_eq!(created["reason"], "bounced");
    assert_eq!(created["source"], "sendgrid");
    let body = json!({"email": "ADA@example.COM", "reason": "manual"});
    let again = suppress(&app, token, body, StatusCode::OK).await;
    assert_eq!(again, created, "the existing suppression, its reason kept");
    assert_eq!(app.count("suppressions").await, 1);

    let path = format!("/api/v1/suppressions/{}", created["id"].as_str().unwrap());
    assert_eq!(get_json(&app, &path, token).await, created);
    let deleted = send(&app, Method::DELETE, &path, None, token).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = app.get(&path, Some(token)).await;
    assert_problem(gone, StatusCode::NOT_FOUND, "not_found").await;
    // once removed, the address can be suppressed anew, for another reason
    let body = json!({"email": "ada@example.com", "reason": "manual"});
    let anew = suppress(&app, token, body, StatusCode::CREATED).await;
    assert_ne!(anew["id"], created["id"]);
    assert_eq!(
        (&anew["reason"], &anew["source"]),
        (&json!("manual"), &Value::Null)
    );
}

#[tokio::test]
async fn suppressions_are_listed_newest_first_in_pages_and_by_reason() {
    let app = TestApp::spawn().await;
    let token = &app.signup("owner@example.com").await.access_token;
    for (email, reason) in [
        ("a@example.com", "unsubscribed"),
        ("b@example.com", "bounced"),
        ("c@example.com", "complained"),
        ("d@example.com", "bounced"),
        ("e@example.com", "manual"),
    ] {
        let body = json!({"email": email, "reason": reason});
        suppress(&app, token, body, StatusCode::CREATED).await;
    }
    let page = get_json(&app, "/api/v1/suppressions?limit=2", token).await;
    assert_eq!(emails_of(&page), ["e@example.com", "d@example.com"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let path = format!("/api/v1/suppressions?limit=2&cursor={cursor}");
    let next = get_json(&app, &path, token).await;
    assert_eq!(emails_of(&next), ["c@example.com", "b@example.com"]);

    let bounced = get_json(&app, "/api/v1/suppressions?reason=bounced&limit=1", token).await;
    assert_eq!(emails_of(&bounced), ["d@example.com"]);
    let cursor = bounced["next_cursor"].as_str().unwrap();
    let path = format!("/api/v1/suppressions?reason=bounced&limit=1&cursor={cursor}");
    let rest = get_json(&app, &path, token).await;
    assert_eq!(emails_of(&rest), ["b@example.com"]);
    assert!(rest["next_cursor"].is_null());
}

#[tokio::test]
async fn bad_input_is_a_422_naming_the_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let token = &app.signup("owner@example.com").await.access_token;
    for (body, field) in [
        (json!({"email": "ada", "reason": "manual"}), "email"),
        (json!({"reason": "manual"}), "email"),
        (
            json!({"email": "ada@example.com", "reason": "spam"}),
            "reason",
        ),
        (
            json!({"email": "ada@example.com", "reason": "Manual"}),
            "reason",
        ),
        (json!({"email": "ada@example.com"}), "reason"),
        (
            json!({"email": "ada@example.com", "reason": "manual", "source": "s".repeat(201)}),
            "source",
        ),
        (
            json!({"email": "ada@example.com", "reason": "manual", "note": "x"}),
            "note",
        ),
    ] {
        let response = app.post("/api/v1/suppressions", &body, Some(token)).await;
        assert_field_error(response, field).await;
    }
    assert_eq!(app.count("suppressions").await, 0);
    for (query, field) in [
        ("reason=spam", "reason"),
        ("limit=201", "limit"),
        ("q=x", "q"),
    ] {
        let response = app
            .get(&format!("/api/v1/suppressions?{query}"), Some(token))
            .await;
        assert_field_error(response, field).await;
    }
}

#[tokio::test]
async fn another_account_s_suppression_answers_404_and_does_not_suppress_for_it() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let eve = app.signup("eve@example.com").await;
    let body = json!({"email": "p@example.com", "reason": "complained"});
    let theirs = suppress(&app, &ada.access_token, body, StatusCode::CREATED).await;
    let path = format!("/api/v1/suppressions/{}", theirs["id"].as_str().unwrap());
    let response = app.get(&path, Some(&eve.access_token)).await;
    let problem = assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    assert!(!problem.to_string().contains("p@example.com"));
    let response = send(&app, Method::DELETE, &path, None, &eve.access_token).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let listed = get_json(&app, "/api/v1/suppressions", &eve.access_token).await;
    assert_eq!(listed["items"], json!([]));
    assert_eq!(get_json(&app, &path, &ada.access_token).await, theirs);

    // the same address is the other account's own business
    let body = json!({"email": "P@example.com", "reason": "manual"});
    let own = suppress(&app, &eve.access_token, body, StatusCode::CREATED).await;
    assert_ne!(own["id"], theirs["id"]);
    assert_eq!(own["reason"], "manual");
}

#[tokio::test]
async fn sending_checks_see_an_account_s_suppressions_in_any_case_and_only_its_own() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let eve = app.signup("eve@example.com").await;
    for (email, reason) in [
        ("gone@example.com", "bounced"),
        ("Quit@Example.com", "unsubscribed"),
    ] {
        let body = json!({"email": email, "reason": reason});
        suppress(&app, &ada.access_token, body, StatusCode::CREATED).await;
    }
    let db = &app.db;
    assert!(
        suppressions::is_suppressed(db, ada.account_id, "GONE@example.com")
            .await
            .unwrap()
    );
    assert!(
        suppressions::is_suppressed(db, ada.account_id, "quit@example.com")
            .await
            .unwrap()
    );
    assert!(
        !suppressions::is_suppressed(db, ada.account_id, "fine@example.com")
            .await
            .unwrap()
    );
    assert!(
        !suppressions::is_suppressed(db, eve.account_id, "gone@example.com")
            .await
            .unwrap()
    );

    let emails = ["fine@example.com", "QUIT@example.com", "gone@example.com"].map(String::from);
    let found = suppressions::suppressed_among(db, ada.account_id, &emails)
        .await
        .unwrap();
    let mut found: Vec<(String, SuppressionReason)> = found.into_iter().collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        found,
        [
            ("gone@example.com".to_owned(), SuppressionReason::Bounced),
            (
                "quit@example.com".to_owned(),
                SuppressionReason::Unsubscribed
            ),
        ]
    );
    let none = suppressions::suppressed_among(db, eve.account_id, &emails)
        .await
        .unwrap();
    assert!(none.is_empty());
    let empty = suppressions::suppressed_among(db, ada.account_id, &[])
        .await
        .unwrap();
    assert!(empty.is_empty());
}
