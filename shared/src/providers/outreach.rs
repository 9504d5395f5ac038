//! A campaign e-mail as it goes out, whatever carries it (SMTP with lettre, or SendGrid's v3
//! Mail Send): who it is from and to, what it says, and the headers every campaign e-mail
//! carries — its own `Message-ID`, the thread of the prospect's earlier steps (`In-Reply-To`,
//! `References`) and RFC 8058 one-click unsubscribe (`List-Unsubscribe`,
//! `List-Unsubscribe-Post`).

use uuid::Uuid;

/// One campaign e-mail, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutreachEmail {
    pub from_name: String,
    pub from_email: String,
    pub reply_to: Option<String>,
    pub to: String,
    pub subject: String,
    /// Plain text.
    pub body: String,
    /// This e-mail's `Message-ID`, angle brackets included (`<{effect_id}@{from domain}>`).
    pub message_id: String,
    /// The `Message-ID`s of the prospect's earlier steps, oldest first: `In-Reply-To` names
    /// the last, `References` all of them. Empty for step 1.
    pub thread: Vec<String>,
    /// The one-click unsubscribe URL (`{api.public_url}/u/{token}`).
    pub unsubscribe_url: String,
    /// The send's effect: SendGrid returns it with each event (`custom_args.effect_id`).
    pub effect_id: Uuid,
}

impl OutreachEmail {
    /// The `Message-ID` of a campaign e-mail: its effect's id at the sender's domain, so a
    /// reply's `In-Reply-To` names the send it answers.
    pub fn message_id_for(effect_id: Uuid, from_email: &str) -> String {
        let domain = from_email
            .rsplit_once('@')
            .map_or("herald.invalid", |(_, domain)| domain);
        format!("<{effect_id}@{domain}>")
    }

    /// The effect a `Message-ID` names, if it is one of Herald's campaign e-mails (see
    /// [`Self::message_id_for`]).
    pub fn effect_of(message_id: &str) -> Option<Uuid> {
        let inner = message_id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        let (local, _) = inner.split_once('@')?;
        Uuid::parse_str(local).ok()
    }

    /// `In-Reply-To`: the previous step's `Message-ID`.
    pub fn in_reply_to(&self) -> Option<&str> {
        self.thread.last().map(String::as_str)
    }

    /// `References`: every earlier step's `Message-ID`, space-separated.
    pub fn references(&self) -> Option<String> {
        (!self.thread.is_empty()).then(|| self.thread.join(" "))
    }

    /// `List-Unsubscribe`.
    pub fn list_unsubscribe(&self) -> String {
        format!("<{}>", self.unsubscribe_url)
    }

    /// `List-Unsubscribe-Post` (RFC 8058).
    pub const LIST_UNSUBSCRIBE_POST: &'static str = "List-Unsubscribe=One-Click";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_name_their_effect() {
        let id = Uuid::now_v7();
        let message_id = OutreachEmail::message_id_for(id, "Ann@Example.com");
        assert_eq!(message_id, format!("<{id}@Example.com>"));
        assert_eq!(OutreachEmail::effect_of(&message_id), Some(id));
        assert_eq!(OutreachEmail::effect_of(" <x@example.com> "), None);
        assert_eq!(OutreachEmail::effect_of("no-at-sign"), None);
    }
}
