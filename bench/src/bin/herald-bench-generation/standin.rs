//! An in-process OpenAI-compatible chat-completions stand-in with a provider's limits: it
//! answers after `latency`, and enforces requests and tokens per minute as OpenAI does — over
//! the last 60 s, a request counted with its prompt (bytes / 4) plus its
//! `max_completion_tokens` — answering 429 with `retry-after-ms` beyond them. Every answer is
//! the same valid e-mail, with a usage of the prompt and 120 output tokens.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// Output tokens every answer reports.
const OUTPUT_TOKENS: u64 = 120;

#[derive(Debug, Default)]
struct Seen {
    /// (instant, tokens counted) of each accepted request in the last minute.
    window: VecDeque<(Instant, u64)>,
    accepted: u64,
    throttled: u64,
    /// Tokens the answers reported (prompt + output).
    used_tokens: u64,
    /// Tokens counted against the limit (prompt + `max_completion_tokens`).
    counted_tokens: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// The stand-in and what it saw.
#[derive(Clone)]
pub struct LlmStandin {
    seen: Arc<Mutex<Seen>>,
    latency: Duration,
    requests_per_minute: u64,
    tokens_per_minute: u64,
}

/// Totals at the end of a run.
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    pub accepted: u64,
    pub throttled: u64,
    pub used_tokens: u64,
    pub counted_tokens: u64,
    /// From the first accepted request to the last.
    pub span: Duration,
}

impl LlmStandin {
    pub fn new(latency: Duration, requests_per_minute: u64, tokens_per_minute: u64) -> Self {
        Self {
            seen: Arc::default(),
            latency,
            requests_per_minute,
            tokens_per_minute,
        }
    }

    /// Serves on 127.0.0.1 in this process; returns the base URL (ending in `/v1`).
    pub async fn start(&self) -> anyhow::Result<String> {
        let router = axum::Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/v1", listener.local_addr()?);
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                eprintln!("LLM stand-in failed: {err}");
            }
        });
        Ok(url)
    }

    pub fn tally(&self) -> Tally {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        Tally {
            accepted: seen.accepted,
            throttled: seen.throttled,
            used_tokens: seen.used_tokens,
            counted_tokens: seen.counted_tokens,
            span: match (seen.first, seen.last) {
                (Some(first), Some(last)) => last - first,
                _ => Duration::ZERO,
            },
        }
    }
}

async fn complete(State(standin): State<LlmStandin>, Json(body): Json<Value>) -> Response {
    let prompt_bytes: usize = body["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| m["content"].as_str().map_or(0, str::len))
                .sum()
        })
        .unwrap_or(0);
    let prompt_tokens = u64::try_from(prompt_bytes / 4).unwrap_or(u64::MAX);
    let counted = prompt_tokens + body["max_completion_tokens"].as_u64().unwrap_or(0);
    let wait = {
        let mut seen = standin.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        while seen
            .window
            .front()
            .is_some_and(|(at, _)| now - *at >= Duration::from_secs(60))
        {
            seen.window.pop_front();
        }
        let requests = u64::try_from(seen.window.len()).unwrap_or(u64::MAX);
        let tokens: u64 = seen.window.iter().map(|(_, tokens)| tokens).sum();
        if requests >= standin.requests_per_minute || tokens + counted > standin.tokens_per_minute {
            seen.throttled += 1;
            // until the oldest request leaves the window
            Some(
                seen.window
                    .front()
                    .map_or(Duration::from_secs(1), |(at, _)| {
                        Duration::from_secs(60).saturating_sub(now - *at)
                    }),
            )
        } else {
            seen.window.push_back((now, counted));
            seen.accepted += 1;
            seen.used_tokens += prompt_tokens + OUTPUT_TOKENS;
            seen.counted_tokens += counted;
            seen.first.get_or_insert(now);
            seen.last = Some(now);
            None
        }
    };
    if let Some(wait) = wait {
        let body = json!({"error": {"message": "Rate limit reached", "type": "requests"}});
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after-ms", wait.as_millis().to_string())],
            Json(body),
        )
            .into_response();
    }
    tokio::time::sleep(standin.latency).await;
    let email = json!({"subject": "A short note", "body": "Hello — a short note from the bench."});
    Json(json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": email.to_string(), "refusal": null}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": OUTPUT_TOKENS,
                  "total_tokens": prompt_tokens + OUTPUT_TOKENS},
    }))
    .into_response()
}
