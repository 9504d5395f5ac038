//! An OpenAI-compatible chat-completions stand-in (wiremock) that writes each e-mail from its
//! prompt, so a test can see what was asked: the subject is `Re: ` + the prompt's first 60
//! characters, the body the whole prompt. Every answer reports 100 input and 50 output tokens.
//!
//! A prompt containing a marker is answered badly on purpose: `[refuse]` with a refusal,
//! `[truncate]` cut off (`finish_reason: length`), `[garbage]` with content that is not JSON.
//! [`LlmStandin::fail_next`] makes the next calls, whatever they ask, answer an HTTP error
//! with headers (a 429 with `Retry-After`, a 500). Each call is recorded with its instant.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Input and output tokens every answer reports.
pub const USAGE: (u32, u32) = (100, 50);

/// One call as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub authorization: Option<String>,
    pub body: Value,
}

impl Call {
    /// The user message: the step's prompt as rendered.
    pub fn prompt(&self) -> &str {
        self.body["messages"][1]["content"]
            .as_str()
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    faults: VecDeque<ResponseTemplate>,
    delay: Duration,
}

#[derive(Clone)]
struct Scripted(Arc<Mutex<State>>);

impl Respond for Scripted {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let call = Call {
            at: Instant::now(),
            authorization: request
                .headers
                .get("authorization")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            body,
        };
        let answer = match state.faults.pop_front() {
            Some(fault) => fault,
            None => ResponseTemplate::new(200).set_body_json(completion(call.prompt())),
        };
        state.calls.push(call);
        answer.set_delay(state.delay)
    }
}

/// The answer the stand-in writes for `prompt`.
fn completion(prompt: &str) -> Value {
    let (finish, content, refusal) = if prompt.contains("[refuse]") {
        ("stop", Value::Null, json!("I can't help with that."))
    } else if prompt.contains("[truncate]") {
        ("length", json!(r#"{"subject": "Hi", "bo"#), Value::Null)
    } else if prompt.contains("[garbage]") {
        (
            "stop",
            json!("Sure! Here is your e-mail: Hi there"),
            Value::Null,
        )
    } else {
        let subject: String = prompt.chars().take(60).collect();
        let email = json!({"subject": format!("Re: {subject}"), "body": prompt});
        ("stop", json!(email.to_string()), Value::Null)
    };
    json!({
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-test",
        "choices": [{"index": 0, "finish_reason": finish,
                     "message": {"role": "assistant", "content": content, "refusal": refusal}}],
        "usage": {"prompt_tokens": USAGE.0, "completion_tokens": USAGE.1,
                  "total_tokens": USAGE.0 + USAGE.1},
    })
}

/// The running stand-in; its URL ends in `/v1`, as a provider's `base_url` does.
pub struct LlmStandin {
    pub server: MockServer,
    state: Arc<Mutex<State>>,
}

impl LlmStandin {
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(Scripted(state.clone()))
            .mount(&server)
            .await;
        Self { server, state }
    }

    /// The `base_url` of a provider on this stand-in.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.server.uri())
    }

    /// Every answer waits this long first.
    pub fn answer_after(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// The next call (after those already queued) answers `fault`.
    pub fn fail_next(&self, fault: ResponseTemplate) {
        self.lock().faults.push_back(fault);
    }

    /// The calls so far, in the order they arrived.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
