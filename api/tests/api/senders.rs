//! E-mail senders: their transports, caps and sealed secrets, and what another account can
//! do with their ids (nothing).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_field_error, assert_problem};

const PASSWORD: &str = "smtp-pass-7f3a9c";
const API_KEY: &str = "SG.key-4d1e8b.secret-part";

fn smtp_sender(email: &str) -> Value {
    json!({
        "from_name": "Ada at Herald",
        "from_email": email,
        "reply_to": "replies@example.com",
        "transport": {"type": "smtp", "host": "smtp.example.com", "port": 587, "tls": "starttls",
                      "username": "ada", "password": PASSWORD},
        "daily_cap": 150,
        "min_gap_secs": 90
    })
}

#[tokio::test]
async fn a_sender_is_created_listed_and_read_without_its_secret_which_is_sealed_at_rest() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = ada.access_token.as_str();

    let response = app
        .post(
            "/api/v1/senders",
            &smtp_sender("Ada@Example.com"),
            Some(token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        created["from_email"], "ada@example.com",
        "addresses are lower-cased"
    );
    assert_eq!(
        created["transport"],
        json!({"type": "smtp", "host": "smtp.example.com", "port": 587, "tls": "starttls",
               "username": "ada", "password_set": true})
    );
    assert_eq!(
        (
            created["daily_cap"].as_i64(),
            created["min_gap_secs"].as_i64()
        ),
        (Some(150), Some(90))
    );

    let sendgrid = json!({"from_name": "Bo", "from_email": "bo@example.com",
                          "transport": {"type": "sendgrid", "api_key": API_KEY}});
    let response = app.post("/api/v1/senders", &sendgrid, Some(token)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let second: Value = response.json().await.unwrap();
    assert_eq!(
        second["transport"],
        json!({"type": "sendgrid", "api_key_set": true})
    );
    assert_eq!(
        (
            second["daily_cap"].as_i64(),
            second["min_gap_secs"].as_i64(),
            &second["reply_to"]
        ),
        (Some(200), Some(60), &Value::Null),
        "defaults"
    );

    let id = created["id"].as_str().unwrap();
    let got: Value = app
        .get(&format!("/api/v1/senders/{id}"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got, created);
    let page: Value = app
        .get("/api/v1/senders?limit=1", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["id"], second["id"], "newest first");
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get(
            &format!("/api/v1/senders?limit=1&cursor={cursor}"),
            Some(token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"][0]["id"], created["id"]);
    assert!(rest["next_cursor"].is_null());

    for secret in [PASSWORD, API_KEY] {
        let found = herald_testing::env::columns_containing(&app.db, secret)
            .await
            .unwrap();
        assert!(
            found.is_empty(),
            "{secret} stored in the clear in {found:?}"
        );
    }
    let sealed: String =
        sqlx::query_scalar("select sealed_secret from email_senders where id = $1::uuid")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(app.secrets.open(&sealed).unwrap(), PASSWORD);
}

#[tokio::test]
async fn an_update_keeps_the_secret_it_was_not_given_until_the_transport_type_changes() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = ada.access_token.as_str();
    let created: Value = app
        .post(
            "/api/v1/senders",
            &smtp_sender("ada@example.com"),
            Some(token),
        )
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/senders/{}", created["id"].as_str().unwrap());
    let sealed = || async {
        sqlx::query_scalar::<_, Option<String>>("select sealed_secret from email_senders")
            .fetch_one(&app.db)
            .await
            .unwrap()
            .map(|sealed| app.secrets.open(&sealed).unwrap())
    };

    // renamed, the password not sent back: it stays
    let mut body = smtp_sender("ada@example.com");
    body["from_name"] = json!("Ada Lovelace");
    body["transport"]
        .as_object_mut()
        .unwrap()
        .remove("password");
    let response = app.send(Method::PUT, &path, Some(&body), token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["from_name"], "Ada Lovelace");
    assert_eq!(updated["transport"]["password_set"], true);
    assert_eq!(sealed().await.as_deref(), Some(PASSWORD));

    // switched to SendGrid without a key: refused, nothing changed
    let sendgrid = json!({"from_name": "Ada", "from_email": "ada@example.com",
                          "transport": {"type": "sendgrid"}});
    assert_field_error(
        app.send(Method::PUT, &path, Some(&sendgrid), token).await,
        "transport.api_key",
    )
    .await;
    assert_eq!(sealed().await.as_deref(), Some(PASSWORD));

    // with a key: the SMTP password is gone, the key is kept by the next update
    let mut sendgrid = sendgrid;
    sendgrid["transport"]["api_key"] = json!(API_KEY);
    assert_eq!(
        app.send(Method::PUT, &path, Some(&sendgrid), token)
            .await
            .status(),
        StatusCode::OK
    );
    sendgrid["transport"]
        .as_object_mut()
        .unwrap()
        .remove("api_key");
    sendgrid["daily_cap"] = json!(10);
    let response = app.send(Method::PUT, &path, Some(&sendgrid), token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sealed().await.as_deref(), Some(API_KEY));

    // back to SMTP with no password: the key does not become the password
    body["transport"]["password"] = Value::Null;
    let updated: Value = app
        .send(Method::PUT, &path, Some(&body), token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(updated["transport"]["password_set"], false);
    assert_eq!(sealed().await, None);
}

#[tokio::test]
async fn bad_senders_are_refused_field_by_field_with_nothing_written() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = ada.access_token.as_str();
    let cases = [
        (
            "from_name",
            json!({"from_name": "Ada\r\nBcc: everyone@example.com"}),
        ),
        ("from_name", json!({"from_name": " "})),
        ("from_email", json!({"from_email": "not an address"})),
        ("reply_to", json!({"reply_to": "nobody"})),
        ("daily_cap", json!({"daily_cap": 0})),
        ("min_gap_secs", json!({"min_gap_secs": -1})),
        (
            "transport.host",
            json!({"transport": {"type": "smtp", "host": "smtp example", "port": 25, "tls": "none"}}),
        ),
        // an account's SMTP host must not reach inside the deployment (Redis on 6379 would
        // read SMTP lines as commands)
        (
            "transport.host",
            json!({"transport": {"type": "smtp", "host": "127.0.0.1", "port": 6379, "tls": "none"}}),
        ),
        (
            "transport.host",
            json!({"transport": {"type": "smtp", "host": "localhost", "port": 25, "tls": "none"}}),
        ),
        (
            "transport.host",
            json!({"transport": {"type": "smtp", "host": "169.254.169.254", "port": 25, "tls": "none"}}),
        ),
        (
            "transport.port",
            json!({"transport": {"type": "smtp", "host": "smtp.example.com", "port": 70000, "tls": "none"}}),
        ),
        (
            "transport.tls",
            json!({"transport": {"type": "smtp", "host": "smtp.example.com", "port": 25, "tls": "ssl"}}),
        ),
        (
            "transport.api_key",
            json!({"transport": {"type": "sendgrid", "api_key": ""}}),
        ),
        (
            "transport.api_key",
            json!({"transport": {"type": "sendgrid"}}),
        ),
    ];
    for (field, change) in cases {
        let mut body = smtp_sender("ada@example.com");
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let response = app.post("/api/v1/senders", &body, Some(token)).await;
        assert_field_error(response, field).await;
    }
    let unknown = json!({"from_name": "Ada", "from_email": "ada@example.com",
                         "transport": {"type": "carrier-pigeon"}});
    let response = app.post("/api/v1/senders", &unknown, Some(token)).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count("email_senders").await, 0);

    // one sender per address, compared case-insensitively
    let response = app
        .post(
            "/api/v1/senders",
            &smtp_sender("ada@example.com"),
            Some(token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = app
        .post(
            "/api/v1/senders",
            &smtp_sender("ADA@example.com"),
            Some(token),
        )
        .await;
    let problem = assert_problem(response, StatusCode::CONFLICT, "sender_exists").await;
    assert_eq!(problem["errors"][0]["field"], "from_email");
    assert_eq!(app.count("email_senders").await, 1);
}

#[tokio::test]
async fn another_accounts_sender_ids_answer_404_and_change_nothing() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let eve = app.signup("eve@example.com").await;
    let created: Value = app
        .post(
            "/api/v1/senders",
            &smtp_sender("ada@example.com"),
            Some(&ada.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/senders/{}", created["id"].as_str().unwrap());

    let token = eve.access_token.as_str();
    assert_problem(
        app.get(&path, Some(token)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let mut body = smtp_sender("eve@example.com");
    body["transport"]["host"] = json!("evil.example.com");
    assert_problem(
        app.send(Method::PUT, &path, Some(&body), token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let response = app
        .request(Method::DELETE, &path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let listed: Value = app
        .get("/api/v1/senders", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]));
    // the same address is free for another account
    let response = app
        .post(
            "/api/v1/senders",
            &smtp_sender("ada@example.com"),
            Some(token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);

    let mine: Value = app
        .get(&path, Some(&ada.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine, created, "Eve's calls changed nothing");
    let response = app
        .request(Method::DELETE, &path)
        .bearer_auth(&ada.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&path, Some(&ada.access_token)).await.status(),
        StatusCode::NOT_FOUND
    );
}
