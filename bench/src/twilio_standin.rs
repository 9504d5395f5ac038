//! An in-process stand-in for the Twilio Messages API: answers every `Messages.json`
//! request with 201 at once, so a benchmark measures Herald and not a provider, and
//! counts requests per (To, Body) so a message sent twice shows up as a duplicate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::seconds;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde_json::json;

/// A well-formed Twilio account SID and Messaging Service SID for the stand-in.
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const SERVICE_SID: &str = "MG0123456789abcdef0123456789abcdef";

/// What the Twilio stand-in has seen.
#[derive(Debug, Default)]
struct Seen {
    /// Requests per (To, Body): a count above one is a message sent twice.
    by_pair: HashMap<(String, String), u32>,
    requests: u64,
    /// Requests without `To` or `Body` (answered 400).
    malformed: u64,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

/// A Twilio Messages API that accepts everything at once.
#[derive(Clone, Default)]
pub struct Standin(Arc<Mutex<Seen>>);

impl Standin {
    /// Serves on 127.0.0.1 in this process; returns the base URL.
    pub async fn start(&self) -> anyhow::Result<String> {
        let router = axum::Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(create_message),
            )
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                eprintln!("Twilio stand-in failed: {err}");
            }
        });
        Ok(url)
    }

    /// Points a herald binary at the stand-in (served at `url`), sending through its
    /// Messaging Service at most `sms_per_second` per sender.
    pub fn configure(command: &mut std::process::Command, url: &str, sms_per_second: u32) {
        command
            .env("HERALD_TWILIO__BASE_URL", url)
            .env("HERALD_TWILIO__ACCOUNT_SID", ACCOUNT_SID)
            .env("HERALD_TWILIO__AUTH_TOKEN", "bench-twilio-token")
            .env("HERALD_TWILIO__MESSAGING_SERVICE_SID", SERVICE_SID)
            // required with credentials; nothing calls it back during a run
            .env("HERALD_TWILIO__PUBLIC_BASE_URL", "http://127.0.0.1:9")
            .env("HERALD_TWILIO__SMS_PER_SECOND", sms_per_second.to_string());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A panic elsewhere cannot leave the counts half-written: keep counting.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the stand-in has counted so far.
    pub fn tally(&self) -> Tally {
        let seen = self.lock();
        let duplicates: u64 = seen
            .by_pair
            .values()
            .map(|count| u64::from(count.saturating_sub(1)))
            .sum();
        let span = seen
            .first
            .zip(seen.last)
            .map_or(f64::NAN, |(a, b)| seconds(b - a));
        Tally {
            requests: seen.requests,
            distinct: seen.by_pair.len(),
            duplicates,
            malformed: seen.malformed,
            span,
        }
    }
}

/// `POST /2010-04-01/Accounts/{sid}/Messages.json`: 201 with a fresh `SM…` SID.
async fn create_message(
    State(standin): State<Standin>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = Utc::now();
    let mut seen = standin.lock();
    let (Some(to), Some(body)) = (form.get("To"), form.get("Body")) else {
        seen.malformed += 1;
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": 21604, "message": "A 'To' and a 'Body' are required", "status": 400})),
        )
            .into_response();
    };
    *seen.by_pair.entry((to.clone(), body.clone())).or_insert(0) += 1;
    seen.requests += 1;
    seen.first.get_or_insert(now);
    seen.last = Some(now);
    let sid = format!("SM{:032x}", seen.requests);
    drop(seen);
    (
        StatusCode::CREATED,
        axum::Json(json!({"sid": sid, "status": "queued"})),
    )
        .into_response()
}

/// The stand-in's counts, for the report.
pub struct Tally {
    pub requests: u64,
    /// Distinct (To, Body) pairs.
    pub distinct: usize,
    /// Requests beyond the first per (To, Body): messages sent more than once.
    pub duplicates: u64,
    pub malformed: u64,
    /// Seconds from the first request to the last.
    pub span: f64,
}
