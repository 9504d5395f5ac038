-- One table of outbound messages for every source (course deliveries, schedules, account
-- e-mails, and the sources to come), keyed by the message's effect. The effect row holds the
-- attempt's life (state, attempts, due time, provider id); this row holds the message: who
-- it goes to, over which channel, what it says, who sent it, and what the provider reported
-- afterwards. Source-specific facts (a delivery's day and question, a schedule's fire) stay in
-- `delivery_messages` and `schedule_messages`, which point at the message by `effect_id`.

create table outbound_messages (
    effect_id uuid primary key references effects (id) on delete cascade,
    account_id uuid not null references accounts (id) on delete cascade,
    source text not null check (source in ('delivery', 'schedule', 'auth_email')),
    -- `email` for e-mails; a student's message takes the student's channel when it is sent
    -- (recorded then), so it is null until sent
    channel text check (channel in ('sms', 'whatsapp', 'email')),
    -- the recipient when it is a student: phone and channel are read from the student at send
    -- time, so a changed number is used from then on
    student_id uuid references students (id) on delete set null,
    -- the address it goes to: an e-mail's when planned; a student's phone once sent
    recipient text,
    subject text,
    -- the text as planned; an e-mail's may hold a placeholder for a sealed secret (the
    -- effect's payload), never the secret itself
    body text not null,
    -- who it went out from, as the provider names the sender; replies are routed by it
    sent_from text,
    -- the provider's view, from status callbacks (queued, sent, delivered, undelivered,
    -- failed, ...), with its error code and text; a refusal at send time is recorded here too
    provider_status text,
    error_code integer,
    error_message text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
-- a message's row is updated once when it is sent (sender, recipient, channel): room on its
-- page lets PostgreSQL do that in place (a HOT update) instead of a new version in every index
) with (fillfactor = 80);
create index outbound_messages_student on outbound_messages (student_id);
-- a look-up at Twilio skips SIDs already recorded as other messages to the same recipient
create index outbound_messages_recipient on outbound_messages (recipient, created_at)
    where recipient is not null;
create index outbound_messages_account on outbound_messages (account_id, created_at desc);
create trigger outbound_messages_updated_at before update on outbound_messages
    for each row execute function set_updated_at();

insert into outbound_messages (effect_id, account_id, source, channel, student_id, recipient,
                               body, sent_from, provider_status, error_code, error_message,
                               created_at, updated_at)
select m.effect_id, e.account_id, 'delivery',
       case when e.state in ('sent', 'sandboxed') then s.channel end, m.student_id,
       case when e.state in ('sent', 'sandboxed') then s.phone end,
       m.body, e.sent_from, m.provider_status, m.error_code, m.error_message,
       m.created_at, m.updated_at
from delivery_messages m
join effects e on e.id = m.effect_id
left join students s on s.id = m.student_id;

insert into outbound_messages (effect_id, account_id, source, channel, student_id, recipient,
                               body, sent_from, provider_status, error_code, error_message,
                               created_at, updated_at)
select m.effect_id, e.account_id, 'schedule',
       case when e.state in ('sent', 'sandboxed') then s.channel end, m.student_id,
       case when e.state in ('sent', 'sandboxed') then s.phone end,
       m.body, e.sent_from, m.provider_status, m.error_code, m.error_message,
       m.created_at, m.updated_at
from schedule_messages m
join effects e on e.id = m.effect_id
left join students s on s.id = m.student_id;

-- every e-mail so far is an account e-mail (verification, reset, password changed)
insert into outbound_messages (effect_id, account_id, source, channel, recipient, subject,
                               body, created_at, updated_at)
select e.id, e.account_id, 'auth_email', 'email', e.payload ->> 'to', e.payload ->> 'subject',
       coalesce(e.payload ->> 'text', ''), e.created_at, e.updated_at
from effects e
where e.kind = 'email';
update effects set payload = payload - 'to' - 'subject' - 'text' where kind = 'email';

-- the facts now live in outbound_messages; dropping `student_id` also drops the indexes and
-- the (delivery, student, day, seq) key built on it: the effect's idempotency key
-- (`delivery:{delivery}:{student}:{day}:{seq}`) is what keeps a message from being planned twice
alter table delivery_messages
    drop column student_id,
    drop column body,
    drop column provider_status,
    drop column error_code,
    drop column error_message;
create index delivery_messages_by_day on delivery_messages (delivery_id, day, seq);

alter table schedule_messages
    drop column student_id,
    drop column body,
    drop column provider_status,
    drop column error_code,
    drop column error_message;

alter table effects drop column sent_from;

-- An attempt whose request may have reached the provider without its answer being read (a
-- timeout, a reset connection, a 5xx, or a worker that died mid-send) is not re-sent blindly:
-- the next attempt first asks the provider for a message created since this instant (the
-- first such attempt's start, up to `unconfirmed_until`, the last one's end), and re-sends
-- only when there is none.
alter table effects add column unconfirmed_since timestamptz;
alter table effects add column unconfirmed_until timestamptz;
-- Messages already at risk: retries of attempts that timed out or got a 5xx (they were
-- retried blindly before), and those left `unknown`, are looked up before any re-send.
update effects set unconfirmed_since = sending_at, unconfirmed_until = updated_at
where kind = 'message' and state in ('retrying', 'unknown') and sending_at is not null;

-- Which batched start moved the row to `sending`: when a batch's commit answer is lost, the
-- worker reads which rows it did move instead of assuming none.
alter table effects add column start_token uuid;

-- The API request that planned the effect (its x-request-id): the worker's logs of each
-- attempt carry it, so a message can be traced back to the call that made it.
alter table effects add column request_id text;

-- Status callbacks now name their message by the effect id in the callback URL, so one can
-- no longer arrive before the message is known. Callbacks still kept for a SID recorded
-- since are applied first (the most advanced status of each).
update outbound_messages m
set provider_status = kept.status,
    error_code = coalesce(kept.error_code, m.error_code),
    error_message = coalesce(kept.error_message, m.error_message)
from (
    select distinct on (es.sid) es.sid, es.status, es.error_code, es.error_message
    from early_statuses es
    order by es.sid, case es.status
        when 'sending' then 2 when 'sent' then 3
        when 'delivered' then 4 when 'undelivered' then 4 when 'failed' then 4
        when 'read' then 4 when 'canceled' then 4 else 1 end desc
) kept
join effects e on e.provider_id = kept.sid
where m.effect_id = e.id;
drop table early_statuses;
