-- Student groups and their students. A student belongs to one group; the same phone in two
-- groups is two students.

create table groups (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references accounts (id) on delete cascade,
    name text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index groups_account on groups (account_id, created_at desc, id desc);
create trigger groups_updated_at before update on groups
    for each row execute function set_updated_at();

create table students (
    id uuid primary key default gen_random_uuid(),
    group_id uuid not null references groups (id) on delete cascade,
    name text not null,
    -- E.164, e.g. +14155550123
    phone text not null,
    channel text not null check (channel in ('sms', 'whatsapp')),
    -- IANA zone name as given, e.g. America/New_York
    timezone text not null,
    subscribed boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint students_group_phone unique (group_id, phone)
);
create index students_group on students (group_id, created_at, id);
create index students_phone on students (phone);
create trigger students_updated_at before update on students
    for each row execute function set_updated_at();
