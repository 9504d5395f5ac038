//! `TestApp`: a running API on its own database and Redis namespace, plus typed helpers.

use std::sync::Arc;
use std::time::Duration;

use herald_shared::config::Config;
use herald_shared::effects::{EmailPayload, EmailSecret};
use herald_shared::secrets::SecretBox;
use herald_testing::env::{Scratch, TestEnv};
use herald_testing::wait::wait_until;
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
    /// The test's database and Redis prefix, removed when the test ends.
    _scratch: Scratch,
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
            _scratch: env.scratch,
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

    /// A request with `method`, authenticated with `token`, carrying `body` as JSON if given.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: &str,
    ) -> Response {
        let mut request = self.request(method, path).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
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

    /// Makes the database fail any insert or update of a `table` row whose `column` is
    /// `value`: a stand-in for the database failing part-way through a request's writes.
    pub async fn refuse_writes(&self, table: &str, column: &str, value: &str) {
        sqlx::raw_sql(&format!(
            "create function refuse_{table}() returns trigger language plpgsql as $$
             begin
               if new.{column} = '{value}' then raise exception 'refused'; end if;
               return new;
             end $$;
             create trigger refuse_{table} before insert or update on {table}
               for each row execute function refuse_{table}();"
        ))
        .execute(&self.db)
        .await
        .expect("refusing trigger");
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&self.db)
            .await
            .expect("count")
    }

    /// The text of the newest e-mail planned for `to`, as the worker would send it (its
    /// sealed secret opened).
    pub async fn last_email_to(&self, to: &str) -> Option<String> {
        self.emails_texts_to(to).await.pop()
    }

    /// The texts of the e-mails planned for `to`, oldest first, as the worker would send them
    /// (their sealed secrets opened).
    pub async fn emails_texts_to(&self, to: &str) -> Vec<String> {
        let rows: Vec<(String, Value)> = sqlx::query_as(
            "select m.body, e.payload from outbound_messages m join effects e on e.id = m.effect_id
             where m.channel = 'email' and m.recipient = $1 order by e.created_at, e.id",
        )
        .bind(to)
        .fetch_all(&self.db)
        .await
        .expect("email");
        rows.into_iter()
            .map(|(body, payload)| {
                let secret: EmailSecret = serde_json::from_value(payload).expect("e-mail payload");
                let email = EmailPayload {
                    to: to.to_owned(),
                    subject: String::new(),
                    text: body,
                    sealed_secret: secret.sealed_secret,
                };
                email.text_to_send(&self.secrets).expect("sealed secret")
            })
            .collect()
    }

    /// E-mails planned for `to`.
    pub async fn emails_to(&self, to: &str) -> i64 {
        sqlx::query_scalar(
            "select count(*) from outbound_messages where channel = 'email' and recipient = $1",
        )
        .bind(to)
        .fetch_one(&self.db)
        .await
        .expect("count")
    }

    /// Waits until `count` e-mails are planned for `to` (forgot-password plans after its 202).
    pub async fn wait_for_emails_to(&self, to: &str, count: i64) {
        wait_until(
            &format!("e-mail #{count} to {to} is planned"),
            Duration::from_secs(10),
            || async { self.emails_to(to).await >= count },
        )
        .await;
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

/// The `email` of every item of a list page, in order.
pub fn emails_of(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["email"].as_str().expect("email"))
        .collect()
}

/// Asserts a 201 and returns the created resource.
pub async fn created(response: Response) -> Value {
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.expect("json")
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

/// Plans an e-mail for an account with the planner the API uses.
pub async fn plan_email(db: &PgPool, account_id: Uuid, key: &str) -> Uuid {
    let email = EmailPayload {
        to: "x@example.com".to_owned(),
        subject: "s".to_owned(),
        text: "t".to_owned(),
        sealed_secret: None,
    };
    herald_testing::fixtures::plan_email_now(db, account_id, key, &email).await
}
