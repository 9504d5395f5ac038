//! Effects: the outbound things Herald does for users (an e-mail now; SMS, calendar syncs and
//! LLM calls later), their kinds, states and payloads. The rows live in the `effects` table
//! (`db::effects`); Redis only ever carries their ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What an effect does; each kind has its own queue and settings in `jobs.toml`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum EffectKind {
    /// An e-mail over SMTP (sandboxed when no SMTP host is configured).
    Email,
    /// A course message to a student over SMS or WhatsApp (Twilio).
    Message,
    /// A campaign e-mail written by an LLM (`campaign_messages`); sends nothing to anyone.
    Generation,
    /// A campaign e-mail to a prospect, from one of the campaign's senders (`campaign_sends`).
    CampaignEmail,
}

impl EffectKind {
    /// Every kind, for validation of `jobs.toml`.
    pub const ALL: [Self; 4] = [
        Self::Email,
        Self::Message,
        Self::Generation,
        Self::CampaignEmail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Message => "message",
            Self::Generation => "generation",
            Self::CampaignEmail => "campaign_email",
        }
    }

    /// The known kinds, comma-separated, for error messages.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for EffectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EffectKind {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or(UnknownName)
    }
}

/// A string that names no known kind or state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown name")]
pub struct UnknownName;

/// Where an effect is in its life; see the `effects` migration for each meaning. Stored as
/// its snake_case name (`sqlx::Type`), so queries bind and read the enum itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum EffectState {
    Planned,
    Queued,
    Sending,
    Sent,
    Sandboxed,
    Retrying,
    Failed,
    Dead,
    Unknown,
    Canceled,
    /// A paused delivery's unsent message, waiting for resume.
    Held,
}

impl EffectState {
    pub const ALL: [Self; 11] = [
        Self::Planned,
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::Sandboxed,
        Self::Retrying,
        Self::Failed,
        Self::Dead,
        Self::Unknown,
        Self::Canceled,
        Self::Held,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Sandboxed => "sandboxed",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Unknown => "unknown",
            Self::Canceled => "canceled",
            Self::Held => "held",
        }
    }

    /// States an operator may re-run: the effect ended without being delivered.
    pub const RETRYABLE_BY_OPERATOR: [Self; 3] = [Self::Failed, Self::Dead, Self::Unknown];

    /// States that can still be canceled: nothing has been handed to a provider.
    pub const CANCELABLE: [Self; 3] = [Self::Planned, Self::Queued, Self::Retrying];

    /// Not sent yet and still meant to be: waiting for its time, in Redis, being handed over,
    /// waiting for a retry, or held by a paused delivery. The one definition of "unsent":
    /// queries bind this list (`state = any($n)`) rather than spelling it out.
    pub const UNSENT: [Self; 5] = [
        Self::Planned,
        Self::Queued,
        Self::Sending,
        Self::Retrying,
        Self::Held,
    ];

    /// [`Self::UNSENT`] without `sending`: the messages a change (a pause, a stop, an
    /// unsubscribe, a new text or zone) can still reach; one being handed over is in the
    /// provider's hands, and its handler reads the change before sending. (So is one whose
    /// earlier attempt may have reached the provider, `effects.unconfirmed_since`: changes
    /// leave it to its look-up, and the handler applies them if the provider has nothing.)
    pub const NOT_STARTED: [Self; 4] = [Self::Planned, Self::Queued, Self::Retrying, Self::Held];

    /// Whether a message in this state is not sent yet and still meant to be.
    pub fn is_unsent(self) -> bool {
        Self::UNSENT.contains(&self)
    }
}

/// What planned an outbound message (`outbound_messages.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum MessageSource {
    /// A course delivery (`delivery_messages` holds its day, sequence and question).
    Delivery,
    /// A schedule's fire (`schedule_messages` holds the schedule and fire).
    Schedule,
    /// An account e-mail: verification, password reset, password changed.
    AuthEmail,
    /// An outreach campaign's e-mail (`campaign_sends` holds its prospect and step).
    Campaign,
}

impl fmt::Display for EffectState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EffectState {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or(UnknownName)
    }
}

/// An e-mail as planned and sent. Planned, it is an outbound message (address, subject and
/// text) whose effect payload carries only the sealed secret ([`EmailSecret`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailPayload {
    pub to: String,
    pub subject: String,
    /// The body; when `sealed_secret` is set, each [`SECRET_PLACEHOLDER`] in it stands for
    /// the secret (whoever writes the text keeps the placeholder out of user input).
    pub text: String,
    /// A secret of the body (a sign-in link's token), sealed with `secrets::SecretBox` so
    /// the database never holds it in the clear; opened at send time and removed from the
    /// row once the e-mail is sent (`db::effects::finish_sent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_secret: Option<String>,
}

/// The payload of an `email` effect: the e-mail's sealed secret, if it has one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailSecret {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_secret: Option<String>,
}

/// Where a sealed secret goes in an e-mail's text.
pub const SECRET_PLACEHOLDER: &str = "{{secret}}";

impl EmailPayload {
    /// The text to send: the sealed secret, opened, in place of the placeholders.
    pub fn text_to_send(
        &self,
        secrets: &crate::secrets::SecretBox,
    ) -> Result<String, crate::secrets::CryptoError> {
        match &self.sealed_secret {
            Some(sealed) => Ok(self
                .text
                .replace(SECRET_PLACEHOLDER, &secrets.open(sealed)?)),
            None => Ok(self.text.clone()),
        }
    }
}

/// The apalis task: the id of the effect row (handlers re-read the row) and the instant the
/// dispatcher set for this push (a reserved rate-limit slot, or the row's due time when it was
/// pushed ahead of it), if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectTask {
    pub effect_id: uuid::Uuid,
    /// Absent in tasks pushed before slots existed, and for rows under no rate limit pushed
    /// once due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<ReservedSlot>,
}

impl EffectTask {
    /// A task with no reserved slot: its handler takes any rate-limit slot itself.
    pub fn new(effect_id: uuid::Uuid) -> Self {
        Self {
            effect_id,
            slot: None,
        }
    }
}

/// When one push of a row starts: the handler starts the row no earlier than `at` (its
/// reserved rate-limit slot, or its due time), and takes no slot again for the limits named
/// in `limits` (empty for a row under no limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedSlot {
    pub at: chrono::DateTime<chrono::Utc>,
    /// The limiters' names, as `rate_limit` keys them (`twilio:sms:+1…`, `queue:email`).
    pub limits: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_states_round_trip_through_their_names() {
        for kind in EffectKind::ALL {
            assert_eq!(kind.as_str().parse::<EffectKind>(), Ok(kind));
        }
        for state in EffectState::ALL {
            assert_eq!(state.as_str().parse::<EffectState>(), Ok(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{state}\""));
        }
        assert!("fax".parse::<EffectKind>().is_err());
    }
}
