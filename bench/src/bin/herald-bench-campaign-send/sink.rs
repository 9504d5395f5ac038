//! An in-process SMTP server that takes every e-mail at once and keeps only what the report
//! needs: how many arrived, when the first and the last did, and how often each Message-ID
//! came (more than once is an e-mail sent twice). Written for the benchmark rather than using
//! the test suites' aiosmtpd stand-in, which writes each message to a Maildir from one Python
//! process and would measure itself, not Herald.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the sink has seen.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub messages: u64,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
    /// Copies per Message-ID.
    pub copies: HashMap<String, u32>,
}

impl Seen {
    /// Message-IDs that arrived more than once.
    pub fn duplicates(&self) -> usize {
        self.copies.values().filter(|copies| **copies > 1).count()
    }
}

#[derive(Clone, Default)]
pub struct SmtpSink(Arc<Mutex<Seen>>);

impl SmtpSink {
    /// Listens on a free port of 127.0.0.1; the port.
    pub async fn start(&self) -> anyhow::Result<u16> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let sink = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let _ = sink.serve(stream).await;
                });
            }
        });
        Ok(port)
    }

    pub fn seen(&self) -> Seen {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One connection: the commands lettre sends, each answered at once.
    async fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 sink ESMTP\r\n").await?;
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_ascii_uppercase();
            let reply: &[u8] = if command.starts_with("EHLO") {
                b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
            } else if command.starts_with("DATA") {
                write.write_all(b"354 go on\r\n").await?;
                let message_id = self.read_message(&mut lines).await?;
                self.record(message_id);
                b"250 2.0.0 queued\r\n"
            } else if command.starts_with("QUIT") {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                // HELO, MAIL, RCPT, RSET, NOOP
                b"250 ok\r\n"
            };
            write.write_all(reply).await?;
        }
    }

    /// Reads DATA up to the lone dot; the Message-ID header's value.
    async fn read_message(
        &self,
        lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    ) -> std::io::Result<Option<String>> {
        let mut message_id = None;
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(message_id);
            }
            let text = line.trim_end();
            if text == "." {
                return Ok(message_id);
            }
            if message_id.is_none()
                && let Some((name, value)) = text.split_once(':')
                && name.eq_ignore_ascii_case("message-id")
            {
                message_id = Some(value.trim().to_owned());
            }
        }
    }

    fn record(&self, message_id: Option<String>) {
        let now = Instant::now();
        let mut seen = self.lock();
        seen.messages += 1;
        seen.first.get_or_insert(now);
        seen.last = Some(now);
        if let Some(id) = message_id {
            *seen.copies.entry(id).or_default() += 1;
        }
    }
}
