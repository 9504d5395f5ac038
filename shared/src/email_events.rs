//! SendGrid's two webhooks, checked and parsed without I/O: the signed Event Webhook (what
//! happened to an e-mail Herald sent) and Inbound Parse (an e-mail sent to a reply address:
//! a reply, an automatic reply or a delivery report).
//!
//! - [`EventWebhookKey`] checks the ECDSA P-256 / SHA-256 signature SendGrid puts on each
//!   Event Webhook POST, over the timestamp header followed by the body;
//! - [`parse_events`] reads the body: a JSON array of events, each naming its e-mail by the
//!   `effect_id` Herald sent as a custom argument;
//! - [`classify`] (the `headers` field) and [`classify_raw`] (the `email` field in raw mode)
//!   read an inbound e-mail's threading headers and tell replies from automatic replies and
//!   delivery reports; [`message_ids_in`] finds the returned Message-IDs in a report's `text`.
//!
//! The routes that receive them, and what is recorded, are the API's.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Utc};
use mailparse::{MailHeader, MailHeaderMap, ParsedMail};
use p256::ecdsa::signature::DigestVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Standard base64, padded or not (SendGrid pads; a key pasted by hand may have lost it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

// ---------------------------------------------------------------------------------------------
// Signed Event Webhook
// ---------------------------------------------------------------------------------------------

/// The public key that checks SendGrid's Event Webhook signatures ("Verification Key" on
/// SendGrid's Signed Event Webhook settings).
#[derive(Debug, Clone)]
pub struct EventWebhookKey {
    key: VerifyingKey,
}

/// Why a configured Event Webhook key is unusable.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the event webhook public key is empty")]
    Empty,
    #[error("the event webhook public key is not base64: {0}")]
    NotBase64(#[source] base64::DecodeError),
    #[error(
        "the event webhook public key is not an ECDSA P-256 public key (expected base64 of a DER \
         SubjectPublicKeyInfo, as SendGrid shows it, e.g. `MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE…`): {0}"
    )]
    NotP256(String),
}

impl EventWebhookKey {
    /// Reads the key as SendGrid shows it: base64 of the DER SubjectPublicKeyInfo.
    /// Whitespace anywhere (a wrapped paste) and PEM armour lines are ignored.
    pub fn parse(base64_der: &str) -> Result<Self, KeyError> {
        let compact: String = base64_der
            .lines()
            .filter(|line| !line.trim_start().starts_with("-----"))
            .flat_map(str::chars)
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        if compact.is_empty() {
            return Err(KeyError::Empty);
        }
        let der = BASE64.decode(compact).map_err(KeyError::NotBase64)?;
        let key = VerifyingKey::from_public_key_der(&der)
            .map_err(|err| KeyError::NotP256(err.to_string()))?;
        Ok(Self { key })
    }

    /// Whether `signature_b64` (the `X-Twilio-Email-Event-Webhook-Signature` header: base64
    /// of a DER ECDSA signature) signs `timestamp` (the `X-Twilio-Email-Event-Webhook-Timestamp`
    /// header, as sent) followed by `body` (the raw request body). False for any malformed
    /// input.
    pub fn verify(&self, timestamp: &str, body: &[u8], signature_b64: &str) -> bool {
        let Ok(der) = BASE64.decode(signature_b64.trim()) else {
            return false;
        };
        let Ok(signature) = Signature::from_der(&der) else {
            return false;
        };
        // either S is accepted: SendGrid does not normalise its signatures to low S
        let digest = Sha256::new()
            .chain_update(timestamp.as_bytes())
            .chain_update(body);
        self.key.verify_digest(digest, &signature).is_ok()
    }
}

/// Signing as SendGrid does, for tests (here and in the API's) that post signed events.
/// Not for production use: Herald never signs events.
#[doc(hidden)]
pub mod testing {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use p256::ecdsa::signature::DigestSigner;
    use p256::ecdsa::{Signature, SigningKey};
    use sha2::{Digest, Sha256};

    /// DER SubjectPublicKeyInfo of a P-256 key up to its point: SEQUENCE { SEQUENCE {
    /// id-ecPublicKey, prime256v1 }, BIT STRING (66 bytes, no unused bits) }.
    const SPKI_PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];

    /// A private key that signs Event Webhook requests.
    #[derive(Debug, Clone)]
    pub struct TestSigningKey(SigningKey);

    /// A new random key pair: the public key as SendGrid shows it (base64 of the DER
    /// SubjectPublicKeyInfo, for `sendgrid.event_webhook_public_key`), and the private key.
    pub fn key_pair() -> (String, TestSigningKey) {
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        (public_key_b64(&key), TestSigningKey(key))
    }

    /// The `X-Twilio-Email-Event-Webhook-Signature` header for this timestamp header and body.
    pub fn sign(key: &TestSigningKey, timestamp: &str, body: &[u8]) -> String {
        let digest = Sha256::new()
            .chain_update(timestamp.as_bytes())
            .chain_update(body);
        let signature: Signature = key.0.sign_digest(digest);
        STANDARD.encode(signature.to_der().as_bytes())
    }

    pub(super) fn public_key_b64(key: &SigningKey) -> String {
        let point = key.verifying_key().to_encoded_point(false);
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(point.as_bytes());
        STANDARD.encode(der)
    }
}

// ---------------------------------------------------------------------------------------------
// Event Webhook body
// ---------------------------------------------------------------------------------------------

/// One event about one e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// SendGrid's id for the event: the same event posted again has the same id.
    pub sg_event_id: String,
    pub kind: EventKind,
    /// The recipient, as SendGrid sent it.
    pub email: String,
    /// The `effect_id` custom argument Herald sent the e-mail with; `None` when absent or not
    /// a UUID (an e-mail sent by something else on the same SendGrid account).
    pub effect_id: Option<Uuid>,
    /// When it happened (`timestamp`, unix seconds).
    pub timestamp: Option<DateTime<Utc>>,
    /// `reason` (bounces, drops); for a deferral, the remote server's `response`.
    pub reason: Option<String>,
}

/// What happened, as far as Herald cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Processed,
    Delivered,
    Deferred,
    Dropped,
    /// `bounce` with `type` `bounce`, or with no `type`: the address does not take mail.
    HardBounce,
    /// `bounce` with `type` `blocked`: refused this time (reputation, content, rate).
    SoftBounce,
    SpamReport,
    /// `unsubscribe`, or `group_unsubscribe` (from one unsubscribe group): either way the
    /// recipient asked to be sent no more.
    Unsubscribe,
    /// Any other event (`open`, `click`, `group_resubscribe`, …), by its name.
    Other(String),
}

/// Why an Event Webhook body is not SendGrid's event JSON.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("the body is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the body is not a JSON array of events")]
    NotAnArray,
    #[error("events[{index}] is not an object")]
    NotAnObject { index: usize },
    #[error("events[{index}].{field} is missing")]
    Missing { index: usize, field: &'static str },
    #[error("events[{index}].{field} is not a string")]
    NotAString { index: usize, field: &'static str },
}

/// Reads an Event Webhook body. Every event needs a non-empty `sg_event_id`, `event` and
/// `email` (the error names the first one without); other fields are read when usable and
/// ignored otherwise, as are fields Herald does not know.
pub fn parse_events(body: &[u8]) -> Result<Vec<Event>, EventsError> {
    let Value::Array(items) = serde_json::from_slice(body)? else {
        return Err(EventsError::NotAnArray);
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| parse_event(index, item))
        .collect()
}

fn parse_event(index: usize, item: &Value) -> Result<Event, EventsError> {
    let Value::Object(fields) = item else {
        return Err(EventsError::NotAnObject { index });
    };
    let required = |field: &'static str| match fields.get(field) {
        None | Some(Value::Null) => Err(EventsError::Missing { index, field }),
        Some(Value::String(text)) if text.trim().is_empty() => {
            Err(EventsError::Missing { index, field })
        }
        Some(Value::String(text)) => Ok(text.trim().to_owned()),
        Some(_) => Err(EventsError::NotAString { index, field }),
    };
    let sg_event_id = required("sg_event_id")?;
    let name = required("event")?;
    let email = required("email")?;
    let kind = event_kind(&name, fields);
    let reason = optional_text(fields, "reason").or_else(|| {
        (kind == EventKind::Deferred)
            .then(|| optional_text(fields, "response"))
            .flatten()
    });
    Ok(Event {
        sg_event_id,
        email,
        effect_id: optional_text(fields, "effect_id").and_then(|id| Uuid::parse_str(&id).ok()),
        timestamp: fields.get("timestamp").and_then(unix_time),
        reason,
        kind,
    })
}

fn event_kind(name: &str, fields: &Map<String, Value>) -> EventKind {
    match name {
        "processed" => EventKind::Processed,
        "delivered" => EventKind::Delivered,
        "deferred" => EventKind::Deferred,
        "dropped" => EventKind::Dropped,
        "bounce" => match optional_text(fields, "type") {
            Some(kind) if kind.eq_ignore_ascii_case("blocked") => EventKind::SoftBounce,
            _ => EventKind::HardBounce,
        },
        "spamreport" => EventKind::SpamReport,
        "unsubscribe" | "group_unsubscribe" => EventKind::Unsubscribe,
        other => EventKind::Other(other.to_owned()),
    }
}

/// A string field, trimmed; `None` when absent, empty or not a string.
fn optional_text(fields: &Map<String, Value>, field: &str) -> Option<String> {
    let text = fields.get(field)?.as_str()?.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Unix seconds, as a number (SendGrid's) or a string of digits.
fn unix_time(value: &Value) -> Option<DateTime<Utc>> {
    let secs = match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }?;
    DateTime::from_timestamp(secs, 0)
}

// ---------------------------------------------------------------------------------------------
// Inbound Parse
// ---------------------------------------------------------------------------------------------

/// What an inbound e-mail's headers say about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboundHeaders {
    /// Its own `Message-ID`, angle brackets kept.
    pub message_id: Option<String>,
    /// Every `<…>` id in `In-Reply-To`, in order.
    pub in_reply_to: Vec<String>,
    /// Every `<…>` id in `References`, in order (oldest first, as written).
    pub references: Vec<String>,
    /// The `From` address alone, lowercased.
    pub from: Option<String>,
    /// `Subject`, RFC 2047 words decoded.
    pub subject: Option<String>,
    /// Sent by a machine in answer (RFC 3834 `Auto-Submitted` other than `no`, `X-Autoreply`,
    /// `X-Autorespond`, or `Precedence: auto_reply | bulk | junk`): not a person's reply.
    pub auto_reply: bool,
    /// A `multipart/report` (mostly a delivery status notification: a bounce).
    pub delivery_report: bool,
    /// For a delivery report read whole ([`classify_raw`]): the Message-IDs of the returned
    /// message (its `message/rfc822` or `text/rfc822-headers` part, or `Original-Message-ID`),
    /// which name the e-mail that bounced. Empty otherwise.
    pub bounced_message_ids: Vec<String>,
}

/// Reads Inbound Parse's `headers` field: the received e-mail's raw header block. Anything
/// unreadable gives the empty answer (no ids, not automatic, not a report).
pub fn classify(headers_raw: &str) -> InboundHeaders {
    match mailparse::parse_headers(headers_raw.trim_start().as_bytes()) {
        Ok((headers, _)) => classify_headers(&headers),
        Err(_) => InboundHeaders::default(),
    }
}

/// Reads a whole message (Inbound Parse's `email` field in raw mode); for a delivery report
/// also the returned message's ids ([`InboundHeaders::bounced_message_ids`]).
pub fn classify_raw(email: &[u8]) -> InboundHeaders {
    let Ok(mail) = mailparse::parse_mail(email.trim_ascii_start()) else {
        return InboundHeaders::default();
    };
    let mut classified = classify_headers(&mail.headers);
    if classified.delivery_report {
        classified.bounced_message_ids = returned_message_ids(&mail);
    }
    classified
}

/// The ids on `Message-ID:` (and `Original-Message-ID:`) lines of a text block, in order,
/// once each: for the `text` field of a delivery report, which usually quotes the returned
/// message's headers. Lines may be indented or quoted with `>`; an id on the next (folded)
/// line is found too.
pub fn message_ids_in(text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let line = line.trim_start_matches(|c: char| c == '>' || c.is_whitespace());
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !is_message_id_field(name) {
            continue;
        }
        let mut found = angle_ids(value);
        if found.is_empty()
            && value.trim().is_empty()
            && let Some(next) = lines.next_if(|next| next.starts_with([' ', '\t']))
        {
            found = angle_ids(next);
        }
        push_new(&mut ids, found);
    }
    ids
}

fn classify_headers(headers: &[MailHeader<'_>]) -> InboundHeaders {
    let ids_in = |name: &str| -> Vec<String> {
        headers
            .get_all_values(name)
            .iter()
            .flat_map(|value| angle_ids(value))
            .collect()
    };
    let first_token = |name: &str| -> Option<String> {
        let value = headers.get_first_value(name)?;
        let token = value
            .trim()
            .split(|c: char| c.is_whitespace() || c == ';' || c == '(')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        Some(token)
    };
    let auto_submitted = first_token("Auto-Submitted").is_some_and(|value| value != "no");
    let precedence = first_token("Precedence")
        .is_some_and(|value| matches!(value.as_str(), "auto_reply" | "bulk" | "junk"));
    let autoreply_header = headers.get_first_header("X-Autoreply").is_some()
        || headers.get_first_header("X-Autorespond").is_some();
    let delivery_report = headers
        .get_first_value("Content-Type")
        .is_some_and(|value| mailparse::parse_content_type(&value).mimetype == "multipart/report");
    InboundHeaders {
        message_id: headers.get_first_value("Message-ID").and_then(|value| {
            let value = value.trim();
            angle_ids(value).into_iter().next().or_else(|| {
                // a bare id (no brackets), as some mailers write it
                (!value.is_empty() && !value.contains(char::is_whitespace))
                    .then(|| format!("<{value}>"))
            })
        }),
        in_reply_to: ids_in("In-Reply-To"),
        references: ids_in("References"),
        from: headers.get_first_header("From").and_then(from_address),
        subject: headers
            .get_first_value("Subject")
            .map(|subject| subject.trim().to_owned())
            .filter(|subject| !subject.is_empty()),
        auto_reply: auto_submitted || precedence || autoreply_header,
        delivery_report,
        bounced_message_ids: Vec::new(),
    }
}

/// The first address of a `From` header, lowercased.
fn from_address(header: &MailHeader<'_>) -> Option<String> {
    let parsed = mailparse::addrparse_header(header).ok()?;
    let addr = parsed.iter().find_map(|addr| match addr {
        mailparse::MailAddr::Single(single) => Some(single.addr.clone()),
        mailparse::MailAddr::Group(group) => group.addrs.first().map(|single| single.addr.clone()),
    })?;
    let addr = addr.trim().to_lowercase();
    (!addr.is_empty()).then_some(addr)
}

/// The Message-IDs of the message a delivery report returns, in order, once each.
fn returned_message_ids(mail: &ParsedMail<'_>) -> Vec<String> {
    let mut ids = Vec::new();
    for part in mail.parts() {
        let Ok(body) = part.get_body_raw() else {
            continue;
        };
        match part.ctype.mimetype.as_str() {
            // the returned message (or its headers); `global` ones are RFC 6533's UTF-8 forms
            "message/rfc822"
            | "text/rfc822-headers"
            | "message/rfc822-headers"
            | "message/global"
            | "message/global-headers" => {
                let found = match mailparse::parse_headers(body.trim_ascii_start()) {
                    Ok((headers, _)) => headers
                        .get_all_values("Message-ID")
                        .iter()
                        .flat_map(|value| angle_ids(value))
                        .collect(),
                    Err(_) => message_ids_in(&String::from_utf8_lossy(&body)),
                };
                push_new(&mut ids, found);
            }
            // status fields; some reporters name the original by `Original-Message-ID`
            "message/delivery-status" | "message/global-delivery-status" => {
                push_new(&mut ids, message_ids_in(&String::from_utf8_lossy(&body)));
            }
            _ => {}
        }
    }
    ids
}

fn is_message_id_field(name: &str) -> bool {
    let name = name.trim();
    name.eq_ignore_ascii_case("Message-ID") || name.eq_ignore_ascii_case("Original-Message-ID")
}

/// Every `<…>` token in a header value, brackets kept; an empty one or one with whitespace
/// inside (a comment such as `<your message of …>`) is not an id.
fn angle_ids(value: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            break;
        };
        let inner = &after[..close];
        if let Some(nested) = inner.rfind('<') {
            // `<<id>`: start again from the innermost `<`
            rest = &after[nested..];
            continue;
        }
        if !inner.is_empty() && !inner.contains(char::is_whitespace) {
            ids.push(format!("<{inner}>"));
        }
        rest = &after[close + 1..];
    }
    ids
}

fn push_new(ids: &mut Vec<String>, found: Vec<String>) {
    for id in found {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use p256::ecdsa::SigningKey;

    use super::testing::{key_pair, sign};
    use super::*;

    const TIMESTAMP: &str = "1765443600";
    const BODY: &[u8] = br#"[{"email":"carol@example.org","event":"delivered","sg_event_id":"ZGVsaXZlcmVkLTAtMjk","timestamp":1765443590}]"#;

    fn key_of(public: &str) -> EventWebhookKey {
        EventWebhookKey::parse(public).unwrap()
    }

    // --- signatures -------------------------------------------------------------------------

    #[test]
    fn verify_accepts_a_signature_over_the_timestamp_then_the_body() {
        let (public, private) = key_pair();
        let signature = sign(&private, TIMESTAMP, BODY);
        assert!(key_of(&public).verify(TIMESTAMP, BODY, &signature));
        // header values may arrive with surrounding whitespace
        assert!(key_of(&public).verify(TIMESTAMP, BODY, &format!(" {signature}\t")));
    }

    #[test]
    fn verify_rejects_an_altered_body() {
        let (public, private) = key_pair();
        let signature = sign(&private, TIMESTAMP, BODY);
        let mut altered = BODY.to_vec();
        altered[20] ^= 1;
        assert!(!key_of(&public).verify(TIMESTAMP, &altered, &signature));
        assert!(!key_of(&public).verify(TIMESTAMP, &BODY[..BODY.len() - 1], &signature));
        assert!(!key_of(&public).verify(TIMESTAMP, b"", &signature));
    }

    #[test]
    fn verify_rejects_an_altered_timestamp() {
        let (public, private) = key_pair();
        let signature = sign(&private, TIMESTAMP, BODY);
        let key = key_of(&public);
        assert!(!key.verify("1765443601", BODY, &signature));
        assert!(!key.verify("", BODY, &signature));
        // the split between timestamp and body is not signed, only their concatenation
        let moved = [b"0".as_slice(), BODY].concat();
        assert!(key.verify("176544360", &moved, &signature));
    }

    #[test]
    fn verify_rejects_a_signature_by_another_key() {
        let (public, _) = key_pair();
        let other = SigningKey::from_slice(&[0x11; 32]).unwrap();
        let signature = sign_with(&other, TIMESTAMP, BODY);
        assert!(!key_of(&public).verify(TIMESTAMP, BODY, &signature));
        assert!(key_of(&testing::public_key_b64(&other)).verify(TIMESTAMP, BODY, &signature));
    }

    #[test]
    fn verify_rejects_garbage_and_empty_signatures() {
        let (public, private) = key_pair();
        let key = key_of(&public);
        let good = sign(&private, TIMESTAMP, BODY);
        let truncated = &good[..good.len() - 8];
        let bit_flipped = {
            let mut bytes = BASE64.decode(&good).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            base64::engine::general_purpose::STANDARD.encode(bytes)
        };
        for signature in [
            "",
            "   ",
            "not base64 at all!",
            "AAAA",
            truncated,
            &bit_flipped,
            &format!("{good}causing failure"),
            // a DER SEQUENCE claiming more bytes than there are
            "MEUCIQ==",
        ] {
            assert!(
                !key.verify(TIMESTAMP, BODY, signature),
                "{signature:?} verified"
            );
        }
    }

    /// SendGrid's own published vectors: the key, signature, timestamp and payload of the
    /// tests in its Python and Go libraries (`test/unit/test_eventwebhook.py`,
    /// `helpers/eventwebhook/eventwebhook_test.go`). The Python one has a high S.
    #[test]
    fn verify_accepts_sendgrids_published_examples() {
        let key = key_of(
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==",
        );
        let signature = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=";
        let payload = concat!(
            r#"[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address","#,
            r#""sg_event_id":"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA","#,
            r#""sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0","#,
            r#""smtp-id":"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]"#,
            "\r\n"
        );
        assert!(key.verify("1600112502", payload.as_bytes(), signature));
        assert!(!key.verify("1600112502", payload.trim_end().as_bytes(), signature));
        assert!(!key.verify("timestamp", payload.as_bytes(), signature));
        let events = parse_events(payload.as_bytes()).unwrap();
        assert_eq!(events[0].kind, EventKind::Dropped);
        assert_eq!(events[0].reason.as_deref(), Some("Bounced Address"));

        let key = key_of(
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==",
        );
        let signature = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
        let payload =
            br#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
        assert!(key.verify("1588788367", payload, signature));
        assert!(!key.verify("1588788367", b"this is not the payload", signature));
        // another key of SendGrid's tests
        let bad_key = key_of(
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==",
        );
        assert!(!bad_key.verify("1588788367", payload, signature));
    }

    #[test]
    fn parse_ignores_whitespace_padding_and_pem_armour() {
        let (public, private) = key_pair();
        let signature = sign(&private, TIMESTAMP, BODY);
        let wrapped = format!("  {}\n{}\n", &public[..40], &public[40..]);
        let unpadded = public.trim_end_matches('=');
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{public}\n-----END PUBLIC KEY-----\n");
        for text in [wrapped.as_str(), unpadded, pem.as_str()] {
            assert!(key_of(text).verify(TIMESTAMP, BODY, &signature), "{text:?}");
        }
    }

    #[test]
    fn parse_explains_an_unusable_key() {
        let message = |text: &str| EventWebhookKey::parse(text).unwrap_err().to_string();
        assert_eq!(message(" \n"), "the event webhook public key is empty");
        assert!(message("not*base64").starts_with("the event webhook public key is not base64"));
        assert!(message("AAAA").contains("not an ECDSA P-256 public key"));
        // an Ed25519 SubjectPublicKeyInfo
        let ed25519 = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=";
        assert!(message(ed25519).contains("not an ECDSA P-256 public key"));
    }

    #[test]
    fn key_pair_gives_the_public_key_in_sendgrids_format() {
        let (public, _) = key_pair();
        assert!(
            public.starts_with("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"),
            "{public}"
        );
        assert_eq!(public.len(), 124);
        assert_ne!(key_pair().0, public, "each key pair is new");
    }

    fn sign_with(key: &SigningKey, timestamp: &str, body: &[u8]) -> String {
        use p256::ecdsa::signature::DigestSigner as _;
        let digest = Sha256::new()
            .chain_update(timestamp.as_bytes())
            .chain_update(body);
        let signature: Signature = key.sign_digest(digest);
        base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
    }

    // --- events -----------------------------------------------------------------------------

    const EFFECT: &str = "0193b3e2-7c1a-7d4e-9f00-5a6b7c8d9e0f";

    /// The events of SendGrid's Event Webhook reference, as Herald's e-mails carry them (the
    /// `effect_id` custom argument at the top level).
    fn documented_events() -> String {
        format!(
            r#"[
  {{"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>",
    "event":"processed","category":"cat facts","sg_event_id":"rbtnWrG1DVDGGGFHFyun0A==",
    "sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000",
    "effect_id":"{EFFECT}"}},
  {{"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>",
    "event":"deferred","ip":"168.1.1.1","category":"cat facts","sg_event_id":"t7LEShmowp86DTdUW8M-GQ==",
    "sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000",
    "response":"400 try again later","attempt":"5","tls":1,"effect_id":"{EFFECT}"}},
  {{"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>",
    "event":"delivered","ip":"168.1.1.1","category":"cat facts","sg_event_id":"rWVYmVk90MjZJ9iohOBa3w==",
    "sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000",
    "response":"250 OK","tls":1,"effect_id":"{EFFECT}"}},
  {{"email":"example@test.com","timestamp":1513299569,"event":"open","sg_machine_open":false,
    "category":"cat facts","sg_event_id":"FOTFFO0ecsBE-zxFXfs6WA==",
    "sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000",
    "useragent":"Mozilla/4.0 (compatible; MSIE 6.1; Windows XP; .NET CLR 1.1.4322; .NET CLR 2.0.50727)",
    "ip":"255.255.255.255","effect_id":"{EFFECT}"}},
  {{"email":"example@test.com","timestamp":1513299569,"event":"click","category":"cat facts",
    "sg_event_id":"kCAi1KttyQdEKHhdC-nuEA==",
    "sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000",
    "useragent":"Mozilla/4.0","ip":"255.255.255.255","url":"http://www.sendgrid.com/","effect_id":"{EFFECT}"}},
  {{"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>",
    "bounce_classification":"Invalid Address","event":"bounce","ip":"168.1.1.1","category":"cat facts",
    "sg_event_id":"6g4ZI7SA-xmRDv57GoPIPw==",
    "sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000",
    "reason":"500 unknown recipient","status":"5.0.0","type":"bounce","effect_id":"{EFFECT}"}},
  {{"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>",
    "bounce_classification":"Reputation","event":"bounce","ip":"168.1.1.1","sg_event_id":"8y0ZI7SA-xmRDv57GoPIPw==",
    "sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000",
    "reason":"550 5.7.1 Service unavailable; client host blocked using Spamhaus","status":"5.7.1",
    "type":"blocked","effect_id":"{EFFECT}"}},
  {{"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>",
    "event":"dropped","category":"cat facts","sg_event_id":"zmzJhfJgAfUSOW80yEbPyw==",
    "sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000",
    "reason":"Bounced Address","status":"5.0.0","effect_id":"{EFFECT}"}},
  {{"email":"example@test.com","timestamp":1513299569,"event":"spamreport","sg_event_id":"Krfn-yDfsGJmgqJ0Vdmc4A==",
    "sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000",
    "effect_id":"{EFFECT}"}},
  {{"email":"example@test.com","timestamp":1513299569,"event":"unsubscribe","category":"cat facts",
    "sg_event_id":"G6NRn2wgy6AhPuCnROOPYw==",
    "sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000",
    "effect_id":"{EFFECT}"}},
  {{"email":"example@test.com","timestamp":1513299569,"event":"group_unsubscribe","asm_group_id":10,
    "sg_event_id":"ahSCB7xYcXFb-hEaawsPRw==","useragent":"Mozilla/4.0","ip":"255.255.255.255",
    "url":"http://www.sendgrid.com/","effect_id":"{EFFECT}"}},
  {{"email":"example@test.com","timestamp":1513299569,"event":"group_resubscribe","asm_group_id":10,
    "sg_event_id":"w_u0vJhLT-OFfprar5N93g==","effect_id":"{EFFECT}"}}
]"#
        )
    }

    #[test]
    fn parse_events_reads_sendgrids_documented_events() {
        let events = parse_events(documented_events().as_bytes()).unwrap();
        let kinds: Vec<EventKind> = events.iter().map(|event| event.kind.clone()).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Processed,
                EventKind::Deferred,
                EventKind::Delivered,
                EventKind::Other("open".into()),
                EventKind::Other("click".into()),
                EventKind::HardBounce,
                EventKind::SoftBounce,
                EventKind::Dropped,
                EventKind::SpamReport,
                EventKind::Unsubscribe,
                EventKind::Unsubscribe,
                EventKind::Other("group_resubscribe".into()),
            ]
        );
        let effect = Uuid::parse_str(EFFECT).unwrap();
        let at = Utc.timestamp_opt(1_513_299_569, 0).unwrap();
        for event in &events {
            assert_eq!(event.email, "example@test.com");
            assert_eq!(event.effect_id, Some(effect));
            assert_eq!(event.timestamp, Some(at));
        }
        assert_eq!(
            events[5],
            Event {
                sg_event_id: "6g4ZI7SA-xmRDv57GoPIPw==".into(),
                kind: EventKind::HardBounce,
                email: "example@test.com".into(),
                effect_id: Some(effect),
                timestamp: Some(at),
                reason: Some("500 unknown recipient".into()),
            }
        );
        assert_eq!(events[0].reason, None);
        // a deferral's reason is the remote server's response; a delivery's is none
        assert_eq!(events[1].reason.as_deref(), Some("400 try again later"));
        assert_eq!(events[2].reason, None);
        assert_eq!(events[7].reason.as_deref(), Some("Bounced Address"));
    }

    #[test]
    fn a_bounce_is_hard_unless_its_type_is_blocked() {
        let kind = |extra: &str| {
            let body = format!(
                r#"[{{"event":"bounce","sg_event_id":"b1","email":"x@example.org"{extra}}}]"#
            );
            parse_events(body.as_bytes()).unwrap()[0].kind.clone()
        };
        assert_eq!(kind(r#","type":"bounce""#), EventKind::HardBounce);
        assert_eq!(kind(""), EventKind::HardBounce);
        assert_eq!(
            kind(r#","bounce_classification":"Invalid Address""#),
            EventKind::HardBounce
        );
        assert_eq!(kind(r#","type":"blocked""#), EventKind::SoftBounce);
        assert_eq!(
            kind(r#","type":"Blocked","status":"4.0.0""#),
            EventKind::SoftBounce
        );
    }

    #[test]
    fn optional_fields_that_are_absent_or_unusable_are_none() {
        let body = br#"[
            {"event":"delivered","sg_event_id":"a","email":"x@example.org"},
            {"event":"delivered","sg_event_id":"b","email":"x@example.org",
             "effect_id":"not-a-uuid","timestamp":"soon","reason":""},
            {"event":"delivered","sg_event_id":"c","email":"x@example.org",
             "effect_id":42,"timestamp":"1513299569","reason":7}
        ]"#;
        let events = parse_events(body).unwrap();
        for event in &events {
            assert_eq!(event.effect_id, None);
            assert_eq!(event.reason, None);
        }
        assert_eq!(events[0].timestamp, None);
        assert_eq!(events[1].timestamp, None);
        assert_eq!(
            events[2].timestamp,
            Some(Utc.timestamp_opt(1_513_299_569, 0).unwrap())
        );
    }

    #[test]
    fn a_missing_required_field_is_named_with_its_index() {
        let error = |body: &str| parse_events(body.as_bytes()).unwrap_err().to_string();
        let ok = r#"{"event":"open","sg_event_id":"a","email":"x@example.org"}"#;
        assert_eq!(
            error(&format!(
                r#"[{ok},{ok},{ok},{{"event":"open","email":"x@example.org"}}]"#
            )),
            "events[3].sg_event_id is missing"
        );
        assert_eq!(
            error(r#"[{"sg_event_id":"a","email":"x@example.org"}]"#),
            "events[0].event is missing"
        );
        assert_eq!(
            error(&format!(
                r#"[{ok},{{"event":"open","sg_event_id":"a","email":" "}}]"#
            )),
            "events[1].email is missing"
        );
        assert_eq!(
            error(r#"[{"event":"open","sg_event_id":"a","email":null}]"#),
            "events[0].email is missing"
        );
        assert_eq!(
            error(r#"[{"event":"open","sg_event_id":12,"email":"x@example.org"}]"#),
            "events[0].sg_event_id is not a string"
        );
        assert_eq!(error(&format!("[{ok}, 3]")), "events[1] is not an object");
        assert_eq!(error(ok), "the body is not a JSON array of events");
        assert!(error("[{").starts_with("the body is not JSON: "));
        assert!(error("").starts_with("the body is not JSON: "));
    }

    #[test]
    fn an_empty_array_is_no_events() {
        assert_eq!(parse_events(b"[]").unwrap(), []);
        assert_eq!(parse_events(b" [ ]\r\n").unwrap(), []);
    }

    // --- inbound ----------------------------------------------------------------------------

    const SENT: &str = "<0b6e2f0c-4d2a-4c41-9a8e-7c3f2f1a9b10@herald.example>";

    #[test]
    fn a_plain_reply_gives_its_thread_sender_and_subject() {
        let headers = format!(
            "Received: by mx.sendgrid.net with SMTP id abc123\r\n\
             \tfor <replies@herald.example>; Thu, 11 Dec 2026 09:14:03 +0000 (UTC)\r\n\
             From: \"Carol Jones\" <Carol.Jones@Example.org>\r\n\
             To: Alice <alice@herald.example>\r\n\
             Subject: Re: Quick question\r\n\
             Date: Thu, 11 Dec 2026 10:14:01 +0100\r\n\
             message-id: <CAF=q8VpXz9@mail.gmail.com>\r\n\
             In-Reply-To: {SENT}\r\n\
             References: <first@herald.example>\r\n\
             \t{SENT}\r\n\
             \x20<third@herald.example>\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/alternative; boundary=\"000000000000b4f1\"\r\n"
        );
        assert_eq!(
            classify(&headers),
            InboundHeaders {
                message_id: Some("<CAF=q8VpXz9@mail.gmail.com>".into()),
                in_reply_to: vec![SENT.into()],
                references: vec![
                    "<first@herald.example>".into(),
                    SENT.into(),
                    "<third@herald.example>".into()
                ],
                from: Some("carol.jones@example.org".into()),
                subject: Some("Re: Quick question".into()),
                auto_reply: false,
                delivery_report: false,
                bounced_message_ids: vec![],
            }
        );
        // Inbound Parse's field uses bare LF and may start with a blank line
        let lf = format!("\n{}", headers.replace("\r\n", "\n"));
        assert_eq!(classify(&lf), classify(&headers));
    }

    #[test]
    fn an_outlook_automatic_reply_is_automatic() {
        let headers = format!(
            "From: Bob Example <Bob.Example@Contoso.com>\n\
             To: Alice <alice@herald.example>\n\
             Subject: Automatic reply: Quick question\n\
             Thread-Topic: Quick question\n\
             Thread-Index: AQHaK1mZ3mV2n5o1E0u8fB3r2T0Q5g==\n\
             Date: Thu, 11 Dec 2026 09:14:03 +0000\n\
             Message-ID: <DB9PR03MB7bc1@DB9PR03MB7.eurprd03.prod.outlook.com>\n\
             References: {SENT}\n\
             In-Reply-To: {SENT}\n\
             X-MS-Has-Attach:\n\
             X-Auto-Response-Suppress: All\n\
             X-MS-Exchange-Inbox-Rules-Loop: Bob.Example@Contoso.com\n\
             Auto-Submitted: auto-replied\n\
             Content-Type: text/plain; charset=\"us-ascii\"\n\
             MIME-Version: 1.0\n"
        );
        let classified = classify(&headers);
        assert!(classified.auto_reply);
        assert!(!classified.delivery_report);
        assert_eq!(classified.in_reply_to, [SENT]);
        assert_eq!(classified.from.as_deref(), Some("bob.example@contoso.com"));
    }

    #[test]
    fn automatic_reply_markers() {
        let auto = |header: &str| classify(&format!("From: a@example.org\n{header}\n")).auto_reply;
        assert!(!auto("Auto-Submitted: no"));
        assert!(!auto("auto-submitted: No (a person wrote this)"));
        assert!(auto("Auto-Submitted: auto-generated"));
        assert!(auto(
            "AUTO-SUBMITTED: Auto-Replied; owner-email=\"bob@example.org\""
        ));
        assert!(auto("X-Autoreply: yes"));
        assert!(auto("X-Autorespond: Out of office"));
        assert!(auto("Precedence: bulk"));
        assert!(auto("Precedence: JUNK"));
        assert!(auto("Precedence: auto_reply"));
        assert!(!auto("Precedence: list"));
        assert!(!auto("X-Auto-Response-Suppress: All"));
        assert!(!auto("Subject: Out of office"));
    }

    #[test]
    fn encoded_words_are_decoded() {
        let classified = classify(
            "From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <Joerg@Example.DE>\r\n\
             Subject: =?UTF-8?B?UmU6IFF1aWNrIHF1ZXN0aW9uIOKAlCDDpMO2w7w=?=\r\n",
        );
        assert_eq!(
            classified.subject.as_deref(),
            Some("Re: Quick question — äöü")
        );
        assert_eq!(classified.from.as_deref(), Some("joerg@example.de"));
        let folded =
            classify("Subject: =?UTF-8?Q?Re:_Caf=C3=A9?=\r\n =?UTF-8?Q?_et_cr=C3=A8me?=\r\n");
        assert_eq!(folded.subject.as_deref(), Some("Re: Café et crème"));
    }

    #[test]
    fn odd_message_ids() {
        let classified = classify(
            "Message-ID: bare-id@example.org\n\
             In-Reply-To: <a@example.org> (Carol's message of Thu)\n\
             References: <<b@example.org> <> <your message of Thu> <c@example.org\n",
        );
        assert_eq!(
            classified.message_id.as_deref(),
            Some("<bare-id@example.org>")
        );
        assert_eq!(classified.in_reply_to, ["<a@example.org>"]);
        assert_eq!(classified.references, ["<b@example.org>"]);
    }

    #[test]
    fn garbage_gives_the_empty_answer() {
        for text in [
            "",
            "\n\n",
            " leading space is a continuation of nothing",
            "not an e-mail at all",
            "\u{0}\u{1}\u{2}:::\r\r\r\n\u{fffd}",
            "Subject: ok\r lone CR\r\n",
        ] {
            let classified = classify(text);
            assert!(
                !classified.auto_reply && !classified.delivery_report,
                "{text:?}"
            );
            assert!(classified.in_reply_to.is_empty() && classified.references.is_empty());
            assert_eq!(classified.from, None);
        }
        for bytes in [
            b"".as_slice(),
            b"\xff\xfe\x00garbage",
            b"Content-Type: multipart/report; boundary=\"x\"\n\n--x\nContent-Type: message/rfc822\n",
        ] {
            let classified = classify_raw(bytes);
            assert!(classified.bounced_message_ids.is_empty(), "{bytes:?}");
        }
        assert_eq!(classify(""), InboundHeaders::default());
        assert_eq!(classify_raw(b""), InboundHeaders::default());
        assert_eq!(message_ids_in(""), Vec::<String>::new());
    }

    /// A delivery status notification as Gmail sends it: the report, its status, and the
    /// returned message.
    fn gmail_dsn() -> String {
        format!(
            "Delivered-To: replies@herald.example\r\n\
             Return-Path: <>\r\n\
             From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n\
             To: alice@herald.example\r\n\
             Auto-Submitted: auto-replied\r\n\
             Subject: Delivery Status Notification (Failure)\r\n\
             References: {SENT}\r\n\
             Message-ID: <6579a2b1.050a0220.3c1f.0042.GMR@mx.google.com>\r\n\
             Date: Thu, 11 Dec 2026 01:14:05 -0800 (PST)\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; boundary=\"000000000000a1b2c3\";\r\n\
             \treport-type=delivery-status\r\n\
             \r\n\
             --000000000000a1b2c3\r\n\
             Content-Type: multipart/related; boundary=\"000000000000d4e5f6\"\r\n\
             \r\n\
             --000000000000d4e5f6\r\n\
             Content-Type: multipart/alternative; boundary=\"000000000000a7b8\"\r\n\
             \r\n\
             --000000000000a7b8\r\n\
             Content-Type: text/plain; charset=\"UTF-8\"\r\n\
             \r\n\
             ** Address not found **\r\n\
             \r\n\
             Your message wasn't delivered to nobody@example.org because the address couldn't be found.\r\n\
             \r\n\
             --000000000000a7b8\r\n\
             Content-Type: text/html; charset=\"UTF-8\"\r\n\
             \r\n\
             <html><body><h2>Address not found</h2></body></html>\r\n\
             --000000000000a7b8--\r\n\
             --000000000000d4e5f6\r\n\
             Content-Type: image/png; name=\"icon.png\"\r\n\
             Content-Disposition: attachment; filename=\"icon.png\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-ID: <icon.png>\r\n\
             \r\n\
             iVBORw0KGgo=\r\n\
             --000000000000d4e5f6--\r\n\
             --000000000000a1b2c3\r\n\
             Content-Type: message/delivery-status\r\n\
             \r\n\
             Reporting-MTA: dns; googlemail.com\r\n\
             Arrival-Date: Thu, 11 Dec 2026 01:14:04 -0800 (PST)\r\n\
             \r\n\
             Final-Recipient: rfc822; nobody@example.org\r\n\
             Action: failed\r\n\
             Status: 5.1.1\r\n\
             Remote-MTA: dns; mx.example.org. (203.0.113.5, the server for the domain example.org.)\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 The email account that you tried to reach does not exist.\r\n\
             Last-Attempt-Date: Thu, 11 Dec 2026 01:14:05 -0800 (PST)\r\n\
             \r\n\
             --000000000000a1b2c3\r\n\
             Content-Type: message/rfc822\r\n\
             \r\n\
             From: Alice <alice@herald.example>\r\n\
             To: nobody@example.org\r\n\
             Subject: Quick question\r\n\
             Message-ID: {SENT}\r\n\
             In-Reply-To: <earlier@herald.example>\r\n\
             Date: Thu, 11 Dec 2026 09:14:01 +0000\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             \r\n\
             Hi, a quick question.\r\n\
             Message-ID: <quoted-in-the-body@herald.example>\r\n\
             \r\n\
             --000000000000a1b2c3--\r\n"
        )
    }

    #[test]
    fn a_gmail_delivery_report_names_the_bounced_message() {
        let dsn = gmail_dsn();
        let classified = classify_raw(dsn.as_bytes());
        assert!(classified.delivery_report);
        assert!(classified.auto_reply);
        assert_eq!(classified.bounced_message_ids, [SENT]);
        assert_eq!(
            classified.from.as_deref(),
            Some("mailer-daemon@googlemail.com")
        );
        assert_eq!(
            classified.message_id.as_deref(),
            Some("<6579a2b1.050a0220.3c1f.0042.GMR@mx.google.com>")
        );
        assert_eq!(classified.references, [SENT]);

        // the same e-mail as Inbound Parse's `headers` field: a report, no body to read
        let (headers, _) = dsn.split_once("\r\n\r\n").unwrap();
        let from_headers = classify(headers);
        assert!(from_headers.delivery_report);
        assert!(from_headers.bounced_message_ids.is_empty());
    }

    #[test]
    fn a_report_with_returned_headers_and_original_message_id() {
        let report = format!(
            "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n\
             Subject: Undelivered Mail Returned to Sender\n\
             Content-Type: multipart/report; report-type=delivery-status;\n\
             \tboundary=\"B\"\n\
             \n\
             --B\n\
             Content-Type: text/plain\n\
             \n\
             I'm sorry to have to inform you that your message could not be delivered.\n\
             Message-ID: <not-in-a-returned-part@example.org>\n\
             --B\n\
             Content-Type: message/delivery-status\n\
             \n\
             Reporting-MTA: dns; mx.example.org\n\
             Original-Message-ID: <from-status@herald.example>\n\
             \n\
             Final-Recipient: rfc822; nobody@example.org\n\
             Action: failed\n\
             Status: 5.1.1\n\
             --B\n\
             Content-Type: text/rfc822-headers\n\
             Content-Transfer-Encoding: quoted-printable\n\
             \n\
             From: alice@herald.example\n\
             Message-Id:\n\
             \x20{SENT}\n\
             Subject: =3D?UTF-8?Q?Caf=3DC3=3DA9?=3D\n\
             --B--\n"
        );
        let classified = classify_raw(report.as_bytes());
        assert!(classified.delivery_report);
        assert!(!classified.auto_reply);
        assert_eq!(
            classified.bounced_message_ids,
            ["<from-status@herald.example>", SENT]
        );
        assert_eq!(
            classified.from.as_deref(),
            Some("mailer-daemon@mx.example.org")
        );
    }

    #[test]
    fn a_raw_reply_reads_like_its_headers_and_names_no_bounce() {
        let raw = format!(
            "From: carol@example.org\r\nIn-Reply-To: {SENT}\r\nSubject: Re: hi\r\n\r\n\
             Sure.\r\n\r\n> Message-ID: <quoted@herald.example>\r\n"
        );
        let classified = classify_raw(raw.as_bytes());
        assert_eq!(classified.in_reply_to, [SENT]);
        assert!(!classified.delivery_report && !classified.auto_reply);
        assert!(classified.bounced_message_ids.is_empty());
    }

    #[test]
    fn message_ids_in_finds_the_returned_ids_in_a_text_part() {
        let text = format!(
            "** Address not found **\n\
             \n\
             Your message wasn't delivered to nobody@example.org.\n\
             \n\
             ----- Original message -----\n\
             \n\
             DKIM-Signature: v=1; a=rsa-sha256; d=herald.example; s=s1;\n\
             From: Alice <alice@herald.example>\n\
             Message-ID: {SENT}\r\n\
             In-Reply-To: <not-this@herald.example>\n\
             References: <nor-this@herald.example>\n\
             message-id: {SENT}\n\
             > MESSAGE-ID: <quoted@herald.example>\n\
             \x20 Original-Message-ID: <original@herald.example>\n\
             Message-ID:\n\
             \t<folded@herald.example>\n\
             X-Message-ID: <not-a-message-id-field@herald.example>\n\
             Message-ID: no brackets here\n"
        );
        assert_eq!(
            message_ids_in(&text),
            [
                SENT,
                "<quoted@herald.example>",
                "<original@herald.example>",
                "<folded@herald.example>",
            ]
        );
    }
}
