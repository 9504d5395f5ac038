-- Course deliveries: a course sent to a group, day by day, each message an effect row.

-- `held`: a paused delivery's unsent message, waiting for resume.
alter table effects drop constraint effects_state_check;
alter table effects add constraint effects_state_check check (state in (
    'planned', 'queued', 'sending', 'sent', 'sandboxed', 'retrying', 'failed', 'dead',
    'unknown', 'canceled', 'held'));

create table deliveries (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references accounts (id) on delete cascade,
    -- a group or course may be deleted once no active delivery uses it; the delivery and its
    -- message history stay
    group_id uuid references groups (id) on delete set null,
    course_id uuid references courses (id) on delete set null,
    -- what the user typed: a wall-clock start, and the zone it is read in (null: each
    -- student's own zone)
    start_local timestamp not null,
    timezone text,
    catch_up boolean not null default false,
    status text not null default 'scheduled' check (status in ('scheduled', 'paused', 'stopped')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index deliveries_account on deliveries (account_id, created_at desc, id desc);
create index deliveries_course on deliveries (course_id);
create index deliveries_group on deliveries (group_id);
create trigger deliveries_updated_at before update on deliveries
    for each row execute function set_updated_at();

-- One message to one student: a day's text (seq 0) or one of its questions (seq 1…n).
create table delivery_messages (
    id uuid primary key default gen_random_uuid(),
    delivery_id uuid not null references deliveries (id) on delete cascade,
    student_id uuid references students (id) on delete set null,
    day integer not null,
    seq integer not null,
    question_id uuid references questions (id) on delete set null,
    -- the text as planned; later course edits do not change a scheduled delivery
    body text not null,
    effect_id uuid not null unique references effects (id),
    -- the provider's view, from status callbacks (queued, sent, delivered, undelivered, failed)
    provider_status text,
    error_code integer,
    error_message text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint delivery_messages_key unique (delivery_id, student_id, day, seq)
);
create index delivery_messages_student on delivery_messages (student_id);
create trigger delivery_messages_updated_at before update on delivery_messages
    for each row execute function set_updated_at();

-- Replies to questions, graded for `choice` questions.
create table answers (
    id uuid primary key default gen_random_uuid(),
    delivery_id uuid not null references deliveries (id) on delete cascade,
    student_id uuid references students (id) on delete set null,
    delivery_message_id uuid not null references delivery_messages (id) on delete cascade,
    body text not null,
    -- null for `open` questions
    correct boolean,
    received_at timestamptz not null default now()
);
create index answers_delivery on answers (delivery_id, received_at);

-- status callbacks find a message by the provider's id (a Twilio SID)
create index effects_provider_id on effects (provider_id) where provider_id is not null;
