-- Courses: days of content, each with optional quiz questions, sent one day at a time.

create table courses (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references accounts (id) on delete cascade,
    name text not null,
    author text not null,
    description text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index courses_account on courses (account_id, created_at desc, id desc);
create trigger courses_updated_at before update on courses
    for each row execute function set_updated_at();

create table course_days (
    id uuid primary key default gen_random_uuid(),
    course_id uuid not null references courses (id) on delete cascade,
    -- 1…n, renumbered when a day is removed
    day_number integer not null check (day_number >= 1),
    text text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint course_days_number unique (course_id, day_number) deferrable initially deferred
);
create trigger course_days_updated_at before update on course_days
    for each row execute function set_updated_at();

create table questions (
    id uuid primary key default gen_random_uuid(),
    day_id uuid not null references course_days (id) on delete cascade,
    -- order within the day, 1…n
    position integer not null check (position >= 1),
    question text not null,
    type text not null check (type in ('open', 'choice')),
    -- the choices of a `choice` question, in order
    options jsonb,
    correct_answer text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint questions_position unique (day_id, position) deferrable initially deferred
);
create trigger questions_updated_at before update on questions
    for each row execute function set_updated_at();
