//! The SendGrid client against wiremock: what it sends, and how each failure is classified,
//! by whether SendGrid may have taken the message (Mail Send has no idempotency key).

use std::time::Duration;

use herald_shared::providers::sendgrid::{Accepted, MAIL_SEND_PATH, SendGrid, SendGridError};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{outreach_email, sendgrid_config};

const API_KEY: &str = "SG.test-key.secret-part";

async fn sendgrid_answering(answer: ResponseTemplate) -> (MockServer, SendGrid) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MAIL_SEND_PATH))
        .respond_with(answer)
        .mount(&server)
        .await;
    let sendgrid = SendGrid::new(&sendgrid_config(&server.uri(), 1)).unwrap();
    (server, sendgrid)
}

/// No error text may hold the API key.
fn assert_no_key(err: &SendGridError) {
    let text = format!("{err} {err:?}");
    assert!(!text.contains(API_KEY), "{text}");
    assert!(!text.contains("secret-part"), "{text}");
}

#[tokio::test]
async fn a_202_is_accepted_with_sendgrids_message_id() {
    let (server, sendgrid) = sendgrid_answering(
        ResponseTemplate::new(202).insert_header("X-Message-Id", "W86EgYT6SQKk0lRflfLRsA"),
    )
    .await;

    let accepted = sendgrid.send(API_KEY, &outreach_email()).await.unwrap();

    assert_eq!(
        accepted,
        Accepted {
            message_id: Some("W86EgYT6SQKk0lRflfLRsA".to_owned())
        }
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);

    // a 2xx without the header is still accepted: sending again would send twice
    let (_server, sendgrid) = sendgrid_answering(ResponseTemplate::new(202)).await;
    let accepted = sendgrid.send(API_KEY, &outreach_email()).await.unwrap();
    assert_eq!(accepted, Accepted { message_id: None });
}

#[tokio::test]
async fn the_request_carries_the_key_thread_unsubscribe_headers_and_effect_id() {
    let (server, sendgrid) = sendgrid_answering(ResponseTemplate::new(202)).await;
    let email = outreach_email();

    sendgrid.send(API_KEY, &email).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    let request = &requests[0];
    assert_eq!(
        request.headers["authorization"],
        format!("Bearer {API_KEY}").as_str()
    );
    assert!(
        request.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = request.body_json().unwrap();
    assert_eq!(
        body,
        json!({
            "personalizations": [{
                "to": [{"email": "ada@prospect.example"}],
                "custom_args": {"effect_id": email.effect_id.to_string()},
            }],
            "from": {"email": "sam@seller.example", "name": "Sam Seller"},
            "reply_to": {"email": "replies@seller.example"},
            "subject": email.subject,
            "content": [{"type": "text/plain", "value": email.body}],
            "headers": {
                "Message-ID": email.message_id,
                "In-Reply-To": "<0190c3a8-0000-7000-8000-000000000002@seller.example>",
                "References": "<0190c3a8-0000-7000-8000-000000000001@seller.example> \
                               <0190c3a8-0000-7000-8000-000000000002@seller.example>",
                "List-Unsubscribe": "<https://herald.example/u/tok_abc>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        })
    );
}

#[tokio::test]
async fn a_first_step_sends_no_thread_headers_and_no_reply_to() {
    let (server, sendgrid) = sendgrid_answering(ResponseTemplate::new(202)).await;
    let mut email = outreach_email();
    email.thread.clear();
    email.reply_to = None;

    sendgrid.send(API_KEY, &email).await.unwrap();

    let body: Value = server.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    let headers = body["headers"].as_object().unwrap();
    let mut names: Vec<&str> = headers.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["List-Unsubscribe", "List-Unsubscribe-Post", "Message-ID"]
    );
    assert!(body.get("reply_to").is_none(), "{body}");
}

#[tokio::test]
async fn a_429_is_retryable_after_the_wait_sendgrid_asks_for() {
    let (_server, sendgrid) = sendgrid_answering(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "7")
            .set_body_json(json!({"errors": [{"field": null, "message": "too many requests"}]})),
    )
    .await;

    let err = sendgrid.send(API_KEY, &outreach_email()).await.unwrap_err();

    assert_eq!(
        err,
        SendGridError::Retryable {
            message: "sendgrid answered HTTP 429: too many requests".to_owned(),
            retry_after: Some(Duration::from_secs(7)),
        }
    );
}

#[tokio::test]
async fn a_server_error_may_have_queued_the_message_so_it_is_unconfirmed() {
    let (server, sendgrid) = sendgrid_answering(
        ResponseTemplate::new(500)
            .set_body_json(json!({"errors": [{"message": "internal server error"}]})),
    )
    .await;

    let err = sendgrid.send(API_KEY, &outreach_email()).await.unwrap_err();

    assert_eq!(
        err,
        SendGridError::Unconfirmed {
            message: "sendgrid answered HTTP 500: internal server error".to_owned(),
        }
    );
    // tried once: never sent again by the client itself
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_401_or_403_refuses_the_api_key_not_the_message() {
    let (_server, sendgrid) = sendgrid_answering(ResponseTemplate::new(401).set_body_json(
        json!({"errors": [{"field": null, "message": "The provided authorization grant is invalid, expired, or revoked"}]}),
    ))
    .await;
    let err = sendgrid.send(API_KEY, &outreach_email()).await.unwrap_err();
    assert_eq!(
        err,
        SendGridError::CredentialsRefused {
            status: 401,
            message: "The provided authorization grant is invalid, expired, or revoked".to_owned(),
        }
    );
    assert_no_key(&err);

    let (_server, sendgrid) = sendgrid_answering(
        ResponseTemplate::new(403)
            .set_body_json(json!({"errors": [{"field": null, "message": "access forbidden"}]})),
    )
    .await;
    let err = sendgrid.send(API_KEY, &outreach_email()).await.unwrap_err();
    assert!(
        matches!(err, SendGridError::CredentialsRefused { status: 403, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unusable_api_key_is_refused_without_a_request() {
    let (server, sendgrid) = sendgrid_answering(ResponseTemplate::new(202)).await;
    for key in ["", "  ", "SG.key\nX-Injected: yes"] {
        let err = sendgrid.send(key, &outreach_email()).await.unwrap_err();
        assert!(
            matches!(err, SendGridError::CredentialsRefused { status: 401, .. }),
            "{err:?}"
        );
        assert!(!err.to_string().contains("Injected"), "{err}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_400_is_permanent_and_names_sendgrids_fields() {
    let (_server, sendgrid) = sendgrid_answering(ResponseTemplate::new(400).set_body_json(json!({
        "errors": [
            {
                "message": "The from address does not match a verified Sender Identity.",
                "field": "from",
                "help": "https://sendgrid.com/docs/for-developers/sending-email/sender-identity/"
            },
            {
                "message": "Does not contain a valid address.",
                "field": "personalizations.0.to.0.email",
                "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
            }
        ]
    })))
    .await;

    let err = sendgrid.send(API_KEY, &outreach_email()).await.unwrap_err();

    assert_eq!(
        err,
        SendGridError::Permanent {
            status: 400,
            message: "The from address does not match a verified Sender Identity. (field: from); \
                      Does not contain a valid address. (field: personalizations.0.to.0.email)"
                .to_owned(),
        }
    );
}

#[tokio::test]
async fn an_answer_echoing_the_api_key_is_scrubbed_from_the_error() {
    let (_server, sendgrid) = sendgrid_answering(
        ResponseTemplate::new(400).set_body_string(format!("bad request from key {API_KEY}")),
    )
    .await;

    let err = sendgrid.send(API_KEY, &outreach_email()).await.unwrap_err();

    assert!(
        matches!(&err, SendGridError::Permanent { status: 400, message } if message.contains("[API key]")),
        "{err:?}"
    );
    assert_no_key(&err);
}

#[tokio::test]
async fn a_timeout_after_the_request_was_written_is_unconfirmed() {
    let (server, sendgrid) = sendgrid_answering(
        ResponseTemplate::new(202)
            .insert_header("X-Message-Id", "late")
            .set_delay(Duration::from_secs(3)),
    )
    .await;

    let err = sendgrid.send(API_KEY, &outreach_email()).await.unwrap_err();

    assert!(matches!(err, SendGridError::Unconfirmed { .. }), "{err:?}");
    assert_no_key(&err);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_retryable_since_nothing_was_written() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let sendgrid = SendGrid::new(&sendgrid_config(&format!("http://{address}"), 1)).unwrap();

    let err = sendgrid.send(API_KEY, &outreach_email()).await.unwrap_err();

    assert!(
        matches!(
            err,
            SendGridError::Retryable {
                retry_after: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert_no_key(&err);
}

#[tokio::test]
async fn a_connection_reset_after_the_request_was_read_is_unconfirmed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        // read the whole request (headers and JSON body), then hang up without an answer
        let mut request = Vec::new();
        let mut buffer = [0_u8; 4096];
        while !whole_request(&request) {
            let read = socket.read(&mut buffer).await.unwrap();
            assert_ne!(read, 0, "the client closed first");
            request.extend_from_slice(&buffer[..read]);
        }
        // zero linger: the close is a reset (RST), not an orderly end
        socket.set_zero_linger().unwrap();
        drop(socket);
        request
    });
    let sendgrid = SendGrid::new(&sendgrid_config(&format!("http://{address}"), 5)).unwrap();

    let err = sendgrid.send(API_KEY, &outreach_email()).await.unwrap_err();

    assert!(matches!(err, SendGridError::Unconfirmed { .. }), "{err:?}");
    let request = server.await.unwrap();
    assert!(String::from_utf8_lossy(&request).starts_with("POST /v3/mail/send "));
}

/// Whether `bytes` hold a request's head and all the body its `content-length` announces.
fn whole_request(bytes: &[u8]) -> bool {
    let Some(head_end) = bytes.windows(4).position(|window| window == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    bytes.len() - (head_end + 4) >= length
}
