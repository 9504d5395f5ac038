//! `outbound_messages`: every message Herald sends (a course delivery's, a schedule's, an
//! account e-mail), whatever planned it. Planners write messages here through [`plan`] with
//! their own facts in their own tables; the worker reads one with [`find_to_send`], and what
//! the provider says afterwards is recorded with [`record_provider_status`] and
//! [`record_refusal`]. The attempt's life (state, attempts, due time) is the effect's
//! (`db::effects`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::account_senders::AccountSenders;
use crate::effects::{EffectKind, EmailPayload, MessageSource};
use crate::telemetry;

/// Rows per bulk insert statement.
const CHUNK: usize = 5_000;

/// Messages to plan together: one source, one account, one kind and queue.
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    pub account_id: Uuid,
    pub source: MessageSource,
    pub kind: EffectKind,
    pub queue: &'a str,
    /// A message whose effect exists already and was canceled with exactly this reason is
    /// planned again (a schedule re-planning a fire it canceled); any other existing effect
    /// is left alone.
    pub revive_canceled: Option<&'a str>,
}

/// One message to plan.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The effect's idempotency key: planning the same key twice plans one message.
    pub key: String,
    pub due_at: DateTime<Utc>,
    /// What the effect's payload carries besides the message (ids shown in the jobs API, a
    /// sealed secret).
    pub payload: Value,
    /// `email` for an e-mail; `None` for a student's message: the student's channel now is
    /// written, and the one they have when it is sent is used (recorded then if it changed).
    pub channel: Option<&'static str>,
    pub student_id: Option<Uuid>,
    pub recipient: Option<String>,
    pub subject: Option<String>,
    pub body: String,
}

/// Plans messages (effect rows and message rows) inside the caller's transaction, recording the
/// API request that plans them (`telemetry::request_id`); returns,
/// for each message planned (new or revived), its effect id and its index in `messages`.
/// Keys that exist already (and are not revived) are missing from the result.
pub async fn plan(
    conn: &mut PgConnection,
    batch: &Batch<'_>,
    messages: &[NewMessage],
) -> Result<Vec<(Uuid, usize)>, sqlx::Error> {
    let mut planned = Vec::with_capacity(messages.len());
    let request_id = telemetry::request_id();
    for (chunk_index, chunk) in messages.chunks(CHUNK).enumerate() {
        let offset = chunk_index * CHUNK;
        // Time-ordered ids (UUIDv7): a bulk plan's rows go to neighbouring leaf pages of the
        // effect and message indexes instead of one random page each (measured on 100,000
        // effects: the insert took a fifth less time).
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
        let keys: Vec<&str> = chunk.iter().map(|m| m.key.as_str()).collect();
        let payloads: Vec<&Value> = chunk.iter().map(|m| &m.payload).collect();
        let dues: Vec<DateTime<Utc>> = chunk.iter().map(|m| m.due_at).collect();
        let written = sqlx::query!(
            "insert into effects (id, account_id, kind, queue, idempotency_key, payload, due_at,
                                  next_attempt_at, request_id)
             select e.id, $1, $2, $3, e.key, e.payload, e.at, e.at, $9
             from unnest($4::uuid[], $5::text[], $6::jsonb[], $7::timestamptz[])
                  as e(id, key, payload, at)
             on conflict (idempotency_key) do update
                 set state = 'planned', due_at = excluded.due_at,
                     next_attempt_at = excluded.next_attempt_at, attempts = 0,
                     last_error = null, finished_at = null, provider_id = null
                 where effects.state = 'canceled' and effects.last_error = $8
             returning id, idempotency_key",
            batch.account_id,
            batch.kind.as_str(),
            batch.queue,
            &ids,
            &keys as &[&str],
            &payloads as &[&Value],
            &dues,
            batch.revive_canceled,
            request_id.as_deref(),
        )
        .fetch_all(&mut *conn)
        .await?;
        let index_of: HashMap<&str, usize> = keys
            .iter()
            .enumerate()
            .map(|(index, key)| (*key, index))
            .collect();
        let rows: Vec<(Uuid, usize)> = written
            .iter()
            .filter_map(|row| Some((row.id, *index_of.get(row.idempotency_key.as_str())?)))
            .collect();
        let messages_written: Vec<(Uuid, &NewMessage)> = rows
            .iter()
            .map(|(id, index)| (*id, &chunk[*index]))
            .collect();
        write_messages(conn, batch, &messages_written).await?;
        planned.extend(rows.iter().map(|(id, index)| (*id, offset + index)));
    }
    Ok(planned)
}

/// Plans one e-mail due now (`None`: one with this key exists already). The effect's payload
/// carries only the sealed secret, if any; the message row holds the rest.
pub async fn plan_email(
    conn: &mut PgConnection,
    account_id: Uuid,
    source: MessageSource,
    queue: &str,
    key: String,
    email: &EmailPayload,
) -> Result<Option<Uuid>, sqlx::Error> {
    let batch = Batch {
        account_id,
        source,
        kind: EffectKind::Email,
        queue,
        revive_canceled: None,
    };
    let payload = match &email.sealed_secret {
        Some(sealed) => serde_json::json!({ "sealed_secret": sealed }),
        None => serde_json::json!({}),
    };
    let message = NewMessage {
        key,
        due_at: Utc::now(),
        payload,
        channel: Some("email"),
        student_id: None,
        recipient: Some(email.to.clone()),
        subject: Some(email.subject.clone()),
        body: email.text.clone(),
    };
    let planned = plan(conn, &batch, std::slice::from_ref(&message)).await?;
    Ok(planned.first().map(|(id, _)| *id))
}

/// The message rows of effects just written; a revived effect's message is written afresh
/// (what the provider said about the canceled one no longer applies).
///
/// A student's message is written with the student's phone and channel as they are when it is
/// planned. The worker still sends to the student as they are at send time and records that
/// when it differs; writing them now means the one update a message gets when it is sent
/// (its sender) changes no indexed column, so PostgreSQL makes it in place (a HOT update on
/// the page room `fillfactor` keeps) instead of a new entry in every index.
async fn write_messages(
    conn: &mut PgConnection,
    batch: &Batch<'_>,
    rows: &[(Uuid, &NewMessage)],
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
    let channels: Vec<Option<&str>> = rows.iter().map(|(_, m)| m.channel).collect();
    let students: Vec<Option<Uuid>> = rows.iter().map(|(_, m)| m.student_id).collect();
    let recipients: Vec<Option<&str>> = rows.iter().map(|(_, m)| m.recipient.as_deref()).collect();
    let subjects: Vec<Option<&str>> = rows.iter().map(|(_, m)| m.subject.as_deref()).collect();
    let bodies: Vec<&str> = rows.iter().map(|(_, m)| m.body.as_str()).collect();
    sqlx::query!(
        "insert into outbound_messages (effect_id, account_id, source, channel, student_id,
                                        recipient, subject, body)
         select m.id, $1, $2, coalesce(m.channel, s.channel), m.student,
                coalesce(m.recipient, s.phone), m.subject, m.body
         from unnest($3::uuid[], $4::text[], $5::uuid[], $6::text[], $7::text[], $8::text[])
              as m(id, channel, student, recipient, subject, body)
         left join students s on s.id = m.student
         on conflict (effect_id) do update
             set channel = excluded.channel, student_id = excluded.student_id,
                 recipient = excluded.recipient, subject = excluded.subject,
                 body = excluded.body, sent_from = null, provider_status = null,
                 error_code = null, error_message = null",
        batch.account_id,
        batch.source as MessageSource,
        &ids,
        &channels as &[Option<&str>],
        &students as &[Option<Uuid>],
        &recipients as &[Option<&str>],
        &subjects as &[Option<&str>],
        &bodies as &[&str],
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A message as the worker sees it at send time: the message, its student as they are now
/// (all `None` once removed), its account's own senders, and what its source says about
/// sending it now (the columns of the other sources are `None`).
#[derive(Debug, Clone)]
pub struct ToSend {
    pub source: MessageSource,
    pub channel: Option<String>,
    pub recipient: Option<String>,
    pub subject: Option<String>,
    pub body: String,
    pub student_id: Option<Uuid>,
    pub phone: Option<String>,
    pub student_channel: Option<String>,
    pub subscribed: Option<bool>,
    pub student_group_id: Option<Uuid>,
    pub student_timezone: Option<String>,
    /// The account's own Twilio senders.
    pub senders: AccountSenders,
    /// A delivery's status: `scheduled`, `paused` or `stopped`.
    pub delivery_status: Option<String>,
    /// A schedule's status (`active` or `paused`), group and expression now.
    pub schedule_status: Option<String>,
    pub schedule_group_id: Option<Uuid>,
    pub cron: Option<String>,
    /// Whether the schedule reads its expression in each recipient's zone.
    pub per_recipient_zone: Option<bool>,
    /// The schedule fire this message belongs to.
    pub fire_timezone: Option<String>,
    pub fire_at: Option<DateTime<Utc>>,
}

/// Whom a student's message would go out from, as the dispatcher needs it to throttle the
/// message by its sender: the student's channel now and the account's own senders.
#[derive(Debug, Clone)]
pub struct StudentSender {
    pub effect_id: Uuid,
    /// `None` when the message has no student any more (it will be skipped).
    pub channel: Option<String>,
    pub senders: AccountSenders,
}

/// [`StudentSender`] of each of `effect_ids` that is a message to a student.
pub async fn student_senders(
    executor: impl PgExecutor<'_>,
    effect_ids: &[Uuid],
) -> Result<Vec<StudentSender>, sqlx::Error> {
    sqlx::query!(
        r#"select m.effect_id, s.channel as "channel?",
                a.sms_from as "sms_from?", a.whatsapp_from as "whatsapp_from?",
                a.messaging_service_sid as "messaging_service_sid?"
         from outbound_messages m
         left join students s on s.id = m.student_id
         left join account_twilio_senders a on a.account_id = m.account_id
         where m.effect_id = any($1) and m.student_id is not null"#,
        effect_ids,
    )
    .map(|row| StudentSender {
        effect_id: row.effect_id,
        channel: row.channel,
        senders: AccountSenders {
            sms_from: row.sms_from,
            whatsapp_from: row.whatsapp_from,
            messaging_service_sid: row.messaging_service_sid,
        },
    })
    .fetch_all(executor)
    .await
}

/// Reads the message of an effect for sending; `None` when it is gone.
pub async fn find_to_send(
    executor: impl PgExecutor<'_>,
    effect_id: Uuid,
) -> Result<Option<ToSend>, sqlx::Error> {
    // Every column but the message's own comes from an outer join: `?` reads them as
    // `Option` whatever the table says.
    sqlx::query!(
        r#"select m.source as "source: MessageSource", m.channel, m.recipient, m.subject,
                m.body, m.student_id,
                s.phone as "phone?", s.channel as "student_channel?",
                s.subscribed as "subscribed?", s.group_id as "student_group_id?",
                s.timezone as "student_timezone?",
                a.sms_from as "sms_from?", a.whatsapp_from as "whatsapp_from?",
                a.messaging_service_sid as "messaging_service_sid?",
                d.status as "delivery_status?",
                sc.status as "schedule_status?", sc.group_id as "schedule_group_id?",
                sc.cron as "cron?", sc.timezone is null as "per_recipient_zone?",
                f.timezone as "fire_timezone?", f.fire_at as "fire_at?"
         from outbound_messages m
         left join students s on s.id = m.student_id
         left join account_twilio_senders a on a.account_id = m.account_id
         left join delivery_messages dm on dm.effect_id = m.effect_id
         left join deliveries d on d.id = dm.delivery_id
         left join schedule_messages sm on sm.effect_id = m.effect_id
         left join schedules sc on sc.id = sm.schedule_id
         left join schedule_fires f on f.id = sm.fire_id
         where m.effect_id = $1"#,
        effect_id,
    )
    .map(|row| ToSend {
        source: row.source,
        channel: row.channel,
        recipient: row.recipient,
        subject: row.subject,
        body: row.body,
        student_id: row.student_id,
        phone: row.phone,
        student_channel: row.student_channel,
        subscribed: row.subscribed,
        student_group_id: row.student_group_id,
        student_timezone: row.student_timezone,
        senders: AccountSenders {
            sms_from: row.sms_from,
            whatsapp_from: row.whatsapp_from,
            messaging_service_sid: row.messaging_service_sid,
        },
        delivery_status: row.delivery_status,
        schedule_status: row.schedule_status,
        schedule_group_id: row.schedule_group_id,
        cron: row.cron,
        per_recipient_zone: row.per_recipient_zone,
        fire_timezone: row.fire_timezone,
        fire_at: row.fire_at,
    })
    .fetch_optional(executor)
    .await
}

/// Records why the provider refused the message (its error code and text).
pub async fn record_refusal(
    executor: impl PgExecutor<'_>,
    effect_id: Uuid,
    code: Option<i32>,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update outbound_messages set error_code = $2, error_message = $3 where effect_id = $1",
        effect_id,
        code,
        message,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// How far along a message is by the provider's status; a report only ever moves it forward,
/// so out-of-order status callbacks cannot move it back. Final states share the top rank: the
/// first one reported stays.
const STATUS_RANKS: [(&str, i32); 10] = [
    ("accepted", 1),
    ("scheduled", 1),
    ("queued", 1),
    ("sending", 2),
    ("sent", 3),
    ("delivered", 4),
    ("undelivered", 4),
    ("failed", 4),
    ("read", 4),
    ("canceled", 4),
];

/// The rank of a provider status; `None` for a status Herald does not know.
pub fn status_rank(status: &str) -> Option<i32> {
    STATUS_RANKS
        .iter()
        .find(|(name, _)| *name == status)
        .map(|(_, rank)| *rank)
}

/// A provider's report on a message.
#[derive(Debug, Clone, Copy)]
pub struct ProviderStatus<'a> {
    /// The provider's id for the message (Twilio's SID).
    pub provider_id: &'a str,
    pub status: &'a str,
    pub error_code: Option<i32>,
    pub error_message: Option<&'a str>,
    /// Who the provider says sent it (Twilio: the Messaging Service, else `From`).
    pub sent_from: Option<&'a str>,
    /// Who the provider says it went to (Twilio: `To`, without a channel prefix).
    pub recipient: Option<&'a str>,
}

/// Records a provider's status report on the message of `effect_id`. Returns whether the
/// message moved forward (false: no such message, a report older than what is recorded, an
/// unknown status, or a report about another provider message than the one recorded).
///
/// The effect id comes from the callback URL the message was sent with, so the report finds
/// its message even when it arrives before the worker recorded the provider's id; the id is
/// then filled in from the report.
pub async fn record_provider_status(
    conn: &mut PgConnection,
    effect_id: Uuid,
    report: &ProviderStatus<'_>,
) -> Result<bool, sqlx::Error> {
    let Some(rank) = status_rank(report.status) else {
        return Ok(false);
    };
    let (names, ranks): (Vec<&str>, Vec<i32>) = STATUS_RANKS.iter().copied().unzip();
    let changed = sqlx::query!(
        "update outbound_messages m
         set provider_status = $3, error_code = coalesce($4, m.error_code),
             error_message = coalesce($5, m.error_message)
         from effects e
         where m.effect_id = $1 and e.id = m.effect_id
           and (e.provider_id is null or e.provider_id = $2)
           and coalesce((select r.rank from unnest($7::text[], $8::int[]) as r(name, rank)
                          where r.name = m.provider_status), 0) < $6",
        effect_id,
        report.provider_id,
        report.status,
        report.error_code,
        report.error_message,
        rank,
        &names as &[&str],
        &ranks,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    // The report proves Twilio has the message: a send whose answer was unreadable learns its
    // id here, and one waiting to be looked up (`unconfirmed_since`) is sent, not re-sent,
    // with the sender and recipient the report names (replies are routed by the sender).
    let resolved = sqlx::query_scalar!(
        r#"update effects e set provider_id = $2,
             state = case when old.state = 'retrying' then 'sent' else e.state end,
             finished_at = case when old.state = 'retrying' then now() else e.finished_at end,
             last_error = case when old.state = 'retrying' then null else e.last_error end
         from (select id, state from effects where id = $1 for update) old
         where e.id = old.id and (e.provider_id is null or e.provider_id = $2)
           and ((e.provider_id is null and e.state in ('sending', 'sent'))
                or (e.state = 'retrying' and e.unconfirmed_since is not null))
         returning old.state = 'retrying' as "resolved!""#,
        effect_id,
        report.provider_id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if resolved == Some(true) {
        sqlx::query!(
            "update outbound_messages set sent_from = coalesce($2, sent_from),
                 recipient = coalesce($3, recipient)
             where effect_id = $1",
            effect_id,
            report.sent_from,
            report.recipient,
        )
        .execute(conn)
        .await?;
    }
    Ok(changed > 0)
}

/// The effect of the message the provider knows as `provider_id` (a status callback for a
/// message sent before callbacks carried the effect id).
pub async fn effect_of_provider_id(
    executor: impl PgExecutor<'_>,
    provider_id: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "select id from effects where provider_id = $1 limit 1",
        provider_id,
    )
    .fetch_optional(executor)
    .await
}

/// The provider ids of the other messages sent to `recipient` since `since`: a look-up for an
/// unconfirmed attempt must not take one of them for its own (an identical text to the same
/// phone from the same sender: a schedule's repeated message, another account's on the shared
/// sender).
pub async fn sids_sent_to(
    executor: impl PgExecutor<'_>,
    effect_id: Uuid,
    recipient: &str,
    since: DateTime<Utc>,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select e.provider_id as "provider_id!" from outbound_messages m
         join effects e on e.id = m.effect_id
         where m.recipient = $2 and m.created_at >= $3::timestamptz - interval '1 day'
           and e.id <> $1 and e.provider_id is not null and e.finished_at >= $3"#,
        effect_id,
        recipient,
        since,
    )
    .fetch_all(executor)
    .await
}
