//! How a failed send is classified: by whether the request may have reached Twilio.

use std::time::Duration;

use herald_shared::providers::twilio::{Channel, Outgoing, Twilio, TwilioError};
use tokio::io::AsyncReadExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{MESSAGES_PATH, twilio_config};

fn message() -> Outgoing<'static> {
    Outgoing {
        to: "+14155550100",
        channel: Channel::Sms,
        body: "Day 1",
        sender: None,
        effect_id: uuid::Uuid::nil(),
    }
}

async fn twilio_answering(answer: ResponseTemplate) -> (MockServer, Twilio) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(answer)
        .mount(&server)
        .await;
    let twilio = Twilio::new(&twilio_config(&server.uri(), 1)).unwrap();
    (server, twilio)
}

#[tokio::test]
async fn a_refused_connection_is_retryable_since_nothing_was_written() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let twilio = Twilio::new(&twilio_config(&format!("http://{address}"), 1)).unwrap();

    let err = twilio.send(message()).await.unwrap_err();

    assert!(matches!(err, TwilioError::Retryable { .. }), "{err:?}");
}

#[tokio::test]
async fn a_timeout_after_the_request_was_written_is_unconfirmed() {
    let (server, twilio) = twilio_answering(
        ResponseTemplate::new(201)
            .set_body_string(r#"{"sid":"SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#)
            .set_delay(Duration::from_secs(3)),
    )
    .await;

    let err = twilio.send(message()).await.unwrap_err();

    assert!(matches!(err, TwilioError::Unconfirmed { .. }), "{err:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_connection_reset_after_the_request_was_read_is_unconfirmed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        // read the whole request (headers and form), then hang up without an answer
        let mut request = Vec::new();
        let mut buffer = [0_u8; 4096];
        while !String::from_utf8_lossy(&request).contains("Body=") {
            let read = socket.read(&mut buffer).await.unwrap();
            assert_ne!(read, 0, "the client closed first");
            request.extend_from_slice(&buffer[..read]);
        }
        // zero linger: the close is a reset (RST), not an orderly end
        socket.set_zero_linger().unwrap();
        drop(socket);
        request
    });
    let twilio = Twilio::new(&twilio_config(&format!("http://{address}"), 5)).unwrap();

    let err = twilio.send(message()).await.unwrap_err();

    assert!(matches!(err, TwilioError::Unconfirmed { .. }), "{err:?}");
    let request = server.await.unwrap();
    assert!(String::from_utf8_lossy(&request).starts_with("POST "));
}

#[tokio::test]
async fn a_server_error_is_unconfirmed_and_a_429_retryable() {
    let (_server, twilio) =
        twilio_answering(ResponseTemplate::new(500).set_body_json(serde_json::json!({
            "code": 20500, "message": "Internal Server Error", "status": 500
        })))
        .await;
    let err = twilio.send(message()).await.unwrap_err();
    assert_eq!(
        err,
        TwilioError::Unconfirmed {
            message: "twilio answered HTTP 500 20500: Internal Server Error".to_owned(),
            retry_after: None,
        }
    );

    let (_server, twilio) =
        twilio_answering(ResponseTemplate::new(429).insert_header("Retry-After", "2")).await;
    let err = twilio.send(message()).await.unwrap_err();
    assert!(
        matches!(
            err,
            TwilioError::Retryable {
                retry_after: Some(wait),
                ..
            } if wait == Duration::from_secs(2)
        ),
        "{err:?}"
    );
}
