use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::stack::{Stack, wait_until};

/// README's walk-through step "confirm the address", run as printed on the stored mail.
const README_TOKEN_COMMAND: &str =
    "grep -ho '^code: [A-Za-z0-9_-]*' .standins/mail/new/* | tail -1 | cut -d' ' -f2";

fn token_like_the_readme(stack: &Stack) -> String {
    let maildir = stack.maildir.display().to_string();
    let command = README_TOKEN_COMMAND.replace(".standins/mail", &maildir);
    let output = std::process::Command::new("sh")
        .args(["-c", &command])
        .output()
        .expect("sh");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// Waits until `count` e-mails are recorded `sent` (and so their secrets scrubbed).
async fn wait_for_sent(stack: &Stack, count: i64) {
    wait_until("e-mails recorded sent", Duration::from_secs(20), || async {
        stack.count_in(&["sent"]).await == count
    })
    .await;
}

async fn assert_stored_nowhere(stack: &Stack, token: &str) {
    let found = herald_testing::env::columns_containing(&stack.db, token)
        .await
        .expect("scan");
    assert!(found.is_empty(), "the token is stored in {found:?}");
}

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
        "the verification e-mail",
        Duration::from_secs(20),
        || async { stack.mail_to("ada@example.com").is_some() },
    )
    .await;
    let token = token_in(&stack.mail_to("ada@example.com").unwrap());
    assert_eq!(token_like_the_readme(&stack), token);
    wait_for_sent(&stack, 1).await;
    assert_stored_nowhere(&stack, &token).await;
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
    wait_until("the reset e-mail", Duration::from_secs(20), || async {
        stack
            .mail_to("ada@example.com")
            .is_some_and(|mail| mail.contains("Reset your Herald password"))
    })
    .await;
    let token = token_in(&stack.mail_to("ada@example.com").unwrap());
    wait_for_sent(&stack, 2).await;
    assert_stored_nowhere(&stack, &token).await;
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
