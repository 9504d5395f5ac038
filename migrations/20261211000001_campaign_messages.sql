-- The e-mails a campaign writes: one per prospect and step, each written by an LLM job (an
-- effect of kind `generation`) and editable before launch. Step N's prompt may quote steps
-- 1 … N − 1, so a prospect's step N + 1 is only planned once step N is written.
create table campaign_messages (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references accounts (id) on delete cascade,
    campaign_id uuid not null,
    person_id uuid not null,
    position integer not null check (position >= 1),
    state text not null default 'pending' check (state in (
        'pending',  -- waiting for its job, or for the prospect's earlier step to be written
        'done',     -- written (by the model, or edited by the user)
        'failed',   -- its job failed; `error` says why (a refusal, a truncated answer, ...)
        'blocked'   -- not written because an earlier step failed or the cost limit was reached
    )),
    subject text,
    body text,
    error text,
    -- the job of the latest run; a regeneration plans a new one (`runs` is part of its key)
    effect_id uuid references effects (id) on delete set null,
    runs integer not null default 0,
    -- summed over every run and attempt: what writing this message cost
    input_tokens bigint not null default 0,
    output_tokens bigint not null default 0,
    cost_microusd bigint not null default 0,
    written_at timestamptz,
    edited_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    foreign key (campaign_id, person_id)
        references campaign_prospects (campaign_id, person_id) on delete cascade,
    unique (campaign_id, person_id, position),
    check (state <> 'done' or (subject is not null and body is not null))
);
create index campaign_messages_page on campaign_messages (campaign_id, position, person_id);
create index campaign_messages_effect on campaign_messages (effect_id);
create trigger campaign_messages_updated_at before update on campaign_messages
    for each row execute function set_updated_at();
-- a campaign is `ready` once none of its messages is pending: found by this index, not a scan
create index campaign_messages_pending on campaign_messages (campaign_id) where state = 'pending';

-- What generating the campaign has cost so far, kept with each message written (under the
-- campaign's row lock) so the cost limit is checked without summing its messages.
alter table campaigns
    add column input_tokens bigint not null default 0,
    add column output_tokens bigint not null default 0,
    add column cost_microusd bigint not null default 0;
