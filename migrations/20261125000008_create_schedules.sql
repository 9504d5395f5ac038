-- Recurring messages defined through the API: a cron expression read in one zone or in each
-- recipient's own zone, sending a text to a group. Fires are planned a short horizon ahead
-- (`schedules` config) as `schedule_fires` rows, each message an effect row.

create table schedules (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references accounts (id) on delete cascade,
    name text not null,
    cron text not null,
    -- an IANA zone; null: each recipient's own zone
    timezone text,
    -- the action; only `group_message` exists. A group used by a schedule cannot be deleted.
    action_type text not null default 'group_message' check (action_type = 'group_message'),
    group_id uuid not null references groups (id),
    text text not null,
    status text not null default 'active' check (status in ('active', 'paused')),
    -- no fire at or before this instant is planned: creation, the last resume or update
    active_from timestamptz not null default now(),
    -- fires up to this instant are planned (in every zone)
    planned_until timestamptz not null default now(),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index schedules_account on schedules (account_id, created_at desc, id desc);
create index schedules_group on schedules (group_id);
-- the planner's question: which active schedules need their horizon extended
create index schedules_to_plan on schedules (planned_until) where status = 'active';
create trigger schedules_updated_at before update on schedules
    for each row execute function set_updated_at();

-- One fire of a schedule in one zone (the schedule's zone, or each recipient zone).
create table schedule_fires (
    id uuid primary key default gen_random_uuid(),
    schedule_id uuid not null references schedules (id) on delete cascade,
    timezone text not null,
    fire_at timestamptz not null,
    -- the wall-clock time the fire is for, in `timezone`
    local_time timestamp not null,
    -- planned: its messages are effects; missed: found later than catch-up allows, nothing
    -- sent; canceled: the schedule was paused, changed or deleted before it fired
    state text not null check (state in ('planned', 'missed', 'canceled')),
    recipients integer not null default 0,
    created_at timestamptz not null default now(),
    constraint schedule_fires_key unique (schedule_id, timezone, fire_at)
);
create index schedule_fires_history on schedule_fires (schedule_id, fire_at desc);

-- One message of one fire to one student; its effect's idempotency key is
-- (schedule, fire instant, student), so a fire reaches a student at most once.
create table schedule_messages (
    effect_id uuid primary key references effects (id) on delete cascade,
    schedule_id uuid not null references schedules (id) on delete cascade,
    fire_id uuid not null references schedule_fires (id) on delete cascade,
    student_id uuid references students (id) on delete set null,
    body text not null,
    provider_status text,
    error_code integer,
    error_message text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index schedule_messages_fire on schedule_messages (fire_id);
create index schedule_messages_student on schedule_messages (student_id);
create trigger schedule_messages_updated_at before update on schedule_messages
    for each row execute function set_updated_at();
