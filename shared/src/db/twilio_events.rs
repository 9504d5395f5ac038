//! What Twilio tells Herald: opt-out and opt-in keywords and replies to questions. (Status
//! callbacks are recorded on the message: `outbound_messages::record_provider_status`.)

use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// Which accounts an inbound message on a sender speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'a> {
    /// The account that owns the sender.
    Account(Uuid),
    /// Every account the platform's shared sender serves on this channel (`sms` or
    /// `whatsapp`): those with neither their own Messaging Service nor their own number on it.
    SharedSender { channel: &'a str },
}

impl Audience<'_> {
    fn binds(&self) -> (Option<Uuid>, Option<&str>) {
        match *self {
            Self::Account(account) => (Some(account), None),
            Self::SharedSender { channel } => (None, Some(channel)),
        }
    }
}

/// A subscription keyword a student texted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// STOP and its synonyms: unsubscribes the audience's subscribed students with the phone.
    OptOut,
    /// START and its synonyms: subscribes again the audience's students with the phone that an
    /// opt-out keyword unsubscribed; students an account unsubscribed stay as they are.
    OptIn,
}

/// Applies a keyword from `phone` to the audience's students. Returns the students changed.
///
/// The audience's groups (`groups g`) are those of the account `$2`, or, when `$2` is null,
/// those of every account without its own sender on the channel `$3`.
pub async fn apply_keyword(
    executor: impl PgExecutor<'_>,
    phone: &str,
    audience: Audience<'_>,
    keyword: Keyword,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let (account, channel) = audience.binds();
    sqlx::query_scalar!(
        "update students s set subscribed = $4,
             unsubscribe_reason = case when $4 then s.unsubscribe_reason else 'opt_out_keyword' end
         from groups g
         where g.id = s.group_id and s.phone = $1
           and case when $4 then not s.subscribed and s.unsubscribe_reason = 'opt_out_keyword'
                    else s.subscribed end
           and (g.account_id = $2 or ($2 is null and not exists (
                   select 1 from account_twilio_senders a
                   where a.account_id = g.account_id
                     and (a.messaging_service_sid is not null
                          or (case $3 when 'sms' then a.sms_from else a.whatsapp_from end)
                             is not null))))
         returning s.id",
        phone,
        account,
        channel,
        keyword == Keyword::OptIn,
    )
    .fetch_all(executor)
    .await
}

/// Where a reply could have come from: the senders it answers, and the window.
#[derive(Debug, Clone, Copy)]
pub struct AskedFrom<'a> {
    /// The number it was sent to and the Messaging Service, as messages record their sender.
    pub senders: &'a [&'a str],
    /// The senders are the platform's shared default: questions recorded without a sender
    /// (sent before senders were recorded, when every message went out from the default)
    /// count as sent from it.
    pub shared: bool,
    pub window_secs: u64,
}

// A question that went to `phone` (`$1`) from one of the senders (`$2`; `$4`: a question
// without a recorded sender counts) within the window (`$3` seconds): the condition shared by
// the two queries below.

/// The accounts that sent `phone` a question from one of the senders within the window (at
/// most two: one is all that can be attributed).
pub async fn accounts_that_asked(
    executor: impl PgExecutor<'_>,
    phone: &str,
    from: AskedFrom<'_>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "select distinct d.account_id
         from delivery_messages m
         join deliveries d on d.id = m.delivery_id
         join outbound_messages o on o.effect_id = m.effect_id
         join students s on s.id = o.student_id
         join effects e on e.id = m.effect_id
         left join questions q on q.id = m.question_id
         where s.phone = $1 and m.seq > 0 and e.state in ('sent', 'sandboxed')
           and (o.sent_from = any($2) or (o.sent_from is null and $4))
           and e.finished_at > now() - make_interval(secs => $3::double precision)
         limit 2",
        phone,
        from.senders as &[&str],
        from.window_secs as f64,
        from.shared,
    )
    .fetch_all(executor)
    .await
}

/// A question a reply answers.
#[derive(Debug, Clone)]
pub struct AskedQuestion {
    pub delivery_message_id: Uuid,
    pub delivery_id: Uuid,
    pub student_id: Option<Uuid>,
    /// The question's `type`.
    pub kind: Option<String>,
    pub options: Option<Json<Vec<String>>>,
    pub correct_answer: Option<String>,
}

/// The question `account` most recently sent to `phone` from one of the senders within the
/// window.
pub async fn latest_question(
    conn: &mut PgConnection,
    account: Uuid,
    phone: &str,
    from: AskedFrom<'_>,
) -> Result<Option<AskedQuestion>, sqlx::Error> {
    sqlx::query_as!(
        AskedQuestion,
        r#"select m.id as delivery_message_id, m.delivery_id, o.student_id,
                q.type as "kind?", q.options as "options?: Json<Vec<String>>",
                q.correct_answer as "correct_answer?"
         from delivery_messages m
         join deliveries d on d.id = m.delivery_id
         join outbound_messages o on o.effect_id = m.effect_id
         join students s on s.id = o.student_id
         join effects e on e.id = m.effect_id
         left join questions q on q.id = m.question_id
         where s.phone = $1 and m.seq > 0 and e.state in ('sent', 'sandboxed')
           and (o.sent_from = any($2) or (o.sent_from is null and $4))
           and e.finished_at > now() - make_interval(secs => $3::double precision)
           and d.account_id = $5
         order by e.finished_at desc
         limit 1"#,
        phone,
        from.senders as &[&str],
        from.window_secs as f64,
        from.shared,
        account,
    )
    .fetch_optional(conn)
    .await
}

pub async fn insert_answer(
    executor: impl PgExecutor<'_>,
    question: &AskedQuestion,
    body: &str,
    correct: Option<bool>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into answers (delivery_id, student_id, delivery_message_id, body, correct)
         values ($1, $2, $3, $4, $5)",
        question.delivery_id,
        question.student_id,
        question.delivery_message_id,
        body,
        correct,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// An inbound message as Twilio delivered it.
#[derive(Debug, Clone, Copy)]
pub struct InboundMessage<'a> {
    pub message_sid: &'a str,
    /// The sender's phone, E.164 without a channel prefix.
    pub from_phone: &'a str,
    /// `To` as Twilio sent it (`+1…` or `whatsapp:+1…`).
    pub to: &'a str,
    pub messaging_service_sid: Option<&'a str>,
    pub body: &'a str,
}

/// Records an inbound message once per `MessageSid`: `None` when it was recorded before (a
/// retried webhook), so the caller does nothing again. Recorded `unattributed` until
/// [`set_inbound_outcome`] says otherwise in the same transaction.
pub async fn record_inbound(
    executor: impl PgExecutor<'_>,
    message: &InboundMessage<'_>,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "insert into inbound_messages
             (message_sid, from_phone, to_address, messaging_service_sid, body, outcome)
         values ($1, $2, $3, $4, $5, 'unattributed')
         on conflict (message_sid) do nothing
         returning id",
        message.message_sid,
        message.from_phone,
        message.to,
        message.messaging_service_sid,
        message.body,
    )
    .fetch_optional(executor)
    .await
}

/// Names the account an inbound message was for and what it did.
pub async fn set_inbound_outcome(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    account: Option<Uuid>,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update inbound_messages set account_id = $2, outcome = $3 where id = $1",
        id,
        account,
        outcome,
    )
    .execute(executor)
    .await?;
    Ok(())
}
