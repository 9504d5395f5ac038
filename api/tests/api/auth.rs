use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_field_error, assert_problem, session_from, token_in};

#[tokio::test]
async fn signup_creates_the_user_and_account_and_plans_a_verification_email() {
    let app = TestApp::spawn().await;
    let response = app
        .post(
            "/api/v1/auth/signup",
            &json!({"email": " Ada@Example.com ", "password": "correct horse", "name": "Ada"}),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert_eq!(body["user"]["email_verified"], false);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    let session = session_from(&body);
    assert_eq!(app.count("accounts").await, 1);
    let planned: (String, String) = sqlx::query_as(
        "select state, account_id::text from effects where kind = 'email' and payload->>'to' = 'ada@example.com'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        planned,
        ("planned".to_owned(), session.account_id.to_string())
    );
    let text = app.last_email_to("ada@example.com").await.unwrap();
    assert!(
        text.contains("http://localhost:3000/verify-email?token="),
        "{text}"
    );
}

#[tokio::test]
async fn signup_refuses_bad_input_field_by_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"email": "not-an-email", "password": "correct horse", "name": "Ada"}),
            "email",
        ),
        (
            json!({"email": "ada@example.com", "password": "short", "name": "Ada"}),
            "password",
        ),
        (
            json!({"email": "ada@example.com", "password": "correct horse", "name": "  "}),
            "name",
        ),
        (
            json!({"email": "ada@example.com", "password": "correct horse", "name": "Ada", "role": "admin"}),
            "role",
        ),
        (
            json!({"email": "ada@example.com", "name": "Ada"}),
            "password",
        ),
        (
            json!({"email": 42, "password": "correct horse", "name": "Ada"}),
            "email",
        ),
    ];
    for (body, field) in cases {
        assert_field_error(app.post("/api/v1/auth/signup", &body, None).await, field).await;
    }
    let malformed = app
        .request(reqwest::Method::POST, "/api/v1/auth/signup")
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, StatusCode::BAD_REQUEST, "malformed_json").await;
    let not_json = app
        .request(reqwest::Method::POST, "/api/v1/auth/signup")
        .body("email=a")
        .send()
        .await
        .unwrap();
    assert_problem(
        not_json,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    for table in ["accounts", "users", "effects", "sessions"] {
        assert_eq!(app.count(table).await, 0, "{table} has rows");
    }
}

#[tokio::test]
async fn several_invalid_fields_are_all_reported() {
    let app = TestApp::spawn().await;
    let body = assert_field_error(
        app.post(
            "/api/v1/auth/signup",
            &json!({"email": "x", "password": "short", "name": ""}),
            None,
        )
        .await,
        "email",
    )
    .await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 3, "{body}");
}

#[tokio::test]
async fn signup_with_a_taken_email_is_a_conflict_whatever_the_case() {
    let app = TestApp::spawn().await;
    app.signup("ada@example.com").await;
    let response = app
        .post(
            "/api/v1/auth/signup",
            &json!({"email": "ADA@example.com", "password": "another pass", "name": "Eve"}),
            None,
        )
        .await;
    assert_problem(response, StatusCode::CONFLICT, "email_taken").await;
    assert_eq!(
        app.count("accounts").await,
        1,
        "no orphan account is left behind"
    );
}

#[tokio::test]
async fn login_works_and_failures_do_not_say_which_part_was_wrong() {
    let app = TestApp::spawn().await;
    app.signup("ada@example.com").await;
    let ok = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "Ada@example.com", "password": "correct horse"}),
            None,
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let wrong_password = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": "nope nope"}),
            None,
        )
        .await;
    let wrong_password = assert_problem(
        wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let unknown = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "eve@example.com", "password": "nope nope"}),
            None,
        )
        .await;
    let unknown = assert_problem(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(wrong_password, unknown);
}

#[tokio::test]
async fn repeated_failed_logins_are_limited_per_account() {
    let app = TestApp::spawn_with(&[("auth.max_failed_logins_per_account", json!(3))]).await;
    app.signup("ada@example.com").await;
    let wrong = json!({"email": "ada@example.com", "password": "wrong password"});
    for _ in 0..3 {
        assert_eq!(
            app.post("/api/v1/auth/login", &wrong, None).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let right = json!({"email": "ada@example.com", "password": "correct horse"});
    let limited = app.post("/api/v1/auth/login", &right, None).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 900);
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
}

#[tokio::test]
async fn repeated_failed_logins_are_limited_per_ip_across_accounts() {
    let app = TestApp::spawn_with(&[("auth.max_failed_logins_per_ip", json!(2))]).await;
    for email in ["a@example.com", "b@example.com"] {
        let wrong = json!({"email": email, "password": "wrong password"});
        assert_eq!(
            app.post("/api/v1/auth/login", &wrong, None).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let other = json!({"email": "c@example.com", "password": "wrong password"});
    assert_eq!(
        app.post("/api/v1/auth/login", &other, None).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn me_needs_a_valid_access_token() {
    let app = TestApp::spawn().await;
    let session = app.signup("ada@example.com").await;
    let me: Value = app
        .get("/api/v1/me", Some(&session.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], session.user_id.to_string());
    assert_problem(
        app.get("/api/v1/me", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_problem(
        app.get("/api/v1/me", Some("garbage")).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_ends_the_session() {
    let app = TestApp::spawn().await;
    let first = app.signup("ada@example.com").await;
    let rotated = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": first.refresh_token}),
            None,
        )
        .await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let second = session_from(&rotated.json().await.unwrap());
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(
        app.get("/api/v1/me", Some(&second.access_token))
            .await
            .status(),
        StatusCode::OK
    );

    let replay = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": first.refresh_token}),
            None,
        )
        .await;
    assert_problem(replay, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // the replay ended the session: the rotated tokens stop working too
    let after = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": second.refresh_token}),
            None,
        )
        .await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/api/v1/me", Some(&second.access_token))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let unknown = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": "made-up"}),
            None,
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_ends_the_session_for_access_and_refresh_tokens() {
    let app = TestApp::spawn().await;
    let session = app.signup("ada@example.com").await;
    let other = session_from(
        &app.post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": "correct horse"}),
            None,
        )
        .await
        .json()
        .await
        .unwrap(),
    );
    let logout = app
        .post(
            "/api/v1/auth/logout",
            &json!({}),
            Some(&session.access_token),
        )
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/me", Some(&session.access_token))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let refresh = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": session.refresh_token}),
            None,
        )
        .await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    // another session of the same user is unaffected
    assert_eq!(
        app.get("/api/v1/me", Some(&other.access_token))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn forgot_password_answers_the_same_for_unknown_addresses_and_mails_only_real_ones() {
    let app = TestApp::spawn().await;
    app.signup("ada@example.com").await;
    let before = app.count("effects").await;
    let unknown = app
        .post(
            "/api/v1/auth/forgot-password",
            &json!({"email": "eve@example.com"}),
            None,
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    assert_eq!(app.count("effects").await, before);
    let known = app
        .post(
            "/api/v1/auth/forgot-password",
            &json!({"email": "ada@example.com"}),
            None,
        )
        .await;
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    assert_eq!(app.count("effects").await, before + 1);
    let text = app.last_email_to("ada@example.com").await.unwrap();
    assert!(text.contains("/reset-password?token="), "{text}");
    assert_field_error(
        app.post(
            "/api/v1/auth/forgot-password",
            &json!({"email": "nope"}),
            None,
        )
        .await,
        "email",
    )
    .await;
}

#[tokio::test]
async fn reset_password_sets_the_new_password_once_and_ends_old_sessions() {
    let app = TestApp::spawn().await;
    let session = app.signup("ada@example.com").await;
    app.post(
        "/api/v1/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
        None,
    )
    .await;
    let token = token_in(&app.last_email_to("ada@example.com").await.unwrap());

    let too_short = app
        .post(
            "/api/v1/auth/reset-password",
            &json!({"token": token, "password": "short"}),
            None,
        )
        .await;
    assert_field_error(too_short, "password").await;
    let reset = app
        .post(
            "/api/v1/auth/reset-password",
            &json!({"token": token, "password": "a new secret"}),
            None,
        )
        .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);

    let old = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": "correct horse"}),
            None,
        )
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": "a new secret"}),
            None,
        )
        .await;
    assert_eq!(new.status(), StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/me", Some(&session.access_token))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let again = app
        .post(
            "/api/v1/auth/reset-password",
            &json!({"token": token, "password": "third secret"}),
            None,
        )
        .await;
    assert_field_error(again, "token").await;
}

#[tokio::test]
async fn an_expired_reset_token_is_refused() {
    let app = TestApp::spawn().await;
    app.signup("ada@example.com").await;
    app.post(
        "/api/v1/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
        None,
    )
    .await;
    let token = token_in(&app.last_email_to("ada@example.com").await.unwrap());
    sqlx::query("update user_tokens set expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    let reset = app
        .post(
            "/api/v1/auth/reset-password",
            &json!({"token": token, "password": "a new secret"}),
            None,
        )
        .await;
    assert_field_error(reset, "token").await;
}

#[tokio::test]
async fn verify_email_uses_the_mailed_token_once() {
    let app = TestApp::spawn().await;
    let session = app.signup("ada@example.com").await;
    let token = token_in(&app.last_email_to("ada@example.com").await.unwrap());
    let verified = app
        .post("/api/v1/auth/verify-email", &json!({"token": token}), None)
        .await;
    assert_eq!(verified.status(), StatusCode::OK);
    let body: Value = verified.json().await.unwrap();
    assert_eq!(body["email_verified"], true);
    let me: Value = app
        .get("/api/v1/me", Some(&session.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email_verified"], true);
    let again = app
        .post("/api/v1/auth/verify-email", &json!({"token": token}), None)
        .await;
    assert_field_error(again, "token").await;
    let reset_token_is_not_a_verify_token = app
        .post("/api/v1/auth/verify-email", &json!({"token": "x"}), None)
        .await;
    assert_field_error(reset_token_is_not_a_verify_token, "token").await;
}

#[tokio::test]
async fn reset_emails_per_address_are_capped_but_the_answer_stays_202() {
    let app = TestApp::spawn_with(&[("auth.max_reset_emails_per_hour", json!(2))]).await;
    app.signup("ada@example.com").await;
    let before = app.count("effects").await;
    for _ in 0..4 {
        let response = app
            .post(
                "/api/v1/auth/forgot-password",
                &json!({"email": "ada@example.com"}),
                None,
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(app.count("effects").await, before + 2);
}
