//! Queries on the `effects` table (rows are planned with their message:
//! `outbound_messages::plan`): the dispatcher's claims, the handlers' state
//! transitions, the recovery sweep, and the operator's list/retry/cancel.
//!
//! Every transition is a conditional `update … where state = …`, so two replicas (or a
//! job that runs twice) can never both move a row.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use crate::effects::{EffectKind, EffectState};

/// Takes a transaction-scoped lock on dispatching `queue`: only one replica dispatches a
/// queue at a time, which keeps its Redis window exact.
pub async fn try_lock_queue(conn: &mut PgConnection, queue: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select pg_try_advisory_xact_lock(hashtext('herald.dispatch.' || $1)) as "locked!""#,
        queue,
    )
    .fetch_one(conn)
    .await
}

/// Rows of `queue` currently waiting in Redis.
pub async fn count_queued(conn: &mut PgConnection, queue: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from effects where queue = $1 and state = 'queued'"#,
        queue,
    )
    .fetch_one(conn)
    .await
}

/// A due row the dispatcher holds (locked in its transaction) and may push.
#[derive(Debug, Clone, FromRow)]
pub struct Due {
    pub id: Uuid,
    pub account_id: Uuid,
    pub kind: EffectKind,
    /// When the row falls due (`next_attempt_at`); up to the claim's lead from now.
    pub due_at: DateTime<Utc>,
}

/// A row the dispatcher marked `queued`.
#[derive(Debug, Clone, FromRow)]
pub struct Claimed {
    pub id: Uuid,
    /// How many times the row has been pushed, this push included.
    pub dispatches: i32,
}

/// Most accounts with pending rows one [`claim_due`] looks at for its fair share.
const FAIR_ACCOUNTS: i64 = 256;

/// Picks and locks up to `limit` rows of `queue` due within `lead` from now (the dispatcher
/// pushes rows a little ahead, so a worker starts each at its instant rather than a dispatch
/// round after it), serving accounts in turn: one
/// account's backlog never holds another's due rows (DESIGN.md, "Fair share"). `skip locked`
/// lets other replicas claim other rows meanwhile. The rows stay as they are: the caller
/// marks those it pushes with [`mark_queued`] and moves the others' due time with
/// [`postpone`] (a rate limit with no slot soon enough), both in the same transaction.
///
/// Two statements in the caller's transaction:
/// 1. **Fair share.** Accounts with pending rows in the queue are found by a skip scan over
///    `effects_due_by_account` (one index descent per account, whatever its backlog), from a
///    random account id and wrapping round, at most [`FAIR_ACCOUNTS`]; of those with rows due
///    now, each offers its oldest `ceil(limit / accounts)` due rows, and rows are taken round
///    by round (`row_number() over (partition by account_id …)`): every account's oldest row,
///    then every account's second, and so on. With more accounts than the cap, each call
///    serves a different random slice of them.
/// 2. **Top-up.** Room the fair share left (accounts with fewer due rows than their share)
///    goes to the oldest due rows of the queue, so one account alone still fills a batch.
///
/// Rows read stay bounded by `limit` plus the accounts looked at.
pub async fn claim_due(
    conn: &mut PgConnection,
    queue: &str,
    limit: i64,
    lead: std::time::Duration,
) -> Result<Vec<Due>, sqlx::Error> {
    // the database's clock, as everywhere rows fall due
    let lead_secs = lead.as_secs_f64();
    let mut due = sqlx::query_as!(
        Due,
        r#"with recursive
         from_start (account_id, n) as (
             (select account_id, 1 from effects
              where queue = $1 and state in ('planned', 'retrying') and account_id >= $3
              order by account_id limit 1)
             union all
             select (select e.account_id from effects e
                     where e.queue = $1 and e.state in ('planned', 'retrying')
                       and e.account_id > a.account_id
                     order by e.account_id limit 1), a.n + 1
             from from_start a where a.account_id is not null and a.n < $4::bigint),
         wrapped (account_id, n) as (
             (select account_id, 1 from effects
              where queue = $1 and state in ('planned', 'retrying') and account_id < $3
              order by account_id limit 1)
             union all
             select (select e.account_id from effects e
                     where e.queue = $1 and e.state in ('planned', 'retrying')
                       and e.account_id > a.account_id and e.account_id < $3
                     order by e.account_id limit 1), a.n + 1
             from wrapped a where a.account_id is not null and a.n < $4),
         accounts as (
             select account_id from (
                 select account_id, n from from_start where account_id is not null
                 union all
                 select account_id, n + $4 from wrapped where account_id is not null) found
             where exists (
                 select from effects e
                 where e.queue = $1 and e.account_id = found.account_id
                   and e.state in ('planned', 'retrying')
                   and e.next_attempt_at <= now() + make_interval(secs => $5))
             order by n limit $4),
         due as (
             select d.id, d.kind, d.account_id, d.next_attempt_at from accounts a
             cross join lateral (
                 select id, kind, account_id, next_attempt_at from effects
                 where queue = $1 and account_id = a.account_id
                   and state in ('planned', 'retrying')
                   and next_attempt_at <= now() + make_interval(secs => $5)
                 order by next_attempt_at
                 limit (select ceil($2::bigint::numeric / greatest(count(*), 1))::bigint from accounts)
                 for update skip locked) d)
         select id as "id!", account_id as "account_id!", kind as "kind!: EffectKind",
                next_attempt_at as "due_at!" from (
             select id, account_id, kind, next_attempt_at,
                    row_number() over (partition by account_id
                                       order by next_attempt_at, id) as turn
             from due) ranked
         order by turn, next_attempt_at
         limit $2"#,
        queue,
        limit,
        Uuid::new_v4(),
        FAIR_ACCOUNTS,
        lead_secs,
    )
    .fetch_all(&mut *conn)
    .await?;
    let room = limit - i64::try_from(due.len()).unwrap_or(i64::MAX);
    if room > 0 {
        // rows this transaction locked above are not skipped by `skip locked`: leave them out
        let taken: Vec<Uuid> = due.iter().map(|row| row.id).collect();
        let topped_up = sqlx::query_as!(
            Due,
            r#"select id, account_id, kind as "kind: EffectKind", next_attempt_at as due_at
             from effects
             where queue = $1 and state in ('planned', 'retrying')
               and next_attempt_at <= now() + make_interval(secs => $4) and id <> all($3)
             order by next_attempt_at
             limit $2
             for update skip locked"#,
            queue,
            room,
            &taken,
            lead_secs,
        )
        .fetch_all(&mut *conn)
        .await?;
        due.extend(topped_up);
    }
    Ok(due)
}

/// Marks rows [`claim_due`] picked as `queued`, about to be pushed.
pub async fn mark_queued(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as!(
        Claimed,
        "update effects set state = 'queued', queued_at = now(), dispatches = dispatches + 1
         where id = any($1) and state in ('planned', 'retrying')
         returning id, dispatches",
        ids,
    )
    .fetch_all(conn)
    .await
}

/// Moves the due time of rows [`claim_due`] picked and the caller does not push now (no
/// rate-limit slot soon enough): they stay `planned`/`retrying`, their attempt and dispatch
/// counts untouched.
pub async fn postpone(
    conn: &mut PgConnection,
    ids: &[Uuid],
    until: &[DateTime<Utc>],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update effects e set next_attempt_at = p.until
         from unnest($1::uuid[], $2::timestamptz[]) as p (id, until)
         where e.id = p.id and e.state in ('planned', 'retrying')",
        ids,
        until,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Rows per bulk update statement.
const CHUNK: usize = 5_000;

/// Moves rows not yet started to new instants (`(effect id, instant)`), those still in one of
/// `from`: a `held` row (a paused delivery's, on resume) and a `queued` one (its Redis copy then
/// finds it no longer `queued` and does nothing) go back to `planned`, a held row's reason is
/// cleared; `planned` and `retrying` rows keep their state.
pub async fn move_unstarted(
    conn: &mut PgConnection,
    plan: &[(Uuid, DateTime<Utc>)],
    from: &[EffectState],
) -> Result<(), sqlx::Error> {
    for chunk in plan.chunks(CHUNK) {
        let (ids, ats): (Vec<Uuid>, Vec<DateTime<Utc>>) = chunk.iter().copied().unzip();
        sqlx::query!(
            "update effects e
             set state = case when e.state in ('held', 'queued') then 'planned' else e.state end,
                 last_error = case when e.state = 'held' then null else e.last_error end,
                 next_attempt_at = p.at
             from unnest($1::uuid[], $2::timestamptz[]) as p(id, at)
             where e.id = p.id and e.state = any($3::text[])",
            &ids,
            &ats,
            from as &[EffectState],
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The earliest time a planned row of `queue` becomes due, if any.
pub async fn next_due(
    executor: impl PgExecutor<'_>,
    queue: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar!(
        "select min(next_attempt_at) from effects
         where queue = $1 and state in ('planned', 'retrying')",
        queue,
    )
    .fetch_one(executor)
    .await
}

/// A row a handler has started: moved to `sending`, its attempt counted.
#[derive(Debug, Clone, FromRow)]
pub struct Started {
    pub id: Uuid,
    pub account_id: Uuid,
    pub kind: String,
    pub payload: Value,
    pub attempts: i32,
    /// When the attempt became due: `next_attempt_at` before this start.
    pub due: DateTime<Utc>,
    /// When an earlier attempt that may have reached the provider began (its answer was not
    /// read): the provider is asked for the message before it is sent again.
    pub unconfirmed_since: Option<DateTime<Utc>>,
    /// When the last such attempt ended.
    pub unconfirmed_until: Option<DateTime<Utc>>,
    /// The provider's id, when a status callback named it while an earlier attempt's answer
    /// was lost: the provider has the message.
    pub provider_id: Option<String>,
    /// The API request that planned it, for the attempt's logs.
    pub request_id: Option<String>,
    /// An e-mail's address, subject and text, read with the start (one statement instead of
    /// a read per e-mail); `None` for other kinds and messages.
    pub email_to: Option<String>,
    pub email_subject: Option<String>,
    pub email_body: Option<String>,
    /// Marks this attempt: its outcome is recorded only under it (see [`Attempt`]).
    pub start_token: Uuid,
}

impl Started {
    /// The attempt this start began, for recording its outcome.
    pub fn attempt(&self) -> Attempt {
        Attempt {
            id: self.id,
            token: self.start_token,
        }
    }
}

/// One attempt at a row: the row and the token its start set. Every outcome is written only
/// while the row is still `sending` under that token, so an attempt that was given up on (its
/// row found stuck in `sending` and started again by another worker) cannot record its late
/// result over the attempt that replaced it, nor make that attempt's own result go missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub id: Uuid,
    pub token: Uuid,
}

/// Moves a `queued` row to `sending`. `None` means someone else has it (or it was canceled):
/// the job must do nothing.
pub async fn start_sending(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<Started>, sqlx::Error> {
    sqlx::query_as!(
        Started,
        r#"with started as (
             update effects set state = 'sending', sending_at = now(), attempts = attempts + 1,
                 start_token = gen_random_uuid()
             where id = $1 and state = 'queued'
             returning id, account_id, kind, payload, attempts, next_attempt_at as due,
                       unconfirmed_since, unconfirmed_until, provider_id, request_id,
                       start_token)
         select s.id as "id!", s.account_id as "account_id!", s.kind as "kind!",
                s.payload as "payload!", s.attempts as "attempts!", s.due as "due!",
                s.unconfirmed_since, s.unconfirmed_until, s.provider_id, s.request_id,
                m.recipient as email_to, m.subject as email_subject, m.body as "email_body?",
                s.start_token as "start_token!"
         from started s
         left join outbound_messages m on m.effect_id = s.id and s.kind = 'email'"#,
        id,
    )
    .fetch_optional(executor)
    .await
}

/// [`start_sending`] for many rows in one statement (one commit): each row of `ids` that is
/// `queued` moves to `sending`, marked with `token`, and is returned; the others are left
/// alone and missing from the result. An id listed twice is updated (and returned) once.
///
/// Running it again with the same token is safe and answers the same: rows this batch already
/// moved are returned as they are (not counted twice). So a batch whose answer was lost (the
/// connection dropped; the server may have committed it, or may still be running it) is simply
/// run again, and learns which rows are its own instead of leaving them in `sending` unsent.
pub async fn start_sending_many(
    executor: impl PgExecutor<'_>,
    ids: &[Uuid],
    token: Uuid,
) -> Result<Vec<Started>, sqlx::Error> {
    sqlx::query_as!(
        Started,
        r#"with started as (
             update effects set state = 'sending',
                 sending_at = case when state = 'queued' then now() else sending_at end,
                 attempts = case when state = 'queued' then attempts + 1 else attempts end,
                 start_token = $2
             where id = any($1) and (state = 'queued' or (state = 'sending' and start_token = $2))
             returning id, account_id, kind, payload, attempts, next_attempt_at as due,
                       unconfirmed_since, unconfirmed_until, provider_id, request_id,
                       start_token)
         select s.id as "id!", s.account_id as "account_id!", s.kind as "kind!",
                s.payload as "payload!", s.attempts as "attempts!", s.due as "due!",
                s.unconfirmed_since, s.unconfirmed_until, s.provider_id, s.request_id,
                m.recipient as email_to, m.subject as email_subject, m.body as "email_body?",
                s.start_token as "start_token!"
         from started s
         left join outbound_messages m on m.effect_id = s.id and s.kind = 'email'"#,
        ids,
        token,
    )
    .fetch_all(executor)
    .await
}

/// A send that worked, to record with [`finish_sent_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentOutcome {
    pub id: Uuid,
    /// The attempt's start token (see [`Attempt`]).
    pub token: Uuid,
    /// `sent` or `sandboxed`.
    pub state: EffectState,
    pub provider_id: Option<String>,
    /// What an outbound message went out as (`None` for other effects).
    pub message: Option<SentMessage>,
}

/// How an outbound message went out: recorded on its `outbound_messages` row with the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// Who it went out from, as the provider names the sender (a reply to it is routed by
    /// this); `None` for e-mail.
    pub sent_from: Option<String>,
    /// The address it went to (a student's phone then).
    pub recipient: Option<String>,
    /// `sms`, `whatsapp` or `email`.
    pub channel: Option<&'static str>,
}

/// [`finish_sent`] for many rows in one statement (one commit); returns the ids of the rows
/// that were `sending` and are now recorded. A sealed secret in the payload (see
/// `EmailPayload::sealed_secret`) has served its purpose and is removed. A provider id a status
/// callback recorded first is kept when the send's own answer had none.
pub async fn finish_sent_many(
    executor: impl PgExecutor<'_>,
    outcomes: &[SentOutcome],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = outcomes.iter().map(|o| o.id).collect();
    let tokens: Vec<Uuid> = outcomes.iter().map(|o| o.token).collect();
    let states: Vec<EffectState> = outcomes.iter().map(|o| o.state).collect();
    let provider_ids: Vec<Option<&str>> =
        outcomes.iter().map(|o| o.provider_id.as_deref()).collect();
    let messages: Vec<Option<&SentMessage>> = outcomes.iter().map(|o| o.message.as_ref()).collect();
    let senders: Vec<Option<&str>> = messages
        .iter()
        .map(|m| m.and_then(|m| m.sent_from.as_deref()))
        .collect();
    let recipients: Vec<Option<&str>> = messages
        .iter()
        .map(|m| m.and_then(|m| m.recipient.as_deref()))
        .collect();
    let channels: Vec<Option<&str>> = messages.iter().map(|m| m.and_then(|m| m.channel)).collect();
    sqlx::query_scalar!(
        r#"with done as (
             update effects e set state = o.state,
                 provider_id = coalesce(o.provider_id, e.provider_id), finished_at = now(),
                 last_error = null, payload = e.payload - 'sealed_secret'
             from unnest($1::uuid[], $2::text[], $3::text[], $7::uuid[])
                 as o (id, state, provider_id, token)
             where e.id = o.id and e.state = 'sending' and e.start_token = o.token
             returning e.id),
         message as (
             update outbound_messages m set sent_from = o.sent_from,
                 recipient = coalesce(o.recipient, m.recipient),
                 channel = coalesce(o.channel, m.channel)
             from unnest($1::uuid[], $4::text[], $5::text[], $6::text[])
                 as o (id, sent_from, recipient, channel)
             where m.effect_id = o.id and o.id in (select id from done)
               -- an e-mail goes out as planned: no row write for nothing
               and (m.sent_from is distinct from o.sent_from
                    or m.recipient is distinct from coalesce(o.recipient, m.recipient)
                    or m.channel is distinct from coalesce(o.channel, m.channel)))
         select id as "id!" from done"#,
        &ids,
        &states as &[EffectState],
        &provider_ids as &[Option<&str>],
        &senders as &[Option<&str>],
        &recipients as &[Option<&str>],
        &channels as &[Option<&str>],
        &tokens,
    )
    .fetch_all(executor)
    .await
}

/// Records the outcome of a send that worked (`sent` or `sandboxed`); see
/// [`finish_sent_many`].
pub async fn finish_sent(
    executor: impl PgExecutor<'_>,
    outcome: &SentOutcome,
) -> Result<bool, sqlx::Error> {
    let done = finish_sent_many(executor, std::slice::from_ref(outcome)).await?;
    Ok(!done.is_empty())
}

/// What kind of retry [`retry`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A failed attempt: it counts against the row's attempts.
    Counted,
    /// The provider could not take the message for reasons of its own (Herald's credentials
    /// were refused): the attempt does not count, so the message does not run out of attempts
    /// while the outage lasts.
    Uncounted,
    /// The request may have reached the provider without its answer being read: the retry
    /// asks the provider for the message before sending it again (`unconfirmed_since`: the
    /// first such attempt's start, `unconfirmed_until`: the last one's end).
    Unconfirmed,
}

/// Moves a started row to `retrying` with `error`, due again at `next_attempt_at`, where the
/// dispatcher picks it up.
pub async fn retry(
    executor: impl PgExecutor<'_>,
    attempt: Attempt,
    retry: Retry,
    error: &str,
    next_attempt_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update effects set state = 'retrying', last_error = $2, next_attempt_at = $3,
             attempts = case when $4 then greatest(attempts - 1, 0) else attempts end,
             unconfirmed_since = case when $5 then coalesce(unconfirmed_since, sending_at)
                                      else unconfirmed_since end,
             unconfirmed_until = case when $5 then now() else unconfirmed_until end
         where id = $1 and state = 'sending' and start_token = $6",
        attempt.id,
        error,
        next_attempt_at,
        retry == Retry::Uncounted,
        retry == Retry::Unconfirmed,
        attempt.token,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a final failure: `failed` (permanent error) or `dead` (attempts exhausted).
pub async fn finish_failed(
    executor: impl PgExecutor<'_>,
    attempt: Attempt,
    state: EffectState,
    error: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update effects set state = $2, last_error = $3, finished_at = now()
         where id = $1 and state = 'sending' and start_token = $4",
        attempt.id,
        state.as_str(),
        error,
        attempt.token,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that the handler chose not to send: `canceled` (the recipient or the delivery is
/// gone for good) or `held` (a paused delivery; resuming re-plans the row), with `reason`
/// in `last_error` so the operator sees why.
pub async fn finish_skipped(
    executor: impl PgExecutor<'_>,
    attempt: Attempt,
    state: EffectState,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update effects set state = $2, last_error = $3,
             finished_at = case when $2 = 'canceled' then now() else null end
         where id = $1 and state = 'sending' and start_token = $4",
        attempt.id,
        state.as_str(),
        reason,
        attempt.token,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Parks a started course message because its delivery was not `scheduled` when the handler
/// looked. The delivery is read again under a share lock, which waits for a pause, resume or
/// stop in progress: so the row ends `held` only if the delivery is still paused (a resume
/// that committed meanwhile would never re-plan it), `canceled` if it was stopped, and back to
/// `planned`, due now, if it is scheduled again.
pub async fn park_for_delivery(
    pool: &sqlx::PgPool,
    attempt: Attempt,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let status: Option<String> = sqlx::query_scalar!(
        "select d.status from deliveries d join delivery_messages m on m.delivery_id = d.id
         where m.effect_id = $1 for share of d",
        attempt.id,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (state, error) = match status.as_deref() {
        Some("paused") => ("held", Some(reason)),
        Some("scheduled") => ("planned", None),
        _ => ("canceled", Some("delivery stopped")),
    };
    let done = sqlx::query!(
        "update effects set state = $2, last_error = coalesce($3, last_error),
             next_attempt_at = case when $2 = 'planned' then now() else next_attempt_at end,
             finished_at = case when $2 = 'canceled' then now() else null end
         where id = $1 and state = 'sending' and start_token = $4",
        attempt.id,
        state,
        error,
        attempt.token,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Puts a started row back, due at `at`, without counting the attempt: nothing was tried
/// (the sender's rate limit had no slot soon enough). It goes back to `planned`, or to
/// `retrying` when earlier attempts failed, so `last_error` keeps the latest real failure.
pub async fn defer(
    executor: impl PgExecutor<'_>,
    attempt: Attempt,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update effects set
             state = case when attempts > 1 then 'retrying' else 'planned' end,
             attempts = attempts - 1, next_attempt_at = $2
         where id = $1 and state = 'sending' and start_token = $3",
        attempt.id,
        at,
        attempt.token,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Which `queued` rows [`requeue`] gives back to the dispatcher: rows whose Redis task is
/// gone or may be.
#[derive(Debug, Clone, Copy)]
pub enum Requeue<'a> {
    /// Queued longer than this many seconds (Redis flushed, a worker killed before it started
    /// them): the sweep's safety net.
    Stale { older_than_secs: f64 },
    /// Every row of `queues` queued before `queued_before`: Redis lost its data (see the
    /// worker's `redis_epoch`), so they have no task any more.
    Lost {
        queues: &'a [String],
        queued_before: DateTime<Utc>,
    },
}

/// Moves `queued` rows back to `planned`, due now at the latest. A stale Redis copy that turns
/// up later finds its row no longer `queued` (or `queued` by the next dispatch, which only one
/// copy can start) and sends nothing twice. A past `next_attempt_at` stays (the row goes out
/// at once either way): lateness checks, such as a schedule message's catch-up limit, still
/// see how late the message really is.
pub async fn requeue(
    executor: impl PgExecutor<'_>,
    which: Requeue<'_>,
) -> Result<u64, sqlx::Error> {
    let (queues, queued_before, older_than_secs, reason) = match which {
        Requeue::Stale { older_than_secs } => (
            None,
            None,
            older_than_secs,
            "dispatched again: not picked up from Redis in time",
        ),
        Requeue::Lost {
            queues,
            queued_before,
        } => (
            Some(queues),
            Some(queued_before),
            0.0,
            "dispatched again: Redis lost its data",
        ),
    };
    let done = sqlx::query!(
        "update effects set state = 'planned', next_attempt_at = least(next_attempt_at, now()),
             last_error = $4
         where state = 'queued' and ($1::text[] is null or queue = any($1))
           and queued_at < coalesce($2::timestamptz, now() - make_interval(secs => $3::float8))",
        queues,
        queued_before,
        older_than_secs,
        reason,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// What becomes of a row found stuck in `sending`: its worker died between handing the
/// message over and recording the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stuck {
    /// The provider can be asked (Twilio): the row is retried at once, and the retry looks
    /// the message up before sending it again.
    LookUp,
    /// Doing it again is harmless (an LLM call sends nothing to anyone): retried at once.
    Retry,
    /// The provider cannot be asked (SMTP): the row becomes `unknown`, visibly, for an
    /// operator to re-run or leave.
    Unknown,
}

/// Resolves rows of `kind` in `sending` for longer than `older_than_secs` (see [`Stuck`]). A
/// [`Stuck::Retry`] row that has had `max_attempts` attempts is `dead` instead: a job that
/// kills its worker every time (a panic) is not run for ever.
pub async fn resolve_stuck_sending(
    executor: impl PgExecutor<'_>,
    kind: EffectKind,
    older_than_secs: f64,
    stuck: Stuck,
    max_attempts: u32,
) -> Result<u64, sqlx::Error> {
    let retried = stuck != Stuck::Unknown;
    let looked_up = stuck == Stuck::LookUp;
    let capped = stuck == Stuck::Retry;
    let error = match stuck {
        Stuck::LookUp => "worker stopped while sending; the provider is asked before sending again",
        Stuck::Retry => "worker stopped while working on it; tried again",
        Stuck::Unknown => "worker stopped while sending; the provider may or may not have it",
    };
    let done = sqlx::query!(
        "update effects set
             state = case when not $3 then 'unknown'
                          when $6 and attempts >= $7 then 'dead'
                          else 'retrying' end,
             unconfirmed_since = case when $4 then coalesce(unconfirmed_since, sending_at)
                                      else unconfirmed_since end,
             unconfirmed_until = case when $4 then now() else unconfirmed_until end,
             next_attempt_at = case when $3 then now() else next_attempt_at end,
             finished_at = case when not $3 or ($6 and attempts >= $7) then now() else null end,
             last_error = case when $6 and attempts >= $7
                 then 'worker stopped while working on it, every attempt: given up'
                 else $5 end
         where state = 'sending' and kind = $1 and sending_at < now() - make_interval(secs => $2)",
        kind.as_str(),
        older_than_secs,
        retried,
        looked_up,
        error,
        capped,
        i32::try_from(max_attempts).unwrap_or(i32::MAX),
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// One effect as operators see it.
#[derive(Debug, Clone, FromRow)]
pub struct EffectRow {
    pub id: Uuid,
    pub kind: EffectKind,
    pub queue: String,
    pub state: EffectState,
    pub idempotency_key: String,
    pub due_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub provider_id: Option<String>,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Filters and keyset position of a page of effects, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<EffectState>,
    pub kind: Option<EffectKind>,
    /// Continue after this (created_at, id).
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// A page of the account's effects.
pub async fn list(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    filter: &ListFilter,
) -> Result<Vec<EffectRow>, sqlx::Error> {
    let (after_at, after_id) = filter.after.unzip();
    sqlx::query_as!(
        EffectRow,
        r#"select id, kind as "kind: EffectKind", queue, state as "state: EffectState",
                idempotency_key, due_at, next_attempt_at, attempts, last_error, provider_id,
                request_id, created_at, updated_at, finished_at
         from effects
         where account_id = $1
           and ($2::text is null or state = $2)
           and ($3::text is null or kind = $3)
           and ($4::timestamptz is null or (created_at, id) < ($4, $5))
         order by created_at desc, id desc
         limit $6"#,
        account_id,
        filter.state.map(EffectState::as_str),
        filter.kind.map(EffectKind::as_str),
        after_at,
        after_id,
        filter.limit,
    )
    .fetch_all(executor)
    .await
}

/// One of the account's effects.
pub async fn get(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<EffectRow>, sqlx::Error> {
    sqlx::query_as!(
        EffectRow,
        r#"select id, kind as "kind: EffectKind", queue, state as "state: EffectState",
                idempotency_key, due_at, next_attempt_at, attempts, last_error, provider_id,
                request_id, created_at, updated_at, finished_at
         from effects where account_id = $1 and id = $2"#,
        account_id,
        id,
    )
    .fetch_optional(executor)
    .await
}

/// Moves one of the account's effects from any of `from` to `to`, due now with fresh
/// attempts when it is re-planned. `None` when no such row is in one of those states.
pub async fn transition(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
    from: &[EffectState],
    to: EffectState,
) -> Result<Option<EffectRow>, sqlx::Error> {
    sqlx::query_as!(
        EffectRow,
        r#"update effects set state = $4,
             attempts = case when $4 = 'planned' then 0 else attempts end,
             next_attempt_at = case when $4 = 'planned' then now() else next_attempt_at end,
             finished_at = case when $4 = 'canceled' then now() else null end
         where account_id = $1 and id = $2 and state = any($3::text[])
         returning id, kind as "kind: EffectKind", queue, state as "state: EffectState",
                idempotency_key, due_at, next_attempt_at, attempts, last_error, provider_id,
                request_id, created_at, updated_at, finished_at"#,
        account_id,
        id,
        from as &[EffectState],
        to.as_str(),
    )
    .fetch_optional(executor)
    .await
}
