//! Campaign e-mail over SendGrid's v3 Mail Send (`POST {base_url}/v3/mail/send`, JSON,
//! `Authorization: Bearer <API key>`), for senders whose transport is `sendgrid`.
//!
//! SendGrid answers `202 Accepted` with no body once it has queued the message, and an
//! `X-Message-Id` header naming it; delivery happens afterwards. What becomes of the message
//! (delivered, bounced, opened, unsubscribed…) comes back later on the signed Event Webhook,
//! each event carrying the message's `custom_args`: the send's `effect_id` rides there, so
//! every event finds its send without SendGrid's own id.
//!
//! Mail Send takes no idempotency key, so a request SendGrid may have taken is never sent
//! again: a second request would be a second e-mail to the prospect. Errors are classified by
//! whether the request may have reached SendGrid:
//! - certainly not taken: no connection could be made (refused, DNS, TLS: the request was
//!   never written), or a 429 (or 408), which SendGrid answers before taking anything. These
//!   are [`SendGridError::Retryable`], with `Retry-After` when SendGrid sends one;
//! - may have been taken: a timeout once connected, a connection reset after the request was
//!   written, and any 5xx (SendGrid may have queued the message before a later layer failed).
//!   These are [`SendGridError::Unconfirmed`]: the caller records the send `unknown` and never
//!   sends it again; its events, if any arrive, settle it;
//! - refused: 401 and 403 refuse Herald's API key, not the message
//!   ([`SendGridError::CredentialsRefused`]); any other 4xx refuses the message for good
//!   ([`SendGridError::Permanent`], with SendGrid's `errors[].message` and `field`).
//!
//! No error text ever holds the API key.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::http_answers::{error_chain, retry_after, snippet};
use super::outreach::OutreachEmail;
use crate::config::SendgridConfig;

/// The path of Mail Send under `sendgrid.base_url`.
pub const MAIL_SEND_PATH: &str = "/v3/mail/send";

/// Longest piece of SendGrid's error text kept in an error, in characters.
const MAX_ERROR_CHARS: usize = 300;

/// SendGrid queued the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// SendGrid's id for the message (`X-Message-Id`), the prefix of the `sg_message_id` its
    /// events carry. `None` when the answer did not name one: the message is still accepted.
    pub message_id: Option<String>,
}

/// Why SendGrid did not take a message, and whether sending it again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendGridError {
    /// SendGrid certainly did not take the message: a 429 (or 408), or a connection that
    /// could not be made. Safe to send again, not before `retry_after` when SendGrid set one.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The request may have reached SendGrid and SendGrid may have queued the message, but
    /// its answer was not read: a timeout after connecting, a reset connection, or a 5xx.
    /// Mail Send has no idempotency key, so the message is never sent again: the caller
    /// records it `unknown`.
    #[error("{message}")]
    Unconfirmed { message: String },
    /// SendGrid refused Herald's API key (401, or 403 for a key without the Mail Send
    /// permission or a suspended account): nothing is wrong with the message, and every other
    /// message would be refused alike until the key is fixed. A key that cannot be sent at
    /// all (empty, or with characters a header cannot carry) is refused before any request,
    /// as 401: the answer SendGrid gives a request without a usable key.
    #[error("sendgrid refused Herald's API key (HTTP {status}): {message}")]
    CredentialsRefused { status: u16, message: String },
    /// SendGrid refused the message for good (another 4xx): an invalid address, an
    /// unverified sender, a body it will not take. `message` holds SendGrid's reasons and
    /// the fields they name.
    #[error("sendgrid refused the message (HTTP {status}): {message}")]
    Permanent { status: u16, message: String },
}

/// Sends campaign e-mail through SendGrid's Mail Send. Cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct SendGrid {
    http: reqwest::Client,
    send_url: String,
}

impl SendGrid {
    /// Builds the client from configuration. `timeout_secs` bounds a whole call, connection
    /// to last byte. Redirects are not followed: a 307 or 308 would post the message again to
    /// another address, and a redirected call could no longer say whether SendGrid took it.
    pub fn new(config: &SendgridConfig) -> Result<Self, reqwest::Error> {
        let timeout = Duration::from_secs(config.timeout_secs);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()?;
        let base = config.base_url.as_str().trim_end_matches('/');
        Ok(Self {
            http,
            send_url: format!("{base}{MAIL_SEND_PATH}"),
        })
    }

    /// Sends one e-mail with the account's API key.
    pub async fn send(
        &self,
        api_key: &str,
        email: &OutreachEmail,
    ) -> Result<Accepted, SendGridError> {
        let api_key = api_key.trim();
        if api_key.is_empty() || HeaderValue::from_str(&format!("Bearer {api_key}")).is_err() {
            return Err(SendGridError::CredentialsRefused {
                status: StatusCode::UNAUTHORIZED.as_u16(),
                message: "the API key is empty or cannot be sent in a header; not sent".to_owned(),
            });
        }
        self.post(api_key, email)
            .await
            .map_err(|err| redacted(err, api_key))
    }

    async fn post(&self, api_key: &str, email: &OutreachEmail) -> Result<Accepted, SendGridError> {
        let response = self
            .http
            .post(&self.send_url)
            .bearer_auth(api_key)
            .json(&request_body(email))
            .send()
            .await
            .map_err(|err| request_error(&err))?;
        let status = response.status();
        if status.is_success() {
            // The status line says SendGrid queued the message; its (empty) body is not read,
            // so nothing after this point can turn an accepted message into a failure.
            return Ok(Accepted {
                message_id: message_id(response.headers()),
            });
        }
        let retry_after = retry_after(response.headers());
        let text = match response.bytes().await {
            Ok(body) => error_text(&body),
            // the status line alone decides (a 5xx stays unconfirmed)
            Err(err) => format!("answer unreadable: {}", error_chain(&err)),
        };
        Err(refusal(status, retry_after, text))
    }
}

/// The Mail Send request for one e-mail.
///
/// `custom_args` goes in the personalization, not at the top of the request: the published
/// description (`tsg_mail_v3.json`) types the message-level `custom_args` as a string while
/// SendGrid's API wants an object there, and both agree on the personalization's object.
/// SendGrid returns a personalization's `custom_args` on every event of its message alike.
/// Header values are strings, as SendGrid requires.
fn request_body(email: &OutreachEmail) -> Value {
    let mut headers = Map::new();
    let mut header = |name: &str, value: String| {
        headers.insert(name.to_owned(), Value::String(value));
    };
    header("Message-ID", email.message_id.clone());
    if let Some(in_reply_to) = email.in_reply_to() {
        header("In-Reply-To", in_reply_to.to_owned());
    }
    if let Some(references) = email.references() {
        header("References", references);
    }
    header("List-Unsubscribe", email.list_unsubscribe());
    header(
        "List-Unsubscribe-Post",
        OutreachEmail::LIST_UNSUBSCRIBE_POST.to_owned(),
    );

    let mut from = json!({"email": email.from_email});
    if !email.from_name.trim().is_empty() {
        from["name"] = Value::String(email.from_name.clone());
    }
    let mut body = json!({
        "personalizations": [{
            "to": [{"email": email.to}],
            "custom_args": {"effect_id": email.effect_id.to_string()},
        }],
        "from": from,
        "subject": email.subject,
        "content": [{"type": "text/plain", "value": email.body}],
        "headers": headers,
    });
    if let Some(reply_to) = email.reply_to.as_deref().map(str::trim)
        && !reply_to.is_empty()
    {
        body["reply_to"] = json!({"email": reply_to});
    }
    body
}

/// `X-Message-Id`, when the answer has a readable one.
fn message_id(headers: &HeaderMap) -> Option<String> {
    let id = headers.get("x-message-id")?.to_str().ok()?.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// A request that got no answer: `Retryable` when it was never written (no connection could
/// be made), else `Unconfirmed` (a timeout or reset once connected may come after SendGrid
/// read the request).
fn request_error(err: &reqwest::Error) -> SendGridError {
    let message = format!("sendgrid request failed: {}", error_chain(err));
    // a connect timeout is both: the connection was never made, so nothing was sent
    if err.is_connect() || err.is_builder() {
        SendGridError::Retryable {
            message,
            retry_after: None,
        }
    } else {
        SendGridError::Unconfirmed { message }
    }
}

/// SendGrid's error body: `{"errors": [{"message", "field", "help"}], "id"}`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    message: Option<String>,
    field: Option<String>,
}

/// SendGrid's reasons with the fields they name (`message (field: from.email); …`), else the
/// start of the body; at most [`MAX_ERROR_CHARS`].
fn error_text(body: &[u8]) -> String {
    let reasons: Vec<String> = serde_json::from_slice::<ErrorBody>(body)
        .map(|answer| {
            answer
                .errors
                .into_iter()
                .filter_map(|item| {
                    // SendGrid writes a missing field as `null` or as the string "null"
                    let field = item
                        .field
                        .filter(|field| !field.is_empty() && field != "null");
                    match (item.message, field) {
                        (Some(message), Some(field)) => Some(format!("{message} (field: {field})")),
                        (Some(message), None) => Some(message),
                        (None, Some(field)) => Some(format!("(field: {field})")),
                        (None, None) => None,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if reasons.is_empty() {
        return snippet(body);
    }
    reasons.join("; ").chars().take(MAX_ERROR_CHARS).collect()
}

/// The error for a non-2xx answer, from its status line and SendGrid's text.
fn refusal(status: StatusCode, retry_after: Option<Duration>, text: String) -> SendGridError {
    let answered = || format!("sendgrid answered HTTP {}: {text}", status.as_u16());
    // 429 and 408 say SendGrid did not take the request.
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT {
        return SendGridError::Retryable {
            message: answered(),
            retry_after,
        };
    }
    // A 5xx may come from a layer behind the one that queued the message.
    if status.is_server_error() {
        return SendGridError::Unconfirmed {
            message: answered(),
        };
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return SendGridError::CredentialsRefused {
            status: status.as_u16(),
            message: text,
        };
    }
    // other 4xx, and a 1xx or 3xx (a redirect, not followed) that is no acceptance either
    SendGridError::Permanent {
        status: status.as_u16(),
        message: text,
    }
}

/// The error with every copy of the API key blanked out, should an answer or a cause have
/// echoed it.
fn redacted(err: SendGridError, api_key: &str) -> SendGridError {
    let scrub = |text: String| text.replace(api_key, "[API key]");
    match err {
        SendGridError::Retryable {
            message,
            retry_after,
        } => SendGridError::Retryable {
            message: scrub(message),
            retry_after,
        },
        SendGridError::Unconfirmed { message } => SendGridError::Unconfirmed {
            message: scrub(message),
        },
        SendGridError::CredentialsRefused { status, message } => {
            SendGridError::CredentialsRefused {
                status,
                message: scrub(message),
            }
        }
        SendGridError::Permanent { status, message } => SendGridError::Permanent {
            status,
            message: scrub(message),
        },
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn email(thread: Vec<String>, reply_to: Option<&str>) -> OutreachEmail {
        let effect_id = Uuid::nil();
        OutreachEmail {
            from_name: "Sam Seller".to_owned(),
            from_email: "sam@seller.example".to_owned(),
            reply_to: reply_to.map(str::to_owned),
            to: "ada@prospect.example".to_owned(),
            subject: "Quick question".to_owned(),
            body: "Hello Ada,\n\nOne question.".to_owned(),
            message_id: OutreachEmail::message_id_for(effect_id, "sam@seller.example"),
            thread,
            unsubscribe_url: "https://herald.example/u/tok".to_owned(),
            effect_id,
        }
    }

    #[test]
    fn a_follow_up_carries_its_thread_unsubscribe_headers_and_effect() {
        let body = request_body(&email(
            vec![
                "<a@seller.example>".to_owned(),
                "<b@seller.example>".to_owned(),
            ],
            Some("replies@seller.example"),
        ));
        assert_eq!(
            body,
            json!({
                "personalizations": [{
                    "to": [{"email": "ada@prospect.example"}],
                    "custom_args": {"effect_id": "00000000-0000-0000-0000-000000000000"},
                }],
                "from": {"email": "sam@seller.example", "name": "Sam Seller"},
                "reply_to": {"email": "replies@seller.example"},
                "subject": "Quick question",
                "content": [{"type": "text/plain", "value": "Hello Ada,\n\nOne question."}],
                "headers": {
                    "Message-ID": "<00000000-0000-0000-0000-000000000000@seller.example>",
                    "In-Reply-To": "<b@seller.example>",
                    "References": "<a@seller.example> <b@seller.example>",
                    "List-Unsubscribe": "<https://herald.example/u/tok>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
            })
        );
    }

    #[test]
    fn a_first_step_has_no_thread_headers_and_no_reply_to() {
        let mut first = email(Vec::new(), Some("  "));
        first.from_name = String::new();
        let body = request_body(&first);
        let headers = body["headers"].as_object().unwrap();
        assert!(!headers.contains_key("In-Reply-To"));
        assert!(!headers.contains_key("References"));
        assert!(body.get("reply_to").is_none());
        assert_eq!(body["from"], json!({"email": "sam@seller.example"}));
    }

    #[test]
    fn sendgrid_errors_name_their_fields_and_stay_bounded() {
        let body = br#"{"errors":[{"message":"The from email does not contain a valid address.","field":"from.email","help":"http://sendgrid.com/docs"},{"message":"invalid request","field":"null"}]}"#;
        assert_eq!(
            error_text(body),
            "The from email does not contain a valid address. (field: from.email); invalid request"
        );
        let long = json!({"errors": [{"message": "x".repeat(1000), "field": null}]});
        assert_eq!(
            error_text(long.to_string().as_bytes()).chars().count(),
            MAX_ERROR_CHARS
        );
        assert_eq!(
            error_text(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        assert_eq!(error_text(b""), "(empty body)");
    }

    #[test]
    fn statuses_are_classified_by_whether_sendgrid_may_have_taken_the_message() {
        let wait = Some(Duration::from_secs(4));
        assert_eq!(
            refusal(StatusCode::TOO_MANY_REQUESTS, wait, "slow down".to_owned()),
            SendGridError::Retryable {
                message: "sendgrid answered HTTP 429: slow down".to_owned(),
                retry_after: wait,
            }
        );
        assert!(matches!(
            refusal(StatusCode::BAD_GATEWAY, wait, String::new()),
            SendGridError::Unconfirmed { .. }
        ));
        assert!(matches!(
            refusal(StatusCode::FORBIDDEN, None, String::new()),
            SendGridError::CredentialsRefused { status: 403, .. }
        ));
        assert!(matches!(
            refusal(StatusCode::PAYLOAD_TOO_LARGE, None, String::new()),
            SendGridError::Permanent { status: 413, .. }
        ));
        assert!(matches!(
            refusal(StatusCode::TEMPORARY_REDIRECT, None, String::new()),
            SendGridError::Permanent { status: 307, .. }
        ));
    }

    #[test]
    fn the_api_key_is_blanked_out_of_error_text() {
        let err = redacted(
            SendGridError::Permanent {
                status: 400,
                message: "bad key SG.secret".to_owned(),
            },
            "SG.secret",
        );
        assert_eq!(
            err.to_string(),
            "sendgrid refused the message (HTTP 400): bad key [API key]"
        );
    }
}
