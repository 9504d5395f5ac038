-- Outreach campaigns (`/api/v1/campaigns`): who sends (senders, rotated), when (a weekly
-- window on each prospect's own clock, the campaign's zone for prospects without one), how
-- much (daily caps) and what (steps: a prompt an LLM model writes each e-mail from, the first
-- at once, each later one `delay_days` after the previous was sent to that prospect).
create table campaigns (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references accounts (id) on delete cascade,
    name text not null,
    state text not null default 'draft' check (state in (
        'draft', 'generating', 'ready', 'running', 'paused', 'completed', 'stopped')),
    default_timezone text not null,
    -- ISO weekdays, 1 = Monday … 7 = Sunday
    window_days smallint[] not null check (cardinality(window_days) between 1 and 7
                                            and 1 <= all(window_days) and 7 >= all(window_days)),
    window_start time not null,
    window_end time not null check (window_end > window_start),
    daily_cap integer not null check (daily_cap > 0),
    new_prospects_per_day integer not null check (new_prospects_per_day > 0),
    max_cost_microusd bigint check (max_cost_microusd >= 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index campaigns_account_page on campaigns (account_id, created_at desc, id desc);
create trigger campaigns_updated_at before update on campaigns
    for each row execute function set_updated_at();

-- a sender or a model a campaign uses cannot be deleted (`no action`: checked at the end of
-- the statement, so deleting the account still deletes everything through the cascades)
create table campaign_senders (
    campaign_id uuid not null references campaigns (id) on delete cascade,
    position integer not null check (position >= 1),
    sender_id uuid not null references email_senders (id) on delete no action,
    primary key (campaign_id, position),
    unique (campaign_id, sender_id)
);
create index campaign_senders_sender on campaign_senders (sender_id);

create table campaign_steps (
    campaign_id uuid not null references campaigns (id) on delete cascade,
    position integer not null check (position >= 1),
    delay_days integer not null check (delay_days between 0 and 365),
    model_id uuid not null references llm_models (id) on delete no action,
    prompt text not null,
    primary key (campaign_id, position),
    constraint campaign_steps_first_at_once check ((position = 1) = (delay_days = 0))
);
create index campaign_steps_model on campaign_steps (model_id);
