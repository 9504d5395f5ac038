//! `campaign_sends`: a running campaign's e-mails, one per prospect and step, each an outbound
//! message (source `campaign`, effect kind `campaign_email`).
//!
//! The launch writes every prospect's first e-mail ([`launch`]); the worker's follow-up pass
//! ([`follow_up`]) reads each send once its effect has ended and plans the prospect's next
//! step, or ends the prospect's sequence. Pause holds the unsent e-mails, resume re-plans them,
//! stop cancels them ([`hold`], [`held`], [`release`], [`cancel`]); replies, unsubscribes and
//! bounces end one prospect's sequence ([`end_sequence`]).

use chrono::{DateTime, NaiveTime, Utc};
use serde_json::json;
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use super::outbound_messages::{self, Batch, NewMessage};
use crate::effects::{EffectKind, EffectState, MessageSource};
use crate::providers::outreach::OutreachEmail;

/// The idempotency key of a prospect's e-mail for one step: planning it twice plans one.
fn key(campaign_id: Uuid, person_id: Uuid, position: i32) -> String {
    format!("campaign_email:{campaign_id}:{person_id}:{position}")
}

/// One e-mail to plan.
#[derive(Debug, Clone)]
pub struct NewSend {
    pub person_id: Uuid,
    pub position: i32,
    pub sender_id: Uuid,
    pub sender_email: String,
    pub at: DateTime<Utc>,
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

/// Plans `sends` of the campaign as outbound messages with their `campaign_sends` rows, in the
/// caller's transaction. Returns how many were planned (one planned before is left alone).
pub async fn plan(
    conn: &mut PgConnection,
    account_id: Uuid,
    campaign_id: Uuid,
    queue: &str,
    sends: &[NewSend],
) -> Result<usize, sqlx::Error> {
    let batch = Batch {
        account_id,
        source: MessageSource::Campaign,
        kind: EffectKind::CampaignEmail,
        queue,
        revive_canceled: None,
    };
    let messages: Vec<NewMessage> = sends
        .iter()
        .map(|send| NewMessage {
            key: key(campaign_id, send.person_id, send.position),
            due_at: send.at,
            payload: json!({
                "campaign_id": campaign_id,
                "person_id": send.person_id,
                "step": send.position,
            }),
            channel: Some("email"),
            student_id: None,
            recipient: Some(send.recipient.clone()),
            subject: Some(send.subject.clone()),
            body: send.body.clone(),
        })
        .collect();
    let planned = outbound_messages::plan(conn, &batch, &messages).await?;
    let effects: Vec<Uuid> = planned.iter().map(|(id, _)| *id).collect();
    let people: Vec<Uuid> = planned.iter().map(|(_, i)| sends[*i].person_id).collect();
    let positions: Vec<i32> = planned.iter().map(|(_, i)| sends[*i].position).collect();
    let senders: Vec<Uuid> = planned.iter().map(|(_, i)| sends[*i].sender_id).collect();
    let message_ids: Vec<String> = planned
        .iter()
        .map(|(id, i)| OutreachEmail::message_id_for(*id, &sends[*i].sender_email))
        .collect();
    sqlx::query!(
        "insert into campaign_sends (effect_id, account_id, campaign_id, person_id, position,
                                     sender_id, message_id)
         select s.effect_id, $1, $2, s.person_id, s.position, s.sender_id, s.message_id
         from unnest($3::uuid[], $4::uuid[], $5::int[], $6::uuid[], $7::text[])
              as s(effect_id, person_id, position, sender_id, message_id)",
        account_id,
        campaign_id,
        &effects,
        &people,
        &positions,
        &senders,
        &message_ids,
    )
    .execute(&mut *conn)
    .await?;
    Ok(planned.len())
}

/// A prospect whose first e-mail is written, to launch.
#[derive(Debug, Clone, FromRow)]
pub struct FirstStep {
    pub person_id: Uuid,
    pub email: String,
    pub timezone: Option<String>,
    pub subject: String,
    pub body: String,
}

/// The active prospects of the campaign whose first e-mail is written, in the order they were
/// added, with its text.
pub async fn first_steps(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
) -> Result<Vec<FirstStep>, sqlx::Error> {
    sqlx::query_as!(
        FirstStep,
        r#"select cp.person_id, p.email, p.timezone, m.subject as "subject!", m.body as "body!"
         from campaign_prospects cp
         join people p on p.id = cp.person_id
         join campaign_messages m on m.campaign_id = cp.campaign_id
                                 and m.person_id = cp.person_id and m.position = 1
         where cp.campaign_id = $1 and cp.state = 'active' and m.state = 'done'
         order by cp.added_at, cp.person_id"#,
        campaign_id,
    )
    .fetch_all(executor)
    .await
}

/// When each of `senders` sent or is to send a campaign e-mail (of any campaign): its sends of
/// the last 24 hours and those planned, in time order, so a launch plans around them.
pub async fn booked(
    executor: impl PgExecutor<'_>,
    senders: &[Uuid],
) -> Result<Vec<(Uuid, DateTime<Utc>)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select cs.sender_id, coalesce(e.finished_at, e.next_attempt_at) as "at!"
         from campaign_sends cs join effects e on e.id = cs.effect_id
         where cs.sender_id = any($1)
           -- held e-mails of a paused campaign are re-planned when it resumes: not booked
           and (e.state in ('planned', 'queued', 'sending', 'retrying')
                or (e.state in ('sent', 'sandboxed', 'unknown')
                    and e.finished_at > now() - interval '24 hours'))
         order by 2"#,
        senders,
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.sender_id, row.at))
        .collect())
}

/// Marks prospects `skipped` with `reason` (still `active` ones only) and cancels their
/// e-mails not yet handed over, in the caller's transaction: those a launch or resume cannot
/// plan.
pub async fn skip_prospects(
    conn: &mut PgConnection,
    campaign_id: Uuid,
    people: &[Uuid],
    reason: &str,
) -> Result<u64, sqlx::Error> {
    if people.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query!(
        "update campaign_prospects set state = 'skipped', skip_reason = $3
         where campaign_id = $1 and person_id = any($2) and state = 'active'",
        campaign_id,
        people,
        reason,
    )
    .execute(&mut *conn)
    .await?;
    cancel_unsent(conn, campaign_id, Some(people), reason).await?;
    Ok(done.rows_affected())
}

/// Marks the campaign's active prospects with no e-mail planned `skipped` with `reason`, in
/// the caller's transaction: at launch, those whose first e-mail is not written.
pub async fn skip_unlaunched(
    conn: &mut PgConnection,
    campaign_id: Uuid,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "update campaign_prospects cp set state = 'skipped', skip_reason = $2
         where cp.campaign_id = $1 and cp.state = 'active'
           and not exists (select from campaign_sends cs
                           where cs.campaign_id = cp.campaign_id and cs.person_id = cp.person_id)",
        campaign_id,
        reason,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A campaign e-mail as the worker sees it when it goes out: the message, its prospect and
/// campaign as they are now, the sender, and the prospect's earlier steps.
#[derive(Debug, Clone, FromRow)]
pub struct ToSend {
    pub account_id: Uuid,
    pub campaign_id: Uuid,
    pub person_id: Uuid,
    pub position: i32,
    pub message_id: String,
    pub campaign_state: String,
    pub default_timezone: String,
    pub window_days: Vec<i16>,
    pub window_start: NaiveTime,
    pub window_end: NaiveTime,
    pub campaign_daily_cap: i32,
    pub prospect_state: String,
    pub email: String,
    pub timezone: Option<String>,
    /// The reason of the account's suppression of the address, if there is one.
    pub suppressed: Option<String>,
    pub subject: Option<String>,
    pub body: String,
    pub sender_id: Uuid,
    pub from_name: String,
    pub from_email: String,
    pub reply_to: Option<String>,
    pub transport: String,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i32>,
    pub smtp_tls: Option<String>,
    pub smtp_username: Option<String>,
    pub sealed_secret: Option<String>,
    pub daily_cap: i32,
    pub min_gap_secs: i32,
    /// When the sender was last changed: a cached connection to an older version is not used.
    pub sender_updated_at: DateTime<Utc>,
    /// The `Message-ID`s of the prospect's earlier steps, oldest first.
    pub thread: Vec<String>,
}

/// The campaign e-mail of effect `effect_id`; `None` when it (or its prospect) is gone.
pub async fn find_to_send(
    executor: impl PgExecutor<'_>,
    effect_id: Uuid,
) -> Result<Option<ToSend>, sqlx::Error> {
    sqlx::query_as!(
        ToSend,
        r#"select cs.account_id, cs.campaign_id, cs.person_id, cs.position, cs.message_id,
                c.state as campaign_state, c.default_timezone, c.window_days, c.window_start,
                c.window_end, c.daily_cap as campaign_daily_cap,
                cp.state as prospect_state, p.email, p.timezone,
                (select s.reason from suppressions s
                 where s.account_id = cs.account_id and lower(s.email) = lower(p.email))
                    as suppressed,
                m.subject, m.body,
                snd.id as sender_id, snd.from_name, snd.from_email, snd.reply_to, snd.transport,
                snd.smtp_host, snd.smtp_port, snd.smtp_tls, snd.smtp_username, snd.sealed_secret,
                snd.daily_cap, snd.min_gap_secs, snd.updated_at as sender_updated_at,
                array(select t.message_id from campaign_sends t
                      where t.campaign_id = cs.campaign_id and t.person_id = cs.person_id
                        and t.position < cs.position
                      order by t.position) as "thread!"
         from campaign_sends cs
         join campaigns c on c.id = cs.campaign_id
         join campaign_prospects cp on cp.campaign_id = cs.campaign_id
                                   and cp.person_id = cs.person_id
         join people p on p.id = cs.person_id
         join outbound_messages m on m.effect_id = cs.effect_id
         join email_senders snd on snd.id = cs.sender_id
         where cs.effect_id = $1"#,
        effect_id,
    )
    .fetch_optional(executor)
    .await
}

/// How a prospect's sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Replied,
    Unsubscribed,
    Bounced,
    Completed,
    /// `skipped` with a reason: a step could not be sent.
    Skipped,
}

impl Ending {
    fn state(self) -> &'static str {
        match self {
            Self::Replied => "replied",
            Self::Unsubscribed => "unsubscribed",
            Self::Bounced => "bounced",
            Self::Completed => "completed",
            Self::Skipped => "skipped",
        }
    }
}

/// Ends an `active` prospect's sequence (`reason` is kept for `skipped`) and cancels its
/// e-mails not yet handed over, with `reason` as their error. True when the prospect was
/// active. One being handed over reads the prospect's state before it goes out.
pub async fn end_sequence(
    conn: &mut PgConnection,
    campaign_id: Uuid,
    person_id: Uuid,
    ending: Ending,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let ended = sqlx::query!(
        "update campaign_prospects
         set state = $3, skip_reason = case when $3 = 'skipped' then $4 end
         where campaign_id = $1 and person_id = $2 and state = 'active'",
        campaign_id,
        person_id,
        ending.state(),
        reason,
    )
    .execute(&mut *conn)
    .await?;
    cancel_unsent(conn, campaign_id, Some(&[person_id]), reason).await?;
    Ok(ended.rows_affected() == 1)
}

/// Holds the campaign's e-mails not yet handed over (a pause), in the caller's transaction.
async fn hold(conn: &mut PgConnection, campaign_id: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "update effects set state = 'held', last_error = 'the campaign is paused'
         where id in (select effect_id from campaign_sends where campaign_id = $1)
           and state = any($2) and state <> 'held'",
        campaign_id,
        &EffectState::NOT_STARTED[..] as &[EffectState],
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Pauses the campaign if it is running, holding its e-mails not yet handed over, in the
/// caller's transaction: `POST …/pause`, and the worker when SendGrid refuses a sender's key.
/// False (nothing changed) when it was not running.
pub async fn pause(conn: &mut PgConnection, campaign_id: Uuid) -> Result<bool, sqlx::Error> {
    let paused = sqlx::query!(
        "update campaigns set state = 'paused' where id = $1 and state = 'running'",
        campaign_id,
    )
    .execute(&mut *conn)
    .await?;
    if paused.rows_affected() == 0 {
        return Ok(false);
    }
    hold(conn, campaign_id).await?;
    Ok(true)
}

/// Cancels the campaign's e-mails not yet handed over (a stop), in the caller's transaction.
pub async fn cancel(conn: &mut PgConnection, campaign_id: Uuid) -> Result<u64, sqlx::Error> {
    cancel_unsent(conn, campaign_id, None, "the campaign was stopped").await
}

/// Cancels the e-mails not yet handed over of the campaign (of `people` only, when given)
/// with `reason` as their error. One being handed over reads the change before it goes out.
async fn cancel_unsent(
    conn: &mut PgConnection,
    campaign_id: Uuid,
    people: Option<&[Uuid]>,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "update effects set state = 'canceled', last_error = $3, finished_at = now()
         where id in (select effect_id from campaign_sends
                      where campaign_id = $1 and ($2::uuid[] is null or person_id = any($2)))
           and state = any($4)",
        campaign_id,
        people as Option<&[Uuid]>,
        reason,
        &EffectState::NOT_STARTED[..] as &[EffectState],
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A held e-mail of a paused campaign, to re-plan on resume.
#[derive(Debug, Clone, FromRow)]
pub struct Held {
    pub effect_id: Uuid,
    pub person_id: Uuid,
    pub position: i32,
    pub sender_id: Uuid,
    pub timezone: Option<String>,
    pub due_at: DateTime<Utc>,
}

/// The campaign's held e-mails, first steps in the order their prospects were added, then
/// follow-ups by their planned time.
pub async fn held(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
) -> Result<Vec<Held>, sqlx::Error> {
    sqlx::query_as!(
        Held,
        "select cs.effect_id, cs.person_id, cs.position, cs.sender_id, p.timezone,
                e.next_attempt_at as due_at
         from campaign_sends cs
         join effects e on e.id = cs.effect_id
         join people p on p.id = cs.person_id
         join campaign_prospects cp on cp.campaign_id = cs.campaign_id
                                   and cp.person_id = cs.person_id
         where cs.campaign_id = $1 and e.state = 'held'
         order by cs.position > 1, cp.added_at, e.next_attempt_at, cs.person_id",
        campaign_id,
    )
    .fetch_all(executor)
    .await
}

/// How many of the campaign's first e-mails went out (or may have: `unknown`) since `since`.
pub async fn first_sent_since(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
    since: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from campaign_sends cs join effects e on e.id = cs.effect_id
           where cs.campaign_id = $1 and cs.position = 1
             and e.state in ('sent', 'sandboxed', 'unknown') and e.finished_at >= $2"#,
        campaign_id,
        since,
    )
    .fetch_one(executor)
    .await
}

/// Puts held e-mails back to be sent at their new instants, from their new senders (a first
/// step may change sender on resume; a follow-up keeps its thread's), in the caller's
/// transaction.
pub async fn release(
    conn: &mut PgConnection,
    released: &[(Uuid, Uuid, DateTime<Utc>)],
) -> Result<u64, sqlx::Error> {
    let ids: Vec<Uuid> = released.iter().map(|(id, _, _)| *id).collect();
    let senders: Vec<Uuid> = released.iter().map(|(_, sender, _)| *sender).collect();
    let ats: Vec<DateTime<Utc>> = released.iter().map(|(_, _, at)| *at).collect();
    let done = sqlx::query!(
        "with r as (select * from unnest($1::uuid[], $2::uuid[], $3::timestamptz[])
                    as r(id, sender_id, at)),
         moved as (
             update effects e set state = 'planned', last_error = null,
                 due_at = r.at, next_attempt_at = r.at
             from r where e.id = r.id and e.state = 'held'
             returning e.id)
         update campaign_sends cs set sender_id = r.sender_id
         from r where cs.effect_id = r.id and r.id in (select id from moved)",
        &ids,
        &senders,
        &ats,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Parks a started campaign e-mail whose campaign was paused when the handler looked. The
/// campaign is read again under a share lock, which waits for a pause, resume or stop in
/// progress: the row ends `held` only if the campaign is still paused, `canceled` if it ended,
/// back to `planned` (due now) if it runs again.
pub async fn park(pool: &sqlx::PgPool, id: Uuid, token: Uuid) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let state: Option<String> = sqlx::query_scalar!(
        "select c.state from campaigns c join campaign_sends cs on cs.campaign_id = c.id
         where cs.effect_id = $1 for share of c",
        id,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (state, error) = match state.as_deref() {
        Some("paused") => ("held", "the campaign is paused"),
        Some("running") => ("planned", "the campaign runs again"),
        _ => ("canceled", "the campaign ended"),
    };
    let done = sqlx::query!(
        "update effects set state = $2, last_error = $3,
             next_attempt_at = case when $2 = 'planned' then now() else next_attempt_at end,
             finished_at = case when $2 = 'canceled' then now() else null end
         where id = $1 and state = 'sending' and start_token = $4",
        id,
        state,
        error,
        token,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// A send whose effect has ended, for the follow-up pass.
#[derive(Debug, Clone, FromRow)]
pub struct Ended {
    pub effect_id: Uuid,
    pub account_id: Uuid,
    pub campaign_id: Uuid,
    pub person_id: Uuid,
    pub position: i32,
    pub sender_id: Uuid,
    pub sender_email: String,
    pub effect_state: EffectState,
    pub last_error: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
    pub campaign_state: String,
    pub default_timezone: String,
    pub window_days: Vec<i16>,
    pub window_start: NaiveTime,
    pub window_end: NaiveTime,
    pub prospect_state: String,
    pub email: String,
    pub timezone: Option<String>,
    /// The next step's delay and text, when there is a next step and it is written.
    pub next_delay_days: Option<i32>,
    pub next_subject: Option<String>,
    pub next_body: Option<String>,
    /// Whether the campaign has a step after this one (written or not).
    pub has_next_step: bool,
}

/// Up to `limit` sends whose effect has ended and whose outcome the follow-up pass has not
/// looked at, of running or ended campaigns (a paused campaign's wait for its resume), locked
/// for the caller's transaction (`skip locked`: replicas share the work).
pub async fn ended(conn: &mut PgConnection, limit: i64) -> Result<Vec<Ended>, sqlx::Error> {
    sqlx::query_as!(
        Ended,
        r#"select cs.effect_id, cs.account_id, cs.campaign_id, cs.person_id, cs.position,
                cs.sender_id, snd.from_email as sender_email,
                e.state as "effect_state: EffectState", e.last_error, e.finished_at,
                c.state as campaign_state, c.default_timezone, c.window_days, c.window_start,
                c.window_end, cp.state as prospect_state, p.email, p.timezone,
                st.delay_days as "next_delay_days?", m.subject as "next_subject?",
                m.body as "next_body?", st.position is not null as "has_next_step!"
         from campaign_sends cs
         join effects e on e.id = cs.effect_id
         join campaigns c on c.id = cs.campaign_id
         join campaign_prospects cp on cp.campaign_id = cs.campaign_id
                                   and cp.person_id = cs.person_id
         join people p on p.id = cs.person_id
         join email_senders snd on snd.id = cs.sender_id
         left join campaign_steps st on st.campaign_id = cs.campaign_id
                                    and st.position = cs.position + 1
         left join campaign_messages m on m.campaign_id = cs.campaign_id
                                      and m.person_id = cs.person_id
                                      and m.position = cs.position + 1 and m.state = 'done'
         where not cs.followed_up and c.state <> 'paused'
           and e.state in ('sent', 'sandboxed', 'failed', 'dead', 'unknown', 'canceled')
         order by e.finished_at
         limit $1
         for update of cs skip locked"#,
        limit,
    )
    .fetch_all(conn)
    .await
}

/// Records that the follow-up pass has dealt with these sends.
pub async fn mark_followed_up(conn: &mut PgConnection, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update campaign_sends set followed_up = true where effect_id = any($1)",
        ids,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves every running campaign with no active prospect left to `completed`; their ids.
pub async fn complete_finished(conn: &mut PgConnection) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "update campaigns c set state = 'completed'
         where c.state = 'running'
           and not exists (select from campaign_prospects cp
                           where cp.campaign_id = c.id and cp.state = 'active')
         returning c.id",
    )
    .fetch_all(conn)
    .await
}

/// Cancels every e-mail of `person_id` not yet handed over, in every campaign (the person is
/// being deleted: their sends go with them, and a held e-mail would be left held for ever).
pub async fn cancel_for_person(
    conn: &mut PgConnection,
    person_id: Uuid,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "update effects set state = 'canceled', last_error = 'the person was deleted',
             finished_at = now()
         where id in (select effect_id from campaign_sends where person_id = $1)
           and state = any($2)",
        person_id,
        &EffectState::NOT_STARTED[..] as &[EffectState],
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A sent e-mail a reply, event or bounce names, by its `Message-ID` or effect.
#[derive(Debug, Clone, FromRow)]
pub struct SentSend {
    pub effect_id: Uuid,
    pub account_id: Uuid,
    pub campaign_id: Uuid,
    pub person_id: Uuid,
    pub email: String,
    /// Its sender's transport, `smtp` or `sendgrid`.
    pub transport: String,
}

/// The campaign e-mail of one of `effect_ids` (the latest step), as a provider's event names
/// it.
pub async fn find_sent(
    executor: impl PgExecutor<'_>,
    effect_ids: &[Uuid],
) -> Result<Option<SentSend>, sqlx::Error> {
    sqlx::query_as!(
        SentSend,
        "select cs.effect_id, cs.account_id, cs.campaign_id, cs.person_id, p.email,
                snd.transport
         from campaign_sends cs join people p on p.id = cs.person_id
         join email_senders snd on snd.id = cs.sender_id
         where cs.effect_id = any($1)
         order by cs.position desc
         limit 1",
        effect_ids,
    )
    .fetch_optional(executor)
    .await
}

/// The campaign e-mail among `effect_ids` whose stored Message-ID is one of `message_ids`
/// (the latest step first): a reply names what it answers by Message-ID, and an id Herald did
/// not write (another domain) matches nothing.
pub async fn find_sent_by_message_ids(
    executor: impl PgExecutor<'_>,
    effect_ids: &[Uuid],
    message_ids: &[String],
) -> Result<Option<SentSend>, sqlx::Error> {
    sqlx::query_as!(
        SentSend,
        "select cs.effect_id, cs.account_id, cs.campaign_id, cs.person_id, p.email,
                snd.transport
         from campaign_sends cs join people p on p.id = cs.person_id
         join email_senders snd on snd.id = cs.sender_id
         where cs.effect_id = any($1) and cs.message_id = any($2)
         order by cs.position desc
         limit 1",
        effect_ids,
        message_ids,
    )
    .fetch_optional(executor)
    .await
}

/// One step's e-mails by what became of them.
#[derive(Debug, Clone, FromRow)]
pub struct StepSending {
    pub position: i32,
    /// Waiting for their time (or being handed over).
    pub planned: i64,
    /// Held by a pause.
    pub held: i64,
    pub sent: i64,
    /// Failed, given up, or possibly sent (`unknown`).
    pub failed: i64,
    /// Not sent: the prospect replied, unsubscribed or bounced, the campaign was stopped.
    pub canceled: i64,
}

/// The campaign's e-mails per step by state.
pub async fn sending(
    executor: impl PgExecutor<'_>,
    campaign_id: Uuid,
) -> Result<Vec<StepSending>, sqlx::Error> {
    sqlx::query_as!(
        StepSending,
        r#"select cs.position,
                count(*) filter (where e.state in ('planned', 'queued', 'sending', 'retrying'))
                    as "planned!",
                count(*) filter (where e.state = 'held') as "held!",
                count(*) filter (where e.state in ('sent', 'sandboxed')) as "sent!",
                count(*) filter (where e.state in ('failed', 'dead', 'unknown')) as "failed!",
                count(*) filter (where e.state = 'canceled') as "canceled!"
         from campaign_sends cs join effects e on e.id = cs.effect_id
         where cs.campaign_id = $1
         group by cs.position
         order by cs.position"#,
        campaign_id,
    )
    .fetch_all(executor)
    .await
}
