//! One SMTP conversation per e-mail, driven step by step on lettre's [`AsyncSmtpConnection`],
//! over a small pool of open connections.
//!
//! Hand-written rather than lettre's `AsyncSmtpTransport` because Herald must know whether a
//! failure came before or after the server accepted DATA (354): before, the server has
//! nothing and the e-mail may be sent again; after, it may have the message, and a re-send
//! could deliver it twice. The transport reports neither the step that failed nor, on tokio,
//! bounds anything but the TCP connect with its timeout (a server that stops answering held
//! the send until the job's own timeout), and a send cancelled mid-conversation put its
//! connection back in the pool out of step with the server. What it did otherwise is kept:
//! the same connect, implicit TLS or required STARTTLS, AUTH with lettre's default mechanisms
//! (PLAIN, LOGIN), SMTPUTF8/8BITMIME parameters, a NOOP check before reusing a pooled
//! connection, at most [`MAX_IDLE`] parked connections, none reused after [`IDLE_TIMEOUT`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::Error;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;

use super::EmailError;

/// Parked connections kept at most (lettre's pool default); more are closed when done.
const MAX_IDLE: usize = 10;

/// A parked connection older than this is closed rather than reused (lettre's default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How the connection is secured.
pub(super) enum Security {
    /// Plain text.
    None,
    /// TLS from the first byte (usually port 465).
    Tls(TlsParameters),
    /// STARTTLS, required: no credentials or e-mail before the upgrade.
    Starttls(TlsParameters),
}

/// Where and how to reach the SMTP server.
pub(super) struct Server {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<Credentials>,
    /// Connect to this address instead of resolving `host` on each connection (TLS still
    /// checks the certificate against `host`): an address checked once is the one used, so a
    /// name cannot resolve elsewhere later (DNS rebinding).
    pub pinned: Option<std::net::SocketAddr>,
    /// Longest wait for the server at each step: connecting (TCP, greeting, EHLO, STARTTLS
    /// and AUTH together), each command, and the content with its final reply.
    pub timeout: Duration,
}

/// An SMTP client with its pool of open connections.
pub(super) struct Smtp {
    server: Server,
    hello: ClientId,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl Smtp {
    pub(super) fn new(server: Server) -> Self {
        Self {
            server,
            // read once: lettre asks the OS for the host name on every `default()`
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends one e-mail; the server's final reply on success.
    pub(super) async fn send(
        &self,
        envelope: &Envelope,
        email: &[u8],
    ) -> Result<Response, EmailError> {
        let timeout = self.server.timeout;
        let mut conn = self.connection().await?;
        let mail = self.mail_command(&conn, envelope, email)?;
        before_data(timeout, conn.command(mail)).await?;
        for to in envelope.to() {
            before_data(timeout, conn.command(Rcpt::new(to.clone(), vec![]))).await?;
        }
        before_data(timeout, conn.command(Data)).await?;
        // The server answered 354: from here on it may keep the message whatever happens.
        let reply = match tokio::time::timeout(timeout, conn.message(email)).await {
            Ok(Ok(reply)) => reply,
            // a reply code is the server's decision: it refused the message
            Ok(Err(err)) if err.status().is_some() => return Err(refused(&err)),
            Ok(Err(err)) => {
                return Err(EmailError::Unconfirmed(format!(
                    "after DATA was accepted: {err}"
                )));
            }
            Err(_) => {
                return Err(EmailError::Unconfirmed(format!(
                    "after DATA was accepted: no reply to the message within {timeout:?}"
                )));
            }
        };
        self.park(conn);
        Ok(reply)
    }

    /// A pooled connection that still answers NOOP, or a new one.
    async fn connection(&self) -> Result<AsyncSmtpConnection, EmailError> {
        loop {
            let parked = self
                .idle
                .lock()
                .unwrap_or_else(|err| err.into_inner())
                .pop();
            let Some((mut conn, since)) = parked else {
                break;
            };
            // An old or broken connection is dropped (closing it) and the next one tried.
            if since.elapsed() < IDLE_TIMEOUT
                && tokio::time::timeout(self.server.timeout, conn.test_connected())
                    .await
                    .unwrap_or(false)
            {
                return Ok(conn);
            }
        }
        let connect = async {
            let server = &self.server;
            let implicit_tls = match &server.security {
                Security::Tls(parameters) => Some(parameters.clone()),
                Security::None | Security::Starttls(_) => None,
            };
            let mut conn = match server.pinned {
                Some(address) => {
                    AsyncSmtpConnection::connect_tokio1(
                        address,
                        Some(server.timeout),
                        &self.hello,
                        implicit_tls,
                        None,
                    )
                    .await?
                }
                None => {
                    AsyncSmtpConnection::connect_tokio1(
                        (server.host.as_str(), server.port),
                        Some(server.timeout),
                        &self.hello,
                        implicit_tls,
                        None,
                    )
                    .await?
                }
            };
            if let Security::Starttls(parameters) = &server.security {
                conn.starttls(parameters.clone(), &self.hello).await?;
            }
            if let Some(credentials) = &server.credentials {
                conn.auth(DEFAULT_MECHANISMS, credentials).await?;
            }
            Ok::<_, Error>(conn)
        };
        before_data(self.server.timeout, connect).await
    }

    /// `MAIL FROM` with the parameters the e-mail needs, refused (as lettre does) when the
    /// server lacks the extension.
    fn mail_command(
        &self,
        conn: &AsyncSmtpConnection,
        envelope: &Envelope,
        email: &[u8],
    ) -> Result<Mail, EmailError> {
        let info = conn.server_info();
        let mut parameters = Vec::new();
        let non_ascii = |address: &Address| !AsRef::<str>::as_ref(address).is_ascii();
        if envelope.from().is_some_and(non_ascii) || envelope.to().iter().any(non_ascii) {
            if !info.supports_feature(Extension::SmtpUtfEight) {
                return Err(EmailError::Retryable(
                    "the envelope has non-ASCII addresses and the server lacks SMTPUTF8".to_owned(),
                ));
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !email.is_ascii() {
            if !info.supports_feature(Extension::EightBitMime) {
                return Err(EmailError::Retryable(
                    "the message has non-ASCII bytes and the server lacks 8BITMIME".to_owned(),
                ));
            }
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        Ok(Mail::new(envelope.from().cloned(), parameters))
    }

    /// Keeps a connection that finished a conversation cleanly for the next e-mail.
    fn park(&self, conn: AsyncSmtpConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(|err| err.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((conn, Instant::now()));
        }
    }
}

/// Runs one step before the server accepted DATA, bounded by `timeout`: whatever fails here,
/// the server has no message.
async fn before_data<T>(
    timeout: Duration,
    step: impl Future<Output = Result<T, Error>>,
) -> Result<T, EmailError> {
    match tokio::time::timeout(timeout, step).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) if err.status().is_some() => Err(refused(&err)),
        Ok(Err(err)) => Err(EmailError::Retryable(err.to_string())),
        Err(_) => Err(EmailError::Retryable(format!(
            "the SMTP server did not answer within {timeout:?}"
        ))),
    }
}

/// The server's refusal: 5xx is permanent, 4xx worth another try.
fn refused(err: &Error) -> EmailError {
    if err.is_permanent() {
        EmailError::Permanent(err.to_string())
    } else {
        EmailError::Retryable(err.to_string())
    }
}
