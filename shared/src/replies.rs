//! Inbound messages from students, routed to the account they are for — never to a guess.
//!
//! A message is for the account that owns the sender it was sent to (`To`, or the
//! `MessagingServiceSid` when present). On the platform's shared default sender, a reply
//! belongs to an account only when exactly one account sent that phone a question from that
//! sender within `twilio.reply_window_secs`; otherwise it is kept unattributed (visible to no
//! account, counted in `herald_twilio_inbound_unattributed_total`, logged). Opt-out keywords
//! speak to every account the sender serves (the owner, or on the shared sender all accounts
//! it sends for, as the carrier's block does); opt-in keywords undo only what an opt-out
//! keyword did.
//!
//! Each message is recorded once per `MessageSid`, so a webhook Twilio retries records one
//! answer.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::config::TwilioConfig;
use crate::courses;
use crate::db::twilio_events::{self, AskedFrom, Audience, InboundMessage, Keyword};
use crate::db::{account_senders, student_messages};

/// Keywords that unsubscribe a student (Twilio's standard opt-out words).
const STOP_WORDS: [&str; 6] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
/// Keywords that subscribe them again.
const START_WORDS: [&str; 2] = ["START", "UNSTOP"];

/// What an inbound message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The same `MessageSid` was handled before: nothing done again.
    Duplicate,
    /// An answer to this account's question, recorded.
    Answer { account: Uuid },
    /// An opt-out keyword: these many students unsubscribed.
    OptOut { students: usize },
    /// An opt-in keyword: these many students subscribed again.
    OptIn { students: usize },
    /// For this account, but it asked nothing recently.
    NoQuestion { account: Uuid },
    /// No account could be named; kept for no one.
    Unattributed { reason: &'static str },
}

/// Who an inbound message's sender belongs to.
enum Owner {
    Account(Uuid),
    /// The platform's default sender, shared by every account without its own.
    Shared,
    /// Not a sender Herald sends from.
    Unknown,
}

/// Records and applies one inbound message, in the caller's transaction.
pub async fn handle(
    conn: &mut PgConnection,
    config: &TwilioConfig,
    message: &InboundMessage<'_>,
) -> Result<Handled, sqlx::Error> {
    let Some(id) = twilio_events::record_inbound(&mut *conn, message).await? else {
        return Ok(Handled::Duplicate);
    };
    let (channel, to_number) = match message.to.strip_prefix("whatsapp:") {
        Some(number) => ("whatsapp", number),
        None => ("sms", message.to),
    };
    let owner = match account_senders::owner(
        &mut *conn,
        channel,
        to_number,
        message.messaging_service_sid,
    )
    .await?
    {
        Some(account) => Owner::Account(account),
        None if message
            .messaging_service_sid
            .is_some_and(|sid| config.is_shared_service(sid))
            || config.is_shared_number(channel == "whatsapp", to_number) =>
        {
            Owner::Shared
        }
        None => Owner::Unknown,
    };
    let audience = match owner {
        Owner::Account(account) => Audience::Account(account),
        Owner::Shared => Audience::SharedSender { channel },
        Owner::Unknown => {
            return unattributed(message, "sent to a sender Herald does not send from");
        }
    };
    let keyword = message.body.trim().to_uppercase();
    let account = match audience {
        Audience::Account(account) => Some(account),
        Audience::SharedSender { .. } => None,
    };
    if STOP_WORDS.contains(&keyword.as_str()) {
        let students =
            twilio_events::apply_keyword(&mut *conn, message.from_phone, audience, Keyword::OptOut)
                .await?;
        student_messages::skip_unsent_for_students(
            &mut *conn,
            &students,
            "student unsubscribed (STOP)",
        )
        .await?;
        twilio_events::set_inbound_outcome(&mut *conn, id, account, "opt_out").await?;
        tracing::info!(students = students.len(), "opt-out keyword received");
        return Ok(Handled::OptOut {
            students: students.len(),
        });
    }
    if START_WORDS.contains(&keyword.as_str()) {
        let students =
            twilio_events::apply_keyword(&mut *conn, message.from_phone, audience, Keyword::OptIn)
                .await?;
        twilio_events::set_inbound_outcome(&mut *conn, id, account, "opt_in").await?;
        tracing::info!(students = students.len(), "opt-in keyword received");
        return Ok(Handled::OptIn {
            students: students.len(),
        });
    }
    // the senders a question answered here was sent from: this number or this service
    let senders: Vec<&str> = [Some(message.to), message.messaging_service_sid]
        .into_iter()
        .flatten()
        .collect();
    let asked_from = AskedFrom {
        senders: &senders,
        shared: account.is_none(),
        window_secs: config.reply_window_secs,
    };
    let account = match account {
        Some(account) => account,
        None => {
            let asked =
                twilio_events::accounts_that_asked(&mut *conn, message.from_phone, asked_from)
                    .await?;
            match asked.as_slice() {
                [account] => *account,
                [] => return unattributed(message, "no account asked this phone recently"),
                _ => {
                    return unattributed(
                        message,
                        "more than one account asked this phone from the shared sender",
                    );
                }
            }
        }
    };
    let Some(question) =
        twilio_events::latest_question(conn, account, message.from_phone, asked_from).await?
    else {
        twilio_events::set_inbound_outcome(&mut *conn, id, Some(account), "no_question").await?;
        return Ok(Handled::NoQuestion { account });
    };
    let text = message.body.trim();
    let correct = match (
        question.kind.as_deref(),
        &question.options,
        &question.correct_answer,
    ) {
        (Some("choice"), Some(options), Some(answer)) => {
            Some(courses::is_correct(text, &options.0, answer))
        }
        _ => None,
    };
    twilio_events::insert_answer(&mut *conn, &question, text, correct).await?;
    twilio_events::set_inbound_outcome(&mut *conn, id, Some(account), "answer").await?;
    Ok(Handled::Answer { account })
}

/// Keeps a message for no account (it stays recorded as `unattributed`).
fn unattributed(
    message: &InboundMessage<'_>,
    reason: &'static str,
) -> Result<Handled, sqlx::Error> {
    metrics::counter!("herald_twilio_inbound_unattributed_total", "reason" => reason).increment(1);
    tracing::warn!(
        message_sid = message.message_sid,
        to = message.to,
        reason,
        "inbound message attributed to no account"
    );
    Ok(Handled::Unattributed { reason })
}
