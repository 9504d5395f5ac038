//! `Twilio::find_sent` against a wiremock List Messages: pages, filters and the match.

use chrono::{DateTime, Utc};
use herald_shared::providers::twilio::{Channel, Lookup, Sender, Twilio, TwilioError};
use serde_json::{Value, json};
use wiremock::matchers::{basic_auth, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{ACCOUNT_SID, AUTH_TOKEN, MESSAGES_PATH, SMS_FROM, twilio_config};

const TO: &str = "+14155550100";
const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";
const SID: &str = "SMbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// When the attempt began.
fn since() -> DateTime<Utc> {
    "2026-12-07T10:00:00Z".parse().unwrap()
}

/// A Message resource as List Messages shows it.
fn listed(sid: &str, from: &str, service: Option<&str>, body: &str, created: &str) -> Value {
    json!({
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": body,
        "date_created": created,
        "date_sent": created,
        "date_updated": created,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": from,
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": "1",
        "price": null,
        "price_unit": "USD",
        "sid": sid,
        "status": "delivered",
        "to": TO,
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"),
    })
}

/// One page of List Messages.
fn page(messages: &[Value], next_page_uri: Option<&str>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messages": messages,
        "next_page_uri": next_page_uri,
        "page": 0,
        "page_size": 100,
        "first_page_uri": format!("{MESSAGES_PATH}?To=%2B14155550100&PageSize=100&Page=0"),
        "previous_page_uri": null,
        "uri": format!("{MESSAGES_PATH}?To=%2B14155550100&PageSize=100&Page=0"),
        "start": 0,
        "end": messages.len(),
    }))
}

/// A Twilio whose List Messages answers `answer` to the first page's request, as Herald must
/// make it: filtered by `To` and `From` (for a number); no `DateSent` (a queued message has none).
async fn listing(sender: &Sender, answer: ResponseTemplate) -> (MockServer, Twilio) {
    let server = MockServer::start().await;
    let mut first = Mock::given(method("GET"))
        .and(path(MESSAGES_PATH))
        .and(basic_auth(ACCOUNT_SID, AUTH_TOKEN))
        .and(query_param("To", TO))
        .and(query_param_is_missing("DateSent>"))
        .and(query_param("PageSize", "100"))
        .and(query_param_is_missing("PageToken"));
    first = match sender {
        Sender::From(from) => first.and(query_param("From", from.as_str())),
        Sender::MessagingService(_) => first.and(query_param_is_missing("From")),
    };
    first.respond_with(answer).mount(&server).await;
    let twilio = Twilio::new(&twilio_config(&server.uri(), 5)).unwrap();
    (server, twilio)
}

fn number() -> Sender {
    Sender::From(SMS_FROM.to_owned())
}

fn lookup(sender: &Sender) -> Lookup<'_> {
    Lookup {
        to: TO,
        channel: Channel::Sms,
        sender,
        body: "Day 1: welcome",
        since: since(),
        until: since() + chrono::TimeDelta::seconds(30),
        skip: &[],
    }
}

const AFTER: &str = "Mon, 07 Dec 2026 10:00:02 +0000";

#[tokio::test]
async fn a_message_on_the_second_page_is_found() {
    let sender = number();
    let next = format!("{MESSAGES_PATH}?To=%2B14155550100&PageSize=100&Page=1&PageToken=PA1");
    let (server, twilio) = listing(
        &sender,
        page(
            &[listed(
                "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                SMS_FROM,
                None,
                "Day 2: next",
                AFTER,
            )],
            Some(&next),
        ),
    )
    .await;
    Mock::given(method("GET"))
        .and(path(MESSAGES_PATH))
        .and(basic_auth(ACCOUNT_SID, AUTH_TOKEN))
        .and(query_param("PageToken", "PA1"))
        .respond_with(page(
            &[listed(SID, SMS_FROM, None, "Day 1: welcome", AFTER)],
            None,
        ))
        .expect(1)
        .mount(&server)
        .await;

    let found = twilio.find_sent(&lookup(&sender)).await.unwrap();

    assert_eq!(found.as_deref(), Some(SID));
}

#[tokio::test]
async fn nothing_like_the_attempt_is_not_found() {
    let sender = number();
    let (_server, twilio) = listing(&sender, page(&[], None)).await;

    assert_eq!(twilio.find_sent(&lookup(&sender)).await.unwrap(), None);
}

#[tokio::test]
async fn another_body_another_sender_or_an_earlier_message_is_not_the_attempt() {
    let sender = number();
    let (_server, twilio) = listing(
        &sender,
        page(
            &[
                listed(SID, SMS_FROM, None, "Day 1: welcome!", AFTER),
                listed(SID, "+15005550007", None, "Day 1: welcome", AFTER),
                // created a minute before the attempt began: an earlier, identical message
                listed(
                    SID,
                    SMS_FROM,
                    None,
                    "Day 1: welcome",
                    "Mon, 07 Dec 2026 09:59:00 +0000",
                ),
            ],
            None,
        ),
    )
    .await;

    assert_eq!(twilio.find_sent(&lookup(&sender)).await.unwrap(), None);
}

#[tokio::test]
async fn a_message_twilio_failed_to_deliver_still_counts_as_sent() {
    let sender = number();
    let mut failed = listed(SID, SMS_FROM, None, "Day 1: welcome", AFTER);
    failed["status"] = json!("undelivered");
    failed["error_code"] = json!(30003);
    let (_server, twilio) = listing(&sender, page(&[failed], None)).await;

    let found = twilio.find_sent(&lookup(&sender)).await.unwrap();

    assert_eq!(found.as_deref(), Some(SID));
}

#[tokio::test]
async fn a_messaging_service_sender_is_matched_on_its_service() {
    let sender = Sender::MessagingService(SERVICE.to_owned());
    let (_server, twilio) = listing(
        &sender,
        page(
            &[
                listed(
                    "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                    "+12019235161",
                    Some("MGffffffffffffffffffffffffffffffff"),
                    "Day 1: welcome",
                    AFTER,
                ),
                listed(SID, "+12019235161", Some(SERVICE), "Day 1: welcome", AFTER),
            ],
            None,
        ),
    )
    .await;

    let found = twilio.find_sent(&lookup(&sender)).await.unwrap();

    assert_eq!(found.as_deref(), Some(SID));
}

#[tokio::test]
async fn whatsapp_is_looked_up_with_its_prefixed_addresses() {
    let sender = Sender::From("whatsapp:+14155238886".to_owned());
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(MESSAGES_PATH))
        .and(query_param("To", "whatsapp:+14155550100"))
        .and(query_param("From", "whatsapp:+14155238886"))
        .respond_with(page(
            &[listed(
                SID,
                "whatsapp:+14155238886",
                None,
                "Day 1: welcome",
                AFTER,
            )],
            None,
        ))
        .mount(&server)
        .await;
    let twilio = Twilio::new(&twilio_config(&server.uri(), 5)).unwrap();
    let lookup = Lookup {
        channel: Channel::Whatsapp,
        ..lookup(&sender)
    };

    assert_eq!(
        twilio.find_sent(&lookup).await.unwrap().as_deref(),
        Some(SID)
    );
}

#[tokio::test]
async fn a_look_up_that_runs_out_of_pages_is_unconfirmed_not_absent() {
    let sender = number();
    let next = format!("{MESSAGES_PATH}?To=%2B14155550100&PageSize=100&PageToken=PAnext");
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(MESSAGES_PATH))
        .respond_with(page(&[], Some(&next)))
        .expect(10)
        .mount(&server)
        .await;
    let twilio = Twilio::new(&twilio_config(&server.uri(), 5)).unwrap();

    let err = twilio.find_sent(&lookup(&sender)).await.unwrap_err();

    assert!(matches!(err, TwilioError::Unconfirmed { .. }), "{err:?}");
}

#[tokio::test]
async fn a_next_page_elsewhere_is_not_followed_with_the_credentials() {
    let sender = number();
    let (server, twilio) = listing(
        &sender,
        page(&[], Some("https://elsewhere.example.com/Messages.json")),
    )
    .await;

    let err = twilio.find_sent(&lookup(&sender)).await.unwrap_err();

    assert!(matches!(err, TwilioError::Retryable { .. }), "{err:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_failed_look_up_is_retryable_even_on_a_server_error() {
    let sender = number();
    let (_server, twilio) = listing(&sender, ResponseTemplate::new(503)).await;

    let err = twilio.find_sent(&lookup(&sender)).await.unwrap_err();

    assert!(matches!(err, TwilioError::Retryable { .. }), "{err:?}");
}

#[tokio::test]
async fn sandbox_mode_sent_nothing_so_finds_nothing() {
    let server = MockServer::start().await;
    let mut config = twilio_config(&server.uri(), 5);
    config.account_sid = String::new();
    config.auth_token = secrecy::SecretString::from("");
    let twilio = Twilio::new(&config).unwrap();
    assert!(twilio.is_sandbox());
    let sender = number();

    assert_eq!(twilio.find_sent(&lookup(&sender)).await.unwrap(), None);
    assert!(server.received_requests().await.unwrap().is_empty());
}
