//! A scripted SMTP server for the mailer's own tests: raw TCP, so it can stall or hang up
//! at a chosen step of the conversation (greeting, RCPT, DATA, the end of the content) —
//! what a real server such as the aiosmtpd stand-in ([`crate::smtp`]) cannot be made to do.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the stand-in does at one step: answer this line, or never answer, or hang up.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    Answer(&'static str),
    Stall,
    HangUp,
}

/// The stand-in's script; `Default` accepts everything.
#[derive(Debug, Clone, Copy)]
pub struct Script {
    pub greeting: Step,
    pub rcpt: Step,
    pub data: Step,
    /// The reply after the content's final `.`.
    pub end_of_data: Step,
    /// Close each connection after one e-mail (a server that drops idle connections).
    pub one_email_per_connection: bool,
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
pub struct Seen {
    pub connections: AtomicUsize,
    /// E-mails whose content reached the final `.`.
    pub emails: AtomicUsize,
}

/// Starts the stand-in; returns its port and what it sees.
pub async fn standin(script: Script) -> (u16, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|error| panic!("bind the SMTP script stand-in: {error}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|error| panic!("its address: {error}"))
        .port();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
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
