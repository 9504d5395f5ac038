use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::stack::{Stack, wait_until};

fn token_in(mail: &str) -> String {
    // the link may be wrapped by quoted-printable soft breaks; undo them first
    let unwrapped = mail
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let start = unwrapped.find("token=").expect("a link with a token") + "token=".len();
    unwrapped[start..]
        .split_whitespace()
        .next()
        .expect("token")
        .to_owned()
}

#[tokio::test]
async fn signup_verification_and_password_reset_travel_through_the_real_pipeline() {
    let mut stack = Stack::new(1.0).await;
    stack.start_api().await;
    let _worker = stack.start_worker("flow").await;
    let client = reqwest::Client::new();
    let api = stack.api_url.clone();

    let signup = client
        .post(format!("{api}/api/v1/auth/signup"))
        .json(&json!({"email": "ada@example.com", "password": "correct horse", "name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), StatusCode::CREATED);
    let session: Value = signup.json().await.unwrap();
    let access = session["access_token"].as_str().unwrap().to_owned();

    wait_until(
        Duration::from_secs(20),
        "the verification e-mail",
        || async { stack.mail_to("ada@example.com").is_some() },
    )
    .await;
    let token = token_in(&stack.mail_to("ada@example.com").unwrap());
    let verified = client
        .post(format!("{api}/api/v1/auth/verify-email"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), StatusCode::OK);

    let forgot = client
        .post(format!("{api}/api/v1/auth/forgot-password"))
        .json(&json!({"email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    wait_until(Duration::from_secs(20), "the reset e-mail", || async {
        stack
            .mail_to("ada@example.com")
            .is_some_and(|mail| mail.contains("Reset your Herald password"))
    })
    .await;
    let token = token_in(&stack.mail_to("ada@example.com").unwrap());
    let reset = client
        .post(format!("{api}/api/v1/auth/reset-password"))
        .json(&json!({"token": token, "password": "a new secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let login = client
        .post(format!("{api}/api/v1/auth/login"))
        .json(&json!({"email": "ada@example.com", "password": "a new secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let access_after: Value = login.json().await.unwrap();

    // the operator view shows both e-mails sent, each once
    let jobs: Value = client
        .get(format!("{api}/api/v1/jobs?kind=email"))
        .bearer_auth(access_after["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let states: Vec<&str> = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["sent", "sent"], "{jobs}");
    assert!(stack.delivered().values().all(|copies| *copies == 1));
    // the reset ended the signup session
    let me = client
        .get(format!("{api}/api/v1/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}
