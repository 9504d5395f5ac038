//! A small herald-api client: signs up once and then creates what the benchmark needs
//! through the public HTTP API, so planning is measured as a real caller sees it.

use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::students::{self, IMPORT_ROWS};

/// A signed-in herald-api client.
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// A client of the herald-api on `port`, not signed in yet.
    pub fn new(port: u16) -> anyhow::Result<Self> {
        Ok(Self {
            // Planning a big delivery is one long request.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()?,
            base: format!("http://127.0.0.1:{port}"),
            token: String::new(),
        })
    }

    /// Sends `request` (with the access token once there is one) and returns the JSON body
    /// of a `want` answer; anything else is an error that shows the answer.
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        want: StatusCode,
        what: &str,
    ) -> anyhow::Result<Value> {
        let request = if self.token.is_empty() {
            request
        } else {
            request.bearer_auth(&self.token)
        };
        let response = request.send().await.with_context(|| what.to_owned())?;
        let status = response.status();
        let text = response.text().await.with_context(|| what.to_owned())?;
        if status.as_u16() != want.as_u16() {
            bail!("{what}: herald-api answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{what}: the answer is not JSON"))
    }

    async fn post(&self, path: &str, body: &Value, want: StatusCode) -> anyhow::Result<Value> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        self.call(request, want, &format!("POST {path}")).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let request = self.http.get(format!("{}{path}", self.base));
        self.call(request, StatusCode::OK, &format!("GET {path}"))
            .await
    }

    pub async fn signup(&mut self) -> anyhow::Result<()> {
        let session = self
            .post(
                "/api/v1/auth/signup",
                &json!({"email": "bench@example.com", "password": "bench password", "name": "Bench"}),
                StatusCode::CREATED,
            )
            .await?;
        self.token = text_field(&session, "access_token")?;
        Ok(())
    }

    /// A course of `days` days, one message each (no questions); returns its id.
    pub async fn create_course(&self, name: &str, days: u32) -> anyhow::Result<String> {
        let days: Vec<Value> = (1..=days)
            .map(|day| json!({"text": format!("{name}, day {day}: today's lesson. Reply STOP to opt out.")}))
            .collect();
        let course = self
            .post(
                "/api/v1/courses",
                &json!({"name": name, "author": "herald-bench", "days": days}),
                StatusCode::CREATED,
            )
            .await?;
        text_field(&course, "id")
    }

    /// A group of `students` students (see [`students::csv`]), imported from CSV; returns its id.
    pub async fn create_group(&self, students: usize) -> anyhow::Result<String> {
        let group = self
            .post(
                "/api/v1/groups",
                &json!({"name": "bench students"}),
                StatusCode::CREATED,
            )
            .await?;
        let id = text_field(&group, "id")?;
        let path = format!("/api/v1/groups/{id}/students/import");
        for from in (0..students).step_by(IMPORT_ROWS) {
            let to = (from + IMPORT_ROWS).min(students);
            let csv = students::csv(from, to)?;
            let request = self
                .http
                .post(format!("{}{path}", self.base))
                .header(reqwest::header::CONTENT_TYPE, "text/csv")
                .body(csv);
            let done = self
                .call(request, StatusCode::OK, &format!("POST {path}"))
                .await?;
            let created = done.get("created").and_then(Value::as_u64);
            if created != Some((to - from) as u64) {
                bail!("the import did not create every student: {done}");
            }
        }
        Ok(id)
    }

    /// Creates a delivery and checks it planned `messages` messages; returns its id.
    pub async fn create_delivery(&self, body: &Value, messages: usize) -> anyhow::Result<String> {
        let delivery = self
            .post("/api/v1/deliveries", body, StatusCode::CREATED)
            .await?;
        let count = delivery.get("message_count").and_then(Value::as_u64);
        if count != Some(messages as u64) {
            bail!("the delivery planned {count:?} messages, expected {messages}");
        }
        text_field(&delivery, "id")
    }
}

fn text_field(value: &Value, name: &str) -> anyhow::Result<String> {
    value
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no `{name}` in {value}"))
}
