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
        "select e.state, e.account_id::text from effects e join outbound_messages m on m.effect_id = e.id where m.channel = 'email' and m.recipient = 'ada@example.com'",
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
    app.wait_for_emails_to("ada@example.com", 2).await;
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
    app.wait_for_emails_to("ada@example.com", 2).await;
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
    app.wait_for_emails_to("ada@example.com", 2).await;
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
    app.wait_for_emails_to("ada@example.com", 3).await;
    assert_eq!(app.count("effects").await, before + 2);
}

/// A POST as if from `ip` behind a trusted proxy (the test's requests come from 127.0.0.1).
async fn post_from(app: &TestApp, ip: &str, path: &str, body: &Value) -> reqwest::Response {
    app.request(reqwest::Method::POST, path)
        .header("x-forwarded-for", ip)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn session_id_of(app: &TestApp, user_id: uuid::Uuid) -> uuid::Uuid {
    sqlx::query_scalar("select id from sessions where user_id = $1 order by created_at limit 1")
        .bind(user_id)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_token_naming_a_session_of_another_user_or_account_is_refused() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let bobs_session = session_id_of(&app, bob.user_id).await;
    let keys = herald_api::auth::tokens::JwtKeys::new(&app.config.auth);
    let forge = |user, account, session| {
        herald_api::auth::tokens::encode_access(&keys, user, account, session, 60).unwrap()
    };
    // signed with the right key, live session, but not Ada's
    for token in [
        forge(ada.user_id, ada.account_id, bobs_session),
        forge(bob.user_id, ada.account_id, bobs_session),
        forge(ada.user_id, bob.account_id, bobs_session),
    ] {
        assert_problem(
            app.get("/api/v1/me", Some(&token)).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    // the real owner's token still works
    let own = forge(bob.user_id, bob.account_id, bobs_session);
    assert_eq!(
        app.get("/api/v1/me", Some(&own)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/me", Some(&ada.access_token))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn parallel_wrong_passwords_for_one_account_evaluate_at_most_the_limit() {
    let app = TestApp::spawn_with(&[
        ("auth.max_failed_logins_per_account", json!(5)),
        ("auth.hash_wait_ms", json!(60_000)),
    ])
    .await;
    app.signup("ada@example.com").await;
    let wrong = json!({"email": "ada@example.com", "password": "wrong password"});
    let answers = post_all(
        &app,
        (0..50)
            .map(|_| ("/api/v1/auth/login", wrong.clone()))
            .collect(),
    )
    .await;
    let mut evaluated = 0;
    let mut limited = 0;
    for response in answers {
        match response.status() {
            StatusCode::UNAUTHORIZED => evaluated += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(retry_after(&response) > 0);
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((evaluated, limited), (5, 45));
}

/// Sends the POSTs (path, body) all at once; the answers in the same order.
async fn post_all(app: &TestApp, requests: Vec<(&str, Value)>) -> Vec<reqwest::Response> {
    let handles: Vec<_> = requests
        .into_iter()
        .map(|(path, body)| {
            let request = app.request(reqwest::Method::POST, path).json(&body);
            tokio::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    let mut answers = Vec::with_capacity(handles.len());
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    answers
}

#[tokio::test]
async fn an_attacker_at_the_account_limit_does_not_lock_the_owner_out_from_elsewhere() {
    let app = TestApp::spawn_with(&[
        ("auth.max_failed_logins_per_account", json!(3)),
        ("api.trusted_proxies", json!(["127.0.0.1/32"])),
    ])
    .await;
    app.signup("ada@example.com").await;
    let wrong = json!({"email": "ada@example.com", "password": "wrong password"});
    let right = json!({"email": "ada@example.com", "password": "correct horse"});
    for _ in 0..3 {
        let response = post_from(&app, "198.51.100.7", "/api/v1/auth/login", &wrong).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let attacker = post_from(&app, "198.51.100.7", "/api/v1/auth/login", &right).await;
    assert_eq!(attacker.status(), StatusCode::TOO_MANY_REQUESTS);
    let owner = post_from(&app, "203.0.113.5", "/api/v1/auth/login", &right).await;
    assert_eq!(owner.status(), StatusCode::OK);
}

#[tokio::test]
async fn ipv6_clients_are_limited_by_their_64_and_forwarded_for_needs_a_trusted_proxy() {
    let app = TestApp::spawn_with(&[
        ("auth.max_failed_logins_per_ip", json!(2)),
        ("api.trusted_proxies", json!(["127.0.0.1/32"])),
    ])
    .await;
    let wrong = |email: &str| json!({"email": email, "password": "wrong password"});
    for (ip, email) in [
        ("2001:db8:1:2::1", "a@example.com"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "b@example.com"),
    ] {
        let response = post_from(&app, ip, "/api/v1/auth/login", &wrong(email)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // another address of the same /64 is the same client
    let same_64 = post_from(
        &app,
        "2001:db8:1:2:abcd::9",
        "/api/v1/auth/login",
        &wrong("c@example.com"),
    )
    .await;
    assert_eq!(same_64.status(), StatusCode::TOO_MANY_REQUESTS);
    // the next /64 is another; a forged leftmost hop changes nothing
    let next_64 = post_from(
        &app,
        "2001:db8:1:2::1, 2001:db8:1:3::1",
        "/api/v1/auth/login",
        &wrong("c@example.com"),
    )
    .await;
    assert_eq!(next_64.status(), StatusCode::UNAUTHORIZED);

    // without trusted proxies the header is ignored: every request is the TCP peer's
    let app = TestApp::spawn_with(&[("auth.max_failed_logins_per_ip", json!(2))]).await;
    for (n, ip) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().enumerate() {
        let response = post_from(
            &app,
            ip,
            "/api/v1/auth/login",
            &wrong(&format!("u{n}@example.com")),
        )
        .await;
        let expected = if n < 2 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(response.status(), expected, "{ip}");
    }
}

#[tokio::test]
async fn signups_are_limited_per_client_ip() {
    let app = TestApp::spawn_with(&[
        ("auth.max_signups_per_ip_per_hour", json!(2)),
        ("api.trusted_proxies", json!(["127.0.0.1/32"])),
    ])
    .await;
    let signup = |n: u32| json!({"email": format!("u{n}@example.com"), "password": "correct horse", "name": "Ada"});
    for n in 0..2 {
        let response = post_from(&app, "198.51.100.7", "/api/v1/auth/signup", &signup(n)).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let limited = post_from(&app, "198.51.100.7", "/api/v1/auth/signup", &signup(2)).await;
    let wait = retry_after(&limited);
    assert!(wait > 0 && wait <= 3600, "{wait}");
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
    assert_eq!(app.count("users").await, 2);
    let elsewhere = post_from(&app, "203.0.113.5", "/api/v1/auth/signup", &signup(2)).await;
    assert_eq!(elsewhere.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn hashing_beyond_the_slots_answers_503_with_retry_after_and_never_500() {
    let app = TestApp::spawn_with(&[
        ("auth.max_concurrent_hashes", json!(1)),
        ("auth.hash_wait_ms", json!(1)),
        ("auth.max_signups_per_ip_per_hour", json!(1000)),
    ])
    .await;
    let signups = (0..24)
        .map(|n| {
            let body = json!({"email": format!("u{n}@example.com"), "password": "correct horse", "name": "Ada"});
            ("/api/v1/auth/signup", body)
        })
        .collect();
    let answers = post_all(&app, signups).await;
    let mut busy = 0;
    for response in answers {
        match response.status() {
            StatusCode::CREATED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(retry_after(&response), 1);
                assert_problem(
                    response,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                )
                .await;
                busy += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(busy > 0, "24 hashes at once never found the one slot busy");
}

#[tokio::test]
async fn a_taken_email_and_a_bogus_reset_token_are_refused_without_hashing() {
    // One slot and no patience: were these requests hashing, many of 60 at once would find
    // the slot busy and answer 503.
    let app = TestApp::spawn_with(&[
        ("auth.max_concurrent_hashes", json!(1)),
        ("auth.hash_wait_ms", json!(1)),
        ("auth.max_signups_per_ip_per_hour", json!(1000)),
    ])
    .await;
    app.signup("ada@example.com").await;
    let requests = (0..60)
        .map(|n| {
            if n % 2 == 0 {
                let body =
                    json!({"email": "ada@example.com", "password": "correct horse", "name": "Ada"});
                ("/api/v1/auth/signup", body)
            } else {
                let body = json!({"token": format!("bogus-{n}"), "password": "a new secret"});
                ("/api/v1/auth/reset-password", body)
            }
        })
        .collect();
    for (n, response) in post_all(&app, requests).await.into_iter().enumerate() {
        let expected = if n % 2 == 0 {
            StatusCode::CONFLICT
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        assert_eq!(response.status(), expected, "request {n}");
    }
}

#[tokio::test]
async fn forgot_password_answers_before_any_account_work_so_known_and_unknown_look_alike() {
    let app = TestApp::spawn().await;
    app.signup("ada@example.com").await;
    // Hold back every write to user_tokens: the work for a known address cannot finish.
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("lock table user_tokens in exclusive mode")
        .execute(&mut *lock)
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    for email in ["ada@example.com", "eve@example.com"] {
        let answer = client
            .post(format!("{}/api/v1/auth/forgot-password", app.address))
            .json(&json!({"email": email}))
            .send()
            .await
            .unwrap_or_else(|err| panic!("{email}: the answer waited for the work: {err}"));
        assert_eq!(answer.status(), StatusCode::ACCEPTED, "{email}");
    }
    assert_eq!(app.emails_to("ada@example.com").await, 1);
    lock.rollback().await.unwrap();
    app.wait_for_emails_to("ada@example.com", 2).await;
    assert!(
        app.last_email_to("ada@example.com")
            .await
            .unwrap()
            .contains("/reset-password?token=")
    );
}

#[tokio::test]
async fn forgot_password_work_in_progress_is_bounded_and_beyond_it_every_address_gets_503() {
    let app = TestApp::spawn_with(&[("auth.max_pending_reset_requests", json!(1))]).await;
    app.signup("ada@example.com").await;
    // the one permitted request cannot finish while user_tokens is locked
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("lock table user_tokens in exclusive mode")
        .execute(&mut *lock)
        .await
        .unwrap();
    let first = app
        .post(
            "/api/v1/auth/forgot-password",
            &json!({"email": "ada@example.com"}),
            None,
        )
        .await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    for email in ["ada@example.com", "eve@example.com"] {
        let response = app
            .post(
                "/api/v1/auth/forgot-password",
                &json!({"email": email}),
                None,
            )
            .await;
        assert_eq!(response.headers()["retry-after"], "1");
        assert_problem(
            response,
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
        )
        .await;
    }
    lock.rollback().await.unwrap();
    app.wait_for_emails_to("ada@example.com", 2).await;
    // the permit is back once the work is done
    herald_testing::wait::wait_until(
        "forgot-password is accepted again",
        herald_testing::wait::PATIENCE,
        || async {
            app.post(
                "/api/v1/auth/forgot-password",
                &json!({"email": "eve@example.com"}),
                None,
            )
            .await
            .status()
                == StatusCode::ACCEPTED
        },
    )
    .await;
}

/// The texts of every e-mail planned for `to`, oldest first, secrets opened.
async fn mails_to(app: &TestApp, to: &str) -> Vec<String> {
    app.emails_texts_to(to).await
}

#[tokio::test]
async fn a_successful_reset_ends_the_other_reset_links() {
    let app = TestApp::spawn().await;
    app.signup("ada@example.com").await;
    for n in 2..=3 {
        app.post(
            "/api/v1/auth/forgot-password",
            &json!({"email": "ada@example.com"}),
            None,
        )
        .await;
        app.wait_for_emails_to("ada@example.com", n).await;
    }
    let mails = mails_to(&app, "ada@example.com").await;
    let (first, second) = (token_in(&mails[1]), token_in(&mails[2]));
    assert_ne!(first, second);
    let reset = app
        .post(
            "/api/v1/auth/reset-password",
            &json!({"token": second, "password": "a new secret"}),
            None,
        )
        .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let older = app
        .post(
            "/api/v1/auth/reset-password",
            &json!({"token": first, "password": "an attacker's"}),
            None,
        )
        .await;
    assert_field_error(older, "token").await;
}

#[tokio::test]
async fn a_session_past_its_absolute_lifetime_cannot_be_refreshed() {
    let app = TestApp::spawn().await;
    let session = app.signup("ada@example.com").await;
    // 89 days: still refreshes (every refresh rotates the token, not the session's age)
    sqlx::query("update sessions set created_at = now() - interval '89 days'")
        .execute(&app.db)
        .await
        .unwrap();
    let refreshed = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": session.refresh_token}),
            None,
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed = session_from(&refreshed.json().await.unwrap());
    sqlx::query("update sessions set created_at = now() - interval '90 days 1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    let too_old = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": refreshed.refresh_token}),
            None,
        )
        .await;
    assert_problem(too_old, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // and the session is over for its access tokens too
    assert_eq!(
        app.get("/api/v1/me", Some(&refreshed.access_token))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn change_password_checks_the_current_one_ends_other_sessions_and_mails_a_notice() {
    let app = TestApp::spawn_with(&[("auth.max_failed_logins_per_account", json!(2))]).await;
    let here = app.signup("ada@example.com").await;
    let login = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": "correct horse"}),
            None,
        )
        .await;
    let elsewhere = session_from(&login.json().await.unwrap());
    let change = |current: &str, new: &str| {
        let body = json!({"current_password": current, "new_password": new});
        let request = app
            .request(reqwest::Method::POST, "/api/v1/auth/change-password")
            .bearer_auth(&here.access_token)
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    assert_field_error(
        change("wrong password", "a new secret").await,
        "current_password",
    )
    .await;
    assert_field_error(change("correct horse", "short").await, "new_password").await;
    assert_eq!(
        app.post(
            "/api/v1/auth/change-password",
            &json!({"current_password": "correct horse", "new_password": "a new secret"}),
            None
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        change("correct horse", "a new secret").await.status(),
        StatusCode::NO_CONTENT
    );

    assert_eq!(
        app.get("/api/v1/me", Some(&here.access_token))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/me", Some(&elsewhere.access_token))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let refresh_elsewhere = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": elsewhere.refresh_token}),
            None,
        )
        .await;
    assert_eq!(refresh_elsewhere.status(), StatusCode::UNAUTHORIZED);
    let notice = app.last_email_to("ada@example.com").await.unwrap();
    assert!(
        notice.contains("password of this Herald account was just changed"),
        "{notice}"
    );
    let new_login = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": "a new secret"}),
            None,
        )
        .await;
    assert_eq!(new_login.status(), StatusCode::OK);

    // wrong current passwords count like failed sign-ins
    for _ in 0..2 {
        assert_field_error(
            change("wrong password", "third secret").await,
            "current_password",
        )
        .await;
    }
    let limited = change("a new secret", "third secret").await;
    assert!(retry_after(&limited) > 0);
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
}

#[tokio::test]
async fn patch_me_renames_the_user_and_validates_the_name() {
    let app = TestApp::spawn().await;
    let session = app.signup("ada@example.com").await;
    let patch = |body: Value, token: Option<String>| {
        let mut request = app
            .request(reqwest::Method::PATCH, "/api/v1/me")
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let token = Some(session.access_token.clone());
    let renamed = patch(json!({"name": "  Ada Lovelace "}), token.clone())
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
    let body: Value = renamed.json().await.unwrap();
    assert_eq!(body["name"], "Ada Lovelace");
    assert_eq!(body["email"], "ada@example.com");
    let unchanged: Value = patch(json!({}), token.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged["name"], "Ada Lovelace");
    for (body, field) in [
        (json!({"name": "   "}), "name"),
        (json!({"name": "x".repeat(101)}), "name"),
        (json!({"name": 7}), "name"),
        (json!({"email": "eve@example.com"}), "email"),
    ] {
        assert_field_error(patch(body, token.clone()).await.unwrap(), field).await;
    }
    assert_eq!(
        patch(json!({"name": "Eve"}), None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn mailed_tokens_are_never_stored_in_the_clear() {
    let app = TestApp::spawn().await;
    app.signup("ada@example.com").await;
    app.post(
        "/api/v1/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
        None,
    )
    .await;
    app.wait_for_emails_to("ada@example.com", 2).await;
    let mails = mails_to(&app, "ada@example.com").await;
    assert_eq!(mails.len(), 2);
    for mail in mails {
        let token = token_in(&mail);
        assert!(token.len() >= 43, "{mail}");
        let found = herald_testing::env::columns_containing(&app.db, &token)
            .await
            .unwrap();
        assert!(found.is_empty(), "the token is stored in {found:?}");
    }
}

#[tokio::test]
async fn the_scrub_migration_removes_tokens_from_finished_auth_emails_only() {
    let app = TestApp::spawn().await;
    let account = app.signup("ada@example.com").await.account_id;
    let mut conn = app.db.acquire().await.unwrap();
    // e-mail effects as they were before the outbound-message model: the text in the payload
    let mut plan = async |key: &str, token: &str, state: &str| {
        sqlx::query(
            "insert into effects (account_id, kind, queue, idempotency_key, payload, due_at,
                                  next_attempt_at, state, finished_at)
             values ($1, 'email', 'email', $2, $3, now(), now(), $4, now())",
        )
        .bind(account)
        .bind(key)
        .bind(json!({"to": "ada@example.com", "subject": "s",
            "text": format!("open http://localhost:3000/x?token={token}\n")}))
        .bind(state)
        .execute(&mut *conn)
        .await
        .unwrap();
    };
    plan("verify-email:old", "SentVerifyToken_1", "sent").await;
    plan("reset-password:old", "SandboxedResetToken-2", "sandboxed").await;
    plan("reset-password:waiting", "WaitingResetToken", "planned").await;
    plan("campaign:1", "NotAnAuthToken", "sent").await;
    sqlx::raw_sql(include_str!(
        "../../../migrations/20261207100001_scrub_mailed_tokens.sql"
    ))
    .execute(&app.db)
    .await
    .unwrap();
    for (token, kept) in [
        ("SentVerifyToken_1", false),
        ("SandboxedResetToken-2", false),
        ("WaitingResetToken", true),
        ("NotAnAuthToken", true),
    ] {
        let found = herald_testing::env::columns_containing(&app.db, token)
            .await
            .unwrap();
        assert_eq!(!found.is_empty(), kept, "{token}: {found:?}");
    }
}
