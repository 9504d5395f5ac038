-- Mailboxes an account sends campaign e-mail from (`/api/v1/senders`). The transport's secret
-- (an SMTP password or a SendGrid API key) is sealed with `secrets.encryption_key`
-- (AES-256-GCM, `herald_shared::secrets`) and never leaves the database in clear.
create table email_senders (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references accounts (id) on delete cascade,
    from_name text not null,
    from_email text not null,
    reply_to text,
    transport text not null check (transport in ('smtp', 'sendgrid')),
    smtp_host text,
    smtp_port integer check (smtp_port between 1 and 65535),
    smtp_tls text check (smtp_tls in ('none', 'starttls', 'tls')),
    smtp_username text,
    sealed_secret text,
    daily_cap integer not null check (daily_cap > 0),
    min_gap_secs integer not null check (min_gap_secs >= 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint email_senders_smtp_server check (
        transport <> 'smtp' or (smtp_host is not null and smtp_port is not null
                                and smtp_tls is not null)),
    constraint email_senders_sendgrid_key check (transport <> 'sendgrid' or sealed_secret is not null)
);
-- one sender per address and account: sends, caps and replies are told apart by it
create unique index email_senders_account_email on email_senders (account_id, lower(from_email));
create index email_senders_account_page on email_senders (account_id, created_at desc, id desc);
create trigger email_senders_updated_at before update on email_senders
    for each row execute function set_updated_at();
