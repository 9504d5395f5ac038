//! E-mail over SMTP with lettre. With no SMTP host configured the mailer is in sandbox mode:
//! it sends nothing and the effect is recorded as `sandboxed`.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::config::{EmailConfig, SmtpTls};
use crate::effects::EmailPayload;

/// Why an e-mail was not accepted, and whether trying again may help.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The server refused for good (5xx) or the message cannot be built (bad address).
    #[error("permanent: {0}")]
    Permanent(String),
    /// A 4xx answer, a timeout or a connection problem.
    #[error("retryable: {0}")]
    Retryable(String),
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
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

impl Mailer {
    /// Builds the mailer from validated configuration.
    pub fn new(config: &EmailConfig) -> Result<Self, EmailError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|err| EmailError::Permanent(format!("email.from: {err}")))?;
        if config.is_sandbox() {
            return Ok(Self {
                from,
                transport: None,
            });
        }
        let host = config.smtp_host.trim();
        let builder = match config.smtp_tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|err| EmailError::Permanent(format!("email.smtp_host: {err}")))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|err| EmailError::Permanent(format!("email.smtp_host: {err}")))?,
        };
        let mut builder = builder
            .port(config.smtp_port)
            .timeout(Some(Duration::from_secs(config.smtp_timeout_secs)));
        if !config.smtp_username.is_empty() {
            builder = builder.credentials(Credentials::new(
                config.smtp_username.clone(),
                config.smtp_password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            from,
            transport: Some(builder.build()),
        })
    }

    /// True in sandbox mode.
    pub fn is_sandbox(&self) -> bool {
        self.transport.is_none()
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
        let Some(transport) = &self.transport else {
            tracing::info!(%effect_id, to = %email.to, subject = %email.subject, "sandbox: e-mail not sent");
            return Ok(Delivery::Sandboxed);
        };
        match transport.send(message).await {
            Ok(response) => Ok(Delivery::Sent {
                server_reply: response.message().collect::<Vec<_>>().join(" "),
            }),
            Err(err) if err.is_permanent() => Err(EmailError::Permanent(err.to_string())),
            Err(err) => Err(EmailError::Retryable(err.to_string())),
        }
    }
}
