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
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::TlsParameters;
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::config::{EmailConfig, SmtpTls};
use crate::effects::EmailPayload;

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
    smtp: Option<Arc<Smtp>>,
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
        let host = config.smtp_host.trim();
        let tls = || {
            TlsParameters::new(host.to_owned())
                .map_err(|err| EmailError::Permanent(format!("email.smtp_host: {err}")))
        };
        let security = match config.smtp_tls {
            SmtpTls::None => Security::None,
            SmtpTls::Starttls => Security::Starttls(tls()?),
            SmtpTls::Tls => Security::Tls(tls()?),
        };
        let credentials = (!config.smtp_username.is_empty()).then(|| {
            Credentials::new(
                config.smtp_username.clone(),
                config.smtp_password.expose_secret().to_owned(),
            )
        });
        let smtp = Smtp::new(Server {
            host: host.to_owned(),
            port: config.smtp_port,
            security,
            credentials,
            timeout: Duration::from_secs(config.smtp_timeout_secs),
        });
        Ok(Self {
            from,
            smtp: Some(Arc::new(smtp)),
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
        let reply = smtp.send(message.envelope(), &message.formatted()).await?;
        Ok(Delivery::Sent {
            server_reply: reply.message().collect::<Vec<_>>().join(" "),
        })
    }
}
