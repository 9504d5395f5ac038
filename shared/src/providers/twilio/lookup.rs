//! Finding a message Twilio may have created for an attempt whose answer was not read
//! ([`TwilioError::Unconfirmed`]), so that it is re-sent only when Twilio has no such message.
//!
//! Twilio's Messages API takes no idempotency key and the Message resource carries neither
//! our id nor the callback URL, so the message is recognised by what it says: List Messages
//! (`GET /2010-04-01/Accounts/{sid}/Messages.json`) filtered by `To` (and `From` for a number
//! sender), then matched here on the sender, the exact body and a `date_created` inside the
//! attempts' window (from the first unconfirmed attempt's start to the last one's end, widened
//! by [`CLOCK_SKEW`]), skipping messages already recorded as another message's. A message
//! Twilio reports `failed` or `undelivered` still counts: Twilio has it, and sending again
//! would create a second one.
//!
//! No `DateSent` filter: a message still queued at Twilio (behind a Messaging Service's queue,
//! say) has no `date_sent` yet, and a filter on it would miss exactly the message being looked
//! for. The pages read are bounded instead ([`MAX_PAGES`]).

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{
    Channel, Sender, Twilio, TwilioError, error_answer, error_chain, retry_after, snippet,
};

/// How much earlier than the attempt's start a message's `date_created` may be and still be
/// the attempt's: Twilio's dates are whole seconds (up to 1 s before the instant), and its
/// clock and ours may disagree by a little. Larger would risk taking an earlier, identical
/// message (same text, recipient and sender) for this attempt's.
pub const CLOCK_SKEW: TimeDelta = TimeDelta::seconds(10);

/// Messages asked for per page (Twilio allows 1 to 1,000).
const PAGE_SIZE: &str = "100";

/// Pages read at most. A recipient with more messages than these pages hold from the sender is
/// not searched to the end: the look-up answers `Unconfirmed` rather than guessing.
const MAX_PAGES: usize = 10;

/// One attempt to look for: what was sent, to whom, from whom and when.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// The recipient's E.164 number, without any channel prefix.
    pub to: &'a str,
    pub channel: Channel,
    /// The sender the attempt used (a number, or a Messaging Service).
    pub sender: &'a Sender,
    /// The body exactly as sent.
    pub body: &'a str,
    /// When the first unconfirmed attempt began (before its request was written).
    pub since: DateTime<Utc>,
    /// When the last unconfirmed attempt ended (its answer given up on, or its worker found
    /// dead): Twilio created nothing of it later.
    pub until: DateTime<Utc>,
    /// SIDs already recorded as other messages': an identical message (same text, recipient
    /// and sender: a schedule's repeated text, two accounts on the shared sender) is not this one.
    pub skip: &'a [String],
}

/// One page of List Messages.
#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    messages: Vec<Listed>,
    /// The next page's path and query, relative to the API root; `null` on the last page.
    next_page_uri: Option<String>,
}

/// The Message resource's fields the match reads.
#[derive(Debug, Deserialize)]
struct Listed {
    sid: String,
    from: Option<String>,
    messaging_service_sid: Option<String>,
    body: Option<String>,
    /// RFC 2822, e.g. `Fri, 24 May 2019 17:44:46 +0000`.
    date_created: Option<String>,
}

impl Listed {
    fn is_attempt(&self, lookup: &Lookup<'_>) -> bool {
        let same_sender = match lookup.sender {
            Sender::From(from) => self.from.as_deref() == Some(from.as_str()),
            Sender::MessagingService(sid) => {
                self.messaging_service_sid.as_deref() == Some(sid.as_str())
            }
        };
        // A date Twilio did not send or we cannot read cannot place the message after the
        // attempt began: not a match.
        let created = self
            .date_created
            .as_deref()
            .and_then(|date| DateTime::parse_from_rfc2822(date).ok());
        same_sender
            && self.body.as_deref() == Some(lookup.body)
            && !lookup.skip.contains(&self.sid)
            && created.is_some_and(|created| {
                created >= lookup.since - CLOCK_SKEW && created <= lookup.until + CLOCK_SKEW
            })
    }
}

impl Twilio {
    /// Looks for the message an attempt may have created; returns its SID (`SM…`) when Twilio
    /// has it, whatever its status. Sandbox mode sent nothing, so it finds nothing.
    ///
    /// Errors: `Retryable` or `CredentialsRefused` — the look-up itself failed (nothing is
    /// created by it, so try again later); `Permanent` — Twilio refused the look-up request;
    /// `Unconfirmed` — [`MAX_PAGES`] pages were read without ruling the message out.
    pub async fn find_sent(&self, lookup: &Lookup<'_>) -> Result<Option<String>, TwilioError> {
        let Some(credentials) = &self.credentials else {
            return Ok(None);
        };
        let to = lookup.channel.address(lookup.to);
        let mut query = vec![("To", to.as_str()), ("PageSize", PAGE_SIZE)];
        if let Sender::From(from) = lookup.sender {
            query.push(("From", from));
        }
        let mut request = self.http.get(&self.messages_url).query(&query);
        for _ in 0..MAX_PAGES {
            let page = self
                .read_page(request.basic_auth(
                    &credentials.account_sid,
                    Some(credentials.auth_token.expose_secret()),
                ))
                .await?;
            if let Some(found) = page.messages.iter().find(|m| m.is_attempt(lookup)) {
                return Ok(Some(found.sid.clone()));
            }
            let Some(next) = page.next_page_uri else {
                return Ok(None);
            };
            // Only a path on the same API: the credentials go with the request.
            if !next.starts_with('/') {
                return Err(TwilioError::Retryable {
                    message: format!("twilio list messages: unexpected next_page_uri {next:?}"),
                    retry_after: None,
                });
            }
            request = self.http.get(format!("{}{next}", self.base_url));
        }
        Err(TwilioError::Unconfirmed {
            message: format!(
                "twilio list messages: {MAX_PAGES} pages of messages to {to} read without \
                 finding or ruling out the message"
            ),
            retry_after: None,
        })
    }

    /// Sends one List Messages request and reads its page. A look-up creates nothing, so
    /// every failure to get an answer is retryable.
    async fn read_page(&self, request: reqwest::RequestBuilder) -> Result<Page, TwilioError> {
        let retryable = |message: String, retry_after| TwilioError::Retryable {
            message,
            retry_after,
        };
        let response = request.send().await.map_err(|err| {
            retryable(
                format!("twilio list messages failed: {}", error_chain(&err)),
                None,
            )
        })?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.map_err(|err| {
            retryable(
                format!("twilio list messages unreadable: {}", error_chain(&err)),
                retry_after,
            )
        })?;
        if !status.is_success() {
            let answer = serde_json::from_slice(&body).ok();
            return Err(match error_answer(status, retry_after, answer, &body) {
                TwilioError::Unconfirmed {
                    message,
                    retry_after,
                } => retryable(message, retry_after),
                other => other,
            });
        }
        serde_json::from_slice(&body).map_err(|err| {
            retryable(
                format!(
                    "twilio list messages: unreadable page ({err}): {}",
                    snippet(&body)
                ),
                None,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(from: &str, service: Option<&str>, body: &str, created: &str) -> Listed {
        Listed {
            sid: "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_owned(),
            from: Some(from.to_owned()),
            messaging_service_sid: service.map(str::to_owned),
            body: Some(body.to_owned()),
            date_created: Some(created.to_owned()),
        }
    }

    fn since() -> DateTime<Utc> {
        "2026-12-07T10:00:00.600Z".parse().unwrap()
    }

    #[test]
    fn a_message_created_in_the_same_second_as_the_attempt_began_is_the_attempts() {
        let sender = Sender::From("+15005550006".to_owned());
        let lookup = Lookup {
            to: "+14155550100",
            channel: Channel::Sms,
            sender: &sender,
            body: "Day 1",
            since: since(),
            until: since() + TimeDelta::seconds(30),
            skip: &[],
        };
        // Twilio's whole seconds put it 0.6 s before the attempt began.
        let same_second = listed(
            "+15005550006",
            None,
            "Day 1",
            "Mon, 07 Dec 2026 10:00:00 +0000",
        );
        assert!(same_second.is_attempt(&lookup));
        let in_another_zone = listed(
            "+15005550006",
            None,
            "Day 1",
            "Mon, 07 Dec 2026 11:00:05 +0100",
        );
        assert!(in_another_zone.is_attempt(&lookup));
        let well_before = listed(
            "+15005550006",
            None,
            "Day 1",
            "Mon, 07 Dec 2026 09:59:49 +0000",
        );
        assert!(!well_before.is_attempt(&lookup));
        let unreadable_date = listed("+15005550006", None, "Day 1", "2026-12-07T10:00:01Z");
        assert!(!unreadable_date.is_attempt(&lookup));
    }

    #[test]
    fn a_messaging_service_sender_is_matched_on_the_service_not_the_number() {
        let sender = Sender::MessagingService("MG0123456789abcdef0123456789abcdef".to_owned());
        let lookup = Lookup {
            to: "+14155550100",
            channel: Channel::Sms,
            sender: &sender,
            body: "Day 1",
            since: since(),
            until: since() + TimeDelta::seconds(30),
            skip: &[],
        };
        let created = "Mon, 07 Dec 2026 10:00:03 +0000";
        let from_the_pool = listed(
            "+12019235161",
            Some("MG0123456789abcdef0123456789abcdef"),
            "Day 1",
            created,
        );
        assert!(from_the_pool.is_attempt(&lookup));
        let another_service = listed(
            "+12019235161",
            Some("MGffffffffffffffffffffffffffffffff"),
            "Day 1",
            created,
        );
        assert!(!another_service.is_attempt(&lookup));
    }
}
