-- People (the CRM of seed 003: prospects a campaign writes to) and the account's e-mail
-- suppressions (addresses no campaign may send to). An e-mail is unique per account whatever
-- its case: the API stores it trimmed and lower-cased, and the unique indexes are on
-- lower(email), so an address written any other way cannot slip past them.

create table people (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references accounts (id) on delete cascade,
    email text not null,
    -- empty when not given
    first_name text not null default '',
    last_name text not null default '',
    company text not null default '',
    title text not null default '',
    -- IANA zone name as given; null: the campaign's zone applies
    timezone text,
    -- free-form string → string map, for templates
    attributes jsonb not null default '{}' check (jsonb_typeof(attributes) = 'object'),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index people_account_email on people (account_id, lower(email));
create index people_account on people (account_id, created_at desc, id desc);
create trigger people_updated_at before update on people
    for each row execute function set_updated_at();

create table suppressions (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references accounts (id) on delete cascade,
    email text not null,
    reason text not null check (reason in ('unsubscribed', 'bounced', 'complained', 'manual')),
    -- where the suppression came from (`sendgrid`, `import`, a campaign, …); null when not given
    source text,
    created_at timestamptz not null default now()
);
create unique index suppressions_account_email on suppressions (account_id, lower(email));
create index suppressions_account on suppressions (account_id, created_at desc, id desc);
