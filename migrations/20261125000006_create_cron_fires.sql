-- One row per cron fire: the unique (trigger, fire_at) makes N worker replicas run it once,
-- and lets a returning worker catch up on fires missed while none ran.

create table cron_fires (
    id uuid primary key default gen_random_uuid(),
    trigger text not null,
    fire_at timestamptz not null,
    state text not null default 'planned' check (state in (
        'planned',  -- due at fire_at
        'running',  -- a replica claimed it
        'done',
        'failed',   -- the job returned an error (see error)
        'missed'    -- no worker ran within catch_up of fire_at
    )),
    runs integer not null default 0,
    runner text,
    started_at timestamptz,
    finished_at timestamptz,
    error text,
    created_at timestamptz not null default now(),
    constraint cron_fires_once unique (trigger, fire_at)
);
create index cron_fires_due on cron_fires (fire_at) where state = 'planned';
