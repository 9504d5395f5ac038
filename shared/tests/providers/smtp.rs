//! The mailer against a tiny SMTP stand-in that can stall or hang up at a chosen step, so each
//! failure is classified by whether the server had accepted DATA.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use herald_shared::config::{EmailConfig, SmtpTls};
use herald_shared::effects::EmailPayload;
use herald_shared::providers::email::{Delivery, EmailError, Mailer};
use herald_testing::smtp_script::{Script, Seen, Step, standin};
use secrecy::SecretString;
use uuid::Uuid;

fn mailer(port: u16) -> Mailer {
    Mailer::new(&EmailConfig {
        from: "Herald <herald@example.com>".to_owned(),
        smtp_host: "127.0.0.1".to_owned(),
        smtp_port: port,
        smtp_tls: SmtpTls::None,
        smtp_username: String::new(),
        smtp_password: SecretString::from(""),
        smtp_timeout_secs: 1,
        allow_private_smtp_hosts: true,
        inbound_secret: SecretString::from(""),
    })
    .unwrap()
}

fn email() -> EmailPayload {
    EmailPayload {
        to: "ada@example.com".to_owned(),
        subject: "Welcome".to_owned(),
        text: "Hello, Ada.".to_owned(),
        sealed_secret: None,
    }
}

async fn send_with(script: Script) -> (Result<Delivery, EmailError>, Arc<Seen>) {
    let (port, seen) = standin(script).await;
    let sent = mailer(port).send(Uuid::new_v4(), &email()).await;
    (sent, seen)
}

#[tokio::test]
async fn accepted_emails_reuse_one_connection_and_keep_the_servers_reply() {
    let (port, seen) = standin(Script::default()).await;
    let mailer = mailer(port);

    for _ in 0..2 {
        let sent = mailer.send(Uuid::new_v4(), &email()).await.unwrap();
        assert_eq!(
            sent,
            Delivery::Sent {
                server_reply: "2.0.0 ok: queued as 42".to_owned()
            }
        );
    }

    assert_eq!(seen.emails.load(Ordering::SeqCst), 2);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_replaced() {
    let (port, seen) = standin(Script {
        one_email_per_connection: true,
        ..Script::default()
    })
    .await;
    let mailer = mailer(port);

    for _ in 0..2 {
        let sent = mailer.send(Uuid::new_v4(), &email()).await;
        assert!(matches!(sent, Ok(Delivery::Sent { .. })), "{sent:?}");
    }

    assert_eq!(seen.emails.load(Ordering::SeqCst), 2);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_server_that_stalls_after_accepting_data_leaves_the_email_unconfirmed() {
    let (sent, seen) = send_with(Script {
        end_of_data: Step::Stall,
        ..Script::default()
    })
    .await;

    assert!(matches!(sent, Err(EmailError::Unconfirmed(_))), "{sent:?}");
    assert_eq!(seen.emails.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_server_that_hangs_up_after_the_content_leaves_the_email_unconfirmed() {
    let (sent, seen) = send_with(Script {
        end_of_data: Step::HangUp,
        ..Script::default()
    })
    .await;

    assert!(matches!(sent, Err(EmailError::Unconfirmed(_))), "{sent:?}");
    assert_eq!(seen.emails.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refusal_after_the_content_is_the_servers_answer() {
    let (sent, _) = send_with(Script {
        end_of_data: Step::Answer("554 5.7.1 rejected as spam"),
        ..Script::default()
    })
    .await;

    assert!(matches!(sent, Err(EmailError::Permanent(_))), "{sent:?}");
}

#[tokio::test]
async fn a_refused_recipient_is_permanent() {
    let (sent, seen) = send_with(Script {
        rcpt: Step::Answer("550 5.1.1 mailbox unavailable"),
        ..Script::default()
    })
    .await;

    assert!(matches!(sent, Err(EmailError::Permanent(_))), "{sent:?}");
    assert_eq!(seen.emails.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_busy_recipient_is_retryable() {
    let (sent, _) = send_with(Script {
        rcpt: Step::Answer("451 4.3.0 try again later"),
        ..Script::default()
    })
    .await;

    assert!(matches!(sent, Err(EmailError::Retryable(_))), "{sent:?}");
}

#[tokio::test]
async fn a_server_that_never_greets_is_retryable() {
    let (sent, _) = send_with(Script {
        greeting: Step::Stall,
        ..Script::default()
    })
    .await;

    assert!(matches!(sent, Err(EmailError::Retryable(_))), "{sent:?}");
}

#[tokio::test]
async fn a_server_that_stalls_before_accepting_data_is_retryable() {
    let (sent, seen) = send_with(Script {
        data: Step::Stall,
        ..Script::default()
    })
    .await;

    assert!(matches!(sent, Err(EmailError::Retryable(_))), "{sent:?}");
    assert_eq!(seen.emails.load(Ordering::SeqCst), 0);
}
