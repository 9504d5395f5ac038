//! SMTP clients of the campaign senders, one per sender, kept with their open connections
//! between e-mails. A sender changed since its client was made (a new host or password) gets
//! a new client.
//!
//! The sender's host is resolved and checked when its client is made: unless
//! `email.allow_private_smtp_hosts`, a host that is or resolves to an internal address is
//! refused (see `herald_shared::net`). The client then connects to the address checked, never
//! to the name again (a name resolving elsewhere later, DNS rebinding, changes nothing); a
//! changed sender gets a new client, resolved afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_shared::config::SmtpTls;
use herald_shared::db::campaign_sends::ToSend;
use herald_shared::net::public_address;
use herald_shared::providers::email::{EmailError, SmtpClient, SmtpServer};
use uuid::Uuid;

/// A sender's client, with the sender's `updated_at` it was made from.
type Versioned = (DateTime<Utc>, SmtpClient);

/// The senders' SMTP clients, by sender.
#[derive(Clone, Default)]
pub struct Mailboxes(Arc<Mutex<HashMap<Uuid, Versioned>>>);

impl Mailboxes {
    /// The client of the e-mail's sender (`password` opened from its sealed secret).
    pub async fn client(
        &self,
        send: &ToSend,
        password: String,
        allow_private: bool,
        timeout: Duration,
    ) -> Result<SmtpClient, EmailError> {
        if let Some((version, client)) = self.lock().get(&send.sender_id)
            && *version == send.sender_updated_at
        {
            return Ok(client.clone());
        }
        let (Some(host), Some(port), Some(tls)) = (&send.smtp_host, send.smtp_port, &send.smtp_tls)
        else {
            return Err(EmailError::Permanent(
                "the sender has no SMTP server".to_owned(),
            ));
        };
        let port = u16::try_from(port)
            .map_err(|_| EmailError::Permanent(format!("SMTP port {port} is out of range")))?;
        let pinned = match public_address(host, port, allow_private).await {
            Ok(Ok(address)) => address,
            Ok(Err(reason)) => {
                return Err(EmailError::Permanent(format!(
                    "the sender's SMTP host: {reason} (email.allow_private_smtp_hosts is off)"
                )));
            }
            Err(err) => {
                return Err(EmailError::Retryable(format!(
                    "the sender's SMTP host {host} does not resolve: {err}"
                )));
            }
        };
        let tls = match tls.as_str() {
            "none" => SmtpTls::None,
            "tls" => SmtpTls::Tls,
            _ => SmtpTls::Starttls,
        };
        let client = SmtpClient::new(&SmtpServer {
            host: host.clone(),
            port,
            tls,
            username: send.smtp_username.clone().unwrap_or_default(),
            password,
            timeout,
            pinned: Some(pinned),
        })?;
        self.lock()
            .insert(send.sender_id, (send.sender_updated_at, client.clone()));
        Ok(client)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Versioned>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
