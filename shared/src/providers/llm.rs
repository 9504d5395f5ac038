//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`, bearer key), asked
//! for one e-mail as strict JSON (`response_format: {type: "json_schema", strict: true}`).
//!
//! An answer is used only when it is whole and valid: a refusal, a truncated answer
//! (`finish_reason` other than `stop`), JSON that does not parse, or a subject or body missing
//! or too long is [`Written::Unusable`] with the reason — a visible failure, never a blank or
//! cut-off e-mail. Its `usage` is still reported: the provider charged for it.
//!
//! Failures before an answer are [`LlmError`]: 429, 5xx, timeouts and connection errors are
//! worth retrying (with the wait the provider asked for, from `Retry-After` or OpenAI's
//! `x-ratelimit-reset-*`); other 4xx (a wrong key, an unknown model) are not. Calling again is
//! safe: a completion sends nothing to anyone, it only costs tokens.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http_answers::{MAX_RETRY_AFTER, error_chain, go_duration, retry_after, snippet};
use crate::net::{INTERNAL_REFUSED, PublicOnly};

/// Longest subject accepted, in characters.
pub const MAX_SUBJECT_CHARS: usize = 150;
/// Longest body accepted, in characters.
pub const MAX_BODY_CHARS: usize = 10_000;

/// What the model is told before the step's prompt.
const SYSTEM_PROMPT: &str = "You write one e-mail from a salesperson to one prospect. \
Follow the user's instructions. Answer with the e-mail as JSON: `subject` (one line, at most \
150 characters) and `body` (plain text, no placeholders left to fill in).";

/// One call: where, with which key and model, and the step's prompt rendered for a prospect.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub base_url: &'a str,
    pub api_key: &'a str,
    pub model: &'a str,
    pub prompt: &'a str,
    pub max_output_tokens: u32,
}

/// Tokens a call was charged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(rename = "prompt_tokens")]
    pub input_tokens: u32,
    #[serde(rename = "completion_tokens")]
    pub output_tokens: u32,
}

/// An e-mail as the model wrote it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub body: String,
}

/// A completed call: what it cost and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// `None` when the provider did not say (an OpenAI-compatible server may omit it).
    pub usage: Option<Usage>,
    pub written: Written,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Email(Email),
    /// The answer cannot be sent; why.
    Unusable(String),
}

/// A call that got no answer to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// 429, 5xx, a timeout or a connection error: try again, not before `retry_after`.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
        /// The provider said its limit is exhausted (429): every call to it should wait.
        throttled: bool,
    },
    /// Another 4xx (a refused key, an unknown model, a request it will never take).
    #[error("{0}")]
    Permanent(String),
}

/// The HTTP client every call shares (one connection pool), with the call's time limit.
#[derive(Debug, Clone)]
pub struct LlmClient {
    http: reqwest::Client,
}

impl LlmClient {
    /// `timeout` bounds a whole call, connection to last byte. Redirects are not followed: a
    /// provider URL checked not to name an internal address (`llm.allow_private_base_urls`)
    /// could otherwise send Herald on to one, and show its answer in the error.
    ///
    /// With `public_only`, every connection's name is resolved and refused when it leads
    /// inside the deployment (`net::PublicOnly`): the check made when the URL was written
    /// holds at call time too (DNS rebinding). Such a call fails for good.
    pub fn new(timeout: Duration, public_only: Option<PublicOnly>) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)));
        if let Some(resolver) = public_only {
            builder = builder.dns_resolver(std::sync::Arc::new(resolver));
        }
        Ok(Self {
            http: builder.build()?,
        })
    }

    /// Asks the model for the e-mail.
    pub async fn write_email(&self, request: &Request<'_>) -> Result<Answer, LlmError> {
        let url = format!(
            "{}/chat/completions",
            request.base_url.trim_end_matches('/')
        );
        let response = self
            .http
            .post(&url)
            .bearer_auth(request.api_key)
            .json(&body(request))
            .send()
            .await
            .map_err(|err| {
                let message = format!("calling the model failed: {}", error_chain(&err));
                if message.contains(INTERNAL_REFUSED) {
                    // the provider's name leads inside the deployment: no retry changes that
                    return LlmError::Permanent(message);
                }
                LlmError::Retryable {
                    message,
                    retry_after: None,
                    throttled: false,
                }
            })?;
        let status = response.status();
        let wait = asked_wait(response.headers());
        let bytes = response.bytes().await.map_err(|err| LlmError::Retryable {
            message: format!("reading the model's answer failed: {}", error_chain(&err)),
            retry_after: None,
            throttled: false,
        })?;
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(LlmError::Retryable {
                message: format!("the provider answered {status}: {}", error_text(&bytes)),
                retry_after: wait,
                throttled: status == StatusCode::TOO_MANY_REQUESTS,
            });
        }
        if !status.is_success() {
            return Err(LlmError::Permanent(format!(
                "the provider refused the request ({status}): {}",
                error_text(&bytes)
            )));
        }
        Ok(read_answer(&bytes))
    }
}

/// The request body: the prompt, and the JSON schema the answer must follow.
fn body(request: &Request<'_>) -> Value {
    json!({
        "model": request.model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": request.prompt},
        ],
        "max_completion_tokens": request.max_output_tokens,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "email",
                "strict": true,
                "schema": {
                    "type": "object",
                    "properties": {
                        "subject": {"type": "string"},
                        "body": {"type": "string"},
                    },
                    "required": ["subject", "body"],
                    "additionalProperties": false,
                },
            },
        },
    })
}

/// The longest wait the answer asks for: `Retry-After`, or the reset of whichever of OpenAI's
/// limits (requests, tokens) it says is used up (both when it does not say).
fn asked_wait(headers: &HeaderMap) -> Option<Duration> {
    let exhausted = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .is_none_or(|remaining| remaining == 0)
    };
    [
        retry_after(headers),
        headers
            .get("retry-after-ms")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(|ms| Duration::from_millis(ms).min(MAX_RETRY_AFTER)),
        exhausted("x-ratelimit-remaining-requests")
            .then(|| go_duration(headers, "x-ratelimit-reset-requests"))
            .flatten(),
        exhausted("x-ratelimit-remaining-tokens")
            .then(|| go_duration(headers, "x-ratelimit-reset-tokens"))
            .flatten(),
    ]
    .into_iter()
    .flatten()
    .max()
}

/// An error answer's message (OpenAI's `{error: {message}}`), else the start of its body.
fn error_text(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: ErrorDetail,
    }
    #[derive(Deserialize)]
    struct ErrorDetail {
        message: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(answer) => answer.error.message.chars().take(300).collect(),
        Err(_) => snippet(body),
    }
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    finish_reason: Option<String>,
    message: Option<ChoiceMessage>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
    refusal: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailJson {
    subject: String,
    body: String,
}

/// Reads a 2xx answer; anything short of a whole, valid e-mail is `Unusable` with the reason.
fn read_answer(bytes: &[u8]) -> Answer {
    let completion: Completion = match serde_json::from_slice(bytes) {
        Ok(completion) => completion,
        Err(err) => {
            return Answer {
                usage: None,
                written: Written::Unusable(format!(
                    "the provider's answer is not a chat completion ({err}): {}",
                    snippet(bytes)
                )),
            };
        }
    };
    Answer {
        usage: completion.usage,
        written: match completion.choices.into_iter().next() {
            Some(choice) => read_choice(choice),
            None => Written::Unusable("the provider's answer has no choices".to_owned()),
        },
    }
}

fn read_choice(choice: Choice) -> Written {
    let message = choice.message.unwrap_or(ChoiceMessage {
        content: None,
        refusal: None,
    });
    if let Some(refusal) = message.refusal.filter(|text| !text.trim().is_empty()) {
        return Written::Unusable(format!("the model refused: {}", clip(&refusal)));
    }
    match choice.finish_reason.as_deref() {
        Some("stop") | None => {}
        Some("length") => {
            return Written::Unusable(
                "the answer was cut off at llm.max_output_tokens (finish_reason: length)"
                    .to_owned(),
            );
        }
        Some(other) => {
            return Written::Unusable(format!(
                "the answer did not finish (finish_reason: {other})"
            ));
        }
    }
    let Some(content) = message.content else {
        return Written::Unusable("the answer has no content".to_owned());
    };
    let email: EmailJson = match serde_json::from_str(&content) {
        Ok(email) => email,
        Err(err) => {
            return Written::Unusable(format!(
                "the answer is not the JSON asked for ({err}): {}",
                clip(&content)
            ));
        }
    };
    match check_email(&email.subject, &email.body) {
        Ok(()) => Written::Email(Email {
            subject: email.subject.trim().to_owned(),
            body: email.body.trim().to_owned(),
        }),
        Err(reason) => Written::Unusable(format!("the answer's {reason}")),
    }
}

/// Whether a subject and body can be sent: both present, the subject one line of at most
/// [`MAX_SUBJECT_CHARS`] (a line break in a header would let the text add headers), the body
/// at most [`MAX_BODY_CHARS`]. The error names the part, for "the answer's …" or a field.
pub fn check_email(subject: &str, body: &str) -> Result<(), String> {
    let subject = subject.trim();
    let body = body.trim();
    if subject.is_empty() {
        return Err("subject is empty".to_owned());
    }
    if subject.chars().count() > MAX_SUBJECT_CHARS {
        return Err(format!(
            "subject is longer than {MAX_SUBJECT_CHARS} characters"
        ));
    }
    if subject.contains(['\r', '\n']) {
        return Err("subject has a line break".to_owned());
    }
    // PostgreSQL text cannot hold NUL, and no e-mail needs it
    if subject.contains('\0') {
        return Err("subject has a NUL character".to_owned());
    }
    if body.is_empty() {
        return Err("body is empty".to_owned());
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(format!("body is longer than {MAX_BODY_CHARS} characters"));
    }
    if body.contains('\0') {
        return Err("body has a NUL character".to_owned());
    }
    Ok(())
}

fn clip(text: &str) -> String {
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(content: &str, finish: &str) -> Vec<u8> {
        json!({
            "id": "chatcmpl-1",
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content, "refusal": null}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200},
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_whole_valid_answer_is_an_email_with_its_usage() {
        let answer = read_answer(&completion(
            r#"{"subject":" Hi Ada ","body":"Hello."}"#,
            "stop",
        ));
        assert_eq!(
            answer,
            Answer {
                usage: Some(Usage {
                    input_tokens: 120,
                    output_tokens: 80
                }),
                written: Written::Email(Email {
                    subject: "Hi Ada".to_owned(),
                    body: "Hello.".to_owned()
                }),
            }
        );
    }

    #[test]
    fn refused_truncated_and_invalid_answers_are_unusable_with_the_reason() {
        let unusable = |bytes: Vec<u8>| match read_answer(&bytes).written {
            Written::Unusable(reason) => reason,
            Written::Email(email) => panic!("used {email:?}"),
        };
        let refusal = json!({"choices": [{"finish_reason": "stop",
            "message": {"content": null, "refusal": "I can't help with that."}}]});
        assert!(unusable(refusal.to_string().into_bytes()).contains("refused"));
        assert!(unusable(completion(r#"{"subject":"Hi","bo"#, "length")).contains("length"));
        assert!(unusable(completion("not json", "stop")).contains("not the JSON"));
        assert!(unusable(completion(r#"{"subject":"Hi"}"#, "stop")).contains("not the JSON"));
        assert!(
            unusable(completion(r#"{"subject":"","body":"x"}"#, "stop"))
                .contains("subject is empty")
        );
        let long = format!(r#"{{"subject":"{}","body":"x"}}"#, "s".repeat(151));
        assert!(unusable(completion(&long, "stop")).contains("longer than 150"));
        let injected = r#"{"subject":"Hi\r\nBcc: all@example.com","body":"x"}"#;
        assert!(unusable(completion(injected, "stop")).contains("line break"));
        assert!(
            unusable(completion(r#"{"subject":"Hi","body":"  "}"#, "stop"))
                .contains("body is empty")
        );
        assert!(unusable(b"<html>bad gateway</html>".to_vec()).contains("not a chat completion"));
        assert!(
            unusable(completion(r#"{"subject":"Hi","body":"a\u0000b"}"#, "stop")).contains("NUL")
        );
        assert!(unusable(completion("{}", "content_filter")).contains("content_filter"));
    }

    #[test]
    fn the_wait_asked_for_is_the_longest_of_the_exhausted_limits() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining-requests", "10".parse().unwrap());
        headers.insert("x-ratelimit-reset-requests", "30s".parse().unwrap());
        headers.insert("x-ratelimit-remaining-tokens", "0".parse().unwrap());
        headers.insert("x-ratelimit-reset-tokens", "1.5s".parse().unwrap());
        assert_eq!(asked_wait(&headers), Some(Duration::from_millis(1500)));
        headers.insert("retry-after", "4".parse().unwrap());
        assert_eq!(asked_wait(&headers), Some(Duration::from_secs(4)));
        assert_eq!(asked_wait(&HeaderMap::new()), None);
    }
}
