-- One row per outbound effect (an e-mail, later an SMS, a calendar sync, ...). PostgreSQL
-- holds the schedule and the truth; Redis only carries the ids of rows being worked on.

create table effects (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references accounts (id) on delete cascade,
    kind text not null,
    queue text not null,
    -- unique per effect: planning the same effect twice is a no-op
    idempotency_key text not null,
    state text not null default 'planned' check (state in (
        'planned',    -- waiting for its due time
        'queued',     -- id pushed to Redis, not yet started
        'sending',    -- a worker is calling the provider
        'sent',       -- the provider accepted it
        'sandboxed',  -- sandbox mode: recorded and logged, not sent
        'retrying',   -- an attempt failed with a retryable error; next try at next_attempt_at
        'failed',     -- a permanent error (e.g. a rejected address); not retried
        'dead',       -- retryable errors exhausted max_attempts
        'unknown',    -- a worker stopped mid-send; the provider may or may not have it
        'canceled'    -- canceled before it was sent
    )),
    payload jsonb not null,
    due_at timestamptz not null,
    next_attempt_at timestamptz not null,
    attempts integer not null default 0,
    -- times the row was pushed to Redis; part of the push's idempotency key
    dispatches integer not null default 0,
    last_error text,
    provider_id text,
    queued_at timestamptz,
    sending_at timestamptz,
    finished_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index effects_idempotency_key on effects (idempotency_key);
create index effects_due on effects (queue, next_attempt_at)
    where state in ('planned', 'retrying');
create index effects_queued on effects (queue, queued_at) where state = 'queued';
create index effects_sending on effects (sending_at) where state = 'sending';
create index effects_account on effects (account_id, created_at desc, id desc);
create trigger effects_updated_at before update on effects
    for each row execute function set_updated_at();

-- Wake the dispatchers when work becomes due-able. PostgreSQL folds identical
-- notifications within one transaction, so a batch insert wakes them once per queue.
create or replace function notify_effect_planned() returns trigger as $$
begin
    perform pg_notify('herald_effects', new.queue);
    return null;
end;
$$ language plpgsql;

create trigger effects_notify_insert after insert on effects
    for each row when (new.state in ('planned', 'retrying'))
    execute function notify_effect_planned();
create trigger effects_notify_update after update of state, next_attempt_at on effects
    for each row when (new.state in ('planned', 'retrying'))
    execute function notify_effect_planned();
