//! SMS and WhatsApp over Twilio's Messages API (`POST /2010-04-01/Accounts/{sid}/Messages.json`,
//! form-encoded, HTTP Basic auth). With no account SID and auth token configured the client is
//! in sandbox mode: it sends nothing and the effect is recorded as `sandboxed`.
//!
//! Errors are classified by whether the request may have reached Twilio, because Twilio's
//! Messages API takes no idempotency key and a blind re-send after Twilio created the message
//! sends it twice:
//! - never reached Twilio, or Twilio said it did not create the message: a connection that
//!   could not be made (the request was never written) and 429 are `Retryable`, safe to
//!   send again (with `Retry-After` when Twilio sends one);
//! - may have been created: a timeout once connected, a connection reset or an unreadable
//!   answer after the request was written, and any 5xx (Twilio may have created the message
//!   before failing) are `Unconfirmed`. The caller looks the message up with
//!   [`Twilio::find_sent`] (after the backoff, since a slow Twilio may still be creating it)
//!   and sends again only if Twilio has no such message;
//! - a 4xx with Twilio's JSON body (`{code, message, more_info, status}`, e.g. 21211 invalid
//!   number, 21610 opted out) is `Permanent` and keeps Twilio's code and message; a 401 or 403
//!   refuses Herald's own credentials, not the message: it is `CredentialsRefused`, an outage
//!   the worker waits out.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::TwilioConfig;
use crate::db::account_senders::AccountSenders;

mod lookup;

use super::http_answers::{error_chain, retry_after, snippet};

pub use lookup::{CLOCK_SKEW, Lookup};

/// The path of the status webhook on herald-api, appended to `twilio.public_base_url`.
pub const STATUS_CALLBACK_PATH: &str = "/webhooks/twilio/status";

/// How a student receives messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Sms,
    Whatsapp,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Whatsapp => "whatsapp",
        }
    }

    /// The channel stored in `students.channel`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sms" => Some(Self::Sms),
            "whatsapp" => Some(Self::Whatsapp),
            _ => None,
        }
    }

    /// A phone number as Twilio addresses it on this channel (`whatsapp:+1…` for WhatsApp).
    pub fn address(self, number: &str) -> String {
        match self {
            Self::Sms => number.to_owned(),
            Self::Whatsapp if number.starts_with("whatsapp:") => number.to_owned(),
            Self::Whatsapp => format!("whatsapp:{number}"),
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a message is sent from: a number (`From`) or a Messaging Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// `From`, already addressed for the channel (`whatsapp:+1…` on WhatsApp).
    From(String),
    /// `MessagingServiceSid`: Twilio picks a number from the service's pool.
    MessagingService(String),
}

impl Sender {
    /// The sender as Twilio names it (`+1…`, `whatsapp:+1…` or `MG…`): what an inbound
    /// message's `To` or `MessagingServiceSid` carries when it answers this sender.
    pub fn address(&self) -> &str {
        match self {
            Self::From(from) => from,
            Self::MessagingService(sid) => sid,
        }
    }

    /// Names the sender for rate limiting: one limit per channel and number or service.
    pub fn rate_key(&self, channel: Channel) -> String {
        match self {
            Self::From(from) => format!("{channel}:{from}"),
            Self::MessagingService(sid) => format!("{channel}:{sid}"),
        }
    }
}

/// Why Twilio did not take a message, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwilioError {
    /// Twilio refused the message for good (a 4xx but 401/403): an invalid or non-mobile
    /// number, an opted-out recipient. `code` is Twilio's error code when it sent one.
    #[error("{}", permanent_text(*status, *code, message))]
    Permanent {
        status: u16,
        code: Option<i64>,
        message: String,
    },
    /// Twilio did not take the request and nothing was created: a 429 (or 408), or a
    /// connection that could not be made. Safe to send again after the backoff. From
    /// [`Twilio::find_sent`]: the look-up itself failed, try it again later.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The request may have reached Twilio and Twilio may have created the message, but its
    /// answer was not read: a timeout after connecting, a connection reset or an unreadable
    /// answer after the request was written, or a 5xx. Never re-send blindly: look the
    /// message up with [`Twilio::find_sent`] first. From [`Twilio::find_sent`]: the look-up
    /// read every page it may read without ruling the message out.
    #[error("{message}")]
    Unconfirmed {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The message cannot be sent as configured (no sender for its channel).
    #[error("{0}")]
    NotConfigured(String),
    /// Twilio refused Herald's credentials (401, or 403 for a suspended account or a token
    /// without permission): nothing is wrong with the message, and every other message
    /// would be refused alike until the credentials are fixed.
    #[error("twilio refused Herald's credentials ({}): {message}", status_text(*status, *code))]
    CredentialsRefused {
        status: u16,
        code: Option<i64>,
        message: String,
    },
}

fn status_text(status: u16, code: Option<i64>) -> String {
    match code {
        Some(code) => format!("HTTP {status}, error {code}"),
        None => format!("HTTP {status}"),
    }
}

fn permanent_text(status: u16, code: Option<i64>, message: &str) -> String {
    match code {
        Some(code) => format!("twilio error {code}: {message} (HTTP {status})"),
        None => format!("twilio refused with HTTP {status}: {message}"),
    }
}

/// What happened to a message that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Twilio accepted it; its message SID (`SM…`), when the answer could be read.
    Sent { sid: Option<String> },
    /// Sandbox mode: logged, not sent.
    Sandboxed,
}

/// One message to send.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The recipient's E.164 number, without any channel prefix.
    pub to: &'a str,
    pub channel: Channel,
    pub body: &'a str,
    /// Who sends it: the account's own sender ([`Twilio::sender_for`]); `None` sends from
    /// the platform's default sender.
    pub sender: Option<&'a Sender>,
    /// The message's effect: carried in the status callback URL (`?effect_id=`), so a
    /// callback finds its message even before the SID is recorded. Twilio signs the whole
    /// URL, query included, so the id cannot be forged.
    pub effect_id: uuid::Uuid,
}

#[derive(Clone)]
struct Credentials {
    account_sid: String,
    auth_token: SecretString,
}

/// Sends SMS and WhatsApp messages through Twilio, or records them in sandbox mode.
#[derive(Clone)]
pub struct Twilio {
    http: reqwest::Client,
    credentials: Option<Credentials>,
    /// The API root without a trailing `/`; Twilio's `next_page_uri` paths go after it.
    base_url: String,
    messages_url: String,
    sms_from: String,
    whatsapp_from: String,
    messaging_service_sid: String,
    status_callback: Option<String>,
    timeout: Duration,
    sms_per_second: u32,
    whatsapp_per_second: u32,
}

impl Twilio {
    /// Builds the client from validated configuration.
    pub fn new(config: &TwilioConfig) -> Result<Self, TwilioError> {
        let timeout = Duration::from_secs(config.timeout_secs);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|err| TwilioError::NotConfigured(format!("HTTP client: {err}")))?;
        let credentials = (!config.is_sandbox()).then(|| Credentials {
            account_sid: config.account_sid.trim().to_owned(),
            auth_token: config.auth_token.clone(),
        });
        let base = config.base_url.as_str().trim_end_matches('/');
        let account = credentials
            .as_ref()
            .map_or("sandbox", |credentials| credentials.account_sid.as_str());
        let public = config.public_base_url.trim().trim_end_matches('/');
        Ok(Self {
            http,
            messages_url: format!("{base}/2010-04-01/Accounts/{account}/Messages.json"),
            base_url: base.to_owned(),
            credentials,
            sms_from: config.sms_from.trim().to_owned(),
            whatsapp_from: config.whatsapp_from.trim().to_owned(),
            messaging_service_sid: config.messaging_service_sid.trim().to_owned(),
            status_callback: (!public.is_empty())
                .then(|| format!("{public}{STATUS_CALLBACK_PATH}")),
            timeout,
            sms_per_second: config.sms_per_second,
            whatsapp_per_second: config.whatsapp_per_second,
        })
    }

    /// True in sandbox mode.
    pub fn is_sandbox(&self) -> bool {
        self.credentials.is_none()
    }

    /// The longest one request may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Who sends on `channel`: the Messaging Service when configured, else the channel's
    /// number. `None` when neither is configured.
    pub fn sender(&self, channel: Channel) -> Option<Sender> {
        if !self.messaging_service_sid.is_empty() {
            return Some(Sender::MessagingService(self.messaging_service_sid.clone()));
        }
        let from = match channel {
            Channel::Sms => &self.sms_from,
            Channel::Whatsapp => &self.whatsapp_from,
        };
        (!from.is_empty()).then(|| Sender::From(channel.address(from)))
    }

    /// Who sends an account's messages on `channel`: its own Messaging Service, else its own
    /// number for the channel, else the platform's default sender ([`Self::sender`]).
    pub fn sender_for(&self, channel: Channel, own: &AccountSenders) -> Option<Sender> {
        if let Some(service) = &own.messaging_service_sid {
            return Some(Sender::MessagingService(service.clone()));
        }
        let number = match channel {
            Channel::Sms => &own.sms_from,
            Channel::Whatsapp => &own.whatsapp_from,
        };
        match number {
            Some(number) => Some(Sender::From(channel.address(number))),
            None => self.sender(channel),
        }
    }

    /// Messages per second allowed for one sender on `channel`.
    pub fn per_second(&self, channel: Channel) -> u32 {
        match channel {
            Channel::Sms => self.sms_per_second,
            Channel::Whatsapp => self.whatsapp_per_second,
        }
    }

    /// Sends one message; returns Twilio's message SID.
    pub async fn send(&self, message: Outgoing<'_>) -> Result<Delivery, TwilioError> {
        let Some(credentials) = &self.credentials else {
            tracing::info!(to = %message.to, channel = %message.channel, "sandbox: message not sent");
            return Ok(Delivery::Sandboxed);
        };
        let sender = message
            .sender
            .cloned()
            .or_else(|| self.sender(message.channel));
        let sender = sender.ok_or_else(|| {
            TwilioError::NotConfigured(format!(
                "no {} sender: set twilio.{}_from or twilio.messaging_service_sid",
                message.channel, message.channel
            ))
        })?;
        let to = message.channel.address(message.to);
        let mut form: Vec<(&str, &str)> = vec![("To", &to), ("Body", message.body)];
        match &sender {
            Sender::From(from) => form.push(("From", from)),
            Sender::MessagingService(sid) => form.push(("MessagingServiceSid", sid)),
        }
        let callback = self
            .status_callback
            .as_ref()
            .map(|callback| format!("{callback}?effect_id={}", message.effect_id));
        if let Some(callback) = &callback {
            form.push(("StatusCallback", callback));
        }
        let response = self
            .http
            .post(&self.messages_url)
            .basic_auth(
                &credentials.account_sid,
                Some(credentials.auth_token.expose_secret()),
            )
            .form(&form)
            .send()
            .await
            .map_err(|err| request_error("twilio request failed", &err))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = match response.bytes().await {
            Ok(body) => body,
            // A 2xx status line already says Twilio accepted the message: retrying would send
            // it twice, so it counts as sent even if the body cannot be read.
            Err(_) if status.is_success() => return Ok(Delivery::Sent { sid: None }),
            // Otherwise the status line alone decides (a 5xx stays unconfirmed).
            Err(err) => {
                let text = format!("answer unreadable: {}", error_chain(&err));
                return Err(refusal(status, retry_after, None, text));
            }
        };
        classify(status, retry_after, &body)
    }
}

/// A request that got no answer: `Retryable` when it was never written (no connection could
/// be made), else `Unconfirmed` (a timeout or reset once connected may come after Twilio read
/// the request).
fn request_error(what: &str, err: &reqwest::Error) -> TwilioError {
    let message = format!("{what}: {}", error_chain(err));
    if err.is_connect() || err.is_builder() {
        TwilioError::Retryable {
            message,
            retry_after: None,
        }
    } else {
        TwilioError::Unconfirmed {
            message,
            retry_after: None,
        }
    }
}

/// Twilio's answer body: a created message, or an error.
#[derive(Debug, Deserialize)]
struct Answer {
    sid: Option<String>,
    code: Option<i64>,
    message: Option<String>,
}

/// Turns Twilio's answer into a delivery or a classified error.
fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Delivery, TwilioError> {
    let answer: Option<Answer> = serde_json::from_slice(body).ok();
    if status.is_success() {
        let sid = answer.and_then(|answer| answer.sid);
        if sid.is_none() {
            // Twilio has the message; retrying would send it twice. Record it as sent.
            tracing::warn!(%status, "twilio accepted a message but its answer has no sid");
        }
        return Ok(Delivery::Sent { sid });
    }
    Err(error_answer(status, retry_after, answer, body))
}

/// The error for a non-2xx answer with a body: Twilio's code and message when it sent its
/// JSON error, else the start of the body.
fn error_answer(
    status: StatusCode,
    retry_after: Option<Duration>,
    answer: Option<Answer>,
    body: &[u8],
) -> TwilioError {
    let (code, text) = match answer {
        Some(Answer {
            code,
            message: Some(message),
            ..
        }) => (code, message),
        _ => (None, snippet(body)),
    };
    refusal(status, retry_after, code, text)
}

/// The error for a non-2xx answer, from its status line (and Twilio's code and text).
fn refusal(
    status: StatusCode,
    retry_after: Option<Duration>,
    code: Option<i64>,
    text: String,
) -> TwilioError {
    let answered = || {
        let code = code.map(|code| format!(" {code}")).unwrap_or_default();
        format!("twilio answered HTTP {}{code}: {text}", status.as_u16())
    };
    // 429 and 408 say Twilio did not take the request.
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT {
        return TwilioError::Retryable {
            message: answered(),
            retry_after,
        };
    }
    // A 5xx may come from a layer behind the one that created the message.
    if status.is_server_error() {
        return TwilioError::Unconfirmed {
            message: answered(),
            retry_after,
        };
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return TwilioError::CredentialsRefused {
            status: status.as_u16(),
            code,
            message: text,
        };
    }
    TwilioError::Permanent {
        status: status.as_u16(),
        code,
        message: text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TwilioConfig {
        TwilioConfig {
            base_url: "https://api.twilio.com/".parse().unwrap(),
            account_sid: "AC0123456789abcdef0123456789abcdef".to_owned(),
            auth_token: SecretString::from("token"),
            sms_from: "+15005550006".to_owned(),
            whatsapp_from: "+14155238886".to_owned(),
            messaging_service_sid: String::new(),
            public_base_url: "https://herald.example.com/".to_owned(),
            timeout_secs: 10,
            auth_failure_retry_secs: 60,
            sms_per_second: 1,
            whatsapp_per_second: 10,
            reply_window_secs: 604_800,
        }
    }

    #[test]
    fn the_url_and_callback_are_built_from_the_configuration() {
        let twilio = Twilio::new(&config()).unwrap();
        assert_eq!(
            twilio.messages_url,
            "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json"
        );
        assert_eq!(
            twilio.status_callback.as_deref(),
            Some("https://herald.example.com/webhooks/twilio/status")
        );
        assert!(!twilio.is_sandbox());
    }

    #[test]
    fn whatsapp_numbers_get_the_prefix_once() {
        assert_eq!(Channel::Whatsapp.address("+1555"), "whatsapp:+1555");
        assert_eq!(
            Channel::Whatsapp.address("whatsapp:+1555"),
            "whatsapp:+1555"
        );
        assert_eq!(Channel::Sms.address("+1555"), "+1555");
        let twilio = Twilio::new(&config()).unwrap();
        assert_eq!(
            twilio.sender(Channel::Whatsapp),
            Some(Sender::From("whatsapp:+14155238886".to_owned()))
        );
    }

    #[test]
    fn a_messaging_service_sends_on_both_channels_and_is_its_own_rate_key() {
        let mut config = config();
        config.messaging_service_sid = "MG0123456789abcdef0123456789abcdef".to_owned();
        config.sms_from = String::new();
        let twilio = Twilio::new(&config).unwrap();
        let sender = twilio.sender(Channel::Sms).unwrap();
        assert_eq!(
            sender,
            Sender::MessagingService("MG0123456789abcdef0123456789abcdef".to_owned())
        );
        assert_eq!(
            sender.rate_key(Channel::Sms),
            "sms:MG0123456789abcdef0123456789abcdef"
        );
    }

    #[test]
    fn a_channel_without_a_sender_has_none() {
        let mut config = config();
        config.whatsapp_from = String::new();
        let twilio = Twilio::new(&config).unwrap();
        assert_eq!(twilio.sender(Channel::Whatsapp), None);
    }

    #[test]
    fn a_created_message_yields_its_sid() {
        let body = br#"{"sid":"SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","status":"queued"}"#;
        assert_eq!(
            classify(StatusCode::CREATED, None, body),
            Ok(Delivery::Sent {
                sid: Some("SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_owned())
            })
        );
    }

    #[test]
    fn a_twilio_4xx_is_permanent_and_keeps_code_and_message() {
        let body = br#"{"code":21211,"message":"The 'To' number +1 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#;
        let err = classify(StatusCode::BAD_REQUEST, None, body).unwrap_err();
        assert_eq!(
            err,
            TwilioError::Permanent {
                status: 400,
                code: Some(21211),
                message: "The 'To' number +1 is not a valid phone number.".to_owned()
            }
        );
        assert_eq!(
            err.to_string(),
            "twilio error 21211: The 'To' number +1 is not a valid phone number. (HTTP 400)"
        );
    }

    #[test]
    fn a_401_or_403_refuses_the_credentials_not_the_message() {
        let err = classify(StatusCode::UNAUTHORIZED, None, b"nope").unwrap_err();
        assert!(matches!(
            err,
            TwilioError::CredentialsRefused {
                status: 401,
                code: None,
                ..
            }
        ));
        let body = br#"{"code":20003,"message":"Authenticate","status":403}"#;
        let err = classify(StatusCode::FORBIDDEN, None, body).unwrap_err();
        assert_eq!(
            err.to_string(),
            "twilio refused Herald's credentials (HTTP 403, error 20003): Authenticate"
        );
    }

    #[test]
    fn throttling_is_retryable_with_retry_after() {
        let body = br#"{"code":20429,"message":"Too Many Requests","status":429}"#;
        let err = classify(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(3)),
            body,
        )
        .unwrap_err();
        assert_eq!(
            err,
            TwilioError::Retryable {
                message: "twilio answered HTTP 429 20429: Too Many Requests".to_owned(),
                retry_after: Some(Duration::from_secs(3)),
            }
        );
        let err = classify(StatusCode::REQUEST_TIMEOUT, None, b"").unwrap_err();
        assert!(matches!(err, TwilioError::Retryable { .. }), "{err:?}");
    }

    #[test]
    fn a_server_error_may_have_created_the_message_so_it_is_unconfirmed() {
        let err = classify(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(Duration::from_secs(5)),
            b"<html>upstream failed</html>",
        )
        .unwrap_err();
        assert_eq!(
            err,
            TwilioError::Unconfirmed {
                message: "twilio answered HTTP 503: <html>upstream failed</html>".to_owned(),
                retry_after: Some(Duration::from_secs(5)),
            }
        );
        let err = classify(StatusCode::INTERNAL_SERVER_ERROR, None, b"").unwrap_err();
        assert!(matches!(err, TwilioError::Unconfirmed { .. }), "{err:?}");
    }
}
