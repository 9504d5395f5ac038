//! E-mail over SMTP with lettre. With no SMTP host configured the mailer is in sandbox mode:
//! it sends nothing and the effect is recorded as `sandboxed`.
//!
//! Failures are told apart by the SMTP step they happened at (see `smtp`): before the server
//! accepted DATA it has nothing, and the e-mail may be sent again (`Retryable`) or is refused
//! (`Permanent`); once it accepted DATA, a timeout or a broken connection leaves it possibly
//! holding the message (`Unconfirmed`). SMTP has no way to ask, so such an e-mail is recorded
//! `unknown` and never re-sent.

use std::sync::Arc;
use std::time::Duration;

use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::TlsParameters;
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::config::{EmailConfig, SmtpTls};
use crate::effects::EmailPayload;
use crate::providers::outreach::OutreachEmail;

mod smtp;

use smtp::{Security, Server, Smtp};

/// Why an e-mail was not accepted, and whether trying again may help.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The server refused for good (5xx) or the message cannot be built (bad address).
    #[error("permanent: {0}")]
    Permanent(String),
    /// Before the server accepted DATA: a 4xx answer, a timeout or a connection problem. The
    /// server has no message; sending again is safe.
    #[error("retryable: {0}")]
    Retryable(String),
    /// After the server accepted DATA (354): a timeout or a broken connection while the
    /// content went out or its final reply was awaited. The server may have the message:
    /// record it `unknown`, never send it again.
    #[error("unconfirmed: {0}")]
    Unconfirmed(String),
}

/// What happened to an e-mail that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The SMTP server accepted it; its reply, as the provider's id.
    Sent { server_reply: String },
    /// Sandbox mode: logged, not sent.
    Sandboxed,
}

/// Sends e-mails, or records them in sandbox mode.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    smtp: Option<SmtpClient>,
}

impl Mailer {
    /// Builds the mailer from validated configuration.
    pub fn new(config: &EmailConfig) -> Result<Self, EmailError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|err| EmailError::Permanent(format!("email.from: {err}")))?;
        if config.is_sandbox() {
            return Ok(Self { from, smtp: None });
        }
        let smtp = SmtpClient::new(&SmtpServer {
            host: config.smtp_host.trim().to_owned(),
            port: config.smtp_port,
            tls: config.smtp_tls,
            username: config.smtp_username.clone(),
            password: config.smtp_password.expose_secret().to_owned(),
            timeout: Duration::from_secs(config.smtp_timeout_secs),
            pinned: None,
        })
        .map_err(|err| match err {
            EmailError::Permanent(text) => {
                EmailError::Permanent(format!("email.smtp_host: {text}"))
            }
            other => other,
        })?;
        Ok(Self {
            from,
            smtp: Some(smtp),
        })
    }

    /// True in sandbox mode.
    pub fn is_sandbox(&self) -> bool {
        self.smtp.is_none()
    }

    /// Sends one e-mail. `effect_id` becomes the Message-ID, so a receiver (and our tests)
    /// can recognise a duplicate.
    pub async fn send(
        &self,
        effect_id: Uuid,
        email: &EmailPayload,
    ) -> Result<Delivery, EmailError> {
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|err| EmailError::Permanent(format!("recipient {:?}: {err}", email.to)))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(format!("<{effect_id}@herald>")))
            .header(ContentType::TEXT_PLAIN)
            .body(email.text.clone())
            .map_err(|err| EmailError::Permanent(format!("message: {err}")))?;
        let Some(smtp) = &self.smtp else {
            tracing::info!(%effect_id, to = %email.to, subject = %email.subject, "sandbox: e-mail not sent");
            return Ok(Delivery::Sandboxed);
        };
        Ok(Delivery::Sent {
            server_reply: smtp.send(&message).await?,
        })
    }
}

/// An SMTP server and how to log in to it: Herald's own (`email.*`) or a campaign sender's.
#[derive(Debug, Clone)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// Empty: no authentication.
    pub username: String,
    pub password: String,
    /// Longest wait at each SMTP step (see `smtp`).
    pub timeout: Duration,
    /// The address to connect to, checked by the caller; `None`: `host` is resolved on each
    /// connection.
    pub pinned: Option<std::net::SocketAddr>,
}

/// A client of one SMTP server, with its pool of open connections; clones share the pool.
#[derive(Clone)]
pub struct SmtpClient(Arc<Smtp>);

impl SmtpClient {
    /// A client of `server`; nothing is connected until the first send.
    pub fn new(server: &SmtpServer) -> Result<Self, EmailError> {
        let tls = || {
            TlsParameters::new(server.host.clone())
                .map_err(|err| EmailError::Permanent(format!("TLS for {}: {err}", server.host)))
        };
        let security = match server.tls {
            SmtpTls::None => Security::None,
            SmtpTls::Starttls => Security::Starttls(tls()?),
            SmtpTls::Tls => Security::Tls(tls()?),
        };
        let credentials = (!server.username.is_empty())
            .then(|| Credentials::new(server.username.clone(), server.password.clone()));
        Ok(Self(Arc::new(Smtp::new(Server {
            host: server.host.clone(),
            port: server.port,
            security,
            credentials,
            timeout: server.timeout,
            pinned: server.pinned,
        }))))
    }

    /// Sends one message; the server's final reply (see [`EmailError`] for the failures).
    pub async fn send(&self, message: &Message) -> Result<String, EmailError> {
        let reply = self
            .0
            .send(message.envelope(), &message.formatted())
            .await?;
        Ok(reply.message().collect::<Vec<_>>().join(" "))
    }
}

/// The MIME message of a campaign e-mail, with its `Message-ID`, thread and one-click
/// unsubscribe headers (RFC 8058); `Permanent` when an address cannot be used.
pub fn outreach_message(email: &OutreachEmail) -> Result<Message, EmailError> {
    let address = |what: &str, text: &str| {
        text.parse::<lettre::Address>()
            .map_err(|err| EmailError::Permanent(format!("{what} {text:?}: {err}")))
    };
    let from = Mailbox::new(
        Some(email.from_name.clone()).filter(|name| !name.is_empty()),
        address("sender", &email.from_email)?,
    );
    let mut builder = Message::builder()
        .from(from)
        .to(Mailbox::new(None, address("recipient", &email.to)?))
        .subject(email.subject.clone())
        .message_id(Some(email.message_id.clone()));
    if let Some(reply_to) = &email.reply_to {
        builder = builder.reply_to(Mailbox::new(None, address("reply-to", reply_to)?));
    }
    if let (Some(last), Some(all)) = (email.in_reply_to(), email.references()) {
        builder = builder.in_reply_to(last.to_owned()).references(all);
    }
    builder
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            email.list_unsubscribe(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            OutreachEmail::LIST_UNSUBSCRIBE_POST.to_owned(),
        ))
        .header(ContentType::TEXT_PLAIN)
        .body(email.body.clone())
        .map_err(|err| EmailError::Permanent(format!("message: {err}")))
}
