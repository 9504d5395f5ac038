//! The mailer against a tiny SMTP stand-in that can stall or hang up at a chosen step, so each
//! failure is classified by whether the server had accepted DATA.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use herald_shared::config::{EmailConfig, SmtpTls};
use herald_shared::effects::EmailPayload;
use herald_shared::providers::email::{Delivery, EmailError, Mailer};
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

/// What the stand-in does at one step: answer this line, or never answer, or hang up.
#[derive(Debug, Clone, Copy)]
enum Step {
    Answer(&'static str),
    Stall,
    HangUp,
}

/// The stand-in's script; `Default` accepts everything.
#[derive(Debug, Clone, Copy)]
struct Script {
    greeting: Step,
    rcpt: Step,
    data: Step,
    /// The reply after the content's final `.`.
    end_of_data: Step,
    /// Close each connection after one e-mail (a server that drops idle connections).
    one_email_per_connection: bool,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            greeting: Step::Answer("220 standin ESMTP"),
            rcpt: Step::Answer("250 2.1.5 ok"),
            data: Step::Answer("354 end with <CRLF>.<CRLF>"),
            end_of_data: Step::Answer("250 2.0.0 ok: queued as 42"),
            one_email_per_connection: false,
        }
    }
}

/// What the stand-in saw.
#[derive(Debug, Default)]
struct Seen {
    connections: AtomicUsize,
    /// E-mails whose content reached the final `.`.
    emails: AtomicUsize,
}

/// Starts the stand-in; returns its port and what it sees.
async fn standin(script: Script) -> (u16, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            counts.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(converse(socket, script, counts.clone()));
        }
    });
    (port, seen)
}

/// Plays `step`; false when the conversation is over (hung up).
async fn play(socket: &mut TcpStream, step: Step) -> bool {
    match step {
        Step::Answer(line) => socket
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .is_ok(),
        // hold the connection open, silent, until the client gives up
        Step::Stall => std::future::pending().await,
        Step::HangUp => false,
    }
}

async fn converse(socket: TcpStream, script: Script, seen: Arc<Seen>) {
    let mut reader = BufReader::new(socket);
    if !play(reader.get_mut(), script.greeting).await {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let step = match verb.as_str() {
            "EHLO" => Step::Answer("250-standin\r\n250 8BITMIME"),
            "RCPT" => script.rcpt,
            "DATA" => {
                let accepted =
                    matches!(script.data, Step::Answer(reply) if reply.starts_with("354"));
                if !play(reader.get_mut(), script.data).await {
                    return;
                }
                if !accepted {
                    continue;
                }
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                }
                seen.emails.fetch_add(1, Ordering::SeqCst);
                if !play(reader.get_mut(), script.end_of_data).await
                    || script.one_email_per_connection
                {
                    return;
                }
                continue;
            }
            "QUIT" => {
                let _ = play(reader.get_mut(), Step::Answer("221 bye")).await;
                return;
            }
            // MAIL, NOOP, RSET
            _ => Step::Answer("250 2.0.0 ok"),
        };
        if !play(reader.get_mut(), step).await {
            return;
        }
    }
}

fn mailer(port: u16) -> Mailer {
    Mailer::new(&EmailConfig {
        from: "Herald <herald@example.com>".to_owned(),
        smtp_host: "127.0.0.1".to_owned(),
        smtp_port: port,
        smtp_tls: SmtpTls::None,
        smtp_username: String::new(),
        smtp_password: SecretString::from(""),
        smtp_timeout_secs: 1,
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
