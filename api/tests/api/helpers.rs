//! `TestApp`: a running API on its own database and Redis namespace, plus typed helpers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_shared::config::Config;
use herald_shared::effects::EmailPayload;
use herald_shared::secrets::SecretBox;
use herald_shared::testing::TestEnv;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

pub struct TestApp {
    pub address: String,
    pub db: PgPool,
    pub client: reqwest::Client,
    pub config: Arc<Config>,
    /// The API's own secret box, to open what it sealed.
    pub secrets: SecretBox,
}

/// A signed-in user.
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    pub user_id: Uuid,
    pub account_id: Uuid,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(overrides: &[(&str, Value)]) -> Self {
        let env = TestEnv::new(overrides).await.expect("test environment");
        let jobs =
            herald_shared::jobs_config::JobsConfig::parse(herald_shared::jobs_config::DEFAULT_JOBS)
                .expect("jobs.toml");
        let state = herald_api::build_state(env.config, jobs)
            .await
            .expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("address"));
        let config = Arc::clone(&state.config);
        let secrets = state.secrets.clone();
        tokio::spawn(herald_api::serve(state, listener, std::future::pending()));
        Self {
            address,
            db: env.db,
            client: reqwest::Client::new(),
            config,
            secrets,
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.request(Method::GET, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        let mut request = self.request(Method::POST, path).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    /// Signs a new user up and returns the session.
    pub async fn signup(&self, email: &str) -> Session {
        let response = self
            .post(
                "/api/v1/auth/signup",
                &json!({"email": email, "password": "correct horse", "name": "Ada"}),
                None,
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        session_from(&response.json().await.expect("json"))
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&self.db)
            .await
            .expect("count")
    }

    /// The text of the newest e-mail effect sent to `to`, as the worker would send it (its
    /// sealed secret opened).
    pub async fn last_email_to(&self, to: &str) -> Option<String> {
        let payload: Option<Value> = sqlx::query_scalar(
            "select payload from effects where kind = 'email' and payload->>'to' = $1
             order by created_at desc limit 1",
        )
        .bind(to)
        .fetch_optional(&self.db)
        .await
        .expect("email");
        let email: EmailPayload = serde_json::from_value(payload?).expect("e-mail payload");
        Some(email.text_to_send(&self.secrets).expect("sealed secret"))
    }

    /// E-mail effects planned for `to`.
    pub async fn emails_to(&self, to: &str) -> i64 {
        sqlx::query_scalar(
            "select count(*) from effects where kind = 'email' and payload->>'to' = $1",
        )
        .bind(to)
        .fetch_one(&self.db)
        .await
        .expect("count")
    }

    /// Waits until `count` e-mails are planned for `to` (forgot-password plans after its 202).
    pub async fn wait_for_emails_to(&self, to: &str, count: i64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.emails_to(to).await < count {
            assert!(Instant::now() < deadline, "no e-mail #{count} to {to}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub fn session_from(body: &Value) -> Session {
    Session {
        access_token: body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        refresh_token: body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
        user_id: body["user"]["id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid"),
        account_id: body["user"]["account_id"]
            .as_str()
            .expect("account")
            .parse()
            .expect("uuid"),
    }
}

/// The `token` query parameter of the link in an e-mail.
pub fn token_in(text: &str) -> String {
    let start = text.find("token=").expect("a link with a token") + "token=".len();
    text[start..]
        .split_whitespace()
        .next()
        .expect("token")
        .to_owned()
}

/// Asserts a problem+json answer and returns its body.
pub async fn assert_problem(response: Response, status: StatusCode, type_suffix: &str) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("header")
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["type"], format!("/problems/{type_suffix}"), "{body}");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    body
}

/// Asserts a 422 naming `field`.
pub async fn assert_field_error(response: Response, field: &str) -> Value {
    let body = assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        fields.contains(&field),
        "expected an error on {field}, got {body}"
    );
    body
}

/// Plans an e-mail effect for an account directly in the database.
pub async fn plan_email(db: &PgPool, account_id: Uuid, key: &str) -> Uuid {
    let mut conn = db.acquire().await.expect("conn");
    let effect = herald_shared::db::effects::NewEffect {
        account_id,
        kind: herald_shared::effects::EffectKind::Email,
        queue: "email".to_owned(),
        idempotency_key: key.to_owned(),
        payload: json!({"to": "x@example.com", "subject": "s", "text": "t"}),
        due_at: chrono::Utc::now(),
    };
    herald_shared::db::effects::plan(&mut conn, &effect)
        .await
        .expect("plan")
        .expect("new")
}
