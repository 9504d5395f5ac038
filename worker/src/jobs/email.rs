//! The `email` kind: one outbound e-mail over SMTP, or recorded in sandbox mode.

use herald_shared::db::effects::{SentMessage, Started};
use herald_shared::effects::{EmailPayload, EmailSecret};
use herald_shared::providers::email::{Delivery, EmailError};

use super::{JobError, Outcome};
use crate::context::WorkerContext;

/// Sends the outbound e-mail of the started effect.
pub async fn send(ctx: &WorkerContext, started: &Started) -> Result<Outcome, JobError> {
    let email = read(ctx, started)?;
    let sent = SentMessage {
        sent_from: None,
        recipient: Some(email.to.clone()),
        channel: Some("email"),
    };
    // No job-wide timeout around the exchange: each SMTP step has its own
    // (`email.smtp_timeout_secs`), so a slow server is classified by where it stalled (before
    // DATA: retried; after: `unknown`), which an outer timeout firing mid-way could not say.
    match ctx.mailer.send(started.id, &email).await {
        Ok(Delivery::Sent { server_reply }) => Ok(Outcome::Sent {
            provider_id: Some(server_reply),
            message: Some(sent),
        }),
        Ok(Delivery::Sandboxed) => Ok(Outcome::Sandboxed {
            message: Some(sent),
        }),
        Err(EmailError::Permanent(message)) => Err(JobError::Permanent(message)),
        Err(EmailError::Retryable(message)) => Err(JobError::Retryable {
            message,
            retry_after: None,
        }),
        // the server may have the message (the failure came after DATA): `unknown`, never
        // re-sent by itself
        Err(EmailError::Unconfirmed(message)) => Err(JobError::Unconfirmed { message }),
    }
}

/// The e-mail as planned, its sealed secret opened.
fn read(ctx: &WorkerContext, started: &Started) -> Result<EmailPayload, JobError> {
    let secret: EmailSecret = serde_json::from_value(started.payload.clone())
        .map_err(|err| JobError::Permanent(format!("invalid e-mail payload: {err}")))?;
    let (Some(to), Some(subject), Some(text)) = (
        started.email_to.clone(),
        started.email_subject.clone(),
        started.email_body.clone(),
    ) else {
        return Err(JobError::Permanent(
            "the e-mail's message row is missing its recipient or subject".to_owned(),
        ));
    };
    let mut email = EmailPayload {
        to,
        subject,
        text,
        sealed_secret: secret.sealed_secret,
    };
    // A secret sealed with another key (secrets.encryption_key changed) cannot be recovered.
    email.text = email
        .text_to_send(&ctx.secrets)
        .map_err(|err| JobError::Permanent(err.to_string()))?;
    Ok(email)
}
