-- Launching a campaign writes each prospect's first e-mail as an outbound message (source
-- `campaign`, effect kind `campaign_email`); each later step is written once the one before
-- it was sent, `delay_days` after it, in the prospect's window.
alter table outbound_messages drop constraint outbound_messages_source_check;
alter table outbound_messages add constraint outbound_messages_source_check
    check (source in ('delivery', 'schedule', 'auth_email', 'campaign'));

alter table campaigns add column launched_at timestamptz;

-- One row per campaign e-mail planned: which prospect and step it is, the sender it goes
-- out from (a follow-up keeps its thread's sender), and its Message-ID, by which replies and
-- the provider's events find it.
create table campaign_sends (
    effect_id uuid primary key references effects (id) on delete cascade,
    account_id uuid not null references accounts (id) on delete cascade,
    campaign_id uuid not null,
    person_id uuid not null,
    position integer not null check (position >= 1),
    sender_id uuid not null references email_senders (id) on delete no action,
    message_id text not null,
    -- what came of it for the sequence, once its effect ended: the next step planned, the
    -- prospect's sequence completed or ended (set by the worker's follow-up pass)
    followed_up boolean not null default false,
    created_at timestamptz not null default now(),
    foreign key (campaign_id, person_id)
        references campaign_prospects (campaign_id, person_id) on delete cascade,
    unique (campaign_id, person_id, position)
);
create index campaign_sends_sender on campaign_sends (sender_id);
create index campaign_sends_message_id on campaign_sends (message_id);
-- the follow-up pass reads the sends whose outcome it has not looked at yet
create index campaign_sends_to_follow_up on campaign_sends (campaign_id) where not followed_up;

-- What the provider reported about campaign e-mails (SendGrid's Event Webhook), once per
-- event: SendGrid delivers each event at least once, `sg_event_id` tells repeats apart.
create table email_events (
    sg_event_id text primary key,
    account_id uuid references accounts (id) on delete cascade,
    effect_id uuid references effects (id) on delete set null,
    event text not null,
    email text not null,
    reason text,
    occurred_at timestamptz,
    received_at timestamptz not null default now()
);
create index email_events_effect on email_events (effect_id);
create index email_events_received on email_events (received_at);

-- Replies to campaign e-mails (SendGrid Inbound Parse), matched to the send they answer. An
-- automatic reply (out of office) is recorded but does not end the sequence; a delivery
-- report counts as a bounce.
create table campaign_replies (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references accounts (id) on delete cascade,
    campaign_id uuid not null,
    person_id uuid not null,
    effect_id uuid references effects (id) on delete set null,
    kind text not null check (kind in ('reply', 'auto_reply', 'bounce')),
    from_email text,
    subject text,
    received_at timestamptz not null default now(),
    foreign key (campaign_id, person_id)
        references campaign_prospects (campaign_id, person_id) on delete cascade
);
create index campaign_replies_prospect on campaign_replies (campaign_id, person_id, received_at);
