-- Replies reach the account that asked, never another one.
--
-- Accounts may have their own Twilio senders (numbers or a Messaging Service on the
-- platform's Twilio account); inbound messages are routed by the sender they were sent to.
-- On the platform's shared default sender a reply is attributed only when one account alone
-- sent that phone a question from it recently.

create table account_twilio_senders (
    account_id uuid primary key references accounts (id) on delete cascade,
    -- E.164 numbers, as Twilio reports them in `To` (WhatsApp without its `whatsapp:` prefix)
    sms_from text,
    whatsapp_from text,
    -- MG + 32 hex digits; when set it sends both channels
    messaging_service_sid text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
-- a sender belongs to one account at most (the API answers 409 otherwise)
create unique index account_twilio_senders_sms on account_twilio_senders (sms_from);
create unique index account_twilio_senders_whatsapp on account_twilio_senders (whatsapp_from);
create unique index account_twilio_senders_service on account_twilio_senders (messaging_service_sid);
create trigger account_twilio_senders_updated_at before update on account_twilio_senders
    for each row execute function set_updated_at();

-- Who a message went out from, as Twilio names it: `+1…`, `whatsapp:+1…` or `MG…`.
alter table effects add column sent_from text;

-- Why a student is unsubscribed: `api` (the account did it) or `opt_out_keyword` (the
-- student sent STOP). START re-subscribes only the second kind. Rows unsubscribed before
-- this migration have no known reason: they count as `api`, so a START never overrides an
-- account's decision.
alter table students
    add column unsubscribe_reason text
        check (unsubscribe_reason in ('api', 'opt_out_keyword')),
    add column unsubscribed_at timestamptz;
update students set unsubscribe_reason = 'api', unsubscribed_at = updated_at where not subscribed;
alter table students add constraint students_unsubscribe_reason
    check (subscribed = (unsubscribe_reason is null));

-- Every write path that unsubscribes without naming a reason is the account's doing; a
-- re-subscription clears the reason.
create or replace function students_unsubscribe_reason() returns trigger as $$
begin
    if new.subscribed then
        new.unsubscribe_reason = null;
        new.unsubscribed_at = null;
    elsif tg_op = 'INSERT' or old.subscribed then
        new.unsubscribe_reason = coalesce(new.unsubscribe_reason, 'api');
        new.unsubscribed_at = now();
    end if;
    return new;
end;
$$ language plpgsql;
create trigger students_unsubscribe_reason before insert or update of subscribed on students
    for each row execute function students_unsubscribe_reason();

-- Every inbound message Twilio delivered, once per MessageSid (Twilio retries a webhook it
-- got no answer to). `account_id` is null when no account could be named: such a message
-- is visible to no account.
create table inbound_messages (
    id uuid primary key default gen_random_uuid(),
    message_sid text not null unique,
    account_id uuid references accounts (id) on delete cascade,
    from_phone text not null,
    to_address text not null,
    messaging_service_sid text,
    body text not null,
    outcome text not null check (outcome in (
        'answer', 'opt_out', 'opt_in', 'no_question', 'unattributed')),
    received_at timestamptz not null default now()
);
create index inbound_messages_account on inbound_messages (account_id, received_at desc);

-- the reply router's question: which questions went to this phone recently
create index delivery_messages_questions on delivery_messages (student_id) where seq > 0;
