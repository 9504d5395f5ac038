//! The `email` kind: one e-mail over SMTP, or recorded in sandbox mode.

use herald_shared::db::effects::Started;
use herald_shared::effects::EmailPayload;
use herald_shared::providers::email::{Delivery, EmailError};

use super::{JobError, Outcome};
use crate::context::WorkerContext;

/// Sends the e-mail in the row's payload.
pub async fn send(ctx: &WorkerContext, started: &Started) -> Result<Outcome, JobError> {
    let mut email: EmailPayload = serde_json::from_value(started.payload.clone())
        .map_err(|err| JobError::Permanent(format!("invalid e-mail payload: {err}")))?;
    // A secret sealed with another key (secrets.encryption_key changed) cannot be recovered.
    email.text = email
        .text_to_send(&ctx.secrets)
        .map_err(|err| JobError::Permanent(err.to_string()))?;
    match ctx.mailer.send(started.id, &email).await {
        Ok(Delivery::Sent { server_reply }) => Ok(Outcome::Sent {
            provider_id: Some(server_reply),
            sent_from: None,
        }),
        Ok(Delivery::Sandboxed) => Ok(Outcome::Sandboxed { sent_from: None }),
        Err(EmailError::Permanent(message)) => Err(JobError::Permanent(message)),
        // Stopgap until the send path records an unconfirmed e-mail `unknown`: retried as
        // before.
        Err(EmailError::Retryable(message) | EmailError::Unconfirmed(message)) => {
            Err(JobError::Retryable {
                message,
                retry_after: None,
            })
        }
    }
}
